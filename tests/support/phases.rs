//! Helpers for the expand / backfill / contract tests: migration files and phase runs.

use std::path::PathBuf;

/// Write `text` as the migration file `file` (e.g. `0001_rename_email.toml`) in a
/// directory of its own for the test database `db_name`; returns the directory.
pub fn write_migration(db_name: &str, file: &str, text: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("godwit-phases-{db_name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
    let s = dir.to_string_lossy().to_string();
    (dir, s)
}

/// `godwit <cmd> DIR --url URL --execute --batch-size 300`.
pub async fn phase(url: &str, cmd: &str, dir: &str) -> super::Run {
    super::godwit(
        &[cmd, dir, "--url", url, "--execute", "--batch-size", "300"],
        &[],
    )
    .await
}

/// The phase `godwit status DIR` reports for the first migration.
pub async fn status(url: &str, dir: &str) -> String {
    let s = super::godwit(&["status", dir, "--url", url, "--format", "json"], &[]).await;
    s.expect_ok();
    s.event("migration").expect("status line")["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Send a signal to a process (a godwit run the test started).
pub fn signal(pid: u32, sig: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    let r = unsafe { kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}
