//! Expand / backfill / contract from migration files on PostgreSQL: a column rename that
//! the old and the new application both write while it rolls out.

mod support;
use support::godwit;
use support::postgres::TestDb;

const RENAME: &str = r#"name = "rename email"
description = "users.email becomes users.email_address"

[[operations]]
type = "rename_column"
table = "users"
from = "email"
to = "email_address"
"#;

fn write_file(db: &TestDb, text: &str) -> (std::path::PathBuf, String) {
    support::phases::write_migration(&db.name, "0001_rename_email.toml", text)
}

async fn setup(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    for t in ["users", "twin"] {
        db.exec(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL, email varchar(100)); \
             CREATE INDEX ON {t} (name); \
             INSERT INTO {t} SELECT i, 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 2500) i;"
        ))
        .await;
    }
    db
}

async fn phase(db: &TestDb, cmd: &str, dir: &str) -> support::Run {
    support::phases::phase(&db.url, cmd, dir).await
}

async fn triggers(db: &TestDb) -> Vec<String> {
    db.strings("SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal")
        .await
}

#[tokio::test]
async fn rename_column_through_every_phase() {
    let db = setup("ph_rename").await;
    let (dir, d) = write_file(&db, RENAME);
    let dry = godwit(&["expand", &d, "--url", &db.url], &[]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(!db
        .columns("users")
        .await
        .iter()
        .any(|c| c.starts_with("email_address")));

    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email) VALUES (9001, 'old app', 'old@x')")
        .await;
    db.exec("INSERT INTO users (id, name, email_address) VALUES (9002, 'new app', 'new@x')")
        .await;
    db.exec("UPDATE users SET email = 'old-upd@x' WHERE id = 5")
        .await;
    db.exec("UPDATE users SET email_address = 'new-upd@x' WHERE id = 6")
        .await;
    assert_eq!(
        db.rows("users", "id, email, email_address", "id")
            .await
            .into_iter()
            .filter(|r| ["(5,", "(6,", "(9001,", "(9002,"]
                .iter()
                .any(|p| r.starts_with(p)))
            .collect::<Vec<_>>(),
        vec![
            "(5,old-upd@x,old-upd@x)".to_string(),
            "(6,new-upd@x,new-upd@x)".to_string(),
            "(9001,old@x,old@x)".to_string(),
            "(9002,new@x,new@x)".to_string(),
        ]
    );
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'old@x'), (9002, 'new app', 'new@x'); \
             UPDATE twin SET email = 'old-upd@x' WHERE id = 5; UPDATE twin SET email = 'new-upd@x' WHERE id = 6;")
        .await;

    let before = db.columns("users").await;
    let early = phase(&db, "contract", &d).await;
    assert_eq!(early.code, 40, "{}\n{}", early.stdout, early.stderr);
    assert_eq!(db.columns("users").await, before);

    phase(&db, "backfill", &d).await.expect_ok();
    assert_eq!(
        db.one_i64("SELECT count(*) FROM users WHERE email IS DISTINCT FROM email_address")
            .await,
        0
    );
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "expand", &d).await.expect_ok();

    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin RENAME COLUMN email TO email_address")
        .await;
    assert_eq!(db.columns("users").await, db.columns("twin").await);
    assert_eq!(
        db.rows("users", "id, name, email_address", "id").await,
        db.rows("twin", "id, name, email_address", "id").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    phase(&db, "contract", &d).await.expect_ok();
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn abort_returns_the_original_schema_and_keeps_data() {
    let db = setup("ph_abort").await;
    let (dir, d) = write_file(&db, RENAME);
    let original = db.columns("users").await;
    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email_address) VALUES (9002, 'new app', 'new@x')")
        .await;
    db.exec("UPDATE users SET email_address = 'new-upd@x' WHERE id = 6")
        .await;
    phase(&db, "abort", &d).await.expect_ok();
    assert_eq!(db.columns("users").await, original);
    assert!(triggers(&db).await.is_empty(), "triggers left");
    assert_eq!(
        db.strings("SELECT email FROM users WHERE id IN (6, 9002) ORDER BY id")
            .await,
        vec!["new-upd@x".to_string(), "new@x".to_string()]
    );
    assert_eq!(db.one_i64("SELECT count(*) FROM users").await, 2501);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A writer that knows nothing of godwit (default session settings) writes the base table
/// through every phase, mirroring each write in the same transaction: no error, no loss.
#[tokio::test]
async fn a_plain_writer_keeps_working_through_every_phase() {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::sync::Arc;
    let db = setup("ph_writer").await;
    db.exec(
        "CREATE TABLE mirror (id int PRIMARY KEY, name text NOT NULL, mail varchar(100)); \
             INSERT INTO mirror SELECT id, name, email FROM users;",
    )
    .await;
    let (dir, d) = write_file(&db, RENAME);
    let shape = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = db.url.clone();
    let (s2, st2) = (shape.clone(), stop.clone());
    let writer = tokio::spawn(async move {
        let mut c = support::postgres::connect(&url).await;
        let mut errors = Vec::new();
        let mut n: i32 = 0;
        while !st2.load(Ordering::SeqCst) {
            n += 1;
            let col = if s2.load(Ordering::SeqCst) == 0 {
                "email"
            } else {
                "email_address"
            };
            let id = 20_000 + n;
            let target = 1 + (n * 7919) % 2500;
            let mail = format!("w{n}@x");
            let upd = format!("upd{n}@x");
            let r: Result<(), tokio_postgres::Error> = async {
                let tx = c.transaction().await?;
                tx.execute(
                    &format!("INSERT INTO users (id, name, {col}) VALUES ($1, 'w', $2)"),
                    &[&id, &mail],
                )
                .await?;
                tx.execute(
                    "INSERT INTO mirror (id, name, mail) VALUES ($1, 'w', $2)",
                    &[&id, &mail],
                )
                .await?;
                tx.execute(
                    &format!("UPDATE users SET {col} = $1 WHERE id = $2"),
                    &[&upd, &target],
                )
                .await?;
                tx.execute(
                    "UPDATE mirror SET mail = $1 WHERE id = $2",
                    &[&upd, &target],
                )
                .await?;
                if n % 5 == 0 {
                    tx.execute("DELETE FROM users WHERE id = $1", &[&(id - 3)])
                        .await?;
                    tx.execute("DELETE FROM mirror WHERE id = $1", &[&(id - 3)])
                        .await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = r {
                errors.push(e.to_string());
                c = support::postgres::connect(&url).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        (n, errors)
    });
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(300));
    pause().await;
    phase(&db, "expand", &d).await.expect_ok();
    pause().await;
    phase(&db, "backfill", &d).await.expect_ok();
    pause().await;
    shape.store(1, Ordering::SeqCst); // the new application is deployed
    pause().await;
    phase(&db, "contract", &d).await.expect_ok();
    pause().await;
    stop.store(true, Ordering::SeqCst);
    let (writes, errors) = writer.await.unwrap();
    assert!(errors.is_empty(), "writer errors: {errors:?}");
    assert!(writes > 50, "the writer did too little: {writes}");
    assert_eq!(
        db.rows("users", "id, name, email_address", "id").await,
        db.rows("mirror", "id, name, mail", "id").await,
        "a write was lost"
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// add_column with an `up` expression and NOT NULL at contract: old-application inserts
/// get the computed value, and the result equals the direct ALTER.
#[tokio::test]
async fn add_column_with_up_then_not_null() {
    let db = setup("ph_addcol").await;
    let file = r#"name = "verified flag"
[[operations]]
type = "add_column"
table = "users"
column = { name = "verified", type = "int", nullable = false, default = "0" }
up = "CASE WHEN email LIKE '%@example.com' THEN 1 ELSE 0 END"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    let ins = "INSERT INTO {t} (id, name, email) VALUES (9001, 'old app', 'a@example.com'), (9002, 'old app', 'b@other.org')";
    db.exec(&ins.replace("{t}", "users")).await;
    db.exec(&ins.replace("{t}", "twin")).await;
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec(
        "ALTER TABLE twin ADD COLUMN verified int NOT NULL DEFAULT 0; \
             UPDATE twin SET verified = CASE WHEN email LIKE '%@example.com' THEN 1 ELSE 0 END;",
    )
    .await;
    assert_eq!(db.columns("users").await, db.columns("twin").await);
    assert_eq!(
        db.rows("users", "id, name, email, verified", "id").await,
        db.rows("twin", "id, name, email, verified", "id").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// set_not_null and drop_column: NULLs replaced (existing and new), a column dropped while
/// the new application no longer writes it; both equal the direct ALTERs.
#[tokio::test]
async fn set_not_null_and_drop_column() {
    let db = setup("ph_nn").await;
    db.exec("UPDATE users SET email = NULL WHERE id % 10 = 0; UPDATE twin SET email = NULL WHERE id % 10 = 0;").await;
    let file = r#"name = "email required, name gone"
[[operations]]
type = "set_not_null"
table = "users"
column = "email"
up = "'unknown@x'"

[[operations]]
type = "drop_column"
table = "users"
column = "name"
down = "'?'"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email) VALUES (9001, 'old app', NULL)")
        .await;
    db.exec("INSERT INTO users (id, email) VALUES (9002, 'new@x')")
        .await;
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'unknown@x'), (9002, '?', 'new@x')").await;
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec(
        "UPDATE twin SET email = 'unknown@x' WHERE email IS NULL; \
             ALTER TABLE twin ALTER COLUMN email SET NOT NULL, DROP COLUMN name;",
    )
    .await;
    assert_eq!(db.columns("users").await, db.columns("twin").await);
    assert_eq!(
        db.rows("users", "id, email", "id").await,
        db.rows("twin", "id, email", "id").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// add_index (CONCURRENTLY) and sql (raw up / down), and abort running `down`.
#[tokio::test]
async fn add_index_and_sql() {
    let db = setup("ph_idx").await;
    let file = r#"name = "index and audit table"
[[operations]]
type = "add_index"
table = "users"
name = "users_email_idx"
columns = ["email"]
unique = true

[[operations]]
type = "sql"
up = "CREATE TABLE audit (id int PRIMARY KEY)"
down = "DROP TABLE audit"
"#;
    let (dir, d) = write_file(&db, file);
    let original = db
        .strings("SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1")
        .await;
    phase(&db, "expand", &d).await.expect_ok();
    assert_eq!(
        db.one_i64("SELECT count(*) FROM pg_class WHERE relname = 'audit'")
            .await,
        1
    );
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    let defs = db
        .strings("SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1")
        .await;
    assert!(
        defs.iter().any(|d| d == "CREATE UNIQUE INDEX users_email_idx ON public.users USING btree (email)"),
        "{defs:?}"
    );
    assert_eq!(
        db.one_i64("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'users_email_idx' AND i.indisvalid").await,
        1
    );
    std::fs::remove_dir_all(&dir).ok();
    db.drop_db().await;

    let db = setup("ph_idx_abort").await;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    phase(&db, "abort", &d).await.expect_ok();
    assert_eq!(
        db.one_i64("SELECT count(*) FROM pg_class WHERE relname = 'audit'")
            .await,
        0
    );
    assert_eq!(
        db.strings("SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1")
            .await,
        original
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A backfill batch that waits on an application's row lock longer than
/// `--lock-timeout-seconds` fails as a phase error (exit 40, not a cut-over failure),
/// and a rerun resumes and finishes.
#[tokio::test]
async fn a_backfill_blocked_by_a_row_lock_fails_clearly_and_resumes() {
    let db = setup("ph_bflock").await;
    let file = r#"name = "verified flag"
[[operations]]
type = "add_column"
table = "users"
column = { name = "verified", type = "int" }
up = "1"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    let holder = db.conn().await;
    holder
        .batch_execute("BEGIN; SELECT * FROM users WHERE id = 2000 FOR UPDATE")
        .await
        .unwrap();
    let r = godwit(
        &[
            "backfill",
            &d,
            "--url",
            &db.url,
            "--execute",
            "--batch-size",
            "300",
            "--lock-timeout-seconds",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(r.stderr.contains("--lock-timeout-seconds"), "{}", r.stderr);
    holder.batch_execute("ROLLBACK").await.unwrap();
    phase(&db, "backfill", &d).await.expect_ok();
    assert_eq!(
        db.one_i64("SELECT count(*) FROM users WHERE verified IS DISTINCT FROM 1")
            .await,
        0
    );
    phase(&db, "abort", &d).await.expect_ok();
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}
