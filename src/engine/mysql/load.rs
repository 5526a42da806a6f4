//! Server load counters for `--max-load` / `--critical-load` on MySQL / MariaDB: the
//! numeric variables of `SHOW GLOBAL STATUS`, names matched case-insensitively.

use super::conn_err;
use super::sql;
use crate::error::Result;
use crate::throttle::load::unknown_counter;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// What the error for an unknown name says.
const VALID: &str = "a numeric variable of SHOW GLOBAL STATUS, e.g. Threads_running, \
    Threads_connected, Innodb_row_lock_current_waits (list them with: SHOW GLOBAL STATUS)";

/// The values of `names` among the server's `(Variable_name, Value)` rows, or the error
/// naming the first name that is missing or not a number.
pub fn pick(rows: &[(String, String)], names: &[String]) -> Result<Vec<f64>> {
    names
        .iter()
        .map(|n| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .ok_or_else(|| unknown_counter(n, "this MySQL/MariaDB server", VALID))
        })
        .collect()
}

/// Current values of `names`.
pub async fn read(c: &mut Conn, names: &[String]) -> Result<Vec<f64>> {
    let rows: Vec<(String, String)> = c
        .query(sql::GLOBAL_STATUS)
        .await
        .map_err(|e| conn_err(e, "reading the server's status counters"))?;
    pick(&rows, names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn rows() -> Vec<(String, String)> {
        [
            ("Threads_running", "3"),
            ("Threads_connected", "12"),
            ("Innodb_row_lock_current_waits", "0"),
            ("Ssl_cipher", ""),
            ("Rpl_status", "AUTH_MASTER"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_values_case_insensitively_in_the_order_asked() {
        let got = pick(
            &rows(),
            &names(&[
                "threads_connected",
                "THREADS_RUNNING",
                "Innodb_row_lock_current_waits",
            ]),
        )
        .unwrap();
        assert_eq!(got, vec![12.0, 3.0, 0.0]);
    }

    #[test]
    fn a_missing_or_non_numeric_variable_is_bad_input() {
        for bad in ["Threads_runing", "Ssl_cipher", "Rpl_status", "active"] {
            let e = pick(&rows(), &names(&["Threads_running", bad])).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadInput, "{bad}");
            assert!(e.message.contains(&format!("`{bad}`")), "{e}");
            assert!(e.hint.unwrap().contains("SHOW GLOBAL STATUS"));
        }
    }
}
