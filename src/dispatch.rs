//! The one place an engine kind becomes engine objects.
//!
//! Engine-neutral code (the online core in `migration/`, the planner in `plan/`, the phases
//! in `phases/`) never names an engine: it is handed trait objects ([`Engine`],
//! [`PlanEngine`], [`PhaseConnector`], [`SqlRules`]) by its caller, the command layer
//! (`cli/`), which gets them here. The engine folders (`engine/mysql/`, `engine/postgres/`)
//! import the neutral layers' types; nothing below this module imports it, so the
//! dependencies run one way (docs/architecture.md, "The engine seam").
//!
//! A new engine is a new folder under `engine/` and one arm in each `match` below.

use crate::ddl::SqlRules;
use crate::engine::{mysql, postgres, Engine, EngineOptions};
use crate::error::Result;
use crate::phases::db::{PhaseConnector, PhaseTarget};
use crate::plan::PlanEngine;
use crate::target::{EngineKind, Target};
use crate::throttle::lag::{LagMonitor, LagOptions};

/// Connect to the target and return its engine for `table`.
pub async fn connect(
    target: &Target,
    table: &str,
    opts: &EngineOptions,
) -> Result<Box<dyn Engine>> {
    match target.kind {
        EngineKind::Mysql => Ok(Box::new(
            mysql::MysqlEngine::connect(target, table, opts).await?,
        )),
        EngineKind::Postgres => postgres::connect(target, table, opts).await,
    }
}

/// The replica-lag monitor for `--max-lag-millis` (`throttle::lag`), for a run on `table`
/// (`None`: the phases, the session's default schema). `None` when no replica is given
/// and none is found: then there is no lag check and no heartbeat table.
pub async fn lag_monitor(
    target: &Target,
    table: Option<&str>,
    opts: &LagOptions,
) -> Result<Option<Box<dyn LagMonitor>>> {
    Ok(match target.kind {
        EngineKind::Mysql => mysql::lag::monitor(target, opts)
            .await?
            .map(|m| Box::new(m) as Box<dyn LagMonitor>),
        EngineKind::Postgres => {
            let schema = table.and_then(postgres::schema_of);
            postgres::lag::monitor(target, schema.as_deref(), opts)
                .await?
                .map(|m| Box::new(m) as Box<dyn LagMonitor>)
        }
    })
}

/// `godwit cleanup`: the replica-lag heartbeat table of `table`'s database (MySQL) or
/// schema (PostgreSQL) when no run wrote to it for a minute; dropped when `drop`. It is
/// shared by the runs of the database, so it is never a leftover of one table's run.
pub async fn stale_heartbeat(target: &Target, table: &str, drop: bool) -> Result<Option<String>> {
    match target.kind {
        EngineKind::Mysql => mysql::lag::stale_heartbeat(target, drop).await,
        EngineKind::Postgres => {
            postgres::lag::stale_heartbeat(target, postgres::schema_of(table).as_deref(), drop)
                .await
        }
    }
}

/// The engine objects of the engine-neutral layers, for one engine kind.
pub struct EngineParts {
    /// The planner's classifier and read-only session (`godwit plan`).
    pub planner: &'static dyn PlanEngine,
    /// Opens the connection of the phase commands (`godwit expand`, …).
    pub phases: &'static dyn PhaseConnector,
    /// How the server reads SQL text (the lexer of user text, `--alter`).
    pub sql: &'static SqlRules,
}

/// The engine objects the planner, the phases and the reading of user SQL use, for one
/// engine kind.
pub fn by_kind(kind: EngineKind) -> EngineParts {
    match kind {
        EngineKind::Mysql => EngineParts {
            planner: &mysql::planner::MysqlPlanner,
            phases: &mysql::phases::MysqlPhases,
            sql: &mysql::SQL_RULES,
        },
        EngineKind::Postgres => EngineParts {
            planner: &postgres::planner::PgPlanner,
            phases: &postgres::phases::PgPhases,
            sql: &postgres::SQL_RULES,
        },
    }
}

/// Where the phase commands run on `target`.
pub fn phase_target(target: &Target) -> PhaseTarget<'_> {
    PhaseTarget {
        connector: by_kind(target.kind).phases,
        target,
    }
}
