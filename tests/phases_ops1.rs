//! change_column_type, add_check and drop_index through every phase, on MariaDB and
//! PostgreSQL: an "old application" and a "new application" connection write
//! concurrently while expanded and during the backfill, and each sees the other's
//! writes; every phase run twice is a no-op the second time; contract equals the direct
//! ALTER on a twin table (schema and every row); abort returns the original schema and
//! keeps the data; bad input is refused with nothing changed; nothing of godwit's is
//! left but its state table. One case table, run on MariaDB and on PostgreSQL; what
//! differs is spelling (types, catalog queries) and the few refusals that exist on one
//! engine only (see each case).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::both::{Conn, Db, Engine};
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

/// What the original rows hold.
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
// The test table and what is compared, spelled per engine.

async fn setup(engine: Engine, prefix: &str, kind: Kind) -> Db {
    let db = Db::empty(engine, prefix).await;
    let qty = match kind {
        Kind::Retype => "CASE WHEN i % 13 = 0 THEN NULL ELSE i END",
        Kind::Check => "CASE WHEN i % 3 = 0 THEN -i WHEN i % 11 = 0 THEN NULL ELSE i END",
    };
    for t in ["items", "twin"] {
        db.exec(&match engine {
            Engine::Maria => format!(
                "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, \
                 price VARCHAR(20) NOT NULL DEFAULT '0' COMMENT 'list price', qty INT NULL DEFAULT 1, \
                 note VARCHAR(20) NULL, KEY idx_name (name), UNIQUE KEY uq_name_price (name, price), \
                 KEY idx_price (price))"
            ),
            Engine::Postgres => format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL, price varchar(20) NOT NULL, \
                 qty int DEFAULT 1, note text); \
                 CREATE INDEX {t}_name_idx ON {t} (name); \
                 CREATE UNIQUE INDEX {t}_name_price_key ON {t} (name, price); \
                 CREATE INDEX {t}_price_idx ON {t} (price);"
            ),
        })
        .await;
    }
    db.exec(&match engine {
        Engine::Maria => format!(
            "INSERT INTO items (id, name, price, qty) SELECT i, CONCAT('n', i), \
             CONCAT(i, '.', LPAD(i % 100, 2, '0')), {qty} FROM (SELECT seq AS i FROM seq_1_to_{ROWS}) s"
        ),
        Engine::Postgres => format!(
            "INSERT INTO items (id, name, price, qty) SELECT i, 'n' || i, \
             i || '.' || lpad((i % 100)::text, 2, '0'), {qty} FROM generate_series(1, {ROWS}) i"
        ),
    })
    .await;
    db
}

async fn texts(db: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    Conn::open(db)
        .await
        .texts(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The schema of `t` without its name, for comparing `items` with `twin`. MariaDB: `SHOW
/// CREATE TABLE` (column order included). PostgreSQL: columns in any order (it cannot
/// keep a retyped column's place without a rewrite), indexes and constraints.
async fn schema(db: &Db, t: &str) -> Vec<String> {
    match db {
        Db::Maria(m) => m
            .show_create(t)
            .await
            .lines()
            .skip(1)
            .map(String::from)
            .collect(),
        Db::Postgres(p) => {
            let mut cols = p.columns(t).await;
            cols.sort();
            let mut out: Vec<String> = cols.into_iter().map(|c| format!("column {c}")).collect();
            out.extend(
                p.strings(&format!(
                    "SELECT 'index ' || replace(indexdef, '{t}', 'T') FROM pg_indexes WHERE tablename = '{t}' ORDER BY 1"
                ))
                .await,
            );
            out.extend(
                p.strings(&format!(
                    "SELECT 'constraint ' || replace(conname, '{t}', 'T') || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated \
                     FROM pg_constraint WHERE conrelid = '{t}'::regclass ORDER BY 1"
                ))
                .await,
            );
            out
        }
    }
}

/// The table (columns in order), its triggers (and their functions): "nothing changed"
/// checks.
async fn snapshot(db: &Db) -> Vec<String> {
    let mut s = schema(db, "items").await;
    match db {
        Db::Maria(_) => s.extend(
            db.strings(
                "SELECT CONCAT(TRIGGER_NAME, ' ', ACTION_STATEMENT) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
            )
            .await,
        ),
        Db::Postgres(p) => {
            s.extend(p.columns("items").await);
            s.extend(
                p.strings(
                    "SELECT tgname::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal ORDER BY 1",
                )
                .await,
            );
            s.extend(
                p.strings(
                    "SELECT p.proname::text || ' ' || md5(p.prosrc) FROM pg_proc p WHERE p.proname LIKE '\\_godwit%' ORDER BY 1",
                )
                .await,
            );
        }
    }
    s
}

/// Every row of `table`, columns `cols` as text joined by `|` (NULL as nothing), in id
/// order.
async fn dump(db: &Db, table: &str, cols: &str) -> Vec<String> {
    let cast = db.engine().pick("CAST({} AS CHAR)", "({})::text");
    let cols: Vec<String> = cols
        .split(',')
        .map(|c| cast.replace("{}", c.trim()))
        .collect();
    texts(
        db,
        &format!(
            "SELECT {} FROM {table} ORDER BY {table}.id",
            cols.join(", ")
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        r.into_iter()
            .map(Option::unwrap_or_default)
            .collect::<Vec<_>>()
            .join("|")
    })
    .collect()
}

/// Objects of godwit's left in the database, except the state table.
async fn leftovers(db: &Db) -> Vec<String> {
    db.strings(match db.engine() {
        Engine::Maria => "SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
             UNION ALL SELECT CONCAT('table ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
               AND TABLE_NAME LIKE '\\_godwit%' AND TABLE_NAME <> '_godwit_migrations' \
             UNION ALL SELECT CONCAT('index ', INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE '\\_godwit%' \
             UNION ALL SELECT CONCAT('constraint ', CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME LIKE '\\_godwit%' \
             UNION ALL SELECT CONCAT('column ', COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME LIKE '%\\_new'",
        Engine::Postgres => "SELECT 'trigger ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal \
             UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE '\\_godwit%' \
             UNION ALL SELECT 'constraint ' || conname FROM pg_constraint WHERE conname LIKE '\\_godwit%' AND conname NOT LIKE '\\_godwit\\_migrations%' \
             UNION ALL SELECT 'relation ' || relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = current_schema() AND relname LIKE '\\_godwit%' AND relname <> '_godwit_migrations' \
               AND relname NOT LIKE '\\_godwit\\_migrations\\_%' \
             UNION ALL SELECT 'column ' || attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname LIKE '%\\_new' AND NOT attisdropped",
    })
    .await
}

/// Migrations recorded in the state table.
async fn migrations(db: &Db) -> i64 {
    texts(db, "SELECT COUNT(*) FROM _godwit_migrations").await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// A value as an SQL literal.
fn lit(v: Option<&str>) -> String {
    v.map(|v| format!("'{v}'")).unwrap_or_else(|| "NULL".into())
}

/// One application: writes its shape until told to stop (and at least WRITES times);
/// every 10 writes it reads the other application's latest write through its own shape.
fn app(db: &Db, kind: Kind, app: App, shared: Arc<Shared>) -> tokio::task::JoinHandle<Outcome> {
    let (engine, url) = (db.engine(), db.url().to_string());
    tokio::spawn(async move {
        let mut c = Conn::connect(engine, &url).await;
        let (pc, qc) = columns(kind, app);
        let text = |c: &str| engine.pick(format!("CAST({c} AS CHAR)"), format!("{c}::text"));
        let mut log = BTreeMap::new();
        let mut errors = Vec::new();
        let mut n = 0u64;
        let mut seen = 0u64;
        while !(shared.stop.load(Ordering::SeqCst) && n >= WRITES) && errors.len() < 10 {
            n += 1;
            let w = plan_write(kind, app, n);
            let (price, qty) = (
                lit(Some(w.price.as_str())),
                lit(w.qty.map(|q| q.to_string()).as_deref()),
            );
            let sql = if w.insert {
                format!(
                    "INSERT INTO items (id, name, {pc}, {qc}) VALUES ({}, 'w{}', {price}, {qty})",
                    w.id, w.id
                )
            } else {
                format!(
                    "UPDATE items SET {pc} = {price}, {qc} = {qty} WHERE id = {}",
                    w.id
                )
            };
            match c.batch(&sql).await {
                Ok(()) => {
                    log.insert(w.id, w.want.clone());
                    shared.mine(app).lock().unwrap().push((w.id, w.want));
                    shared.writes.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    errors.push(format!("{app:?} write {n}: {e}"));
                    c = Conn::connect(engine, &url).await;
                }
            }
            if n.is_multiple_of(10) {
                if let Some((id, want)) = shared.last_of_theirs(app) {
                    let got = c
                        .texts(&format!(
                            "SELECT {}, {} FROM items WHERE id = {id}",
                            text(pc),
                            text(qc)
                        ))
                        .await
                        .ok()
                        .and_then(|rows| rows.into_iter().next())
                        .map(|mut r| Want {
                            price: r[0].take().unwrap_or_default(),
                            qty: parse_qty(r[1].take()),
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

/// Both applications write while a backfill of `dir` runs; they go on a little after
/// it. Returns each application's writes.
async fn backfill_with_both_apps(
    db: &Db,
    kind: Kind,
    dir: &str,
) -> (BTreeMap<i64, Want>, BTreeMap<i64, Want>) {
    let shared = Arc::new(Shared::default());
    let old = app(db, kind, App::Old, shared.clone());
    let new = app(db, kind, App::New, shared.clone());
    while shared.writes.load(Ordering::SeqCst) < 60 && !old.is_finished() && !new.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = shared.writes.load(Ordering::SeqCst);
    backfill_under_writes(db.url(), dir, shared.clone()).await;
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

const ALL: &str = "id, name, price, qty, note";

// ---------------------------------------------------------------------------------------
// change_column_type

async fn change_column_type_through_every_phase(engine: Engine) {
    let db = setup(engine, "o1_retype", Kind::Retype).await;
    let (dir, d) = write_file(
        db.name(),
        "0001_retype.toml",
        engine.pick(RETYPE_MY, RETYPE_PG),
    );

    ok(db.url(), "expand", &d).await;
    let expanded = snapshot(&db).await;
    let added = engine.pick("`price_new` decimal(10,2)", "price_new | numeric(10,2)");
    assert!(expanded.iter().any(|c| c.contains(added)), "{expanded:#?}");
    ok(db.url(), "expand", &d).await;
    assert_eq!(
        snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );
    // Out of order: contract before backfill is refused and changes nothing.
    refused(db.url(), "contract", &d, "run `godwit backfill` first").await;
    assert_eq!(snapshot(&db).await, expanded);

    let (old, new) = backfill_with_both_apps(&db, Kind::Retype, &d).await;
    let want = expected(Kind::Retype, &[&old, &new]);
    let cols = "id, price, qty, price_new, qty_new";
    let both = dump(&db, "items", cols).await;
    assert_eq!(
        both,
        rows_text(Kind::Retype, &want, true),
        "old and new shape disagree"
    );
    ok(db.url(), "backfill", &d).await;
    assert_eq!(
        dump(&db, "items", cols).await,
        both,
        "a second backfill changed data"
    );

    // The twin gets the same rows in the old shape, then the direct ALTER.
    db.exec("INSERT INTO twin (id, name, price, qty, note) SELECT id, name, price, qty, note FROM items")
        .await;
    ok(db.url(), "contract", &d).await;
    db.exec(engine.pick(
        "ALTER TABLE twin MODIFY price DECIMAL(10,2) NOT NULL DEFAULT '0' COMMENT 'list price', MODIFY qty BIGINT NULL DEFAULT 1",
        "ALTER TABLE twin ALTER COLUMN price TYPE numeric(10,2) USING price::numeric(10,2), ALTER COLUMN qty TYPE bigint",
    ))
    .await;
    assert_eq!(
        schema(&db, "items").await,
        schema(&db, "twin").await,
        "contract must leave the schema the direct ALTER gives"
    );
    assert_eq!(dump(&db, "items", ALL).await, dump(&db, "twin", ALL).await);
    assert_eq!(
        dump(&db, "items", "id, price, qty").await,
        rows_text(Kind::Retype, &want, false)
    );
    let done = snapshot(&db).await;
    ok(db.url(), "contract", &d).await;
    assert_eq!(
        snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn change_column_type_abort_keeps_the_original_schema_and_data(engine: Engine) {
    let db = setup(engine, "o1_retype_abort", Kind::Retype).await;
    let (dir, d) = write_file(
        db.name(),
        "0001_retype.toml",
        engine.pick(RETYPE_MY, RETYPE_PG),
    );
    let original = snapshot(&db).await;
    ok(db.url(), "expand", &d).await;
    let (old, new) = backfill_with_both_apps(&db, Kind::Retype, &d).await;
    ok(db.url(), "abort", &d).await;
    assert_eq!(
        snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    // Every write, the new application's too, is there in the old shape.
    assert_eq!(
        dump(&db, "items", "id, price, qty").await,
        rows_text(Kind::Retype, &expected(Kind::Retype, &[&old, &new]), false)
    );
    ok(db.url(), "abort", &d).await;
    assert_eq!(snapshot(&db).await, original);
    assert_eq!(leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

fn retype_file(column: &str, new_type: &str, up: &str, down: &str) -> String {
    format!(
        "name = \"bad\"\n[[operations]]\ntype = \"change_column_type\"\ntable = \"items\"\ncolumn = \"{column}\"\nnew_type = \"{new_type}\"\nup = \"{up}\"\ndown = \"{down}\"\n"
    )
}

/// Bad files, each refused before anything changes. The same refusals on both engines,
/// spelled in each engine's types and expressions; the default that cannot be carried is
/// quoted as the server prints it.
async fn change_column_type_bad_input_changes_nothing(engine: Engine) {
    let db = setup(engine, "o1_retype_bad", Kind::Retype).await;
    db.exec("UPDATE items SET price = 'n/a' WHERE id = 77")
        .await;
    // (SQL run first, file, what the error says)
    let cases: Vec<(Option<&str>, String, &str)> = match engine {
        Engine::Maria => vec![
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
        ],
        Engine::Postgres => vec![
            (
                Some("ALTER TABLE items ALTER COLUMN price SET DEFAULT 'x'"),
                retype_file(
                    "price",
                    "numerik(10,2)",
                    "price::numeric",
                    "price_new::text",
                ),
                "`new_type`: `numerik(10,2)` is not a column type the server accepts",
            ),
            (
                None,
                retype_file("price", "text", "price::numeric", "price_new"),
                "`up` cannot convert every existing row of `items` to `text` NOT NULL",
            ),
            (
                None,
                retype_file("price", "text", "price || 'x'", "nope"),
                "`down` is not a valid expression",
            ),
            (
                None,
                retype_file("price", "numeric(10,2)", "1", "price_new::text"),
                "the default of `price` ('x'::character varying) cannot be carried",
            ),
            (
                None,
                retype_file("id", "bigint", "id", "id_new::int"),
                "part of the primary key",
            ),
            (
                None,
                retype_file("prize", "int", "1", "1"),
                "column `prize` does not exist in table `items`",
            ),
        ],
    };
    for (before, text, what) in cases {
        if let Some(sql) = before {
            db.exec(sql).await;
        }
        let original = snapshot(&db).await;
        let rows = dump(&db, "items", ALL).await;
        let (dir, d) = write_file(db.name(), "0001_bad.toml", &text);
        let r = refused(db.url(), "expand", &d, what).await;
        assert!(
            r.stderr.contains("operation #1 (change type of items."),
            "the error names the operation: {}",
            r.stderr
        );
        assert_eq!(snapshot(&db).await, original, "{what}: schema changed");
        assert_eq!(dump(&db, "items", ALL).await, rows, "{what}: data changed");
        assert_eq!(migrations(&db).await, 0, "{what}: recorded as started");
        assert_eq!(leftovers(&db).await, Vec::<String>::new());
        std::fs::remove_dir_all(dir).ok();
    }
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// add_check

async fn add_check_through_every_phase(engine: Engine) {
    let db = setup(engine, "o1_check", Kind::Check).await;
    let (dir, d) = write_file(db.name(), "0001_check.toml", CHECK);
    ok(db.url(), "expand", &d).await;
    let expanded = snapshot(&db).await;
    if engine == Engine::Postgres {
        // PostgreSQL adds the constraint NOT VALID at expand (MariaDB has no such state:
        // a trigger enforces it until contract).
        assert!(
            expanded
                .iter()
                .any(|s| s == "constraint qty_nonneg CHECK ((qty >= 0)) NOT VALID false"),
            "{expanded:#?}"
        );
    }
    ok(db.url(), "expand", &d).await;
    assert_eq!(
        snapshot(&db).await,
        expanded,
        "a second expand changed something"
    );

    let (old, new) = backfill_with_both_apps(&db, Kind::Check, &d).await;
    let want = expected(Kind::Check, &[&old, &new]);
    let cols = "id, price, qty";
    let rows = dump(&db, "items", cols).await;
    assert_eq!(rows, rows_text(Kind::Check, &want, false));
    ok(db.url(), "backfill", &d).await;
    assert_eq!(
        dump(&db, "items", cols).await,
        rows,
        "a second backfill changed data"
    );

    db.exec("INSERT INTO twin SELECT * FROM items").await;
    ok(db.url(), "contract", &d).await;
    db.exec("ALTER TABLE twin ADD CONSTRAINT qty_nonneg CHECK (qty >= 0)")
        .await;
    assert_eq!(schema(&db, "items").await, schema(&db, "twin").await);
    // Same column order too: nothing was dropped.
    assert_eq!(db.columns("items").await, db.columns("twin").await);
    assert_eq!(dump(&db, "items", ALL).await, dump(&db, "twin", ALL).await);
    // The constraint now holds on its own: the trigger is gone.
    let r = db
        .try_exec("INSERT INTO items (id, name, price, qty) VALUES (999999, 'x', '1', -1)")
        .await;
    assert!(r.is_err(), "a violating row must be refused after contract");
    let done = snapshot(&db).await;
    ok(db.url(), "contract", &d).await;
    assert_eq!(
        snapshot(&db).await,
        done,
        "a second contract changed something"
    );
    assert_eq!(leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// Bad `up` and `check` (each engine gets two kinds of each: a name that is not a column,
/// a value of the wrong type, a truncated and a misspelled condition), then abort while
/// the applications write.
async fn add_check_abort_and_bad_input(engine: Engine) {
    let db = setup(engine, "o1_check_abort", Kind::Check).await;
    let original = snapshot(&db).await;
    let (dir, d) = write_file(
        db.name(),
        "0001_check.toml",
        &CHECK.replace("ABS(qty)", engine.pick("nope", "'many'")),
    );
    refused(
        db.url(),
        "expand",
        &d,
        "`up` is not a valid value for `qty`",
    )
    .await;
    std::fs::write(
        dir.join("0001_check.toml"),
        CHECK.replace("qty >= 0", engine.pick("qty >=", "qtty >= 0")),
    )
    .unwrap();
    refused(db.url(), "expand", &d, "`check` is not a CHECK constraint").await;
    assert_eq!(snapshot(&db).await, original);
    assert_eq!(migrations(&db).await, 0);

    std::fs::write(dir.join("0001_check.toml"), CHECK).unwrap();
    ok(db.url(), "expand", &d).await;
    let (old, new) = backfill_with_both_apps(&db, Kind::Check, &d).await;
    ok(db.url(), "abort", &d).await;
    assert_eq!(
        snapshot(&db).await,
        original,
        "abort must restore the schema"
    );
    // The rows fixed while expanded stay fixed: abort loses no write.
    assert_eq!(
        dump(&db, "items", "id, price, qty").await,
        rows_text(Kind::Check, &expected(Kind::Check, &[&old, &new]), false)
    );
    ok(db.url(), "abort", &d).await;
    assert_eq!(snapshot(&db).await, original);
    assert_eq!(leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------
// drop_index

fn drop_index_file(name: &str) -> String {
    format!("name = \"drop {name}\"\n[[operations]]\ntype = \"drop_index\"\ntable = \"items\"\nname = \"{name}\"\n")
}

/// Refusals (no such index, the primary key; on PostgreSQL also an index a constraint
/// uses: on MariaDB a UNIQUE constraint is the index itself, so dropping it is allowed on
/// purpose), abort, then every phase twice.
async fn drop_index(engine: Engine) {
    let db = setup(engine, "o1_dropidx", Kind::Retype).await;
    db.exec("INSERT INTO twin SELECT * FROM items").await;
    let refusals: &[(&str, &str)] = match engine {
        Engine::Maria => &[
            ("idx_nope", "index `idx_nope` does not exist on `items`"),
            ("PRIMARY", "is the primary key"),
        ],
        Engine::Postgres => {
            db.exec("ALTER TABLE items ADD CONSTRAINT items_note_key UNIQUE (note); ALTER TABLE twin ADD CONSTRAINT twin_note_key UNIQUE (note);")
                .await;
            &[
                ("items_nope", "index `items_nope` does not exist on `items`"),
                ("items_pkey", "is the primary key"),
                ("items_note_key", "is used by constraint `items_note_key`"),
            ]
        }
    };
    let original = snapshot(&db).await;
    for (name, what) in refusals {
        let (dir, d) = write_file(db.name(), "0001_drop.toml", &drop_index_file(name));
        refused(db.url(), "expand", &d, what).await;
        assert_eq!(snapshot(&db).await, original);
        std::fs::remove_dir_all(dir).ok();
    }
    assert_eq!(migrations(&db).await, 0);

    // Abort: the index stays.
    let (index, twin_index) = engine.pick(
        ("idx_price", "idx_price ON twin"),
        ("items_price_idx", "twin_price_idx"),
    );
    let (dir, d) = write_file(db.name(), "0001_drop.toml", &drop_index_file(index));
    ok(db.url(), "expand", &d).await;
    assert_eq!(snapshot(&db).await, original, "expand must keep the index");
    ok(db.url(), "abort", &d).await;
    ok(db.url(), "abort", &d).await;
    assert_eq!(snapshot(&db).await, original);

    // Through every phase, each twice.
    for p in ["expand", "expand", "backfill", "backfill"] {
        ok(db.url(), p, &d).await;
        assert_eq!(snapshot(&db).await, original, "{p} must keep the index");
    }
    ok(db.url(), "contract", &d).await;
    db.exec(&format!("DROP INDEX {twin_index}")).await;
    let done = schema(&db, "items").await;
    assert_eq!(done, schema(&db, "twin").await);
    assert!(
        !done
            .iter()
            .any(|s| s.contains("price_idx") || s.contains("idx_price")),
        "{done:#?}"
    );
    ok(db.url(), "contract", &d).await;
    assert_eq!(schema(&db, "items").await, done);
    assert_eq!(dump(&db, "items", ALL).await, dump(&db, "twin", ALL).await);
    assert_eq!(leftovers(&db).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

support::both::cases!(
    change_column_type_through_every_phase,
    change_column_type_abort_keeps_the_original_schema_and_data,
    change_column_type_bad_input_changes_nothing,
    add_check_through_every_phase,
    add_check_abort_and_bad_input,
    drop_index,
);
