//! The PostgreSQL statement builder: every SQL text the PostgreSQL engine sends is built
//! here. Identifiers are quoted by [`quote`]; values go through bind parameters (key
//! values always as text, cast back to the column's type by the server).

use crate::schema::ColumnMapping;

/// Quote an identifier with double quotes.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `"schema"."name"`
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

/// A key column: its name and its full type (`format_type`), used to cast text back.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyColumn {
    pub name: String,
    pub sql_type: String,
}

/// Statements for one migration: original, shadow, mapping, key.
#[derive(Debug, Clone)]
pub struct Builder {
    pub orig: String,
    pub shadow: String,
    pub key: Vec<KeyColumn>,
    target_key: Vec<String>,
    insert_cols: String,
    select_cols: String,
}

impl Builder {
    /// `exprs` are USING expressions of the ALTER, by shadow column name: the copy selects
    /// them instead of the source column, exactly as the in-place ALTER would compute.
    pub fn new(
        schema: &str,
        orig: &str,
        shadow: &str,
        mapping: &ColumnMapping,
        key: Vec<KeyColumn>,
        exprs: &[(String, String)],
    ) -> Builder {
        let insert_cols = mapping
            .columns
            .iter()
            .map(|m| quote(&m.target))
            .collect::<Vec<_>>()
            .join(", ");
        let select_cols = mapping
            .columns
            .iter()
            .map(|m| match exprs.iter().find(|(t, _)| *t == m.target) {
                Some((_, e)) => format!("({e})"),
                None => format!("o.{}", quote(&m.source)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Builder {
            orig: qualified(schema, orig),
            shadow: qualified(schema, shadow),
            key,
            target_key: mapping.key.target_columns.clone(),
            insert_cols,
            select_cols,
        }
    }

    fn key_row(&self, alias: &str) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{alias}.{}", quote(&k.name)))
            .collect();
        format!("({})", cols.join(", "))
    }

    /// `($1::text::type, $2::text::type)` starting at parameter `first`.
    fn bound_row(&self, first: usize) -> String {
        let vals: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("${}::text::{}", first + i, k.sql_type))
            .collect();
        format!("({})", vals.join(", "))
    }

    fn key_text(&self, alias: &str) -> String {
        self.key
            .iter()
            .map(|k| format!("{alias}.{}::text", quote(&k.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key (as text) of the row `offset` rows past `after` (or from the start).
    /// Parameters: the `after` key parts, if any.
    pub fn chunk_end(&self, after: bool, offset: u64) -> String {
        let filter = if after {
            format!("WHERE {} > {}", self.key_row("o"), self.bound_row(1))
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM {} o {filter} ORDER BY {} LIMIT 1 OFFSET {offset}",
            self.key_text("o"),
            self.orig,
            self.key_row("o").trim_matches(['(', ')'])
        )
    }

    /// Copy the rows with key in (`after`, `upto`]. Parameters: `after` parts then `upto`
    /// parts, for the bounds that are present.
    pub fn copy_chunk(&self, after: bool, upto: bool) -> String {
        let mut conds = Vec::new();
        let mut next = 1;
        if after {
            conds.push(format!("{} > {}", self.key_row("o"), self.bound_row(next)));
            next += self.key.len();
        }
        if upto {
            conds.push(format!("{} <= {}", self.key_row("o"), self.bound_row(next)));
        }
        // The shadow holds only copied rows while the copy runs (replay waits, see
        // `PgEngine::flush`), so a plain insert: no anti-join, no ON CONFLICT.
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} o{filter}",
            self.shadow, self.insert_cols, self.select_cols, self.orig
        )
    }

    /// Remove from the shadow every row past `after` (every row without it): the rows a
    /// chunk whose connection was lost may have written, before it is copied again.
    /// Parameters: the `after` key parts, if any.
    pub fn delete_copied_after(&self, after: bool) -> String {
        let filter = if after {
            let cols: Vec<String> = self
                .target_key
                .iter()
                .map(|c| format!("s.{}", quote(c)))
                .collect();
            format!(" WHERE ({}) > {}", cols.join(", "), self.bound_row(1))
        } else {
            String::new()
        };
        format!("DELETE FROM {} s{filter}", self.shadow)
    }

    /// `(SELECT * FROM unnest($1::text[]::t1[], …))`: one text array per key column.
    fn key_set(&self) -> String {
        let arrays: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("${}::text[]::{}[]", i + 1, k.sql_type))
            .collect();
        format!("(SELECT * FROM unnest({}))", arrays.join(", "))
    }

    /// The table of keys whose replay waits for the copy to finish (`park`: its quoted,
    /// qualified name). A real table, not a session's temporary one: the keys outlive a
    /// lost main session and a dead run (a resumed run replays them).
    pub fn park_create(&self, park: &str) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("k{i} {}", k.sql_type))
            .collect();
        format!("CREATE TABLE IF NOT EXISTS {park} ({})", cols.join(", "))
    }

    /// Park keys (one text array per key column, as for a flush).
    pub fn park_insert(&self, park: &str) -> String {
        format!("INSERT INTO {park} SELECT * FROM {} k", self.key_set())
    }

    /// Take up to `n` parked keys out, as text.
    pub fn park_take(&self, park: &str, n: usize) -> String {
        let cols: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}::text")).collect();
        format!(
            "DELETE FROM {park} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {park} LIMIT {n})) RETURNING {}",
            cols.join(", ")
        )
    }

    /// Remove the keys from the shadow (first half of a flush).
    pub fn flush_delete(&self) -> String {
        let cols: Vec<String> = self
            .target_key
            .iter()
            .map(|c| format!("s.{}", quote(c)))
            .collect();
        format!(
            "DELETE FROM {} s WHERE ({}) IN {}",
            self.shadow,
            cols.join(", "),
            self.key_set()
        )
    }

    /// Re-insert the keys from the original (second half of a flush).
    pub fn flush_insert(&self) -> String {
        format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {} o WHERE {} IN {}",
            self.shadow,
            self.insert_cols,
            self.select_cols,
            self.orig,
            self.key_row("o"),
            self.key_set()
        )
    }
}

// ---- session, stream and artifacts -------------------------------------------------

/// Settings of every session godwit opens: values rendered as text (keys in the change
/// stream, chunk bounds) must read back to the same value.
pub const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex -c standard_conforming_strings=on";

pub fn create_publication(schema: &str, table: &str, publication: &str) -> String {
    format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, update, delete, truncate')",
        quote(publication),
        qualified(schema, table)
    )
}

pub fn drop_publication(publication: &str) -> String {
    format!("DROP PUBLICATION IF EXISTS {}", quote(publication))
}

/// Parameters: slot name. A persistent slot: it outlives a lost stream session, so the
/// stream can be opened again where it was (docs/how-it-works.md, "Lost connections").
/// Every end of a run drops it; one left by a killed run is removed by the next run on
/// the table or by `godwit cleanup`.
pub const CREATE_SLOT: &str =
    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput', false)";
/// Parameters: slot name. Ends the session still holding the slot (a lost stream
/// session whose server process has not noticed yet); a row when there was one.
pub const END_SLOT_HOLDER: &str = "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active AND active_pid <> pg_backend_pid()";
/// Parameters: slot name. Where the slot's consumer has confirmed up to.
pub const SLOT_CONFIRMED: &str =
    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1";
pub const DROP_SLOT: &str = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND (NOT active OR active_pid = pg_backend_pid())";
/// Parameters: slot, upto_nchanges (int4), publication, upto_lsn (text). Bounded by the
/// flushed position read just before: WAL written after it belongs to transactions still
/// running (the copy's next chunk), which decoding would queue now and again later.
pub const PEEK: &str = "SELECT lsn::text, xid::text::int8, data FROM pg_logical_slot_peek_binary_changes($1, $4::text::pg_lsn, $2, 'proto_version', '1', 'publication_names', $3, 'messages', 'true')";
pub const FLUSH_LSN: &str = "SELECT pg_current_wal_flush_lsn()::text";
/// Parameters: slot, lsn as text.
pub const ADVANCE: &str = "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)";
/// The next full transaction id (to widen 32-bit xids from the stream).
pub const NEXT_XID: &str = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8";
/// Parameters: full xids (int8[]). Returns those a fresh snapshot does not see yet.
pub const INVISIBLE_XIDS: &str = "SELECT x FROM unnest($1::int8[]) AS x WHERE NOT pg_visible_in_snapshot(x::text::xid8, pg_current_snapshot())";
/// Session settings of the change-stream connection. Decoding keeps each transaction's
/// changes in memory up to this size before spilling them to disk; our own copy chunks
/// (up to 500k rows) are large transactions that every read decodes, and reading a large
/// transaction through spilled files was measured about 7× slower (1.43 s against
/// 0.20 s for 500k rows).
pub const STREAM_SESSION: &str = "SET logical_decoding_work_mem = '512MB'";

/// Sessions that write the shadow (copy, replay, index builds): each commit flushes the
/// WAL locally. Decoding reads only flushed WAL and, when a record crosses the flushed
/// position, waits for the WAL writer (up to `wal_writer_delay`, 200 ms by default)
/// with asynchronous commit: measured 200 ms on every peek after a chunk. `local`, not
/// `on`: never wait for a synchronous standby for the shadow's sake.
pub const WRITER_SESSION: &str = "SET synchronous_commit = local";

// ---- the checkpoint table (docs/how-it-works.md, "Resume") -------------------------

/// The checkpoint table's name, in the migrated table's schema.
pub const CHECKPOINT_TABLE: &str = "_godwit_checkpoint";

pub fn checkpoint_create(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, state text NOT NULL, saved_at timestamptz NOT NULL DEFAULT clock_timestamp(), request text)",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Parameters: request, table name. A mark next to the checkpoint that saving it never
/// overwrites (`godwit revert` asking the window's run to hand over).
pub fn checkpoint_request(schema: &str) -> String {
    format!(
        "UPDATE {} SET request = $1 WHERE table_name = $2",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Parameters: table name. Returns the request.
pub fn checkpoint_request_select(schema: &str) -> String {
    format!(
        "SELECT request FROM {} WHERE table_name = $1",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// The `request` column, for a checkpoint table made before it existed.
pub fn checkpoint_add_request(schema: &str) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS request text",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

pub fn checkpoint_comment(schema: &str) -> String {
    format!(
        "COMMENT ON TABLE {} IS 'godwit: checkpoints of running migrations'",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Parameters: table name. Returns the state.
pub fn checkpoint_select(schema: &str) -> String {
    format!(
        "SELECT state FROM {} WHERE table_name = $1",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Parameters: table name, state. Sets only `state` and `saved_at` of an existing row
/// (another column added later keeps its value).
pub fn checkpoint_upsert(schema: &str) -> String {
    format!(
        "INSERT INTO {} (table_name, state, saved_at) VALUES ($1, $2, clock_timestamp()) \
         ON CONFLICT (table_name) DO UPDATE SET state = EXCLUDED.state, saved_at = EXCLUDED.saved_at",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Parameters: table name.
pub fn checkpoint_delete(schema: &str) -> String {
    format!(
        "DELETE FROM {} WHERE table_name = $1",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Keeps other runs from adding a row while the last one goes with the table.
pub fn checkpoint_lock(schema: &str) -> String {
    format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

pub fn checkpoint_count(schema: &str) -> String {
    format!(
        "SELECT count(*) FROM {}",
        qualified(schema, CHECKPOINT_TABLE)
    )
}

/// Primary key and unique constraints of a table, dropped for the copy and added back
/// after it (their index first, with its options, then `ADD CONSTRAINT … USING INDEX`:
/// `pg_get_constraintdef` leaves out the index's storage parameters). Parameter: quoted,
/// qualified table name. Returns name, index name, kind, deferrability, comment.
pub const KEY_CONSTRAINTS: &str = "SELECT k.conname::text, i.relname::text, \
    CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END, \
    CASE WHEN k.condeferred THEN 'DEFERRABLE INITIALLY DEFERRED' \
         WHEN k.condeferrable THEN 'DEFERRABLE' ELSE '' END, \
    obj_description(k.oid, 'pg_constraint') \
    FROM pg_constraint k JOIN pg_class i ON i.oid = k.conindid \
    WHERE k.conrelid = $1::text::regclass AND k.contype IN ('p', 'u') ORDER BY k.contype, k.oid";

/// The comment of the constraint that owns an index (`LIKE` does not copy comments of
/// key constraints). Parameters: quoted, qualified table name; index name.
pub const KEY_CONSTRAINT_COMMENT: &str = "SELECT obj_description(k.oid, 'pg_constraint') \
    FROM pg_constraint k JOIN pg_class i ON i.oid = k.conindid \
    WHERE k.conrelid = $1::text::regclass AND i.relname = $2 AND k.contype <> 'f'";

/// `ALTER TABLE … ADD CONSTRAINT name PRIMARY KEY|UNIQUE USING INDEX index [DEFERRABLE …]`.
pub fn add_constraint_using_index(
    table: &str,
    name: &str,
    kind: &str,
    index: &str,
    deferrable: &str,
) -> String {
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} {kind} USING INDEX {} {deferrable}",
        quote(name),
        quote(index)
    )
    .trim_end()
    .to_string()
}

pub const FORMAT_CONSTRAINT_COMMENT: &str =
    "SELECT format('COMMENT ON CONSTRAINT %I ON %s IS %L', $1::text, $2::text, $3::text)";

/// The cut-over fence: committed synchronously (to local disk), so decoding sees it and
/// everything committed before it. Parameter: marker text.
pub const FENCE: &str = "SELECT pg_logical_emit_message(true, 'godwit', $1)::text";

/// A logged table from the start: an UNLOGGED copy made durable later with `SET LOGGED`
/// was measured slower (the rewrite writes the table again, in one transaction that
/// decoding must read whole) than a logged copy whose small per-chunk transactions
/// decoding skips cheaply.
pub fn create_shadow_like(schema: &str, orig: &str, shadow: &str) -> String {
    format!(
        "CREATE TABLE {} (LIKE {} INCLUDING ALL)",
        qualified(schema, shadow),
        qualified(schema, orig)
    )
}

pub fn alter_table(schema: &str, table: &str, clauses: &str) -> String {
    format!("ALTER TABLE {} {clauses}", qualified(schema, table))
}

pub fn drop_table(schema: &str, table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(schema, table))
}

pub fn drop_index(schema: &str, index: &str) -> String {
    format!("DROP INDEX IF EXISTS {}", qualified(schema, index))
}

pub fn rename_table(schema: &str, from: &str, to: &str) -> String {
    format!(
        "ALTER TABLE {} RENAME TO {}",
        qualified(schema, from),
        quote(to)
    )
}

/// Renaming an index also renames the constraint it backs.
pub fn rename_index(schema: &str, from: &str, to: &str) -> String {
    format!(
        "ALTER INDEX {} RENAME TO {}",
        qualified(schema, from),
        quote(to)
    )
}

pub fn rename_sequence(schema: &str, from: &str, to: &str) -> String {
    format!(
        "ALTER SEQUENCE {} RENAME TO {}",
        qualified(schema, from),
        quote(to)
    )
}

pub fn sequence_owned_by(
    seq_schema: &str,
    seq: &str,
    schema: &str,
    table: &str,
    col: &str,
) -> String {
    format!(
        "ALTER SEQUENCE {} OWNED BY {}.{}",
        qualified(seq_schema, seq),
        qualified(schema, table),
        quote(col)
    )
}

/// The state of a sequence (`seq` already quoted).
pub fn sequence_state(seq: &str) -> String {
    format!("SELECT last_value, is_called FROM {seq}")
}

/// Parameters: sequence (text, cast to regclass), value, is_called.
pub const SETVAL: &str = "SELECT setval($1::text::regclass, $2, $3)";

pub fn lock_tables(schema: &str, orig: &str, shadow: &str) -> String {
    format!(
        "LOCK TABLE {}, {} IN ACCESS EXCLUSIVE MODE",
        qualified(schema, orig),
        qualified(schema, shadow)
    )
}

pub fn drop_constraint(table: &str, name: &str) -> String {
    format!("ALTER TABLE {table} DROP CONSTRAINT {}", quote(name))
}

/// `def` comes from `pg_get_constraintdef` (captured with a fully qualifying search_path).
/// CHECK and FOREIGN KEY constraints of the shadow (`$1`) that are not validated, or
/// whose namesake CHECK on the original (`$2`) is not (`LIKE` copies those as valid):
/// (name, definition). Both names quoted and qualified.
pub const NOT_VALID_CONSTRAINTS: &str = "SELECT s.conname::text, pg_get_constraintdef(s.oid) FROM pg_constraint s \
    WHERE s.conrelid = $1::text::regclass AND s.contype IN ('c', 'f') AND (NOT s.convalidated \
    OR EXISTS (SELECT 1 FROM pg_constraint o WHERE o.conrelid = $2::text::regclass AND o.conname = s.conname \
    AND o.contype = 'c' AND NOT o.convalidated)) ORDER BY 1";

pub fn add_constraint_not_valid(table: &str, name: &str, def: &str) -> String {
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} {def} NOT VALID",
        quote(name)
    )
}

pub fn validate_constraint(table: &str, name: &str) -> String {
    format!("ALTER TABLE {table} VALIDATE CONSTRAINT {}", quote(name))
}

pub fn create_or_replace_view(view: &str, def: &str) -> String {
    format!("CREATE OR REPLACE VIEW {view} AS {def}")
}

pub fn grant(privilege: &str, table: &str, grantee: Option<&str>, grantable: bool) -> String {
    let to = grantee.map(quote).unwrap_or_else(|| "PUBLIC".into());
    let opt = if grantable { " WITH GRANT OPTION" } else { "" };
    format!("GRANT {privilege} ON TABLE {table} TO {to}{opt}")
}

pub fn owner_to(table: &str, owner: &str) -> String {
    format!("ALTER TABLE {table} OWNER TO {}", quote(owner))
}

/// Mark `index` as the one `CLUSTER` uses (`table` quoted and qualified).
pub fn cluster_on(table: &str, index: &str) -> String {
    format!("ALTER TABLE {table} CLUSTER ON {}", quote(index))
}

pub fn trigger_state(table: &str, trigger: &str, state: char) -> Option<String> {
    let what = match state {
        'D' => "DISABLE TRIGGER",
        'R' => "ENABLE REPLICA TRIGGER",
        'A' => "ENABLE ALWAYS TRIGGER",
        _ => return None,
    };
    Some(format!("ALTER TABLE {table} {what} {}", quote(trigger)))
}

pub fn replica_identity(table: &str, kind: char, index: Option<&str>) -> Option<String> {
    let what = match (kind, index) {
        ('f', _) => "FULL".to_string(),
        ('n', _) => "NOTHING".to_string(),
        ('i', Some(i)) => format!("USING INDEX {}", quote(i)),
        _ => return None,
    };
    Some(format!("ALTER TABLE {table} REPLICA IDENTITY {what}"))
}

pub fn row_security(table: &str, enable: bool, force: bool) -> Vec<String> {
    let mut v = Vec::new();
    if enable {
        v.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
    }
    if force {
        v.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"));
    }
    v
}

/// A policy from `pg_policies`.
pub fn create_policy(
    name: &str,
    table: &str,
    permissive: &str,
    cmd: &str,
    roles: &[String],
    qual: Option<&str>,
    check: Option<&str>,
) -> String {
    let roles: Vec<String> = roles
        .iter()
        .map(|r| {
            if r == "public" {
                "PUBLIC".to_string()
            } else {
                quote(r)
            }
        })
        .collect();
    let mut s = format!(
        "CREATE POLICY {} ON {table} AS {permissive} FOR {cmd} TO {}",
        quote(name),
        roles.join(", ")
    );
    if let Some(q) = qual {
        s.push_str(&format!(" USING ({q})"));
    }
    if let Some(c) = check {
        s.push_str(&format!(" WITH CHECK ({c})"));
    }
    s
}

pub fn add_to_publication(publication: &str, table: &str) -> String {
    format!("ALTER PUBLICATION {} ADD TABLE {table}", quote(publication))
}

/// `table` is quoted already.
pub fn drop_from_publication(publication: &str, table: &str) -> String {
    format!(
        "ALTER PUBLICATION {} DROP TABLE {table}",
        quote(publication)
    )
}

/// godwit's publication publishes `table` (quoted already) instead of what it did.
pub fn set_publication_table(publication: &str, table: &str) -> String {
    format!("ALTER PUBLICATION {} SET TABLE {table}", quote(publication))
}

/// `table` is quoted already.
pub fn drop_trigger(name: &str, table: &str) -> String {
    format!("DROP TRIGGER {} ON {table}", quote(name))
}

/// `table` is quoted already.
pub fn drop_policy(name: &str, table: &str) -> String {
    format!("DROP POLICY {} ON {table}", quote(name))
}

/// Parameters: object kind keyword is fixed; the server formats the literal (`%L`).
/// Returns the statement to run (built server-side so the comment is escaped there).
pub const FORMAT_TABLE_COMMENT: &str =
    "SELECT format('COMMENT ON TABLE %s IS %L', $1::text, $2::text)";
pub const FORMAT_INDEX_COMMENT: &str =
    "SELECT format('COMMENT ON INDEX %s IS %L', $1::text, $2::text)";
pub const FORMAT_RELOPTIONS: &str =
    "SELECT format('ALTER TABLE %s SET (%s)', $1::text, array_to_string($2::text[], ', '))";

pub fn set_lock_timeout() -> &'static str {
    "SELECT set_config('lock_timeout', $1, false)"
}

// ---- catalog queries ----------------------------------------------------------------

pub const SERVER_VERSION: &str = "SELECT version()";
/// The table's runner lock, held by the main session for the whole run: the first key
/// is "godw", the second identifies database, schema and table.
pub const RUNNER_LOCK: &str = "SELECT pg_try_advisory_lock(1735353463, $1::int4)";
pub const CURRENT_SCHEMA: &str = "SELECT current_schema()::text";
/// Parameters: schema, name. Whether a table exists.
pub const TABLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)";
/// Parameters: schema, LIKE pattern.
/// Parameters: shadow name, the table's schema, the table's name.
pub const STRAY_SHADOWS: &str = "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND n.nspname <> $2 AND NOT EXISTS (SELECT 1 FROM pg_class o WHERE o.relnamespace = n.oid AND o.relname = $3 AND o.relkind IN ('r', 'p')) ORDER BY 1";
pub const TABLES_LIKE: &str = "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname LIKE $2 AND c.relkind = 'r' ORDER BY 1";
/// Parameters: slot. Returns active, active_pid.
pub const SLOT_STATE: &str =
    "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1";
/// Parameters: slot. Returns the confirmed position and `wal_status` (`lost`: the WAL
/// it needs is gone).
pub const SLOT_RESUME: &str =
    "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1";
/// godwit's slots other than `$1` (any database), with the WAL each holds back (bytes).
pub const OTHER_GODWIT_SLOTS: &str = "SELECT slot_name::text, COALESCE(database::text, ''), COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8 FROM pg_replication_slots WHERE slot_name LIKE '\\_godwit\\_slot\\_%' AND slot_name <> $1 ORDER BY 1";
/// Parameters: two qualified names (text). Ends the other sessions that hold a lock on
/// either relation; returns one row per session asked to end.
pub const END_LOCK_HOLDERS: &str = "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.relation IN (to_regclass($1), to_regclass($2)) AND l.pid <> pg_backend_pid() GROUP BY l.pid";
/// The second keys of the runner locks held now (see `RUNNER_LOCK`), as unsigned.
pub const RUNNER_LOCKS_HELD: &str = "SELECT objid::text::int8 FROM pg_locks WHERE locktype = 'advisory' AND classid = 1735353463 AND objsubid = 2 AND granted";
/// Parameters: publication.
pub const PUBLICATION_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)";
/// Parameters: table (quoted, qualified). Outgoing foreign keys (not self-references).
pub const OUTGOING_FKS: &str = "SELECT conname::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = $1::text::regclass AND confrelid <> conrelid ORDER BY conname";
/// Parameters: table. Storage parameters.
pub const RELOPTIONS: &str =
    "SELECT COALESCE(reloptions, '{}')::text[] FROM pg_class WHERE oid = $1::text::regclass";
/// The load counters of `--max-load` / `--critical-load` (see `load.rs`), in this order:
/// active (non-idle client backends), waiting (client backends waiting on a lock),
/// connections (all client backends), replication_lag_ms (largest replay lag of the
/// servers streaming from this one, 0 when none), xact_age_s (oldest open transaction),
/// then whether this user sees other roles' sessions (`pg_read_all_stats`). godwit's own
/// sessions (this one and those named `godwit …`) are left out of all but connections.
pub const LOAD_COUNTERS: &str = "SELECT \
    count(*) FILTER (WHERE a.state NOT LIKE 'idle%' AND NOT a.own)::float8, \
    count(*) FILTER (WHERE a.wait_event_type = 'Lock' AND NOT a.own)::float8, \
    count(*)::float8, \
    (SELECT COALESCE(max(EXTRACT(epoch FROM r.replay_lag)) * 1000, 0)::float8 FROM pg_stat_replication r), \
    COALESCE(EXTRACT(epoch FROM clock_timestamp() - min(a.xact_start) FILTER (WHERE NOT a.own)), 0)::float8, \
    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') \
    FROM (SELECT s.state, s.wait_event_type, s.xact_start, \
          (s.pid = pg_backend_pid() OR s.application_name LIKE 'godwit %') AS own \
          FROM pg_stat_activity s WHERE s.backend_type = 'client backend') a";

// ---- what the cut-over carries over (parameter $1: the original, quoted and qualified) --

/// Views reading the table: (qualified name, definition, options).
pub const DEPENDENT_VIEWS: &str = "SELECT DISTINCT format('%I.%I', n.nspname, v.relname), pg_get_viewdef(v.oid), array_to_string(v.reloptions, ', '), v.relkind::text \
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace \
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::text::regclass AND v.oid <> d.refobjid";
/// Foreign keys pointing at the table (including its own self-references):
/// (referencing table, name, definition, validated, self-reference).
pub const REFERENCING_FKS: &str = "SELECT format('%I.%I', n.nspname, c.relname), k.conname::text, pg_get_constraintdef(k.oid), k.convalidated, k.conrelid = k.confrelid \
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE k.contype = 'f' AND k.confrelid = $1::text::regclass ORDER BY 1, 2";
/// User triggers: (name, definition, enabled state).
pub const TRIGGERS: &str = "SELECT tgname::text, pg_get_triggerdef(oid), tgenabled::text FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal ORDER BY tgname";
/// Table privileges: (grantee or NULL for PUBLIC, privilege, grantable).
pub const GRANTS: &str = "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type, a.is_grantable \
    FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::text::regclass";
/// (owner, comment, row security, forced row security, replica identity).
pub const TABLE_PROPS: &str = "SELECT pg_get_userbyid(relowner)::text, obj_description(oid, 'pg_class'), relrowsecurity, relforcerowsecurity, relreplident::text, current_user::text FROM pg_class WHERE oid = $1::text::regclass";
/// Parameters: schema, table. (name, permissive, roles, command, qual, with check).
pub const POLICIES: &str = "SELECT policyname::text, permissive, roles::text[], cmd, qual, with_check FROM pg_policies WHERE schemaname = $1 AND tablename = $2 ORDER BY policyname";
/// Publications (other than godwit's) that include the table.
pub const PUBLICATIONS: &str = "SELECT p.pubname::text FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1::text::regclass AND p.pubname <> $2";
/// Sequences owned by a column (`a`: serial/OWNED BY, `i`: identity):
/// (qualified name, schema, name, column, dependency type).
pub const OWNED_SEQUENCES: &str = "SELECT format('%I.%I', sn.nspname, s.relname), sn.nspname::text, s.relname::text, a.attname::text, d.deptype::text \
    FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace \
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::text::regclass AND d.deptype IN ('a', 'i')";
/// Columns of the table that views read: (view, column, type).
pub const VIEW_COLUMNS: &str = "SELECT DISTINCT format('%I.%I', n.nspname, v.relname), a.attname::text, format_type(a.atttypid, a.atttypmod) \
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace \
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::text::regclass AND d.refobjsubid > 0 AND v.oid <> d.refobjid";
/// Parameters: qualified name as text. Whether a relation of that name exists.
pub const RELATION_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{MappedColumn, SharedKey};

    fn builder(keys: &[&str]) -> Builder {
        let mapping = ColumnMapping {
            columns: vec![
                MappedColumn {
                    source: "id".into(),
                    target: "id".into(),
                },
                MappedColumn {
                    source: "a\"b".into(),
                    target: "c".into(),
                },
            ],
            dropped: vec![],
            added: vec![],
            key: SharedKey {
                source_name: "t_pkey".into(),
                target_name: "s_pkey".into(),
                source_columns: keys.iter().map(|s| s.to_string()).collect(),
                target_columns: keys.iter().map(|s| s.to_string()).collect(),
            },
        };
        Builder::new(
            "public",
            "t",
            "_godwit_new_t",
            &mapping,
            keys.iter()
                .map(|k| KeyColumn {
                    name: k.to_string(),
                    sql_type: "bigint".into(),
                })
                .collect(),
            &[],
        )
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("s", "T"), "\"s\".\"T\"");
    }

    #[test]
    fn copy_chunk_maps_columns_and_bounds() {
        let b = builder(&["id"]);
        assert_eq!(
            b.copy_chunk(true, true),
            "INSERT INTO \"public\".\"_godwit_new_t\" (\"id\", \"c\") OVERRIDING SYSTEM VALUE SELECT o.\"id\", o.\"a\"\"b\" FROM \"public\".\"t\" o WHERE (o.\"id\") > ($1::text::bigint) AND (o.\"id\") <= ($2::text::bigint)"
        );
        assert!(!b.copy_chunk(false, false).contains("WHERE"));
    }

    #[test]
    fn parked_keys_keep_their_types() {
        let b = builder(&["a", "b"]);
        assert!(b
            .park_create("p")
            .ends_with("EXISTS p (k0 bigint, k1 bigint)"));
        assert!(b
            .park_insert("p")
            .contains("unnest($1::text[]::bigint[], $2::text[]::bigint[])"));
        assert!(b
            .park_take("p", 10)
            .ends_with("LIMIT 10)) RETURNING k0::text, k1::text"));
    }

    #[test]
    fn composite_keys_compare_as_rows() {
        let b = builder(&["a", "b"]);
        let s = b.chunk_end(true, 99);
        assert!(
            s.contains("WHERE (o.\"a\", o.\"b\") > ($1::text::bigint, $2::text::bigint)"),
            "{s}"
        );
        assert!(
            s.ends_with("ORDER BY o.\"a\", o.\"b\" LIMIT 1 OFFSET 99"),
            "{s}"
        );
        assert!(b.flush_insert().ends_with(
            "WHERE (o.\"a\", o.\"b\") IN (SELECT * FROM unnest($1::text[]::bigint[], $2::text[]::bigint[]))"
        ));
    }

    #[test]
    fn using_expressions_replace_the_source_column() {
        let mut b = builder(&["id"]);
        let m = ColumnMapping {
            columns: vec![MappedColumn {
                source: "id".into(),
                target: "id".into(),
            }],
            dropped: vec![],
            added: vec![],
            key: SharedKey {
                source_name: "k".into(),
                target_name: "k".into(),
                source_columns: vec!["id".into()],
                target_columns: vec!["id".into()],
            },
        };
        b = Builder::new(
            "s",
            "t",
            "n",
            &m,
            b.key.clone(),
            &[("id".into(), "id * 2".into())],
        );
        assert!(b.flush_insert().contains("SELECT (id * 2) FROM"));
        assert!(b
            .flush_delete()
            .starts_with("DELETE FROM \"s\".\"n\" s WHERE (s.\"id\") IN"));
    }
}
