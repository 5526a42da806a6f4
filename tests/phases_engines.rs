//! Expand / backfill / contract from migration files, one case table run on MariaDB and
//! on PostgreSQL: a column rename that the old and the new application both write while
//! it rolls out, abort, refused files and runners (and a dead runner's lock), a plain
//! writer through every phase,
//! add_column / set_not_null / drop_column / add_index / sql against a twin given the
//! direct ALTER, and backfills that are killed or blocked and then resume.

mod support;

use support::both::{Conn, Db, Engine};
use support::godwit;

const RENAME: &str = r#"name = "rename email"
description = "users.email becomes users.email_address"

[[operations]]
type = "rename_column"
table = "users"
from = "email"
to = "email_address"
"#;

/// The spellings that differ between the engines.
impl Engine {
    fn users(self, t: &str) -> String {
        match self {
            Engine::Maria => format!(
                "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100) NULL, KEY idx_name (name))"
            ),
            Engine::Postgres => format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL, email varchar(100)); CREATE INDEX ON {t} (name)"
            ),
        }
    }
    fn fill(self, t: &str) -> String {
        match self {
            Engine::Maria => format!(
                "INSERT INTO {t} SELECT seq, CONCAT('user', seq), CONCAT('u', seq, '@example.com') FROM seq_1_to_2500"
            ),
            Engine::Postgres => format!(
                "INSERT INTO {t} SELECT i, 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 2500) i"
            ),
        }
    }
    /// NULL-safe "differs".
    fn differs(self, a: &str, b: &str) -> String {
        match self {
            Engine::Maria => format!("NOT ({a} <=> {b})"),
            Engine::Postgres => format!("{a} IS DISTINCT FROM {b}"),
        }
    }
    fn not_null(self, t: &str, col: &str, ty: &str) -> String {
        match self {
            Engine::Maria => format!("ALTER TABLE {t} MODIFY {col} {ty} NOT NULL"),
            Engine::Postgres => format!("ALTER TABLE {t} ALTER COLUMN {col} SET NOT NULL"),
        }
    }
}

async fn setup(engine: Engine, prefix: &str) -> Db {
    let db = Db::new(engine, prefix).await;
    for t in ["users", "twin"] {
        db.exec(&engine.users(t)).await;
        db.exec(&engine.fill(t)).await;
    }
    db
}

fn write_file(db: &Db, text: &str) -> (std::path::PathBuf, String) {
    // One directory per test database.
    let name = db.url().rsplit('/').next().unwrap_or("x").to_string();
    support::phases::write_migration(&name, "0001_migration.toml", text)
}

async fn phase(db: &Db, cmd: &str, dir: &str) -> support::Run {
    support::phases::phase(db.url(), cmd, dir).await
}

async fn one(db: &Db, sql: &str) -> i64 {
    let cast = match db.engine() {
        Engine::Maria => format!("SELECT CAST(({sql}) AS CHAR)"),
        Engine::Postgres => format!("SELECT (({sql}))::text"),
    };
    db.strings(&cast).await[0].parse().unwrap()
}

/// The rows of `table`, `cols` joined by `|` (NULL as `∅`), in id order.
async fn rows(db: &Db, table: &str, cols: &str) -> Vec<String> {
    let parts: Vec<String> = cols
        .split(',')
        .map(|c| format!("COALESCE(CAST({} AS CHAR(200)), '∅')", c.trim()))
        .collect();
    let parts = match db.engine() {
        Engine::Maria => parts,
        Engine::Postgres => parts
            .into_iter()
            .map(|p| p.replace("AS CHAR(200)", "AS text"))
            .collect(),
    };
    db.strings(&format!(
        "SELECT CONCAT_WS('|', {}) FROM {table} ORDER BY id",
        parts.join(", ")
    ))
    .await
}

/// What the schema of `table` is, without its name: columns (name, type, nullability,
/// default) and indexes.
async fn schema(db: &Db, table: &str) -> Vec<String> {
    match db.engine() {
        Engine::Maria => {
            let mut s = db
                .strings(&format!(
                    "SELECT CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '-')) FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
                ))
                .await;
            s.extend(
                db.strings(&format!(
                    "SELECT CONCAT_WS(' ', INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)) FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' GROUP BY INDEX_NAME, NON_UNIQUE ORDER BY INDEX_NAME"
                ))
                .await,
            );
            s
        }
        Engine::Postgres => {
            let mut s = db
                .strings(&format!(
                    "SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') \
                     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ))
                .await;
            s.extend(
                db.strings(&format!(
                    "SELECT replace(indexdef, '{table}', 'T') FROM pg_indexes WHERE tablename = '{table}' ORDER BY 1"
                ))
                .await,
            );
            s
        }
    }
}

/// Triggers left on `users`.
async fn triggers(db: &Db) -> Vec<String> {
    db.strings(match db.engine() {
        Engine::Maria => "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
        Engine::Postgres => "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal",
    })
    .await
}

async fn rename_column_through_every_phase(engine: Engine) {
    let db = setup(engine, "ph_rename").await;
    let (dir, d) = write_file(&db, RENAME);

    // Without --execute nothing changes.
    let before = schema(&db, "users").await;
    let dry = godwit(&["expand", &d, "--url", db.url()], &[]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(schema(&db, "users").await, before);

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
    let seen = db
        .strings("SELECT CONCAT_WS('|', id, email, email_address) FROM users WHERE id IN (5, 6, 9001, 9002) ORDER BY id")
        .await;
    assert_eq!(
        seen,
        [
            "5|old-upd@x|old-upd@x",
            "6|new-upd@x|new-upd@x",
            "9001|old@x|old@x",
            "9002|new@x|new@x"
        ]
    );
    // The same writes on the twin, in the old shape (it gets the native ALTER later).
    db.exec("INSERT INTO twin (id, name, email) VALUES (9001, 'old app', 'old@x'), (9002, 'new app', 'new@x')").await;
    db.exec("UPDATE twin SET email = 'old-upd@x' WHERE id = 5")
        .await;
    db.exec("UPDATE twin SET email = 'new-upd@x' WHERE id = 6")
        .await;

    // Out of order: contract before backfill is refused, nothing changes.
    let before = schema(&db, "users").await;
    let early = phase(&db, "contract", &d).await;
    assert_eq!(early.code, 40, "{}\n{}", early.stdout, early.stderr);
    assert_eq!(schema(&db, "users").await, before);

    phase(&db, "backfill", &d).await.expect_ok();
    let differs = engine.differs("email", "email_address");
    assert_eq!(
        one(&db, &format!("SELECT COUNT(*) FROM users WHERE {differs}")).await,
        0,
        "backfill left rows behind"
    );
    // Each phase run twice is a no-op the second time.
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "expand", &d).await.expect_ok();

    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin RENAME COLUMN email TO email_address")
        .await;
    assert_eq!(
        schema(&db, "users").await,
        schema(&db, "twin").await,
        "contract must leave the schema a direct ALTER gives"
    );
    assert_eq!(
        rows(&db, "users", "id, name, email_address").await,
        rows(&db, "twin", "id, name, email_address").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    phase(&db, "contract", &d).await.expect_ok();
    let status = godwit(&["status", &d, "--url", db.url(), "--format", "json"], &[]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("\"phase\":\"complete\""),
        "{}",
        status.stdout
    );
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn abort_returns_the_original_schema_and_keeps_data(engine: Engine) {
    let db = setup(engine, "ph_abort").await;
    let (dir, d) = write_file(&db, RENAME);
    let original = schema(&db, "users").await;
    phase(&db, "expand", &d).await.expect_ok();
    db.exec("INSERT INTO users (id, name, email_address) VALUES (9002, 'new app', 'new@x')")
        .await;
    db.exec("UPDATE users SET email_address = 'new-upd@x' WHERE id = 6")
        .await;
    phase(&db, "abort", &d).await.expect_ok();
    assert_eq!(schema(&db, "users").await, original);
    assert!(triggers(&db).await.is_empty(), "triggers left");
    assert_eq!(
        db.strings("SELECT email FROM users WHERE id IN (6, 9002) ORDER BY id")
            .await,
        ["new-upd@x", "new@x"]
    );
    assert_eq!(one(&db, "SELECT COUNT(*) FROM users").await, 2501);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

async fn a_changed_file_and_a_bad_file_are_refused(engine: Engine) {
    let db = setup(engine, "ph_bad").await;
    let (dir, d) = write_file(&db, RENAME);
    phase(&db, "expand", &d).await.expect_ok();
    let state = "SELECT CONCAT_WS('|', id, phase, checksum) FROM _godwit_migrations";
    let before = (schema(&db, "users").await, db.strings(state).await);
    std::fs::write(
        dir.join("0001_migration.toml"),
        RENAME.replace("email_address", "mail"),
    )
    .unwrap();
    let r = phase(&db, "backfill", &d).await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(r.stderr.contains("--allow-changed"), "{}", r.stderr);
    assert_eq!(
        (schema(&db, "users").await, db.strings(state).await),
        before
    );
    std::fs::write(
        dir.join("0002_bad.toml"),
        "name = \"bad\"\n[[operations]]\ntype = \"frobnicate\"\ntable = \"users\"\n",
    )
    .unwrap();
    let r = godwit(&["status", &d, "--url", db.url()], &[]).await;
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
async fn a_plain_writer_keeps_working_through_every_phase(engine: Engine) {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::sync::Arc;
    let db = Arc::new(setup(engine, "ph_writer").await);
    db.exec("CREATE TABLE mirror (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, mail VARCHAR(100) NULL)").await;
    db.exec("INSERT INTO mirror SELECT id, name, email FROM users")
        .await;
    let (dir, d) = write_file(&db, RENAME);
    let shape = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2, db2) = (shape.clone(), stop.clone(), db.clone());
    let writer = tokio::spawn(async move {
        let mut c = Conn::open(&db2).await;
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
            let mut stmts = vec![
                format!("INSERT INTO users (id, name, {col}) VALUES ({id}, 'w', 'w{n}@x')"),
                format!("INSERT INTO mirror (id, name, mail) VALUES ({id}, 'w', 'w{n}@x')"),
                format!("UPDATE users SET {col} = 'upd{n}@x' WHERE id = {target}"),
                format!("UPDATE mirror SET mail = 'upd{n}@x' WHERE id = {target}"),
            ];
            if n % 5 == 0 {
                stmts.push(format!("DELETE FROM users WHERE id = {}", id - 3));
                stmts.push(format!("DELETE FROM mirror WHERE id = {}", id - 3));
            }
            if let Err(e) = c.transaction(&stmts).await {
                errors.push(e);
                c = Conn::open(&db2).await;
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
        rows(&db, "users", "id, name, email_address").await,
        rows(&db, "mirror", "id, name, mail").await,
        "a write was lost"
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    std::fs::remove_dir_all(dir).ok();
    Arc::try_unwrap(db).ok().unwrap().drop_db().await;
}

/// add_column with an `up` expression and NOT NULL at contract: old-application inserts
/// get the computed value, and the result equals the direct ALTER.
async fn add_column_with_up_then_not_null(engine: Engine) {
    let db = setup(engine, "ph_addcol").await;
    let file = r#"name = "verified flag"
[[operations]]
type = "add_column"
table = "users"
column = { name = "verified", type = "INT", nullable = false, default = "0" }
up = "CASE WHEN email LIKE '%@example.com' THEN 1 ELSE 0 END"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    let ins = "INSERT INTO {t} (id, name, email) VALUES (9001, 'old app', 'a@example.com'), (9002, 'old app', 'b@other.org')";
    db.exec(&ins.replace("{t}", "users")).await;
    db.exec(&ins.replace("{t}", "twin")).await;
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec("ALTER TABLE twin ADD COLUMN verified INT NOT NULL DEFAULT 0")
        .await;
    db.exec("UPDATE twin SET verified = CASE WHEN email LIKE '%@example.com' THEN 1 ELSE 0 END")
        .await;
    assert_eq!(schema(&db, "users").await, schema(&db, "twin").await);
    assert_eq!(
        rows(&db, "users", "id, name, email, verified").await,
        rows(&db, "twin", "id, name, email, verified").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// set_not_null and drop_column: NULLs replaced (existing and new), a column dropped while
/// the new application no longer writes it; both equal the direct ALTERs.
async fn set_not_null_and_drop_column(engine: Engine) {
    let db = setup(engine, "ph_nn").await;
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
    db.exec(&engine.not_null("twin", "email", "VARCHAR(100)"))
        .await;
    db.exec("ALTER TABLE twin DROP COLUMN name").await;
    assert_eq!(schema(&db, "users").await, schema(&db, "twin").await);
    assert_eq!(
        rows(&db, "users", "id, email").await,
        rows(&db, "twin", "id, email").await
    );
    assert!(triggers(&db).await.is_empty(), "triggers left");
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A backfill killed mid-way resumes from the last finished batch.
async fn interrupted_backfill_resumes(engine: Engine) {
    let db = setup(engine, "ph_resume").await;
    let (dir, d) = write_file(&db, RENAME);
    phase(&db, "expand", &d).await.expect_ok();
    let mut live = support::LiveRun::start(
        &[
            "backfill",
            &d,
            "--url",
            db.url(),
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
    live.wait_backfilled(60, 300).await;
    live.signal(9);
    let _ = live.finish().await;
    let differs = engine.differs("email", "email_address");
    let left = one(&db, &format!("SELECT COUNT(*) FROM users WHERE {differs}")).await;
    assert!(
        left > 0 && left < 2500,
        "the kill did not land mid-way: {left} rows left"
    );
    assert_eq!(support::phases::status(db.url(), &d).await, "backfilling");
    // Resume: the rows already done are not done again.
    let r = godwit(
        &[
            "backfill",
            &d,
            "--url",
            db.url(),
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
    assert_eq!(
        one(&db, &format!("SELECT COUNT(*) FROM users WHERE {differs}")).await,
        0
    );
    phase(&db, "contract", &d).await.expect_ok();
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// Another runner: a session holding the runner lock. Returns it, and the statements that
/// release the lock and that say whether it is free (`1` / `t`: free).
async fn other_runner(db: &Db) -> (Conn, String, String) {
    let mut other = Conn::open(db).await;
    let name = db.name().to_string();
    let (lock, unlock, free) = match db.engine() {
        Engine::Maria => (
            format!("SELECT GET_LOCK('godwit_phases.{name}', 0)"),
            format!("SELECT RELEASE_LOCK('godwit_phases.{name}')"),
            format!("SELECT IS_FREE_LOCK('godwit_phases.{name}')"),
        ),
        Engine::Postgres => (
            "SELECT pg_try_advisory_lock(hashtext('godwit_phases.' || current_schema()))".into(),
            "SELECT pg_advisory_unlock(hashtext('godwit_phases.' || current_schema()))".into(),
            "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                .into(),
        ),
    };
    let taken = other.first(&lock).await.unwrap();
    assert_eq!(taken.as_deref(), Some(db.engine().pick("1", "t")));
    (other, unlock, free)
}

/// While `other_runner` holds the lock, a phase command is refused clearly and changes
/// nothing.
async fn refused_while_another_runs(db: &Db, dir: &str) {
    let before = schema(db, "users").await;
    let r = phase(db, "expand", dir).await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(
        r.stderr.contains("another godwit phase command is running"),
        "{}",
        r.stderr
    );
    assert_eq!(schema(db, "users").await, before);
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
}

/// The phase runs (expand, then abort: the schema is back, nothing of godwit's left).
async fn runs_once_alone(db: &Db, dir: &str) {
    let before = schema(db, "users").await;
    phase(db, "expand", dir).await.expect_ok();
    phase(db, "abort", dir).await.expect_ok();
    assert_eq!(schema(db, "users").await, before);
    assert_eq!(db.phase_leftovers().await, Vec::<String>::new());
}

/// Only one runner at a time: while another session holds the runner lock, a phase
/// command is refused clearly and changes nothing; once the other runner releases it,
/// the phase runs.
async fn a_second_runner_is_refused(engine: Engine) {
    let db = setup(engine, "ph_lock").await;
    let (dir, d) = write_file(&db, RENAME);
    let (mut other, unlock, _) = other_runner(&db).await;
    refused_while_another_runs(&db, &d).await;
    other.first(&unlock).await.unwrap();
    runs_once_alone(&db, &d).await;
    drop(other);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// The runner lock belongs to the runner's session: when a runner dies (its session
/// ends without releasing anything), the next phase command runs, with nothing to clean
/// up by hand.
async fn a_dead_runner_s_lock_goes_with_its_session(engine: Engine) {
    let db = setup(engine, "ph_lock_dead").await;
    let (dir, d) = write_file(&db, RENAME);
    let (other, _, free) = other_runner(&db).await;
    refused_while_another_runs(&db, &d).await;
    other.close().await;
    // The server ends the session on its own time: wait until the lock is free.
    let mut watcher = Conn::open(&db).await;
    let mut waited = 0;
    while watcher.first(&free).await.unwrap().as_deref() != Some(engine.pick("1", "t")) {
        waited += 1;
        assert!(waited < 500, "the dead runner's lock was never released");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(watcher);
    runs_once_alone(&db, &d).await;
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// add_index (online) and sql (raw up / down): expand builds them, contract finishes,
/// and abort instead of contract runs the `sql` operation's `down` and removes the index.
async fn add_index_and_sql(engine: Engine) {
    let file = r#"name = "index and audit table"
[[operations]]
type = "add_index"
table = "users"
name = "users_email_idx"
columns = ["email"]
unique = true

[[operations]]
type = "sql"
up = "CREATE TABLE audit (id INT PRIMARY KEY)"
down = "DROP TABLE audit"
"#;
    let audit = match engine {
        Engine::Maria => "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'audit'",
        Engine::Postgres => "SELECT COUNT(*) FROM pg_class WHERE relname = 'audit'",
    };
    let db = setup(engine, "ph_idx").await;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    assert_eq!(one(&db, audit).await, 1);
    phase(&db, "backfill", &d).await.expect_ok();
    phase(&db, "contract", &d).await.expect_ok();
    db.exec("CREATE UNIQUE INDEX twin_email_idx ON twin (email)")
        .await;
    let users = schema(&db, "users").await;
    let twin: Vec<String> = schema(&db, "twin")
        .await
        .into_iter()
        .map(|s| s.replace("twin_email_idx", "users_email_idx"))
        .collect();
    assert_eq!(users, twin);
    if engine == Engine::Postgres {
        assert_eq!(
            one(&db, "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'users_email_idx' AND i.indisvalid").await,
            1
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    db.drop_db().await;

    let db = setup(engine, "ph_idx_abort").await;
    let (dir, d) = write_file(&db, file);
    let original = schema(&db, "users").await;
    phase(&db, "expand", &d).await.expect_ok();
    phase(&db, "abort", &d).await.expect_ok();
    assert_eq!(one(&db, audit).await, 0);
    assert_eq!(schema(&db, "users").await, original);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A backfill batch that waits on an application's row lock longer than
/// `--lock-timeout-seconds` fails as a phase error (exit 40, not a cut-over failure),
/// and a rerun resumes and finishes.
async fn a_backfill_blocked_by_a_row_lock_fails_clearly_and_resumes(engine: Engine) {
    let db = setup(engine, "ph_bflock").await;
    let file = r#"name = "verified flag"
[[operations]]
type = "add_column"
table = "users"
column = { name = "verified", type = "INT" }
up = "1"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    let mut holder = Conn::open(&db).await;
    holder
        .batch(engine.pick(
            "START TRANSACTION; SELECT * FROM users WHERE id = 2000 FOR UPDATE",
            "BEGIN; SELECT * FROM users WHERE id = 2000 FOR UPDATE",
        ))
        .await
        .unwrap();
    let r = godwit(
        &[
            "backfill",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--batch-size",
            "300",
            "--lock-timeout-seconds",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 40, "{}", r.stderr);
    assert!(r.stderr.contains("--lock-timeout-seconds"), "{}", r.stderr);
    holder.batch("ROLLBACK").await.unwrap();
    phase(&db, "backfill", &d).await.expect_ok();
    assert_eq!(
        one(
            &db,
            &format!(
                "SELECT COUNT(*) FROM users WHERE {}",
                engine.differs("verified", "1")
            )
        )
        .await,
        0
    );
    phase(&db, "abort", &d).await.expect_ok();
    assert!(triggers(&db).await.is_empty(), "triggers left");
    // A pooled connection still out would keep the pool (and drop_db) waiting.
    drop(holder);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

/// A backfill batch and an application transaction that lock the same two rows in
/// opposite orders: the application holds row 200, the batch (rows 1..=300, in key
/// order) runs, and then the application asks for row 100. A batch that waited for row
/// 200 while holding row 100 would close a deadlock, and the server would roll one of
/// them back (on MariaDB the lighter one, the application's). The batch skips the row
/// the application holds and updates it alone afterwards, so neither fails: the
/// application's transaction commits without an error, and the backfill finishes with
/// every row filled and the application's write kept.
async fn a_backfill_never_deadlocks_with_the_application(engine: Engine) {
    let db = setup(engine, "ph_bfdead").await;
    let file = r#"name = "verified flag"
[[operations]]
type = "add_column"
table = "users"
column = { name = "verified", type = "INT" }
up = "1"
"#;
    let (dir, d) = write_file(&db, file);
    phase(&db, "expand", &d).await.expect_ok();
    let mut app = Conn::open(&db).await;
    app.batch(engine.pick(
        "START TRANSACTION; UPDATE users SET email = 'app200' WHERE id = 200",
        "BEGIN; UPDATE users SET email = 'app200' WHERE id = 200",
    ))
    .await
    .unwrap();
    let live = support::LiveRun::start(
        &[
            "backfill",
            &d,
            "--url",
            db.url(),
            "--execute",
            "--batch-size",
            "300",
        ],
        &[],
    );
    // The batch has run into row 200 by now.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    app.batch("UPDATE users SET email = 'app100' WHERE id = 100")
        .await
        .unwrap_or_else(|e| panic!("the application's write failed: {e}"));
    app.batch("COMMIT").await.unwrap();
    let r = live.finish_within(120).await;
    r.expect_ok();
    assert!(
        !r.stderr.contains("rolled back by the server"),
        "a backfill transaction was a deadlock's victim:\n{}",
        r.stderr
    );
    assert_eq!(
        one(
            &db,
            &format!(
                "SELECT COUNT(*) FROM users WHERE {}",
                engine.differs("verified", "1")
            )
        )
        .await,
        0,
        "rows left unfilled"
    );
    assert_eq!(
        rows(&db, "users", "email").await[99..200]
            .iter()
            .filter(|r| r.starts_with("app"))
            .count(),
        2,
        "the application's writes"
    );
    phase(&db, "abort", &d).await.expect_ok();
    drop(app);
    std::fs::remove_dir_all(dir).ok();
    db.drop_db().await;
}

support::both::cases!(
    a_backfill_never_deadlocks_with_the_application,
    rename_column_through_every_phase,
    abort_returns_the_original_schema_and_keeps_data,
    a_changed_file_and_a_bad_file_are_refused,
    a_plain_writer_keeps_working_through_every_phase,
    add_column_with_up_then_not_null,
    set_not_null_and_drop_column,
    interrupted_backfill_resumes,
    a_second_runner_is_refused,
    a_dead_runner_s_lock_goes_with_its_session,
    add_index_and_sql,
    a_backfill_blocked_by_a_row_lock_fails_clearly_and_resumes,
);
