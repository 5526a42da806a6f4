//! MariaDB/MySQL test databases.

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Pool, Row, Value};
use tokio::sync::OnceCell;

static SERVER_URL: OnceCell<String> = OnceCell::const_new();
static CONTAINER: OnceCell<
    Option<
        testcontainers_modules::testcontainers::ContainerAsync<
            testcontainers_modules::mariadb::Mariadb,
        >,
    >,
> = OnceCell::const_new();

async fn from_container() -> Option<String> {
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::ImageExt;
    if !super::docker_available() {
        return None;
    }
    let c = CONTAINER
        .get_or_init(|| async {
            testcontainers_modules::mariadb::Mariadb::default()
                .with_cmd([
                    "--log-bin=binlog",
                    "--binlog-format=ROW",
                    "--binlog-row-image=FULL",
                    "--server-id=1",
                    "--event-scheduler=ON",
                ])
                .start()
                .await
                .ok()
        })
        .await
        .as_ref()?;
    let port = c.get_host_port_ipv4(3306).await.ok()?;
    Some(format!("mysql://root@127.0.0.1:{port}/mysql"))
}

/// The server's URL (any database).
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(u) = std::env::var("GODWIT_TEST_MYSQL_URL") {
                return u;
            }
            if let Some(u) = from_container().await {
                return u;
            }
            tokio::task::spawn_blocking(|| {
                super::start_local_server("start_mariadb", "GODWIT_TEST_MYSQL_URL")
            })
            .await
            .unwrap()
        })
        .await
        .clone()
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

/// A database of its own for one test, dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: Pool,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let server = server_url().await;
        let name = super::unique_name(prefix);
        let mut admin = Conn::new(Opts::from_url(&server).unwrap())
            .await
            .expect("connect to MariaDB");
        admin
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        admin.disconnect().await.unwrap();
        let url = with_db(&server, &name);
        let pool = Pool::new(Opts::from_url(&url).unwrap());
        TestDb { name, url, pool }
    }

    pub async fn conn(&self) -> Conn {
        self.pool.get_conn().await.unwrap()
    }

    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn query<T: FromRow + Send + 'static>(&self, sql: &str) -> Vec<T> {
        let mut c = self.conn().await;
        c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn count(&self, table: &str) -> u64 {
        self.query::<u64>(&format!("SELECT COUNT(*) FROM `{table}`"))
            .await[0]
    }

    /// Every row of `table` as values, columns `cols`, ordered by `order`.
    pub async fn rows(&self, table: &str, cols: &str, order: &str) -> Vec<Vec<Value>> {
        let rows: Vec<Row> = self
            .query(&format!("SELECT {cols} FROM `{table}` ORDER BY {order}"))
            .await;
        rows.into_iter().map(|r| r.unwrap()).collect()
    }

    /// Tables whose name starts with godwit's prefix, except `keep`.
    pub async fn leftovers(&self, keep: &[&str]) -> Vec<String> {
        let names: Vec<String> = self
            .query(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME LIKE '\\_godwit\\_%'",
                self.name
            ))
            .await;
        names
            .into_iter()
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    }

    pub async fn tables(&self) -> Vec<String> {
        self.query(&format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' ORDER BY TABLE_NAME",
            self.name
        ))
        .await
    }

    /// `SHOW CREATE TABLE`, for "nothing changed" checks.
    pub async fn show_create(&self, table: &str) -> String {
        let r: Vec<(String, String)> = self.query(&format!("SHOW CREATE TABLE `{table}`")).await;
        r[0].1.clone()
    }

    pub async fn drop_db(self) {
        let mut c = self.conn().await;
        let _ = c.query_drop(format!("DROP DATABASE `{}`", self.name)).await;
        drop(c);
        let _ = self.pool.disconnect().await;
    }
}
