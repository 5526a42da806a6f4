//! MariaDB/MySQL test databases.

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Pool, Row, Value};
use tokio::sync::OnceCell;

static SERVER_URL: OnceCell<String> = OnceCell::const_new();
static CONTAINER: OnceCell<
    Option<
        testcontainers_modules::testcontainers::ContainerAsync<
            testcontainers_modules::mariadb::Mariadb,
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
            testcontainers_modules::mariadb::Mariadb::default()
                .with_cmd([
                    "--log-bin=binlog",
                    "--binlog-format=ROW",
                    "--binlog-row-image=FULL",
                    "--server-id=1",
                    "--event-scheduler=ON",
                ])
                .start()
                .await
                .ok()
        })
        .await
        .as_ref()?;
    let port = c.get_host_port_ipv4(3306).await.ok()?;
    Some(format!("mysql://root@127.0.0.1:{port}/mysql"))
}

/// The server's URL (any database).
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(u) = std::env::var("GODWIT_TEST_MYSQL_URL") {
                return u;
            }
            if let Some(u) = from_container().await {
                return u;
            }
            tokio::task::spawn_blocking(|| {
                super::start_local_server("start_mariadb", "GODWIT_TEST_MYSQL_URL")
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

/// A database of its own for one test, dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: Pool,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        Self::new_on(&server_url().await, prefix).await
    }

    /// A database of its own on the server at `server` (e.g. a private one).
    pub async fn new_on(server: &str, prefix: &str) -> TestDb {
        let server = server.to_string();
        let name = super::unique_name(prefix);
        let mut admin = Conn::new(Opts::from_url(&server).unwrap())
            .await
            .expect("connect to MariaDB");
        admin
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        admin.disconnect().await.unwrap();
        let url = with_db(&server, &name);
        let pool = Pool::new(Opts::from_url(&url).unwrap());
        TestDb { name, url, pool }
    }

    /// The same database through new connections (after a server restart).
    pub fn reopen(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            pool: Pool::new(Opts::from_url(&self.url).unwrap()),
        }
    }

    pub async fn conn(&self) -> Conn {
        self.pool.get_conn().await.unwrap()
    }

    /// Run `sql`, which may hold several statements: each is sent on its own (godwit's
    /// connections, and so these, never allow several statements per query).
    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        for s in split(sql) {
            c.query_drop(&s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    pub async fn query<T: FromRow + Send + 'static>(&self, sql: &str) -> Vec<T> {
        let mut c = self.conn().await;
        c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn count(&self, table: &str) -> u64 {
        self.query::<u64>(&format!("SELECT COUNT(*) FROM `{table}`"))
            .await[0]
    }

    /// Every row of `table` as values, columns `cols`, ordered by `order`.
    pub async fn rows(&self, table: &str, cols: &str, order: &str) -> Vec<Vec<Value>> {
        let rows: Vec<Row> = self
            .query(&format!("SELECT {cols} FROM `{table}` ORDER BY {order}"))
            .await;
        rows.into_iter().map(|r| r.unwrap()).collect()
    }

    /// Tables whose name starts with godwit's prefix, except `keep`.
    pub async fn leftovers(&self, keep: &[&str]) -> Vec<String> {
        let names: Vec<String> = self
            .query(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND (TABLE_NAME LIKE '\\_godwit\\_%' OR TABLE_NAME LIKE '%\\_godwit\\_new' OR TABLE_NAME LIKE '%\\_godwit\\_cut')",
                self.name
            ))
            .await;
        names
            .into_iter()
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    }

    /// Everything of godwit's in this database except the phases' state table: tables,
    /// views, triggers, indexes and constraints whose name starts with `_godwit`.
    pub async fn phase_leftovers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .query(&format!(
                "SELECT CONCAT(TABLE_TYPE, ' ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{0}' AND TABLE_NAME LIKE '\\_godwit%' AND TABLE_NAME <> '_godwit_migrations' \
                 UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{0}' AND TRIGGER_NAME LIKE '\\_godwit%' \
                 UNION ALL SELECT DISTINCT CONCAT('index ', TABLE_NAME, '.', INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{0}' AND INDEX_NAME LIKE '\\_godwit%' \
                 UNION ALL SELECT CONCAT('constraint ', TABLE_NAME, '.', CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = '{0}' AND CONSTRAINT_NAME LIKE '\\_godwit%'",
                self.name
            ))
            .await;
        v.sort();
        v
    }

    pub async fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .query(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
                self.name
            ))
            .await;
        t.sort();
        t
    }

    /// `SHOW CREATE TABLE`, for "nothing changed" checks.
    pub async fn show_create(&self, table: &str) -> String {
        // Bytes: a BINARY default is shown as raw bytes, not always UTF-8.
        let r: Vec<(String, Vec<u8>)> = self.query(&format!("SHOW CREATE TABLE `{table}`")).await;
        String::from_utf8_lossy(&r[0].1).to_string()
    }

    pub async fn drop_db(self) {
        let mut c = self.conn().await;
        let _ = c.query_drop(format!("DROP DATABASE `{}`", self.name)).await;
        drop(c);
        let _ = self.pool.disconnect().await;
    }
}

/// The standard test table (the shape of the peers' benchmark): `rows` rows, ids 1..=rows.
pub async fn create_orders(db: &TestDb, table: &str, rows: u64) {
    db.exec(&format!(
        "CREATE TABLE `{table}` (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT NOT NULL,
            status VARCHAR(32) NOT NULL DEFAULT 'new',
            amount DECIMAL(12,2) NOT NULL,
            note VARCHAR(255) NULL,
            created_at DATETIME(6) NOT NULL,
            KEY idx_user (user_id)
        ) ENGINE=InnoDB"
    ))
    .await;
    if rows > 0 {
        db.exec(&format!(
            "INSERT INTO `{table}` (id, user_id, status, amount, note, created_at)
             SELECT seq, seq % 997, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'done'),
                    (seq % 100000) / 100, IF(seq % 7 = 0, NULL, CONCAT('note ', seq)),
                    TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND
             FROM seq_1_to_{rows}"
        ))
        .await;
    }
}

pub const ORDERS_COLS: &str = "id, user_id, status, amount, note, created_at";

/// Concurrent writers: every write goes to `table` and, in the same transaction, to
/// `mirror`, so the expected final content is known whatever the timing.
pub struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

pub struct WriterStats {
    pub ops: u64,
    pub errors: Vec<String>,
}

impl Writers {
    /// `n` tasks; ids 1..=max_id exist at start.
    ///
    /// Each writer owns the rows it touches: the original ids in its residue class and
    /// the rows it created. Otherwise two writers' transactions interleave (an UPDATE that
    /// finds no row in the table, then finds the other writer's fresh insert in the
    /// mirror) and the mirror stops being a faithful record.
    pub fn start(db: &TestDb, table: &str, mirror: &str, n: usize, max_id: u64) -> Writers {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..n {
            let pool = db.pool.clone();
            let stop = stop.clone();
            let (table, mirror) = (table.to_string(), mirror.to_string());
            tasks.push(tokio::spawn(async move {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64 * 7919 + 1);
                let mut errors = Vec::new();
                let mut ops = 0u64;
                let mut mine: Vec<i64> = Vec::new();
                // Explicit new ids are negative (never met by AUTO_INCREMENT) and in this
                // writer's class.
                let mut next_new: i64 = -(w as i64) - 1;
                let mut conn = pool.get_conn().await.unwrap();
                while !stop.load(Ordering::SeqCst) {
                    let op = rng.random_range(0..100);
                    let id = if !mine.is_empty() && rng.random_range(0..4) == 0 {
                        mine[rng.random_range(0..mine.len())]
                    } else {
                        let k = rng.random_range(0..(max_id / n as u64).max(1)) as i64;
                        k * n as i64 + w as i64 + 1
                    };
                    let amount = format!(
                        "{}.{:02}",
                        rng.random_range(0..100000),
                        rng.random_range(0..100)
                    );
                    let r = write_once(
                        &mut conn,
                        &table,
                        &mirror,
                        op,
                        id,
                        &amount,
                        &mut next_new,
                        n as i64,
                    )
                    .await;
                    ops += 1;
                    match r {
                        Ok(Some(created)) => mine.push(created),
                        Ok(None) => {}
                        Err(e) => {
                            errors.push(e.to_string().chars().take(200).collect());
                            if errors.len() > 20 {
                                break;
                            }
                            conn = pool.get_conn().await.unwrap();
                        }
                    }
                }
                (ops, errors)
            }));
        }
        Writers { stop, tasks }
    }

    pub async fn stop(self) -> WriterStats {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut s = WriterStats {
            ops: 0,
            errors: Vec::new(),
        };
        for t in self.tasks {
            let (ops, errs) = t.await.unwrap();
            s.ops += ops;
            s.errors.extend(errs);
        }
        s
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_once(
    conn: &mut Conn,
    table: &str,
    mirror: &str,
    op: u32,
    id: i64,
    amount: &str,
    next_new: &mut i64,
    step: i64,
) -> Result<Option<i64>, mysql_async::Error> {
    use mysql_async::{IsolationLevel, TxOpts};
    let mut opts = TxOpts::default();
    opts.with_isolation_level(IsolationLevel::ReadCommitted);
    let mut tx = conn.start_transaction(opts).await?;
    let mut created = None;
    match op {
        0..=24 => {
            // insert: half with an explicit id, half AUTO_INCREMENT (mirrored by value)
            if op.is_multiple_of(2) {
                let new = *next_new;
                *next_new -= step;
                for t in [table, mirror] {
                    tx.exec_drop(
                        format!("INSERT INTO `{t}` (id, user_id, status, amount, note, created_at) VALUES (?, ?, 'new', ?, 'w', '2025-06-01 12:00:00.123456')"),
                        (new, id.rem_euclid(997), amount),
                    )
                    .await?;
                }
                created = Some(new);
            } else {
                tx.exec_drop(
                    format!("INSERT INTO `{table}` (user_id, status, amount, note, created_at) VALUES (?, 'auto', ?, 'a', '2025-01-01 00:00:00.5')"),
                    (id.rem_euclid(997), amount),
                )
                .await?;
                let new: i64 = tx
                    .query_first("SELECT LAST_INSERT_ID()")
                    .await?
                    .unwrap_or(0);
                tx.exec_drop(
                    format!("INSERT INTO `{mirror}` (id, user_id, status, amount, note, created_at) VALUES (?, ?, 'auto', ?, 'a', '2025-01-01 00:00:00.5')"),
                    (new, id.rem_euclid(997), amount),
                )
                .await?;
                created = Some(new);
            }
        }
        25..=79 => {
            for t in [table, mirror] {
                tx.exec_drop(
                    format!("UPDATE `{t}` SET amount = ?, status = 'upd', note = CONCAT(IFNULL(note, ''), '+') WHERE id = ?"),
                    (amount, id),
                )
                .await?;
            }
        }
        80..=92 => {
            for t in [table, mirror] {
                tx.exec_drop(format!("DELETE FROM `{t}` WHERE id = ?"), (id,))
                    .await?;
            }
        }
        _ => {
            // primary-key-changing update
            let new = *next_new;
            *next_new -= step;
            for t in [table, mirror] {
                tx.exec_drop(format!("UPDATE `{t}` SET id = ? WHERE id = ?"), (new, id))
                    .await?;
            }
            created = Some(new);
        }
    }
    tx.commit().await?;
    Ok(created)
}

/// Run `godwit run --execute --format json` on `table` and return the run and the old table.
pub async fn migrate(
    db: &TestDb,
    table: &str,
    alter: &str,
    extra: &[&str],
) -> (super::Run, String) {
    let mut args = vec![
        "run",
        "--url",
        &db.url,
        "--table",
        table,
        "--alter",
        alter,
        "--execute",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = super::godwit(&args, &[]).await;
    run.expect_ok();
    let done = run
        .event("done")
        .unwrap_or_else(|| panic!("no done event: {}", run.stdout))
        .clone();
    assert_eq!(done["new_table"], table);
    let old = done["old_table"].as_str().unwrap().to_string();
    (run, old)
}

/// The end of every migration test: same rows through the mapping, nothing left behind.
pub async fn assert_same_rows_and_no_leftovers(
    db: &TestDb,
    old: &str,
    old_cols: &str,
    new: &str,
    new_cols: &str,
    order: &str,
) {
    let a = db.rows(old, old_cols, order).await;
    let b = db.rows(new, new_cols, order).await;
    assert_eq!(
        a.len(),
        b.len(),
        "row counts differ: {old} {} vs {new} {}",
        a.len(),
        b.len()
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "row {i} differs");
    }
    let left = db.leftovers(&[old]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The statements of `sql`, split with godwit's own MySQL lexer.
pub fn split(sql: &str) -> Vec<String> {
    godwit::ddl::lex::split(&godwit::engine::mysql::SQL_RULES, sql, "test SQL")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `ALGORITHM` values, the most expensive first.
pub const ALGS: [&str; 4] = ["COPY", "INPLACE", "NOCOPY", "INSTANT"];
/// `LOCK` values, the weakest first.
pub const LOCKS: [&str; 3] = ["NONE", "SHARED", "EXCLUSIVE"];

/// `ALTER TABLE t clause, ALGORITHM=alg, LOCK=lock`: the server's error text on refusal.
pub async fn try_alter(
    db: &TestDb,
    t: &str,
    clause: &str,
    alg: &str,
    lock: &str,
) -> Result<(), String> {
    let mut c = db.conn().await;
    c.query_drop(format!(
        "ALTER TABLE `{t}` {clause}, ALGORITHM={alg}, LOCK={lock}"
    ))
    .await
    .map_err(|e| e.to_string())
}

/// What the server said about a predicted ALGORITHM/LOCK.
pub struct AlgorithmCheck {
    /// Why the prediction is wrong, or None when it is right.
    pub mismatch: Option<String>,
    /// The ALTER was applied to the table (by one of the attempts).
    pub applied: bool,
}

/// Check a predicted `ALGORITHM`/`LOCK` for `clause` against the server, on `t` itself:
/// the next cheaper algorithm must fail, the next weaker lock must fail, and the
/// prediction must succeed (which applies the ALTER). An attempt that succeeds where it
/// should fail also applies it.
pub async fn check_algorithm(
    db: &TestDb,
    t: &str,
    clause: &str,
    alg: &str,
    lock: &str,
) -> AlgorithmCheck {
    let (Some(ai), Some(li)) = (
        ALGS.iter().position(|a| *a == alg),
        LOCKS.iter().position(|l| *l == lock),
    ) else {
        return AlgorithmCheck {
            mismatch: Some(format!("no such ALGORITHM/LOCK: {alg}/{lock}")),
            applied: false,
        };
    };
    if ai + 1 < ALGS.len()
        && try_alter(db, t, clause, ALGS[ai + 1], "DEFAULT")
            .await
            .is_ok()
    {
        return AlgorithmCheck {
            mismatch: Some(format!(
                "the server accepts the cheaper ALGORITHM={}",
                ALGS[ai + 1]
            )),
            applied: true,
        };
    }
    if li > 0 && try_alter(db, t, clause, alg, LOCKS[li - 1]).await.is_ok() {
        return AlgorithmCheck {
            mismatch: Some(format!(
                "the server accepts the weaker LOCK={}",
                LOCKS[li - 1]
            )),
            applied: true,
        };
    }
    match try_alter(db, t, clause, alg, lock).await {
        Ok(()) => AlgorithmCheck {
            mismatch: None,
            applied: true,
        },
        Err(e) => AlgorithmCheck {
            mismatch: Some(format!(
                "the server refuses ALGORITHM={alg}, LOCK={lock}: {e}"
            )),
            applied: false,
        },
    }
}
