//! Migrations of an idle table: every result must equal the same ALTER applied natively.
mod support;

use support::postgres::TestDb;

const SETUP: &str = "CREATE TABLE t (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, a int NOT NULL DEFAULT 0, b text, n numeric(12,2)); \
    CREATE INDEX t_a_idx ON t (a); \
    INSERT INTO t (code, a, b, n) SELECT 'c' || i, i % 97, CASE WHEN i % 5 = 0 THEN NULL ELSE repeat('x', i % 50) END, i * 1.25 FROM generate_series(1, 5000) i;";

async fn case(prefix: &str, alter: &str) -> TestDb {
    case2(prefix, alter, alter).await
}

/// `native` is the same ALTER for the twin table (whose generated names differ).
async fn case2(prefix: &str, alter: &str, native: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    db.exec(SETUP).await;
    db.native_twin("t", "expected", native).await;
    let run = db.migrate("t", alter, &["--chunk-size", "700"]).await;
    run.expect_ok();
    assert!(
        run.states().contains(&"cut_over".to_string()),
        "{:?}",
        run.states()
    );
    db.assert_same("t", "expected", "id").await;
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn add_column_without_default() {
    case("pg_add_col", "ADD COLUMN note text")
        .await
        .drop_db()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn add_column_with_default() {
    case(
        "pg_add_def",
        "ADD COLUMN flag boolean NOT NULL DEFAULT true, ADD COLUMN k int DEFAULT 42",
    )
    .await
    .drop_db()
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_column() {
    case("pg_drop_col", "DROP COLUMN b").await.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_type_with_using() {
    let db = case(
        "pg_type_using",
        "ALTER COLUMN a TYPE text USING (a * 2)::text, ALTER COLUMN n TYPE bigint USING round(n * 100)::bigint",
    )
    .await;
    // The USING expression was computed, not a plain cast.
    assert_eq!(
        db.strings("SELECT a FROM t WHERE id = 10").await,
        vec!["20"]
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_type_without_using() {
    case("pg_type", "ALTER COLUMN a TYPE bigint")
        .await
        .drop_db()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn add_index() {
    let db = case("pg_add_idx", "ADD UNIQUE (code, b)").await;
    let idx = db
        .strings("SELECT indexname::text FROM pg_indexes WHERE tablename = 't' ORDER BY 1")
        .await;
    assert_eq!(idx, vec!["t_a_idx", "t_code_b_key", "t_code_key", "t_pkey"]);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_column() {
    let db = TestDb::new("pg_rename").await;
    db.exec(SETUP).await;
    let before = db.rows("t", "id, code, a, b, n", "id").await;
    let run = db.migrate("t", "RENAME COLUMN b TO body", &[]).await;
    run.expect_ok();
    assert_eq!(db.rows("t", "id, code, a, body, n", "id").await, before);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn add_check_constraint() {
    let db = case("pg_check", "ADD CONSTRAINT a_small CHECK (a < 1000)").await;
    let e = db
        .client
        .batch_execute("INSERT INTO t (code, a) VALUES ('zz', 5000)")
        .await;
    assert!(
        e.is_err(),
        "the CHECK constraint must hold on the new table"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_the_primary_key() {
    let db = case2(
        "pg_pk",
        "DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (code), ADD UNIQUE (id)",
        "DROP CONSTRAINT expected_pkey, ADD PRIMARY KEY (code), ADD UNIQUE (id)",
    )
    .await;
    let pk = db
        .strings("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'p'")
        .await;
    assert_eq!(pk, vec!["PRIMARY KEY (code)"]);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let db = TestDb::new("pg_dry").await;
    db.exec(SETUP).await;
    let before = db.columns("t").await;
    let run = support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN z int",
        ],
        &[],
    )
    .await;
    run.expect_ok();
    assert_eq!(db.columns("t").await, before);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}
