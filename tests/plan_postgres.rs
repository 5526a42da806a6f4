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
    ("CREATE INDEX {t}_idx_c ON {t} (c)", SH, false, true),
    ("CREATE UNIQUE INDEX {t}_uq_f ON {t} (f)", SH, false, true),
];

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
        match observe(&db, &t, &stmt).await {
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
        let plan = match godwit::plan::plan(&target, &t, &clause, &opts).await {
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
        let p = godwit::plan::plan(&target, "bad", alter, &opts)
            .await
            .unwrap();
        if !rule.is_empty() {
            assert!(rules(&p).contains(&rule), "{alter}: {:?}", p.findings);
        }
        let twin = alter.replace("ON bad", "ON good");
        let p = godwit::plan::plan(&target, "good", &twin, &opts)
            .await
            .unwrap();
        assert!(rules(&p).is_empty(), "{twin}: {:?}", p.findings);
    }
    db.exec("UPDATE bad SET a = 100000 WHERE id = 1").await;
    let p = godwit::plan::plan(&target, "bad", "ALTER COLUMN a TYPE smallint", &opts)
        .await
        .unwrap();
    assert!(rules(&p).contains(&"type-truncation"), "{:?}", p.findings);
    let p = godwit::plan::plan(
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
    let p = godwit::plan::plan(
        &target,
        "good",
        "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES parent(id) NOT VALID",
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&p).is_empty(), "{:?}", p.findings);
    let p = godwit::plan::plan(&target, "good", "RENAME COLUMN a TO a2", &opts)
        .await
        .unwrap();
    assert_eq!(rules(&p), vec!["rename-breaks-code"]);
    let p = godwit::plan::plan(&target, "good", "RENAME TO good2", &opts)
        .await
        .unwrap();
    assert_eq!(rules(&p), vec!["rename-breaks-code"]);
    let p = godwit::plan::plan(&target, "good", "DROP COLUMN b", &opts)
        .await
        .unwrap();
    assert_eq!(rules(&p), vec!["destructive-drop"]);
    let p = godwit::plan::plan(&target, "nopk", "ADD COLUMN x int", &opts)
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
    let p = godwit::plan::plan(&target, "good", "ALTER COLUMN a TYPE bigint", &small)
        .await
        .unwrap();
    let r = rules(&p);
    assert!(
        r.contains(&"lock-on-large-table") && r.contains(&"rewrite-large-table"),
        "{r:?}"
    );
    assert_eq!(p.recommendation.strategy, godwit::plan::Strategy::Online);
    let p = godwit::plan::plan(&target, "good", "ALTER COLUMN a SET DEFAULT 3", &small)
        .await
        .unwrap();
    assert!(rules(&p).is_empty(), "{:?}", p.findings);
    // SET NOT NULL: the recommendation proves it with a CHECK first.
    let p = godwit::plan::plan(&target, "good", "ALTER COLUMN a SET NOT NULL", &small)
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
    let p = godwit::plan::plan(&target, "t", "ADD COLUMN x int", &opts)
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
    let p = godwit::plan::plan(&target, "t", "ADD COLUMN x int", &opts)
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
