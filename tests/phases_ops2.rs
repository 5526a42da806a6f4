//! Expand / backfill / contract of `add_foreign_key` and `rename_table`, and `godwit
//! plan` of migration files: one case table, run on MariaDB and on PostgreSQL.
//!
//! The pattern: an "old application" connection writes the old shape (the old table name,
//! rows that ignore the new key) and a "new application" connection writes the new shape
//! (the new name, rows that rely on the key) at the same time; each sees the other's
//! writes; every phase run twice is a no-op the second time; contract leaves exactly what
//! a direct ALTER / RENAME leaves on a twin (MariaDB: a database of its own; PostgreSQL:
//! the schema `twin`); abort instead of contract gives back the original schema and data;
//! nothing with godwit's prefix is left but the state table. What each engine plans (its
//! statements and their locks) differs on purpose and is checked per engine.
//!
//! The runner's resume after a kill and its lock are in `tests/phases_engines.rs`.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::both::{Conn, Db, Engine};
use support::phases::{phase, status, write_migration};
use support::{godwit, Run};

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
fn plans(r: &Run) -> Vec<serde_json::Value> {
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

// ---------------------------------------------------------------------------------------
// The test database and its twin.

/// Where the twin lives: a database of its own on MariaDB, the schema `twin` on
/// PostgreSQL. The test's own tables are in the database itself / the schema `public`.
fn twin_schema(db: &Db) -> String {
    db.engine()
        .pick(format!("{}_twin", db.name()), "twin".to_string())
}

fn main_schema(db: &Db) -> String {
    db.engine()
        .pick(db.name().to_string(), "public".to_string())
}

/// `schema` spelled as a qualifier.
fn q(db: &Db, schema: &str) -> String {
    db.engine().pick(format!("`{schema}`"), schema.to_string())
}

/// Create the twin's schema, then `ddl` (with `{s}` for the schema) in both.
async fn create_both(db: &Db, ddl: &str) {
    let twin = twin_schema(db);
    db.exec(&match db.engine() {
        Engine::Maria => format!("CREATE DATABASE `{twin}`"),
        Engine::Postgres => format!("CREATE SCHEMA {twin}"),
    })
    .await;
    for s in [main_schema(db), twin] {
        db.exec(&ddl.replace("{s}", &q(db, &s))).await;
    }
}

async fn drop_all(db: Db, dir: std::path::PathBuf) {
    if db.engine() == Engine::Maria {
        db.exec(&format!("DROP DATABASE IF EXISTS `{}`", twin_schema(&db)))
            .await;
    }
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn texts(db: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    Conn::open(db)
        .await
        .texts(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count(db: &Db, sql: &str) -> i64 {
    texts(db, sql).await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// A table's shape as a direct ALTER leaves it, comparable with its twin's. MariaDB:
/// `SHOW CREATE TABLE` without the table's name and the AUTO_INCREMENT counter (it
/// depends on the writes), and its triggers. PostgreSQL: columns, indexes, constraints on
/// it and referencing it, triggers, owned sequences, privileges; schema names removed.
async fn shape(db: &Db, schema: &str, table: &str) -> Vec<String> {
    match db {
        Db::Maria(m) => {
            let r: Vec<(String, String)> = m
                .query(&format!("SHOW CREATE TABLE `{schema}`.`{table}`"))
                .await;
            let mut out: Vec<String> = r[0]
                .1
                .split(' ')
                .filter(|w| !w.starts_with("AUTO_INCREMENT="))
                .collect::<Vec<_>>()
                .join(" ")
                .lines()
                .skip(1)
                .map(String::from)
                .collect();
            out.extend(
                m.query::<String>(&format!(
                    "SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS \
                     WHERE TRIGGER_SCHEMA = '{schema}' AND EVENT_OBJECT_TABLE = '{table}' ORDER BY 1"
                ))
                .await,
            );
            out
        }
        Db::Postgres(p) => {
            let q = format!("{schema}.{table}");
            let mut out = p.columns(&q).await;
            for sql in [
                format!("SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = '{table}' ORDER BY 1"),
                format!("SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || contype::text || ' ' || convalidated::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{q}'::regclass OR confrelid = '{q}'::regclass ORDER BY 1"),
                format!("SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = '{q}'::regclass AND NOT tgisinternal ORDER BY 1"),
                format!("SELECT 'sequence ' || s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' WHERE d.refobjid = '{q}'::regclass ORDER BY 1"),
                format!("SELECT 'acl ' || coalesce(relacl::text, '') || ' kind ' || relkind::text FROM pg_class WHERE oid = '{q}'::regclass"),
            ] {
                out.extend(p.strings(&sql).await);
            }
            out.into_iter()
                .map(|l| l.replace("twin.", "").replace("public.", ""))
                .collect()
        }
    }
}

/// The shape of a table of the test's own.
async fn own_shape(db: &Db, table: &str) -> Vec<String> {
    shape(db, &main_schema(db), table).await
}

/// Tables and views of the test's own, by name.
async fn tables(db: &Db) -> Vec<String> {
    let mut t = db
        .strings(match db.engine() {
            Engine::Maria => {
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            }
            Engine::Postgres => {
                "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v')"
            }
        })
        .await;
    t.sort();
    t
}

async fn same_rows(db: &Db, table: &str) {
    let rows = |s: String| {
        let sql = format!("SELECT * FROM {}.{table} ORDER BY id", q(db, &s));
        async move { texts(db, &sql).await }
    };
    assert_eq!(
        rows(main_schema(db)).await,
        rows(twin_schema(db)).await,
        "rows of {table} differ from the twin"
    );
}

fn assert_refused(r: &Run, what: &[&str]) {
    assert_eq!(r.code, 40, "{}\n{}", r.stdout, r.stderr);
    for w in what {
        assert!(r.stderr.contains(w), "`{w}` missing from: {}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// add_foreign_key

/// `customers` and `orders` (no index on `orders.customer_id`) in the test's schema and
/// in the twin.
async fn fk_setup(engine: Engine, prefix: &str) -> Db {
    let db = Db::empty(engine, prefix).await;
    create_both(
        &db,
        match engine {
            Engine::Maria => "CREATE TABLE {s}.customers (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL); \
                 CREATE TABLE {s}.orders (id INT NOT NULL PRIMARY KEY, customer_id INT NULL, note VARCHAR(50) NULL, KEY idx_note (note)); \
                 INSERT INTO {s}.customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_200; \
                 INSERT INTO {s}.orders SELECT seq, IF(seq % 10 = 0, NULL, 1 + seq % 200), CONCAT('o', seq) FROM seq_1_to_2000;",
            Engine::Postgres => "CREATE TABLE {s}.customers (id int PRIMARY KEY, name text NOT NULL); \
                 CREATE TABLE {s}.orders (id int PRIMARY KEY, customer_id int, note text); \
                 CREATE INDEX ON {s}.orders (note); \
                 INSERT INTO {s}.customers SELECT i, 'c' || i FROM generate_series(1, 200) i; \
                 INSERT INTO {s}.orders SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + i % 200 END, 'o' || i FROM generate_series(1, 2000) i;",
        },
    )
    .await;
    db
}

/// The old application writes orders for existing customers and edits its notes; the
/// new one creates customers with orders and deletes customers relying on ON DELETE
/// CASCADE (on the twin, which has no key yet, the orders are deleted by hand). Each
/// transaction writes the test's tables and the twin's.
async fn fk_writers(db: &Db) {
    let (main, twin) = (q(db, &main_schema(db)), q(db, &twin_schema(db)));
    let both = move |sql: Vec<String>| -> Vec<String> {
        [&main, &twin]
            .iter()
            .flat_map(|s| sql.iter().map(|q| q.replace("{s}", s)).collect::<Vec<_>>())
            .collect()
    };
    let old = {
        let (engine, url, both) = (db.engine(), db.url().to_string(), both.clone());
        tokio::spawn(async move {
            let mut c = Conn::connect(engine, &url).await;
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
                c.transaction_retried(&both(sql)).await.unwrap();
            }
        })
    };
    let new = {
        let (engine, url, twin) = (db.engine(), db.url().to_string(), q(db, &twin_schema(db)));
        tokio::spawn(async move {
            let mut c = Conn::connect(engine, &url).await;
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
                c.transaction_retried(&both(sql)).await.unwrap();
                if k % 4 == 3 {
                    // The twin has no key: what the cascade does on the test's tables.
                    c.batch(&format!(
                        "DELETE FROM {twin}.orders WHERE id = {}",
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
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM customers WHERE id > 1000").await,
        (WRITES - WRITES / 4) as i64
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM orders WHERE id BETWEEN 10001 AND 19999"
        )
        .await,
        WRITES as i64
    );
}

async fn add_foreign_key_through_every_phase(engine: Engine) {
    let db = fk_setup(engine, "o2_fk").await;
    let (dir, d) = write_migration(db.name(), "0001_fk.toml", FK);
    phase(db.url(), "expand", &d).await.expect_ok();
    phase(db.url(), "expand", &d).await.expect_ok();
    // Enforced for new writes from expand on (each engine says so in its own words).
    let orphan = "INSERT INTO orders (id, customer_id) VALUES (99999, 99999)";
    match &db {
        Db::Maria(m) => {
            use mysql_async::prelude::Queryable;
            let mut c = m.conn().await;
            let e = c
                .query_drop(orphan)
                .await
                .expect_err("an orphan insert must fail once expanded");
            assert!(
                e.to_string().contains("foreign key constraint fails"),
                "{e}"
            );
        }
        Db::Postgres(p) => {
            // PostgreSQL adds the key NOT VALID at expand.
            assert_eq!(
                p.strings(
                    "SELECT convalidated::text FROM pg_constraint WHERE conname = 'fk_orders_customer'"
                )
                .await,
                vec!["false"],
                "expand adds the key NOT VALID"
            );
            let e = p
                .client
                .batch_execute(orphan)
                .await
                .expect_err("an orphan insert must fail once expanded");
            assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
            );
        }
    }
    fk_writers(&db).await;
    phase(db.url(), "backfill", &d).await.expect_ok();
    phase(db.url(), "backfill", &d).await.expect_ok();
    phase(db.url(), "contract", &d).await.expect_ok();
    phase(db.url(), "contract", &d).await.expect_ok();
    assert_eq!(status(db.url(), &d).await, "complete");

    let twin = twin_schema(&db);
    let tq = q(&db, &twin);
    db.exec(&format!(
        "ALTER TABLE {tq}.orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES {tq}.customers (id) ON DELETE CASCADE"
    ))
    .await;
    for t in ["orders", "customers"] {
        assert_eq!(
            own_shape(&db, t).await,
            shape(&db, &twin, t).await,
            "contract must leave what a direct ALTER gives"
        );
        same_rows(&db, t).await;
    }
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_all(db, dir).await;
}

async fn add_foreign_key_abort_returns_the_original(engine: Engine) {
    let db = fk_setup(engine, "o2_fk_abort").await;
    let original = own_shape(&db, "orders").await;
    let (dir, d) = write_migration(db.name(), "0001_fk.toml", FK);
    phase(db.url(), "expand", &d).await.expect_ok();
    assert_ne!(own_shape(&db, "orders").await, original);
    fk_writers(&db).await;
    phase(db.url(), "abort", &d).await.expect_ok();
    phase(db.url(), "abort", &d).await.expect_ok();
    assert_eq!(own_shape(&db, "orders").await, original);
    for t in ["orders", "customers"] {
        same_rows(&db, t).await;
    }
    assert_eq!(status(db.url(), &d).await, "aborted");
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_all(db, dir).await;
}

/// Orphans refuse expand (nothing changes), and rows written around the key (MariaDB:
/// foreign_key_checks=0; PostgreSQL: session_replication_role = replica skips foreign
/// key triggers) refuse contract (nothing changes) until they are fixed.
async fn add_foreign_key_with_orphans_is_refused(engine: Engine) {
    let db = fk_setup(engine, "o2_fk_orph").await;
    db.exec("INSERT INTO orders VALUES (5001, 777, 'orphan'), (5002, 778, 'orphan')")
        .await;
    let original = own_shape(&db, "orders").await;
    let (dir, d) = write_migration(db.name(), "0001_fk.toml", FK);
    let r = phase(db.url(), "expand", &d).await;
    assert_refused(
        &r,
        &["fk_orders_customer", "2 rows", "customer_id=777", "id=5001"],
    );
    assert_eq!(own_shape(&db, "orders").await, original);
    assert_eq!(status(db.url(), &d).await, "pending");

    db.exec("DELETE FROM orders WHERE id IN (5001, 5002)").await;
    phase(db.url(), "expand", &d).await.expect_ok();
    phase(db.url(), "backfill", &d).await.expect_ok();
    Conn::open(&db)
        .await
        .batch(engine.pick(
            "SET SESSION foreign_key_checks = 0; INSERT INTO orders VALUES (5003, 779, 'around the key')",
            "SET session_replication_role = replica; INSERT INTO orders VALUES (5003, 779, 'around the key')",
        ))
        .await
        .unwrap();
    let expanded = own_shape(&db, "orders").await;
    let r = phase(db.url(), "contract", &d).await;
    assert_refused(&r, &["1 row", "customer_id=779", "id=5003"]);
    assert_eq!(own_shape(&db, "orders").await, expanded);
    assert_eq!(status(db.url(), &d).await, "backfilled");
    db.exec("DELETE FROM orders WHERE id = 5003").await;
    phase(db.url(), "contract", &d).await.expect_ok();
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_all(db, dir).await;
}

// ---------------------------------------------------------------------------------------
// rename_table

/// `acct` with a generated key, a default, an index, a trigger and a table referencing
/// it, in the test's schema and in the twin; on PostgreSQL also a serial and a grant to a
/// role of the test's own (returned).
async fn rename_setup(engine: Engine, prefix: &str) -> (Db, Option<String>) {
    let db = Db::empty(engine, prefix).await;
    let ddl = match engine {
        Engine::Maria => "CREATE TABLE {s}.acct (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL DEFAULT 'anon', n INT NOT NULL, KEY idx_n (n)); \
             CREATE TABLE {s}.notes (id INT NOT NULL PRIMARY KEY, acct_id INT NULL, CONSTRAINT fk_notes_acct FOREIGN KEY (acct_id) REFERENCES {s}.acct (id)); \
             CREATE TRIGGER {s}.acct_n BEFORE INSERT ON {s}.acct FOR EACH ROW SET NEW.n = ABS(NEW.n); \
             INSERT INTO {s}.acct (name, n) SELECT CONCAT('a', seq), seq FROM seq_1_to_500; \
             INSERT INTO {s}.notes VALUES (1, 1), (2, 2);"
            .to_string(),
        Engine::Postgres => {
            let role = format!("{}_app", db.name());
            db.exec(&format!("CREATE ROLE \"{role}\"")).await;
            format!(
                "CREATE TABLE {{s}}.acct (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL DEFAULT 'anon', n int NOT NULL, seq serial); \
                 CREATE INDEX acct_n ON {{s}}.acct (n); \
                 CREATE TABLE {{s}}.notes (id int PRIMARY KEY, acct_id int REFERENCES {{s}}.acct (id)); \
                 CREATE FUNCTION {{s}}.acct_abs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := abs(NEW.n); RETURN NEW; END $$; \
                 CREATE TRIGGER acct_abs BEFORE INSERT ON {{s}}.acct FOR EACH ROW EXECUTE FUNCTION {{s}}.acct_abs(); \
                 GRANT SELECT, INSERT ON {{s}}.acct TO \"{role}\"; \
                 INSERT INTO {{s}}.acct (name, n) SELECT 'a' || i, i FROM generate_series(1, 500) i; \
                 INSERT INTO {{s}}.notes VALUES (1, 1), (2, 2);"
            )
        }
    };
    create_both(&db, &ddl).await;
    let role = (engine == Engine::Postgres).then(|| format!("{}_app", db.name()));
    (db, role)
}

async fn drop_rename(db: Db, dir: std::path::PathBuf, role: Option<String>) {
    let server = match &db {
        Db::Postgres(p) => Some(p.server.clone()),
        Db::Maria(_) => None,
    };
    drop_all(db, dir).await;
    if let (Some(role), Some(server)) = (role, server) {
        support::postgres::connect(&server)
            .await
            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await
            .unwrap();
    }
}

type Rows = BTreeMap<i64, (String, i64)>;

/// One application: WRITES inserts through `table` (the new one omits `name` and gets
/// the default), reading each row back by its generated key, and updates and deletes of
/// its own rows. Returns what it left. With `until`, it goes on until told to stop.
async fn rename_app(
    engine: Engine,
    url: String,
    table: &'static str,
    until: Option<Arc<AtomicBool>>,
) -> (Rows, Vec<String>) {
    let mut c = Conn::connect(engine, &url).await;
    let mut rows = Rows::new();
    let mut errors = Vec::new();
    let mut k: i64 = 0;
    loop {
        let stop = until.as_ref().map(|u| u.load(Ordering::SeqCst));
        if stop == Some(true) || (until.is_none() && k >= WRITES as i64) {
            break;
        }
        k += 1;
        let r: Result<(), String> = async {
            let (id, name) = if table == "acct" {
                c.batch(&format!(
                    "INSERT INTO acct (name, n) VALUES ('old {k}', {})",
                    -k
                ))
                .await?;
                let id = c
                    .first(&format!("SELECT MAX(id) FROM acct WHERE name = 'old {k}'"))
                    .await?;
                (id, format!("old {k}"))
            } else {
                // How a client learns the generated key: LAST_INSERT_ID() on MariaDB,
                // RETURNING on PostgreSQL (it shows the row as stored: the trigger made
                // n positive).
                let id = match engine {
                    Engine::Maria => {
                        c.batch(&format!("INSERT INTO {table} (n) VALUES ({})", -k))
                            .await?;
                        c.first("SELECT LAST_INSERT_ID()").await?
                    }
                    Engine::Postgres => {
                        let r = c
                            .texts(&format!(
                                "INSERT INTO {table} (n) VALUES ({}) RETURNING id, name, n",
                                -k
                            ))
                            .await?;
                        assert_eq!(r[0][1].as_deref(), Some("anon"));
                        assert_eq!(r[0][2], Some(k.to_string()));
                        r[0][0].clone()
                    }
                };
                (id, "anon".to_string())
            };
            let id: i64 = id.ok_or("no key")?.parse().map_err(|e| format!("{e}"))?;
            let back = c
                .texts(&format!("SELECT name, n FROM {table} WHERE id = {id}"))
                .await?;
            assert_eq!(
                back,
                vec![vec![Some(name.clone()), Some(k.to_string())]],
                "row {id} read back through {table}"
            );
            rows.insert(id, (name, k));
            if k % 3 == 0 {
                c.batch(&format!("UPDATE {table} SET n = n + 1000 WHERE id = {id}"))
                    .await?;
                rows.get_mut(&id).unwrap().1 += 1000;
            }
            if k % 5 == 0 {
                c.batch(&format!("DELETE FROM {table} WHERE id = {id}"))
                    .await?;
                rows.remove(&id);
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            errors.push(e);
            c = Conn::connect(engine, &url).await;
        }
    }
    (rows, errors)
}

async fn acct_rows(db: &Db, table: &str) -> Rows {
    texts(db, &format!("SELECT id, name, n FROM {table} ORDER BY id"))
        .await
        .into_iter()
        .map(|r| {
            let v: Vec<String> = r.into_iter().map(Option::unwrap_or_default).collect();
            (v[0].parse().unwrap(), (v[1].clone(), v[2].parse().unwrap()))
        })
        .collect()
}

/// The old and the new application write at the same time; each sees the other's
/// rows. The new one goes on writing while `after` runs (e.g. contract).
async fn both_names<F: std::future::Future<Output = ()>>(db: &Db, after: F) -> Rows {
    let stop = Arc::new(AtomicBool::new(false));
    let (engine, url) = (db.engine(), db.url().to_string());
    let old = tokio::spawn(rename_app(engine, url.clone(), "acct", None));
    let new = tokio::spawn(rename_app(engine, url, "accounts", Some(stop.clone())));
    let (old_rows, old_errors) = old.await.unwrap();
    assert!(old_errors.is_empty(), "old application: {old_errors:?}");
    // The new application sees the old one's rows through the new name.
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM accounts WHERE name LIKE 'old %'").await,
        old_rows.len() as i64
    );
    // And the old one the new one's rows through the old name.
    assert!(
        count(db, "SELECT COUNT(*) FROM acct WHERE name = 'anon'").await > 0,
        "the old name shows none of the new application's rows"
    );
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

async fn rename_table_through_every_phase(engine: Engine) {
    let (db, role) = rename_setup(engine, "o2_ren").await;
    let (dir, d) = write_migration(db.name(), "0001_rename.toml", RENAME);
    phase(db.url(), "expand", &d).await.expect_ok();
    phase(db.url(), "expand", &d).await.expect_ok();
    if let Some(role) = &role {
        // PostgreSQL: whoever may use the old name may use the new one.
        assert_eq!(
            db.strings(&format!(
                "SELECT has_table_privilege('{role}', 'accounts', 'INSERT')::text"
            ))
            .await,
            vec!["true"]
        );
    }
    let url = db.url().to_string();
    let dd = d.clone();
    let expected = both_names(&db, async move {
        phase(&url, "backfill", &dd).await.expect_ok();
        phase(&url, "backfill", &dd).await.expect_ok();
        phase(&url, "contract", &dd).await.expect_ok();
    })
    .await;
    phase(db.url(), "contract", &d).await.expect_ok();
    assert_eq!(status(db.url(), &d).await, "complete");

    let twin = twin_schema(&db);
    db.exec(&match engine {
        Engine::Maria => format!("RENAME TABLE `{twin}`.acct TO `{twin}`.accounts"),
        Engine::Postgres => format!("ALTER TABLE {twin}.acct RENAME TO accounts"),
    })
    .await;
    assert_eq!(
        tables(&db).await,
        vec!["_godwit_migrations", "accounts", "notes"]
    );
    for t in ["accounts", "notes"] {
        assert_eq!(
            own_shape(&db, t).await,
            shape(&db, &twin, t).await,
            "contract must leave what a direct RENAME gives"
        );
    }
    assert_eq!(acct_rows(&db, "accounts").await, expected);
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_rename(db, dir, role).await;
}

async fn rename_table_abort_returns_the_original(engine: Engine) {
    let (db, role) = rename_setup(engine, "o2_ren_abort").await;
    let original = own_shape(&db, "acct").await;
    let (dir, d) = write_migration(db.name(), "0001_rename.toml", RENAME);
    phase(db.url(), "expand", &d).await.expect_ok();
    let expected = both_names(&db, async {}).await;
    phase(db.url(), "abort", &d).await.expect_ok();
    phase(db.url(), "abort", &d).await.expect_ok();
    assert_eq!(
        tables(&db).await,
        vec!["_godwit_migrations", "acct", "notes"]
    );
    assert_eq!(own_shape(&db, "acct").await, original);
    assert_eq!(acct_rows(&db, "acct").await, expected);
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_rename(db, dir, role).await;
}

// ---------------------------------------------------------------------------------------
// godwit plan

/// Everything a plan could change: tables and views with their definitions, triggers,
/// row counts.
async fn snapshot(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    match db {
        Db::Maria(m) => {
            for t in m.tables().await {
                // Views too: their SHOW CREATE has more columns than a table's.
                let r: Vec<mysql_async::Row> = m.query(&format!("SHOW CREATE TABLE `{t}`")).await;
                out.push(r[0].get(1).unwrap());
                out.push(format!("{t}: {} rows", m.count(&t).await));
            }
            out.extend(
                db.strings(
                    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
                )
                .await,
            );
        }
        Db::Postgres(p) => {
            let rels = p
                .strings("SELECT relname::text || ' ' || relkind::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1")
                .await;
            for r in &rels {
                if let Some(t) = r.strip_suffix(" r") {
                    out.extend(shape(db, "public", t).await);
                    out.push(format!(
                        "{t}: {} rows",
                        p.one_i64(&format!("SELECT count(*) FROM {t}")).await
                    ));
                }
            }
            out.extend(rels);
        }
    }
    out.extend(db.phase_leftovers().await);
    out
}

/// The statements each engine plans and their locks.
fn check_plan_locks(engine: Engine, fk: &serde_json::Value, more: &serde_json::Value) {
    match engine {
        Engine::Maria => {
            // The key is added in place with foreign_key_checks=0: writes go on.
            let add = stmt(fk, "expand", "ADD CONSTRAINT `fk_orders_customer`");
            assert_eq!(add["kind"], "alter_table");
            assert!(
                add["lock"].as_str().unwrap().ends_with("LOCK=NONE"),
                "{add}"
            );
            assert_eq!(add["blocks_writes"], false);
            assert!(
                stmt(fk, "expand", "CREATE OR REPLACE ALGORITHM=MERGE")["lock"]
                    .as_str()
                    .unwrap()
                    .contains("view")
            );
            let swap = stmt(fk, "contract", "RENAME TABLE");
            assert_eq!(swap["kind"], "rename");
            assert!(
                swap["lock"].as_str().unwrap().contains("metadata lock"),
                "{swap}"
            );
            assert_eq!(
                stmt(fk, "contract", "RENAME INDEX")["lock"],
                "ALGORITHM=INSTANT, LOCK=NONE"
            );
            let idx = stmt(
                more,
                "expand",
                "ADD INDEX IF NOT EXISTS `idx_customer_note`",
            );
            assert!(
                idx["lock"].as_str().unwrap().ends_with("LOCK=NONE"),
                "{idx}"
            );
            assert_eq!(idx["scan"], true);
            let trg = stmt(more, "expand", "CREATE OR REPLACE TRIGGER");
            assert_eq!(trg["kind"], "trigger");
            let nn = stmt(more, "contract", "MODIFY COLUMN `flag`");
            assert_eq!(nn["lock"], "ALGORITHM=INPLACE, LOCK=NONE", "{nn}");
        }
        Engine::Postgres => {
            let add = stmt(fk, "expand", "NOT VALID");
            assert_eq!(add["lock"], "SHARE ROW EXCLUSIVE");
            assert_eq!(add["scan"], false);
            assert_eq!(add["in_transaction"], true);
            let validate = stmt(fk, "contract", "VALIDATE CONSTRAINT");
            assert_eq!(validate["lock"], "SHARE UPDATE EXCLUSIVE");
            assert_eq!(validate["scan"], true);
            assert_eq!(validate["blocks_writes"], false);
            assert_eq!(validate["in_transaction"], false);
            assert_eq!(
                stmt(fk, "contract", "DROP VIEW")["lock"],
                "ACCESS EXCLUSIVE"
            );
            let rename = stmt(fk, "contract", "RENAME TO");
            assert_eq!(rename["lock"], "ACCESS EXCLUSIVE");
            assert_eq!(rename["in_transaction"], true);
            // Checks run before the rest.
            assert_eq!(phase_of(fk, "contract")["statements"][0]["kind"], "check");
            let idx = stmt(more, "expand", "CREATE INDEX CONCURRENTLY");
            assert_eq!(idx["lock"], "SHARE UPDATE EXCLUSIVE");
            assert_eq!(idx["scan"], true);
            assert_eq!(
                stmt(more, "expand", "CREATE OR REPLACE TRIGGER")["lock"],
                "SHARE ROW EXCLUSIVE"
            );
            let nn = stmt(more, "contract", "SET NOT NULL");
            assert_eq!(nn["lock"], "ACCESS EXCLUSIVE");
            assert_eq!(nn["scan"], false, "{nn}");
        }
    }
}

/// `godwit plan DIR`: every statement of every phase with its lock; nothing changes.
async fn plan_of_migration_files(engine: Engine) {
    let db = fk_setup(engine, "o2_plan").await;
    db.exec(engine.pick(
        "CREATE TABLE acct (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL); INSERT INTO acct (n) SELECT seq FROM seq_1_to_100",
        "CREATE TABLE acct (id serial PRIMARY KEY, n int NOT NULL); INSERT INTO acct (n) SELECT i FROM generate_series(1, 100) i; ANALYZE;",
    ))
    .await;
    let text = format!(
        "{FK}\n[[operations]]\ntype = \"rename_table\"\nfrom = \"acct\"\nto = \"accounts\"\n"
    );
    let (dir, d) = write_migration(db.name(), "0001_fk.toml", &text);
    write_migration(db.name(), "0002_more.toml", MORE);
    let before = snapshot(&db).await;
    let run = |extra: &'static [&'static str]| {
        let (url, d) = (db.url().to_string(), d.clone());
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
    let all = plans(&run(&["--format", "json"]).await);
    check_plan_shape(&all);
    check_plan_locks(engine, &all[0], &all[1]);

    // Text: a table per phase.
    let t = run(&[]).await;
    t.expect_ok();
    for w in [
        "0001_fk",
        "expand",
        "contract",
        "abort (instead of contract)",
        engine.pick("LOCK=NONE", "SHARE UPDATE EXCLUSIVE"),
        "batches of 500",
    ] {
        assert!(t.stdout.contains(w), "`{w}` missing:\n{}", t.stdout);
    }
    assert_eq!(snapshot(&db).await, before, "plan changed the database");
    assert!(!tables(&db)
        .await
        .contains(&"_godwit_migrations".to_string()));

    // After expand: only what is left of 0001 is planned.
    phase(db.url(), "expand", &d).await.expect_ok();
    let expanded = snapshot(&db).await;
    let all = plans(&run(&["--format", "json"]).await);
    assert_eq!(all[0]["state"], "expanded");
    assert_eq!(phase_names(&all[0]), vec!["backfill", "contract", "abort"]);
    assert_eq!(snapshot(&db).await, expanded, "plan changed the database");
    // The ALTER form still works.
    let r = godwit(
        &[
            "plan",
            "--url",
            db.url(),
            "--table",
            "customers",
            "--alter",
            "ADD COLUMN x INT",
        ],
        &[],
    )
    .await;
    r.expect_ok();
    phase(db.url(), "abort", &d).await.expect_ok();
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    drop_all(db, dir).await;
}

support::both::cases!(
    add_foreign_key_through_every_phase,
    add_foreign_key_abort_returns_the_original,
    add_foreign_key_with_orphans_is_refused,
    rename_table_through_every_phase,
    rename_table_abort_returns_the_original,
    plan_of_migration_files,
);
