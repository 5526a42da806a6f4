//! Checkpoints: what a run that dies (kill -9, OOM, reboot, the server gone) leaves so that
//! the same command run again continues instead of starting over (docs/how-it-works.md,
//! "Resume"). One row per table in the engine's checkpoint table, saved after every copy
//! chunk and at least every few seconds; removed when the run ends either way.

use crate::ddl::AlterSpec;
use crate::engine::{fnv32, Key, Position};
use serde::{Deserialize, Serialize};

/// How a run treats a checkpoint it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumeMode {
    /// Resume when the checkpoint is of the same change; refuse when it is not.
    #[default]
    Auto,
    /// `--resume`: there must be a checkpoint to resume.
    Require,
    /// `--restart`: discard a checkpoint and what it kept, start over.
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Copying: rows up to `copied_upto` are in the shadow.
    Copy,
    /// Every row is copied (and the engine's after-copy steps are done).
    Copied,
    /// Cutting over: the tables may have been swapped (the original then renamed `old`).
    CutOver,
}

/// Format version of the saved checkpoint.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub table: String,
    /// The change, as given (shown when a rerun differs).
    pub alter: String,
    /// Identifies the change: a rerun resumes only the same one.
    pub change_id: String,
    pub shadow: String,
    /// The name the original gets at the swap.
    pub old: String,
    pub stage: Stage,
    /// Every row with a key up to this one is in the shadow (None: none yet).
    pub copied_upto: Option<Key>,
    /// Every change before this stream position is in the shadow.
    pub position: Position,
    pub rows_copied: u64,
    pub keys_replayed: u64,
    /// The engine's own state (see `Engine::resume_state`).
    pub engine: serde_json::Value,
    /// When it was saved (Unix milliseconds).
    pub saved_at_ms: u64,
    /// Set while a revert window is open: this checkpoint is the reverse direction's
    /// (source the new table, shadow the old table the swap kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<RevertWindow>,
}

/// A revert window (docs/how-it-works.md, "Revert").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevertWindow {
    /// When the window closes (Unix milliseconds).
    pub until_ms: u64,
    /// The reverse column renames: (name in the new table, name in the old table).
    pub renames: Vec<(String, String)>,
    /// Columns the ALTER dropped and added again (never filled from each other).
    pub new_columns: Vec<String>,
}

/// `ms` (Unix milliseconds) as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration written `90s`, `30m`, `2h` or `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 30m, 2h, 1d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "`{text}` is not a duration (e.g. 90s, 30m, 2h, 1d)"
            ))
        }
    };
    if secs == 0 {
        return Err("the duration must be at least 1 s".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// The identity of a change: the table and the ALTER's clauses as godwit runs them.
pub fn change_id(table: &str, alter: &AlterSpec) -> String {
    let text = format!("{VERSION}\u{1f}{table}\u{1f}{}", alter.clauses);
    format!("{:08x}", fnv32(text.bytes()))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clauses: &str) -> AlterSpec {
        AlterSpec {
            clauses: clauses.into(),
            renames: vec![],
            new_columns: vec![],
            auto_increment: None,
        }
    }

    #[test]
    fn the_change_id_follows_table_and_clauses() {
        let a = change_id("t", &spec("ADD COLUMN x INT"));
        assert_eq!(a, change_id("t", &spec("ADD COLUMN x INT")));
        assert_ne!(a, change_id("t", &spec("ADD COLUMN y INT")));
        assert_ne!(a, change_id("u", &spec("ADD COLUMN x INT")));
    }

    #[test]
    fn a_checkpoint_reads_back() {
        let cp = Checkpoint {
            version: VERSION,
            table: "t".into(),
            alter: "ADD COLUMN x INT".into(),
            change_id: "1".into(),
            shadow: "t_godwit_new".into(),
            old: "_godwit_old_t_1".into(),
            stage: Stage::Copy,
            copied_upto: Some(vec![
                crate::engine::KeyPart::Int(5),
                crate::engine::KeyPart::Bytes(vec![0, 255]),
            ]),
            position: Position::Binlog {
                file: "bin.000003".into(),
                pos: 77,
            },
            rows_copied: 10,
            keys_replayed: 2,
            engine: serde_json::json!({"deferred": ["KEY `a` (`a`)"]}),
            saved_at_ms: 1,
            revert: None,
        };
        let text = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(back.copied_upto, cp.copied_upto);
        assert_eq!(back.position, cp.position);
        assert_eq!(back.stage, Stage::Copy);
        assert!(back.revert.is_none() && !text.contains("revert"));
        let window = Checkpoint {
            revert: Some(RevertWindow {
                until_ms: 99,
                renames: vec![("b".into(), "a".into())],
                new_columns: vec![],
            }),
            ..cp.clone()
        };
        let back: Checkpoint =
            serde_json::from_str(&serde_json::to_string(&window).unwrap()).unwrap();
        assert_eq!(back.revert, window.revert);
        let lsn: Position = serde_json::from_str("12345").unwrap();
        assert_eq!(lsn, Position::Lsn(12345));
    }

    #[test]
    fn durations_and_times_read_and_print() {
        use std::time::Duration;
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_601_600_000), "2026-12-07 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
