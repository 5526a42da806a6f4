//! `godwit plan` on PostgreSQL: a corpus of ALTERs with the expected classification, each
//! checked against the real server, plus the risk rules and the JSON shape.
//!
//! For every entry the statement runs in a transaction that is rolled back: a second
//! session reads the strongest lock the first holds on the table (`pg_locks`), the first
//! compares `pg_relation_filenode` before and after (rewrite) and its own
//! `pg_stat_xact_user_tables.seq_scan` (scan).

mod support;
use godwit::plan::PgLock;
use support::postgres::*;

fn table_sql(t: &str) -> String {
    format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, a int, b varchar(50), c text, d timestamp, e numeric(10,2), \
         f int NOT NULL DEFAULT 0, g varchar(20), n int, m int, \
         CONSTRAINT {t}_chk_n CHECK (n IS NOT NULL));
         CREATE INDEX {t}_idx_g ON {t} (g);
         INSERT INTO {t} SELECT i, i, 'b'||i, 'c'||i, now(), i, i, 'g'||i, i, i FROM generate_series(1,10) i;
         -- NOT VALID only means something after CREATE TABLE (a new table's constraints are valid).
         ALTER TABLE {t} ADD CONSTRAINT {t}_chk_nv CHECK (m > 0) NOT VALID;"
    )
}

use PgLock::{
    AccessExclusive as AE, Share as SH, ShareRowExclusive as SRE, ShareUpdateExclusive as SUE,
};

/// (statement — `{t}` is the scratch table —, lock, rewrite, scan) on PostgreSQL 15.
const CORPUS: &[(&str, PgLock, bool, bool)] = &[
    ("ADD COLUMN x int", AE, false, false),
    ("ADD COLUMN x int DEFAULT 5", AE, false, false),
    ("ADD COLUMN x int NOT NULL DEFAULT 5", AE, false, false),
    ("ADD COLUMN x timestamptz DEFAULT now()", AE, false, false),
    ("ADD COLUMN x float8 DEFAULT random()", AE, true, true),
    (
        "ADD COLUMN x uuid DEFAULT gen_random_uuid()",
        AE,
        true,
        true,
    ),
    ("ADD COLUMN x serial", AE, true, true),
    (
        "ADD COLUMN x int GENERATED ALWAYS AS IDENTITY",
        AE,
        true,
        true,
    ),
    (
        "ADD COLUMN x int GENERATED ALWAYS AS (a + 1) STORED",
        AE,
        true,
        true,
    ),
    ("ADD COLUMN x text DEFAULT 'x' || 'y'", AE, false, false),
    ("ADD COLUMN x int REFERENCES parent(id)", AE, false, false),
    ("ADD COLUMN x int CHECK (x > 0)", AE, false, true),
    ("ADD COLUMN x int UNIQUE", AE, false, true),
    ("DROP COLUMN c", AE, false, false),
    ("DROP COLUMN g", AE, false, false),
    ("ALTER COLUMN a SET DEFAULT 1", AE, false, false),
    ("ALTER COLUMN a DROP DEFAULT", AE, false, false),
    ("ALTER COLUMN f DROP NOT NULL", AE, false, false),
    ("ALTER COLUMN a SET NOT NULL", AE, false, true),
    ("ALTER COLUMN n SET NOT NULL", AE, false, false),
    ("ALTER COLUMN b TYPE varchar(100)", AE, false, false),
    ("ALTER COLUMN b TYPE text", AE, false, false),
    ("ALTER COLUMN b TYPE varchar(20)", AE, true, true),
    ("ALTER COLUMN b TYPE varchar", AE, false, false),
    ("ALTER COLUMN a TYPE bigint", AE, true, true),
    ("ALTER COLUMN a TYPE bigint USING a::bigint", AE, true, true),
    ("ALTER COLUMN id TYPE bigint", AE, true, true),
    ("ALTER COLUMN c TYPE varchar(500)", AE, true, true),
    ("ALTER COLUMN c TYPE varchar", AE, false, false),
    ("ALTER COLUMN e TYPE numeric(12,2)", AE, false, false),
    ("ALTER COLUMN e TYPE numeric(10,3)", AE, true, true),
    ("ALTER COLUMN e TYPE numeric", AE, false, false),
    ("ALTER COLUMN g TYPE varchar(40)", AE, false, false),
    ("ALTER COLUMN a TYPE int", AE, false, false),
    ("ALTER COLUMN a TYPE smallint", AE, true, true),
    ("ALTER COLUMN c TYPE char(20)", AE, true, true),
    ("ALTER COLUMN f SET DATA TYPE bigint", AE, true, true),
    (
        "ADD CONSTRAINT {t}_fk FOREIGN KEY (a) REFERENCES parent(id)",
        SRE,
        false,
        true,
    ),
    (
        "ADD CONSTRAINT {t}_fk FOREIGN KEY (a) REFERENCES parent(id) NOT VALID",
        SRE,
        false,
        false,
    ),
    ("VALIDATE CONSTRAINT {t}_chk_nv", SUE, false, true),
    ("ADD CONSTRAINT {t}_chk CHECK (f >= 0)", AE, false, true),
    (
        "ADD CONSTRAINT {t}_chk CHECK (f >= 0) NOT VALID",
        AE,
        false,
        false,
    ),
    ("ADD CONSTRAINT {t}_uq UNIQUE (f)", AE, false, true),
    ("ADD UNIQUE (a, f)", AE, false, true),
    (
        "DROP CONSTRAINT {t}_pkey, ADD PRIMARY KEY (id, f)",
        AE,
        false,
        true,
    ),
    ("DROP CONSTRAINT {t}_chk_n", AE, false, false),
    ("RENAME COLUMN c TO c2", AE, false, false),
    ("RENAME TO {t}_renamed", AE, false, false),
    (
        "RENAME CONSTRAINT {t}_chk_n TO {t}_chk_n2",
        AE,
        false,
        false,
    ),
    ("SET (fillfactor = 70)", SUE, false, false),
    ("SET UNLOGGED", AE, true, true),
    ("REPLICA IDENTITY FULL", AE, false, false),
    (
        "ADD COLUMN x int, ADD COLUMN y int DEFAULT 1",
        AE,
        false,
        false,
    ),
    (
        "ADD COLUMN x int, ALTER COLUMN a TYPE bigint",
        AE,
        true,
        true,
    ),
    (
        "ALTER COLUMN a SET NOT NULL, ALTER COLUMN b TYPE text",
        AE,
        false,
        true,
    ),
    ("DISABLE TRIGGER ALL", SRE, false, false),
    ("OWNER TO CURRENT_USER", AE, false, false),
    // timestamp ↔ timestamptz: no rewrite when the session's TimeZone is UTC (12+), as in
    // godwit's sessions (the statement runs under TimeZone=UTC here too).
    ("ALTER COLUMN d TYPE timestamptz", AE, false, false),
    (
        "ALTER COLUMN d TYPE timestamp with time zone",
        AE,
        false,
        false,
    ),
    ("ALTER COLUMN d TYPE timestamptz(6)", AE, false, false),
    ("ALTER COLUMN d TYPE timestamptz(3)", AE, true, true),
    (
        "ALTER COLUMN d TYPE timestamptz USING d::timestamptz",
        AE,
        false,
        false,
    ),
    (
        "ALTER COLUMN d TYPE timestamptz USING d AT TIME ZONE 'UTC'",
        AE,
        true,
        true,
    ),
    ("ALTER COLUMN d TYPE timestamp(3)", AE, true, true),
    ("ALTER COLUMN b TYPE text USING b::text", AE, false, false),
    ("ALTER COLUMN b TYPE text USING b || 'x'", AE, true, true),
    ("CREATE INDEX {t}_idx_c ON {t} (c)", SH, false, true),
    ("CREATE UNIQUE INDEX {t}_uq_f ON {t} (f)", SH, false, true),
];

struct Observed {
    lock: Option<PgLock>,
    rewrite: bool,
    scan: bool,
}

/// Heap blocks read so far (flushed statistics): some scans (VALIDATE) do not count as a
/// sequential scan, but every scan reads the table's blocks.
async fn heap_blocks(b: &tokio_postgres::Client, t: &str) -> Result<i64, String> {
    let r = b
        .query_one(
            &format!("SELECT (COALESCE(heap_blks_read, 0) + COALESCE(heap_blks_hit, 0))::int8 FROM pg_statio_user_tables WHERE relid = '{t}'::regclass"),
            &[],
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(r.get(0))
}

/// Run `stmt` in a transaction rolled back, under the session TimeZone `tz`, and see what
/// it did.
async fn observe(db: &TestDb, t: &str, stmt: &str, tz: &str) -> Result<Observed, String> {
    let a = db.conn().await;
    let b = db.conn().await;
    let err = |e: tokio_postgres::Error| format!("{e:?}");
    db.client
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    a.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    let blocks = heap_blocks(&b, t).await?;
    a.batch_execute("BEGIN").await.map_err(err)?;
    let r = a
        .query_one(
            &format!(
                "SELECT '{t}'::regclass::oid, pg_relation_filenode('{t}')::int8, \
                 COALESCE((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = '{t}'::regclass), 0)::int8, pg_backend_pid()"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    let (oid, fnode, scans, pid): (u32, i64, i64, i32) = (r.get(0), r.get(1), r.get(2), r.get(3));
    a.batch_execute(&format!("SET LOCAL TimeZone = '{tz}'"))
        .await
        .map_err(err)?;
    a.batch_execute(stmt).await.map_err(err)?;
    let modes = b
        .query(
            "SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2 AND granted",
            &[&pid, &oid],
        )
        .await
        .map_err(err)?;
    let lock = modes
        .iter()
        .filter_map(|r| PgLock::from_pg_locks(r.get(0)))
        .max();
    let r = a
        .query_one(
            "SELECT pg_relation_filenode($1::oid)::int8, COALESCE((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = $1::oid), 0)::int8",
            &[&oid],
        )
        .await
        .map_err(err)?;
    let (fnode2, scans2): (i64, i64) = (r.get(0), r.get(1));
    a.batch_execute("ROLLBACK").await.map_err(err)?;
    a.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .map_err(err)?;
    a.batch_execute("SELECT 1").await.map_err(err)?;
    let blocks2 = heap_blocks(&b, t).await?;
    Ok(Observed {
        lock,
        rewrite: fnode2 != fnode,
        scan: scans2 > scans || blocks2 > blocks,
    })
}

#[tokio::test]
async fn corpus_matches_the_server() {
    assert!(CORPUS.len() >= 40);
    let db = TestDb::new("plan_pg").await;
    db.exec("CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 10)").await;
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions::default();
    let mut failures = Vec::new();
    for (i, (clause, lock, rewrite, scan)) in CORPUS.iter().enumerate() {
        let t = format!("t{i}");
        let clause = clause.replace("{t}", &t);
        db.exec(&table_sql(&t)).await;
        let stmt = if clause.starts_with("CREATE") {
            clause.clone()
        } else {
            format!("ALTER TABLE {t} {clause}")
        };
        // Observe first: the planner's own reads must not count as the statement's scan.
        // Under the TimeZone godwit's own sessions set.
        match observe(&db, &t, &stmt, "UTC").await {
            Ok(seen) => {
                if (seen.lock, seen.rewrite, seen.scan) != (Some(*lock), *rewrite, *scan) {
                    failures.push(format!(
                        "{clause}: the server took {:?}, rewrite {}, scan {}; corpus {:?}",
                        seen.lock,
                        seen.rewrite,
                        seen.scan,
                        (lock, rewrite, scan)
                    ));
                }
            }
            Err(e) => failures.push(format!("{clause}: the server refused it: {e}")),
        }
        let plan = match godwit::plan::plan_alter(
            godwit::dispatch::by_kind(target.kind).planner,
            &target,
            &t,
            &clause,
            &opts,
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{clause}: plan failed: {e}"));
                continue;
            }
        };
        let o = &plan.overall;
        let predicted = (o.pg_lock, o.rewrite, o.scan);
        if predicted != (Some(*lock), *rewrite, *scan) {
            failures.push(format!(
                "{clause}: planner says {predicted:?}, corpus {:?}",
                (lock, rewrite, scan)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} disagree:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
    db.drop_db().await;
}

/// timestamp → timestamptz rewrites the table unless the session's TimeZone is UTC: the
/// plan is made for the session godwit runs the ALTER in (`run --attempt-native`), whose
/// TimeZone is UTC, and says so.
#[tokio::test]
async fn timestamptz_rewrite_follows_the_session_time_zone() {
    let db = TestDb::new("plan_pgz").await;
    db.exec(&table_sql("t")).await;
    let stmt = "ALTER TABLE t ALTER COLUMN d TYPE timestamptz";
    let utc = observe(&db, "t", stmt, "UTC").await.unwrap();
    let paris = observe(&db, "t", stmt, "Europe/Paris").await.unwrap();
    assert!(
        !utc.rewrite && paris.rewrite,
        "the server: UTC {} / Paris {}",
        utc.rewrite,
        paris.rewrite
    );
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions::default();
    let plan = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "t",
        "ALTER COLUMN d TYPE timestamptz",
        &opts,
    )
    .await
    .unwrap();
    assert!(!plan.overall.rewrite, "{:?}", plan.overall);
    assert!(
        plan.overall.reason.contains("TimeZone UTC"),
        "{}",
        plan.overall.reason
    );
    assert!(
        plan.recommendation
            .statements
            .iter()
            .any(|s| s.contains("SET TimeZone = 'UTC'")),
        "{:?}",
        plan.recommendation
    );
    assert_eq!(
        plan.facts
            .settings
            .iter()
            .find(|(k, _)| k == "TimeZone")
            .map(|(_, v)| v.as_str()),
        Some("UTC")
    );
    // The same facts with another session zone: the planner says rewrite.
    let mut facts = plan.facts.clone();
    facts.pg.time_zone = Some("Europe/Paris".into());
    facts.pg.time_zone_is_utc = false;
    let parsed =
        godwit::engine::postgres::classify::parse("t", "ALTER COLUMN d TYPE timestamptz").unwrap();
    let changes = godwit::engine::postgres::classify::classify_all(&parsed, &facts, &[]).unwrap();
    assert!(changes[0].rewrite, "{:?}", changes[0]);
    assert!(
        changes[0].reason.contains("Europe/Paris"),
        "{}",
        changes[0].reason
    );
    // An index over the column changes operator class: rebuilt (a scan), no rewrite.
    db.exec(&table_sql("ti")).await;
    db.exec("CREATE INDEX ti_d ON ti (d)").await;
    let seen = observe(
        &db,
        "ti",
        "ALTER TABLE ti ALTER COLUMN d TYPE timestamptz",
        "UTC",
    )
    .await
    .unwrap();
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "ti",
        "ALTER COLUMN d TYPE timestamptz",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(
        (p.overall.rewrite, p.overall.scan),
        (seen.rewrite, seen.scan),
        "{}",
        p.overall.reason
    );
    assert!(!seen.rewrite && seen.scan);
    // `run --attempt-native` runs it natively, in a UTC session: the table keeps its file.
    let before = db
        .client
        .query_one("SELECT pg_relation_filenode('t')::int8", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    let r = support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN d TYPE timestamptz",
            "--attempt-native",
            "--execute",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    r.expect_ok();
    assert_eq!(r.event("native").expect("native event")["executed"], true);
    let after = db
        .client
        .query_one("SELECT pg_relation_filenode('t')::int8", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(before, after, "the native ALTER rewrote the table");
    db.drop_db().await;
}

/// A table never analyzed has `reltuples = -1` (0 before 14): the dry run of `godwit run`
/// and `godwit plan` estimate its rows from its size, as PostgreSQL's planner does, and
/// an analyzed table that grew since is scaled to its current size.
#[tokio::test]
async fn row_estimate_of_a_table_never_analyzed() {
    let db = TestDb::new("plan_pge").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a text, b int) WITH (autovacuum_enabled = false);
         INSERT INTO t SELECT i, 'value ' || i, i FROM generate_series(1, 20000) i;
         CREATE TABLE g (id int PRIMARY KEY, a varchar(40)) WITH (autovacuum_enabled = false);
         INSERT INTO g SELECT i, repeat('x', 30) FROM generate_series(1, 1000) i;
         ANALYZE g;
         INSERT INTO g SELECT i, repeat('x', 30) FROM generate_series(1001, 9000) i;",
    )
    .await;
    let reltuples: f32 = db
        .client
        .query_one("SELECT reltuples FROM pg_class WHERE relname = 't'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(reltuples <= 0.0, "the table was analyzed: {reltuples}");
    let near = |what: &str, got: u64, real: u64| {
        assert!(
            got >= real / 2 && got <= real * 2,
            "{what}: estimate {got} for {real} rows"
        );
    };
    for (table, real) in [("t", 20000), ("g", 9000)] {
        // `godwit run` dry run, text and JSON.
        let r = support::godwit(
            &[
                "run",
                "--url",
                &db.url,
                "--table",
                table,
                "--alter",
                "ADD COLUMN z int",
            ],
            &[],
        )
        .await;
        r.expect_ok();
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("rows (estimate):"))
            .unwrap_or_else(|| panic!("{}", r.stdout));
        let n: u64 = line
            .split("rows (estimate):")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        near(&format!("{table}: dry run text"), n, real);
        let r = support::godwit(
            &[
                "run",
                "--url",
                &db.url,
                "--table",
                table,
                "--alter",
                "ADD COLUMN z int",
                "--format",
                "json",
            ],
            &[],
        )
        .await;
        r.expect_ok();
        let n = r.event("plan").expect("plan event")["row_estimate"]
            .as_u64()
            .unwrap();
        near(&format!("{table}: dry run JSON"), n, real);
        // `godwit plan`.
        let target = godwit::target::Target::parse(&db.url, None).unwrap();
        let p = godwit::plan::plan_alter(
            godwit::dispatch::by_kind(target.kind).planner,
            &target,
            table,
            "ADD COLUMN z int",
            &Default::default(),
        )
        .await
        .unwrap();
        near(&format!("{table}: plan"), p.facts.row_estimate, real);
        assert!(p.facts.avg_row_bytes > 0, "{:?}", p.facts);
    }
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}

#[tokio::test]
async fn rules_fire_on_bad_cases_and_stay_silent_on_safe_twins() {
    let db = TestDb::new("plan_pgr").await;
    db.exec(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE bad (id int PRIMARY KEY, a int, b varchar(20));
         INSERT INTO bad VALUES (1, 1, 'short'), (2, 1, 'a much longer value'), (3, NULL, 'x');
         CREATE TABLE good (id int PRIMARY KEY, a int, b varchar(20));
         INSERT INTO good VALUES (1, 1, 'short'), (2, 2, 'tiny'), (3, 3, 'x');
         CREATE TABLE nopk (a int);",
    )
    .await;
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions::default();
    let rules = |p: &godwit::plan::Plan| p.findings.iter().map(|f| f.rule).collect::<Vec<_>>();
    for (alter, rule) in [
        ("ALTER COLUMN a SET NOT NULL", "not-null-with-nulls"),
        ("ALTER COLUMN b TYPE varchar(6)", "type-truncation"),
        ("ALTER COLUMN a TYPE smallint", ""),
        ("ADD CONSTRAINT bad_uq UNIQUE (a)", "unique-duplicates"),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY uq ON bad (a)",
            "unique-duplicates",
        ),
    ] {
        let p = godwit::plan::plan_alter(
            godwit::dispatch::by_kind(target.kind).planner,
            &target,
            "bad",
            alter,
            &opts,
        )
        .await
        .unwrap();
        if !rule.is_empty() {
            assert!(rules(&p).contains(&rule), "{alter}: {:?}", p.findings);
        }
        let twin = alter.replace("ON bad", "ON good");
        let p = godwit::plan::plan_alter(
            godwit::dispatch::by_kind(target.kind).planner,
            &target,
            "good",
            &twin,
            &opts,
        )
        .await
        .unwrap();
        assert!(rules(&p).is_empty(), "{twin}: {:?}", p.findings);
    }
    db.exec("UPDATE bad SET a = 100000 WHERE id = 1").await;
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "bad",
        "ALTER COLUMN a TYPE smallint",
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&p).contains(&"type-truncation"), "{:?}", p.findings);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES parent(id)",
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&p).contains(&"fk-without-not-valid"));
    assert!(
        p.recommendation
            .statements
            .iter()
            .any(|s| s.contains("NOT VALID")),
        "{:?}",
        p.recommendation
    );
    assert!(p
        .recommendation
        .statements
        .iter()
        .any(|s| s.contains("VALIDATE CONSTRAINT")));
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES parent(id) NOT VALID",
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&p).is_empty(), "{:?}", p.findings);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "RENAME COLUMN a TO a2",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(rules(&p), vec!["rename-breaks-code"]);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "RENAME TO good2",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(rules(&p), vec!["rename-breaks-code"]);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "DROP COLUMN b",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(rules(&p), vec!["destructive-drop"]);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "nopk",
        "ADD COLUMN x int",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(rules(&p), vec!["missing-primary-key"]);
    // Large tables, by a lowered threshold.
    let small = godwit::plan::PlanOptions {
        large_table_rows: 2,
        large_table_bytes: 1,
        ..Default::default()
    };
    db.exec("ANALYZE good").await;
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ALTER COLUMN a TYPE bigint",
        &small,
    )
    .await
    .unwrap();
    let r = rules(&p);
    assert!(
        r.contains(&"lock-on-large-table") && r.contains(&"rewrite-large-table"),
        "{r:?}"
    );
    assert_eq!(p.recommendation.strategy, godwit::plan::Strategy::Online);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ALTER COLUMN a SET DEFAULT 3",
        &small,
    )
    .await
    .unwrap();
    assert!(rules(&p).is_empty(), "{:?}", p.findings);
    // SET NOT NULL: the recommendation proves it with a CHECK first.
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ALTER COLUMN a SET NOT NULL",
        &small,
    )
    .await
    .unwrap();
    assert!(
        p.recommendation
            .statements
            .iter()
            .any(|s| s.contains("IS NOT NULL) NOT VALID")),
        "{:?}",
        p.recommendation
    );
    // Nothing changed on the server.
    assert_eq!(db.columns("good").await.len(), 3);
    db.drop_db().await;
}

#[tokio::test]
async fn long_transaction_blocks_and_is_reported() {
    let db = TestDb::new("plan_pgt").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions {
        long_trx_seconds: 1,
        ..Default::default()
    };
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "t",
        "ADD COLUMN x int",
        &opts,
    )
    .await
    .unwrap();
    assert!(
        p.findings.iter().all(|f| f.rule != "long-transactions"),
        "{:?}",
        p.findings
    );
    let holder = db.conn().await;
    holder
        .batch_execute("BEGIN; SELECT * FROM t")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "t",
        "ADD COLUMN x int",
        &opts,
    )
    .await
    .unwrap();
    assert!(
        p.findings.iter().any(|f| f.rule == "long-transactions"),
        "{:?}",
        p.findings
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn cli_json_and_text() {
    let db = TestDb::new("plan_pgc").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, a int); INSERT INTO t VALUES (1, NULL)")
        .await;
    let r = support::godwit(
        &[
            "plan",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN a SET NOT NULL",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    r.expect_ok();
    let p = r.event("plan").expect("plan event");
    assert_eq!(p["overall"]["pg_lock"], "ACCESS_EXCLUSIVE");
    assert_eq!(p["overall"]["scan"], true);
    assert_eq!(p["findings"][0]["rule"], "not-null-with-nulls");
    assert_eq!(p["checks"][0]["check"], "nulls");
    let r = support::godwit(
        &[
            "plan",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN a SET NOT NULL",
            "--fail-on",
            "warning",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 41);
    assert!(r.stdout.contains("ACCESS EXCLUSIVE, scan"), "{}", r.stdout);
    for l in r.stdout.lines() {
        assert!(l.chars().count() <= 80, "line longer than 80: {l}");
    }
    let r = support::godwit(
        &[
            "plan",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN a TYPE",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    db.drop_db().await;
}

#[tokio::test]
async fn run_attempt_native_runs_catalog_changes_natively() {
    let db = TestDb::new("plan_pgn").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, a int); INSERT INTO t VALUES (1, 1)")
        .await;
    let r = support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN z int DEFAULT 7",
            "--attempt-native",
            "--execute",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    r.expect_ok();
    assert_eq!(r.event("native").expect("native event")["executed"], true);
    assert_eq!(db.columns("t").await.len(), 3);
    // A rewrite is not attempted natively.
    let r = support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ALTER COLUMN a TYPE bigint",
            "--attempt-native",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    r.expect_ok();
    assert!(r.event("native").is_none(), "{}", r.stdout);
    // A held lock: the native ALTER gives up after its timeout, table unchanged.
    let holder = db.conn().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let r = support::godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN w int",
            "--attempt-native",
            "--execute",
            "--native-lock-timeout-seconds",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 32, "{}{}", r.stdout, r.stderr);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(db.columns("t").await.len(), 3);
    db.drop_db().await;
}
