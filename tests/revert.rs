//! Lossless revert after the cut-over (issue #11, item 4): `godwit run --revert-window`
//! keeps replaying the new table's changes into the old table after the swap, and
//! `godwit revert` swaps back with every write since the cut-over kept. Every case runs
//! on MariaDB and on PostgreSQL (the case table at the end). A writer runs the whole
//! time and mirrors every write into `orders_mirror` in the same transaction, so the
//! expected content is known whatever the timing; every test ends with the table equal
//! to the mirror and nothing of godwit's left (tables, triggers, slots, publications,
//! the checkpoint table).
mod support;

use support::both::{Db, Engine, MirrorWriter};
use support::{LiveRun, Run};

/// Widens a column and adds one: every row maps back (as long as the values fit).
fn alter(engine: Engine) -> &'static str {
    match engine {
        Engine::Maria => "ADD COLUMN extra INT, MODIFY v BIGINT NOT NULL",
        Engine::Postgres => "ADD COLUMN extra INT, ALTER COLUMN v TYPE BIGINT",
    }
}

fn run_args<'a>(db: &'a Db, alter: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = support::both::run_args(
        db.url(),
        alter,
        &["--chunk-size", "200", "--chunk-time-millis", "10"],
    );
    v.extend_from_slice(extra);
    v
}

async fn revert(db: &Db, extra: &[&str]) -> Run {
    let mut v = vec![
        "revert",
        "--url",
        db.url(),
        "--table",
        "orders",
        "--format",
        "json",
    ];
    v.extend_from_slice(extra);
    support::godwit(&v, &[]).await
}

async fn cleanup(db: &Db, extra: &[&str]) -> Run {
    let mut v = vec!["cleanup", "--url", db.url(), "--table", "orders"];
    v.extend_from_slice(extra);
    support::godwit(&v, &[]).await
}

/// Wait until the window run says the window is open (after its `done`).
async fn window_open(live: &mut LiveRun) -> serde_json::Value {
    live.wait_for(120, |e| e["event"] == "done").await;
    live.wait_for(30, |e| e["event"] == "revert" && e["window"] == "open")
        .await
}

/// The definition of `orders` as the catalog says it: columns, indexes (with their
/// names), constraints, triggers, grants.
async fn definition(db: &Db) -> Vec<String> {
    match db {
        Db::Maria(d) => {
            let mut v = db.columns("orders").await;
            v.extend(
                d.query::<String>(
                    "SELECT CONCAT_WS(' ', INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME) FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                )
                .await,
            );
            v
        }
        Db::Postgres(d) => d.definition("orders").await,
    }
}

/// The tables of the test database.
async fn tables(db: &Db) -> Vec<String> {
    db.strings(match db.engine() {
        Engine::Maria => {
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
        }
        Engine::Postgres => {
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace"
        }
    })
    .await
}

async fn assert_equals_mirror(db: &Db) {
    let (orders, mirror) = db.orders_and_mirror().await;
    assert_eq!(orders.len(), mirror.len(), "row counts differ");
    assert!(orders == mirror, "orders differs from the mirror");
}

async fn assert_nothing_left(db: &Db) {
    let left = db.leftovers().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The original schema, the mirror's rows, nothing of godwit's.
async fn assert_reverted(db: &Db, original: &[String]) {
    assert_eq!(definition(db).await, original, "schema not back");
    assert_equals_mirror(db).await;
    assert_nothing_left(db).await;
}

async fn has_extra(db: &Db) -> bool {
    db.columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra"))
}

async fn let_writes_happen() {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

/// (a) The run is alive during the window: `godwit revert` asks it to hand over, then
/// swaps back.
async fn revert_while_the_window_run_lives(engine: Engine) {
    let db = Db::new(engine, "revert_live").await;
    let original = definition(&db).await;
    let writer = MirrorWriter::start(&db, 11).await;
    let mut live = LiveRun::start(
        &run_args(
            &db,
            alter(engine),
            &["--revert-window", "10m", "--ok-to-drop-table"],
        ),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    assert!(has_extra(&db).await, "the new schema is not live");
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let window = live.finish().await;
    writer.stop().await;
    r.expect_ok();
    assert_eq!(window.code, 0, "the window run: {}", window.stderr);
    assert!(
        window
            .events
            .iter()
            .any(|e| e["event"] == "revert" && e["handed_over"] == true),
        "no handover: {}",
        window.stdout
    );
    assert!(r.event("done").is_some(), "no done: {}", r.stdout);
    assert!(r.states().contains(&"cut_over".to_string()));
    assert!(!tables(&db).await.contains(&old));
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// (b) The run is killed (SIGKILL) during the window; writes go on; `godwit revert`
/// swaps back from its last checkpoint.
async fn revert_after_the_window_run_was_killed(engine: Engine) {
    let db = Db::new(engine, "revert_killed").await;
    let original = definition(&db).await;
    let writer = MirrorWriter::start(&db, 12).await;
    let mut live = LiveRun::start(
        &run_args(&db, alter(engine), &["--revert-window", "10m"]),
        &[],
    );
    window_open(&mut live).await;
    let_writes_happen().await;
    live.signal(9);
    let _ = live.finish().await;
    let_writes_happen().await;
    let status = support::godwit(&["status", "--url", db.url(), "--table", "orders"], &[]).await;
    status.expect_ok();
    assert!(
        status.stdout.contains("revert window") && status.stdout.contains("is open until"),
        "{}",
        status.stdout
    );
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    writer.stop().await;
    r.expect_ok();
    assert!(r.event("done").is_some());
    assert_reverted(&db, &original).await;
    // Nothing to revert any more.
    assert_eq!(revert(&db, &[]).await.code, 37);
    db.drop_db().await;
}

/// Ctrl-C/SIGTERM during the window: the run stops replaying and exits 0, the window
/// stays open (its checkpoint kept); `godwit cleanup --execute --include-old-tables`
/// closes it.
async fn sigterm_keeps_the_window_and_cleanup_closes_it(engine: Engine) {
    let db = Db::new(engine, "revert_term").await;
    let writer = MirrorWriter::start(&db, 13).await;
    let mut live = LiveRun::start(
        &run_args(&db, alter(engine), &["--revert-window", "10m"]),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    let_writes_happen().await;
    live.signal(15);
    let run = live.finish().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let stopped = run
        .events
        .iter()
        .find(|e| e["event"] == "revert" && e["stopped"] == true)
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(stopped["message"]
        .as_str()
        .unwrap()
        .contains("godwit cleanup"));
    let now = tables(&db).await;
    assert!(now.contains(&old), "{now:?}");
    assert!(now.contains(&"_godwit_checkpoint".to_string()), "{now:?}");
    writer.stop().await;
    cleanup(&db, &["--execute", "--include-old-tables"])
        .await
        .expect_ok();
    assert_eq!(revert(&db, &[]).await.code, 37);
    assert!(has_extra(&db).await);
    assert_equals_mirror(&db).await;
    assert_nothing_left(&db).await;
    db.drop_db().await;
}

/// An open transaction that wrote `orders` (the cut-over's lock waits for it), until
/// dropped or rolled back.
enum Blocker {
    Maria(mysql_async::Conn),
    Postgres(tokio_postgres::Client),
}

impl Blocker {
    async fn start(db: &Db) -> Blocker {
        // No row: the table's lock (MariaDB: its metadata lock), no row lock the writer
        // could wait for.
        let stmts = ["UPDATE orders SET note = note WHERE 1 = 0"];
        match db {
            Db::Maria(d) => {
                use mysql_async::prelude::Queryable;
                let mut c = d.conn().await;
                c.query_drop("START TRANSACTION").await.unwrap();
                for s in stmts {
                    c.query_drop(s).await.unwrap();
                }
                Blocker::Maria(c)
            }
            Db::Postgres(d) => {
                let c = d.conn().await;
                c.batch_execute("BEGIN").await.unwrap();
                for s in stmts {
                    c.batch_execute(s).await.unwrap();
                }
                Blocker::Postgres(c)
            }
        }
    }

    async fn rollback(self) {
        match self {
            Blocker::Maria(mut c) => {
                use mysql_async::prelude::Queryable;
                c.query_drop("ROLLBACK").await.unwrap();
            }
            Blocker::Postgres(c) => c.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}

/// A revert whose cut-over cannot take its lock (a transaction holds the table) fails
/// with both tables as they were and the window kept; the next `godwit revert` works.
async fn a_failed_revert_keeps_the_window(engine: Engine) {
    let db = Db::new(engine, "revert_retry").await;
    let original = definition(&db).await;
    let writer = MirrorWriter::start(&db, 14).await;
    let mut live = LiveRun::start(
        &run_args(&db, alter(engine), &["--revert-window", "10m"]),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    let_writes_happen().await;
    let blocker = Blocker::start(&db).await;
    let r = revert(
        &db,
        &[
            "--cut-over-retries",
            "1",
            "--cut-over-lock-timeout-seconds",
            "1",
        ],
    )
    .await;
    assert_eq!(r.code, 32, "{}\n{}", r.stdout, r.stderr);
    let window = live.finish().await;
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert!(has_extra(&db).await);
    // The old table (MariaDB: taken over under the shadow's name) is no leftover:
    // cleanup without --include-old-tables would leave it.
    let kept = match engine {
        Engine::Maria => "orders_godwit_new".to_string(),
        Engine::Postgres => old,
    };
    let listed = cleanup(&db, &[]).await;
    listed.expect_ok();
    assert!(!listed.stdout.contains(&kept), "{}", listed.stdout);
    let listed = cleanup(&db, &["--include-old-tables"]).await;
    assert!(listed.stdout.contains(&kept), "{}", listed.stdout);
    assert!(tables(&db).await.contains(&kept));
    blocker.rollback().await;
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    writer.stop().await;
    r.expect_ok();
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// A renamed column maps back to its old name; writes made after the swap under the new
/// name are in the original after the revert.
async fn a_renamed_column_maps_back(engine: Engine) {
    let db = Db::new(engine, "revert_rename").await;
    let original = definition(&db).await;
    db.exec("CREATE TABLE orders_mirror AS SELECT * FROM orders")
        .await;
    let change = match engine {
        Engine::Maria => {
            "CHANGE note memo VARCHAR(40) NULL, ADD COLUMN extra INT NOT NULL DEFAULT 5"
        }
        Engine::Postgres => "RENAME COLUMN note TO memo",
    };
    let mut live = LiveRun::start(&run_args(&db, change, &["--revert-window", "10m"]), &[]);
    window_open(&mut live).await;
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("memo")));
    for t in ["orders", "orders_mirror"] {
        let col = if t == "orders" { "memo" } else { "note" };
        db.exec(&format!(
            "UPDATE {t} SET {col} = 'after the swap' WHERE id = 10"
        ))
        .await;
        db.exec(&format!("DELETE FROM {t} WHERE id = 11")).await;
        db.exec(&format!(
            "INSERT INTO {t} (id, v, {col}) VALUES (5000000, 1, 'new')"
        ))
        .await;
        db.exec(&format!("UPDATE {t} SET id = 5000001 WHERE id = 12"))
            .await;
    }
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let window = live.finish().await;
    r.expect_ok();
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert_reverted(&db, &original).await;
    db.drop_db().await;
}

/// (c) A change that drops a column cannot be reverted: refused before the copy.
async fn a_lossy_change_is_refused(engine: Engine) {
    let db = Db::new(engine, "revert_lossy").await;
    let before = (
        definition(&db).await,
        tables(&db).await,
        db.snapshot().await,
    );
    let r = support::godwit(
        &run_args(&db, "DROP COLUMN note", &["--revert-window", "30m"]),
        &[],
    )
    .await;
    assert_eq!(r.code, 38, "{}\n{}", r.stdout, r.stderr);
    let err = r.event("error").expect("error event");
    assert!(err["message"].as_str().unwrap().contains("`note`"), "{err}");
    let after = (
        definition(&db).await,
        tables(&db).await,
        db.snapshot().await,
    );
    assert_eq!(after, before);
    assert_nothing_left(&db).await;
    db.drop_db().await;
}

/// PostgreSQL: a type the new values cannot be converted back from (no assignment cast
/// from boolean to integer) is refused the same way, before the copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_type_that_cannot_convert_back_is_refused_postgres() {
    let db = Db::new(Engine::Postgres, "revert_cast").await;
    let before = (
        definition(&db).await,
        tables(&db).await,
        db.snapshot().await,
    );
    let r = support::godwit(
        &run_args(
            &db,
            "ALTER COLUMN v TYPE boolean USING v <> 0",
            &["--revert-window", "30m"],
        ),
        &[],
    )
    .await;
    assert_eq!(r.code, 38, "{}\n{}", r.stdout, r.stderr);
    let err = r.event("error").expect("error event");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot be reverted") && msg.contains("boolean"),
        "{err}"
    );
    let after = (
        definition(&db).await,
        tables(&db).await,
        db.snapshot().await,
    );
    assert_eq!(after, before);
    assert_nothing_left(&db).await;
    db.drop_db().await;
}

/// (d) The window expires: the old table goes (--ok-to-drop-table), then the stream's
/// objects and the checkpoint.
async fn the_window_expires_and_cleans_up(engine: Engine) {
    let db = Db::new(engine, "revert_expire").await;
    let writer = MirrorWriter::start(&db, 15).await;
    let mut live = LiveRun::start(
        &run_args(
            &db,
            alter(engine),
            &["--revert-window", "4s", "--ok-to-drop-table"],
        ),
        &[],
    );
    let open = window_open(&mut live).await;
    let old = open["old_table"].as_str().unwrap().to_string();
    // The old table exists during the window, even with --ok-to-drop-table.
    assert!(tables(&db).await.contains(&old));
    let run = live.finish().await;
    writer.stop().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.events
            .iter()
            .any(|e| e["event"] == "revert" && e["window"] == "closed" && e["reason"] == "expired"),
        "{}",
        run.stdout
    );
    assert!(has_extra(&db).await);
    assert_equals_mirror(&db).await;
    assert_nothing_left(&db).await;
    let r = revert(&db, &[]).await;
    assert_eq!(r.code, 37, "{}", r.stdout);
    db.drop_db().await;
}

/// (e) A write after the swap that the old table cannot hold (a value of the widened
/// column too large for the old type): the window closes with a message naming the
/// problem; a revert is refused afterwards.
async fn a_write_that_cannot_map_back_closes_the_window(engine: Engine) {
    let db = Db::new(engine, "revert_nomap").await;
    let writer = MirrorWriter::start(&db, 16).await;
    db.exec(match engine {
        Engine::Maria => "ALTER TABLE orders_mirror MODIFY v BIGINT NOT NULL",
        Engine::Postgres => "ALTER TABLE orders_mirror ALTER COLUMN v TYPE BIGINT",
    })
    .await;
    let mut live = LiveRun::start(
        &run_args(
            &db,
            alter(engine),
            &["--revert-window", "10m", "--ok-to-drop-table"],
        ),
        &[],
    );
    window_open(&mut live).await;
    let_writes_happen().await;
    // Fits BIGINT, not the original INT.
    for t in ["orders", "orders_mirror"] {
        db.exec(&format!(
            "INSERT INTO {t} (id, v, note) VALUES (900000000, 10000000000, 'big')"
        ))
        .await;
    }
    let run = live.finish().await;
    writer.stop().await;
    assert_eq!(run.code, 38, "{}\n{}", run.stdout, run.stderr);
    let closed = run
        .events
        .iter()
        .find(|e| e["event"] == "revert" && e["window"] == "closed")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(closed["reason"], "data_error");
    assert!(
        closed["message"]
            .as_str()
            .unwrap()
            .contains("cannot be stored in the old table"),
        "{closed}"
    );
    let r = revert(&db, &[]).await;
    assert_eq!(r.code, 37, "{}", r.stdout);
    assert_equals_mirror(&db).await;
    assert_nothing_left(&db).await;
    db.drop_db().await;
}

/// PostgreSQL: what the swap moves to the new table by hand (indexes' names, triggers,
/// views, the application's publications, a self-referencing foreign key, row-level
/// security policies, the identity column's sequence) is the original's again after a revert, and the old table's
/// triggers do not fire on the window's replay (an audit trigger on the table and on
/// the mirror counts the application's inserts: equal counts).
#[tokio::test(flavor = "multi_thread")]
async fn a_revert_gives_back_what_the_swap_moved_postgres() {
    let db = Db::new(Engine::Postgres, "revert_deps").await;
    db.exec(
        "ALTER TABLE orders ADD COLUMN parent BIGINT REFERENCES orders (id) ON DELETE SET NULL; \
         ALTER TABLE orders ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY; \
         CREATE INDEX orders_v_custom ON orders (v); \
         CREATE TABLE audit (t text NOT NULL, id bigint NOT NULL); \
         CREATE FUNCTION audit_insert() RETURNS trigger LANGUAGE plpgsql AS \
           $$BEGIN INSERT INTO audit VALUES (TG_TABLE_NAME, NEW.id); RETURN NEW; END$$; \
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_insert(); \
         CREATE VIEW orders_view AS SELECT id, note FROM orders; \
         CREATE PUBLICATION app_pub FOR TABLE orders; \
         CREATE POLICY orders_all ON orders USING (true); \
         ALTER TABLE orders ENABLE ROW LEVEL SECURITY",
    )
    .await;
    let original = definition(&db).await;
    let writer = MirrorWriter::start(&db, 17).await;
    db.exec(
        "CREATE TRIGGER mirror_audit AFTER INSERT ON orders_mirror FOR EACH ROW EXECUTE FUNCTION audit_insert()",
    )
    .await;
    let mut live = LiveRun::start(
        &run_args(
            &db,
            alter(Engine::Postgres),
            &["--revert-window", "10m", "--ok-to-drop-table"],
        ),
        &[],
    );
    window_open(&mut live).await;
    let_writes_happen().await;
    let r = revert(&db, &["--ok-to-drop-table"]).await;
    let window = live.finish().await;
    writer.stop().await;
    r.expect_ok();
    assert_eq!(window.code, 0, "the window run: {}", window.stderr);
    assert_reverted(&db, &original).await;
    let counts = db
        .strings("SELECT t || ' ' || count(*) FROM audit GROUP BY t ORDER BY t")
        .await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    let n = |i: usize| counts[i].split(' ').nth(1).unwrap().to_string();
    assert_eq!(n(0), n(1), "audit rows: {counts:?}");
    assert_eq!(
        db.strings("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'app_pub'")
            .await,
        vec!["orders".to_string()]
    );
    assert_eq!(
        db.strings("SELECT count(*)::text FROM orders_view").await,
        db.strings("SELECT count(*)::text FROM orders").await
    );
    db.drop_db().await;
}

macro_rules! cases {
    ($($name:ident: $case:ident, $engine:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            $case($engine).await;
        }
    )*};
}

cases! {
    revert_after_a_cut_over_under_writes_equals_the_mirror_mariadb: revert_while_the_window_run_lives, Engine::Maria;
    revert_after_a_cut_over_under_writes_equals_the_mirror_postgres: revert_while_the_window_run_lives, Engine::Postgres;
    revert_after_the_window_run_was_killed_equals_the_mirror_mariadb: revert_after_the_window_run_was_killed, Engine::Maria;
    revert_after_the_window_run_was_killed_equals_the_mirror_postgres: revert_after_the_window_run_was_killed, Engine::Postgres;
    sigterm_keeps_the_window_and_cleanup_closes_it_mariadb: sigterm_keeps_the_window_and_cleanup_closes_it, Engine::Maria;
    sigterm_keeps_the_window_and_cleanup_closes_it_postgres: sigterm_keeps_the_window_and_cleanup_closes_it, Engine::Postgres;
    a_failed_revert_keeps_the_window_mariadb: a_failed_revert_keeps_the_window, Engine::Maria;
    a_failed_revert_keeps_the_window_postgres: a_failed_revert_keeps_the_window, Engine::Postgres;
    a_renamed_column_maps_back_mariadb: a_renamed_column_maps_back, Engine::Maria;
    a_renamed_column_maps_back_postgres: a_renamed_column_maps_back, Engine::Postgres;
    a_lossy_change_is_refused_with_a_revert_window_mariadb: a_lossy_change_is_refused, Engine::Maria;
    a_lossy_change_is_refused_with_a_revert_window_postgres: a_lossy_change_is_refused, Engine::Postgres;
    the_window_expires_and_cleans_up_mariadb: the_window_expires_and_cleans_up, Engine::Maria;
    the_window_expires_and_cleans_up_postgres: the_window_expires_and_cleans_up, Engine::Postgres;
    a_write_that_cannot_map_back_closes_the_window_mariadb: a_write_that_cannot_map_back_closes_the_window, Engine::Maria;
    a_write_that_cannot_map_back_closes_the_window_postgres: a_write_that_cannot_map_back_closes_the_window, Engine::Postgres;
}
