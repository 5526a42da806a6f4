//! The state table `_godwit_migrations`: one row per migration, in the database (MySQL)
//! or the current schema (PostgreSQL) it changes.

use super::db::{Db, Param};
use crate::error::Result;

pub const TABLE: &str = "_godwit_migrations";

/// Where a migration stands: the `phase` column of the state table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PhaseState {
    /// No row yet: never run.
    #[default]
    Pending,
    Expanding,
    Expanded,
    Backfilling,
    Backfilled,
    Contracting,
    /// Contracted: the migration is complete.
    Complete,
    Aborting,
    Aborted,
    /// A value this version does not know (written by another version of godwit).
    Unknown(String),
}

impl PhaseState {
    /// The text stored in the state table (`Pending` is never stored).
    pub fn as_str(&self) -> &str {
        match self {
            PhaseState::Pending => "pending",
            PhaseState::Expanding => "expanding",
            PhaseState::Expanded => "expanded",
            PhaseState::Backfilling => "backfilling",
            PhaseState::Backfilled => "backfilled",
            PhaseState::Contracting => "contracting",
            PhaseState::Complete => "complete",
            PhaseState::Aborting => "aborting",
            PhaseState::Aborted => "aborted",
            PhaseState::Unknown(s) => s,
        }
    }

    pub fn parse(s: &str) -> PhaseState {
        match s {
            "" | "pending" => PhaseState::Pending,
            "expanding" => PhaseState::Expanding,
            "expanded" => PhaseState::Expanded,
            "backfilling" => PhaseState::Backfilling,
            "backfilled" => PhaseState::Backfilled,
            "contracting" => PhaseState::Contracting,
            "complete" => PhaseState::Complete,
            "aborting" => PhaseState::Aborting,
            "aborted" => PhaseState::Aborted,
            other => PhaseState::Unknown(other.to_string()),
        }
    }
}

impl std::fmt::Display for PhaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PhaseState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a migration stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub id: String,
    pub checksum: String,
    pub phase: PhaseState,
    pub backfill_op: i64,
    /// Key of the last finished backfill batch (JSON array of text), for resume.
    pub backfill_after: Option<String>,
    pub rows_backfilled: i64,
    pub applied_by: Option<String>,
    pub updated_at: Option<String>,
}

pub async fn ensure(db: &mut Db) -> Result<()> {
    let t = db.dialect().table(TABLE);
    let sql = db.dialect().create_state_table(&t);
    db.exec(&sql).await
}

pub async fn read_all(db: &mut Db) -> Result<Vec<Row>> {
    if !db.table_exists(TABLE).await? {
        return Ok(vec![]);
    }
    let t = db.dialect().table(TABLE);
    let d = db.dialect();
    let sql = format!(
        "SELECT id, checksum, phase, {}, backfill_after, {}, applied_by, {} FROM {t} ORDER BY id",
        d.text("backfill_op"),
        d.text("rows_backfilled"),
        d.text("updated_at")
    );
    let rows = db.query(&sql, &[]).await?;
    Ok(rows
        .into_iter()
        .map(|r| Row {
            id: r.text(0),
            checksum: r.text(1),
            phase: PhaseState::parse(&r.text(2)),
            backfill_op: r.int(3).unwrap_or(0),
            backfill_after: r.opt(4),
            rows_backfilled: r.int(5).unwrap_or(0),
            applied_by: r.opt(6),
            updated_at: r.opt(7),
        })
        .collect())
}

/// Record a new phase; `stamp` names the timestamp column to set (e.g. `expanded_at`).
pub async fn set_phase(
    db: &mut Db,
    id: &str,
    name: &str,
    checksum: &str,
    phase: PhaseState,
    stamp: Option<&str>,
) -> Result<()> {
    let t = db.dialect().table(TABLE);
    let now = db.dialect().now();
    let user = db.dialect().current_user();
    let stamp = stamp.map(|s| format!(", {s} = {now}")).unwrap_or_default();
    let (p1, p2, p3, p4) = (db.ph(1), db.ph(2), db.ph(3), db.ph(4));
    let n = db
        .exec_params(
            &format!(
                "UPDATE {t} SET phase = {p1}, checksum = {p2}, applied_by = {user}, updated_at = {now}{stamp} WHERE id = {p3}"
            ),
            &[
                Param::Text(Some(phase.as_str().into())),
                Param::Text(Some(checksum.into())),
                Param::Text(Some(id.into())),
            ],
        )
        .await?;
    if n == 0 {
        db.exec_params(
            &format!(
                "INSERT INTO {t} (id, name, checksum, phase, applied_by, started_at, updated_at) VALUES ({p1}, {p2}, {p3}, {p4}, {user}, {now}, {now})"
            ),
            &[
                Param::Text(Some(id.into())),
                Param::Text(Some(name.into())),
                Param::Text(Some(checksum.into())),
                Param::Text(Some(phase.as_str().into())),
            ],
        )
        .await?;
        if let Some(s) = stamp.strip_prefix(", ") {
            db.exec_params(
                &format!("UPDATE {t} SET {s} WHERE id = {p1}"),
                &[Param::Text(Some(id.into()))],
            )
            .await?;
        }
    }
    Ok(())
}

/// Record a finished backfill batch (in the batch's transaction).
pub async fn set_backfill(
    db: &mut Db,
    id: &str,
    op: i64,
    after: Option<&str>,
    rows: i64,
) -> Result<()> {
    let t = db.dialect().table(TABLE);
    let now = db.dialect().now();
    let (p1, p2, p3, p4) = (db.ph(1), db.ph(2), db.ph(3), db.ph(4));
    db.exec_params(
        &format!(
            "UPDATE {t} SET backfill_op = {p1}, backfill_after = {p2}, rows_backfilled = {p3}, updated_at = {now} WHERE id = {p4}"
        ),
        &[
            Param::Int(op),
            Param::Text(after.map(str::to_string)),
            Param::Int(rows),
            Param::Text(Some(id.into())),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PhaseState;

    #[test]
    fn phase_states_read_back_as_written() {
        for s in [
            "expanding",
            "expanded",
            "backfilling",
            "backfilled",
            "contracting",
            "complete",
            "aborting",
            "aborted",
        ] {
            assert_eq!(PhaseState::parse(s).as_str(), s);
            assert!(!matches!(PhaseState::parse(s), PhaseState::Unknown(_)));
        }
        assert_eq!(PhaseState::parse(""), PhaseState::Pending);
        assert_eq!(
            PhaseState::parse("rolled_back"),
            PhaseState::Unknown("rolled_back".into())
        );
    }
}
