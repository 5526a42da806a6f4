//! PostgreSQL test databases: one database per test on a shared server.

use godwit::plan::PgLock;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

static SERVER_URL: OnceCell<String> = OnceCell::const_new();
static CONTAINER: OnceCell<
    Option<
        testcontainers_modules::testcontainers::ContainerAsync<
            testcontainers_modules::postgres::Postgres,
        >,
    >,
> = OnceCell::const_new();

async fn from_container() -> Option<String> {
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::ImageExt;
    if !super::docker_available() {
        return None;
    }
    let c = CONTAINER
        .get_or_init(|| async {
            testcontainers_modules::postgres::Postgres::default()
                .with_host_auth()
                .with_tag("15")
                .with_cmd([
                    "postgres",
                    "-c",
                    "wal_level=logical",
                    "-c",
                    "max_replication_slots=40",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "synchronous_commit=off",
                ])
                .start()
                .await
                .ok()
        })
        .await
        .as_ref()?;
    let port = c.get_host_port_ipv4(5432).await.ok()?;
    Some(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The server's URL (database `postgres`).
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(u) = std::env::var("GODWIT_TEST_POSTGRES_URL") {
                return u;
            }
            if let Some(u) = from_container().await {
                return u;
            }
            tokio::task::spawn_blocking(|| {
                super::start_local_server("start_postgres", "GODWIT_TEST_POSTGRES_URL")
            })
            .await
            .unwrap()
        })
        .await
        .clone()
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

pub async fn connect(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub server: String,
    pub client: Client,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        Self::new_on(&server_url().await, prefix).await
    }

    /// A database of its own on the server at `server` (e.g. a private one).
    pub async fn new_on(server: &str, prefix: &str) -> TestDb {
        let server = server.to_string();
        let name = super::unique_name(prefix);
        let admin = connect(&server).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let url = with_db(&server, &name);
        let client = connect(&url).await;
        TestDb {
            name,
            url,
            server,
            client,
        }
    }

    /// The same database through a new session (after a server restart).
    pub async fn reopen(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            server: self.server.clone(),
            client: connect(&self.url).await,
        }
    }

    pub async fn conn(&self) -> Client {
        connect(&self.url).await
    }

    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    pub async fn strings(&self, sql: &str) -> Vec<String> {
        self.client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .iter()
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
            .collect()
    }

    pub async fn one_i64(&self, sql: &str) -> i64 {
        self.client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }

    /// Every row of `table` as text, columns `cols`, ordered by `order`.
    pub async fn rows(&self, table: &str, cols: &str, order: &str) -> Vec<String> {
        self.strings(&format!(
            "SELECT ROW({cols})::text FROM {table} ORDER BY {order}"
        ))
        .await
    }

    /// Column definitions: name, type, not null, default, identity, generated.
    pub async fn columns(&self, table: &str) -> Vec<String> {
        self.strings(&format!(
            "SELECT concat_ws(' | ', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             regexp_replace(pg_get_expr(d.adbin, d.adrelid), '_godwit_new_', '', 'g'), a.attidentity, a.attgenerated) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = '{table}'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ))
        .await
    }

    /// The whole definition of `table` from the catalog, one line per item: columns (see
    /// [`TestDb::columns`]) with collation, storage, compression and comment; constraints;
    /// indexes; table options, comment, owner and grants; triggers; the sequences its
    /// columns own (with their position). Names appear as the server prints them
    /// (`pg_get_indexdef` qualifies the table with its schema).
    pub async fn definition(&self, table: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .columns(table)
            .await
            .into_iter()
            .map(|c| format!("column {c}"))
            .collect();
        let t = format!("'{table}'::regclass");
        for sql in [
            format!("SELECT concat_ws(' | ', 'column+', a.attname, co.collname, a.attstorage, a.attcompression, a.attstattarget, a.attoptions::text, col_description(a.attrelid, a.attnum)) \
             FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             WHERE a.attrelid = {t} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
            format!("SELECT concat_ws(' | ', 'constraint', conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, convalidated, obj_description(oid, 'pg_constraint')) \
             FROM pg_constraint WHERE conrelid = {t} ORDER BY conname"),
            format!("SELECT concat_ws(' | ', 'index', c.relname, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, i.indisclustered, i.indisreplident, i.indisvalid, c.reloptions::text, obj_description(c.oid, 'pg_class')) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = {t} ORDER BY c.relname"),
            format!("SELECT concat_ws(' | ', 'table', c.relkind, c.relpersistence, c.relreplident, c.reloptions::text, am.amname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner), c.relacl::text, obj_description(c.oid, 'pg_class')) \
             FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam WHERE c.oid = {t}"),
            format!("SELECT concat_ws(' | ', 'trigger', tgname, pg_get_triggerdef(oid), tgenabled) \
             FROM pg_trigger WHERE tgrelid = {t} AND NOT tgisinternal ORDER BY tgname"),
            format!("SELECT concat_ws(' | ', 'sequence', a.attname, s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache, q.seqcycle, pg_sequence_last_value(s.oid)) \
             FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_sequence q ON q.seqrelid = s.oid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refobjid = {t} AND d.deptype IN ('a', 'i') ORDER BY a.attnum"),
        ] {
            v.extend(self.strings(&sql).await);
        }
        v
    }

    /// Make `expected` a copy of `table` (definition and rows) and apply `alter` to it
    /// natively: the oracle a migration's result must equal.
    pub async fn native_twin(&self, table: &str, expected: &str, alter: &str) {
        let cols = self
            .strings(&format!(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
                 WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
            ))
            .await
            .remove(0);
        self.exec(&format!(
            "CREATE TABLE {expected} (LIKE {table} INCLUDING ALL); \
             INSERT INTO {expected} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {table}; \
             ALTER TABLE {expected} {alter}"
        ))
        .await;
    }

    /// Objects of godwit's left in this database (and slots for it on the server).
    pub async fn leftovers(&self) -> Vec<String> {
        let mut v = self
            .strings(
                "SELECT 'table ' || relname FROM pg_class WHERE relname LIKE '\\_godwit\\_%' AND relkind IN ('r','p') \
                 UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE '\\_godwit\\_%' \
                 UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE '\\_godwit\\_%' AND database = current_database()",
            )
            .await;
        v.sort();
        v
    }

    /// Everything of godwit's in this database except the phases' state table: relations
    /// (tables, views, indexes, sequences), triggers, functions and constraints whose
    /// name starts with `_godwit`.
    pub async fn phase_leftovers(&self) -> Vec<String> {
        let mut v = self
            .strings(
                "SELECT 'relation ' || relname FROM pg_class WHERE relname LIKE '\\_godwit%' AND relname NOT IN ('_godwit_migrations', '_godwit_migrations_pkey') \
                 UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE '\\_godwit%' \
                 UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '\\_godwit%' \
                 UNION ALL SELECT 'constraint ' || conname FROM pg_constraint WHERE conname LIKE '\\_godwit%' AND conname <> '_godwit_migrations_pkey'",
            )
            .await;
        v.sort();
        v
    }

    /// Run `godwit run --execute --ok-to-drop-table` on `table` with extra args.
    pub async fn migrate(&self, table: &str, alter: &str, extra: &[&str]) -> super::Run {
        let mut args = vec![
            "run",
            "--url",
            &self.url,
            "--table",
            table,
            "--alter",
            alter,
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        super::godwit(&args, &[]).await
    }

    /// Assert the migrated `table` equals the natively altered `expected` (definition and
    /// rows) and nothing of godwit's is left.
    pub async fn assert_same(&self, table: &str, expected: &str, order: &str) {
        assert_eq!(self.columns(table).await, self.columns(expected).await);
        let cols = self
            .strings(&format!(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
                 WHERE attrelid = '{expected}'::regclass AND attnum > 0 AND NOT attisdropped"
            ))
            .await
            .remove(0);
        let got = self.rows(table, &cols, order).await;
        let want = self.rows(expected, &cols, order).await;
        assert_eq!(got.len(), want.len(), "row counts differ");
        assert!(got == want, "rows differ");
        assert_eq!(self.leftovers().await, Vec::<String>::new());
    }

    pub async fn drop_db(self) {
        drop(self.client);
        let admin = connect(&self.server).await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// What a statement did on the server: the strongest lock it held on the table, whether
/// it rewrote the table (new filenode) and whether it read it whole.
pub struct Observed {
    pub lock: Option<PgLock>,
    pub rewrite: bool,
    pub scan: bool,
}

/// Heap blocks read so far (flushed statistics): some scans (VALIDATE) do not count as a
/// sequential scan, but every scan reads the table's blocks.
async fn heap_blocks(b: &tokio_postgres::Client, t: &str) -> Result<i64, String> {
    let r = b
        .query_one(
            &format!("SELECT (COALESCE(heap_blks_read, 0) + COALESCE(heap_blks_hit, 0))::int8 FROM pg_statio_user_tables WHERE relid = '{t}'::regclass"),
            &[],
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(r.get(0))
}

/// Run `stmt` in a transaction that is rolled back and observe what it did to `t`
/// (the table name as SQL, may be schema-qualified): a second session reads the locks the
/// first holds (`pg_locks`), the first compares `pg_relation_filenode` before and after and
/// its own `pg_stat_xact_user_tables.seq_scan`.
pub async fn observe(db: &TestDb, t: &str, stmt: &str) -> Result<Observed, String> {
    let a = db.conn().await;
    let b = db.conn().await;
    let err = |e: tokio_postgres::Error| format!("{e:?}");
    db.client
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    a.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    let blocks = heap_blocks(&b, t).await?;
    a.batch_execute("BEGIN").await.map_err(err)?;
    let r = a
        .query_one(
            &format!(
                "SELECT '{t}'::regclass::oid, pg_relation_filenode('{t}')::int8, \
                 COALESCE((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = '{t}'::regclass), 0)::int8, pg_backend_pid()"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    let (oid, fnode, scans, pid): (u32, i64, i64, i32) = (r.get(0), r.get(1), r.get(2), r.get(3));
    a.batch_execute(stmt).await.map_err(err)?;
    let modes = b
        .query(
            "SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2 AND granted",
            &[&pid, &oid],
        )
        .await
        .map_err(err)?;
    let lock = modes
        .iter()
        .filter_map(|r| PgLock::from_pg_locks(r.get(0)))
        .max();
    let r = a
        .query_one(
            "SELECT pg_relation_filenode($1::oid)::int8, COALESCE((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = $1::oid), 0)::int8",
            &[&oid],
        )
        .await
        .map_err(err)?;
    let (fnode2, scans2): (i64, i64) = (r.get(0), r.get(1));
    a.batch_execute("ROLLBACK").await.map_err(err)?;
    a.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    a.batch_execute("SELECT 1").await.map_err(err)?;
    let blocks2 = heap_blocks(&b, t).await?;
    Ok(Observed {
        lock,
        rewrite: fnode2 != fnode,
        scan: scans2 > scans || blocks2 > blocks,
    })
}
