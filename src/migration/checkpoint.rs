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
        };
        let text = serde_json::to_string(&cp).unwrap();
        let back: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(back.copied_upto, cp.copied_upto);
        assert_eq!(back.position, cp.position);
        assert_eq!(back.stage, Stage::Copy);
        let lsn: Position = serde_json::from_str("12345").unwrap();
        assert_eq!(lsn, Position::Lsn(12345));
    }
}
