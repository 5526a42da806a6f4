//! `godwit plan` reports long transactions (MariaDB). In a binary of its own: MariaDB
//! refreshes `INFORMATION_SCHEMA.INNODB_TRX` only when nobody read it in the last 100 ms,
//! so other tests planning at the same time (each reads it) can keep it stale for as long
//! as they run.
mod support;
use mysql_async::prelude::*;
use support::mysql::*;

#[tokio::test]
async fn long_transaction_is_reported() {
    let db = TestDb::new("plan_myt").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1)")
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
        "ADD COLUMN x INT",
        &opts,
    )
    .await
    .unwrap();
    assert!(p.findings.iter().all(|f| f.rule != "long-transactions"));
    let mut holder = db.conn().await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder
        .query_drop("SELECT * FROM t FOR UPDATE")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let p = godwit::plan::plan_alter(
        godwit::dispatch::by_kind(target.kind).planner,
        &target,
        "t",
        "ADD COLUMN x INT",
        &opts,
    )
    .await
    .unwrap();
    if !p.findings.iter().any(|f| f.rule == "long-transactions") {
        // Say what the server showed: INNODB_TRX's times are in the system time zone.
        let mut c = db.conn().await;
        let seen: Vec<(String, String, String)> = c
            .query(
                "SELECT CAST(trx_mysql_thread_id AS CHAR), CAST(trx_started AS CHAR), \
                 CAST(NOW() AS CHAR) FROM information_schema.INNODB_TRX",
            )
            .await
            .unwrap();
        panic!(
            "no long-transactions finding: {:?}; INNODB_TRX: {seen:?}",
            p.findings
        );
    }
    holder.query_drop("ROLLBACK").await.unwrap();
    drop(holder);
    db.drop_db().await;
}
