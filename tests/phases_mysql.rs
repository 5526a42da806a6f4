//! Expand / backfill / contract from migration files on MariaDB: a column rename that the
//! old and the new application both write while it rolls out.

mod support;
use support::godwit;
use support::mysql::TestDb;

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
            "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100) NULL, KEY idx_name (name))"
        ))
        .await;
        db.exec(&format!(
            "INSERT INTO {t} SELECT seq, CONCAT('user', seq), CONCAT('u', seq, '@example.com') FROM seq_1_to_2500"
        ))
        .await;
    }
    db
}

async fn phase(db: &TestDb, cmd: &str, dir: &str) -> support::Run {
    support::phases::phase(&db.url, cmd, dir).await
}

fn without_name(create: &str) -> String {
    create.lines().skip(1).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn rename_column_through_every_phase() {
    let db = setup("ph_rename").await;
    let (dir, d) = write_file(&db, RENAME);

    // Without --execute nothing changes.
    let dry = godwit(&["expand", &d, "--url", &db.url], &[]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(!db.show_create("users").await.contains("email_address"));

    phase(&db, "expand", &d).await.expect_ok();
    // Old application writes the old shape; new application the new one.
    db.exec("INSERT INTO users (id, name, email) VALUES (9001, 'old app', 'old@x')")
        .await;
    db.exec("INSERT INTO users (id, name, email_address) VALUES (9002, 'new app', 'new@x')")
        .await;
    db.exec("UPDATE users SET email = 'old-upd@x' WHERE id = 5")
        .await;
    db.exec("UPDATE users SET email_address = 'new-upd@x' WHERE id = 6")
        .await;
    let seen: Vec<(i32, Option<String>, Option<String>)> = db
        .query(
            "SELECT id, email, email_address FROM users WHERE id IN (5, 6, 9001, 9002) ORDER BY id",
        )
        .await;
    assert_eq!(
        seen,
        vec![
            (5, Some("old-upd@x".into()), Some("old-upd@x".into())),
            (6, Some("new-upd@x".into()), Some("new-upd@x".into())),
            (9001, Some("old@x".into()), Some("old@x".into())),
            (9002, Some("new@x".into()), Some("new@x".into())),
        ]
    );
    // The same writes on the twin, in the old shape (it gets the native ALTER later).
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'old@x'), (9002, 'new app', 'new@x')").await;
    db.exec("UPDATE twin SET email = 'old-upd@x' WHERE id = 5")
        .await;
    db.exec("UPDATE twin SET email = 'new-upd@x' WHERE id = 6")
        .await;

    // Out of order: contract before backfill is refused, nothing changes.
    let before = db.show_create("users").await;
    let early = phase(&db, "contract", &d).await;
    assert_eq!(early.code, 40, "{}\n{}", early.stdout, early.stderr);
    assert_eq!(db.show_create("users").await, before);

    phase(&db, "backfill", &d).await.expect_ok();
    let missing: Vec<u64> = db
        .query("SELECT COUNT(*) FROM users WHERE NOT (email <=> email_address)")
        .await;
    assert_eq!(missing[0], 0, "backfill left rows behind");
    // Each phase run twice is a no-op the second time.
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "expand", &d).await.expect_ok();

    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin RENAME COLUMN email TO email_address")
        .await;
    assert_eq!(
        without_name(&db.show_create("users").await),
        without_name(&db.show_create("twin").await),
        "contract must leave the schema a direct ALTER gives"
    );
    assert_eq!(
        db.rows("users", "id, name, email_address", "id").await,
        db.rows("twin", "id, name, email_address", "id").await
    );
    let triggers: Vec<String> = db
        .query(&format!(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}'",
            db.name
        ))
        .await;
    assert!(triggers.is_empty(), "triggers left: {triggers:?}");
    phase(&db, "contract", &d).await.expect_ok();
    let status = godwit(&["status", &d, "--url", &db.url, "--format", "json"], &[]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("\"phase\":\"complete\""),
        "{}",
        status.stdout
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn abort_returns_the_original_schema_and_keeps_data() {
    let db = setup("ph_abort").await;
    let (dir, d) = write_file(&db, RENAME);
    let original = without_name(&db.show_create("users").await);
    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email_address) VALUES (9002, 'new app', 'new@x')")
        .await;
    db.exec("UPDATE users SET email_address = 'new-upd@x' WHERE id = 6")
        .await;
    phase(&db, "abort", &d).await.expect_ok();
    assert_eq!(without_name(&db.show_create("users").await), original);
    let rows: Vec<(i32, Option<String>)> = db
        .query("SELECT id, email FROM users WHERE id IN (6, 9002) ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![(6, Some("new-upd@x".into())), (9002, Some("new@x".into()))]
    );
    assert_eq!(db.count("users").await, 2501);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

#[tokio::test]
async fn a_changed_file_and_a_bad_file_are_refused() {
    let db = setup("ph_bad").await;
    let (dir, d) = write_file(&db, RENAME);
    phase(&db, "expand", &d).await.expect_ok();
    std::fs::write(
        dir.join("0001_rename_email.toml"),
        RENAME.replace("email_address", "mail"),
    )
    .unwrap();
    let r = phase(&db, "backfill", &d).await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(r.stderr.contains("--allow-changed"), "{}", r.stderr);
    std::fs::write(
        dir.join("0002_bad.toml"),
        "name = \"bad\"\n[[operations]]\ntype = \"frobnicate\"\ntable = \"users\"\n",
    )
    .unwrap();
    let r = godwit(&["status", &d, "--url", &db.url], &[]).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("0002_bad") && r.stderr.contains("frobnicate"),
        "{}",
        r.stderr
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A writer that knows nothing of godwit writes the base table through every phase (old
/// shape until the new application is "deployed", new shape after), mirroring each write
/// into a plain table in the same transaction: no error, no lost write.
#[tokio::test]
async fn a_plain_writer_keeps_working_through_every_phase() {
    use mysql_async::prelude::*;
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::sync::Arc;
    let db = setup("ph_writer").await;
    db.exec("CREATE TABLE mirror (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, mail VARCHAR(100) NULL)").await;
    db.exec("INSERT INTO mirror SELECT id, name, email FROM users")
        .await;
    let (dir, d) = write_file(&db, RENAME);
    let shape = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let pool = db.pool.clone();
    let (s2, st2) = (shape.clone(), stop.clone());
    let writer = tokio::spawn(async move {
        let mut c = pool.get_conn().await.unwrap();
        let mut errors = Vec::new();
        let mut n: i64 = 0;
        while !st2.load(Ordering::SeqCst) {
            n += 1;
            let col = if s2.load(Ordering::SeqCst) == 0 {
                "email"
            } else {
                "email_address"
            };
            let id = 20_000 + n;
            let target = 1 + (n * 7919) % 2500;
            let r: Result<(), mysql_async::Error> = async {
                let mut tx = c.start_transaction(Default::default()).await?;
                tx.exec_drop(
                    format!("INSERT INTO users (id, name, {col}) VALUES (?, 'w', ?)"),
                    (id, format!("w{n}@x")),
                )
                .await?;
                tx.exec_drop(
                    "INSERT INTO mirror (id, name, mail) VALUES (?, 'w', ?)",
                    (id, format!("w{n}@x")),
                )
                .await?;
                tx.exec_drop(
                    format!("UPDATE users SET {col} = ? WHERE id = ?"),
                    (format!("upd{n}@x"), target),
                )
                .await?;
                tx.exec_drop(
                    "UPDATE mirror SET mail = ? WHERE id = ?",
                    (format!("upd{n}@x"), target),
                )
                .await?;
                if n % 5 == 0 {
                    tx.exec_drop("DELETE FROM users WHERE id = ?", (id - 3,))
                        .await?;
                    tx.exec_drop("DELETE FROM mirror WHERE id = ?", (id - 3,))
                        .await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = r {
                errors.push(e.to_string());
                c = pool.get_conn().await.unwrap();
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
column = { name = "verified", type = "INT", nullable = false, default = "0" }
up = "IF(email LIKE '%@example.com', 1, 0)"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email) VALUES (9001, 'old app', 'a@example.com'), (9002, 'old app', 'b@other.org')").await;
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'a@example.com'), (9002, 'old app', 'b@other.org')").await;
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin ADD COLUMN verified INT NOT NULL DEFAULT 0")
        .await;
    db.exec("UPDATE twin SET verified = IF(email LIKE '%@example.com', 1, 0)")
        .await;
    assert_eq!(
        without_name(&db.show_create("users").await),
        without_name(&db.show_create("twin").await)
    );
    assert_eq!(
        db.rows("users", "id, name, email, verified", "id").await,
        db.rows("twin", "id, name, email, verified", "id").await
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// set_not_null and drop_column: NULLs replaced (existing and new), a column dropped while
/// the new application no longer writes it; both equal the direct ALTERs.
#[tokio::test]
async fn set_not_null_and_drop_column() {
    let db = setup("ph_nn").await;
    for t in ["users", "twin"] {
        db.exec(&format!("UPDATE {t} SET email = NULL WHERE id % 10 = 0"))
            .await;
    }
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
    // Old application: writes name, sometimes a NULL email. New one: no name.
    db.exec("INSERT INTO users (id, name, email) VALUES (9001, 'old app', NULL)")
        .await;
    db.exec("INSERT INTO users (id, email) VALUES (9002, 'new@x')")
        .await;
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'unknown@x'), (9002, '?', 'new@x')").await;
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec("UPDATE twin SET email = 'unknown@x' WHERE email IS NULL")
        .await;
    db.exec("ALTER TABLE twin MODIFY email VARCHAR(100) NOT NULL, DROP COLUMN name")
        .await;
    assert_eq!(
        without_name(&db.show_create("users").await),
        without_name(&db.show_create("twin").await)
    );
    assert_eq!(
        db.rows("users", "id, email", "id").await,
        db.rows("twin", "id, email", "id").await
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A backfill killed mid-way resumes from the last finished batch.
#[tokio::test]
async fn interrupted_backfill_resumes() {
    let db = setup("ph_resume").await;
    let (dir, d) = write_file(&db, RENAME);
    phase(&db, "expand", &d).await.expect_ok();
    let mut live = support::LiveRun::start(
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
    support::phases::signal(live.pid(), 9);
    let _ = live.finish().await;
    let left: Vec<u64> = db
        .query("SELECT COUNT(*) FROM users WHERE NOT (email <=> email_address)")
        .await;
    assert!(
        left[0] > 0 && left[0] < 2500,
        "the kill did not land mid-way: {} rows left",
        left[0]
    );
    let done_before: Vec<u64> = db
        .query("SELECT COUNT(*) FROM users WHERE email <=> email_address")
        .await;
    // Resume: the rows already done are not done again.
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
    let first = r
        .events
        .iter()
        .find(|e| e["event"] == "backfill_progress")
        .expect("progress");
    assert!(
        first["rows"].as_u64().unwrap() >= 300,
        "did not resume: {first}"
    );
    let left: Vec<u64> = db
        .query("SELECT COUNT(*) FROM users WHERE NOT (email <=> email_address)")
        .await;
    assert_eq!(left[0], 0);
    assert!(done_before[0] >= 300);
    phase(&db, "contract", &d).await.expect_ok();
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// Only one runner at a time: while another session holds the runner lock, a phase
/// command is refused clearly and changes nothing.
#[tokio::test]
async fn a_second_runner_is_refused() {
    use mysql_async::prelude::*;
    let db = setup("ph_lock").await;
    let (dir, d) = write_file(&db, RENAME);
    let mut other = db.conn().await;
    let got: Option<i64> = other
        .exec_first(
            "SELECT GET_LOCK(?, 0)",
            (format!("godwit_phases.{}", db.name),),
        )
        .await
        .unwrap();
    assert_eq!(got, Some(1));
    let before = db.show_create("users").await;
    let r = phase(&db, "expand", &d).await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(
        r.stderr.contains("another godwit phase command is running"),
        "{}",
        r.stderr
    );
    assert_eq!(db.show_create("users").await, before);
    drop(other);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// add_index (online) and sql (raw up / down): expand builds them, contract finishes,
/// and abort of the `sql` operation runs its `down`.
#[tokio::test]
async fn add_index_and_sql() {
    let db = setup("ph_idx").await;
    let file = r#"name = "index and audit table"
[[operations]]
type = "add_index"
table = "users"
name = "idx_email"
columns = ["email"]
unique = true

[[operations]]
type = "sql"
up = "CREATE TABLE audit (id INT PRIMARY KEY)"
down = "DROP TABLE audit"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    assert!(db.tables().await.contains(&"audit".to_string()));
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin ADD UNIQUE INDEX idx_email (email)")
        .await;
    assert_eq!(
        without_name(&db.show_create("users").await),
        without_name(&db.show_create("twin").await)
    );
    std::fs::remove_dir_all(&dir).ok();

    // Abort instead of contract runs `down` and removes the index.
    let db2 = setup("ph_idx_abort").await;
    let (dir2, d2) = write_file(&db2, file);
    let original = without_name(&db2.show_create("users").await);
    phase(&db2, "expand", &d2).await.expect_ok();
    phase(&db2, "abort", &d2).await.expect_ok();
    assert!(!db2.tables().await.contains(&"audit".to_string()));
    assert_eq!(without_name(&db2.show_create("users").await), original);
    std::fs::remove_dir_all(dir2).ok();
    db.drop_db().await;
    db2.drop_db().await;
}
