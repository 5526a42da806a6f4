//! What depends on the table survives the swap: views, foreign keys, sequences, grants,
//! triggers, comments; and toasted values survive updates of other columns.
mod support;

use support::postgres::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn dependent_objects_survive() {
    let db = TestDb::new("pg_deps").await;
    let role = format!("r_{}", db.name);
    db.exec(&format!(
        "CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p SELECT generate_series(1, 10); \
         CREATE TABLE t (id serial PRIMARY KEY, pid int REFERENCES p(id), v text NOT NULL DEFAULT 'v'); \
         INSERT INTO t (pid) SELECT 1 + i % 10 FROM generate_series(1, 2000) i; \
         DELETE FROM t WHERE id > 1990; \
         CREATE TABLE c (id int PRIMARY KEY, tid int REFERENCES t(id)); INSERT INTO c SELECT i, i FROM generate_series(1, 100) i; \
         CREATE VIEW tv AS SELECT id, v FROM t WHERE id % 2 = 0; \
         CREATE TABLE audit (n int); INSERT INTO audit VALUES (0); \
         CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN UPDATE audit SET n = n + 1; RETURN NEW; END$$; \
         CREATE TRIGGER t_bump AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION bump(); \
         DROP ROLE IF EXISTS \"{role}\"; CREATE ROLE \"{role}\"; GRANT SELECT, UPDATE ON t TO \"{role}\"; \
         COMMENT ON TABLE t IS 'the table'; COMMENT ON COLUMN t.v IS 'a value'; \
         ALTER TABLE t REPLICA IDENTITY FULL; \
         ALTER TABLE t ADD CONSTRAINT t_id_v UNIQUE (id, v) WITH (fillfactor = 80); \
         COMMENT ON CONSTRAINT t_pkey ON t IS 'the key'; \
         CREATE INDEX t_v_idx ON t (v) WHERE v <> ''; COMMENT ON INDEX t_v_idx IS 'partial';"
    ))
    .await;
    // Indexes and key constraints are dropped for the copy and built again after it.
    let indexes = "SELECT indexname || ': ' || indexdef || ' ' || coalesce(obj_description(indexname::regclass, 'pg_class'), '-') FROM pg_indexes WHERE tablename = 't' ORDER BY 1";
    let constraints = "SELECT conname || ' ' || contype::text || ' ' || coalesce(obj_description(oid, 'pg_constraint'), '-') FROM pg_constraint WHERE conrelid = 't'::regclass ORDER BY 1";
    let (indexes_before, constraints_before) =
        (db.strings(indexes).await, db.strings(constraints).await);
    let view_oid = db.one_i64("SELECT 'tv'::regclass::oid::int8").await;
    let run = db.migrate("t", "ADD COLUMN extra int", &[]).await;
    run.expect_ok();
    assert_eq!(db.strings(indexes).await, indexes_before);
    assert_eq!(db.strings(constraints).await, constraints_before);
    assert!(
        indexes_before.iter().any(|i| i.contains("fillfactor='80'")),
        "{indexes_before:?}"
    );
    assert!(
        constraints_before.iter().any(|c| c == "t_pkey p the key"),
        "{constraints_before:?}"
    );
    // View: same object, now reading the new table.
    assert_eq!(
        db.one_i64("SELECT 'tv'::regclass::oid::int8").await,
        view_oid
    );
    assert_eq!(db.one_i64("SELECT count(*) FROM tv").await, 995);
    assert_eq!(
        db.strings("SELECT DISTINCT d.refobjid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'tv'::regclass AND d.refobjid <> 'tv'::regclass").await,
        vec!["t"]
    );
    // Foreign keys: the child points at the new table, validated; the own FK is kept.
    assert_eq!(
        db.strings("SELECT confrelid::regclass::text || ' ' || convalidated FROM pg_constraint WHERE conrelid = 'c'::regclass AND contype = 'f'").await,
        vec!["t true"]
    );
    assert!(db
        .client
        .batch_execute("INSERT INTO c VALUES (1000, 5000)")
        .await
        .is_err());
    assert_eq!(
        db.strings("SELECT confrelid::regclass::text || ' ' || convalidated FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'f'").await,
        vec!["p true"]
    );
    // Sequence: owned by the new table, continues without reuse.
    let id = db
        .one_i64("INSERT INTO t (pid) VALUES (1) RETURNING id::int8")
        .await;
    assert!(id > 2000, "id {id} reuses an old value");
    assert_eq!(
        db.strings("SELECT d.refobjid::regclass::text FROM pg_depend d WHERE d.objid = 't_id_seq'::regclass AND d.deptype = 'a'").await,
        vec!["t"]
    );
    // Trigger fired for that insert; grants; comments; replica identity.
    assert_eq!(db.one_i64("SELECT n::int8 FROM audit").await, 1);
    assert_eq!(
        db.strings(&format!("SELECT has_table_privilege('{role}', 't', 'SELECT')::text || has_table_privilege('{role}', 't', 'UPDATE')::text || has_table_privilege('{role}', 't', 'DELETE')::text")).await,
        vec!["truetruefalse"]
    );
    assert_eq!(
        db.strings("SELECT obj_description('t'::regclass, 'pg_class')")
            .await,
        vec!["the table"]
    );
    assert_eq!(
        db.strings("SELECT col_description('t'::regclass, 3)").await,
        vec!["a value"]
    );
    assert_eq!(
        db.strings("SELECT relreplident::text FROM pg_class WHERE oid = 't'::regclass")
            .await,
        vec!["f"]
    );
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.exec(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn toasted_values_survive_updates_of_other_columns_during_copy() {
    let db = TestDb::new("pg_toast").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int, big text); \
         INSERT INTO t SELECT i, 0, CASE WHEN i % 10 = 0 THEN (SELECT string_agg(md5((i * 10000 + g)::text), '') FROM generate_series(1, 300) g) END FROM generate_series(1, 6000) i;",
    )
    .await;
    let before = db.strings("SELECT md5(big) FROM t ORDER BY id").await;
    let child = support::spawn_godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--execute",
            "--ok-to-drop-table",
            "--chunk-size",
            "200",
            "--max-rows-per-second",
            "4000",
        ],
        &[],
    );
    // Updates that leave the toasted value unchanged: the stream sends it as 'u'.
    let mut updates = 0;
    for round in 1..=40 {
        db.exec(&format!(
            "UPDATE t SET v = {round} WHERE id % 10 = 0 AND id % 40 = {}",
            round % 4 * 10
        ))
        .await;
        updates += 1;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let run = support::finish(child).await;
    run.expect_ok();
    assert_eq!(updates, 40);
    assert_eq!(
        db.strings("SELECT md5(big) FROM t ORDER BY id").await,
        before
    );
    assert!(db.one_i64("SELECT count(*) FROM t WHERE v > 0").await > 0);
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}
