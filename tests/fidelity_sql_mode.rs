//! Fidelity under the server's own settings (issue #12): godwit builds the new table
//! under the server's global `sql_mode` and `time_zone`, as a native ALTER from a client
//! with the server's defaults would, not under its own session settings.
//!
//! The test changes server-wide settings (`SET GLOBAL`), so it is the only test in this
//! binary (test binaries run one after the other) and puts the settings back at the end,
//! also when it fails.

mod support;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use support::mysql::{server_url, TestDb};

async fn admin() -> Conn {
    Conn::new(Opts::from_url(&server_url().await).unwrap())
        .await
        .unwrap()
}

async fn set_global(sql_mode: &str, time_zone: &str) {
    let mut c = admin().await;
    c.exec_drop(
        "SET GLOBAL sql_mode = ?, GLOBAL time_zone = ?",
        (sql_mode, time_zone),
    )
    .await
    .unwrap();
    c.disconnect().await.unwrap();
}

/// A database whose connections (opened from now on) have the current global settings,
/// with `t` and its twin `twin`: same definition, same rows.
async fn twins(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    for t in ["t", "twin"] {
        db.exec(&format!(
            "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, d DATE NULL, c VARCHAR(20) NULL) ENGINE=InnoDB"
        ))
        .await;
        db.exec(&format!(
            "INSERT INTO {t} SELECT seq, '2024-01-01' + INTERVAL seq DAY, CONCAT('c', seq) FROM seq_1_to_50"
        ))
        .await;
    }
    db
}

async fn run(db: &TestDb, alter: &str) -> support::Run {
    support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            alter,
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
        ],
        &[],
    )
    .await
}

/// godwit's result equals the twin's after the native ALTER: definition and rows.
async fn same_as_native(db: &TestDb, alter: &str) {
    db.exec(&format!("ALTER TABLE twin {alter}")).await;
    let r = run(db, alter).await;
    assert_eq!(r.code, 0, "{alter}: {}\n{}", r.stdout, r.stderr);
    assert_eq!(
        db.show_create("t").await,
        db.show_create("twin")
            .await
            .replace("CREATE TABLE `twin`", "CREATE TABLE `t`"),
        "{alter}: the definition differs from the native ALTER's"
    );
    let (a, b) = (
        db.rows("t", "*", "id").await,
        db.rows("twin", "*", "id").await,
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "{alter}: rows differ");
    let left = db.leftovers(&[]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn body() {
    // A mode that refuses zero dates: the ALTER is refused, by the server and by godwit,
    // with the server's message, and nothing changes.
    set_global(
        "STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
        "SYSTEM",
    )
    .await;
    let db = twins("fid_mode_strict").await;
    let alter = "ADD COLUMN z DATE NOT NULL DEFAULT '0000-00-00'";
    let native = db
        .conn()
        .await
        .query_drop(format!("ALTER TABLE twin {alter}"))
        .await
        .expect_err("the server accepted a zero-date default under NO_ZERO_DATE");
    assert!(native.to_string().contains("Invalid default value for 'z'"));
    let before = db.show_create("t").await;
    let rows = db.rows("t", "*", "id").await;
    let r = run(&db, alter).await;
    assert_eq!(r.code, 19, "{}\n{}", r.stdout, r.stderr);
    let err = r.event("error").expect("an error event");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Invalid default value for 'z'"),
        "{err}"
    );
    assert_eq!(db.show_create("t").await, before);
    assert!(db.rows("t", "*", "id").await == rows);
    let left = db.leftovers(&[]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    db.drop_db().await;

    // A mode that is not strict: the server turns a VARCHAR too long for a row into a
    // TEXT type, where godwit's own strict session would refuse it.
    set_global("NO_ENGINE_SUBSTITUTION", "SYSTEM").await;
    let db = twins("fid_mode_lax").await;
    same_as_native(&db, "MODIFY c VARCHAR(70000) NULL").await;
    db.drop_db().await;

    // The server's time zone reads a TIMESTAMP default written in the ALTER.
    set_global("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "+05:00").await;
    let db = twins("fid_mode_tz").await;
    same_as_native(
        &db,
        "ADD COLUMN ts TIMESTAMP NOT NULL DEFAULT '2024-01-01 00:00:00'",
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn the_new_table_is_built_under_the_servers_settings() {
    let (mode, tz): (String, String) = admin()
        .await
        .query_first("SELECT @@GLOBAL.sql_mode, @@GLOBAL.time_zone")
        .await
        .unwrap()
        .unwrap();
    let outcome = tokio::spawn(body()).await;
    set_global(&mode, &tz).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
