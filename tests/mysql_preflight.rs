//! Every preflight failure: its exit code, a message that names the problem and the fix,
//! and a database left exactly as it was.

mod support;
use mysql_async::prelude::*;
use support::mysql::*;
use support::{godwit, PrivateServer, Run};

/// Tables and their definitions and rows, to prove nothing changed.
async fn snapshot(db: &TestDb) -> Vec<(String, String, Vec<Vec<mysql_async::Value>>)> {
    let mut out = Vec::new();
    for t in db.tables().await {
        let create = db.show_create(&t).await;
        let rows = db.rows(&t, "*", "1").await;
        out.push((t, create, rows));
    }
    out
}

async fn run_dry_and_wet(db: &TestDb, table: &str, alter: &str) -> (Run, Run) {
    let dry = godwit(
        &["run", "--url", &db.url, "--table", table, "--alter", alter],
        &[],
    )
    .await;
    let wet = godwit(
        &[
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
        ],
        &[],
    )
    .await;
    (dry, wet)
}

/// Expect `code` from both a dry run and a real run, a message containing each of
/// `needles`, and nothing changed.
async fn expect_refusal(db: &TestDb, table: &str, alter: &str, code: i32, needles: &[&str]) {
    let before = snapshot(db).await;
    let (dry, wet) = run_dry_and_wet(db, table, alter).await;
    for r in [&dry, &wet] {
        assert_eq!(
            r.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
    }
    for n in needles {
        assert!(
            dry.stderr.contains(n),
            "text error lacks '{n}': {}",
            dry.stderr
        );
    }
    assert!(dry.stderr.contains("fix:"), "no fix in: {}", dry.stderr);
    let err = wet
        .event("error")
        .unwrap_or_else(|| panic!("no error event: {}", wet.stdout));
    assert_eq!(err["exit_code"], code);
    assert!(err["hint"].is_string(), "no hint: {err}");
    assert_eq!(snapshot(db).await, before, "the database changed");
}

#[tokio::test]
async fn unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("mysql://root@127.0.0.1:{port}/x");
    let r = godwit(
        &["run", "--url", &url, "--table", "t", "--alter", "ADD x INT"],
        &[],
    )
    .await;
    assert_eq!(r.code, 10, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach the server"), "{}", r.stderr);
}

#[tokio::test]
async fn bad_credentials_and_password_never_shown() {
    let db = TestDb::new("pf_auth").await;
    let secret = "Zq9-very-secret-pw";
    db.exec("CREATE USER IF NOT EXISTS 'gw_auth'@'%' IDENTIFIED BY 'right-one'")
        .await;
    let url = db.url.replacen("root@", "gw_auth@", 1);
    let r = godwit(
        &["run", "--url", &url, "--table", "t", "--alter", "ADD x INT"],
        &[("MYSQL_PWD", secret)],
    )
    .await;
    assert_eq!(r.code, 11, "{}", r.stderr);
    assert!(r.stderr.contains("Access denied"), "{}", r.stderr);
    // The password in the URL is not echoed either.
    let url2 = db.url.replacen("root@", &format!("gw_auth:{secret}@"), 1);
    let r2 = godwit(
        &[
            "run",
            "--url",
            &url2,
            "--table",
            "t",
            "--alter",
            "ADD x INT",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(r2.code, 11);
    for out in [&r.stdout, &r.stderr, &r2.stdout, &r2.stderr] {
        assert!(!out.contains(secret), "password leaked: {out}");
    }
    db.exec("DROP USER 'gw_auth'@'%'").await;
    db.drop_db().await;
}

#[tokio::test]
async fn missing_table() {
    let db = TestDb::new("pf_missing").await;
    expect_refusal(&db, "nope", "ADD x INT", 12, &["does not exist"]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn binlog_settings() {
    // Binary logging off: a server of its own.
    let off = PrivateServer::mariadb(&[("GODWIT_MARIADB_NO_BINLOG", "1")]);
    let base = off.url.rsplit_once('/').unwrap().0.to_string();
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&off.url).unwrap())
        .await
        .unwrap();
    for s in [
        "CREATE DATABASE pf",
        "CREATE TABLE pf.t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO pf.t VALUES (1, 1)",
    ] {
        c.query_drop(s).await.unwrap();
    }
    let r = godwit(
        &[
            "run",
            "--url",
            &format!("{base}/pf"),
            "--table",
            "t",
            "--alter",
            "ADD x INT",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 13, "{}", r.stderr);
    assert!(
        r.stderr.contains("log_bin") && r.stderr.contains("fix:"),
        "{}",
        r.stderr
    );
    let cols: Vec<String> = c.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='pf' ORDER BY ORDINAL_POSITION").await.unwrap();
    assert_eq!(cols, vec!["id", "v"]);
    drop(c);
    drop(off);

    // ROW format and FULL image: another server, where the globals can be changed.
    let srv = PrivateServer::mariadb(&[]);
    let base = srv.url.rsplit_once('/').unwrap().0.to_string();
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&srv.url).unwrap())
        .await
        .unwrap();
    c.query_drop("CREATE DATABASE pf").await.unwrap();
    c.query_drop("CREATE TABLE pf.t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    let url = format!("{base}/pf");
    c.query_drop("SET GLOBAL binlog_format = 'STATEMENT'")
        .await
        .unwrap();
    let r = godwit(
        &[
            "run",
            "--url",
            &url,
            "--table",
            "t",
            "--alter",
            "ADD x INT",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 13, "{}", r.stderr);
    assert!(
        r.stderr.contains("binlog_format is STATEMENT")
            && r.stderr.contains("SET GLOBAL binlog_format = 'ROW'"),
        "{}",
        r.stderr
    );
    c.query_drop("SET GLOBAL binlog_format = 'ROW'")
        .await
        .unwrap();
    c.query_drop("SET GLOBAL binlog_row_image = 'MINIMAL'")
        .await
        .unwrap();
    let r = godwit(
        &[
            "run",
            "--url",
            &url,
            "--table",
            "t",
            "--alter",
            "ADD x INT",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 13, "{}", r.stderr);
    assert!(
        r.stderr.contains("binlog_row_image is MINIMAL")
            && r.stderr.contains("binlog_row_image = 'FULL'"),
        "{}",
        r.stderr
    );
    let tables: Vec<String> = c
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='pf'")
        .await
        .unwrap();
    assert_eq!(tables, vec!["t"]);
}

#[tokio::test]
async fn missing_privileges() {
    let db = TestDb::new("pf_priv").await;
    create_orders(&db, "orders", 10).await;
    db.exec("CREATE USER IF NOT EXISTS 'gw_ro'@'%' IDENTIFIED BY 'pw-ro'")
        .await;
    db.exec(&format!("GRANT SELECT ON `{}`.* TO 'gw_ro'@'%'", db.name))
        .await;
    let url = db.url.replacen("root@", "gw_ro@", 1);
    let before = snapshot(&db).await;
    let r = godwit(
        &[
            "run",
            "--url",
            &url,
            "--table",
            "orders",
            "--alter",
            "ADD x INT",
            "--execute",
        ],
        &[("MYSQL_PWD", "pw-ro")],
    )
    .await;
    assert_eq!(r.code, 14, "{}", r.stderr);
    assert!(
        r.stderr.contains("REPLICATION SLAVE") && r.stderr.contains("GRANT"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&db).await, before);
    db.exec("DROP USER 'gw_ro'@'%'").await;
    db.drop_db().await;
}

#[tokio::test]
async fn no_usable_key() {
    let db = TestDb::new("pf_nokey").await;
    db.exec(
        "CREATE TABLE t (a INT, b INT, UNIQUE KEY (a)); INSERT INTO t VALUES (1, 1), (NULL, 2)",
    )
    .await;
    expect_refusal(&db, "t", "ADD x INT", 15, &["no primary key"]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn no_shared_key_after_alter() {
    let db = TestDb::new("pf_noshared").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, code INT NOT NULL); INSERT INTO t VALUES (1, 1), (2, 1)").await;
    expect_refusal(
        &db,
        "t",
        // A new key that contains the old one is shared (tests/fidelity.rs); one that
        // does not is refused.
        "DROP PRIMARY KEY, ADD PRIMARY KEY (code)",
        16,
        &["no unique key"],
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn foreign_keys_on_and_to_the_table() {
    let db = TestDb::new("pf_fk").await;
    db.exec("CREATE TABLE parent (id INT PRIMARY KEY); CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES parent (id)); INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1)").await;
    expect_refusal(&db, "parent", "ADD x INT", 17, &["foreign key"]).await;
    expect_refusal(&db, "child", "ADD x INT", 17, &["foreign key"]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn triggers_on_the_table() {
    let db = TestDb::new("pf_trig").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE log (n INT); CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id)").await;
    expect_refusal(&db, "t", "ADD x INT", 18, &["t_ai"]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn invalid_alter_reports_the_server_message() {
    let db = TestDb::new("pf_invalid").await;
    create_orders(&db, "orders", 20).await;
    expect_refusal(
        &db,
        "orders",
        "ADD COLUMN x NOTATYPE",
        19,
        &["server rejected the ALTER", "NOTATYPE"],
    )
    .await;
    expect_refusal(
        &db,
        "orders",
        "DROP COLUMN does_not_exist",
        19,
        &["does_not_exist"],
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn leftovers_are_named_and_cleanup_removes_only_them() {
    let db = TestDb::new("pf_left").await;
    create_orders(&db, "orders", 20).await;
    db.exec("CREATE TABLE orders_godwit_new (id INT PRIMARY KEY)")
        .await;
    db.exec("CREATE TABLE _godwit_old_orders_1700000000 (id INT PRIMARY KEY)")
        .await;
    db.exec("CREATE TABLE other_godwit_new (id INT PRIMARY KEY)")
        .await;
    // While another run holds the table's runner lock, its objects are not touched.
    let lock = godwit::engine::mysql::runner_lock_name(&db.name, "orders");
    let mut holder = db.conn().await;
    let got: Option<i64> = holder
        .exec_first("SELECT GET_LOCK(?, 0)", (&lock,))
        .await
        .unwrap();
    assert_eq!(got, Some(1));
    expect_refusal(&db, "orders", "ADD x INT", 20, &["another godwit run"]).await;
    holder
        .exec_drop("DO RELEASE_LOCK(?)", (&lock,))
        .await
        .unwrap();
    drop(holder);
    // Listing changes nothing.
    let list = godwit(&["cleanup", "--url", &db.url, "--table", "orders"], &[]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("orders_godwit_new") && list.stdout.contains("--execute"),
        "{}",
        list.stdout
    );
    assert!(db.tables().await.contains(&"orders_godwit_new".to_string()));
    // Removing takes the shadow of this table only: not another table's, not kept old tables.
    let rm = godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(
        db.tables().await,
        vec![
            "_godwit_old_orders_1700000000",
            "orders",
            "other_godwit_new"
        ]
    );
    // Listing with --include-old-tables names the kept old table and drops nothing.
    let list = godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--include-old-tables",
        ],
        &[],
    )
    .await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("_godwit_old_orders_1700000000"),
        "{}",
        list.stdout
    );
    assert_eq!(
        db.tables().await,
        vec![
            "_godwit_old_orders_1700000000",
            "orders",
            "other_godwit_new"
        ]
    );
    let rm = godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--execute",
            "--include-old-tables",
        ],
        &[],
    )
    .await;
    assert_eq!(rm.code, 0);
    assert_eq!(db.tables().await, vec!["orders", "other_godwit_new"]);
    // A shadow of a run that is gone (no runner lock held): the next run removes it,
    // says so, and migrates. Another table's shadow stays.
    db.exec("CREATE TABLE orders_godwit_new (id INT PRIMARY KEY)")
        .await;
    let (run, old) = migrate(&db, "orders", "ADD x INT", &[]).await;
    let ev = run
        .event("stale_leftovers_removed")
        .unwrap_or_else(|| panic!("no stale_leftovers_removed event: {}", run.stdout));
    assert_eq!(ev["objects"], serde_json::json!(["orders_godwit_new"]));
    assert!(db.tables().await.contains(&"other_godwit_new".to_string()));
    db.exec("DROP TABLE other_godwit_new").await;
    assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id").await;
    db.drop_db().await;
}

#[tokio::test]
async fn bad_flags_are_bad_input() {
    let r = godwit(
        &[
            "run",
            "--url",
            "oracle://x@y/z",
            "--table",
            "t",
            "--alter",
            "ADD x INT",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unsupported URL scheme"));
    let r = godwit(
        &[
            "run",
            "--url",
            "mysql://x@127.0.0.1/z",
            "--table",
            "t",
            "--alter",
            "ADD x INT",
            "--max-load",
            "Threads_running",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = godwit(
        &[
            "run",
            "--url",
            "mysql://x@127.0.0.1/z",
            "--table",
            "t",
            "--alter",
            "ALTER TABLE other ADD x INT",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--table"), "{}", r.stderr);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let db = TestDb::new("pf_dry").await;
    create_orders(&db, "orders", 500).await;
    let before = snapshot(&db).await;
    let r = godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--alter",
            "CHANGE note remark TEXT, ADD z INT",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = r.event("plan").expect("plan event");
    let cols = plan["mapping"]["columns"].as_array().unwrap();
    assert!(
        cols.iter()
            .any(|c| c["source"] == "note" && c["target"] == "remark"),
        "{plan}"
    );
    assert_eq!(plan["mapping"]["added"], serde_json::json!(["z"]));
    let text = godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "orders",
            "--alter",
            "ADD z INT",
        ],
        &[],
    )
    .await;
    assert!(
        text.stdout.contains("nothing was changed") && text.stdout.contains("--execute"),
        "{}",
        text.stdout
    );
    assert_eq!(snapshot(&db).await, before);
    db.drop_db().await;
}

#[tokio::test]
async fn table_name_too_long_for_the_sentry_cut_over() {
    let db = TestDb::new("pf_long").await;
    let name = "t".repeat(60);
    db.exec(&format!("CREATE TABLE `{name}` (id INT PRIMARY KEY)"))
        .await;
    expect_refusal(&db, &name, "ADD x INT", 21, &["at most 52"]).await;
    db.drop_db().await;
}
