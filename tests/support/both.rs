//! Tests that run one case table on both engines: a database with `orders` (ROWS rows)
//! and the canary table `victim`, read and written through one API, and a writer.

use super::mysql::TestDb as MariaDb;
use super::postgres::TestDb as PgDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One case table, run on every engine: `cases!(a, b)` makes the tests `on_mariadb::a`,
/// `on_mariadb::b`, `on_postgres::a`, `on_postgres::b`, each calling `a(Engine::…)` (an
/// async function of the test file taking the engine), on tokio's current-thread runtime
/// (`#[tokio::test]`).
///
/// `cases!(multi_thread: a, b)` makes the same tests on the multi-thread runtime
/// (`#[tokio::test(flavor = "multi_thread")]`). Both forms make the modules `on_mariadb`
/// and `on_postgres`: a test file invokes `cases!` once, in one form.
#[allow(unused_macros)]
macro_rules! cases {
    (multi_thread: $($name:ident),* $(,)?) => {
        $crate::support::both::cases!(@with tokio::test(flavor = "multi_thread"); $($name),*);
    };
    (@with $test:meta; $($name:ident),* $(,)?) => {
        mod on_mariadb {
            $(#[$test]
            async fn $name() {
                super::$name($crate::support::both::Engine::Maria).await
            })*
        }
        mod on_postgres {
            $(#[$test]
            async fn $name() {
                super::$name($crate::support::both::Engine::Postgres).await
            })*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::support::both::cases!(@with tokio::test; $($name),*);
    };
}
#[allow(unused_imports)]
pub(crate) use cases;

pub const ROWS: i64 = 3000;
/// Ids the writer inserts start here, above the table's own rows.
pub const WRITER_IDS: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Maria,
    Postgres,
}

impl Engine {
    /// The spelling of `maria` or of `pg`, whichever is this engine's.
    pub fn pick<T>(self, maria: T, pg: T) -> T {
        match self {
            Engine::Maria => maria,
            Engine::Postgres => pg,
        }
    }

    /// `mariadb` or `postgres`: a word for messages and names.
    pub fn word(self) -> &'static str {
        self.pick("mariadb", "postgres")
    }
}

/// A test database with `orders` (ROWS rows) and the canary table `victim`.
pub enum Db {
    Maria(MariaDb),
    Postgres(PgDb),
}

impl Db {
    pub async fn new(engine: Engine, prefix: &str) -> Db {
        let server = match engine {
            Engine::Maria => super::mysql::server_url().await,
            Engine::Postgres => super::postgres::server_url().await,
        };
        Self::new_on(engine, &server, prefix).await
    }

    /// The same, on the server at `server` (e.g. a private one a test restarts).
    pub async fn new_on(engine: Engine, server: &str, prefix: &str) -> Db {
        let db = Self::empty_on(engine, server, prefix).await;
        db.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))")
            .await;
        db.exec(match engine {
            Engine::Maria => {
                "INSERT INTO orders (id, v, note) SELECT seq, seq * 7, 'row' FROM seq_1_to_3000"
            }
            Engine::Postgres => {
                "INSERT INTO orders (id, v, note) SELECT i, i * 7, 'row' FROM generate_series(1, 3000) i"
            }
        })
        .await;
        db.exec("CREATE TABLE victim (id INT PRIMARY KEY)").await;
        db.exec("INSERT INTO victim VALUES (1), (2), (3)").await;
        db
    }

    /// A database of its own without any table (for tests that create their own).
    pub async fn empty(engine: Engine, prefix: &str) -> Db {
        let server = match engine {
            Engine::Maria => super::mysql::server_url().await,
            Engine::Postgres => super::postgres::server_url().await,
        };
        Self::empty_on(engine, &server, prefix).await
    }

    pub async fn empty_on(engine: Engine, server: &str, prefix: &str) -> Db {
        match engine {
            Engine::Maria => Db::Maria(MariaDb::new_on(server, prefix).await),
            Engine::Postgres => Db::Postgres(PgDb::new_on(server, prefix).await),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Maria(_) => Engine::Maria,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// The same database through new connections (after a server restart).
    pub async fn reopen(&self) -> Db {
        match self {
            Db::Maria(d) => Db::Maria(d.reopen()),
            Db::Postgres(d) => Db::Postgres(d.reopen().await),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        match self {
            Db::Maria(d) => &d.name,
            Db::Postgres(d) => &d.name,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Db::Maria(d) => &d.url,
            Db::Postgres(d) => &d.url,
        }
    }

    /// The URL of this database through a login `user` with `password` (created, with
    /// every privilege, when it does not exist yet).
    pub async fn url_as(&self, user: &str, password: &str) -> String {
        match self.engine() {
            Engine::Maria => {
                self.exec(&format!(
                    "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'"
                ))
                .await;
                self.exec(&format!("GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"))
                    .await;
            }
            // Tests running at the same time may create the same role.
            Engine::Postgres => {
                self.exec(&format!(
                    "DO $$ BEGIN CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'; \
                     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                ))
                .await
            }
        }
        let url = self.url();
        let (scheme, rest) = url.split_once("://").unwrap();
        let (_, hostpart) = rest.split_once('@').unwrap();
        format!("{scheme}://{user}:{password}@{hostpart}")
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Db::Maria(d) => d.exec(sql).await,
            Db::Postgres(d) => d.exec(sql).await,
        }
    }

    /// Run `sql` (statements separated by `;`) and say whether the server accepted it.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        Conn::open(self).await.batch(sql).await
    }

    /// One column of text values.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Db::Maria(d) => d.query::<String>(sql).await,
            Db::Postgres(d) => d.strings(sql).await,
        }
    }

    /// Rows of `orders` matching `filter`.
    pub async fn count(&self, filter: &str) -> usize {
        let sql = match self.engine() {
            Engine::Maria => format!("SELECT CAST(COUNT(*) AS CHAR) FROM orders WHERE {filter}"),
            Engine::Postgres => format!("SELECT count(*)::text FROM orders WHERE {filter}"),
        };
        self.strings(&sql).await[0].parse().unwrap()
    }

    /// Every row of `orders` with an id below `below`, as text, in key order.
    pub async fn rows(&self, below: i64) -> Vec<String> {
        let sql = match self.engine() {
            Engine::Maria => format!(
                "SELECT CONCAT_WS('|', id, v, IFNULL(note, 'NULL')) FROM orders WHERE id < {below} ORDER BY id"
            ),
            Engine::Postgres => format!(
                "SELECT concat_ws('|', id, v, coalesce(note, 'NULL')) FROM orders WHERE id < {below} ORDER BY id"
            ),
        };
        self.strings(&sql).await
    }

    pub async fn victim(&self) -> Vec<String> {
        self.strings(match self.engine() {
            Engine::Maria => "SELECT CAST(id AS CHAR) FROM victim ORDER BY id",
            Engine::Postgres => "SELECT id::text FROM victim ORDER BY id",
        })
        .await
    }

    pub async fn columns(&self, table: &str) -> Vec<String> {
        let sql = match self.engine() {
            Engine::Maria => format!(
                "SELECT CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
            ),
            Engine::Postgres => format!(
                "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
        };
        self.strings(&sql).await
    }

    /// Every table, trigger, slot and publication of godwit's in this database.
    pub async fn leftovers(&self) -> Vec<String> {
        match self {
            Db::Maria(d) => {
                let mut t = d.query::<String>("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%godwit%'").await;
                t.extend(d.query::<String>("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE '%godwit%'").await);
                t
            }
            Db::Postgres(d) => {
                let mut t = d.leftovers().await;
                t.extend(d.strings("SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()").await);
                t.extend(d.strings("SELECT 'table ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE '%godwit%' AND n.nspname <> 'public'").await);
                t
            }
        }
    }

    /// Everything of godwit's in this database except the phases' state table.
    pub async fn phase_leftovers(&self) -> Vec<String> {
        match self {
            Db::Maria(d) => d.phase_leftovers().await,
            Db::Postgres(d) => d.phase_leftovers().await,
        }
    }

    /// What must not change: the canary, the target's columns and original rows, and no
    /// object of godwit's.
    pub async fn snapshot(&self) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        (
            self.victim().await,
            self.columns("orders").await,
            self.rows(WRITER_IDS).await,
            self.leftovers().await,
        )
    }

    pub async fn drop_db(self) {
        match self {
            Db::Maria(d) => d.drop_db().await,
            Db::Postgres(d) => d.drop_db().await,
        }
    }
}

/// Inserts rows into `orders` (ids from WRITER_IDS) until stopped; returns the ids whose
/// insert committed. Errors are allowed only while the test cuts the server away.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<i64>>,
}

impl Writer {
    pub fn start(engine: Engine, url: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut done = Vec::new();
            let mut id = WRITER_IDS;
            while !s.load(Ordering::SeqCst) {
                id += 1;
                let sql = format!("INSERT INTO orders (id, v, note) VALUES ({id}, {id}, 'w')");
                let ok = match engine {
                    Engine::Maria => {
                        use mysql_async::prelude::Queryable;
                        let opts = mysql_async::Opts::from_url(&url).unwrap();
                        match mysql_async::Conn::new(opts).await {
                            Ok(mut c) => {
                                let r = c.query_drop(&sql).await.is_ok();
                                let _ = c.disconnect().await;
                                r
                            }
                            Err(_) => false,
                        }
                    }
                    Engine::Postgres => {
                        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                            Ok((c, conn)) => {
                                tokio::spawn(async move {
                                    let _ = conn.await;
                                });
                                c.execute(&sql, &[]).await.is_ok()
                            }
                            Err(_) => false,
                        }
                    }
                };
                if ok {
                    done.push(id);
                }
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            done
        });
        Writer { stop, task }
    }

    pub async fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Inserts, updates and deletes rows of `orders` (the table's own rows and its own
/// inserts, ids from WRITER_IDS) until stopped, each write and its copy into
/// `orders_mirror` in one transaction: at the end `orders` must equal the mirror.
pub struct MirrorWriter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl MirrorWriter {
    /// Creates `orders_mirror` (a copy of `orders` now) and starts writing.
    pub async fn start(db: &Db, seed: u64) -> MirrorWriter {
        db.exec("CREATE TABLE orders_mirror AS SELECT * FROM orders")
            .await;
        let (engine, url) = (db.engine(), db.url().to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (mut ops, mut errors) = (0u64, Vec::new());
            let mut next = WRITER_IDS;
            let mut maria = match engine {
                Engine::Maria => Some(
                    mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                        .await
                        .unwrap(),
                ),
                Engine::Postgres => None,
            };
            let mut pg = match engine {
                Engine::Postgres => Some(super::postgres::connect(&url).await),
                Engine::Maria => None,
            };
            while !s.load(Ordering::SeqCst) {
                let op = rng.random_range(0..3u32);
                let id = if rng.random_bool(0.5) || next == WRITER_IDS {
                    rng.random_range(1..=ROWS)
                } else {
                    rng.random_range(WRITER_IDS + 1..=next)
                };
                let v = rng.random_range(0..1_000_000i64);
                let stmts: Vec<String> = match op {
                    0 => {
                        next += 1;
                        ["orders", "orders_mirror"]
                            .iter()
                            .map(|t| {
                                format!("INSERT INTO {t} (id, v, note) VALUES ({next}, {v}, 'w')")
                            })
                            .collect()
                    }
                    1 => ["orders", "orders_mirror"]
                        .iter()
                        .map(|t| format!("UPDATE {t} SET v = {v}, note = 'u{v}' WHERE id = {id}"))
                        .collect(),
                    _ => ["orders", "orders_mirror"]
                        .iter()
                        .map(|t| format!("DELETE FROM {t} WHERE id = {id}"))
                        .collect(),
                };
                let r: Result<(), String> = match (&mut maria, &mut pg) {
                    (Some(c), _) => {
                        use mysql_async::prelude::Queryable;
                        async {
                            c.query_drop("START TRANSACTION").await?;
                            for st in &stmts {
                                c.query_drop(st).await?;
                            }
                            c.query_drop("COMMIT").await
                        }
                        .await
                        .map_err(|e| e.to_string())
                    }
                    (_, Some(c)) => async {
                        let tx = c.transaction().await?;
                        for st in &stmts {
                            tx.execute(st.as_str(), &[]).await?;
                        }
                        tx.commit().await
                    }
                    .await
                    .map_err(|e| e.to_string()),
                    _ => unreachable!(),
                };
                match r {
                    Ok(()) => ops += 1,
                    Err(e) => errors.push(e),
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (ops, errors)
        });
        MirrorWriter { stop, task }
    }

    /// Stop; asserts the writer wrote and had no error. Returns the writes made.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let (ops, errors) = self.task.await.unwrap();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
        assert!(ops > 0, "no writes");
        ops
    }
}

impl Db {
    /// `orders` and `orders_mirror`, every row as text in key order.
    pub async fn orders_and_mirror(&self) -> (Vec<String>, Vec<String>) {
        let q = |t: &str| match self.engine() {
            Engine::Maria => {
                format!("SELECT CONCAT_WS('|', id, v, IFNULL(note, 'NULL')) FROM {t} ORDER BY id")
            }
            Engine::Postgres => {
                format!("SELECT concat_ws('|', id, v, coalesce(note, 'NULL')) FROM {t} ORDER BY id")
            }
        };
        (
            self.strings(&q("orders")).await,
            self.strings(&q("orders_mirror")).await,
        )
    }
}

/// One session of its own on a test database, with the server's default session settings
/// (a client that knows nothing of godwit).
pub enum Conn {
    Maria(mysql_async::Conn),
    Postgres(tokio_postgres::Client),
}

impl Conn {
    pub async fn open(db: &Db) -> Conn {
        Self::connect(db.engine(), db.url()).await
    }

    /// A session on the database at `url`.
    pub async fn connect(engine: Engine, url: &str) -> Conn {
        match engine {
            Engine::Maria => Conn::Maria(
                mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap())
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}")),
            ),
            Engine::Postgres => Conn::Postgres(super::postgres::connect(url).await),
        }
    }

    /// End the session (as a client that goes away does).
    pub async fn close(self) {
        match self {
            Conn::Maria(c) => {
                let _ = c.disconnect().await;
            }
            Conn::Postgres(c) => drop(c),
        }
    }

    /// Run `sql`, statements separated by `;` (sent one by one on MariaDB).
    pub async fn batch(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Conn::Maria(c) => {
                use mysql_async::prelude::Queryable;
                for s in super::mysql::split(sql) {
                    c.query_drop(&s).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Conn::Postgres(c) => c.batch_execute(sql).await.map_err(|e| pg_message(&e)),
        }
    }

    /// `stmts` as one transaction; rolled back when one fails.
    pub async fn transaction(&mut self, stmts: &[String]) -> Result<(), String> {
        self.try_transaction(stmts).await.map_err(|(e, _)| e)
    }

    /// `stmts` as one transaction, again after a deadlock (up to 50 times), as an
    /// application would.
    pub async fn transaction_retried(&mut self, stmts: &[String]) -> Result<(), String> {
        for _ in 0..50 {
            match self.try_transaction(stmts).await {
                Err((_, true)) => continue,
                r => return r.map_err(|(e, _)| e),
            }
        }
        Err("still a deadlock victim after 50 attempts".to_string())
    }

    /// The error says whether the server chose this transaction as a deadlock's victim.
    async fn try_transaction(&mut self, stmts: &[String]) -> Result<(), (String, bool)> {
        match self {
            Conn::Maria(c) => {
                use mysql_async::prelude::Queryable;
                let r = async {
                    c.query_drop("START TRANSACTION").await?;
                    for s in stmts {
                        c.query_drop(s).await?;
                    }
                    c.query_drop("COMMIT").await
                }
                .await;
                if r.is_err() {
                    let _ = c.query_drop("ROLLBACK").await;
                }
                r.map_err(|e| {
                    let deadlock = matches!(&e, mysql_async::Error::Server(s) if s.code == 1213);
                    (e.to_string(), deadlock)
                })
            }
            Conn::Postgres(c) => {
                let r = async {
                    let tx = c.transaction().await?;
                    for s in stmts {
                        tx.batch_execute(s).await?;
                    }
                    tx.commit().await
                }
                .await;
                r.map_err(|e| {
                    let deadlock =
                        e.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED);
                    (pg_message(&e), deadlock)
                })
            }
        }
    }

    /// The rows of one query, every value as text (NULL: None).
    pub async fn texts(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        match self {
            Conn::Maria(c) => {
                use mysql_async::prelude::Queryable;
                let rows: Vec<mysql_async::Row> = c.query(sql).await.map_err(|e| e.to_string())?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        r.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                mysql_async::Value::NULL => None,
                                mysql_async::Value::Bytes(b) => {
                                    Some(String::from_utf8_lossy(&b).into())
                                }
                                v => Some(v.as_sql(true)),
                            })
                            .collect()
                    })
                    .collect())
            }
            Conn::Postgres(c) => {
                let msgs = c.simple_query(sql).await.map_err(|e| pg_message(&e))?;
                Ok(msgs
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect())
            }
        }
    }

    /// The first column of the first row as text, when there is a row.
    pub async fn first(&mut self, sql: &str) -> Result<Option<String>, String> {
        Ok(self
            .texts(sql)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }
}

// ---------------------------------------------------------------------------------------
// Running godwit on `orders` and following its events.

/// `godwit run --url URL --table orders --alter ALTER --execute --format json`, then
/// `extra` (each test adds its knobs: chunk size, rate, `--ok-to-drop-table`, …).
pub fn run_args<'a>(url: &'a str, alter: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    run_args_on(url, "orders", alter, extra)
}

/// [`run_args`] for another table.
pub fn run_args_on<'a>(
    url: &'a str,
    table: &'a str,
    alter: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--url",
        url,
        "--table",
        table,
        "--alter",
        alter,
        "--execute",
        "--format",
        "json",
    ];
    v.extend_from_slice(extra);
    v
}

/// A `state` event naming `state`.
pub fn is_state(e: &serde_json::Value, state: &str) -> bool {
    e["event"] == "state" && e["state"] == state
}

impl super::LiveRun {
    /// Wait (at most `secs`) for the run to enter `state`.
    pub async fn wait_state(&mut self, secs: u64, state: &str) -> serde_json::Value {
        self.wait_for(secs, |e| is_state(e, state)).await
    }

    /// Wait (at most `secs`) for a `progress` event with at least `rows` rows copied.
    pub async fn wait_copied(&mut self, secs: u64, rows: u64) -> serde_json::Value {
        self.wait_for(secs, |e| {
            e["event"] == "progress" && e["rows_copied"].as_u64() >= Some(rows)
        })
        .await
    }

    /// Wait (at most `secs`) for a `backfill_progress` event with at least `rows` rows
    /// done.
    pub async fn wait_backfilled(&mut self, secs: u64, rows: u64) -> serde_json::Value {
        self.wait_for(secs, |e| {
            e["event"] == "backfill_progress" && e["rows"].as_u64() >= Some(rows)
        })
        .await
    }

    /// Send the run signal `sig` (9: SIGKILL, 15: SIGTERM).
    pub fn signal(&self, sig: i32) {
        super::phases::signal(self.pid(), sig);
    }

    /// Wait for the run to end; fails the test after `secs`.
    pub async fn finish_within(self, secs: u64) -> super::Run {
        tokio::time::timeout(std::time::Duration::from_secs(secs), self.finish())
            .await
            .unwrap_or_else(|_| panic!("godwit did not finish within {secs} s"))
    }
}

/// The server's message of a PostgreSQL error ("db error" alone says nothing), with its
/// SQLSTATE.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}
