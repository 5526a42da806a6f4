//! change_column_type, add_check and drop_index through every phase, on MariaDB and
//! PostgreSQL: an "old application" and a "new application" connection write
//! concurrently while expanded and during the backfill, and each sees the other's
//! writes; every phase run twice is a no-op the second time; contract equals the direct
//! ALTER on a twin table (schema and every row); abort returns the original schema and
//! keeps the data; bad input is refused with nothing changed; nothing of godwit's is
//! left but its state table.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::{godwit, Run};

/// Rows in the test table; ids 1..=ROWS.
const ROWS: i64 = 3000;
/// Writes each application makes at least.
const WRITES: u64 = 300;

fn write_file(dir_name: &str, file: &str, text: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("godwit-ops1-{dir_name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
    let s = dir.to_string_lossy().to_string();
    (dir, s)
}

async fn phase(url: &str, cmd: &str, dir: &str) -> Run {
    godwit(
        &[
            cmd,
            dir,
            "--url",
            url,
            "--execute",
            "--batch-size",
            "200",
            "--max-rows-per-second",
            "6000",
        ],
        &[],
    )
    .await
}

/// Run a phase that must succeed.
async fn ok(url: &str, cmd: &str, dir: &str) {
    phase(url, cmd, dir).await.expect_ok();
}

/// Run a phase that must be refused with exit 40, naming the file and operation and
/// saying `what`.
async fn refused(url: &str, cmd: &str, dir: &str, what: &str) -> Run {
    let r = phase(url, cmd, dir).await;
    assert_eq!(
        r.code, 40,
        "{cmd} should be refused:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains("0001_") && r.stderr.contains(what),
        "the error should name the file and say `{what}`:\n{}",
        r.stderr
    );
    r
}

// ---------------------------------------------------------------------------------------
// What the two applications write, engine-neutral.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// change_column_type of price (text → decimal) and qty (int → bigint).
    Retype,
    /// add_check `qty >= 0`, violating qty replaced by ABS(qty).
    Check,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum App {
    Old,
    New,
}

/// The value of a row as the application that did not write it must see it.
#[derive(Clone, Debug, PartialEq)]
struct Want {
    price: String,
    qty: Option<i64>,
}

/// One write: the row, insert or update, the values written, and what every reader
/// must see afterwards.
struct Write {
    id: i64,
    insert: bool,
    price: String,
    qty: Option<i64>,
    want: Want,
}

fn plan_write(kind: Kind, app: App, n: u64) -> Write {
    let n = n as i64;
    // Each application owns its rows: inserts in its own id range, updates of original
    // rows of one parity.
    let (base, parity) = match app {
        App::Old => (100_000, 2),
        App::New => (200_000, 1),
    };
    let insert = n % 2 == 0;
    let id = if insert {
        base + n
    } else {
        2 * (n % (ROWS / 2 - 1)) + parity
    };
    match kind {
        Kind::Retype => {
            let price = format!("{}.{:02}", 1000 + n, n % 100);
            // NULLs only from the old application: a NULL in the new column reads as
            // "not written through the new shape" (documented), so the row gets `up`.
            let qty = (app == App::New || n % 9 != 0).then_some(n * 10);
            Write {
                id,
                insert,
                want: Want {
                    price: price.clone(),
                    qty,
                },
                price,
                qty,
            }
        }
        Kind::Check => {
            let qty = if app == App::Old && n % 3 == 0 { -n } else { n };
            Write {
                id,
                insert,
                price: "7.00".into(),
                qty: Some(qty),
                want: Want {
                    price: "7.00".into(),
                    qty: Some(qty.abs()),
                },
            }
        }
    }
}

/// The columns an application writes and reads.
fn columns(kind: Kind, app: App) -> (&'static str, &'static str) {
    match (kind, app) {
        (Kind::Retype, App::New) => ("price_new", "qty_new"),
        _ => ("price", "qty"),
    }
}

/// What the original rows hold (MariaDB: `seq`; PostgreSQL: `i`).
fn original(kind: Kind, id: i64) -> Want {
    let price = format!("{id}.{:02}", id % 100);
    let qty = match kind {
        Kind::Retype => (id % 13 != 0).then_some(id),
        Kind::Check if id % 3 == 0 => Some(id),
        Kind::Check => (id % 11 != 0).then_some(id),
    };
    Want { price, qty }
}

/// Every row as it must be once all writes are in: the original rows, then each
/// application's writes.
fn expected(kind: Kind, logs: &[&BTreeMap<i64, Want>]) -> BTreeMap<i64, Want> {
    let mut m: BTreeMap<i64, Want> = (1..=ROWS).map(|id| (id, original(kind, id))).collect();
    for l in logs {
        for (id, w) in l.iter() {
            m.insert(*id, w.clone());
        }
    }
    m
}

/// Shared by the two applications of one test.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Committed writes of each application, in order: (id, what the other must see).
    old: Mutex<Vec<(i64, Want)>>,
    new: Mutex<Vec<(i64, Want)>>,
    writes: AtomicU64,
}

impl Shared {
    fn mine(&self, app: App) -> &Mutex<Vec<(i64, Want)>> {
        match app {
            App::Old => &self.old,
            App::New => &self.new,
        }
    }
    fn theirs(&self, app: App) -> &Mutex<Vec<(i64, Want)>> {
        match app {
            App::Old => &self.new,
            App::New => &self.old,
        }
    }
    fn last_of_theirs(&self, app: App) -> Option<(i64, Want)> {
        self.theirs(app).lock().unwrap().last().cloned()
    }
}

/// What a writer task returns: its writes (id → what must be seen) or its errors.
type Outcome = (BTreeMap<i64, Want>, Vec<String>, u64);

fn parse_qty(s: Option<String>) -> Option<i64> {
    s.and_then(|s| s.parse().ok())
}

// ---------------------------------------------------------------------------------------
// MariaDB

mod my {
    use super::*;
    use mysql_async::prelude::*;
    pub use support::mysql::TestDb;

    pub async fn setup(prefix: &str, kind: Kind) -> TestDb {
        let db = TestDb::new(prefix).await;
        let qty = match kind {
            Kind::Retype => "IF(seq % 13 = 0, NULL, seq)",
            Kind::Check => "IF(seq % 3 = 0, -seq, IF(seq % 11 = 0, NULL, seq))",
        };
        for t in ["items", "twin"] {
            db.exec(&format!(
                "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, \
                 price VARCHAR(20) NOT NULL DEFAULT '0' COMMENT 'list price', qty INT NULL DEFAULT 1, \
                 note VARCHAR(20) NULL, KEY idx_name (name), UNIQUE KEY uq_name_price (name, price), \
                 KEY idx_price (price))"
            ))
            .await;
        }
        db.exec(&format!(
            "INSERT INTO items (id, name, price, qty) SELECT seq, CONCAT('n', seq), \
             CONCAT(seq, '.', LPAD(seq % 100, 2, '0')), {qty} FROM seq_1_to_{ROWS}"
        ))
        .await;
        db
    }

    pub async fn show(db: &TestDb, t: &str) -> String {
        db.show_create(t)
            .await
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The table and its triggers: "nothing changed" checks.
    pub async fn snapshot(db: &TestDb) -> String {
        let trig: Vec<(String, String)> = db
            .query(&format!(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}' ORDER BY 1",
                db.name
            ))
            .await;
        format!("{}\n{trig:?}", show(db, "items").await)
    }

    /// Every row: id, price, qty (and the new columns while they exist).
    pub async fn dump(db: &TestDb, cols: &str) -> Vec<Vec<Option<String>>> {
        let rows: Vec<mysql_async::Row> = db
            .query(&format!("SELECT {cols} FROM items ORDER BY id"))
            .await;
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into()),
                        v => Some(format!("{v:?}")),
                    })
                    .collect()
            })
            .collect()
    }

    /// Objects of godwit's left in the database, except the state table.
    pub async fn leftovers(db: &TestDb) -> Vec<String> {
        let n = &db.name;
        db.query(&format!(
            "SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{n}' \
             UNION ALL SELECT CONCAT('table ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{n}' \
               AND TABLE_NAME LIKE '\\_godwit%' AND TABLE_NAME <> '_godwit_migrations' \
             UNION ALL SELECT CONCAT('index ', INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{n}' AND INDEX_NAME LIKE '\\_godwit%' \
             UNION ALL SELECT CONCAT('constraint ', CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{n}' AND CONSTRAINT_NAME LIKE '\\_godwit%' \
             UNION ALL SELECT CONCAT('column ', COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{n}' AND COLUMN_NAME LIKE '%\\_new'"
        ))
        .await
    }

    pub async fn migrations(db: &TestDb) -> u64 {
        db.query::<u64>("SELECT COUNT(*) FROM _godwit_migrations")
            .await[0]
    }

    /// One application: writes its shape until told to stop (and at least WRITES
    /// times); every 10 writes it reads the other application's latest write through its
    /// own shape.
    pub fn app(
        db: &TestDb,
        kind: Kind,
        app: App,
        shared: Arc<Shared>,
    ) -> tokio::task::JoinHandle<Outcome> {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            let (pc, qc) = columns(kind, app);
            let mut log = BTreeMap::new();
            let mut errors = Vec::new();
            let mut n = 0u64;
            let mut seen = 0u64;
            while !(shared.stop.load(Ordering::SeqCst) && n >= WRITES) && errors.len() < 10 {
                n += 1;
                let w = plan_write(kind, app, n);
                let r = if w.insert {
                    c.exec_drop(
                        format!("INSERT INTO items (id, name, {pc}, {qc}) VALUES (?, ?, ?, ?)"),
                        (w.id, format!("w{}", w.id), &w.price, w.qty),
                    )
                    .await
                } else {
                    c.exec_drop(
                        format!("UPDATE items SET {pc} = ?, {qc} = ? WHERE id = ?"),
                        (&w.price, w.qty, w.id),
                    )
                    .await
                };
                match r {
                    Ok(()) => {
                        log.insert(w.id, w.want.clone());
                        shared.mine(app).lock().unwrap().push((w.id, w.want));
                        shared.writes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        errors.push(format!("{app:?} write {n}: {e}"));
                        c = pool.get_conn().await.unwrap();
                    }
                }
                if n.is_multiple_of(10) {
                    if let Some((id, want)) = shared.last_of_theirs(app) {
                        let got: Option<(Option<String>, Option<String>)> = c
                            .exec_first(
                                format!("SELECT CAST({pc} AS CHAR), CAST({qc} AS CHAR) FROM items WHERE id = ?"),
                                (id,),
                            )
                            .await
                            .unwrap_or(None);
                        let got = got.map(|(p, q)| Want {
                            price: p.unwrap_or_default(),
                            qty: parse_qty(q),
                        });
                        if got.as_ref() != Some(&want) {
                            errors.push(format!(
                                "{app:?} application reads row {id} as {got:?}, the other wrote {want:?}"
                            ));
                        }
                        seen += 1;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            (log, errors, seen)
        })
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

mod pg {
    use super::*;
    pub use support::postgres::TestDb;

    pub async fn setup(prefix: &str, kind: Kind) -> TestDb {
        let db = TestDb::new(prefix).await;
        let qty = match kind {
            Kind::Retype => "CASE WHEN i % 13 = 0 THEN NULL ELSE i END",
            Kind::Check => "CASE WHEN i % 3 = 0 THEN -i WHEN i % 11 = 0 THEN NULL ELSE i END",
        };
        for t in ["items", "twin"] {
            db.exec(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL, price varchar(20) NOT NULL, \
                 qty int DEFAULT 1, note text); \
                 CREATE INDEX {t}_name_idx ON {t} (name); \
                 CREATE UNIQUE INDEX {t}_name_price_key ON {t} (name, price); \
                 CREATE INDEX {t}_price_idx ON {t} (price);"
            ))
            .await;
        }
        db.exec(&format!(
            "INSERT INTO items (id, name, price, qty) SELECT i, 'n' || i, \
             i || '.' || lpad((i % 100)::text, 2, '0'), {qty} FROM generate_series(1, {ROWS}) i"
        ))
        .await;
        db
    }

    /// Columns (in any order), indexes and constraints, with the table's name made
    /// neutral so that `items` and `twin` compare.
    pub async fn schema(db: &TestDb, t: &str) -> Vec<String> {
        let mut cols = db.columns(t).await;
        cols.sort();
        let mut out: Vec<String> = cols.into_iter().map(|c| format!("column {c}")).collect();
        out.extend(
            db.strings(&format!(
                "SELECT 'index ' || replace(indexdef, '{t}', 'T') FROM pg_indexes WHERE tablename = '{t}' ORDER BY 1"
            ))
            .await,
        );
        out.extend(
            db.strings(&format!(
                "SELECT 'constraint ' || replace(conname, '{t}', 'T') || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated \
                 FROM pg_constraint WHERE conrelid = '{t}'::regclass ORDER BY 1"
            ))
            .await,
        );
        out
    }

    /// Schema in column order and triggers: "nothing changed" checks.
    pub async fn snapshot(db: &TestDb) -> Vec<String> {
        let mut s = db.columns("items").await;
        s.extend(schema(db, "items").await);
        s.extend(
            db.strings(
                "SELECT tgname::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal ORDER BY 1",
            )
            .await,
        );
        s.extend(
            db.strings(
                "SELECT p.proname::text || ' ' || md5(p.prosrc) FROM pg_proc p WHERE p.proname LIKE '\\_godwit%' ORDER BY 1",
            )
            .await,
        );
        s
    }

    pub async fn dump(db: &TestDb, cols: &str) -> Vec<String> {
        db.rows("items", cols, "id").await
    }

    pub async fn leftovers(db: &TestDb) -> Vec<String> {
        db.strings(
            "SELECT 'trigger ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal \
             UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '\\_godwit%' \
             UNION ALL SELECT 'constraint ' || conname FROM pg_constraint WHERE conname LIKE '\\_godwit%' AND conname NOT LIKE '\\_godwit\\_migrations%' \
             UNION ALL SELECT 'relation ' || relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = current_schema() AND relname LIKE '\\_godwit%' AND relname <> '_godwit_migrations' \
               AND relname NOT LIKE '\\_godwit\\_migrations\\_%' \
             UNION ALL SELECT 'column ' || attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname LIKE '%\\_new' AND NOT attisdropped",
        )
        .await
    }

    pub async fn migrations(db: &TestDb) -> i64 {
        db.one_i64("SELECT count(*) FROM _godwit_migrations").await
    }

    pub fn app(
        db: &TestDb,
        kind: Kind,
        app: App,
        shared: Arc<Shared>,
    ) -> tokio::task::JoinHandle<Outcome> {
        let url = db.url.clone();
        tokio::spawn(async move {
            let mut c = support::postgres::connect(&url).await;
            let (pc, qc) = columns(kind, app);
            let price_ty = if pc == "price_new" {
                "numeric(10,2)"
            } else {
                "varchar(20)"
            };
            let mut log = BTreeMap::new();
            let mut errors = Vec::new();
            let mut n = 0u64;
            let mut seen = 0u64;
            while !(shared.stop.load(Ordering::SeqCst) && n >= WRITES) && errors.len() < 10 {
                n += 1;
                let w = plan_write(kind, app, n);
                let r = if w.insert {
                    c.execute(
                        &format!("INSERT INTO items (id, name, {pc}, {qc}) VALUES ($1::int8, $2::text, $3::text::{price_ty}, $4::int8)"),
                        &[&w.id, &format!("w{}", w.id), &w.price, &w.qty],
                    )
                    .await
                } else {
                    c.execute(
                        &format!("UPDATE items SET {pc} = $1::text::{price_ty}, {qc} = $2::int8 WHERE id = $3::int8"),
                        &[&w.price, &w.qty, &w.id],
                    )
                    .await
                };
                match r {
                    Ok(_) => {
                        log.insert(w.id, w.want.clone());
                        shared.mine(app).lock().unwrap().push((w.id, w.want));
                        shared.writes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        errors.push(format!("{app:?} write {n}: {e:?}"));
                        c = support::postgres::connect(&url).await;
                    }
                }
                if n.is_multiple_of(10) {
                    if let Some((id, want)) = shared.last_of_theirs(app) {
                        let got = c
                            .query_opt(
                                &format!(
                                    "SELECT {pc}::text, {qc}::text FROM items WHERE id = $1::int8"
                                ),
                                &[&id],
                            )
                            .await
                            .ok()
                            .flatten()
                            .map(|r| Want {
                                price: r.get::<_, Option<String>>(0).unwrap_or_default(),
                                qty: parse_qty(r.get(1)),
                            });
                        if got.as_ref() != Some(&want) {
                            errors.push(format!(
                                "{app:?} application reads row {id} as {got:?}, the other wrote {want:?}"
                            ));
                        }
                        seen += 1;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            (log, errors, seen)
        })
    }
}

/// A backfill while the applications write: some of their writes fall between its first
/// and its last batch.
async fn backfill_under_writes(url: &str, dir: &str, shared: Arc<Shared>) {
    let mut live = support::LiveRun::start(
        &[
            "backfill",
            dir,
            "--url",
            url,
            "--execute",
            "--format",
            "json",
            "--batch-size",
            "25",
            "--max-rows-per-second",
            "2000",
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "backfill_progress")
        .await;
    let first = shared.writes.load(Ordering::SeqCst);
    let run = live.finish().await;
    run.expect_ok();
    let last = shared.writes.load(Ordering::SeqCst);
    let batches = run
        .events
        .iter()
        .filter(|e| e["event"] == "backfill_progress")
        .count();
    assert!(
        batches > 10 && last > first,
        "the applications must write while the backfill runs ({batches} batches, {} writes meanwhile)",
        last - first
    );
}

/// Both applications write while `during` runs; they go on a little after it. Returns
/// each application's writes.
async fn with_both_apps<F, Fut>(
    spawn: impl Fn(App, Arc<Shared>) -> tokio::task::JoinHandle<Outcome>,
    during: F,
) -> (BTreeMap<i64, Want>, BTreeMap<i64, Want>)
where
    F: FnOnce(Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let shared = Arc::new(Shared::default());
    let old = spawn(App::Old, shared.clone());
    let new = spawn(App::New, shared.clone());
    while shared.writes.load(Ordering::SeqCst) < 60 && !old.is_finished() && !new.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = shared.writes.load(Ordering::SeqCst);
    during(shared.clone()).await;
    let after = shared.writes.load(Ordering::SeqCst);
    shared.stop.store(true, Ordering::SeqCst);
    let (old_log, old_err, old_seen) = old.await.unwrap();
    let (new_log, new_err, new_seen) = new.await.unwrap();
    assert!(old_err.is_empty(), "old application: {old_err:#?}");
    assert!(new_err.is_empty(), "new application: {new_err:#?}");
    assert!(
        after > before,
        "the applications did not write while the phase ran"
    );
    assert!(
        old_seen >= 10 && new_seen >= 10,
        "each application must read the other's writes ({old_seen}, {new_seen})"
    );
    assert!(old_log.len() as u64 >= WRITES / 2 && new_log.len() as u64 >= WRITES / 2);
    (old_log, new_log)
}

const RETYPE_MY: &str = r#"name = "price becomes a decimal, qty a bigint"

[[operations]]
type = "change_column_type"
table = "items"
column = "price"
new_type = "DECIMAL(10,2)"
up = "CAST(price AS DECIMAL(10,2))"
down = "CAST(price_new AS CHAR)"

[[operations]]
type = "change_column_type"
table = "items"
column = "qty"
new_type = "BIGINT"
up = "qty"
down = "qty_new"
"#;

const RETYPE_PG: &str = r#"name = "price becomes numeric, qty bigint"

[[operations]]
type = "change_column_type"
table = "items"
column = "price"
new_type = "numeric(10,2)"
up = "price::numeric(10,2)"
down = "price_new::text"

[[operations]]
type = "change_column_type"
table = "items"
column = "qty"
new_type = "bigint"
up = "qty"
down = "qty_new::int"
"#;

const CHECK: &str = r#"name = "qty never negative"

[[operations]]
type = "add_check"
table = "items"
name = "qty_nonneg"
check = "qty >= 0"
column = "qty"
up = "ABS(qty)"
"#;

fn rows_text(kind: Kind, m: &BTreeMap<i64, Want>, with_new: bool) -> Vec<String> {
    m.iter()
        .map(|(id, w)| {
            let q = w.qty.map(|q| q.to_string()).unwrap_or_default();
            match (kind, with_new) {
                (Kind::Retype, true) => format!("{id}|{}|{q}|{}|{q}", w.price, w.price),
                _ => format!("{id}|{}|{q}", w.price),
            }
        })
        .collect()
}

fn my_rows_text(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// PostgreSQL `ROW(…)::text` → `a|b|c`.
fn pg_rows_text(rows: Vec<String>) -> Vec<String> {
    rows.into_iter()
        .map(|r| r.trim_matches(|c| c == '(' || c == ')').replace(',', "|"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// change_column_type

#[tokio::test]
async fn mysql_change_column_type_through_every_phase() {
    let db = my::setup("o1_my_retype", Kind::Retype).await;
    let (dir, d) = write_file(&db.name, "0001_retype.toml", RETYPE_MY);

    ok(&db.url, "expand", &d).await;
    let expanded = my::snapshot(&db).await;
    assert!(expanded.contains("`price_new` decimal(10,2)"), "{expanded}");
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );
    // Out of order: contract before backfill is refused and changes nothing.
    refused(&db.url, "contract", &d, "run `godwit backfill` first").await;
    assert_eq!(my::snapshot(&db).await, expanded);

    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| my::app(&db, Kind::Retype, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    let want = expected(Kind::Retype, &[&old, &new]);
    let cols = "id, CAST(price AS CHAR), CAST(qty AS CHAR), CAST(price_new AS CHAR), CAST(qty_new AS CHAR)";
    let both = my_rows_text(my::dump(&db, cols).await);
    assert_eq!(
        both,
        rows_text(Kind::Retype, &want, true),
        "old and new shape disagree"
    );
    ok(&db.url, "backfill", &d).await;
    assert_eq!(
        my_rows_text(my::dump(&db, cols).await),
        both,
        "a second backfill changed data"
    );

    // The twin gets the same rows in the old shape, then the direct ALTER.
    db.exec("INSERT INTO twin (id, name, price, qty, note) SELECT id, name, price, qty, note FROM items")
        .await;
    ok(&db.url, "contract", &d).await;
    db.exec("ALTER TABLE twin MODIFY price DECIMAL(10,2) NOT NULL DEFAULT '0' COMMENT 'list price', MODIFY qty BIGINT NULL DEFAULT 1")
        .await;
    assert_eq!(
        my::show(&db, "items").await,
        my::show(&db, "twin").await,
        "contract must leave the schema the direct ALTER gives"
    );
    let all = "id, name, CAST(price AS CHAR), CAST(qty AS CHAR), note";
    assert_eq!(
        db.rows("items", all, "id").await,
        db.rows("twin", all, "id").await
    );
    assert_eq!(
        my_rows_text(my::dump(&db, "id, CAST(price AS CHAR), CAST(qty AS CHAR)").await),
        rows_text(Kind::Retype, &want, false)
    );
    let done = my::snapshot(&db).await;
    ok(&db.url, "contract", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_change_column_type_through_every_phase() {
    let db = pg::setup("o1_pg_retype", Kind::Retype).await;
    let (dir, d) = write_file(&db.name, "0001_retype.toml", RETYPE_PG);

    ok(&db.url, "expand", &d).await;
    let expanded = pg::snapshot(&db).await;
    assert!(
        expanded
            .iter()
            .any(|c| c.starts_with("price_new | numeric(10,2)")),
        "{expanded:#?}"
    );
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );
    refused(&db.url, "contract", &d, "run `godwit backfill` first").await;
    assert_eq!(pg::snapshot(&db).await, expanded);

    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| pg::app(&db, Kind::Retype, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    let want = expected(Kind::Retype, &[&old, &new]);
    let cols = "id, price, qty, price_new, qty_new";
    let both = pg_rows_text(pg::dump(&db, cols).await);
    assert_eq!(
        both,
        rows_text(Kind::Retype, &want, true),
        "old and new shape disagree"
    );
    ok(&db.url, "backfill", &d).await;
    assert_eq!(
        pg_rows_text(pg::dump(&db, cols).await),
        both,
        "a second backfill changed data"
    );

    db.exec("INSERT INTO twin (id, name, price, qty, note) SELECT id, name, price, qty, note FROM items")
        .await;
    ok(&db.url, "contract", &d).await;
    db.exec("ALTER TABLE twin ALTER COLUMN price TYPE numeric(10,2) USING price::numeric(10,2), ALTER COLUMN qty TYPE bigint")
        .await;
    // PostgreSQL cannot keep the column's place without a rewrite: compare in any order.
    assert_eq!(
        pg::schema(&db, "items").await,
        pg::schema(&db, "twin").await,
        "contract must leave the schema the direct ALTER gives (column order aside)"
    );
    let all = "id, name, price, qty, note";
    assert_eq!(
        db.rows("items", all, "id").await,
        db.rows("twin", all, "id").await
    );
    assert_eq!(
        pg_rows_text(pg::dump(&db, "id, price, qty").await),
        rows_text(Kind::Retype, &want, false)
    );
    let done = pg::snapshot(&db).await;
    ok(&db.url, "contract", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn mysql_change_column_type_abort_keeps_the_original_schema_and_data() {
    let db = my::setup("o1_my_retype_abort", Kind::Retype).await;
    let (dir, d) = write_file(&db.name, "0001_retype.toml", RETYPE_MY);
    let original = my::snapshot(&db).await;
    ok(&db.url, "expand", &d).await;
    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| my::app(&db, Kind::Retype, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    // Every write, the new application's too, is there in the old shape.
    assert_eq!(
        my_rows_text(my::dump(&db, "id, price, CAST(qty AS CHAR)").await),
        rows_text(Kind::Retype, &expected(Kind::Retype, &[&old, &new]), false)
    );
    ok(&db.url, "abort", &d).await;
    assert_eq!(my::snapshot(&db).await, original);
    assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_change_column_type_abort_keeps_the_original_schema_and_data() {
    let db = pg::setup("o1_pg_retype_abort", Kind::Retype).await;
    let (dir, d) = write_file(&db.name, "0001_retype.toml", RETYPE_PG);
    let original = pg::snapshot(&db).await;
    ok(&db.url, "expand", &d).await;
    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| pg::app(&db, Kind::Retype, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    assert_eq!(
        pg_rows_text(pg::dump(&db, "id, price, qty").await),
        rows_text(Kind::Retype, &expected(Kind::Retype, &[&old, &new]), false)
    );
    ok(&db.url, "abort", &d).await;
    assert_eq!(pg::snapshot(&db).await, original);
    assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

fn retype_file(column: &str, new_type: &str, up: &str, down: &str) -> String {
    format!(
        "name = \"bad\"\n[[operations]]\ntype = \"change_column_type\"\ntable = \"items\"\ncolumn = \"{column}\"\nnew_type = \"{new_type}\"\nup = \"{up}\"\ndown = \"{down}\"\n"
    )
}

#[tokio::test]
async fn mysql_change_column_type_bad_input_changes_nothing() {
    let db = my::setup("o1_my_retype_bad", Kind::Retype).await;
    db.exec("UPDATE items SET price = 'n/a' WHERE id = 77")
        .await;
    let cases = [
        (
            None,
            retype_file("price", "DECIMEL(10,2)", "price", "price_new"),
            "`new_type`: `DECIMEL(10,2)` is not a column type the server accepts",
        ),
        (
            None,
            retype_file("price", "DECIMAL(10,2)", "price", "CAST(price_new AS CHAR)"),
            "`up` cannot convert every existing row of `items` to `DECIMAL(10,2)` NOT NULL",
        ),
        (
            None,
            retype_file(
                "price",
                "DECIMAL(10,2)",
                "CAST(price AS DECIMAL(10,2))",
                "nope",
            ),
            "`down` is not a valid expression",
        ),
        (
            None,
            retype_file("id", "BIGINT", "id", "id_new"),
            "part of the primary key",
        ),
        (
            None,
            retype_file("prize", "INT", "1", "1"),
            "column `prize` does not exist in table `items`",
        ),
        (
            Some("ALTER TABLE items ALTER COLUMN price SET DEFAULT 'x'"),
            retype_file("price", "INT", "LENGTH(price)", "price_new"),
            "the default of `price` ('x') cannot be carried to type `INT`",
        ),
    ];
    for (before, text, what) in cases {
        if let Some(sql) = before {
            db.exec(sql).await;
        }
        let original = my::snapshot(&db).await;
        let rows = my::dump(&db, "*").await;
        let (dir, d) = write_file(&db.name, "0001_bad.toml", &text);
        let r = refused(&db.url, "expand", &d, what).await;
        assert!(
            r.stderr.contains("operation #1 (change type of items."),
            "the error names the operation: {}",
            r.stderr
        );
        assert_eq!(my::snapshot(&db).await, original, "{what}: schema changed");
        assert_eq!(my::dump(&db, "*").await, rows, "{what}: data changed");
        assert_eq!(my::migrations(&db).await, 0, "{what}: recorded as started");
        assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
        std::fs::remove_dir_all(dir).ok();
    }
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_change_column_type_bad_input_changes_nothing() {
    let db = pg::setup("o1_pg_retype_bad", Kind::Retype).await;
    db.exec("UPDATE items SET price = 'n/a' WHERE id = 77; ALTER TABLE items ALTER COLUMN price SET DEFAULT 'x'")
        .await;
    let original = pg::snapshot(&db).await;
    let rows = pg::dump(&db, "items.*").await;
    let cases = [
        (
            retype_file(
                "price",
                "numerik(10,2)",
                "price::numeric",
                "price_new::text",
            ),
            "`new_type`: `numerik(10,2)` is not a column type the server accepts",
        ),
        (
            retype_file("price", "text", "price::numeric", "price_new"),
            "`up` cannot convert every existing row of `items` to `text` NOT NULL",
        ),
        (
            retype_file("price", "text", "price || 'x'", "nope"),
            "`down` is not a valid expression",
        ),
        (
            retype_file("price", "numeric(10,2)", "1", "price_new::text"),
            "the default of `price` ('x'::character varying) cannot be carried",
        ),
        (
            retype_file("id", "bigint", "id", "id_new::int"),
            "part of the primary key",
        ),
        (
            retype_file("prize", "int", "1", "1"),
            "column `prize` does not exist in table `items`",
        ),
    ];
    for (text, what) in cases {
        let (dir, d) = write_file(&db.name, "0001_bad.toml", &text);
        let r = refused(&db.url, "expand", &d, what).await;
        assert!(
            r.stderr.contains("operation #1 (change type of items."),
            "the error names the operation: {}",
            r.stderr
        );
        assert_eq!(pg::snapshot(&db).await, original, "{what}: schema changed");
        assert_eq!(pg::dump(&db, "items.*").await, rows, "{what}: data changed");
        assert_eq!(pg::migrations(&db).await, 0, "{what}: recorded as started");
        assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
        std::fs::remove_dir_all(dir).ok();
    }
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// add_check

#[tokio::test]
async fn mysql_add_check_through_every_phase() {
    let db = my::setup("o1_my_check", Kind::Check).await;
    let (dir, d) = write_file(&db.name, "0001_check.toml", CHECK);
    ok(&db.url, "expand", &d).await;
    let expanded = my::snapshot(&db).await;
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );

    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| my::app(&db, Kind::Check, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    let want = expected(Kind::Check, &[&old, &new]);
    let cols = "id, price, CAST(qty AS CHAR)";
    let rows = my_rows_text(my::dump(&db, cols).await);
    assert_eq!(rows, rows_text(Kind::Check, &want, false));
    ok(&db.url, "backfill", &d).await;
    assert_eq!(
        my_rows_text(my::dump(&db, cols).await),
        rows,
        "a second backfill changed data"
    );

    db.exec("INSERT INTO twin SELECT * FROM items").await;
    ok(&db.url, "contract", &d).await;
    db.exec("ALTER TABLE twin ADD CONSTRAINT qty_nonneg CHECK (qty >= 0)")
        .await;
    assert_eq!(my::show(&db, "items").await, my::show(&db, "twin").await);
    assert_eq!(
        db.rows("items", "*", "id").await,
        db.rows("twin", "*", "id").await
    );
    // The constraint now holds on its own: the trigger is gone.
    let mut c = db.conn().await;
    let r = mysql_async::prelude::Queryable::query_drop(
        &mut c,
        "INSERT INTO items (id, name, qty) VALUES (999999, 'x', -1)",
    )
    .await;
    assert!(r.is_err(), "a violating row must be refused after contract");
    drop(c);
    let done = my::snapshot(&db).await;
    ok(&db.url, "contract", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_add_check_through_every_phase() {
    let db = pg::setup("o1_pg_check", Kind::Check).await;
    let (dir, d) = write_file(&db.name, "0001_check.toml", CHECK);
    ok(&db.url, "expand", &d).await;
    let expanded = pg::snapshot(&db).await;
    assert!(
        expanded
            .iter()
            .any(|s| s == "constraint qty_nonneg CHECK ((qty >= 0)) NOT VALID false"),
        "{expanded:#?}"
    );
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );

    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| pg::app(&db, Kind::Check, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    let want = expected(Kind::Check, &[&old, &new]);
    let rows = pg_rows_text(pg::dump(&db, "id, price, qty").await);
    assert_eq!(rows, rows_text(Kind::Check, &want, false));
    ok(&db.url, "backfill", &d).await;
    assert_eq!(pg_rows_text(pg::dump(&db, "id, price, qty").await), rows);

    db.exec("INSERT INTO twin SELECT * FROM items").await;
    ok(&db.url, "contract", &d).await;
    db.exec("ALTER TABLE twin ADD CONSTRAINT qty_nonneg CHECK (qty >= 0)")
        .await;
    assert_eq!(
        pg::schema(&db, "items").await,
        pg::schema(&db, "twin").await
    );
    // Same column order too: nothing was dropped.
    assert_eq!(db.columns("items").await, db.columns("twin").await);
    assert_eq!(
        db.rows("items", "id, name, price, qty, note", "id").await,
        db.rows("twin", "id, name, price, qty, note", "id").await
    );
    let r = db
        .client
        .batch_execute("INSERT INTO items (id, name, price, qty) VALUES (999999, 'x', '1', -1)")
        .await;
    assert!(r.is_err(), "a violating row must be refused after contract");
    let done = pg::snapshot(&db).await;
    ok(&db.url, "contract", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn mysql_add_check_abort_and_bad_input() {
    let db = my::setup("o1_my_check_abort", Kind::Check).await;
    let original = my::snapshot(&db).await;
    let (dir, d) = write_file(
        &db.name,
        "0001_check.toml",
        &CHECK.replace("ABS(qty)", "nope"),
    );
    refused(&db.url, "expand", &d, "`up` is not a valid value for `qty`").await;
    std::fs::write(
        dir.join("0001_check.toml"),
        CHECK.replace("qty >= 0", "qty >="),
    )
    .unwrap();
    refused(&db.url, "expand", &d, "`check` is not a CHECK constraint").await;
    assert_eq!(my::snapshot(&db).await, original);
    assert_eq!(my::migrations(&db).await, 0);

    std::fs::write(dir.join("0001_check.toml"), CHECK).unwrap();
    ok(&db.url, "expand", &d).await;
    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| my::app(&db, Kind::Check, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    // The rows fixed while expanded stay fixed: abort loses no write.
    assert_eq!(
        my_rows_text(my::dump(&db, "id, price, CAST(qty AS CHAR)").await),
        rows_text(Kind::Check, &expected(Kind::Check, &[&old, &new]), false)
    );
    ok(&db.url, "abort", &d).await;
    assert_eq!(my::snapshot(&db).await, original);
    assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_add_check_abort_and_bad_input() {
    let db = pg::setup("o1_pg_check_abort", Kind::Check).await;
    let original = pg::snapshot(&db).await;
    let (dir, d) = write_file(
        &db.name,
        "0001_check.toml",
        &CHECK.replace("ABS(qty)", "'many'"),
    );
    refused(&db.url, "expand", &d, "`up` is not a valid value for `qty`").await;
    std::fs::write(
        dir.join("0001_check.toml"),
        CHECK.replace("qty >= 0", "qtty >= 0"),
    )
    .unwrap();
    refused(&db.url, "expand", &d, "`check` is not a CHECK constraint").await;
    assert_eq!(pg::snapshot(&db).await, original);
    assert_eq!(pg::migrations(&db).await, 0);

    std::fs::write(dir.join("0001_check.toml"), CHECK).unwrap();
    ok(&db.url, "expand", &d).await;
    let (url, dd) = (db.url.clone(), d.clone());
    let (old, new) = with_both_apps(
        |app, s| pg::app(&db, Kind::Check, app, s),
        |s| async move { backfill_under_writes(&url, &dd, s).await },
    )
    .await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    assert_eq!(
        pg_rows_text(pg::dump(&db, "id, price, qty").await),
        rows_text(Kind::Check, &expected(Kind::Check, &[&old, &new]), false)
    );
    ok(&db.url, "abort", &d).await;
    assert_eq!(pg::snapshot(&db).await, original);
    assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// drop_index

fn drop_index_file(name: &str) -> String {
    format!("name = \"drop {name}\"\n[[operations]]\ntype = \"drop_index\"\ntable = \"items\"\nname = \"{name}\"\n")
}

#[tokio::test]
async fn mysql_drop_index() {
    let db = my::setup("o1_my_dropidx", Kind::Retype).await;
    db.exec("INSERT INTO twin SELECT * FROM items").await;
    let original = my::snapshot(&db).await;
    for (name, what) in [
        ("idx_nope", "index `idx_nope` does not exist on `items`"),
        ("PRIMARY", "is the primary key"),
    ] {
        let (dir, d) = write_file(&db.name, "0001_drop.toml", &drop_index_file(name));
        refused(&db.url, "expand", &d, what).await;
        assert_eq!(my::snapshot(&db).await, original);
        std::fs::remove_dir_all(dir).ok();
    }
    assert_eq!(my::migrations(&db).await, 0);

    // Abort: the index stays.
    let (dir, d) = write_file(&db.name, "0001_drop.toml", &drop_index_file("idx_price"));
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        my::snapshot(&db).await,
        original,
        "expand must keep the index"
    );
    ok(&db.url, "abort", &d).await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(my::snapshot(&db).await, original);

    // Through every phase, each twice.
    for p in ["expand", "expand", "backfill", "backfill"] {
        ok(&db.url, p, &d).await;
        assert_eq!(my::snapshot(&db).await, original, "{p} must keep the index");
    }
    ok(&db.url, "contract", &d).await;
    db.exec("DROP INDEX idx_price ON twin").await;
    let done = my::show(&db, "items").await;
    assert_eq!(done, my::show(&db, "twin").await);
    assert!(!done.contains("idx_price"));
    ok(&db.url, "contract", &d).await;
    assert_eq!(my::show(&db, "items").await, done);
    assert_eq!(
        db.rows("items", "*", "id").await,
        db.rows("twin", "*", "id").await
    );
    assert_eq!(my::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_drop_index() {
    let db = pg::setup("o1_pg_dropidx", Kind::Retype).await;
    db.exec("INSERT INTO twin SELECT * FROM items; ALTER TABLE items ADD CONSTRAINT items_note_key UNIQUE (note); ALTER TABLE twin ADD CONSTRAINT twin_note_key UNIQUE (note);")
        .await;
    let original = pg::snapshot(&db).await;
    for (name, what) in [
        ("items_nope", "index `items_nope` does not exist on `items`"),
        ("items_pkey", "is the primary key"),
        ("items_note_key", "is used by constraint `items_note_key`"),
    ] {
        let (dir, d) = write_file(&db.name, "0001_drop.toml", &drop_index_file(name));
        refused(&db.url, "expand", &d, what).await;
        assert_eq!(pg::snapshot(&db).await, original);
        std::fs::remove_dir_all(dir).ok();
    }
    assert_eq!(pg::migrations(&db).await, 0);

    let (dir, d) = write_file(
        &db.name,
        "0001_drop.toml",
        &drop_index_file("items_price_idx"),
    );
    ok(&db.url, "expand", &d).await;
    assert_eq!(
        pg::snapshot(&db).await,
        original,
        "expand must keep the index"
    );
    ok(&db.url, "abort", &d).await;
    ok(&db.url, "abort", &d).await;
    assert_eq!(pg::snapshot(&db).await, original);

    for p in ["expand", "expand", "backfill", "backfill"] {
        ok(&db.url, p, &d).await;
        assert_eq!(pg::snapshot(&db).await, original, "{p} must keep the index");
    }
    ok(&db.url, "contract", &d).await;
    db.exec("DROP INDEX twin_price_idx").await;
    let done = pg::schema(&db, "items").await;
    assert_eq!(done, pg::schema(&db, "twin").await);
    assert!(!done.iter().any(|s| s.contains("price_idx")), "{done:#?}");
    ok(&db.url, "contract", &d).await;
    assert_eq!(pg::schema(&db, "items").await, done);
    assert_eq!(pg::leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}
