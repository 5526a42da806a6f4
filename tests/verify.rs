//! Verification before the cut-over, and `godwit verify`, on both engines with a writer
//! running (issue #11, item 3):
//! - differences planted behind godwit's back while it copies (a shadow row changed; on
//!   MariaDB also an original row changed with `sql_log_bin=0`, which the change stream
//!   never sees) are found, re-copied, and the result equals the original;
//! - a difference that comes back after every repair stops the run before the swap:
//!   exit 36, the original unchanged, nothing of godwit's left;
//! - `godwit verify --against` says whether two tables hold the same rows (exit 0 / 36),
//!   also through a type change;
//! - after the verification, the new table's planner statistics are refreshed (ANALYZE)
//!   before the swap, and `--skip-analyze` leaves that out.
mod support;

use support::both::{Db, Engine, Writer, ROWS, WRITER_IDS};
use support::{godwit, LiveRun, Run};

fn shadow(engine: Engine) -> &'static str {
    match engine {
        Engine::Maria => "orders_godwit_new",
        Engine::Postgres => "_godwit_new_orders",
    }
}

fn start(db: &Db) -> LiveRun {
    LiveRun::start(
        &[
            "run",
            "--url",
            db.url(),
            "--table",
            "orders",
            "--alter",
            "ADD COLUMN extra INT",
            "--execute",
            "--format",
            "json",
            "--chunk-size",
            "100",
            "--max-rows-per-second",
            "1000",
            "--ok-to-drop-table",
        ],
        &[],
    )
}

/// Wait until the shadow holds the rows `ids` (the copy went past them).
async fn wait_copied(db: &Db, ids: &str) {
    let want = ids.split(',').count().to_string();
    let sql = format!(
        "SELECT CAST(COUNT(*) AS CHAR) FROM {} WHERE id IN ({ids})",
        shadow(db.engine())
    );
    for _ in 0..400 {
        let here = match db.engine() {
            Engine::Maria => "DATABASE()",
            Engine::Postgres => "current_schema()",
        };
        let exists = db
            .strings(&format!(
                "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.tables WHERE table_schema = {here} AND table_name = '{}'",
                shadow(db.engine())
            ))
            .await;
        if exists[0] == "1" && db.strings(&sql).await[0] == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the copy did not reach ids {ids}");
}

/// The rows below the writer's ids, the writer's ids, and no leftovers.
async fn assert_result(db: &Db, want: &[String], inserted: &[i64]) {
    assert_eq!(&db.rows(WRITER_IDS).await, want, "rows differ");
    assert_eq!(
        db.count(&format!("id > {WRITER_IDS}")).await,
        inserted.len(),
        "the writer's rows"
    );
    assert!(
        db.leftovers().await.is_empty(),
        "{:?}",
        db.leftovers().await
    );
}

async fn planted_differences_are_repaired(engine: Engine) {
    let db = Db::new(engine, "verify_fix").await;
    let mut want = db.rows(WRITER_IDS).await;
    let writer = Writer::start(engine, db.url().to_string());
    let live = start(&db);
    wait_copied(&db, "1,2,3").await;
    db.exec(&format!(
        "UPDATE {} SET v = -1 WHERE id = 1",
        shadow(engine)
    ))
    .await;
    db.exec(&format!("DELETE FROM {} WHERE id = 3", shadow(engine)))
        .await;
    if engine == Engine::Maria {
        // Changed in the original without a binlog event: the stream never sees it.
        let Db::Maria(m) = &db else { unreachable!() };
        let mut c = m.conn().await;
        use mysql_async::prelude::Queryable;
        c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
        c.query_drop("UPDATE orders SET note = 'hidden' WHERE id = 2")
            .await
            .unwrap();
        want[1] = "2|14|hidden".into();
    }
    let run = live.finish().await;
    let inserted = writer.stop().await;
    run.expect_ok();
    let v = run.event("verify").expect("a verify event");
    assert!(v["repaired_ranges"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["rows"].as_u64().unwrap() >= ROWS as u64, "{v}");
    assert_eq!(v["converted_unconfirmed"], false, "{v}");
    // The result holds the original's rows (with the hidden change), with the new column.
    assert_result(&db, &want, &inserted).await;
    assert!(db
        .columns("orders")
        .await
        .iter()
        .any(|c| c.starts_with("extra ")));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_differences_are_repaired_mariadb() {
    planted_differences_are_repaired(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_differences_are_repaired_postgres() {
    planted_differences_are_repaired(Engine::Postgres).await;
}

async fn a_difference_that_stays_stops_the_run(engine: Engine) {
    let db = Db::new(engine, "verify_stop").await;
    let want = db.rows(WRITER_IDS).await;
    let columns = db.columns("orders").await;
    let writer = Writer::start(engine, db.url().to_string());
    let live = start(&db);
    wait_copied(&db, "1").await;
    // Whatever godwit writes for id 1, the shadow keeps -1.
    let s = shadow(engine);
    match engine {
        Engine::Maria => {
            db.exec(&format!(
                "CREATE TRIGGER corrupt BEFORE INSERT ON {s} FOR EACH ROW SET NEW.v = IF(NEW.id = 1, -1, NEW.v)"
            ))
            .await
        }
        Engine::Postgres => {
            db.exec("CREATE FUNCTION corrupt() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.id = 1 THEN NEW.v := -1; END IF; RETURN NEW; END$$").await;
            db.exec(&format!(
                "CREATE TRIGGER corrupt BEFORE INSERT ON {s} FOR EACH ROW EXECUTE FUNCTION corrupt()"
            ))
            .await
        }
    }
    db.exec(&format!("UPDATE {s} SET v = -1 WHERE id = 1"))
        .await;
    let run: Run = live.finish().await;
    let inserted = writer.stop().await;
    assert_eq!(run.code, 36, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("the original table is unchanged")
            || run.stdout.contains("the original table is unchanged"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.states().contains(&"cut_over".to_string()));
    assert_eq!(db.columns("orders").await, columns, "the original changed");
    assert_result(&db, &want, &inserted).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_difference_that_stays_stops_the_run_mariadb() {
    a_difference_that_stays_stops_the_run(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_difference_that_stays_stops_the_run_postgres() {
    a_difference_that_stays_stops_the_run(Engine::Postgres).await;
}

async fn verify_command(engine: Engine) {
    let db = Db::new(engine, "verify_cmd").await;
    match engine {
        Engine::Maria => {
            db.exec("CREATE TABLE copy LIKE orders").await;
            db.exec(
                "CREATE TABLE wide (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(80))",
            )
            .await;
        }
        Engine::Postgres => {
            db.exec("CREATE TABLE copy (LIKE orders INCLUDING ALL)")
                .await;
            db.exec(
                "CREATE TABLE wide (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(80))",
            )
            .await;
        }
    }
    db.exec("INSERT INTO copy SELECT * FROM orders").await;
    db.exec("INSERT INTO wide SELECT * FROM orders").await;
    let verify = |against: &'static str| {
        let url = db.url().to_string();
        async move {
            godwit(
                &[
                    "verify",
                    "--url",
                    &url,
                    "--table",
                    "orders",
                    "--against",
                    against,
                    "--format",
                    "json",
                ],
                &[],
            )
            .await
        }
    };
    let r = verify("copy").await;
    r.expect_ok();
    let e = r.event("verify").expect("verify event");
    assert_eq!(e["same"], true, "{e}");
    assert_eq!(e["rows"], ROWS, "{e}");
    // Columns of another type are compared through the conversion.
    verify("wide").await.expect_ok();
    // Two rows that trade a value (all lengths equal: a plain XOR of CRC32s cancels).
    db.exec("UPDATE copy SET v = CASE id WHEN 11 THEN 91 ELSE 77 END WHERE id IN (11, 13)")
        .await;
    let r = verify("copy").await;
    assert_eq!(r.code, 36, "{}\n{}", r.stdout, r.stderr);
    db.exec("UPDATE copy SET v = id * 7 WHERE id IN (11, 13)")
        .await;
    // A NULL and an empty string.
    db.exec("UPDATE copy SET note = NULL WHERE id = 20").await;
    db.exec("UPDATE orders SET note = '' WHERE id = 20").await;
    assert_eq!(verify("copy").await.code, 36);
    db.exec("UPDATE copy SET note = 'row' WHERE id = 20").await;
    db.exec("UPDATE orders SET note = 'row' WHERE id = 20")
        .await;
    verify("copy").await.expect_ok();
    db.exec("UPDATE copy SET note = 'changed' WHERE id = 2500")
        .await;
    let r = verify("copy").await;
    assert_eq!(r.code, 36, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.event("verify").unwrap()["differing"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    db.exec("DELETE FROM wide WHERE id = 7").await;
    assert_eq!(verify("wide").await.code, 36);
    // Nothing was changed by verifying.
    assert_eq!(db.count("id > 0").await, ROWS as usize);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_command_mariadb() {
    verify_command(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_command_postgres() {
    verify_command(Engine::Postgres).await;
}

/// More rows than one verification chunk (20,000), with sparse keys (gaps of a thousand
/// after the first rows), so that chunk bounds come from the key's range and widen: a row
/// changed, and one missing, deep in the table are found, each in one chunk; the equal
/// copy is equal.
async fn verify_many_chunks(engine: Engine) {
    let db = Db::new(engine, "verify_chunks").await;
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await;
    db.exec(match engine {
        Engine::Maria => "INSERT INTO big SELECT IF(seq <= 30000, seq, seq * 1000), seq FROM seq_1_to_50000",
        Engine::Postgres => "INSERT INTO big SELECT CASE WHEN i <= 30000 THEN i ELSE i * 1000 END, i FROM generate_series(1, 50000) i",
    })
    .await;
    db.exec("CREATE TABLE big2 (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await;
    db.exec("INSERT INTO big2 SELECT * FROM big").await;
    let verify = || {
        let url = db.url().to_string();
        async move {
            godwit(
                &[
                    "verify",
                    "--url",
                    &url,
                    "--table",
                    "big",
                    "--against",
                    "big2",
                    "--format",
                    "json",
                ],
                &[],
            )
            .await
        }
    };
    let r = verify().await;
    r.expect_ok();
    let e = r.event("verify").expect("verify event");
    assert_eq!(e["rows"], 50000, "{e}");
    assert!(e["chunks"].as_u64().unwrap() >= 3, "{e}");
    db.exec("UPDATE big2 SET v = -1 WHERE id = 25000").await;
    db.exec("DELETE FROM big2 WHERE id = 45000000").await;
    let r = verify().await;
    assert_eq!(r.code, 36, "{}\n{}", r.stdout, r.stderr);
    let e = r.event("verify").unwrap();
    assert_eq!(e["differing"].as_array().unwrap().len(), 2, "{e}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_many_chunks_mariadb() {
    verify_many_chunks(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_many_chunks_postgres() {
    verify_many_chunks(Engine::Postgres).await;
}

/// Every common column type is compared by value: in a copy equal to the original, a
/// value changed in any one column, values of one column traded between two rows, or a
/// value made NULL, each makes `godwit verify` find a difference (exit 36).
async fn every_type_is_compared(engine: Engine) {
    let db = Db::new(engine, "verify_types").await;
    let columns: &[&str] = match engine {
        Engine::Maria => {
            db.exec(
                "CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, bu BIGINT UNSIGNED, \
                 de DECIMAL(20,6), fl FLOAT, db DOUBLE, vc VARCHAR(30), ch CHAR(5), \
                 vb VARBINARY(16), bl BLOB, tx TEXT, dt DATE, dm DATETIME(6), \
                 ts TIMESTAMP(6) NULL, tm TIME(3), yr YEAR, en ENUM('a','b','c'), \
                 st SET('x','y','z'), bt BIT(8), js JSON)",
            )
            .await;
            db.exec(
                "INSERT INTO t VALUES \
                 (1, -1, 18446744073709551615, 1.5, 1.25, 1e300, 'one', 'a', x'01', x'0102', 'tx1', '2020-01-01', '2020-01-01 00:00:00.000001', '2021-01-01 00:00:00.5', '01:02:03.004', 2001, 'a', 'x,y', b'00000001', '{\"a\":1}'), \
                 (2, 2, 2, -2.000001, 2.5, -2e-300, 'two', 'b', x'02', x'0203', 'tx2', '2020-01-02', '2020-01-02 00:00:00.000002', '2021-01-02 00:00:00.25', '-01:02:03.005', 2002, 'b', 'z', b'10000000', '[1,2]'), \
                 (3, 3, 3, 3, 3, 3, 'three', 'c', x'03', x'03', 'tx3', '2020-01-03', '2020-01-03 00:00:00', '2021-01-03 00:00:00', '00:00:00', 2003, 'c', '', b'00000011', 'null')",
            )
            .await;
            db.exec("CREATE TABLE u LIKE t").await;
            &[
                "ti", "bu", "de", "fl", "db", "vc", "ch", "vb", "bl", "tx", "dt", "dm", "ts", "tm",
                "yr", "en", "st", "bt", "js",
            ]
        }
        Engine::Postgres => {
            db.exec(
                "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
                 CREATE DOMAIN posint AS int CHECK (VALUE > 0); \
                 CREATE TYPE pair AS (x int, y text); \
                 CREATE TABLE t (id int PRIMARY KEY, i2 int2, i8 int8, num numeric(20,6), \
                 r real, tx text, vc varchar(30), ch char(5), bin bytea, flag boolean, \
                 dt date, ts timestamp(6), tstz timestamptz, iv interval, u uuid, j json, \
                 jb jsonb, arr int[], jarr json[], m mood, p posint, pt point, rng int4range, \
                 ip inet, cd cidr, pr pair, mon money, bt bit(8))",
            )
            .await;
            db.exec(
                "INSERT INTO t SELECT i, i::int2, i::int8 * 1000000007, i / 7.0, i / 3.0, 'tëxt ' || i, \
                 'v' || i, 'c' || i, decode(md5(i::text), 'hex'), i % 2 = 0, date '2020-01-01' + i, \
                 timestamp '2020-01-01 00:00:00.123456' + i * interval '1 minute', \
                 timestamptz '2020-01-01 00:00:00+03' + i * interval '1 second', i * interval '1 hour', \
                 md5(i::text)::uuid, json_build_object('i', i), jsonb_build_object('k', i), \
                 ARRAY[i, NULL], ARRAY[json_build_object('e', i)], (ARRAY['sad','ok','happy'])[i]::mood, \
                 i, point(i, -i), int4range(i, i + 10), ('10.0.0.' || i)::inet, ('10.' || i || '.0.0/16')::cidr, \
                 ROW(i, 'y' || i)::pair, i * 1.5, (i * 37)::bit(8) FROM generate_series(1, 3) i",
            )
            .await;
            db.exec("CREATE TABLE u (LIKE t INCLUDING ALL)").await;
            &[
                "i2", "i8", "num", "r", "tx", "vc", "ch", "bin", "flag", "dt", "ts", "tstz", "iv",
                "u", "j", "jb", "arr", "jarr", "m", "p", "pt", "rng", "ip", "cd", "pr", "mon",
                "bt",
            ]
        }
    };
    db.exec("INSERT INTO u SELECT * FROM t").await;
    let verify = || {
        let url = db.url().to_string();
        async move {
            godwit(
                &["verify", "--url", &url, "--table", "t", "--against", "u"],
                &[],
            )
            .await
        }
    };
    verify().await.expect_ok();
    for c in columns {
        let restore = format!("UPDATE u SET {c} = (SELECT {c} FROM t WHERE t.id = u.id)");
        // Row 1 takes row 2's value.
        db.exec(&format!(
            "UPDATE u SET {c} = (SELECT {c} FROM t WHERE id = 2) WHERE id = 1"
        ))
        .await;
        let r = verify().await;
        assert_eq!(r.code, 36, "{c} changed: {}\n{}", r.stdout, r.stderr);
        // And row 2 row 1's: the same values, in other rows.
        db.exec(&format!(
            "UPDATE u SET {c} = (SELECT {c} FROM t WHERE id = 1) WHERE id = 2"
        ))
        .await;
        let r = verify().await;
        assert_eq!(r.code, 36, "{c} traded: {}\n{}", r.stdout, r.stderr);
        db.exec(&restore).await;
        db.exec(&format!("UPDATE u SET {c} = NULL WHERE id = 3"))
            .await;
        let r = verify().await;
        assert_eq!(r.code, 36, "{c} made NULL: {}\n{}", r.stdout, r.stderr);
        db.exec(&restore).await;
    }
    verify().await.expect_ok();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_is_compared_mariadb() {
    every_type_is_compared(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_is_compared_postgres() {
    every_type_is_compared(Engine::Postgres).await;
}

/// The new table is analyzed before the swap: an `analyze` event without an error, and on
/// PostgreSQL column statistics for the table the application now uses (a table filled
/// by bulk inserts has none until autovacuum comes around). `--skip-analyze` skips it.
async fn the_new_table_is_analyzed_before_the_swap(engine: Engine) {
    let db = Db::new(engine, "analyze").await;
    let before = db.rows(WRITER_IDS).await;
    let run = |alter: &'static str, extra: &'static str| {
        let url = db.url().to_string();
        async move {
            let mut extras = vec!["--ok-to-drop-table"];
            if !extra.is_empty() {
                extras.push(extra);
            }
            godwit(&support::both::run_args(&url, alter, &extras), &[]).await
        }
    };
    let r = run("ADD COLUMN extra INT", "").await;
    r.expect_ok();
    let e = r.event("analyze").expect("an analyze event");
    assert!(e.get("error").is_none(), "{e}");
    assert!(e["table"].as_str().unwrap().contains("godwit"), "{e}");
    if engine == Engine::Postgres {
        let stats = db
            .strings("SELECT count(*)::text FROM pg_stats WHERE schemaname = 'public' AND tablename = 'orders'")
            .await;
        assert_ne!(
            stats,
            vec!["0".to_string()],
            "no column statistics after the run"
        );
    }
    let r = run("ADD COLUMN extra2 INT", "--skip-analyze").await;
    r.expect_ok();
    assert!(r.event("analyze").is_none(), "analyzed with --skip-analyze");
    assert_eq!(db.rows(WRITER_IDS).await, before);
    assert!(
        db.leftovers().await.is_empty(),
        "{:?}",
        db.leftovers().await
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_new_table_is_analyzed_before_the_swap_mariadb() {
    the_new_table_is_analyzed_before_the_swap(Engine::Maria).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_new_table_is_analyzed_before_the_swap_postgres() {
    the_new_table_is_analyzed_before_the_swap(Engine::Postgres).await;
}
