//! A value a phase trigger derives (`add_column`'s `up`, `set_not_null`'s `up`,
//! `drop_column`'s `down`, `add_check`'s `up`) follows the row when an application
//! updates the columns it is computed from after the backfill — on MariaDB and
//! PostgreSQL.
//!
//! For each operation: expand and backfill; then an old application (the old shape) and a
//! new application (the new shape) each update the source columns of hundreds of rows of
//! their own (even / odd keys) concurrently, and insert a few; every row is then checked
//! against a mirror of the writes whose derived values are computed here, independently
//! of the server. A value an application wrote itself is kept: the new application's
//! `add_column` values, explicit values under `set_not_null` / `drop_column`. Contract
//! then leaves the same rows, and nothing of godwit's but its state table.

mod support;

use std::collections::BTreeMap;
use support::both::{Conn, Db, Engine};
use support::phases::{phase, write_migration};

/// Rows at start, ids 1..=ROWS.
const ROWS: i64 = 3000;
/// Writes (one statement each, autocommit) per application.
const WRITES: i64 = 300;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    /// `total` = `a + COALESCE(b, 0)`.
    AddColumn,
    /// `b` NOT NULL, NULL becomes `a * 2`.
    SetNotNull,
    /// `legacy` goes; rows written without it get `a * 3`.
    DropColumn,
    /// CHECK (`b >= a`); a violating `b` becomes `a`.
    AddCheck,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum App {
    Old,
    New,
}

/// The operation's target column in a row of the mirror.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    /// Computed from the row (`up` / `down`): the mirror computes it at the end.
    Derived,
    /// Written by an application.
    Written(Option<i64>),
}

/// A row as the applications wrote it.
#[derive(Clone, Debug)]
struct Row {
    a: i64,
    b: Option<i64>,
    target: Target,
}

fn a_init(id: i64) -> i64 {
    id + 1
}

/// Never `2a` nor `3a` (a ≥ 2), some NULL, some below `a` (violating `b >= a`).
fn b_init(id: i64) -> Option<i64> {
    let a = a_init(id);
    if id % 5 == 0 {
        None
    } else if id % 7 == 0 {
        Some(a - 1)
    } else {
        Some(a + 1)
    }
}

/// `legacy` at start: `3a` (a value `down` would give) on every fourth row.
fn legacy_init(id: i64) -> i64 {
    let a = a_init(id);
    if id % 4 == 0 {
        3 * a
    } else {
        a + 5
    }
}

impl Op {
    fn file(self) -> &'static str {
        match self {
            Op::AddColumn => {
                r#"name = "total"
[[operations]]
type = "add_column"
table = "items"
column = { name = "total", type = "INT" }
up = "a + COALESCE(b, 0)"
"#
            }
            Op::SetNotNull => {
                r#"name = "b required"
[[operations]]
type = "set_not_null"
table = "items"
column = "b"
up = "a * 2"
"#
            }
            Op::DropColumn => {
                r#"name = "legacy goes"
[[operations]]
type = "drop_column"
table = "items"
column = "legacy"
down = "a * 3"
"#
            }
            Op::AddCheck => {
                r#"name = "b at least a"
[[operations]]
type = "add_check"
table = "items"
name = "chk_b"
check = "b >= a"
column = "b"
up = "a"
"#
            }
        }
    }

    /// The operation's column, while expanded.
    fn target(self) -> &'static str {
        match self {
            Op::AddColumn => "total",
            Op::SetNotNull | Op::AddCheck => "b",
            Op::DropColumn => "legacy",
        }
    }

    /// The row after expand and backfill.
    fn initial(self, id: i64) -> Row {
        let (a, b) = (a_init(id), b_init(id));
        let target = match self {
            Op::AddColumn => Target::Derived,
            Op::SetNotNull => match b {
                None => Target::Derived,
                b => Target::Written(b),
            },
            Op::DropColumn if id % 4 == 0 => Target::Derived,
            Op::DropColumn => Target::Written(Some(legacy_init(id))),
            Op::AddCheck => Target::Written(b),
        };
        let mut r = Row { a, b, target };
        self.check(&mut r);
        r
    }

    /// `add_check`: a violating `b` becomes `a` (NULL passes).
    fn check(self, r: &mut Row) {
        if self == Op::AddCheck {
            if let Target::Written(Some(b)) = r.target {
                if b < r.a {
                    r.target = Target::Written(Some(r.a));
                }
            }
            r.b = match r.target {
                Target::Written(b) => b,
                Target::Derived => r.b,
            };
        }
    }

    /// The target's value the server must hold.
    fn value(self, r: &Row) -> Option<i64> {
        match &r.target {
            Target::Written(v) => *v,
            Target::Derived => Some(match self {
                Op::AddColumn => r.a + r.b.unwrap_or(0),
                Op::SetNotNull => 2 * r.a,
                Op::DropColumn => 3 * r.a,
                Op::AddCheck => unreachable!(),
            }),
        }
    }
}

/// One write: `SET` assignments (column, value) of row `id`, or an insert.
struct Write {
    id: i64,
    insert: bool,
    set: Vec<(&'static str, Option<i64>)>,
}

/// Write `k` of an application, on one of its rows (old: even keys, new: odd ones; every
/// tenth write inserts a row instead). Values are unique per write and never equal what
/// `up` / `down` would give a row: `a` from 10,000 up, explicit values odd (never `2a`)
/// or 1 modulo 3 (never `3a`).
fn plan(op: Op, app: App, k: i64) -> Write {
    let parity = if app == App::Old { 0 } else { 1 };
    let v = 10_000 + k * 10 + parity;
    let w = 9_000_001 + 6 * k + 2 * parity; // odd, and 1 modulo 3
    if k % 10 == 9 {
        let id = if app == App::Old { 100_000 } else { 200_000 } + k;
        let mut set = vec![("a", Some(v)), ("b", Some(v + 1))];
        match (op, app) {
            (Op::AddColumn, App::New) => set.push(("total", Some(w))),
            (Op::SetNotNull, App::Old) => set[1].1 = None,
            (Op::DropColumn, App::Old) => set.push(("legacy", Some(w))),
            _ => {}
        }
        return Write {
            id,
            insert: true,
            set,
        };
    }
    let id = 2 * ((k * 37) % (ROWS / 2)) + if app == App::Old { 2 } else { 1 };
    let set = match (op, app) {
        (Op::AddColumn, App::Old) => match k % 3 {
            0 => vec![("a", Some(v))],
            1 => vec![("b", (k % 2 == 0).then_some(v))],
            _ => vec![("a", Some(v)), ("b", Some(v + 1))],
        },
        // The new application sets the column itself, or changes a source only, or
        // neither.
        (Op::AddColumn, App::New) => match k % 4 {
            0 => vec![("a", Some(v)), ("total", Some(w))],
            1 => vec![("b", Some(v))],
            2 => vec![("total", Some(w))],
            _ => vec![("name", None)],
        },
        (Op::SetNotNull, App::Old) => match k % 3 {
            0 => vec![("a", Some(v))],
            1 => vec![("b", None)],
            _ => vec![("a", Some(v)), ("b", Some(w))],
        },
        (Op::SetNotNull, App::New) => match k % 3 {
            0 => vec![("a", Some(v))],
            1 => vec![("b", Some(w))],
            _ => vec![("a", Some(v)), ("b", Some(w))],
        },
        (Op::DropColumn, App::Old) => match k % 3 {
            0 => vec![("a", Some(v))],
            1 => vec![("legacy", Some(w))],
            _ => vec![("a", Some(v)), ("legacy", Some(w))],
        },
        (Op::DropColumn, App::New) => match k % 2 {
            0 => vec![("a", Some(v))],
            _ => vec![("name", None)],
        },
        (Op::AddCheck, _) => match k % 3 {
            0 => vec![("a", Some(v))],
            1 => vec![("b", Some(v - 5))],
            _ => vec![("a", Some(v)), ("b", Some(v - 1))],
        },
    };
    Write {
        id,
        insert: false,
        set,
    }
}

impl Write {
    fn sql(&self, k: i64) -> String {
        let lit = |c: &str, v: &Option<i64>| match (c, v) {
            ("name", _) => format!("'w{k}'"),
            (_, Some(v)) => v.to_string(),
            (_, None) => "NULL".into(),
        };
        if self.insert {
            let mut cols = vec!["id", "name"];
            let mut vals = vec![self.id.to_string(), format!("'w{k}'")];
            for (c, v) in &self.set {
                cols.push(c);
                vals.push(lit(c, v));
            }
            format!(
                "INSERT INTO items ({}) VALUES ({})",
                cols.join(", "),
                vals.join(", ")
            )
        } else {
            let set: Vec<String> = self
                .set
                .iter()
                .map(|(c, v)| format!("{c} = {}", lit(c, v)))
                .collect();
            format!("UPDATE items SET {} WHERE id = {}", set.join(", "), self.id)
        }
    }

    /// The row after this write, as the operation's rules say.
    fn apply(&self, op: Op, before: Option<Row>) -> Row {
        let mut r = before.unwrap_or(Row {
            a: 0,
            b: None,
            target: Target::Derived,
        });
        let (old_a, old_b) = (r.a, r.b);
        let mut wrote_target = None;
        for (c, v) in &self.set {
            match *c {
                "a" => r.a = v.unwrap(),
                "b" => r.b = *v,
                "name" => {}
                _ => wrote_target = Some(*v),
            }
        }
        let target = op.target();
        if target == "b" {
            wrote_target = self.set.iter().find(|(c, _)| *c == "b").map(|(_, v)| *v);
        }
        let source_changed = r.a != old_a || (op == Op::AddColumn && r.b != old_b);
        r.target = match (op, wrote_target) {
            // A NULL written into a column that becomes NOT NULL is "no value".
            (Op::SetNotNull, Some(None)) => Target::Derived,
            (_, Some(v)) => Target::Written(v),
            (Op::AddColumn, None) if self.insert => Target::Derived,
            (Op::DropColumn, None) if self.insert => Target::Derived,
            // add_column: the old application's source change recomputes the column,
            // whatever the new application wrote before.
            (Op::AddColumn, None) if source_changed => Target::Derived,
            (_, None) => r.target.clone(),
        };
        op.check(&mut r);
        r
    }
}

// ---------------------------------------------------------------------------------------
// The table on both engines.

/// A database of its own with `items` (ROWS rows, and `legacy` for `drop_column`).
async fn setup(engine: Engine, op: Op) -> Db {
    let prefix = format!("pu{}_{}", op as u8, engine.pick("m", "p"));
    let db = Db::empty(engine, &prefix).await;
    let legacy = op == Op::DropColumn;
    let (create, fill) = match engine {
        Engine::Maria => (
            format!(
                "CREATE TABLE items (id INT NOT NULL PRIMARY KEY, a INT NOT NULL, b INT NULL, \
                 name VARCHAR(40) NOT NULL{})",
                if legacy { ", legacy INT NOT NULL" } else { "" }
            ),
            format!(
                "INSERT INTO items (id, a, b, name{}) SELECT seq, seq + 1, \
                 CASE WHEN seq % 5 = 0 THEN NULL WHEN seq % 7 = 0 THEN seq ELSE seq + 2 END, \
                 CONCAT('n', seq){} FROM seq_1_to_{ROWS}",
                if legacy { ", legacy" } else { "" },
                if legacy {
                    ", IF(seq % 4 = 0, 3 * (seq + 1), seq + 6)"
                } else {
                    ""
                }
            ),
        ),
        Engine::Postgres => (
            format!(
                "CREATE TABLE items (id int PRIMARY KEY, a int NOT NULL, b int, \
                 name varchar(40) NOT NULL{})",
                if legacy { ", legacy int NOT NULL" } else { "" }
            ),
            format!(
                "INSERT INTO items (id, a, b, name{}) SELECT i, i + 1, \
                 CASE WHEN i % 5 = 0 THEN NULL WHEN i % 7 = 0 THEN i ELSE i + 2 END, \
                 'n' || i{} FROM generate_series(1, {ROWS}) i",
                if legacy { ", legacy" } else { "" },
                if legacy {
                    ", CASE WHEN i % 4 = 0 THEN 3 * (i + 1) ELSE i + 6 END"
                } else {
                    ""
                }
            ),
        ),
    };
    db.exec(&create).await;
    db.exec(&fill).await;
    db
}

/// `(id, a, target)` of every row.
async fn rows(c: &mut Conn, target: &str) -> Vec<(i64, i64, Option<i64>)> {
    let sql = format!("SELECT id, a, {target} FROM items ORDER BY id");
    let num = |v: &Option<String>| v.as_deref().map(|s| s.parse::<i64>().unwrap());
    c.texts(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| (num(&r[0]).unwrap(), num(&r[1]).unwrap(), num(&r[2])))
        .collect()
}

/// One application's writes; returns the rows it wrote, as the mirror computes them.
async fn app(mut c: Conn, op: Op, me: App) -> Result<BTreeMap<i64, Row>, String> {
    let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
    for k in 0..WRITES {
        let w = plan(op, me, k);
        if let Err(e) = c.batch(&w.sql(k)).await {
            c.close().await;
            return Err(format!("{me:?} application, write {k} ({}): {e}", w.sql(k)));
        }
        let before = if w.insert {
            None
        } else {
            Some(rows.get(&w.id).cloned().unwrap_or_else(|| op.initial(w.id)))
        };
        rows.insert(w.id, w.apply(op, before));
    }
    c.close().await;
    Ok(rows)
}

/// Every row of the table against the mirror; returns what differs.
async fn compare(db: &Db, op: Op, written: &BTreeMap<i64, Row>) -> Vec<String> {
    let mut c = Conn::open(db).await;
    let got = rows(&mut c, op.target()).await;
    c.close().await;
    let mut want: BTreeMap<i64, Row> = (1..=ROWS).map(|id| (id, op.initial(id))).collect();
    want.extend(written.clone());
    let mut bad = Vec::new();
    if got.len() != want.len() {
        bad.push(format!("{} rows, {} expected", got.len(), want.len()));
    }
    for (id, a, v) in got {
        let Some(r) = want.get(&id) else {
            bad.push(format!("row {id} unexpected"));
            continue;
        };
        let expect = op.value(r);
        if (a, v) != (r.a, expect) {
            bad.push(format!(
                "row {id}: a = {a}, {} = {v:?}; expected a = {}, {} = {expect:?} ({:?})",
                op.target(),
                r.a,
                op.target(),
                r.target
            ));
        }
    }
    bad
}

async fn derived_values_follow_updates(engine: Engine, op: Op) {
    let db = setup(engine, op).await;
    let (dir, d) = write_migration(db.name(), "0001_change.toml", op.file());
    for cmd in ["expand", "backfill"] {
        phase(db.url(), cmd, &d).await.expect_ok();
    }
    // The old and the new application update rows of their own, concurrently.
    let old = tokio::spawn(app(Conn::open(&db).await, op, App::Old));
    let new = tokio::spawn(app(Conn::open(&db).await, op, App::New));
    let mut written = old.await.unwrap().unwrap();
    written.extend(new.await.unwrap().unwrap());
    let bad = compare(&db, op, &written).await;
    assert!(
        bad.is_empty(),
        "{engine:?} {op:?}: {} rows differ from the mirror, e.g.:\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    phase(db.url(), "contract", &d).await.expect_ok();
    if op != Op::DropColumn {
        let bad = compare(&db, op, &written).await;
        assert!(bad.is_empty(), "after contract: {}", bad.join("\n"));
    }
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn add_column_up_follows_updates(e: Engine) {
    derived_values_follow_updates(e, Op::AddColumn).await;
}

async fn set_not_null_up_follows_updates(e: Engine) {
    derived_values_follow_updates(e, Op::SetNotNull).await;
}

async fn drop_column_down_follows_updates(e: Engine) {
    derived_values_follow_updates(e, Op::DropColumn).await;
}

async fn add_check_up_follows_updates(e: Engine) {
    derived_values_follow_updates(e, Op::AddCheck).await;
}

support::both::cases!(
    add_column_up_follows_updates,
    set_not_null_up_follows_updates,
    drop_column_down_follows_updates,
    add_check_up_follows_updates,
);
