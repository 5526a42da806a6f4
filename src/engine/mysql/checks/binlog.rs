use super::{Check, CheckCtx};
use crate::engine::mysql::conn_err;
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use mysql_async::prelude::*;

/// The binlog must be on, in ROW format, with full row images: replay needs every
/// change of every row, with its key.
pub struct BinlogSettings;

#[async_trait]
impl<'a> Check<CheckCtx<'a>> for BinlogSettings {
    fn name(&self) -> &'static str {
        "binlog settings"
    }
    async fn run(&self, cx: &mut CheckCtx<'a>) -> Result<()> {
        let rows: Vec<(String, String)> = cx
            .conn
            .query("SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME IN ('LOG_BIN', 'BINLOG_FORMAT', 'BINLOG_ROW_IMAGE')")
            .await
            .map_err(|e| conn_err(e, "reading binlog settings"))?;
        let get = |n: &str| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.to_uppercase())
                .unwrap_or_default()
        };
        if get("log_bin") != "ON" {
            return Err(Error::new(ErrorKind::ServerSettings, "binary logging is off (log_bin=OFF); godwit follows changes through the binlog")
                .with_hint("start the server with log_bin (e.g. `log_bin = mysql-bin` under [mysqld] in my.cnf) and restart it"));
        }
        let format = get("binlog_format");
        if format != "ROW" {
            return Err(Error::new(
                ErrorKind::ServerSettings,
                format!("binlog_format is {format}; godwit needs ROW"),
            )
            .with_hint("SET GLOBAL binlog_format = 'ROW' (and binlog_format = ROW in my.cnf to keep it); sessions already open keep their format until they reconnect"));
        }
        let image = get("binlog_row_image");
        if image != "FULL" {
            return Err(Error::new(
                ErrorKind::ServerSettings,
                format!("binlog_row_image is {image}; godwit needs FULL"),
            )
            .with_hint("SET GLOBAL binlog_row_image = 'FULL' (and binlog_row_image = FULL in my.cnf to keep it)"));
        }
        Ok(())
    }
}
