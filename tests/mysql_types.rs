//! Every common MariaDB type survives the copy and the replay exactly, including keys of
//! awkward types, and row events with values mysql_common mis-decodes (negative TIME(1)).

mod support;
use support::mysql::*;
use support::LiveRun;

const ALL_TYPES: &str = "CREATE TABLE t (
    id INT NOT NULL PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    dec1 DECIMAL(20,6), dec2 DECIMAL(5,0), f FLOAT, d DOUBLE,
    dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3), tm1 TIME(1), y YEAR,
    c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4, l1 VARCHAR(50) CHARACTER SET latin1,
    bn BINARY(6), vb VARBINARY(20), bl BLOB, tx TEXT, js JSON,
    en ENUM('a','b','c'), st SET('x','y','z'), bt BIT(10),
    gen BIGINT AS (i * 2) VIRTUAL
) ENGINE=InnoDB";

const COLS: &str = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec1, dec2, f, d, dt, dtm, ts, tm, tm1, y, c, vc, l1, bn, vb, bl, tx, js, en, st, bt, gen";

async fn fill(db: &TestDb) {
    db.exec(ALL_TYPES).await;
    db.exec("INSERT INTO t (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec1, dec2, f, d, dt, dtm, ts, tm, tm1, y, c, vc, l1, bn, vb, bl, tx, js, en, st, bt) VALUES
        (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
         -99999999999999.999999, 99999, 3.5, -2.25e300, '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
         '-838:59:59.000', '-00:00:01.5', 1901, 'abc', 'emoji 🦤 ok', _latin1 x'e9e8', x'000102000000', x'00ff00', x'deadbeef00', 'text', '{\"a\": [1, 2, {\"b\": null}]}',
         'c', 'x,z', b'1000000001'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '2024-02-29', '2024-02-29 00:00:00', '1970-01-01 00:00:01', '00:00:00', '12:34:56.7', 2155,
         '', '', '', x'', x'', x'', '', '[]', 'a', '', b'0')").await;
    db.exec("INSERT INTO t (id, i, tm1, vc) SELECT seq + 10, seq, '-00:00:01.5', REPEAT('🦤', seq % 20) FROM seq_1_to_2000").await;
}

#[tokio::test]
async fn every_type_is_copied_and_replayed_exactly() {
    let db = TestDb::new("types_all").await;
    fill(&db).await;
    let flag = std::env::temp_dir().join(format!("godwit-types-{}", db.name));
    std::fs::write(&flag, b"").unwrap();
    let flag_s = flag.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN extra INT DEFAULT 1",
            "--execute",
            "--format",
            "json",
            "--postpone-cut-over-flag-file",
            &flag_s,
            "--chunk-size",
            "100",
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "state" && e["state"] == "postponed")
        .await;
    // Changes that flow through the binlog while in sync: every row event carries the
    // negative TIME(1) values and every type.
    db.exec("UPDATE t SET i = i + 1, tm1 = '-00:00:02.5', vc = CONCAT(IFNULL(vc, ''), '🦤') WHERE id % 3 = 0").await;
    db.exec("UPDATE t SET bn = x'0a0000000000', l1 = _latin1 x'c4', js = JSON_ARRAY(id) WHERE id IN (1, 2, 3)").await;
    db.exec("DELETE FROM t WHERE id % 7 = 0").await;
    db.exec("INSERT INTO t (id, tm1, bt, st, en, dec1) VALUES (100000, '-00:00:00.1', b'1', 'y', 'b', 0.000001)").await;
    db.exec("UPDATE t SET id = id + 50000 WHERE id BETWEEN 20 AND 30")
        .await;
    live.wait_for(30, |e| {
        e["event"] == "progress" && e["dirty_keys"] == 0 && e["keys_replayed"].as_u64() > Some(0)
    })
    .await;
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish().await;
    run.expect_ok();
    let old = run.event("done").unwrap()["old_table"]
        .as_str()
        .unwrap()
        .to_string();
    assert_same_rows_and_no_leftovers(&db, &old, COLS, "t", COLS, "id").await;
    let n: Vec<u64> = db.query("SELECT COUNT(*) FROM t WHERE extra = 1").await;
    assert_eq!(n[0], db.count("t").await);
    db.drop_db().await;
}

/// Keys of awkward types must be bound back exactly, or replay misses rows.
#[tokio::test]
async fn composite_keys_of_awkward_types_replay_exactly() {
    let db = TestDb::new("types_keys").await;
    db.exec(
        "CREATE TABLE k (
        s VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
        l VARCHAR(20) CHARACTER SET latin1 NOT NULL,
        b BINARY(4) NOT NULL,
        dt DATETIME(6) NOT NULL,
        ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00',
        dc DECIMAL(12,3) NOT NULL,
        u BIGINT UNSIGNED NOT NULL,
        e ENUM('lo','hi') NOT NULL,
        v INT,
        PRIMARY KEY (s, l, b, dt, ts, dc, u, e)
    )",
    )
    .await;
    db.exec("INSERT INTO k SELECT CONCAT('🦤', seq % 13), CONCAT(_latin1 x'e9', seq % 7), UNHEX(LPAD(HEX(seq % 5), 4, '0')),
             TIMESTAMP('2020-01-01') + INTERVAL seq SECOND + INTERVAL seq MICROSECOND, TIMESTAMP('2021-06-01') + INTERVAL seq % 11 SECOND,
             seq / 7, 18446744073709551615 - seq % 3, IF(seq % 2 = 0, 'lo', 'hi'), seq FROM seq_1_to_3000").await;
    let flag = std::env::temp_dir().join(format!("godwit-keys-{}", db.name));
    std::fs::write(&flag, b"").unwrap();
    let flag_s = flag.to_string_lossy().to_string();
    let mut live = LiveRun::start(
        &[
            "run",
            "--url",
            &db.url,
            "--table",
            "k",
            "--alter",
            "ADD COLUMN w INT",
            "--execute",
            "--format",
            "json",
            "--postpone-cut-over-flag-file",
            &flag_s,
            "--chunk-size",
            "150",
        ],
        &[],
    );
    live.wait_for(60, |e| e["event"] == "state" && e["state"] == "postponed")
        .await;
    db.exec("UPDATE k SET v = -v WHERE v % 5 = 0").await;
    db.exec("DELETE FROM k WHERE v % 9 = 0").await;
    db.exec("UPDATE k SET dc = dc + 1000 WHERE v % 11 = 0")
        .await;
    live.wait_for(30, |e| {
        e["event"] == "progress" && e["dirty_keys"] == 0 && e["keys_replayed"].as_u64() > Some(0)
    })
    .await;
    std::fs::remove_file(&flag).unwrap();
    let run = live.finish().await;
    run.expect_ok();
    let old = run.event("done").unwrap()["old_table"]
        .as_str()
        .unwrap()
        .to_string();
    let cols = "s, l, b, dt, ts, dc, u, e, v";
    assert_same_rows_and_no_leftovers(&db, &old, cols, "k", cols, "v, s, l, b, dt, ts, dc, u, e")
        .await;
    db.drop_db().await;
}
