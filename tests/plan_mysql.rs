//! `godwit plan` on MariaDB: a corpus of ALTERs with the expected classification, each
//! checked against the real server, plus the data-dependent risk rules and the JSON shape.
//!
//! For every entry: the planner must predict the expected ALGORITHM/LOCK; then, on a
//! scratch copy of the table, the next cheaper algorithm must fail, the next weaker lock
//! must fail, and the predicted `ALGORITHM=…, LOCK=…` must succeed.

mod support;
use support::mysql::*;

fn table_sql(t: &str) -> String {
    format!(
        "CREATE TABLE `{t}` (id INT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(50) NULL, \
         c VARCHAR(200) NOT NULL DEFAULT '', d DATETIME NULL, e ENUM('x','y') NULL, f TEXT, \
         g BIGINT NOT NULL DEFAULT 0, h CHAR(10) NULL, s VARCHAR(20) CHARACTER SET utf8mb3 NULL, p INT NULL, \
         KEY idx_a (a), KEY idx_b (b), CONSTRAINT chk0 CHECK (g > -100), \
         CONSTRAINT `fk_{t}` FOREIGN KEY (p) REFERENCES parent(id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
         INSERT INTO `{t}` VALUES (1,1,'b1','c1','2020-01-01','x','f1',1,'h1','s1',1),
           (2,2,'b2','c2','2020-01-02','y','f2',2,'h2','s2',2),(3,3,'b3','c3',NULL,NULL,NULL,3,NULL,NULL,NULL)"
    )
}

/// (clause — `{t}` is the scratch table's name —, algorithm, lock) on MariaDB 10.11.
const CORPUS: &[(&str, &str, &str)] = &[
    ("ADD COLUMN n1 INT", "INSTANT", "NONE"),
    ("ADD COLUMN n2 INT FIRST", "INSTANT", "NONE"),
    ("ADD COLUMN n3 INT AFTER a", "INSTANT", "NONE"),
    ("ADD COLUMN n4 INT NOT NULL DEFAULT 5", "INSTANT", "NONE"),
    ("ADD COLUMN n5 VARCHAR(10) DEFAULT 'x'", "INSTANT", "NONE"),
    (
        "ADD COLUMN n6 INT AUTO_INCREMENT UNIQUE",
        "INPLACE",
        "SHARED",
    ),
    ("ADD COLUMN v1 INT AS (a + 1) VIRTUAL", "INSTANT", "NONE"),
    ("ADD COLUMN v2 INT AS (a + 1) STORED", "COPY", "SHARED"),
    (
        "ADD COLUMN n7 DATETIME DEFAULT CURRENT_TIMESTAMP",
        "INSTANT",
        "NONE",
    ),
    ("ADD COLUMN n8 INT NOT NULL", "INSTANT", "NONE"),
    ("ADD COLUMN n9 TEXT", "INSTANT", "NONE"),
    ("ADD COLUMN n10 JSON", "INSTANT", "NONE"),
    ("DROP COLUMN h", "INSTANT", "NONE"),
    ("DROP COLUMN a", "NOCOPY", "NONE"),
    ("DROP COLUMN b", "NOCOPY", "NONE"),
    ("MODIFY b VARCHAR(60)", "INSTANT", "NONE"),
    ("MODIFY b VARCHAR(100)", "COPY", "SHARED"),
    ("MODIFY b VARCHAR(40)", "COPY", "SHARED"),
    (
        "MODIFY c VARCHAR(250) NOT NULL DEFAULT ''",
        "INSTANT",
        "NONE",
    ),
    (
        "MODIFY c VARCHAR(100) NOT NULL DEFAULT ''",
        "COPY",
        "SHARED",
    ),
    ("MODIFY a BIGINT", "COPY", "SHARED"),
    ("MODIFY a SMALLINT", "COPY", "SHARED"),
    ("MODIFY a INT UNSIGNED", "COPY", "SHARED"),
    ("MODIFY a INT NOT NULL", "INPLACE", "NONE"),
    ("MODIFY b VARCHAR(50) NOT NULL", "INPLACE", "NONE"),
    ("MODIFY g BIGINT NULL DEFAULT 0", "INPLACE", "NONE"),
    ("MODIFY c VARCHAR(200) NULL DEFAULT ''", "INPLACE", "NONE"),
    ("MODIFY a INT COMMENT 'hello'", "INSTANT", "NONE"),
    ("MODIFY a INT FIRST", "INSTANT", "NONE"),
    ("MODIFY a INT AFTER b", "INSTANT", "NONE"),
    ("MODIFY e ENUM('x','y','z')", "INSTANT", "NONE"),
    ("MODIFY e ENUM('y','x')", "COPY", "SHARED"),
    (
        "MODIFY s VARCHAR(20) CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "MODIFY b VARCHAR(50) CHARACTER SET utf8mb3",
        "COPY",
        "SHARED",
    ),
    ("MODIFY b VARCHAR(50) NULL DEFAULT 'q'", "INSTANT", "NONE"),
    ("MODIFY d DATETIME(3)", "COPY", "SHARED"),
    ("MODIFY d TIMESTAMP NULL", "COPY", "SHARED"),
    ("MODIFY f MEDIUMTEXT", "COPY", "SHARED"),
    ("MODIFY h CHAR(20)", "COPY", "SHARED"),
    ("MODIFY h VARCHAR(10)", "COPY", "SHARED"),
    ("MODIFY id BIGINT NOT NULL", "COPY", "SHARED"),
    ("ALTER COLUMN c SET DEFAULT 'z'", "INSTANT", "NONE"),
    ("ALTER COLUMN c DROP DEFAULT", "INSTANT", "NONE"),
    ("ALTER COLUMN a SET DEFAULT 7", "INSTANT", "NONE"),
    ("RENAME COLUMN c TO c2", "INSTANT", "NONE"),
    (
        "CHANGE c c3 VARCHAR(200) NOT NULL DEFAULT ''",
        "INSTANT",
        "NONE",
    ),
    ("CHANGE a a2 BIGINT", "COPY", "SHARED"),
    ("ADD INDEX idx_c (c)", "NOCOPY", "NONE"),
    ("ADD UNIQUE INDEX uq_g (g)", "NOCOPY", "NONE"),
    ("ADD UNIQUE KEY uq_c (c)", "NOCOPY", "NONE"),
    ("ADD INDEX idx_ab (a, b)", "NOCOPY", "NONE"),
    ("DROP INDEX idx_b", "NOCOPY", "NONE"),
    ("DROP INDEX idx_a, ADD INDEX idx_a (a, g)", "NOCOPY", "NONE"),
    ("ADD FULLTEXT INDEX ft (f)", "INPLACE", "SHARED"),
    (
        "DROP PRIMARY KEY, ADD PRIMARY KEY (id, g)",
        "INPLACE",
        "NONE",
    ),
    ("DROP PRIMARY KEY", "COPY", "SHARED"),
    ("ADD CONSTRAINT chk1 CHECK (g >= 0)", "COPY", "SHARED"),
    ("DROP CONSTRAINT chk0", "INSTANT", "NONE"),
    (
        "ADD CONSTRAINT fk_a_{t} FOREIGN KEY (a) REFERENCES parent(id)",
        "COPY",
        "SHARED",
    ),
    ("DROP FOREIGN KEY fk_{t}", "INSTANT", "NONE"),
    ("AUTO_INCREMENT = 1000", "INSTANT", "NONE"),
    ("ADD COLUMN x1 INT, ADD COLUMN x2 INT", "INSTANT", "NONE"),
    (
        "ADD COLUMN x3 INT, ADD INDEX idx_x3 (x3)",
        "INPLACE",
        "NONE",
    ),
    ("ADD COLUMN n11 INT, DROP COLUMN h", "INSTANT", "NONE"),
    ("DROP COLUMN h, ADD INDEX idx_g (g)", "INPLACE", "NONE"),
    (
        "ADD COLUMN n12 INT DEFAULT 3, ALTER COLUMN c SET DEFAULT 'k'",
        "INSTANT",
        "NONE",
    ),
    ("RENAME TO {t}_renamed", "INSTANT", "EXCLUSIVE"),
    // Clauses sqlparser does not parse, alone and mixed with parsed ones.
    ("RENAME INDEX idx_a TO idx_a2", "INSTANT", "NONE"),
    ("RENAME KEY idx_b TO idx_b2", "INSTANT", "NONE"),
    ("FORCE", "INPLACE", "NONE"),
    ("ENGINE=InnoDB", "INPLACE", "NONE"),
    ("ENGINE = InnoDB", "INPLACE", "NONE"),
    ("ROW_FORMAT=COMPACT", "INPLACE", "NONE"),
    ("ROW_FORMAT=DYNAMIC", "INPLACE", "NONE"),
    ("ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8", "INPLACE", "NONE"),
    ("ENGINE=InnoDB ROW_FORMAT=DYNAMIC", "INPLACE", "NONE"),
    ("ENGINE=InnoDB AUTO_INCREMENT=2000", "INPLACE", "NONE"),
    ("CONVERT TO CHARACTER SET utf8mb4", "INSTANT", "NONE"),
    ("CONVERT TO CHARACTER SET latin1", "COPY", "SHARED"),
    (
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "COPY",
        "SHARED",
    ),
    ("CONVERT TO CHARSET utf8mb3", "COPY", "SHARED"),
    ("AUTO_INCREMENT=1000", "INSTANT", "NONE"),
    ("AUTO_INCREMENT 1000", "INSTANT", "NONE"),
    ("DEFAULT CHARSET=latin1", "INSTANT", "NONE"),
    ("COLLATE utf8mb4_bin", "INSTANT", "NONE"),
    ("COMMENT='hello'", "INSTANT", "NONE"),
    ("STATS_PERSISTENT=0", "INSTANT", "NONE"),
    (
        "ADD COLUMN z INT, RENAME INDEX idx_a TO idx_a2",
        "INSTANT",
        "NONE",
    ),
    (
        "ADD INDEX idx_c (c), RENAME INDEX idx_a TO idx_a2",
        "NOCOPY",
        "NONE",
    ),
    (
        "DROP INDEX idx_b, RENAME INDEX idx_a TO idx_b",
        "NOCOPY",
        "NONE",
    ),
    (
        "MODIFY a BIGINT, RENAME INDEX idx_a TO idx_a2",
        "COPY",
        "SHARED",
    ),
    ("ADD COLUMN z INT, FORCE", "INPLACE", "NONE"),
    ("ADD INDEX idx_c (c), FORCE", "INPLACE", "NONE"),
    ("FORCE, ADD FULLTEXT INDEX ft (f)", "INPLACE", "SHARED"),
    ("ROW_FORMAT=DYNAMIC, MODIFY a BIGINT", "COPY", "SHARED"),
    ("ENGINE=InnoDB, MODIFY a INT NOT NULL", "INPLACE", "NONE"),
    ("ADD COLUMN z INT, ROW_FORMAT=COMPACT", "INPLACE", "NONE"),
    (
        "ADD COLUMN z INT, CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    ("ADD COLUMN z INT, AUTO_INCREMENT=1000", "INSTANT", "NONE"),
    ("ADD INDEX idx_c (c), AUTO_INCREMENT=1000", "NOCOPY", "NONE"),
    // A table option with an instant rename or type change: MariaDB does it in place.
    (
        "RENAME INDEX idx_a TO idx_a2, AUTO_INCREMENT=50",
        "NOCOPY",
        "NONE",
    ),
    ("AUTO_INCREMENT=50, RENAME COLUMN c TO c2", "NOCOPY", "NONE"),
    ("COMMENT='x', MODIFY b VARCHAR(60)", "NOCOPY", "NONE"),
    ("COMMENT='x', DROP FOREIGN KEY fk_{t}", "NOCOPY", "NONE"),
    (
        "AUTO_INCREMENT=50, ALTER COLUMN c SET DEFAULT 'z'",
        "INSTANT",
        "NONE",
    ),
    (
        "AUTO_INCREMENT=50, DROP COLUMN h, RENAME COLUMN c TO c2",
        "INSTANT",
        "NONE",
    ),
    ("COMMENT='x', MODIFY e ENUM('x','y','z')", "INSTANT", "NONE"),
    // MODIFY without CHARACTER SET takes the table's default, as changed by the ALTER.
    (
        "DEFAULT CHARSET=latin1, MODIFY b VARCHAR(60)",
        "COPY",
        "SHARED",
    ),
    ("MODIFY s VARCHAR(20)", "INSTANT", "NONE"),
];

/// Plan `clause` for table `t` (just created), compare with the expected algorithm and
/// lock, then check both on the server: the next cheaper algorithm fails, the next weaker
/// lock fails, and the prediction succeeds.
async fn check_entry(
    db: &TestDb,
    t: &str,
    clause: &str,
    alg: &str,
    lock: &str,
    failures: &mut Vec<String>,
) {
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions::default();
    match godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        t,
        clause,
        &opts,
    )
    .await
    {
        Ok(plan) => {
            let got_alg = plan.overall.algorithm.map(|a| a.as_str()).unwrap_or("?");
            let got_lock = plan.overall.mysql_lock.map(|l| l.as_str()).unwrap_or("?");
            if (got_alg, got_lock) != (alg, lock) {
                failures.push(format!(
                    "{t}: {clause}: planner says {got_alg}/{got_lock} ({}), corpus {alg}/{lock}",
                    plan.overall.reason
                ));
            }
        }
        Err(e) => failures.push(format!("{t}: {clause}: plan failed: {e}")),
    }
    if let Some(m) = check_algorithm(db, t, clause, alg, lock).await.mismatch {
        failures.push(format!("{t}: {clause}: {m}"));
    }
}

fn report(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {} disagree:\n{}",
        failures.len(),
        total,
        failures.join("\n")
    );
}

#[tokio::test]
async fn corpus_matches_the_server() {
    assert!(CORPUS.len() >= 40);
    let db = TestDb::new("plan_my").await;
    db.exec("CREATE TABLE parent (id INT PRIMARY KEY); INSERT INTO parent VALUES (1),(2),(3)")
        .await;
    let mut failures = Vec::new();
    for (i, (clause, alg, lock)) in CORPUS.iter().enumerate() {
        let t = format!("t{i}");
        let clause = clause.replace("{t}", &t);
        db.exec(&table_sql(&t)).await;
        check_entry(&db, &t, &clause, alg, lock, &mut failures).await;
    }
    report(&failures, CORPUS.len());
    db.drop_db().await;
}

/// Each entry on a small table of its own: `CREATE TABLE t (id INT PRIMARY KEY, {columns})
/// DEFAULT CHARSET=utf8mb4 {options}` with one row.
async fn small_table_corpus(prefix: &str, corpus: &[(&str, &str, &str, &str, &str)]) {
    let db = TestDb::new(prefix).await;
    let mut failures = Vec::new();
    for (i, (columns, options, clause, alg, lock)) in corpus.iter().enumerate() {
        let t = format!("s{i}");
        db.exec(&format!(
            "CREATE TABLE `{t}` (id INT PRIMARY KEY, {columns}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 {options}; \
             INSERT INTO `{t}` (id) VALUES (1)"
        ))
        .await;
        check_entry(&db, &t, clause, alg, lock, &mut failures).await;
    }
    report(&failures, corpus.len());
    db.drop_db().await;
}

/// Extending a VARCHAR on MariaDB 10.11 (bytes = characters × the charset's longest
/// character): instant within one length-byte class, and from at most 127 bytes to any
/// length (non-REDUNDANT formats); REDUNDANT extends any VARCHAR instantly.
const VARCHAR_CORPUS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "v VARCHAR(127) CHARACTER SET latin1",
        "",
        "MODIFY v VARCHAR(300) CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(128) CHARACTER SET latin1",
        "",
        "MODIFY v VARCHAR(300) CHARACTER SET latin1",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(127) CHARACTER SET latin1",
        "",
        "MODIFY v VARCHAR(255) CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(200) CHARACTER SET latin1",
        "",
        "MODIFY v VARCHAR(256) CHARACTER SET latin1",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(300) CHARACTER SET latin1",
        "",
        "MODIFY v VARCHAR(400) CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(31)",
        "",
        "MODIFY v VARCHAR(300)",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(31)",
        "",
        "MODIFY v VARCHAR(64)",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(32)",
        "",
        "MODIFY v VARCHAR(300)",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(31), KEY (v)",
        "",
        "MODIFY v VARCHAR(300)",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(42) CHARACTER SET utf8mb3",
        "",
        "MODIFY v VARCHAR(100) CHARACTER SET utf8mb3",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(43) CHARACTER SET utf8mb3",
        "",
        "MODIFY v VARCHAR(100) CHARACTER SET utf8mb3",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(63) CHARACTER SET ucs2",
        "",
        "MODIFY v VARCHAR(200) CHARACTER SET ucs2",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(64) CHARACTER SET ucs2",
        "",
        "MODIFY v VARCHAR(200) CHARACTER SET ucs2",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(31)",
        "ROW_FORMAT=COMPACT",
        "MODIFY v VARCHAR(300)",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(32)",
        "ROW_FORMAT=COMPRESSED",
        "MODIFY v VARCHAR(300)",
        "COPY",
        "SHARED",
    ),
    (
        "v VARCHAR(128) CHARACTER SET latin1",
        "ROW_FORMAT=REDUNDANT",
        "MODIFY v VARCHAR(300) CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(255) CHARACTER SET latin1",
        "ROW_FORMAT=REDUNDANT",
        "MODIFY v VARCHAR(256) CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "v VARCHAR(32)",
        "ROW_FORMAT=REDUNDANT",
        "MODIFY v VARCHAR(300)",
        "INSTANT",
        "NONE",
    ),
];

/// `CONVERT TO CHARACTER SET` (and MODIFY without a character set, which takes the table's
/// default) on MariaDB 10.11, column by column.
const CONVERT_CORPUS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "x VARCHAR(20)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x INT",
        "",
        "CONVERT TO CHARACTER SET latin1",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20), KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "NOCOPY",
        "NONE",
    ),
    (
        "x VARCHAR(100), KEY (x(10))",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "NOCOPY",
        "NONE",
    ),
    (
        "x TEXT, KEY (x(10))",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "COPY",
        "SHARED",
    ),
    (
        "x TEXT",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "INSTANT",
        "NONE",
    ),
    (
        "x CHAR(10), KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "NOCOPY",
        "NONE",
    ),
    (
        "x ENUM('a','b')",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3, KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin, KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "NOCOPY",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin, KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(200) CHARACTER SET utf8mb3, KEY (x(10))",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(43) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(70) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(100) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(70) CHARACTER SET utf8mb3",
        "ROW_FORMAT=REDUNDANT",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x TEXT CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x TINYTEXT CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x LONGTEXT CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x CHAR(10) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x CHAR(10) CHARACTER SET utf8mb3",
        "ROW_FORMAT=REDUNDANT",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x ENUM('a','b') CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20) CHARACTER SET latin1",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20)",
        "",
        "CONVERT TO CHARACTER SET utf8mb3",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3, y INT, KEY (y)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4, ADD COLUMN z INT",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20), KEY (x)",
        "",
        "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, ADD COLUMN z INT",
        "INPLACE",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3",
        "",
        "CONVERT TO CHARACTER SET utf8mb4, FORCE",
        "INPLACE",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3",
        "",
        "MODIFY x VARCHAR(40)",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET latin1",
        "",
        "MODIFY x VARCHAR(20)",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3, KEY (x)",
        "",
        "MODIFY x VARCHAR(20) CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    (
        "x VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin, KEY (x)",
        "",
        "MODIFY x VARCHAR(20)",
        "NOCOPY",
        "NONE",
    ),
    (
        "x VARCHAR(20), KEY (x)",
        "",
        "MODIFY x VARCHAR(20) COLLATE utf8mb4_bin",
        "NOCOPY",
        "NONE",
    ),
    (
        "x TEXT CHARACTER SET utf8mb3",
        "",
        "MODIFY x TEXT",
        "INSTANT",
        "NONE",
    ),
    ("x INT", "", "ENGINE=Aria", "COPY", "SHARED"),
    (
        "x JSON",
        "",
        "CONVERT TO CHARACTER SET utf8mb4",
        "INSTANT",
        "NONE",
    ),
    // DEFAULT: the database's character set (the server's latin1 here).
    (
        "x VARCHAR(20)",
        "",
        "CONVERT TO CHARACTER SET DEFAULT",
        "COPY",
        "SHARED",
    ),
    (
        "x VARCHAR(20) CHARACTER SET latin1",
        "",
        "CONVERT TO CHARACTER SET DEFAULT",
        "INSTANT",
        "NONE",
    ),
];

#[tokio::test]
async fn charset_conversion_matches_the_server() {
    small_table_corpus("plan_myk", CONVERT_CORPUS).await;
}

#[tokio::test]
async fn varchar_extension_matches_the_server() {
    small_table_corpus("plan_myv", VARCHAR_CORPUS).await;
}

#[tokio::test]
async fn data_rules_fire_on_bad_data_and_stay_silent_on_clean_data() {
    let db = TestDb::new("plan_myr").await;
    db.exec(
        "CREATE TABLE bad (id INT PRIMARY KEY, a INT NULL, b VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO bad VALUES (1, 1, 'short'), (2, 1, 'a much longer value'), (3, NULL, 'x');
         CREATE TABLE good (id INT PRIMARY KEY, a INT NULL, b VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO good VALUES (1, 1, 'short'), (2, 2, 'tiny'), (3, 3, 'x');
         CREATE TABLE nopk (a INT) ENGINE=InnoDB",
    )
    .await;
    let target = godwit::target::Target::parse(&db.url, None).unwrap();
    let opts = godwit::plan::PlanOptions::default();
    let alter = "MODIFY a INT NOT NULL, MODIFY b VARCHAR(6), ADD UNIQUE KEY uq_a (a)";
    let rules = |p: &godwit::plan::Plan| p.findings.iter().map(|f| f.rule).collect::<Vec<_>>();
    let bad = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "bad",
        alter,
        &opts,
    )
    .await
    .unwrap();
    let r = rules(&bad);
    for id in [
        "not-null-with-nulls",
        "type-truncation",
        "unique-duplicates",
    ] {
        assert!(r.contains(&id), "{id} missing from {r:?}");
    }
    let dup = bad
        .findings
        .iter()
        .find(|f| f.rule == "unique-duplicates")
        .unwrap();
    assert!(dup.message.contains("a=1"), "{}", dup.message);
    let good = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        alter,
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&good).is_empty(), "{:?}", good.findings);
    // Renames, drops, FKs and a missing key.
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "RENAME COLUMN b TO b2, DROP COLUMN a",
        &opts,
    )
    .await
    .unwrap();
    let r = rules(&p);
    assert!(
        r.contains(&"rename-breaks-code") && r.contains(&"destructive-drop"),
        "{r:?}"
    );
    assert_eq!(p.recommendation.strategy, godwit::plan::Strategy::Phases);
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "nopk",
        "ADD COLUMN x INT",
        &opts,
    )
    .await
    .unwrap();
    assert!(rules(&p).contains(&"missing-primary-key"));
    // Large-table rules by lowering the threshold.
    let small = godwit::plan::PlanOptions {
        large_table_rows: 2,
        ..Default::default()
    };
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "MODIFY a BIGINT",
        &small,
    )
    .await
    .unwrap();
    let r = rules(&p);
    assert!(
        r.contains(&"lock-on-large-table") && r.contains(&"rewrite-large-table"),
        "{r:?}"
    );
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "good",
        "ADD COLUMN y INT",
        &small,
    )
    .await
    .unwrap();
    assert!(rules(&p).is_empty(), "{:?}", p.findings);
    db.drop_db().await;
}

#[tokio::test]
async fn cli_json_shape_fail_on_and_parse_errors() {
    let db = TestDb::new("plan_myc").await;
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1, NULL)",
    )
    .await;
    let base = ["plan", "--url", &db.url, "--table", "t"];
    let run = |extra: &'static [&'static str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = run(&["--alter", "MODIFY a INT NOT NULL", "--format", "json"]);
    let r = support::godwit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    r.expect_ok();
    let p = r.event("plan").expect("a plan event");
    for k in [
        "schema_version",
        "engine",
        "server_version",
        "table",
        "alter",
        "facts",
        "changes",
        "overall",
        "checks",
        "estimate",
        "recommendation",
        "findings",
    ] {
        assert!(p.get(k).is_some(), "missing {k} in {p}");
    }
    for k in [
        "clause",
        "op",
        "columns",
        "algorithm",
        "mysql_lock",
        "pg_lock",
        "rewrite",
        "scan",
        "blocks_writes",
        "blocks_reads",
        "reason",
    ] {
        assert!(p["changes"][0].get(k).is_some(), "missing changes[].{k}");
    }
    for k in [
        "rows",
        "bytes_to_copy",
        "disk_needed_bytes",
        "free_bytes",
        "rows_per_sec",
        "rate_source",
        "copy_seconds",
        "replication_bytes",
        "replication_note",
    ] {
        assert!(p["estimate"].get(k).is_some(), "missing estimate.{k}");
    }
    for k in ["strategy", "statements", "reason"] {
        assert!(
            p["recommendation"].get(k).is_some(),
            "missing recommendation.{k}"
        );
    }
    let f = &p["findings"][0];
    for k in ["rule", "severity", "message", "fix"] {
        assert!(f.get(k).is_some(), "missing findings[].{k}");
    }
    assert_eq!(p["changes"][0]["algorithm"], "INPLACE");
    // --fail-on
    let args = run(&["--alter", "MODIFY a INT NOT NULL", "--fail-on", "error"]);
    let r = support::godwit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    assert_eq!(r.code, 41, "{}{}", r.stdout, r.stderr);
    for l in r.stdout.lines() {
        assert!(l.chars().count() <= 80, "line longer than 80: {l}");
    }
    let args = run(&["--alter", "ADD COLUMN b INT", "--fail-on", "warning"]);
    let r = support::godwit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // An ALTER the parser cannot read: exit 2 with the parser's message.
    let args = run(&["--alter", "ADD COLUMN"]);
    let r = support::godwit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot parse"), "{}", r.stderr);
    // Nothing changed.
    assert!(db
        .show_create("t")
        .await
        .contains("`a` int(11) DEFAULT NULL"));
    db.drop_db().await;
}

#[tokio::test]
async fn run_attempt_native_runs_instant_changes_natively() {
    let db = TestDb::new("plan_myn").await;
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1, 1)",
    )
    .await;
    let url = db.url.clone();
    let args = |alter: &'static str, execute: bool| {
        let mut v = vec![
            "run",
            "--url",
            &url,
            "--table",
            "t",
            "--alter",
            alter,
            "--attempt-native",
            "--format",
            "json",
        ];
        if execute {
            v.push("--execute");
        }
        v.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let go = |v: Vec<String>| async move {
        support::godwit(&v.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await
    };
    // Dry run: says what it would do, changes nothing.
    let r = go(args("ADD COLUMN z INT", false)).await;
    r.expect_ok();
    let ev = r.event("native").expect("native event");
    assert_eq!(ev["executed"], false);
    assert!(ev["statement"]
        .as_str()
        .unwrap()
        .contains("ALGORITHM=INSTANT"));
    assert!(!db.show_create("t").await.contains("`z`"));
    // Execute: the column exists, no shadow was ever created.
    let r = go(args("ADD COLUMN z INT", true)).await;
    r.expect_ok();
    assert_eq!(r.event("native").unwrap()["executed"], true);
    assert!(db.show_create("t").await.contains("`z`"));
    assert!(db.leftovers(&[]).await.is_empty());
    // Not instant: no native event, the usual online dry run.
    let r = go(args("MODIFY a BIGINT", false)).await;
    r.expect_ok();
    assert!(r.event("native").is_none(), "{}", r.stdout);
    assert!(!db.show_create("t").await.contains("bigint"));
    db.drop_db().await;
}
