//! Server load counters for `--max-load` / `--critical-load` on PostgreSQL, read from
//! `pg_stat_activity` and `pg_stat_replication` in one query (`sql::LOAD_COUNTERS`).

use super::conn::pg_err;
use super::sql;
use crate::error::Result;
use crate::throttle::load::unknown_counter;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_postgres::Client;

/// Counter names (lower case; names are matched case-insensitively) and their column in
/// [`sql::LOAD_COUNTERS`]. `Threads_running` / `Threads_connected` are gh-ost's names;
/// `active_connections` is kept for runs that used it before.
const COUNTERS: [(&str, usize); 8] = [
    ("active", 0),
    ("threads_running", 0),
    ("active_connections", 0),
    ("waiting", 1),
    ("connections", 2),
    ("threads_connected", 2),
    ("replication_lag_ms", 3),
    ("xact_age_s", 4),
];

/// What the error for an unknown name lists.
pub const VALID: &str = "active, waiting, connections, replication_lag_ms, xact_age_s \
    (Threads_running = active, Threads_connected = connections)";

/// The query column of each name, or the error naming the first unknown one.
pub fn columns(names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            let lower = n.to_ascii_lowercase();
            COUNTERS
                .iter()
                .find(|(k, _)| *k == lower)
                .map(|(_, i)| *i)
                .ok_or_else(|| unknown_counter(n, "PostgreSQL", VALID))
        })
        .collect()
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Current values of `names`. An unknown name is an error before the server is asked.
pub async fn read(c: &Client, names: &[String]) -> Result<Vec<f64>> {
    let cols = columns(names)?;
    let row = c
        .query_one(sql::LOAD_COUNTERS, &[])
        .await
        .map_err(|e| pg_err(e, "reading the server's load counters"))?;
    let mut all = [0f64; 5];
    for (i, v) in all.iter_mut().enumerate() {
        *v = row
            .try_get::<_, f64>(i)
            .map_err(|e| pg_err(e, "reading the server's load counters"))?;
    }
    let sees_all: bool = row.try_get(5).unwrap_or(true);
    if !sees_all && cols.iter().any(|&i| i != 2) && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the migration user is not a member of pg_read_all_stats: other roles' sessions \
             count as idle and without lock waits, and replication lag reads 0"
        );
    }
    Ok(cols.into_iter().map(|i| all[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_map_to_columns_case_insensitively() {
        let got = columns(&names(&[
            "active",
            "Threads_running",
            "WAITING",
            "connections",
            "Threads_connected",
            "replication_lag_ms",
            "xact_age_s",
            "active_connections",
        ]))
        .unwrap();
        assert_eq!(got, vec![0, 0, 1, 2, 2, 3, 4, 0]);
    }

    #[test]
    fn an_unknown_name_is_bad_input_listing_the_valid_ones() {
        let e = columns(&names(&["active", "Innodb_row_lock_current_waits"])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert!(e.message.contains("`Innodb_row_lock_current_waits`"), "{e}");
        let hint = e.hint.unwrap();
        for n in [
            "active",
            "waiting",
            "connections",
            "replication_lag_ms",
            "xact_age_s",
        ] {
            assert!(hint.contains(n), "{hint}");
        }
    }

    #[test]
    fn every_column_of_the_query_has_a_name() {
        for i in 0..5 {
            assert!(COUNTERS.iter().any(|(_, c)| *c == i));
        }
    }
}
