//! Every common column type survives copy and replay exactly.
mod support;

use support::postgres::TestDb;

const SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE t (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    s serial,
    i2 int2, i4 int4, i8 int8,
    num numeric(20,6), r real, d double precision,
    tx text, vc varchar(30), bin bytea, flag boolean,
    dt date, ts timestamp(6), tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, arr int[], tarr text[],
    m mood, p posint,
    g int GENERATED ALWAYS AS (i4 * 2) STORED,
    big text, bigbin bytea
);
INSERT INTO t (i2, i4, i8, num, r, d, tx, vc, bin, flag, dt, ts, tstz, iv, u, j, jb, arr, tarr, m, p, big, bigbin)
SELECT i::int2, i, i::int8 * 1000000007, i / 7.0, i / 3.0, i / 7.0, 'tëxt ' || i, 'v' || i,
       decode(md5(i::text), 'hex'), i % 2 = 0, date '2020-01-01' + i, timestamp '2020-01-01 00:00:00.123456' + i * interval '1 minute',
       timestamptz '2020-01-01 00:00:00+03' + i * interval '1 second', i * interval '1 hour 3 seconds',
       md5(i::text)::uuid, json_build_object('i', i, 'a', json_build_array(1, 2)), jsonb_build_object('k', i, 'n', NULL),
       ARRAY[i, i + 1, NULL], ARRAY['a', 'b,c', NULL], (ARRAY['sad','ok','happy'])[1 + i % 3]::mood, i,
       CASE WHEN i % 50 = 0 THEN (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g) END,
       CASE WHEN i % 50 = 0 THEN (SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 8000) g) END
FROM generate_series(1, 3000) i;
INSERT INTO t (i4) VALUES (NULL);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn all_types_copy_exactly() {
    let db = TestDb::new("pg_types").await;
    db.exec(SETUP).await;
    // Large values are stored out of line (TOAST: far above the 2 kB threshold).
    assert_eq!(
        db.one_i64("SELECT max(octet_length(big))::int8 FROM t")
            .await,
        128_000
    );
    assert!(
        db.one_i64("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 't'")
            .await
            > 100_000
    );
    let alter = "ADD COLUMN extra text DEFAULT 'e'";
    db.native_twin("t", "expected", alter).await;
    let run = db.migrate("t", alter, &["--chunk-size", "500"]).await;
    run.expect_ok();
    db.assert_same("t", "expected", "id").await;
    // Identity and serial keep counting after the largest id, without reuse.
    let next: i64 = db
        .one_i64("INSERT INTO t (i4) VALUES (1) RETURNING (id::int8 * 1000000 + s)")
        .await;
    assert!(next / 1_000_000 > 3001 && next % 1_000_000 > 3001, "{next}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_types_round_trip_through_the_stream() {
    // Non-integer keys: changes during the copy are found again by their text form.
    let db = TestDb::new("pg_keytypes").await;
    db.exec(
        "CREATE TABLE k (u uuid, ts timestamptz, n numeric(10,3), tx text COLLATE \"C\", v int, PRIMARY KEY (u, ts, n, tx)); \
         INSERT INTO k SELECT md5(i::text)::uuid, timestamptz '2021-06-01 12:00:00.5+02' + i * interval '1 day', i / 8.0, 'k ' || i, i FROM generate_series(1, 2000) i;",
    )
    .await;
    let flag = std::env::temp_dir().join(format!("{}.postpone", db.name));
    std::fs::write(&flag, "").unwrap();
    let child = support::spawn_godwit(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "k",
            "--alter",
            "ADD COLUMN w int",
            "--execute",
            "--ok-to-drop-table",
            "--format",
            "json",
            "--postpone-cut-over-flag-file",
            flag.to_str().unwrap(),
        ],
        &[],
    );
    // Wait until the copy is done and the run waits for the flag, then change rows.
    for _ in 0..600 {
        if db
            .one_i64("SELECT count(*) FROM pg_class WHERE relname = '_godwit_new_k'")
            .await
            == 1
            && db.one_i64("SELECT count(*) FROM _godwit_new_k").await == 2000
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.exec(
        "UPDATE k SET v = -v WHERE v % 3 = 0; DELETE FROM k WHERE v % 7 = 0; \
         UPDATE k SET ts = ts + interval '1 microsecond', tx = tx || 'é' WHERE v % 11 = 0; \
         INSERT INTO k VALUES (gen_random_uuid(), now(), 1.5, 'new', 1);",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    std::fs::remove_file(&flag).unwrap();
    let run = support::finish(child).await;
    run.expect_ok();
    let rows = db.rows("k", "u, ts, n, tx, v", "u, ts, n, tx").await;
    assert_eq!(rows.len(), 2000 - 2000 / 7 + 1);
    assert_eq!(
        db.one_i64("SELECT count(*) FROM k WHERE v < 0 AND v % 3 <> 0")
            .await,
        0
    );
    assert_eq!(
        db.one_i64("SELECT count(*) FROM k WHERE tx LIKE '%é'")
            .await,
        2000 / 11 - 2000 / 77
    );
    assert_eq!(db.leftovers().await, Vec::<String>::new());
    db.drop_db().await;
}
