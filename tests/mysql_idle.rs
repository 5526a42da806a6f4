//! Online ALTERs on idle MariaDB tables: each ends with the same rows (through the column
//! mapping) in the result and nothing of godwit's left behind.

mod support;
use support::mysql::*;

const CHUNK: [&str; 2] = ["--chunk-size", "100"];

#[tokio::test]
async fn add_column_keeps_rows_and_fills_default() {
    let db = TestDb::new("idle_add").await;
    create_orders(&db, "orders", 2500).await;
    let (run, old) = migrate(
        &db,
        "orders",
        "ADD COLUMN shipped_at DATETIME NULL, ADD COLUMN flag INT NOT NULL DEFAULT 7",
        &CHUNK,
    )
    .await;
    assert!(run.states().contains(&"cut_over".to_string()));
    assert_eq!(
        run.event("done").unwrap()["rows_copied"].as_u64().unwrap(),
        2500
    );
    assert!(db.show_create("orders").await.contains("`shipped_at`"));
    let flags: Vec<u64> = db.query("SELECT DISTINCT flag FROM orders").await;
    assert_eq!(flags, vec![7]);
    assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id").await;
    db.drop_db().await;
}

#[tokio::test]
async fn drop_column_is_not_copied() {
    let db = TestDb::new("idle_drop").await;
    create_orders(&db, "orders", 1500).await;
    let (_, old) = migrate(&db, "orders", "DROP COLUMN note", &CHUNK).await;
    assert!(!db.show_create("orders").await.contains("`note`"));
    let cols = "id, user_id, status, amount, created_at";
    assert_same_rows_and_no_leftovers(&db, &old, cols, "orders", cols, "id").await;
    db.drop_db().await;
}

#[tokio::test]
async fn modify_type_converts_values() {
    let db = TestDb::new("idle_modify").await;
    create_orders(&db, "orders", 1500).await;
    let (_, old) = migrate(
        &db,
        "orders",
        "ALTER TABLE orders MODIFY amount DECIMAL(14,3) NOT NULL",
        &CHUNK,
    )
    .await;
    assert!(db.show_create("orders").await.contains("decimal(14,3)"));
    // Compare through the same conversion the server applies.
    assert_same_rows_and_no_leftovers(
        &db,
        &old,
        "id, CAST(amount AS DECIMAL(14,3))",
        "orders",
        "id, amount",
        "id",
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn add_index_builds_it() {
    let db = TestDb::new("idle_index").await;
    create_orders(&db, "orders", 1500).await;
    let (_, old) = migrate(
        &db,
        "orders",
        "ADD INDEX idx_status (status), ADD UNIQUE KEY uk_user_id (user_id, id)",
        &CHUNK,
    )
    .await;
    let create = db.show_create("orders").await;
    assert!(
        create.contains("KEY `idx_status`") && create.contains("UNIQUE KEY `uk_user_id`"),
        "{create}"
    );
    assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id").await;
    db.drop_db().await;
}

#[tokio::test]
async fn rename_column_carries_the_data() {
    let db = TestDb::new("idle_rename").await;
    create_orders(&db, "orders", 1500).await;
    let (_, old) = migrate(
        &db,
        "orders",
        "CHANGE COLUMN note remark VARCHAR(255) NULL, RENAME COLUMN status TO state",
        &CHUNK,
    )
    .await;
    let create = db.show_create("orders").await;
    assert!(
        create.contains("`remark`") && create.contains("`state`") && !create.contains("`note`"),
        "{create}"
    );
    assert_same_rows_and_no_leftovers(
        &db,
        &old,
        "id, status, note",
        "orders",
        "id, state, remark",
        "id",
    )
    .await;
    db.drop_db().await;
}

#[tokio::test]
async fn change_primary_key_while_a_unique_key_is_shared() {
    let db = TestDb::new("idle_pk").await;
    db.exec("CREATE TABLE items (id INT NOT NULL, code VARCHAR(20) CHARACTER SET latin1 NOT NULL, qty INT, PRIMARY KEY (id), UNIQUE KEY uk_code (code))").await;
    db.exec("INSERT INTO items SELECT seq, CONCAT('c', LPAD(seq, 6, '0'), IF(seq % 3 = 0, '\u{e9}', '')), seq * 2 FROM seq_1_to_1200").await;
    let (_, old) = migrate(
        &db,
        "items",
        "DROP PRIMARY KEY, ADD PRIMARY KEY (code)",
        &CHUNK,
    )
    .await;
    let create = db.show_create("items").await;
    assert!(create.contains("PRIMARY KEY (`code`)"), "{create}");
    assert_same_rows_and_no_leftovers(&db, &old, "id, code, qty", "items", "id, code, qty", "id")
        .await;
    db.drop_db().await;
}

#[tokio::test]
async fn ok_to_drop_table_removes_the_old_table() {
    let db = TestDb::new("idle_okdrop").await;
    create_orders(&db, "orders", 300).await;
    db.exec("CREATE TABLE expected AS SELECT * FROM orders")
        .await;
    let (run, old) = migrate(&db, "orders", "ADD COLUMN x INT", &["--ok-to-drop-table"]).await;
    assert_eq!(run.event("done").unwrap()["old_table_dropped"], true);
    assert!(!db.tables().await.contains(&old));
    let a = db.rows("expected", ORDERS_COLS, "id").await;
    let b = db.rows("orders", ORDERS_COLS, "id").await;
    assert_eq!(a, b);
    assert!(db.leftovers(&[]).await.is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn auto_increment_continues_above_deleted_ids() {
    let db = TestDb::new("idle_autoinc").await;
    create_orders(&db, "orders", 100).await;
    db.exec("DELETE FROM orders WHERE id > 90").await;
    let (_, old) = migrate(&db, "orders", "ADD COLUMN x INT", &[]).await;
    db.exec("INSERT INTO orders (user_id, amount, created_at) VALUES (1, 1, NOW())")
        .await;
    let max: Vec<u64> = db.query("SELECT MAX(id) FROM orders").await;
    assert!(max[0] > 100, "id {} reuses a deleted id", max[0]);
    db.exec("DELETE FROM orders WHERE id > 100").await;
    assert_same_rows_and_no_leftovers(&db, &old, ORDERS_COLS, "orders", ORDERS_COLS, "id").await;
    db.drop_db().await;
}
