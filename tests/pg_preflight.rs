//! Every preflight failure: its exit code and message, nothing changed, no slot left.
mod support;

use support::postgres::TestDb;

const TABLE: &str = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' FROM generate_series(1, 100) i;";

async fn refused(db: &TestDb, table: &str, alter: &str, url: &str, code: i32, needle: &str) {
    let before = db.columns(table).await;
    let run = support::godwit(
        &[
            "run",
            "--url",
            url,
            "--table",
            table,
            "--alter",
            alter,
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(needle) || run.stdout.contains(needle),
        "message should mention {needle:?}:\n{}",
        run.stderr
    );
    assert_eq!(db.columns(table).await, before, "the table changed");
    assert_eq!(
        db.strings(
            "SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database()"
        )
        .await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_primary_key() {
    let db = TestDb::new("pg_pf_nokey").await;
    db.exec("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    refused(&db, "t", "ADD COLUMN x int", &db.url, 15, "no primary key").await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_table() {
    let db = TestDb::new("pg_pf_part").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); CREATE TABLE t1 PARTITION OF t FOR VALUES FROM (0) TO (1000);").await;
    refused(&db, "t", "ADD COLUMN x int", &db.url, 21, "partitioned").await;
    refused(&db, "t1", "ADD COLUMN x int", &db.url, 21, "partition").await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unlogged_table() {
    let db = TestDb::new("pg_pf_unlogged").await;
    db.exec("CREATE UNLOGGED TABLE t (id int PRIMARY KEY, v text);")
        .await;
    refused(&db, "t", "ADD COLUMN x int", &db.url, 21, "unlogged").await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn for_all_tables_publication() {
    let db = TestDb::new("pg_pf_puball").await;
    db.exec(TABLE).await;
    db.exec("CREATE PUBLICATION everything FOR ALL TABLES")
        .await;
    refused(&db, "t", "ADD COLUMN x int", &db.url, 21, "FOR ALL TABLES").await;
    db.exec("DROP PUBLICATION everything").await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_alter() {
    let db = TestDb::new("pg_pf_alter").await;
    db.exec(TABLE).await;
    refused(&db, "t", "ADD COLUMN v int", &db.url, 19, "already exists").await;
    refused(&db, "t", "ALTER COLUMN nope TYPE int", &db.url, 19, "nope").await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_privileges() {
    let db = TestDb::new("pg_pf_priv").await;
    db.exec(TABLE).await;
    let role = format!("u_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{role}\" LOGIN; GRANT ALL ON t TO \"{role}\";"
    ))
    .await;
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    refused(&db, "t", "ADD COLUMN x int", &url, 14, "REPLICATION").await;
    db.exec(&format!("ALTER ROLE \"{role}\" REPLICATION")).await;
    refused(&db, "t", "ADD COLUMN x int", &url, 14, "does not own").await;
    db.exec(&format!(
        "REVOKE ALL ON t FROM \"{role}\"; DROP ROLE \"{role}\""
    ))
    .await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leftovers_are_reported_and_cleaned_up() {
    let db = TestDb::new("pg_pf_left").await;
    db.exec(TABLE).await;
    db.exec("CREATE TABLE _godwit_new_t (id int); CREATE TABLE _godwit_old_t_123 (id int); CREATE TABLE _godwit_new_other (id int);").await;
    // A shadow moved to another schema (by an ALTER … SET SCHEMA, refused since) is
    // found; the shadow of another schema's own `t` is not this table's.
    db.exec("CREATE SCHEMA moved; CREATE TABLE moved._godwit_new_t (id int); CREATE SCHEMA s2; CREATE TABLE s2.t (id int PRIMARY KEY); CREATE TABLE s2._godwit_new_t (id int);").await;
    // While another run holds the table's runner lock, its objects are not touched.
    let key = godwit::engine::postgres::runner_lock_key(&db.name, "public", "t");
    let holder = db.conn().await;
    holder
        .execute("SELECT pg_advisory_lock(1735353463, $1)", &[&key])
        .await
        .unwrap();
    refused(
        &db,
        "t",
        "ADD COLUMN x int",
        &db.url,
        20,
        "another godwit run",
    )
    .await;
    drop(holder);
    let run = support::godwit(&["cleanup", "--url", &db.url, "--table", "t"], &[]).await;
    run.expect_ok();
    assert!(run.stdout.contains("_godwit_new_t"), "{}", run.stdout);
    assert!(run.stdout.contains("moved._godwit_new_t"), "{}", run.stdout);
    assert!(!run.stdout.contains("s2._godwit_new_t"), "{}", run.stdout);
    assert_eq!(
        db.one_i64("SELECT count(*) FROM pg_class WHERE relname = '_godwit_new_t'")
            .await,
        3,
        "listing removes nothing"
    );
    let run = support::godwit(
        &[
            "cleanup",
            "--url",
            &db.url,
            "--table",
            "t",
            "--execute",
            "--include-old-tables",
        ],
        &[],
    )
    .await;
    run.expect_ok();
    assert_eq!(
        db.strings("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = '_godwit_new_t' ORDER BY 1").await,
        vec!["s2._godwit_new_t".to_string()]
    );
    db.exec("DROP SCHEMA moved CASCADE; DROP SCHEMA s2 CASCADE")
        .await;
    // Only this table's objects: another table's shadow is not touched.
    assert_eq!(
        db.leftovers().await,
        vec!["table _godwit_new_other".to_string()]
    );
    // A shadow of a run that is gone (no runner lock held): the next run removes it,
    // says so, and migrates.
    db.exec("CREATE TABLE _godwit_new_t (id int)").await;
    let run = db.migrate("t", "ADD COLUMN x int", &[]).await;
    run.expect_ok();
    let ev = run
        .event("stale_leftovers_removed")
        .unwrap_or_else(|| panic!("no stale_leftovers_removed event: {}", run.stdout));
    assert_eq!(
        ev["objects"],
        serde_json::json!(["table public._godwit_new_t"])
    );
    assert_eq!(
        db.leftovers().await,
        vec!["table _godwit_new_other".to_string()]
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_that_is_not_the_replica_identity() {
    let db = TestDb::new("pg_pf_ident").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL UNIQUE); INSERT INTO t SELECT i, 'c' || i FROM generate_series(1, 10) i;").await;
    refused(
        &db,
        "t",
        "DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (code)",
        &db.url,
        16,
        "replica identity",
    )
    .await;
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

/// wal_level below logical and no free replication slot: servers of their own, since
/// both are server-wide settings.
#[tokio::test]
async fn wal_level_and_free_slots() {
    use support::PrivateServer;
    let replica = PrivateServer::postgres(&[("GODWIT_PG_WAL_LEVEL", "replica")]);
    let c = support::postgres::connect(&replica.url).await;
    c.batch_execute(TABLE).await.unwrap();
    let r = support::godwit(
        &[
            "run",
            "--url",
            &replica.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN x int",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 13, "{}", r.stderr);
    assert!(
        r.stderr.contains("wal_level")
            && r.stderr.contains("ALTER SYSTEM SET wal_level = logical")
            && r.stderr.contains("restart"),
        "{}",
        r.stderr
    );
    drop(c);
    drop(replica);

    let one = PrivateServer::postgres(&[("GODWIT_PG_MAX_SLOTS", "1")]);
    let c = support::postgres::connect(&one.url).await;
    c.batch_execute(TABLE).await.unwrap();
    c.batch_execute("SELECT pg_create_logical_replication_slot('someone_elses', 'pgoutput')")
        .await
        .unwrap();
    let r = support::godwit(
        &[
            "run",
            "--url",
            &one.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN x int",
            "--execute",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 22, "{}", r.stderr);
    assert!(r.stderr.contains("slot"), "{}", r.stderr);
    let slots: Vec<String> = c
        .query("SELECT slot_name::text FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slots, vec!["someone_elses".to_string()]);
    let cols: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 2, "the table changed");
}
