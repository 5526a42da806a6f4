//! Expand / backfill / contract of `add_foreign_key` and `rename_table` on MariaDB and
//! PostgreSQL, `godwit plan` of migration files, and the runner's resume and lock on
//! PostgreSQL.
//!
//! The pattern: an "old application" connection writes the old shape (the old table name,
//! rows that ignore the new key) and a "new application" connection writes the new shape
//! (the new name, rows that rely on the key) at the same time; each sees the other's
//! writes; every phase run twice is a no-op the second time; contract leaves exactly what
//! a direct ALTER / RENAME leaves on a twin; abort instead of contract gives back the
//! original schema and data; nothing with godwit's prefix is left but the state table.

mod support;

const FK: &str = r#"name = "orders reference customers"
[[operations]]
type = "add_foreign_key"
table = "orders"
name = "fk_orders_customer"
columns = ["customer_id"]
references_table = "customers"
references_columns = ["id"]
on_delete = "cascade"
"#;

const RENAME: &str = r#"name = "acct becomes accounts"
[[operations]]
type = "rename_table"
from = "acct"
to = "accounts"
"#;

/// A second migration for the plan tests: an online index and a column with a backfill.
const MORE: &str = r#"name = "index and flag"
[[operations]]
type = "add_index"
table = "orders"
name = "idx_customer_note"
columns = ["customer_id", "note"]

[[operations]]
type = "add_column"
table = "orders"
column = { name = "flag", type = "INT", nullable = false, default = "0" }
up = "1"
"#;

/// The `plan` events of a `godwit plan --format json` run, by migration.
fn plans(r: &support::Run) -> Vec<serde_json::Value> {
    r.expect_ok();
    r.events
        .iter()
        .filter(|e| e["event"] == "plan")
        .cloned()
        .collect()
}

fn phase_names(m: &serde_json::Value) -> Vec<String> {
    m["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap().to_string())
        .collect()
}

fn phase_of<'a>(m: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    m["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {m}"))
}

/// The statement of `phase` whose SQL contains `needle`.
fn stmt<'a>(m: &'a serde_json::Value, phase: &str, needle: &str) -> &'a serde_json::Value {
    let p = phase_of(m, phase);
    assert!(p["error"].is_null(), "{p}");
    p["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sql"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no statement with `{needle}` in {phase}: {p}"))
}

/// Checks common to both engines: the phases, the orphan check, the backfill.
fn check_plan_shape(all: &[serde_json::Value]) {
    assert_eq!(all.len(), 2, "{all:?}");
    let (fk, more) = (&all[0], &all[1]);
    assert_eq!(fk["migration"], "0001_fk");
    assert_eq!(fk["state"], "pending");
    assert_eq!(
        phase_names(fk),
        vec!["expand", "backfill", "contract", "abort"]
    );
    assert_eq!(phase_of(fk, "abort")["alternative"], true);
    for p in ["expand", "contract"] {
        let check = stmt(fk, p, "NOT EXISTS");
        assert_eq!(check["kind"], "check");
        assert_eq!(check["scan"], true);
        assert_eq!(check["blocks_writes"], false);
        assert_eq!(check["table"], "orders");
        assert!(check["rows"].as_u64().unwrap() > 0, "{check}");
        assert!(check["estimated_seconds"].is_u64(), "{check}");
    }
    let bf = &phase_of(more, "backfill")["backfills"][0];
    assert_eq!(bf["table"], "orders");
    let rows = bf["rows"].as_u64().unwrap();
    assert!(rows > 0, "{bf}");
    assert_eq!(bf["batches"].as_u64().unwrap(), rows.div_ceil(500));
    assert!(bf["estimated_seconds"].is_u64(), "{bf}");
}

/// Writes per application in the concurrent tests.
const WRITES: i32 = 300;

mod on_mariadb {
    use super::support::mysql::TestDb;
    use super::support::phases::{phase, write_migration};
    use super::support::{godwit, Run};
    use super::{FK, RENAME, WRITES};
    use mysql_async::prelude::*;
    use mysql_async::Conn;
    use std::collections::BTreeMap;

    fn without_name(create: &str) -> String {
        create.lines().skip(1).collect::<Vec<_>>().join("\n")
    }

    /// `SHOW CREATE TABLE` without the AUTO_INCREMENT counter (it depends on the writes).
    async fn create_of(db: &TestDb, schema: &str, table: &str) -> String {
        let r: Vec<(String, String)> = db
            .query(&format!("SHOW CREATE TABLE `{schema}`.`{table}`"))
            .await;
        r[0].1
            .split(' ')
            .filter(|w| !w.starts_with("AUTO_INCREMENT="))
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn status_phase(db: &TestDb, dir: &str) -> String {
        let s = godwit(&["status", dir, "--url", &db.url, "--format", "json"], &[]).await;
        s.expect_ok();
        s.event("migration").expect("status line")["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn twin_name(db: &TestDb) -> String {
        format!("{}_twin", db.name)
    }

    async fn drop_all(db: TestDb, dir: std::path::PathBuf) {
        db.exec(&format!("DROP DATABASE IF EXISTS `{}`", twin_name(&db)))
            .await;
        std::fs::remove_dir_all(dir).ok();
        db.drop_db().await;
    }

    /// `customers` and `orders` (no index on `orders.customer_id`) in the test database
    /// and its twin.
    async fn fk_setup(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        db.exec(&format!("CREATE DATABASE `{}`", twin_name(&db)))
            .await;
        for s in [db.name.clone(), twin_name(&db)] {
            db.exec(&format!(
                "CREATE TABLE `{s}`.customers (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL); \
                 CREATE TABLE `{s}`.orders (id INT NOT NULL PRIMARY KEY, customer_id INT NULL, note VARCHAR(50) NULL, KEY idx_note (note)); \
                 INSERT INTO `{s}`.customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_200; \
                 INSERT INTO `{s}`.orders SELECT seq, IF(seq % 10 = 0, NULL, 1 + seq % 200), CONCAT('o', seq) FROM seq_1_to_2000;"
            ))
            .await;
        }
        db
    }

    /// Run `sql` (with `{db}` for the database) on the test database and on its twin, in
    /// one transaction; again after a deadlock, as an application would.
    async fn both(c: &mut Conn, main: &str, twin: &str, sql: &[String]) -> mysql_async::Result<()> {
        loop {
            let r: mysql_async::Result<()> = async {
                let mut tx = c.start_transaction(Default::default()).await?;
                for s in [main, twin] {
                    for q in sql {
                        tx.query_drop(q.replace("{db}", s)).await?;
                    }
                }
                tx.commit().await
            }
            .await;
            match r {
                Err(mysql_async::Error::Server(e)) if e.code == 1213 => continue,
                r => return r,
            }
        }
    }

    /// The old application writes orders for existing customers and edits its notes; the
    /// new one creates customers with orders and deletes customers relying on ON DELETE
    /// CASCADE (on the twin, which has no key yet, the orders are deleted by hand).
    async fn fk_writers(db: &TestDb) {
        let (main, twin) = (db.name.clone(), twin_name(db));
        let old = {
            let (pool, main, twin) = (db.pool.clone(), main.clone(), twin.clone());
            tokio::spawn(async move {
                let mut c = pool.get_conn().await.unwrap();
                for k in 0..WRITES {
                    let id = 10_001 + k;
                    let mut sql = vec![format!(
                        "INSERT INTO `{{db}}`.orders (id, customer_id, note) VALUES ({id}, {}, 'old {k}')",
                        1 + k % 200
                    )];
                    if k % 3 == 2 {
                        sql.push(format!(
                            "UPDATE `{{db}}`.orders SET note = 'old edited {k}' WHERE id = {}",
                            id - 1
                        ));
                    }
                    both(&mut c, &main, &twin, &sql).await.unwrap();
                }
            })
        };
        let new = {
            let (pool, main, twin) = (db.pool.clone(), main.clone(), twin.clone());
            tokio::spawn(async move {
                let mut c = pool.get_conn().await.unwrap();
                for k in 0..WRITES {
                    let cust = 1_001 + k;
                    let mut sql = vec![
                        format!("INSERT INTO `{{db}}`.customers (id, name) VALUES ({cust}, 'new {k}')"),
                        format!(
                            "INSERT INTO `{{db}}`.orders (id, customer_id, note) VALUES ({}, {cust}, 'new {k}')",
                            20_001 + k
                        ),
                    ];
                    if k % 4 == 3 {
                        sql.push(format!(
                            "DELETE FROM `{{db}}`.customers WHERE id = {}",
                            cust - 1
                        ));
                    }
                    both(&mut c, &main, &twin, &sql).await.unwrap();
                    if k % 4 == 3 {
                        // The twin has no key: what the cascade does on the main database.
                        c.query_drop(format!(
                            "DELETE FROM `{twin}`.orders WHERE id = {}",
                            20_000 + k
                        ))
                        .await
                        .unwrap();
                    }
                }
            })
        };
        old.await.unwrap();
        new.await.unwrap();
        // Each application sees the other's writes.
        let mut a = db.conn().await;
        let mut b = db.conn().await;
        let n: Option<u64> = a
            .query_first("SELECT COUNT(*) FROM customers WHERE id > 1000")
            .await
            .unwrap();
        assert_eq!(n, Some(WRITES as u64 - (WRITES as u64 / 4)));
        let n: Option<u64> = b
            .query_first("SELECT COUNT(*) FROM orders WHERE id BETWEEN 10001 AND 19999")
            .await
            .unwrap();
        assert_eq!(n, Some(WRITES as u64));
    }

    async fn same_rows(db: &TestDb, table: &str) {
        assert_eq!(
            db.rows(table, "*", "id").await,
            db.rows(&format!("{}`.`{table}", twin_name(db)), "*", "id")
                .await,
            "rows of {table} differ from the twin"
        );
    }

    fn assert_refused(r: &Run, what: &[&str]) {
        assert_eq!(r.code, 40, "{}\n{}", r.stdout, r.stderr);
        for w in what {
            assert!(r.stderr.contains(w), "`{w}` missing from: {}", r.stderr);
        }
    }

    #[tokio::test]
    async fn add_foreign_key_through_every_phase() {
        let db = fk_setup("o2m_fk").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "expand", &d).await.expect_ok();
        // Enforced for new writes from expand on.
        let mut c = db.conn().await;
        let e = c
            .query_drop("INSERT INTO orders (id, customer_id) VALUES (99999, 99999)")
            .await
            .expect_err("an orphan insert must fail once expanded");
        assert!(
            e.to_string().contains("foreign key constraint fails"),
            "{e}"
        );
        drop(c);
        fk_writers(&db).await;
        phase(&db.url, "backfill", &d).await.expect_ok();
        phase(&db.url, "backfill", &d).await.expect_ok();
        phase(&db.url, "contract", &d).await.expect_ok();
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(status_phase(&db, &d).await, "complete");

        db.exec(&format!(
            "ALTER TABLE `{}`.orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE",
            twin_name(&db)
        ))
        .await;
        let twin = twin_name(&db);
        for t in ["orders", "customers"] {
            assert_eq!(
                without_name(&create_of(&db, &db.name, t).await),
                without_name(&create_of(&db, &twin, t).await),
                "contract must leave what a direct ALTER gives"
            );
            same_rows(&db, t).await;
        }
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    #[tokio::test]
    async fn add_foreign_key_abort_returns_the_original() {
        let db = fk_setup("o2m_fk_abort").await;
        let original = create_of(&db, &db.name, "orders").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        phase(&db.url, "expand", &d).await.expect_ok();
        assert_ne!(create_of(&db, &db.name, "orders").await, original);
        fk_writers(&db).await;
        phase(&db.url, "abort", &d).await.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(create_of(&db, &db.name, "orders").await, original);
        for t in ["orders", "customers"] {
            same_rows(&db, t).await;
        }
        assert_eq!(status_phase(&db, &d).await, "aborted");
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// Orphans refuse expand (nothing changes), and rows written around the key (with
    /// foreign_key_checks=0) refuse contract (nothing changes) until they are fixed.
    #[tokio::test]
    async fn add_foreign_key_with_orphans_is_refused() {
        let db = fk_setup("o2m_fk_orph").await;
        db.exec("INSERT INTO orders VALUES (5001, 777, 'orphan'), (5002, 778, 'orphan')")
            .await;
        let original = create_of(&db, &db.name, "orders").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        let r = phase(&db.url, "expand", &d).await;
        assert_refused(
            &r,
            &["fk_orders_customer", "2 rows", "customer_id=777", "id=5001"],
        );
        assert_eq!(create_of(&db, &db.name, "orders").await, original);
        assert_eq!(status_phase(&db, &d).await, "pending");

        db.exec("DELETE FROM orders WHERE id IN (5001, 5002)").await;
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "backfill", &d).await.expect_ok();
        db.exec("SET SESSION foreign_key_checks = 0; INSERT INTO orders VALUES (5003, 779, 'around the key')")
            .await;
        let expanded = create_of(&db, &db.name, "orders").await;
        let r = phase(&db.url, "contract", &d).await;
        assert_refused(&r, &["1 row", "customer_id=779", "id=5003"]);
        assert_eq!(create_of(&db, &db.name, "orders").await, expanded);
        assert_eq!(status_phase(&db, &d).await, "backfilled");
        db.exec("DELETE FROM orders WHERE id = 5003").await;
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// `acct` with an index, a trigger and a table referencing it, in the test database
    /// and its twin.
    async fn rename_setup(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        db.exec(&format!("CREATE DATABASE `{}`", twin_name(&db)))
            .await;
        for s in [db.name.clone(), twin_name(&db)] {
            db.exec(&format!(
                "CREATE TABLE `{s}`.acct (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL DEFAULT 'anon', n INT NOT NULL, KEY idx_n (n)); \
                 CREATE TABLE `{s}`.notes (id INT NOT NULL PRIMARY KEY, acct_id INT NULL, CONSTRAINT fk_notes_acct FOREIGN KEY (acct_id) REFERENCES acct (id)); \
                 CREATE TRIGGER `{s}`.acct_n BEFORE INSERT ON `{s}`.acct FOR EACH ROW SET NEW.n = ABS(NEW.n); \
                 INSERT INTO `{s}`.acct (name, n) SELECT CONCAT('a', seq), seq FROM seq_1_to_500; \
                 INSERT INTO `{s}`.notes VALUES (1, 1), (2, 2);"
            ))
            .await;
        }
        db
    }

    type Rows = BTreeMap<i64, (String, i64)>;

    /// One application: WRITES inserts through `table` (the new one omits `name` and gets
    /// the default), reading each row back by LAST_INSERT_ID(), and updates and deletes of
    /// its own rows. Returns what it left. With `until`, it goes on until told to stop.
    async fn app(
        pool: mysql_async::Pool,
        table: &'static str,
        until: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> (Rows, Vec<String>) {
        let mut c = pool.get_conn().await.unwrap();
        let mut rows = Rows::new();
        let mut errors = Vec::new();
        let mut k: i64 = 0;
        loop {
            let stop = until
                .as_ref()
                .map(|u| u.load(std::sync::atomic::Ordering::SeqCst));
            if stop == Some(true) || (until.is_none() && k >= WRITES as i64) {
                break;
            }
            k += 1;
            let r: mysql_async::Result<()> = async {
                let name = if table == "acct" {
                    c.exec_drop(
                        "INSERT INTO acct (name, n) VALUES (?, ?)",
                        (format!("old {k}"), -k),
                    )
                    .await?;
                    format!("old {k}")
                } else {
                    c.exec_drop(format!("INSERT INTO {table} (n) VALUES (?)"), (-k,))
                        .await?;
                    "anon".to_string()
                };
                let id: i64 = c.query_first("SELECT LAST_INSERT_ID()").await?.unwrap_or(0);
                let back: Option<(String, i64)> = c
                    .exec_first(format!("SELECT name, n FROM {table} WHERE id = ?"), (id,))
                    .await?;
                assert_eq!(
                    back,
                    Some((name.clone(), k)),
                    "row {id} read back through {table}"
                );
                rows.insert(id, (name, k));
                if k % 3 == 0 {
                    c.exec_drop(
                        format!("UPDATE {table} SET n = n + 1000 WHERE id = ?"),
                        (id,),
                    )
                    .await?;
                    rows.get_mut(&id).unwrap().1 += 1000;
                }
                if k % 5 == 0 {
                    c.exec_drop(format!("DELETE FROM {table} WHERE id = ?"), (id,))
                        .await?;
                    rows.remove(&id);
                }
                Ok(())
            }
            .await;
            if let Err(e) = r {
                errors.push(e.to_string());
                c = pool.get_conn().await.unwrap();
            }
        }
        (rows, errors)
    }

    fn initial_acct() -> Rows {
        (1..=500).map(|i| (i, (format!("a{i}"), i))).collect()
    }

    async fn acct_rows(db: &TestDb, table: &str) -> Rows {
        let r: Vec<(i64, String, i64)> = db
            .query(&format!("SELECT id, name, n FROM `{table}` ORDER BY id"))
            .await;
        r.into_iter().map(|(i, a, b)| (i, (a, b))).collect()
    }

    /// The old and the new application write at the same time; each sees the other's
    /// rows. The new one goes on writing while `after` runs (e.g. contract).
    async fn both_names<F: std::future::Future<Output = ()>>(db: &TestDb, after: F) -> Rows {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let old = tokio::spawn(app(db.pool.clone(), "acct", None));
        let new = tokio::spawn(app(db.pool.clone(), "accounts", Some(stop.clone())));
        let (old_rows, old_errors) = old.await.unwrap();
        assert!(old_errors.is_empty(), "old application: {old_errors:?}");
        // The new application sees the old one's rows through the new name.
        let mut c = db.conn().await;
        let n: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM accounts WHERE name LIKE 'old %'")
            .await
            .unwrap();
        assert_eq!(n, Some(old_rows.len() as u64));
        // And the old one the new one's rows through the old name.
        let seen: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM acct WHERE name = 'anon'")
            .await
            .unwrap();
        assert!(
            seen > Some(0),
            "the old name shows none of the new application's rows"
        );
        drop(c);
        after.await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stop.store(true, Ordering::SeqCst);
        let (new_rows, new_errors) = new.await.unwrap();
        assert!(new_errors.is_empty(), "new application: {new_errors:?}");
        assert!(new_rows.len() > 10, "the new application wrote too little");
        let mut all = initial_acct();
        all.extend(old_rows);
        all.extend(new_rows);
        all
    }

    async fn triggers(db: &TestDb, schema: &str) -> Vec<(String, String)> {
        db.query(&format!(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{schema}' ORDER BY 1"
        ))
        .await
    }

    #[tokio::test]
    async fn rename_table_through_every_phase() {
        let db = rename_setup("o2m_ren").await;
        let (dir, d) = write_migration(&db.name, "0001_rename.toml", RENAME);
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "expand", &d).await.expect_ok();
        let url = db.url.clone();
        let dd = d.clone();
        let expected = both_names(&db, async move {
            phase(&url, "backfill", &dd).await.expect_ok();
            phase(&url, "backfill", &dd).await.expect_ok();
            phase(&url, "contract", &dd).await.expect_ok();
        })
        .await;
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(status_phase(&db, &d).await, "complete");

        let twin = twin_name(&db);
        db.exec(&format!("RENAME TABLE `{twin}`.acct TO `{twin}`.accounts"))
            .await;
        assert_eq!(
            db.tables().await,
            vec!["_godwit_migrations", "accounts", "notes"]
        );
        for t in ["accounts", "notes"] {
            assert_eq!(
                create_of(&db, &db.name, t).await,
                create_of(&db, &twin, t).await,
                "contract must leave what a direct RENAME gives"
            );
        }
        assert_eq!(triggers(&db, &db.name).await, triggers(&db, &twin).await);
        assert_eq!(acct_rows(&db, "accounts").await, expected);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// Everything a plan could change: tables and views with their definitions,
    /// triggers, row counts.
    async fn snapshot(db: &TestDb) -> Vec<String> {
        let mut out = Vec::new();
        for t in db.tables().await {
            let r: Vec<mysql_async::Row> = db.query(&format!("SHOW CREATE TABLE `{t}`")).await;
            let def: String = r[0].get(1).unwrap();
            out.push(def);
            out.push(format!("{t}: {} rows", db.count(&t).await));
        }
        let tr: Vec<String> = db
            .query(&format!(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}'",
                db.name
            ))
            .await;
        out.extend(tr);
        out
    }

    /// `godwit plan DIR`: every statement of every phase with its lock; nothing changes.
    #[tokio::test]
    async fn plan_of_migration_files() {
        let db = fk_setup("o2m_plan").await;
        db.exec("CREATE TABLE acct (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL); INSERT INTO acct (n) SELECT seq FROM seq_1_to_100")
            .await;
        let text = format!(
            "{FK}\n[[operations]]\ntype = \"rename_table\"\nfrom = \"acct\"\nto = \"accounts\"\n"
        );
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", &text);
        write_migration(&db.name, "0002_more.toml", super::MORE);
        let before = snapshot(&db).await;
        let run = |extra: &'static [&'static str]| {
            let (url, d) = (db.url.clone(), d.clone());
            async move {
                let mut args = vec![
                    "plan",
                    d.as_str(),
                    "--url",
                    url.as_str(),
                    "--batch-size",
                    "500",
                ];
                args.extend_from_slice(extra);
                godwit(&args, &[]).await
            }
        };
        let all = super::plans(&run(&["--format", "json"]).await);
        super::check_plan_shape(&all);
        let (fk, more) = (&all[0], &all[1]);
        // The key is added in place with foreign_key_checks=0: writes go on.
        let add = super::stmt(fk, "expand", "ADD CONSTRAINT `fk_orders_customer`");
        assert_eq!(add["kind"], "alter_table");
        assert!(
            add["lock"].as_str().unwrap().ends_with("LOCK=NONE"),
            "{add}"
        );
        assert_eq!(add["blocks_writes"], false);
        assert!(
            super::stmt(fk, "expand", "CREATE OR REPLACE ALGORITHM=MERGE")["lock"]
                .as_str()
                .unwrap()
                .contains("view")
        );
        let swap = super::stmt(fk, "contract", "RENAME TABLE");
        assert_eq!(swap["kind"], "rename");
        assert!(
            swap["lock"].as_str().unwrap().contains("metadata lock"),
            "{swap}"
        );
        assert_eq!(
            super::stmt(fk, "contract", "RENAME INDEX")["lock"],
            "ALGORITHM=INSTANT, LOCK=NONE"
        );
        let idx = super::stmt(
            more,
            "expand",
            "ADD INDEX IF NOT EXISTS `idx_customer_note`",
        );
        assert!(
            idx["lock"].as_str().unwrap().ends_with("LOCK=NONE"),
            "{idx}"
        );
        assert_eq!(idx["scan"], true);
        let trg = super::stmt(more, "expand", "CREATE OR REPLACE TRIGGER");
        assert_eq!(trg["kind"], "trigger");
        let nn = super::stmt(more, "contract", "MODIFY COLUMN `flag`");
        assert_eq!(nn["lock"], "ALGORITHM=INPLACE, LOCK=NONE", "{nn}");

        // Text: a table per phase.
        let t = run(&[]).await;
        t.expect_ok();
        for w in [
            "0001_fk",
            "expand",
            "contract",
            "abort (instead of contract)",
            "LOCK=NONE",
            "batches of 500",
        ] {
            assert!(t.stdout.contains(w), "`{w}` missing:\n{}", t.stdout);
        }
        assert_eq!(snapshot(&db).await, before, "plan changed the database");
        assert!(!db
            .tables()
            .await
            .contains(&"_godwit_migrations".to_string()));

        // After expand: only what is left of 0001 is planned.
        phase(&db.url, "expand", &d).await.expect_ok();
        let expanded = snapshot(&db).await;
        let all = super::plans(&run(&["--format", "json"]).await);
        assert_eq!(all[0]["state"], "expanded");
        assert_eq!(
            super::phase_names(&all[0]),
            vec!["backfill", "contract", "abort"]
        );
        assert_eq!(snapshot(&db).await, expanded, "plan changed the database");
        // The ALTER form still works.
        let r = godwit(
            &[
                "plan",
                "--url",
                &db.url,
                "--table",
                "customers",
                "--alter",
                "ADD COLUMN x INT",
            ],
            &[],
        )
        .await;
        r.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    #[tokio::test]
    async fn rename_table_abort_returns_the_original() {
        let db = rename_setup("o2m_ren_abort").await;
        let original = create_of(&db, &db.name, "acct").await;
        let (dir, d) = write_migration(&db.name, "0001_rename.toml", RENAME);
        phase(&db.url, "expand", &d).await.expect_ok();
        let expected = both_names(&db, async {}).await;
        phase(&db.url, "abort", &d).await.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(
            db.tables().await,
            vec!["_godwit_migrations", "acct", "notes"]
        );
        assert_eq!(create_of(&db, &db.name, "acct").await, original);
        assert_eq!(acct_rows(&db, "acct").await, expected);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }
}

mod on_postgres {
    use super::support::phases::{phase, signal, write_migration};
    use super::support::postgres::{connect, TestDb};
    use super::support::{godwit, LiveRun, Run};
    use super::{FK, RENAME, WRITES};
    use std::collections::BTreeMap;

    async fn status_phase(db: &TestDb, dir: &str) -> String {
        let s = godwit(&["status", dir, "--url", &db.url, "--format", "json"], &[]).await;
        s.expect_ok();
        s.event("migration").expect("status line")["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn drop_all(db: TestDb, dir: std::path::PathBuf) {
        std::fs::remove_dir_all(dir).ok();
        db.drop_db().await;
    }

    /// A table's shape as a direct ALTER leaves it: columns, indexes, constraints on it
    /// and referencing it, triggers, owned sequences, privileges. Schema names removed, so
    /// the table can be compared with its twin in the schema `twin`.
    async fn shape(db: &TestDb, schema: &str, table: &str) -> Vec<String> {
        let q = format!("{schema}.{table}");
        let mut out = db.columns(&q).await;
        for sql in [
            format!("SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = '{table}' ORDER BY 1"),
            format!("SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || contype::text || ' ' || convalidated::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{q}'::regclass OR confrelid = '{q}'::regclass ORDER BY 1"),
            format!("SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = '{q}'::regclass AND NOT tgisinternal ORDER BY 1"),
            format!("SELECT 'sequence ' || s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' WHERE d.refobjid = '{q}'::regclass ORDER BY 1"),
            format!("SELECT 'acl ' || coalesce(relacl::text, '') || ' kind ' || relkind::text FROM pg_class WHERE oid = '{q}'::regclass"),
        ] {
            out.extend(db.strings(&sql).await);
        }
        out.into_iter()
            .map(|l| l.replace("twin.", "").replace("public.", ""))
            .collect()
    }

    async fn fk_setup(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        for s in ["public", "twin"] {
            db.exec(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; \
                 CREATE TABLE {s}.customers (id int PRIMARY KEY, name text NOT NULL); \
                 CREATE TABLE {s}.orders (id int PRIMARY KEY, customer_id int, note text); \
                 CREATE INDEX ON {s}.orders (note); \
                 INSERT INTO {s}.customers SELECT i, 'c' || i FROM generate_series(1, 200) i; \
                 INSERT INTO {s}.orders SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + i % 200 END, 'o' || i FROM generate_series(1, 2000) i;"
            ))
            .await;
        }
        db
    }

    /// Run `sql` (with `{s}` for the schema) on `public` and on `twin`, in one transaction.
    async fn both(
        c: &mut tokio_postgres::Client,
        sql: &[String],
    ) -> Result<(), tokio_postgres::Error> {
        loop {
            let r: Result<(), tokio_postgres::Error> = async {
                let tx = c.transaction().await?;
                for s in ["public", "twin"] {
                    for q in sql {
                        tx.batch_execute(&q.replace("{s}", s)).await?;
                    }
                }
                tx.commit().await
            }
            .await;
            match r {
                Err(e)
                    if e.code()
                        == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
                {
                    continue
                }
                r => return r,
            }
        }
    }

    /// As on MariaDB: the old application writes orders for existing customers, the new
    /// one creates customers and deletes some relying on ON DELETE CASCADE.
    async fn fk_writers(db: &TestDb) {
        let old = {
            let url = db.url.clone();
            tokio::spawn(async move {
                let mut c = connect(&url).await;
                for k in 0..WRITES {
                    let id = 10_001 + k;
                    let mut sql = vec![format!(
                        "INSERT INTO {{s}}.orders (id, customer_id, note) VALUES ({id}, {}, 'old {k}')",
                        1 + k % 200
                    )];
                    if k % 3 == 2 {
                        sql.push(format!(
                            "UPDATE {{s}}.orders SET note = 'old edited {k}' WHERE id = {}",
                            id - 1
                        ));
                    }
                    both(&mut c, &sql).await.unwrap();
                }
            })
        };
        let new = {
            let url = db.url.clone();
            tokio::spawn(async move {
                let mut c = connect(&url).await;
                for k in 0..WRITES {
                    let cust = 1_001 + k;
                    let mut sql = vec![
                        format!("INSERT INTO {{s}}.customers (id, name) VALUES ({cust}, 'new {k}')"),
                        format!(
                            "INSERT INTO {{s}}.orders (id, customer_id, note) VALUES ({}, {cust}, 'new {k}')",
                            20_001 + k
                        ),
                    ];
                    if k % 4 == 3 {
                        sql.push(format!(
                            "DELETE FROM {{s}}.customers WHERE id = {}",
                            cust - 1
                        ));
                    }
                    // The twin has no key: what the cascade does in `public`.
                    let twin_cascade = format!("DELETE FROM twin.orders WHERE id = {}", 20_000 + k);
                    both(&mut c, &sql).await.unwrap();
                    if k % 4 == 3 {
                        c.batch_execute(&twin_cascade).await.unwrap();
                    }
                }
            })
        };
        old.await.unwrap();
        new.await.unwrap();
        let a = db.conn().await;
        let b = db.conn().await;
        let n: i64 = a
            .query_one("SELECT count(*) FROM customers WHERE id > 1000", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, (WRITES - WRITES / 4) as i64);
        let n: i64 = b
            .query_one(
                "SELECT count(*) FROM orders WHERE id BETWEEN 10001 AND 19999",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, WRITES as i64);
    }

    async fn same_rows(db: &TestDb, table: &str) {
        assert_eq!(
            db.rows(
                &format!("public.{table}"),
                &format!("public.{table}.*"),
                "id"
            )
            .await,
            db.rows(&format!("twin.{table}"), &format!("twin.{table}.*"), "id")
                .await,
            "rows of {table} differ from the twin"
        );
    }

    fn assert_refused(r: &Run, what: &[&str]) {
        assert_eq!(r.code, 40, "{}\n{}", r.stdout, r.stderr);
        for w in what {
            assert!(r.stderr.contains(w), "`{w}` missing from: {}", r.stderr);
        }
    }

    #[tokio::test]
    async fn add_foreign_key_through_every_phase() {
        let db = fk_setup("o2p_fk").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "expand", &d).await.expect_ok();
        assert_eq!(
            db.strings(
                "SELECT convalidated::text FROM pg_constraint WHERE conname = 'fk_orders_customer'"
            )
            .await,
            vec!["false"],
            "expand adds the key NOT VALID"
        );
        let e = db
            .client
            .batch_execute("INSERT INTO orders (id, customer_id) VALUES (99999, 99999)")
            .await
            .expect_err("an orphan insert must fail once expanded");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
        );
        fk_writers(&db).await;
        phase(&db.url, "backfill", &d).await.expect_ok();
        phase(&db.url, "backfill", &d).await.expect_ok();
        phase(&db.url, "contract", &d).await.expect_ok();
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(status_phase(&db, &d).await, "complete");

        db.exec("ALTER TABLE twin.orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES twin.customers (id) ON DELETE CASCADE")
            .await;
        for t in ["orders", "customers"] {
            assert_eq!(
                shape(&db, "public", t).await,
                shape(&db, "twin", t).await,
                "contract must leave what a direct ALTER gives"
            );
            same_rows(&db, t).await;
        }
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    #[tokio::test]
    async fn add_foreign_key_abort_returns_the_original() {
        let db = fk_setup("o2p_fk_abort").await;
        let original = shape(&db, "public", "orders").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        phase(&db.url, "expand", &d).await.expect_ok();
        assert_ne!(shape(&db, "public", "orders").await, original);
        fk_writers(&db).await;
        phase(&db.url, "abort", &d).await.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(shape(&db, "public", "orders").await, original);
        for t in ["orders", "customers"] {
            same_rows(&db, t).await;
        }
        assert_eq!(status_phase(&db, &d).await, "aborted");
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// Orphans refuse expand; rows written around the key (session_replication_role =
    /// replica skips foreign key triggers) refuse contract; nothing changes either time.
    #[tokio::test]
    async fn add_foreign_key_with_orphans_is_refused() {
        let db = fk_setup("o2p_fk_orph").await;
        db.exec("INSERT INTO orders VALUES (5001, 777, 'orphan'), (5002, 778, 'orphan')")
            .await;
        let original = shape(&db, "public", "orders").await;
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", FK);
        let r = phase(&db.url, "expand", &d).await;
        assert_refused(
            &r,
            &["fk_orders_customer", "2 rows", "customer_id=777", "id=5001"],
        );
        assert_eq!(shape(&db, "public", "orders").await, original);
        assert_eq!(status_phase(&db, &d).await, "pending");

        db.exec("DELETE FROM orders WHERE id IN (5001, 5002)").await;
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "backfill", &d).await.expect_ok();
        db.exec("SET session_replication_role = replica; INSERT INTO orders VALUES (5003, 779, 'around the key'); SET session_replication_role = origin;")
            .await;
        let expanded = shape(&db, "public", "orders").await;
        let r = phase(&db.url, "contract", &d).await;
        assert_refused(&r, &["1 row", "customer_id=779", "id=5003"]);
        assert_eq!(shape(&db, "public", "orders").await, expanded);
        assert_eq!(status_phase(&db, &d).await, "backfilled");
        db.exec("DELETE FROM orders WHERE id = 5003").await;
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// `acct` (identity key, a serial, a default, an index, a trigger, a table referencing
    /// it, a grant) in `public` and in `twin`; the role is the test's own.
    async fn rename_setup(prefix: &str) -> (TestDb, String) {
        let db = TestDb::new(prefix).await;
        let role = format!("{}_app", db.name);
        db.exec(&format!("CREATE ROLE \"{role}\"")).await;
        for s in ["public", "twin"] {
            db.exec(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; \
                 CREATE TABLE {s}.acct (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL DEFAULT 'anon', n int NOT NULL, seq serial); \
                 CREATE INDEX acct_n ON {s}.acct (n); \
                 CREATE TABLE {s}.notes (id int PRIMARY KEY, acct_id int REFERENCES {s}.acct (id)); \
                 CREATE FUNCTION {s}.acct_abs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := abs(NEW.n); RETURN NEW; END $$; \
                 CREATE TRIGGER acct_abs BEFORE INSERT ON {s}.acct FOR EACH ROW EXECUTE FUNCTION {s}.acct_abs(); \
                 GRANT SELECT, INSERT ON {s}.acct TO \"{role}\"; \
                 INSERT INTO {s}.acct (name, n) SELECT 'a' || i, i FROM generate_series(1, 500) i; \
                 INSERT INTO {s}.notes VALUES (1, 1), (2, 2);"
            ))
            .await;
        }
        (db, role)
    }

    async fn drop_role(db: TestDb, dir: std::path::PathBuf, role: &str) {
        let server = db.server.clone();
        drop_all(db, dir).await;
        let admin = connect(&server).await;
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await
            .unwrap();
    }

    type Rows = BTreeMap<i32, (String, i32)>;

    /// One application, as on MariaDB; the new one inserts through the view with
    /// `RETURNING` and omits `name` (the table's default applies).
    async fn app(
        url: String,
        table: &'static str,
        until: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> (Rows, Vec<String>) {
        let mut c = connect(&url).await;
        let mut rows = Rows::new();
        let mut errors = Vec::new();
        let mut k: i32 = 0;
        loop {
            let stop = until
                .as_ref()
                .map(|u| u.load(std::sync::atomic::Ordering::SeqCst));
            if stop == Some(true) || (until.is_none() && k >= WRITES) {
                break;
            }
            k += 1;
            let r: Result<(), tokio_postgres::Error> = async {
                let (id, name): (i32, String) = if table == "acct" {
                    c.execute(
                        "INSERT INTO acct (name, n) VALUES ($1, $2)",
                        &[&format!("old {k}"), &-k],
                    )
                    .await?;
                    let id: i32 = c
                        .query_one(
                            "SELECT max(id) FROM acct WHERE name = $1",
                            &[&format!("old {k}")],
                        )
                        .await?
                        .get(0);
                    (id, format!("old {k}"))
                } else {
                    let r = c
                        .query_one(
                            "INSERT INTO accounts (n) VALUES ($1) RETURNING id, name, n",
                            &[&-k],
                        )
                        .await?;
                    // RETURNING shows the row as stored (the trigger made n positive).
                    assert_eq!(r.get::<_, i32>(2), k);
                    (r.get(0), r.get(1))
                };
                let back = c
                    .query_one(
                        &format!("SELECT name, n FROM {table} WHERE id = $1"),
                        &[&id],
                    )
                    .await?;
                assert_eq!(
                    (back.get::<_, String>(0), back.get::<_, i32>(1)),
                    (name.clone(), k),
                    "row {id} read back through {table}"
                );
                rows.insert(id, (name, k));
                if k % 3 == 0 {
                    c.execute(
                        &format!("UPDATE {table} SET n = n + 1000 WHERE id = $1"),
                        &[&id],
                    )
                    .await?;
                    rows.get_mut(&id).unwrap().1 += 1000;
                }
                if k % 5 == 0 {
                    c.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&id])
                        .await?;
                    rows.remove(&id);
                }
                Ok(())
            }
            .await;
            if let Err(e) = r {
                errors.push(e.to_string());
                c = connect(&url).await;
            }
        }
        (rows, errors)
    }

    async fn acct_rows(db: &TestDb, table: &str) -> Rows {
        db.client
            .query(&format!("SELECT id, name, n FROM {table} ORDER BY id"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    }

    async fn both_names<F: std::future::Future<Output = ()>>(db: &TestDb, after: F) -> Rows {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let old = tokio::spawn(app(db.url.clone(), "acct", None));
        let new = tokio::spawn(app(db.url.clone(), "accounts", Some(stop.clone())));
        let (old_rows, old_errors) = old.await.unwrap();
        assert!(old_errors.is_empty(), "old application: {old_errors:?}");
        let c = db.conn().await;
        let n: i64 = c
            .query_one("SELECT count(*) FROM accounts WHERE name LIKE 'old %'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, old_rows.len() as i64);
        let seen: i64 = c
            .query_one("SELECT count(*) FROM acct WHERE name = 'anon'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            seen > 0,
            "the old name shows none of the new application's rows"
        );
        drop(c);
        after.await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stop.store(true, Ordering::SeqCst);
        let (new_rows, new_errors) = new.await.unwrap();
        assert!(new_errors.is_empty(), "new application: {new_errors:?}");
        assert!(new_rows.len() > 10, "the new application wrote too little");
        let mut all: Rows = (1..=500).map(|i| (i, (format!("a{i}"), i))).collect();
        all.extend(old_rows);
        all.extend(new_rows);
        all
    }

    #[tokio::test]
    async fn rename_table_through_every_phase() {
        let (db, role) = rename_setup("o2p_ren").await;
        let (dir, d) = write_migration(&db.name, "0001_rename.toml", RENAME);
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "expand", &d).await.expect_ok();
        // Whoever may use the old name may use the new one.
        assert_eq!(
            db.strings(&format!(
                "SELECT has_table_privilege('{role}', 'accounts', 'INSERT')::text"
            ))
            .await,
            vec!["true"]
        );
        let url = db.url.clone();
        let dd = d.clone();
        let expected = both_names(&db, async move {
            phase(&url, "backfill", &dd).await.expect_ok();
            phase(&url, "backfill", &dd).await.expect_ok();
            phase(&url, "contract", &dd).await.expect_ok();
        })
        .await;
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(status_phase(&db, &d).await, "complete");

        db.exec("ALTER TABLE twin.acct RENAME TO accounts").await;
        assert_eq!(
            db.strings("SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1")
                .await,
            vec!["_godwit_migrations", "accounts", "notes"]
        );
        for t in ["accounts", "notes"] {
            assert_eq!(
                shape(&db, "public", t).await,
                shape(&db, "twin", t).await,
                "contract must leave what a direct RENAME gives"
            );
        }
        assert_eq!(acct_rows(&db, "accounts").await, expected);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_role(db, dir, &role).await;
    }

    #[tokio::test]
    async fn rename_table_abort_returns_the_original() {
        let (db, role) = rename_setup("o2p_ren_abort").await;
        let original = shape(&db, "public", "acct").await;
        let (dir, d) = write_migration(&db.name, "0001_rename.toml", RENAME);
        phase(&db.url, "expand", &d).await.expect_ok();
        let expected = both_names(&db, async {}).await;
        phase(&db.url, "abort", &d).await.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(
            db.strings("SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1")
                .await,
            vec!["_godwit_migrations", "acct", "notes"]
        );
        assert_eq!(shape(&db, "public", "acct").await, original);
        assert_eq!(acct_rows(&db, "acct").await, expected);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_role(db, dir, &role).await;
    }

    /// Everything a plan could change: relations with their shapes, row counts.
    async fn snapshot(db: &TestDb) -> Vec<String> {
        let mut out = Vec::new();
        let rels = db
            .strings("SELECT relname::text || ' ' || relkind::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1")
            .await;
        for r in &rels {
            if let Some(t) = r.strip_suffix(" r") {
                out.extend(shape(db, "public", t).await);
                out.push(format!(
                    "{t}: {} rows",
                    db.one_i64(&format!("SELECT count(*) FROM {t}")).await
                ));
            }
        }
        out.extend(rels);
        out.extend(db.phase_leftovers().await);
        out
    }

    /// `godwit plan DIR`: every statement of every phase with its lock; nothing changes.
    #[tokio::test]
    async fn plan_of_migration_files() {
        let db = fk_setup("o2p_plan").await;
        db.exec("CREATE TABLE acct (id serial PRIMARY KEY, n int NOT NULL); INSERT INTO acct (n) SELECT i FROM generate_series(1, 100) i; ANALYZE;")
            .await;
        let text = format!(
            "{FK}\n[[operations]]\ntype = \"rename_table\"\nfrom = \"acct\"\nto = \"accounts\"\n"
        );
        let (dir, d) = write_migration(&db.name, "0001_fk.toml", &text);
        write_migration(&db.name, "0002_more.toml", super::MORE);
        let before = snapshot(&db).await;
        let run = |extra: &'static [&'static str]| {
            let (url, d) = (db.url.clone(), d.clone());
            async move {
                let mut args = vec![
                    "plan",
                    d.as_str(),
                    "--url",
                    url.as_str(),
                    "--batch-size",
                    "500",
                ];
                args.extend_from_slice(extra);
                godwit(&args, &[]).await
            }
        };
        let all = super::plans(&run(&["--format", "json"]).await);
        super::check_plan_shape(&all);
        let (fk, more) = (&all[0], &all[1]);
        let add = super::stmt(fk, "expand", "NOT VALID");
        assert_eq!(add["lock"], "SHARE ROW EXCLUSIVE");
        assert_eq!(add["scan"], false);
        assert_eq!(add["in_transaction"], true);
        let validate = super::stmt(fk, "contract", "VALIDATE CONSTRAINT");
        assert_eq!(validate["lock"], "SHARE UPDATE EXCLUSIVE");
        assert_eq!(validate["scan"], true);
        assert_eq!(validate["blocks_writes"], false);
        assert_eq!(validate["in_transaction"], false);
        assert_eq!(
            super::stmt(fk, "contract", "DROP VIEW")["lock"],
            "ACCESS EXCLUSIVE"
        );
        let rename = super::stmt(fk, "contract", "RENAME TO");
        assert_eq!(rename["lock"], "ACCESS EXCLUSIVE");
        assert_eq!(rename["in_transaction"], true);
        // Checks run before the rest.
        assert_eq!(phase_of_first(fk, "contract")["kind"], "check");
        let idx = super::stmt(more, "expand", "CREATE INDEX CONCURRENTLY");
        assert_eq!(idx["lock"], "SHARE UPDATE EXCLUSIVE");
        assert_eq!(idx["scan"], true);
        assert_eq!(
            super::stmt(more, "expand", "CREATE OR REPLACE TRIGGER")["lock"],
            "SHARE ROW EXCLUSIVE"
        );
        let nn = super::stmt(more, "contract", "SET NOT NULL");
        assert_eq!(nn["lock"], "ACCESS EXCLUSIVE");
        assert_eq!(nn["scan"], false, "{nn}");

        let t = run(&[]).await;
        t.expect_ok();
        for w in [
            "0001_fk",
            "expand",
            "contract",
            "abort (instead of contract)",
            "SHARE UPDATE EXCLUSIVE",
            "batches of 500",
        ] {
            assert!(t.stdout.contains(w), "`{w}` missing:\n{}", t.stdout);
        }
        assert_eq!(snapshot(&db).await, before, "plan changed the database");

        phase(&db.url, "expand", &d).await.expect_ok();
        let expanded = snapshot(&db).await;
        let all = super::plans(&run(&["--format", "json"]).await);
        assert_eq!(all[0]["state"], "expanded");
        assert_eq!(
            super::phase_names(&all[0]),
            vec!["backfill", "contract", "abort"]
        );
        assert_eq!(snapshot(&db).await, expanded, "plan changed the database");
        let r = godwit(
            &[
                "plan",
                "--url",
                &db.url,
                "--table",
                "customers",
                "--alter",
                "ADD COLUMN x int",
            ],
            &[],
        )
        .await;
        r.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    fn phase_of_first<'a>(m: &'a serde_json::Value, phase: &str) -> &'a serde_json::Value {
        &super::phase_of(m, phase)["statements"][0]
    }

    const RENAME_COLUMN: &str = r#"name = "rename email"
[[operations]]
type = "rename_column"
table = "users"
from = "email"
to = "email_address"
"#;

    async fn users(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        db.exec(
            "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email varchar(100)); \
             INSERT INTO users SELECT i, 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 2500) i;",
        )
        .await;
        db
    }

    /// A backfill killed mid-way resumes from the last finished batch.
    #[tokio::test]
    async fn interrupted_backfill_resumes() {
        let db = users("o2p_resume").await;
        let (dir, d) = write_migration(&db.name, "0001_rename_email.toml", RENAME_COLUMN);
        phase(&db.url, "expand", &d).await.expect_ok();
        let left_sql = "SELECT count(*) FROM users WHERE email IS DISTINCT FROM email_address";
        let mut live = LiveRun::start(
            &[
                "backfill",
                &d,
                "--url",
                &db.url,
                "--execute",
                "--format",
                "json",
                "--batch-size",
                "100",
                "--max-rows-per-second",
                "400",
            ],
            &[],
        );
        live.wait_for(60, |e| {
            e["event"] == "backfill_progress" && e["rows"].as_u64() >= Some(300)
        })
        .await;
        signal(live.pid(), 9);
        let _ = live.finish().await;
        let left = db.one_i64(left_sql).await;
        assert!(
            left > 0 && left < 2500,
            "the kill did not land mid-way: {left} rows left"
        );
        assert_eq!(status_phase(&db, &d).await, "backfilling");
        let r = godwit(
            &[
                "backfill",
                &d,
                "--url",
                &db.url,
                "--execute",
                "--format",
                "json",
                "--batch-size",
                "100",
            ],
            &[],
        )
        .await;
        r.expect_ok();
        let first = r.event("backfill_progress").expect("progress");
        assert!(
            first["rows"].as_u64().unwrap() >= 300,
            "did not resume: {first}"
        );
        assert_eq!(db.one_i64(left_sql).await, 0);
        phase(&db.url, "contract", &d).await.expect_ok();
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }

    /// Only one runner at a time: while another session holds the runner lock, a phase
    /// command is refused clearly and changes nothing.
    #[tokio::test]
    async fn a_second_runner_is_refused() {
        let db = users("o2p_lock").await;
        let (dir, d) = write_migration(&db.name, "0001_rename_email.toml", RENAME_COLUMN);
        let other = db.conn().await;
        let got: bool = other
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('godwit_phases.' || current_schema()))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(got);
        let before = db.columns("users").await;
        let r = phase(&db.url, "expand", &d).await;
        assert_eq!(r.code, 40, "{}", r.stderr);
        assert!(
            r.stderr.contains("another godwit phase command is running"),
            "{}",
            r.stderr
        );
        assert_eq!(db.columns("users").await, before);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop(other);
        // Once the other runner is gone, the phase runs.
        phase(&db.url, "expand", &d).await.expect_ok();
        phase(&db.url, "abort", &d).await.expect_ok();
        assert_eq!(db.columns("users").await, before);
        assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
        drop_all(db, dir).await;
    }
}
