//! Online ALTERs of an idle table, one case table run on MariaDB and PostgreSQL: godwit
//! migrates `t` (in chunks of 700 rows) while the server's own ALTER changes its twin
//! `expected`, built by the same statements. Every row must be equal, what the case names
//! must be in the new table, the old table is dropped (`--ok-to-drop-table`) and nothing
//! of godwit's is left behind.
mod support;

use support::both::run_args_on;
use support::both::{Db, Engine};
use support::godwit;

const ROWS: u32 = 2500;

/// `{t}` with 2,500 rows: a key, a unique text code (latin1 with accents on MariaDB), an
/// indexed int, a nullable text and a decimal.
async fn build(db: &Db, t: &str) {
    let sql = match db.engine() {
        Engine::Maria => vec![
            format!(
                "CREATE TABLE {t} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 code VARCHAR(20) CHARACTER SET latin1 NOT NULL, a INT NOT NULL DEFAULT 0, \
                 b VARCHAR(60) NULL, n DECIMAL(12,2), UNIQUE KEY {t}_code (code), KEY {t}_a (a))"
            ),
            format!(
                "INSERT INTO {t} (code, a, b, n) SELECT CONCAT('c', seq, IF(seq % 3 = 0, '\u{e9}', '')), \
                 seq % 97, IF(seq % 5 = 0, NULL, REPEAT('x', seq % 50)), seq * 1.25 FROM seq_1_to_{ROWS}"
            ),
        ],
        Engine::Postgres => vec![
            format!(
                "CREATE TABLE {t} (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, \
                 a int NOT NULL DEFAULT 0, b text, n numeric(12,2))"
            ),
            format!("CREATE INDEX {t}_a ON {t} (a)"),
            format!(
                "INSERT INTO {t} (code, a, b, n) SELECT 'c' || i || CASE WHEN i % 3 = 0 THEN '\u{e9}' ELSE '' END, \
                 i % 97, CASE WHEN i % 5 = 0 THEN NULL ELSE repeat('x', i % 50) END, i * 1.25 \
                 FROM generate_series(1, {ROWS}) i"
            ),
        ],
    };
    for s in sql {
        db.exec(&s).await;
    }
}

/// Every row of `table` as text, in key order, columns in their order.
async fn dump(db: &Db, table: &str) -> Vec<String> {
    match db.engine() {
        Engine::Maria => {
            let cols = db
                .strings(&format!(
                    "SELECT GROUP_CONCAT(CONCAT('IFNULL(`', COLUMN_NAME, '`, ''NULL'')') ORDER BY ORDINAL_POSITION) \
                     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
                ))
                .await
                .remove(0);
            db.strings(&format!(
                "SELECT CONCAT_WS('|', {cols}) FROM `{table}` ORDER BY id"
            ))
            .await
        }
        Engine::Postgres => {
            db.strings(&format!("SELECT x::text FROM {table} x ORDER BY id"))
                .await
        }
    }
}

/// A database of its own where godwit runs `alter` on `t` and the server runs it on the
/// twin; the rows must be equal. The caller checks what is particular to the case, then
/// drops the database.
async fn twin_case(e: Engine, prefix: &str, alter: &str) -> Db {
    let db = Db::empty(e, prefix).await;
    build(&db, "t").await;
    build(&db, "expected").await;
    db.exec(&format!(
        "ALTER TABLE expected {}",
        alter.replace("{t}", "expected")
    ))
    .await;
    let alter_t = alter.replace("{t}", "t");
    let run = godwit(
        &run_args_on(
            db.url(),
            "t",
            &alter_t,
            &["--chunk-size", "700", "--ok-to-drop-table"],
        ),
        &[],
    )
    .await;
    run.expect_ok();
    assert!(
        run.states().contains(&"cut_over".to_string()),
        "{:?}",
        run.states()
    );
    let done = run.event("done").unwrap();
    assert_eq!(done["rows_copied"], ROWS, "{done}");
    assert_eq!(done["old_table_dropped"], true, "{done}");
    let (got, want) = (dump(&db, "t").await, dump(&db, "expected").await);
    assert_eq!(got.len(), want.len(), "{alter}: row counts differ");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{alter}: rows differ");
    }
    let left = db.leftovers().await;
    assert!(left.is_empty(), "{alter}: left behind: {left:?}");
    db
}

/// The new table's column names, in order.
async fn columns(db: &Db) -> Vec<String> {
    db.columns("t")
        .await
        .iter()
        .map(|c| c.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

async fn add_columns_with_defaults(e: Engine) {
    let db = twin_case(
        e,
        "idle_add",
        e.pick(
            "ADD COLUMN shipped_at DATETIME NULL, ADD COLUMN flag INT NOT NULL DEFAULT 7",
            "ADD COLUMN shipped_at timestamp, ADD COLUMN flag int NOT NULL DEFAULT 7, ADD COLUMN active boolean NOT NULL DEFAULT true",
        ),
    )
    .await;
    assert!(columns(&db).await.contains(&"shipped_at".to_string()));
    assert_eq!(
        db.strings("SELECT DISTINCT CAST(flag AS CHAR) FROM t")
            .await,
        ["7"]
    );
    db.drop_db().await;
}

async fn drop_column(e: Engine) {
    let db = twin_case(e, "idle_drop", "DROP COLUMN b").await;
    assert!(!columns(&db).await.contains(&"b".to_string()));
    db.drop_db().await;
}

async fn change_a_type(e: Engine) {
    let db = twin_case(
        e,
        "idle_type",
        e.pick(
            "MODIFY n DECIMAL(14,3) NOT NULL, MODIFY a BIGINT NOT NULL DEFAULT 0",
            "ALTER COLUMN n TYPE numeric(14,3), ALTER COLUMN a TYPE bigint",
        ),
    )
    .await;
    db.drop_db().await;
}

/// A conversion the server computes (PostgreSQL `USING`; MariaDB converts int to text).
async fn change_a_type_through_an_expression(e: Engine) {
    let db = twin_case(
        e,
        "idle_using",
        e.pick(
            "MODIFY a VARCHAR(20) NOT NULL DEFAULT '0'",
            "ALTER COLUMN a TYPE text USING (a * 2)::text, \
             ALTER COLUMN n TYPE bigint USING round(n * 100)::bigint",
        ),
    )
    .await;
    let want = e.pick("10", "20");
    assert_eq!(db.strings("SELECT a FROM t WHERE id = 10").await, [want]);
    db.drop_db().await;
}

async fn add_indexes(e: Engine) {
    let db = twin_case(
        e,
        "idle_index",
        e.pick(
            "ADD INDEX idx_b (b), ADD UNIQUE KEY uk_code_id (code, id)",
            "ADD UNIQUE (code, b)",
        ),
    )
    .await;
    let mut names = db
        .strings(e.pick(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' ORDER BY 1",
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 't' ORDER BY 1",
        ))
        .await;
    names.sort();
    let want: Vec<&str> = e.pick(
        vec!["PRIMARY", "idx_b", "t_a", "t_code", "uk_code_id"],
        vec!["t_a", "t_code_b_key", "t_code_key", "t_pkey"],
    );
    assert_eq!(names, want);
    db.drop_db().await;
}

async fn rename_columns(e: Engine) {
    let db = twin_case(
        e,
        "idle_rename",
        e.pick(
            "CHANGE COLUMN b remark VARCHAR(60) NULL, RENAME COLUMN a TO a2",
            // PostgreSQL renames in a statement of its own.
            "RENAME COLUMN b TO remark",
        ),
    )
    .await;
    let cols = columns(&db).await;
    assert!(
        cols.contains(&"remark".to_string()) && !cols.contains(&"b".to_string()),
        "{cols:?}"
    );
    db.drop_db().await;
}

async fn add_a_check_constraint(e: Engine) {
    let db = twin_case(e, "idle_check", "ADD CONSTRAINT a_small CHECK (a < 1000)").await;
    let refused = db
        .try_exec("INSERT INTO t (code, a) VALUES ('zz', 5000)")
        .await;
    assert!(
        refused.is_err(),
        "the CHECK constraint must hold on the new table"
    );
    db.drop_db().await;
}

/// A new primary key, while the old one stays unique: the shared unique key carries the
/// migration.
async fn change_the_primary_key(e: Engine) {
    let db = twin_case(
        e,
        "idle_pk",
        e.pick(
            "DROP PRIMARY KEY, ADD PRIMARY KEY (code), ADD UNIQUE KEY uk_id (id)",
            "DROP CONSTRAINT {t}_pkey, ADD PRIMARY KEY (code), ADD UNIQUE (id)",
        ),
    )
    .await;
    let pk = db
        .strings(e.pick(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'PRIMARY'",
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 't'::regclass AND i.indisprimary",
        ))
        .await;
    assert_eq!(pk, ["code"]);
    db.drop_db().await;
}

/// Without --execute nothing changes and nothing is created.
async fn a_dry_run_changes_nothing(e: Engine) {
    let db = Db::empty(e, "idle_dry").await;
    build(&db, "t").await;
    let (cols, rows) = (columns(&db).await, dump(&db, "t").await);
    let run = godwit(
        &[
            "run",
            "--url",
            db.url(),
            "--table",
            "t",
            "--alter",
            "ADD COLUMN z INT",
        ],
        &[],
    )
    .await;
    run.expect_ok();
    assert_eq!(columns(&db).await, cols);
    assert_eq!(dump(&db, "t").await, rows);
    assert!(db.leftovers().await.is_empty());
    db.drop_db().await;
}

support::both::cases!(
    add_columns_with_defaults,
    drop_column,
    change_a_type,
    change_a_type_through_an_expression,
    add_indexes,
    rename_columns,
    add_a_check_constraint,
    change_the_primary_key,
    a_dry_run_changes_nothing,
);
