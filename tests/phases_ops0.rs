//! add_column, set_not_null, drop_column, add_index and sql through every phase on
//! MariaDB and PostgreSQL, from one table of operations and one harness.
//!
//! For each operation and engine: expand; an "old application" (the old shape: it never
//! names the new column, writes NULLs, still writes the columns being dropped) and a
//! "new application" (the new shape) commit a few hundred writes concurrently, each
//! reading back the other's latest write in its own shape; the backfill runs while they
//! write (killed once and resumed when the operation has one); every phase runs twice
//! and the second run is a no-op that changes nothing. Then either contract, with the
//! new application still writing, after which the table equals a twin given the direct
//! ALTER and every row equals a mirror of the writes computed here; or abort, after which
//! the original schema is back and every row holds what the applications wrote. Nothing
//! of godwit's is left but its state table. Bad files and phases out of order are
//! refused with a clear error, and neither the schema nor the state table changes.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::both::{Conn, Db, Engine};
use support::phases::write_migration;
use support::{godwit, LiveRun, Run};
use tokio::sync::Mutex;

/// Rows at start, ids 1..=ROWS.
const ROWS: i64 = 2000;
/// Transactions each application commits at least (one to four writes each).
const WRITES: u64 = 200;
/// An original row no application touches: a row lock on it stops a backfill there.
const HELD: i64 = 1900;
/// The table's columns at start; an operation's new column comes after them.
const BASE: [&str; 5] = ["id", "name", "qty", "note", "code"];

/// A row as text, in the order of [`Op::full`].
type Row = Vec<Option<String>>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    AddColumn,
    SetNotNull,
    DropColumn,
    AddIndex,
    Sql,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum App {
    Old,
    New,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    Contract,
    Abort,
}

impl Engine {
    /// The test table, `{t}` for its name.
    fn create(self) -> &'static str {
        match self {
            Engine::Maria => "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, qty INT NULL, \
                 note VARCHAR(50) NULL DEFAULT 'none', code VARCHAR(20) NOT NULL, KEY idx_name (name))",
            Engine::Postgres => "CREATE TABLE {t} (id int PRIMARY KEY, name varchar(50) NOT NULL, qty int, \
                 note varchar(50) DEFAULT 'none', code varchar(20) NOT NULL); CREATE INDEX idx_name ON {t} (name)",
        }
    }
    /// The rows at start; [`original`] says the same.
    fn fill(self) -> &'static str {
        match self {
            Engine::Maria => {
                "INSERT INTO items SELECT seq, CONCAT('n', seq), IF(seq % 5 = 0, NULL, seq), \
                 CONCAT('note ', seq), CONCAT('c', seq) FROM seq_1_to_2000"
            }
            Engine::Postgres => {
                "INSERT INTO items SELECT i, 'n' || i, CASE WHEN i % 5 = 0 THEN NULL ELSE i END, \
                 'note ' || i, 'c' || i FROM generate_series(1, 2000) i"
            }
        }
    }
}

impl Op {
    /// The migration file: the same text on both engines.
    fn file(self) -> &'static str {
        match self {
            Op::AddColumn => {
                r#"name = "score"
[[operations]]
type = "add_column"
table = "items"
column = { name = "score", type = "INT", nullable = false, default = "0" }
up = "COALESCE(qty, 0) * 2"
"#
            }
            Op::SetNotNull => {
                r#"name = "qty required"
[[operations]]
type = "set_not_null"
table = "items"
column = "qty"
up = "CHAR_LENGTH(name)"
"#
            }
            Op::DropColumn => {
                r#"name = "note and code go"
operations = [
    { type = "drop_column", table = "items", column = "note" },
    { type = "drop_column", table = "items", column = "code", down = "CONCAT('c', id)" },
]
"#
            }
            Op::AddIndex => {
                r#"name = "indexes"
operations = [
    { type = "add_index", table = "items", name = "idx_qty_note", columns = ["qty", "note"] },
    { type = "add_index", table = "items", name = "uq_code", columns = ["code"], unique = true },
]
"#
            }
            Op::Sql => {
                r#"name = "tag"
[[operations]]
type = "sql"
up = "ALTER TABLE items ADD COLUMN IF NOT EXISTS tag VARCHAR(10) DEFAULT 'x'"
contract = "CREATE INDEX IF NOT EXISTS idx_tag ON items (tag)"
down = "ALTER TABLE items DROP COLUMN IF EXISTS tag"
"#
            }
        }
    }

    /// What a direct ALTER does instead, on the twin (`{t}`).
    fn direct(self, e: Engine) -> &'static str {
        match (self, e) {
            (Op::AddColumn, _) => "ALTER TABLE {t} ADD COLUMN score INT NOT NULL DEFAULT 0",
            (Op::SetNotNull, Engine::Maria) => "ALTER TABLE {t} MODIFY qty INT NOT NULL",
            (Op::SetNotNull, Engine::Postgres) => "ALTER TABLE {t} ALTER COLUMN qty SET NOT NULL",
            (Op::DropColumn, _) => "ALTER TABLE {t} DROP COLUMN note, DROP COLUMN code",
            (Op::AddIndex, _) => {
                "CREATE INDEX idx_qty_note ON {t} (qty, note); CREATE UNIQUE INDEX uq_code ON {t} (code)"
            }
            (Op::Sql, _) => {
                "ALTER TABLE {t} ADD COLUMN tag VARCHAR(10) DEFAULT 'x'; CREATE INDEX idx_tag ON {t} (tag)"
            }
        }
    }

    /// The column the operation adds.
    fn added(self) -> Option<&'static str> {
        match self {
            Op::AddColumn => Some("score"),
            Op::Sql => Some("tag"),
            _ => None,
        }
    }

    fn dropped(self) -> &'static [&'static str] {
        match self {
            Op::DropColumn => &["note", "code"],
            _ => &[],
        }
    }

    fn backfills(self) -> bool {
        matches!(self, Op::AddColumn | Op::SetNotNull)
    }

    /// A write that must fail once expanded.
    fn refused_once_expanded(self) -> Option<&'static str> {
        match self {
            Op::AddIndex => Some("INSERT INTO items (id, name, code) VALUES (999999, 'dup', 'c1')"),
            _ => None,
        }
    }

    /// Every column while expanded.
    fn full(self) -> Vec<&'static str> {
        BASE.iter().copied().chain(self.added()).collect()
    }

    /// The columns once contracted: the new shape.
    fn result(self) -> Vec<&'static str> {
        self.full()
            .into_iter()
            .filter(|c| !self.dropped().contains(c))
            .collect()
    }

    /// The columns an application writes and reads.
    fn shape(self, app: App) -> Vec<&'static str> {
        match app {
            App::Old => BASE.to_vec(),
            App::New => self.result(),
        }
    }

    fn pos(self, col: &str) -> usize {
        self.full().iter().position(|c| *c == col).unwrap()
    }

    /// What the database puts in the columns a write left NULL or out: the operation's
    /// `up` / `down`, or the column's default.
    fn fill(self, r: &mut Row) {
        let num = |v: &Option<String>| v.as_deref().map_or(0, |s| s.parse::<i64>().unwrap());
        let fill = |r: &mut Row, i: usize, v: String| {
            if r[i].is_none() {
                r[i] = Some(v);
            }
        };
        match self {
            Op::AddColumn => fill(r, 5, (2 * num(&r[2])).to_string()),
            Op::SetNotNull => {
                let n = r[1].as_deref().unwrap().chars().count();
                fill(r, 2, n.to_string())
            }
            Op::DropColumn => {
                let code = format!("c{}", r[0].as_deref().unwrap());
                fill(r, 3, "none".into());
                fill(r, 4, code);
            }
            Op::AddIndex => {}
            Op::Sql => fill(r, 5, "x".into()),
        }
    }

    /// The new application's value for the added column.
    fn added_value(self, k: i64, variant: i64) -> Option<String> {
        match self {
            Op::AddColumn => Some((k * 7 + variant).to_string()),
            Op::Sql => Some(format!("t{k}.{variant}")),
            _ => None,
        }
    }
}

/// A row at start, as the operation leaves it once backfilled.
fn original(op: Op, id: i64) -> Row {
    let mut r = vec![
        Some(id.to_string()),
        Some(format!("n{id}")),
        (id % 5 != 0).then(|| id.to_string()),
        Some(format!("note {id}")),
        Some(format!("c{id}")),
    ];
    r.resize(op.full().len(), None);
    op.fill(&mut r);
    r
}

fn project(op: Op, r: &Row, cols: &[&str]) -> Row {
    cols.iter().map(|c| r[op.pos(c)].clone()).collect()
}

fn lit(v: &Option<String>) -> String {
    v.as_ref()
        .map_or_else(|| "NULL".to_string(), |s| format!("'{s}'"))
}

// ---------------------------------------------------------------------------------------
// The applications' writes.

enum Change {
    Insert(Row),
    /// Set columns (positions in [`Op::full`]) of one row.
    Update(i64, Vec<(usize, Option<String>)>),
    Delete(i64),
}

impl Change {
    fn id(&self) -> i64 {
        match self {
            Change::Insert(r) => r[0].as_deref().unwrap().parse().unwrap(),
            Change::Update(id, _) | Change::Delete(id) => *id,
        }
    }

    fn sql(&self, op: Op, cols: &[&str]) -> String {
        match self {
            Change::Insert(r) => format!(
                "INSERT INTO items ({}) VALUES ({})",
                cols.join(", "),
                cols.iter()
                    .map(|c| lit(&r[op.pos(c)]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::Update(id, set) => format!(
                "UPDATE items SET {} WHERE id = {id}",
                set.iter()
                    .map(|(i, v)| format!("{} = {}", op.full()[*i], lit(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::Delete(id) => format!("DELETE FROM items WHERE id = {id}"),
        }
    }
}

/// Transaction `k` of an application, in key order (so that it cannot deadlock with a
/// backfill batch): maybe an update of an original row (the old application edits the
/// even ones, the new application the odd ones), maybe a delete and an update of a row it
/// inserted before, and an insert. The old application writes NULL quantities; the new one
/// always sets the added column.
fn plan(op: Op, app: App, k: i64, own: &[i64]) -> Vec<Change> {
    let a = if app == App::Old { "old" } else { "new" };
    let p = |c| op.pos(c);
    let writes = op.shape(app);
    let mut out = Vec::new();
    if k % 3 == 1 {
        let id = 2 * ((k * 37) % 900) + if app == App::Old { 2 } else { 1 };
        // The old application never changes an original row's `qty`: `up` reads it, and
        // whether the trigger or the backfill computes it first would then matter.
        let set = match app {
            App::Old => vec![(p("note"), Some(format!("old upd {k}")))],
            App::New => {
                let mut s = vec![(p("qty"), Some((k * 5 + 2).to_string()))];
                s.extend(op.added().map(|c| (p(c), op.added_value(k, 2))));
                s
            }
        };
        out.push(Change::Update(id, set));
    }
    if k % 10 == 0 && own.len() > 1 {
        out.push(Change::Delete(own[0]));
    }
    if let (0, Some(&id)) = (k % 3, own.last()) {
        let qty = match app {
            App::Old => (k % 2 == 1).then(|| (k * 3 + 1).to_string()),
            App::New => Some((k * 5 + 1).to_string()),
        };
        let mut set = vec![(p("qty"), qty)];
        if writes.contains(&"note") {
            set.push((p("note"), Some(format!("{a} upd {k}"))));
        }
        if app == App::New {
            set.extend(op.added().map(|c| (p(c), op.added_value(k, 1))));
        }
        out.push(Change::Update(id, set));
    }
    let id = if app == App::Old { 100_000 } else { 200_000 } + k;
    let mut r: Row = vec![None; op.full().len()];
    r[0] = Some(id.to_string());
    r[1] = Some(format!("{a}{k}"));
    r[2] = match app {
        App::Old => (k % 3 != 0).then(|| (k * 3).to_string()),
        App::New => Some((k * 5).to_string()),
    };
    if writes.contains(&"note") {
        r[3] = Some(format!("{a} note {k}"));
    }
    if writes.contains(&"code") {
        r[4] = Some(format!("{a}-{id}"));
    }
    if app == App::New {
        if let Some(c) = op.added() {
            r[p(c)] = op.added_value(k, 0);
        }
    }
    out.push(Change::Insert(r));
    out
}

/// What one application has committed: every row it touched as everyone must now see
/// it (None: deleted), and the row of its latest write.
#[derive(Default)]
struct Log {
    rows: BTreeMap<i64, Option<Row>>,
    last: Option<i64>,
    commits: u64,
}

impl Log {
    fn apply(&mut self, op: Op, ch: &Change) {
        let after = match ch {
            Change::Insert(r) => {
                let mut r = r.clone();
                op.fill(&mut r);
                Some(r)
            }
            Change::Update(id, set) => {
                let mut r = self
                    .rows
                    .get(id)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| original(op, *id));
                let before = r.clone();
                for (i, v) in set {
                    r[*i] = v.clone();
                }
                // add_column: a write that changes `qty` (which `up` reads) and not the
                // new column gets `up` again.
                if op == Op::AddColumn {
                    let (qty, score) = (op.pos("qty"), op.pos("score"));
                    if r[qty] != before[qty] && r[score] == before[score] {
                        r[score] = None;
                    }
                }
                op.fill(&mut r);
                Some(r)
            }
            Change::Delete(_) => None,
        };
        self.rows.insert(ch.id(), after);
    }
}

/// One application: transactions until told to stop; after each, it reads the other
/// application's latest write in its own shape. Holding the writer's log while reading
/// makes the read and the log agree. Returns what went wrong.
async fn app(
    src: Source,
    op: Op,
    me: App,
    mine: Arc<Mutex<Log>>,
    theirs: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut c = src.conn().await;
    let shape = op.shape(me);
    let mut errors = Vec::new();
    let mut own: Vec<i64> = Vec::new();
    let mut k = 0;
    while !stop.load(Ordering::SeqCst) && errors.len() < 10 {
        k += 1;
        let changes = plan(op, me, k, &own);
        let sql: Vec<String> = changes.iter().map(|ch| ch.sql(op, &shape)).collect();
        {
            let mut log = mine.lock().await;
            if let Err(e) = c.transaction_retried(&sql).await {
                errors.push(format!("{me:?} application, transaction {k}: {e}"));
                continue;
            }
            for ch in &changes {
                log.apply(op, ch);
                match ch {
                    Change::Insert(_) => own.push(ch.id()),
                    Change::Delete(id) => own.retain(|x| x != id),
                    Change::Update(..) => {}
                }
            }
            log.last = Some(changes[k as usize % changes.len()].id());
            log.commits += 1;
        }
        let log = theirs.lock().await;
        let Some(id) = log.last else { continue };
        let want: Vec<Row> = log.rows[&id]
            .iter()
            .map(|r| project(op, r, &shape))
            .collect();
        let sql = format!("SELECT {} FROM items WHERE id = {id}", shape.join(", "));
        match c.texts(&sql).await {
            Ok(got) if got == want => {}
            Ok(got) => errors.push(format!(
                "the {me:?} application sees row {id} as {got:?}, not {want:?}"
            )),
            Err(e) => errors.push(format!("{me:?} application reading {id}: {e}")),
        }
    }
    errors
}

/// The two applications of one test.
struct Apps {
    logs: [Arc<Mutex<Log>>; 2],
    stops: [Arc<AtomicBool>; 2],
    tasks: [Option<tokio::task::JoinHandle<Vec<String>>>; 2],
}

impl Apps {
    fn start(db: &Db, op: Op) -> Apps {
        let logs: [Arc<Mutex<Log>>; 2] = Default::default();
        let stops: [Arc<AtomicBool>; 2] = Default::default();
        let task = |me: App, i: usize| {
            tokio::spawn(app(
                db.source(),
                op,
                me,
                logs[i].clone(),
                logs[1 - i].clone(),
                stops[i].clone(),
            ))
        };
        let tasks = [Some(task(App::Old, 0)), Some(task(App::New, 1))];
        Apps { logs, stops, tasks }
    }

    /// Wait until both have committed `n` transactions.
    async fn until(&self, n: u64) {
        for _ in 0..3000 {
            let mut least = u64::MAX;
            for l in &self.logs {
                least = least.min(l.lock().await.commits);
            }
            if least >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the applications did not reach {n} transactions");
    }

    async fn stop(&mut self, app: App) {
        let i = app as usize;
        self.stops[i].store(true, Ordering::SeqCst);
        if let Some(t) = self.tasks[i].take() {
            let errors = t.await.unwrap();
            assert!(errors.is_empty(), "{app:?} application: {errors:#?}");
        }
    }

    /// Every row as it must be: the original ones, then both applications' writes.
    async fn expected(&self, op: Op, cols: &[&str]) -> Vec<Row> {
        let mut all: BTreeMap<i64, Option<Row>> =
            (1..=ROWS).map(|id| (id, Some(original(op, id)))).collect();
        for l in &self.logs {
            all.extend(l.lock().await.rows.clone());
        }
        all.values()
            .flatten()
            .map(|r| project(op, r, cols))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The test database on both engines.

/// Where an application connects: a session of its own with the server's defaults.
#[derive(Clone)]
struct Source(Engine, String);

impl Source {
    async fn conn(&self) -> Conn {
        Conn::connect(self.0, &self.1).await
    }
}

/// A database with `items` (ROWS rows) and an empty twin of it.
async fn setup(engine: Engine, prefix: &str) -> Db {
    let db = Db::empty(engine, &format!("{prefix}_{}", engine.pick("m", "p"))).await;
    let twin_home = match engine {
        Engine::Maria => format!("CREATE DATABASE `{}_tw`", db.name()),
        Engine::Postgres => "CREATE SCHEMA twin".into(),
    };
    db.run(&twin_home).await;
    for t in ["items".to_string(), db.twin()] {
        db.run(&engine.create().replace("{t}", &t)).await;
    }
    db.run(engine.fill()).await;
    db
}

impl Db {
    fn source(&self) -> Source {
        Source(self.engine(), self.url().to_string())
    }

    /// The twin table, qualified.
    fn twin(&self) -> String {
        match self.engine() {
            Engine::Maria => format!("`{}_tw`.items", self.name()),
            Engine::Postgres => "twin.items".into(),
        }
    }

    async fn run(&self, sql: &str) {
        let r = self.source().conn().await.batch(sql).await;
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn select(&self, sql: &str) -> Result<Vec<Row>, String> {
        self.source().conn().await.texts(sql).await
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        let rows = self
            .select(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|r| r.into_iter().flatten().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// `items` (or its twin) as a direct ALTER leaves it: definition, indexes,
    /// constraints, triggers.
    async fn shape(&self, twin: bool) -> Vec<String> {
        match self.engine() {
            Engine::Maria => {
                let schema = if twin {
                    format!("{}_tw", self.name())
                } else {
                    self.name().to_string()
                };
                let mut out = self
                    .texts(&format!("SHOW CREATE TABLE `{schema}`.items"))
                    .await;
                out.extend(self.texts(&format!(
                    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = '{schema}' ORDER BY 1"
                )).await);
                out
            }
            Engine::Postgres => {
                let (schema, q) = if twin {
                    ("twin", "twin.items")
                } else {
                    ("public", "public.items")
                };
                let mut out = Vec::new();
                for sql in [
                    format!("SELECT concat_ws(' | ', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                     regexp_replace(pg_get_expr(d.adbin, d.adrelid), '_godwit_new_', '', 'g'), a.attidentity, a.attgenerated) \
                     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE a.attrelid = '{q}'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
                    format!("SELECT 'index ' || replace(pg_get_indexdef(indexrelid), '{schema}.', '') || ' valid ' || indisvalid FROM pg_index WHERE indrelid = '{q}'::regclass ORDER BY 1"),
                    format!("SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint WHERE conrelid = '{q}'::regclass ORDER BY 1"),
                    format!("SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = '{q}'::regclass AND NOT tgisinternal ORDER BY 1"),
                ] {
                    out.extend(self.texts(&sql).await);
                }
                out
            }
        }
    }

    /// The state table's rows (none when it does not exist).
    async fn state(&self) -> Vec<Row> {
        self.select("SELECT id, phase, backfill_op, backfill_after, rows_backfilled FROM _godwit_migrations ORDER BY id")
            .await
            .unwrap_or_default()
    }

    async fn phase_of(&self, id: &str) -> String {
        let st = self.state().await;
        let row = st.iter().find(|r| r[0].as_deref() == Some(id));
        row.and_then(|r| r[1].clone()).unwrap_or_default()
    }

    /// Everything a refused command must not change.
    async fn unchanged(&self) -> Vec<String> {
        let tables = match self.engine() {
            Engine::Maria => "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
            Engine::Postgres => "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1",
        };
        let mut out = self.texts(tables).await;
        // The state table appears with the first command that connects: bookkeeping.
        out.retain(|t| t != "_godwit_migrations");
        out.extend(self.shape(false).await);
        out.extend(self.state().await.into_iter().map(|r| format!("{r:?}")));
        out.extend(self.phase_leftovers().await);
        out.push(format!(
            "{:?}",
            self.select("SELECT COUNT(*) FROM items").await
        ));
        out
    }

    /// Drop the database and, on MariaDB, the twin's.
    async fn drop_all(self) {
        if self.engine() == Engine::Maria {
            self.exec(&format!("DROP DATABASE IF EXISTS `{}_tw`", self.name()))
                .await;
        }
        self.drop_db().await
    }
}

// ---------------------------------------------------------------------------------------
// Phase runs.

/// `CMD DIR --url URL --execute --format json --batch-size BATCH`.
fn args<'a>(db: &'a Db, cmd: &'a str, dir: &'a str, batch: &'a str) -> [&'a str; 9] {
    let url = db.url();
    [
        cmd,
        dir,
        "--url",
        url,
        "--execute",
        "--format",
        "json",
        "--batch-size",
        batch,
    ]
}

async fn phase(db: &Db, cmd: &str, dir: &str) -> Run {
    godwit(&args(db, cmd, dir, "300"), &[]).await
}

/// The `result` of a run's `phase` event (`done` or `noop`).
fn result(r: &Run) -> String {
    r.expect_ok();
    let e = r
        .event("phase")
        .unwrap_or_else(|| panic!("no phase event: {}", r.stdout));
    e["result"].as_str().unwrap_or_default().to_string()
}

/// Run `cmd` again: a no-op that changes nothing.
async fn again(db: &Db, cmd: &str, dir: &str) {
    let before = db.shape(false).await;
    let state = db.state().await;
    assert_eq!(result(&phase(db, cmd, dir).await), "noop", "{cmd} again");
    assert_eq!(
        db.shape(false).await,
        before,
        "{cmd} again changed the table"
    );
    assert_eq!(db.state().await, state, "{cmd} again changed the state");
}

async fn twice(db: &Db, cmd: &str, dir: &str) {
    assert_eq!(result(&phase(db, cmd, dir).await), "done", "{cmd}");
    again(db, cmd, dir).await;
}

/// A backfill killed mid-way resumes after its last finished batch. A row lock on row
/// HELD (whose value the backfill computes) stops the backfill there until the kill.
async fn killed_backfill_resumes(db: &Db, dir: &str) {
    let key = |v: &serde_json::Value| v[0].as_str().and_then(|s| s.parse::<i64>().ok());
    let mut holder = db.source().conn().await;
    let begin = db.source().0.pick("START TRANSACTION", "BEGIN");
    holder.batch(begin).await.unwrap();
    let lock = format!("SELECT id FROM items WHERE id = {HELD} FOR UPDATE");
    holder.texts(&lock).await.unwrap();
    let mut live = LiveRun::start(&args(db, "backfill", dir, "50"), &[]);
    live.wait_for(60, |e| {
        e["event"] == "backfill_progress" && key(&e["after"]).is_some_and(|k| k >= HELD - 100)
    })
    .await;
    live.signal(9);
    let _ = live.finish().await;
    holder.batch("ROLLBACK").await.unwrap();
    let st = db.state().await;
    assert_eq!(st[0][1].as_deref(), Some("backfilling"), "{st:?}");
    let saved: serde_json::Value = serde_json::from_str(st[0][3].as_deref().unwrap()).unwrap();
    let (saved, rows): (i64, u64) = (
        key(&saved).unwrap(),
        st[0][4].as_deref().unwrap().parse().unwrap(),
    );
    assert!((HELD - 100..HELD).contains(&saved), "killed at {saved}");
    let r = phase(db, "backfill", dir).await;
    assert_eq!(result(&r), "done");
    let first = r.event("backfill_progress").expect("progress");
    assert!(
        first["rows"].as_u64().unwrap() >= rows && key(&first["after"]).is_none_or(|k| k > saved),
        "did not resume after {saved} ({rows} rows): {first}"
    );
}

// ---------------------------------------------------------------------------------------
// Every operation through every phase.

async fn through_every_phase(engine: Engine, op: Op, end: End) {
    let prefix = format!(
        "o0{}{}",
        op as u8,
        if end == End::Contract { "c" } else { "a" }
    );
    let db = setup(engine, &prefix).await;
    let (dir, d) = write_migration(db.name(), "0001_change.toml", op.file());
    let original = db.shape(false).await;

    twice(&db, "expand", &d).await;
    if let Some(w) = op.refused_once_expanded() {
        assert!(
            db.select(w).await.is_err(),
            "once expanded, `{w}` must fail"
        );
    }
    let mut apps = Apps::start(&db, op);
    apps.until(20).await;
    if op.backfills() {
        killed_backfill_resumes(&db, &d).await;
        again(&db, "backfill", &d).await;
    } else {
        twice(&db, "backfill", &d).await;
    }
    apps.until(WRITES).await;
    apps.stop(App::Old).await;

    let cols = match end {
        End::Contract => {
            // The new application goes on writing while contract runs.
            twice(&db, "contract", &d).await;
            apps.stop(App::New).await;
            db.run(&op.direct(engine).replace("{t}", &db.twin())).await;
            assert_eq!(
                db.shape(false).await,
                db.shape(true).await,
                "contract must leave what the direct ALTER gives"
            );
            assert_eq!(db.phase_of("0001_change").await, "complete");
            op.result()
        }
        End::Abort => {
            apps.stop(App::New).await;
            twice(&db, "abort", &d).await;
            assert_eq!(
                db.shape(false).await,
                original,
                "abort must restore the schema"
            );
            assert_eq!(db.phase_of("0001_change").await, "aborted");
            BASE.to_vec()
        }
    };
    let got = db
        .select(&format!(
            "SELECT {} FROM items ORDER BY id",
            cols.join(", ")
        ))
        .await
        .unwrap();
    let want = apps.expected(op, &cols).await;
    assert_eq!(got.len(), want.len(), "row count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "a row differs from the mirror of the writes");
    }
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_all().await;
}

// ---------------------------------------------------------------------------------------
// Bad input and phases out of order: a clear error, and nothing changes.

/// Bad migrations (one operation each, as a TOML inline table), the exit code of
/// `expand` and what its error says besides the file's name.
#[rustfmt::skip]
const BAD: &[(&str, i32, &[&str])] = &[
    (r#"type = "frobnicate", table = "items""#, 40, &["operation #1", "frobnicate", "add_column"]),
    (r#"type = "add_column", table = "items", colum = { name = "x", type = "INT" }"#, 40, &["unknown field `colum`"]),
    (r#"type = "set_not_null", table = "items", column = "qty""#, 40, &["missing field `up`"]),
    (r#"type = "sql", down = "DROP TABLE audit""#, 40, &["missing field `up`"]),
    (r#"type = "add_column", table = "items", column = { name = "x", type = "INT", nullable = false }"#, 40, &["needs `up` or `default`"]),
    (r#"type = "set_not_null", table = "items", column = "nope", up = "0""#, 40, &["operation #1", MISSING]),
    (r#"type = "drop_column", table = "items", column = "nope""#, 40, &[MISSING]),
    (r#"type = "add_index", table = "items", name = "idx_x", columns = ["qty", "nope"]"#, 40, &[MISSING]),
    (r#"type = "add_column", table = "nothere", column = { name = "x", type = "INT" }"#, 12, &["table `nothere` does not exist"]),
    (r#"type = "add_column", table = "items", column = { name = "qty", type = "INT" }"#, 40, &["column `qty` already exists"]),
    (r#"type = "set_not_null", table = "items", column = "name", up = "'x'""#, 40, &["already NOT NULL"]),
    (r#"type = "add_index", table = "items", name = "idx_name", columns = ["qty"]"#, 40, &["index `idx_name` already exists"]),
    (r#"type = "drop_column", table = "items", column = "code""#, 40, &["NOT NULL without a default", "give `down`"]),
];
const MISSING: &str = "column `nope` does not exist in table `items`";

/// The run failed with `code`, and its error names the migration `id` and says `says`.
fn refused(r: &Run, code: i32, id: &str, says: &[&str]) {
    let e = r
        .event("error")
        .unwrap_or_else(|| panic!("not refused:\n{}\n{}", r.stdout, r.stderr));
    assert_eq!((r.code, &e["exit_code"]), (code, &code.into()), "{e}");
    let msg = e["message"].as_str().unwrap_or_default();
    for w in says.iter().chain(&[id]) {
        assert!(msg.contains(w), "`{w}` missing from: {msg}");
    }
}

async fn bad_files_change_nothing(engine: Engine) {
    let db = setup(engine, "o0bad").await;
    for (i, (body, code, says)) in BAD.iter().enumerate() {
        let text = format!("name = \"bad\"\noperations = [{{ {body} }}]\n");
        let (dir, d) = write_migration(&format!("{}_{i}", db.name()), "0001_bad.toml", &text);
        let before = db.unchanged().await;
        refused(
            &phase(&db, "expand", &d).await,
            *code,
            "0001_bad.toml",
            says,
        );
        assert_eq!(
            db.unchanged().await,
            before,
            "refusing {body} changed something"
        );
        std::fs::remove_dir_all(dir).ok();
    }
    db.drop_all().await;
}

enum Expect {
    Done,
    Noop,
    Refused(&'static [&'static str]),
}

/// Run each phase on the migration file `dir/id.toml` and expect what the step says; a
/// refused phase changes nothing.
async fn steps(db: &Db, dir: &std::path::Path, id: &str, steps: &[(&str, Expect)]) {
    let file = dir.join(format!("{id}.toml")).to_string_lossy().to_string();
    for (cmd, expect) in steps {
        let before = db.unchanged().await;
        let r = phase(db, cmd, &file).await;
        match expect {
            Expect::Done => assert_eq!(result(&r), "done", "{cmd}"),
            Expect::Noop => assert_eq!(result(&r), "noop", "{cmd}"),
            Expect::Refused(says) => {
                refused(&r, 40, id, says);
                assert_eq!(
                    db.unchanged().await,
                    before,
                    "refusing {cmd} changed something"
                );
            }
        }
    }
}

async fn phases_out_of_order_change_nothing(engine: Engine) {
    use Expect::*;
    let db = setup(engine, "o0ord").await;
    let (dir, _) = write_migration(db.name(), "0001_change.toml", Op::AddColumn.file());
    const NOT_STARTED: &str = "while the migration is not started";
    steps(
        &db,
        &dir,
        "0001_change",
        &[
            (
                "backfill",
                Refused(&[NOT_STARTED, "run `godwit expand` first"]),
            ),
            ("contract", Refused(&[NOT_STARTED])),
            ("abort", Noop),
            ("expand", Done),
            (
                "contract",
                Refused(&[
                    "while the migration is expanded",
                    "run `godwit backfill` first",
                ]),
            ),
            ("backfill", Done),
            ("expand", Noop),
            ("contract", Done),
            (
                "abort",
                Refused(&["already contracted", "only possible before contract"]),
            ),
            ("backfill", Noop),
        ],
    )
    .await;
    // `sql` without `down` cannot be aborted.
    let audit = "name = \"audit\"\n[[operations]]\ntype = \"sql\"\nup = \"CREATE TABLE audit (id INT PRIMARY KEY)\"\n";
    std::fs::write(dir.join("0002_audit.toml"), audit).unwrap();
    let no_down = Refused(&["no `down`", "cannot be aborted automatically"]);
    steps(
        &db,
        &dir,
        "0002_audit",
        &[
            ("expand", Done),
            ("abort", no_down),
            ("backfill", Done),
            ("contract", Done),
        ],
    )
    .await;
    std::fs::remove_dir_all(dir).ok();
    db.drop_all().await;
}

/// An `up` whose values the column cannot hold (`name` is `n1`, `n2`, …; the column is
/// an INT) must refuse expand before anything changes: once expanded, its trigger would
/// fail every insert of the old application, and the backfill would fail.
async fn up_that_cannot_convert_changes_nothing(engine: Engine) {
    let db = setup(engine, "o0conv").await;
    let text = r#"name = "bad up"
operations = [{ type = "add_column", table = "items", column = { name = "score", type = "INT" }, up = "name" }]
"#;
    let (dir, d) = write_migration(db.name(), "0001_bad.toml", text);
    let before = db.unchanged().await;
    refused(
        &phase(&db, "expand", &d).await,
        40,
        "0001_bad.toml",
        &["`up`", "INT"],
    );
    assert_eq!(
        db.unchanged().await,
        before,
        "refusing expand changed something"
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_all().await;
}

async fn add_column_contract(e: Engine) {
    through_every_phase(e, Op::AddColumn, End::Contract).await;
}

async fn add_column_abort(e: Engine) {
    through_every_phase(e, Op::AddColumn, End::Abort).await;
}

async fn set_not_null_contract(e: Engine) {
    through_every_phase(e, Op::SetNotNull, End::Contract).await;
}

async fn set_not_null_abort(e: Engine) {
    through_every_phase(e, Op::SetNotNull, End::Abort).await;
}

async fn drop_column_contract(e: Engine) {
    through_every_phase(e, Op::DropColumn, End::Contract).await;
}

async fn drop_column_abort(e: Engine) {
    through_every_phase(e, Op::DropColumn, End::Abort).await;
}

async fn add_index_contract(e: Engine) {
    through_every_phase(e, Op::AddIndex, End::Contract).await;
}

async fn add_index_abort(e: Engine) {
    through_every_phase(e, Op::AddIndex, End::Abort).await;
}

async fn sql_contract(e: Engine) {
    through_every_phase(e, Op::Sql, End::Contract).await;
}

async fn sql_abort(e: Engine) {
    through_every_phase(e, Op::Sql, End::Abort).await;
}

support::both::cases!(
    add_column_contract,
    add_column_abort,
    set_not_null_contract,
    set_not_null_abort,
    drop_column_contract,
    drop_column_abort,
    add_index_contract,
    add_index_abort,
    sql_contract,
    sql_abort,
    bad_files_change_nothing,
    phases_out_of_order_change_nothing,
    up_that_cannot_convert_changes_nothing,
);
