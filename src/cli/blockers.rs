//! The phase commands' lock waits that ran out (`--lock-timeout-seconds`): the error
//! names the sessions holding a lock on the migration files' tables, found as the
//! online cut-over finds its blockers (`Engine::cut_over_blockers`).

use crate::dispatch;
use crate::engine::{Blocker, EngineOptions};
use crate::error::{Error, ServerCode};
use crate::target::Target;
use std::path::Path;
use std::time::Duration;

/// A lock wait that ran out (MySQL/MariaDB 1205, PostgreSQL 55P03).
fn is_lock_timeout(e: &Error) -> bool {
    matches!(&e.code, Some(ServerCode::Mysql(1205)))
        || matches!(&e.code, Some(ServerCode::Postgres(s)) if s == "55P03")
}

/// `e` with the sessions that held a lock on the files' tables for at least
/// `lock_timeout`, when it is a lock wait that ran out; otherwise `e` as it is.
pub async fn name_blockers(
    e: Error,
    target: &Target,
    path: &Path,
    lock_timeout: Duration,
) -> Error {
    if !is_lock_timeout(&e) {
        return e;
    }
    let Ok(files) = crate::phases::file::load(path, crate::dispatch::by_kind(target.kind).sql)
    else {
        return e;
    };
    let mut tables: Vec<String> = files
        .iter()
        .flat_map(|f| f.operations.iter())
        .filter_map(|op| op.op().table().map(str::to_string))
        .collect();
    tables.sort();
    tables.dedup();
    let mut found: Vec<(String, Blocker)> = Vec::new();
    for table in tables {
        let Ok(engine) = dispatch::connect(target, &table, &EngineOptions::default()).await else {
            continue;
        };
        match engine.cut_over_blockers().await {
            Ok(list) => found.extend(
                list.into_iter()
                    .filter(|b| (b.age_seconds + 1) as f64 > lock_timeout.as_secs_f64())
                    .map(|b| (table.clone(), b)),
            ),
            Err(err) => {
                tracing::warn!("could not read which sessions hold a lock on {table}: {err}")
            }
        }
        let _ = engine.close().await;
    }
    if found.is_empty() {
        return e;
    }
    for (table, b) in &found {
        tracing::warn!("{table}: lock held by {b}");
    }
    let who = found
        .iter()
        .map(|(t, b)| format!("{b} on {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    Error {
        message: format!("{}; the lock was held by {who}", e.message),
        ..e
    }
}
