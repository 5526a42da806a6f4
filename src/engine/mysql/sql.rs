//! The MySQL/MariaDB statement builder: every SQL text the MySQL engine sends is built
//! here, identifiers are quoted by [`quote`], values go through bind parameters.

use super::rowimage::KeyDecode;
use crate::engine::{Key, KeyPart};
use crate::schema::{Column, ColumnMapping};
use mysql_async::Value;

/// Quote an identifier with backticks.
pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `db`.`table`
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote(db), quote(table))
}

/// Every server status counter (`Variable_name`, `Value`), for `--max-load` /
/// `--critical-load` (see `load.rs`).
pub const GLOBAL_STATUS: &str = "SHOW GLOBAL STATUS";

/// How a key column is decoded from the binlog, selected for chunk bounds, and bound
/// back into a statement. One table of types, so the three never disagree.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    pub name: String,
    pub decode: KeyDecode,
    /// SQL type for casts (`DECIMAL(12,2)`), or the charset/collation for strings.
    cast: String,
    collation: Option<String>,
}

impl KeyColumn {
    /// `None` when the column's type cannot be a migration key.
    pub fn for_column(c: &Column) -> Option<KeyColumn> {
        let t = c.data_type.as_str();
        let (decode, cast) = match t {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                if c.unsigned {
                    (KeyDecode::Unsigned, String::new())
                } else {
                    (KeyDecode::Signed, String::new())
                }
            }
            "decimal" | "numeric" => (
                KeyDecode::Decimal,
                format!(
                    "DECIMAL({},{})",
                    c.precision.unwrap_or(10),
                    c.scale.unwrap_or(0)
                ),
            ),
            "char" | "varchar" => (KeyDecode::Text, c.charset.clone()?),
            "binary" => (
                KeyDecode::Binary(c.length.unwrap_or(0) as usize),
                String::new(),
            ),
            "varbinary" => (KeyDecode::VarBinary, String::new()),
            "date" => (KeyDecode::Date, String::new()),
            "datetime" => (KeyDecode::DateTime, String::new()),
            "timestamp" => (KeyDecode::Timestamp, String::new()),
            "year" => (KeyDecode::Year, String::new()),
            "enum" => (KeyDecode::Enum, String::new()),
            _ => return None,
        };
        Some(KeyColumn {
            name: c.name.clone(),
            decode,
            cast,
            collation: c.collation.clone(),
        })
    }

    /// Expression selecting this column in the form the binlog decoder produces.
    pub fn select_expr(&self, alias: &str) -> String {
        let col = format!("{alias}.{}", quote(&self.name));
        match self.decode {
            KeyDecode::Signed | KeyDecode::Unsigned => col,
            KeyDecode::Decimal | KeyDecode::Date => format!("CAST({col} AS CHAR)"),
            KeyDecode::Text | KeyDecode::Binary(_) | KeyDecode::VarBinary => format!("HEX({col})"),
            KeyDecode::DateTime => format!("DATE_FORMAT({col}, '%Y-%m-%d %H:%i:%s.%f')"),
            KeyDecode::Timestamp => {
                format!("CAST(CAST(UNIX_TIMESTAMP({col}) AS DECIMAL(20,6)) AS CHAR)")
            }
            KeyDecode::Year | KeyDecode::Enum => format!("({col} + 0)"),
        }
    }

    /// Turn a selected value (from [`select_expr`]) into a key part.
    pub fn from_selected(&self, v: Value) -> Option<KeyPart> {
        match (self.decode, v) {
            (_, Value::NULL) => None,
            (KeyDecode::Text | KeyDecode::Binary(_) | KeyDecode::VarBinary, Value::Bytes(b)) => {
                hex::decode(b).ok().map(KeyPart::Bytes)
            }
            (KeyDecode::Signed | KeyDecode::Year, Value::Int(i)) => Some(KeyPart::Int(i)),
            (KeyDecode::Signed | KeyDecode::Year, Value::UInt(u)) => Some(KeyPart::Int(u as i64)),
            (KeyDecode::Unsigned | KeyDecode::Enum, Value::UInt(u)) => Some(KeyPart::UInt(u)),
            (KeyDecode::Unsigned | KeyDecode::Enum, Value::Int(i)) => Some(KeyPart::UInt(i as u64)),
            (KeyDecode::Signed | KeyDecode::Year, Value::Bytes(b)) => {
                std::str::from_utf8(&b).ok()?.parse().ok().map(KeyPart::Int)
            }
            (KeyDecode::Unsigned | KeyDecode::Enum, Value::Bytes(b)) => std::str::from_utf8(&b)
                .ok()?
                .parse()
                .ok()
                .map(KeyPart::UInt),
            (_, Value::Bytes(b)) => String::from_utf8(b).ok().map(KeyPart::Text),
            _ => None,
        }
    }

    /// A placeholder expression that turns a bound key part into this column's type.
    pub fn bind_expr(&self) -> String {
        match self.decode {
            KeyDecode::Signed | KeyDecode::Unsigned | KeyDecode::Year | KeyDecode::Enum => {
                "?".into()
            }
            KeyDecode::Decimal => format!("CAST(? AS {})", self.cast),
            KeyDecode::Text => match &self.collation {
                Some(coll) => format!("CONVERT(UNHEX(?) USING {}) COLLATE {}", self.cast, coll),
                None => format!("CONVERT(UNHEX(?) USING {})", self.cast),
            },
            KeyDecode::Binary(_) | KeyDecode::VarBinary => "UNHEX(?)".into(),
            KeyDecode::Date => "CAST(? AS DATE)".into(),
            KeyDecode::DateTime => "CAST(? AS DATETIME(6))".into(),
            KeyDecode::Timestamp => "FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))".into(),
        }
    }

    /// The value bound for [`bind_expr`].
    pub fn bind_value(&self, part: &KeyPart) -> Value {
        match part {
            KeyPart::Int(i) => Value::Int(*i),
            KeyPart::UInt(u) => Value::UInt(*u),
            KeyPart::Bytes(b) => Value::Bytes(hex::encode(b).into_bytes()),
            KeyPart::Text(t) => Value::Bytes(t.clone().into_bytes()),
        }
    }
}

/// How this server spells a shared-lock read, and whether such a read can refuse to wait
/// (`NOWAIT`, `SKIP LOCKED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShareLock {
    /// `LOCK IN SHARE MODE`, which always waits (MariaDB < 10.6, MySQL < 8.0).
    #[default]
    WaitOnly,
    /// `LOCK IN SHARE MODE [NOWAIT | SKIP LOCKED]` (MariaDB ≥ 10.6).
    MariaDb,
    /// `FOR SHARE [NOWAIT | SKIP LOCKED]` (MySQL ≥ 8.0.1).
    Mysql8,
}

impl ShareLock {
    pub fn for_server(mariadb: bool, version: (u32, u32, u32)) -> ShareLock {
        match (mariadb, version) {
            (true, v) if v >= (10, 6, 0) => ShareLock::MariaDb,
            (false, v) if v >= (8, 0, 1) => ShareLock::Mysql8,
            _ => ShareLock::WaitOnly,
        }
    }

    /// True when a locking read can refuse to wait for a row the application holds.
    pub fn can_refuse(self) -> bool {
        self != ShareLock::WaitOnly
    }

    fn clause(self, read: ReadLock) -> &'static str {
        match (self, read) {
            (_, ReadLock::Plain) => "",
            (_, ReadLock::Wait) | (ShareLock::WaitOnly, _) => " LOCK IN SHARE MODE",
            (ShareLock::Mysql8, ReadLock::NoWait) => " FOR SHARE NOWAIT",
            (ShareLock::Mysql8, ReadLock::SkipLocked) => " FOR SHARE SKIP LOCKED",
            (_, ReadLock::NoWait) => " LOCK IN SHARE MODE NOWAIT",
            (_, ReadLock::SkipLocked) => " LOCK IN SHARE MODE SKIP LOCKED",
        }
    }
}

/// How a replay reads the original's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLock {
    /// A consistent read (under the cut-over lock, where no writer is left).
    Plain,
    /// A shared lock, waiting for the application's writer to commit.
    Wait,
    /// A shared lock, failing at once when the application holds one of the rows.
    NoWait,
    /// A shared lock on the rows that are free; the others are left out.
    SkipLocked,
}

/// Statements for one migration: original, shadow, mapping, key.
#[derive(Debug, Clone)]
pub struct Builder {
    pub orig: String,
    pub shadow: String,
    /// Key columns in the original (for reading), in key order.
    pub key: Vec<KeyColumn>,
    /// The same key columns under their shadow names.
    pub target_key: Vec<String>,
    pub source_index: String,
    insert_cols: String,
    select_cols: String,
    /// The server's spelling of shared-lock reads.
    pub share_lock: ShareLock,
}

impl Builder {
    pub fn new(
        db: &str,
        orig: &str,
        shadow: &str,
        mapping: &ColumnMapping,
        key: Vec<KeyColumn>,
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
            .map(|m| format!("o.{}", quote(&m.source)))
            .collect::<Vec<_>>()
            .join(", ");
        Builder {
            orig: qualified(db, orig),
            shadow: qualified(db, shadow),
            key,
            target_key: mapping.key.target_columns.clone(),
            source_index: mapping.key.source_name.clone(),
            insert_cols,
            select_cols,
            share_lock: ShareLock::WaitOnly,
        }
    }

    pub fn with_share_lock(mut self, share_lock: ShareLock) -> Builder {
        self.share_lock = share_lock;
        self
    }

    /// Columns the original does not fill, written with a value of their own (an SQL
    /// literal) instead of being left out of the INSERT.
    pub fn with_fills(mut self, fills: &[(String, String)]) -> Builder {
        for (col, value) in fills {
            self.insert_cols.push_str(&format!(", {}", quote(col)));
            self.select_cols.push_str(&format!(", {value}"));
        }
        self
    }

    fn key_list(&self, alias: &str) -> String {
        self.key
            .iter()
            .map(|k| format!("{alias}.{}", quote(&k.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(a > x) OR (a = x AND b > y)` for a composite key; `op` is `>` or `>=`.
    fn compare(&self, alias: &str, op: &str, params: &mut Vec<Value>, key: &Key) -> String {
        let names: Vec<&str> = self.key.iter().map(|k| k.name.as_str()).collect();
        self.compare_named(alias, &names, op, params, key)
    }

    /// [`Builder::compare`] on columns `names` (the key under other names, e.g. the
    /// shadow's), values bound as the original's key columns.
    fn compare_named(
        &self,
        alias: &str,
        names: &[&str],
        op: &str,
        params: &mut Vec<Value>,
        key: &Key,
    ) -> String {
        let strict = op.trim_end_matches('=');
        let mut ors = Vec::new();
        for i in 0..self.key.len() {
            let mut ands = Vec::new();
            for ((kc, name), part) in self.key.iter().zip(names).zip(key).take(i) {
                ands.push(format!("{alias}.{} = {}", quote(name), kc.bind_expr()));
                params.push(kc.bind_value(part));
            }
            let last_op = if i == self.key.len() - 1 { op } else { strict };
            ands.push(format!(
                "{alias}.{} {last_op} {}",
                quote(names[i]),
                self.key[i].bind_expr()
            ));
            params.push(self.key[i].bind_value(&key[i]));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        format!("({})", ors.join(" OR "))
    }

    /// `WHERE` for keys in (`after`, `upto`] on columns `names` ("" when unbounded).
    pub fn range_filter(
        &self,
        alias: &str,
        names: &[&str],
        after: Option<&Key>,
        upto: Option<&Key>,
        params: &mut Vec<Value>,
    ) -> String {
        let mut conds = Vec::new();
        if let Some(k) = after {
            conds.push(self.compare_named(alias, names, ">", params, k));
        }
        if let Some(k) = upto {
            conds.push(format!(
                "NOT {}",
                self.compare_named(alias, names, ">", params, k)
            ));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }

    /// Select the key columns `names` of `table` (aliased `alias`) the way chunk bounds
    /// are selected, so that they read back as keys.
    pub fn key_select_named(&self, alias: &str, names: &[&str]) -> String {
        self.key
            .iter()
            .zip(names)
            .map(|(k, n)| {
                let mut kc = k.clone();
                kc.name = n.to_string();
                kc.select_expr(alias)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn order_by(&self, alias: &str) -> String {
        self.key_list(alias)
    }

    fn force_index(&self) -> String {
        format!("FORCE INDEX ({})", quote(&self.source_index))
    }

    fn key_select(&self, alias: &str) -> String {
        self.key
            .iter()
            .map(|k| k.select_expr(alias))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key of the row `offset` rows past `after` (or from the start).
    pub fn chunk_end(&self, after: Option<&Key>, offset: u64) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let filter = match after {
            Some(k) => format!("WHERE {}", self.compare("o", ">", &mut params, k)),
            None => String::new(),
        };
        (
            format!(
                "SELECT {} FROM {} o {} {filter} ORDER BY {} LIMIT 1 OFFSET {offset}",
                self.key_select("o"),
                self.orig,
                self.force_index(),
                self.order_by("o")
            ),
            params,
        )
    }

    /// Copy the rows with key in (`after`, `upto`] (open-ended when `upto` is None).
    pub fn copy_chunk(&self, after: Option<&Key>, upto: Option<&Key>) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut conds = Vec::new();
        if let Some(k) = after {
            conds.push(self.compare("o", ">", &mut params, k));
        }
        if let Some(k) = upto {
            // key <= upto  ⇔  NOT (key > upto)
            conds.push(format!("NOT {}", self.compare("o", ">", &mut params, k)));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        (
            format!(
                "INSERT IGNORE INTO {} ({}) SELECT {} FROM {} o {} {filter}",
                self.shadow,
                self.insert_cols,
                self.select_cols,
                self.orig,
                self.force_index()
            ),
            params,
        )
    }

    fn key_in(
        &self,
        alias: &str,
        names: &[String],
        exprs: &[String],
        keys: &[Key],
        params: &mut Vec<Value>,
    ) -> String {
        if names.len() == 1 {
            let list: Vec<&str> = keys.iter().map(|_| exprs[0].as_str()).collect();
            for k in keys {
                params.push(self.key[0].bind_value(&k[0]));
            }
            return format!("{alias}.{} IN ({})", quote(&names[0]), list.join(", "));
        }
        let mut ors = Vec::new();
        for k in keys {
            let ands: Vec<String> = names
                .iter()
                .zip(exprs)
                .map(|(n, e)| format!("{alias}.{} = {e}", quote(n)))
                .collect();
            for (i, part) in k.iter().enumerate() {
                params.push(self.key[i].bind_value(part));
            }
            ors.push(format!("({})", ands.join(" AND ")));
        }
        format!("({})", ors.join(" OR "))
    }

    /// Remove `keys` from the shadow (first half of a flush).
    pub fn flush_delete(&self, keys: &[Key]) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let exprs: Vec<String> = self.key.iter().map(KeyColumn::bind_expr).collect();
        let cond = self.key_in("s", &self.target_key, &exprs, keys, &mut params);
        (
            format!("DELETE s FROM {} s WHERE {cond}", self.shadow),
            params,
        )
    }

    /// Re-insert `keys` from the original (second half of a flush). A locking read waits
    /// for (or with `NoWait` refuses) writers whose binlog events are out but whose commit
    /// is not yet visible.
    pub fn flush_insert(&self, keys: &[Key], read: ReadLock) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let exprs: Vec<String> = self.key.iter().map(KeyColumn::bind_expr).collect();
        let names: Vec<String> = self.key.iter().map(|k| k.name.clone()).collect();
        let cond = self.key_in("o", &names, &exprs, keys, &mut params);
        (
            format!(
                "INSERT INTO {} ({}) SELECT {} FROM {} o WHERE {cond}{}",
                self.shadow,
                self.insert_cols,
                self.select_cols,
                self.orig,
                self.share_lock.clause(read)
            ),
            params,
        )
    }

    /// Lock the rows of `keys` that nobody else holds (`SKIP LOCKED`) and return, for each
    /// row locked, the position of its key in `keys`. A key left out has no row, or a row
    /// the application holds. The positions come from the same comparisons as the WHERE,
    /// so a key matches exactly as the replay's own read would match it.
    pub fn lock_free_rows(&self, keys: &[Key]) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let exprs: Vec<String> = self.key.iter().map(KeyColumn::bind_expr).collect();
        let mut whens = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let ands: Vec<String> = self
                .key
                .iter()
                .zip(&exprs)
                .map(|(c, e)| format!("o.{} = {e}", quote(&c.name)))
                .collect();
            for (c, part) in self.key.iter().zip(k) {
                params.push(c.bind_value(part));
            }
            whens.push(format!("WHEN {} THEN {i}", ands.join(" AND ")));
        }
        let names: Vec<String> = self.key.iter().map(|k| k.name.clone()).collect();
        let cond = self.key_in("o", &names, &exprs, keys, &mut params);
        (
            format!(
                "SELECT CASE {} END FROM {} o WHERE {cond}{}",
                whens.join(" "),
                self.orig,
                self.share_lock.clause(ReadLock::SkipLocked)
            ),
            params,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{MappedColumn, SharedKey};

    fn kc(name: &str) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            decode: KeyDecode::Signed,
            cast: String::new(),
            collation: None,
        }
    }

    fn builder(keys: &[&str]) -> Builder {
        let mapping = ColumnMapping {
            columns: vec![
                MappedColumn {
                    source: "id".into(),
                    target: "id".into(),
                },
                MappedColumn {
                    source: "a`b".into(),
                    target: "c".into(),
                },
            ],
            dropped: vec![],
            added: vec![],
            key: SharedKey {
                source_name: "PRIMARY".into(),
                target_name: "PRIMARY".into(),
                source_columns: keys.iter().map(|s| s.to_string()).collect(),
                target_columns: keys.iter().map(|s| s.to_string()).collect(),
            },
        };
        Builder::new(
            "db",
            "t",
            "_godwit_new_t",
            &mapping,
            keys.iter().map(|k| kc(k)).collect(),
        )
    }

    #[test]
    fn quoting_doubles_backticks() {
        assert_eq!(quote("a`b"), "`a``b`");
    }

    #[test]
    fn copy_chunk_maps_columns_and_bounds() {
        let b = builder(&["id"]);
        let (sql, p) = b.copy_chunk(Some(&vec![KeyPart::Int(10)]), Some(&vec![KeyPart::Int(20)]));
        assert_eq!(
            sql,
            "INSERT IGNORE INTO `db`.`_godwit_new_t` (`id`, `c`) SELECT o.`id`, o.`a``b` FROM `db`.`t` o FORCE INDEX (`PRIMARY`) WHERE ((o.`id` > ?)) AND NOT ((o.`id` > ?))"
        );
        assert_eq!(p, vec![Value::Int(10), Value::Int(20)]);
    }

    #[test]
    fn composite_key_comparison_expands() {
        let b = builder(&["a", "b"]);
        let (sql, p) = b.chunk_end(Some(&vec![KeyPart::Int(1), KeyPart::Int(2)]), 99);
        assert!(
            sql.contains("WHERE ((o.`a` > ?) OR (o.`a` = ? AND o.`b` > ?))"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY o.`a`, o.`b` LIMIT 1 OFFSET 99"),
            "{sql}"
        );
        assert_eq!(p, vec![Value::Int(1), Value::Int(1), Value::Int(2)]);
    }

    #[test]
    fn flush_statements_use_key_lists() {
        let b = builder(&["id"]);
        let keys = vec![vec![KeyPart::Int(1)], vec![KeyPart::Int(2)]];
        let (d, p) = b.flush_delete(&keys);
        assert_eq!(
            d,
            "DELETE s FROM `db`.`_godwit_new_t` s WHERE s.`id` IN (?, ?)"
        );
        assert_eq!(p.len(), 2);
        let (i, _) = b.flush_insert(&keys, ReadLock::Wait);
        assert!(
            i.ends_with("WHERE o.`id` IN (?, ?) LOCK IN SHARE MODE"),
            "{i}"
        );
        let (i, _) = b.flush_insert(&keys, ReadLock::Plain);
        assert!(i.ends_with("WHERE o.`id` IN (?, ?)"), "{i}");
    }

    #[test]
    fn share_locks_are_spelled_per_server() {
        let keys = vec![vec![KeyPart::Int(1)]];
        let spelled = |s: ShareLock, r: ReadLock| {
            let b = builder(&["id"]).with_share_lock(s);
            b.flush_insert(&keys, r).0
        };
        assert!(
            spelled(ShareLock::MariaDb, ReadLock::NoWait).ends_with(" LOCK IN SHARE MODE NOWAIT")
        );
        assert!(spelled(ShareLock::Mysql8, ReadLock::NoWait).ends_with(" FOR SHARE NOWAIT"));
        // A server that cannot refuse waits.
        assert!(spelled(ShareLock::WaitOnly, ReadLock::NoWait).ends_with(" LOCK IN SHARE MODE"));
        assert_eq!(ShareLock::for_server(true, (10, 11, 6)), ShareLock::MariaDb);
        assert_eq!(
            ShareLock::for_server(true, (10, 5, 20)),
            ShareLock::WaitOnly
        );
        assert_eq!(ShareLock::for_server(false, (8, 0, 36)), ShareLock::Mysql8);
        assert_eq!(
            ShareLock::for_server(false, (5, 7, 44)),
            ShareLock::WaitOnly
        );
    }

    #[test]
    fn free_rows_are_named_by_their_position() {
        let b = builder(&["a", "b"]).with_share_lock(ShareLock::MariaDb);
        let keys = vec![
            vec![KeyPart::Int(1), KeyPart::Int(2)],
            vec![KeyPart::Int(3), KeyPart::Int(4)],
        ];
        let (sql, p) = b.lock_free_rows(&keys);
        assert_eq!(
            sql,
            "SELECT CASE WHEN o.`a` = ? AND o.`b` = ? THEN 0 WHEN o.`a` = ? AND o.`b` = ? THEN 1 END \
             FROM `db`.`t` o WHERE ((o.`a` = ? AND o.`b` = ?) OR (o.`a` = ? AND o.`b` = ?)) \
             LOCK IN SHARE MODE SKIP LOCKED"
        );
        assert_eq!(p.len(), 8);
        assert_eq!(p[2], Value::Int(3));
    }

    #[test]
    fn string_keys_bind_as_hex_in_their_charset() {
        let c = Column {
            name: "code".into(),
            ordinal: 1,
            data_type: "varchar".into(),
            column_type: "varchar(10)".into(),
            nullable: false,
            generated: false,
            unsigned: false,
            charset: Some("latin1".into()),
            collation: Some("latin1_swedish_ci".into()),
            precision: None,
            scale: None,
            length: Some(10),
            ..Default::default()
        };
        let k = KeyColumn::for_column(&c).unwrap();
        assert_eq!(
            k.bind_expr(),
            "CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci"
        );
        assert_eq!(
            k.bind_value(&KeyPart::Bytes(vec![0xe9])),
            Value::Bytes(b"e9".to_vec())
        );
        assert_eq!(
            k.from_selected(Value::Bytes(b"E9".to_vec())),
            Some(KeyPart::Bytes(vec![0xe9]))
        );
    }
}
