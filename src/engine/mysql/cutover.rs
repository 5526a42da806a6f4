//! The MySQL/MariaDB cut-over.
//!
//! * Sentry table (MariaDB, MySQL < 8.0.13). Connection A creates an empty *sentry* table
//!   under the name the original will get, then `LOCK TABLES orig READ, sentry WRITE`:
//!   the application's writes wait, reads go on. The last dirty keys are flushed on a
//!   third connection (the READ lock lets it read the original; the shadow is not locked).
//!   Connection B issues `RENAME TABLE orig TO sentry_name, shadow TO orig`, which queues
//!   on the original's metadata lock. A drops the sentry and unlocks; the queued RENAME,
//!   an exclusive request, is granted before the application's queued writes.
//!   If A dies at any point its locks go away while the sentry still exists, so B's
//!   RENAME fails ("table exists") and nothing is swapped.
//!
//!   The server takes a statement's metadata locks in name order, waiting at the first
//!   one it cannot get. B must already be queued on the *original* when A unlocks: a
//!   queued exclusive request is then granted before the queued writes. If B were still
//!   waiting on another name (seen in testing: the shadow, named `_godwit_new_…`, sorts
//!   before `orders`, and B waited on it while a just-finished session of ours released
//!   it), the writes would get the original first and land in the old table after the
//!   final flush. So both the sentry (`<table>_godwit_cut`) and the shadow
//!   (`<table>_godwit_new`) are named to sort after the original: B's first lock is the
//!   original's, and A holds nothing else B needs before it. After the swap the old
//!   table is renamed to its final `_godwit_old_…` name.
//! * MySQL ≥ 8.0.13: `LOCK TABLES orig WRITE, shadow WRITE`, flush on the same
//!   connection, `RENAME TABLE` under the lock, `UNLOCK TABLES`.

use super::sql::{qualified, Builder};
use super::{conn_err, exec, flush_keys};
use crate::engine::{CutOverLock, Key, Position};
use crate::error::{Error, ErrorKind, Result};
use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::time::{Duration, Instant};

pub const SENTRY_COMMENT: &str = "godwit cut-over sentry";

/// The sentry's name: the original's name plus a suffix, so it sorts after it.
pub fn sentry_name(orig: &str) -> Option<String> {
    let n = format!("{orig}_godwit_cut");
    (n.chars().count() <= 64).then_some(n)
}

/// The shadow's name on MySQL/MariaDB: the original's name plus a suffix that sorts after
/// the sentry's, so the swap's RENAME takes the original's lock first (see above).
pub fn shadow_name(orig: &str) -> Option<String> {
    let n = format!("{orig}_godwit_new");
    (n.chars().count() <= 64).then_some(n)
}

pub struct CutOverSetup {
    pub opts: Opts,
    pub db: String,
    pub orig: String,
    pub shadow: String,
    pub old: String,
    pub builder: Builder,
    pub timeout: Duration,
    pub sentry: bool,
    pub hold: Option<Duration>,
    /// The ALTER's own `AUTO_INCREMENT = N`, if any.
    pub auto_increment: Option<u64>,
}

pub struct MysqlCutOver {
    a: Option<Conn>,
    /// Connections opened before the lock is taken, so the time writes wait is not
    /// spent on connection handshakes: [flush/auto-increment, rename, watcher].
    spare: Vec<Conn>,
    blocked_since: Option<Instant>,
    s: CutOverSetup,
    sentry: String,
    sentry_created: bool,
}

fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

fn failed(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::CutOverFailed, msg)
}

pub async fn lock(s: CutOverSetup) -> Result<MysqlCutOver> {
    let sentry = if s.sentry {
        sentry_name(&s.orig).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "table name `{}` is too long for the sentry cut-over (at most 52 characters)",
                    s.orig
                ),
            )
            .with_hint("rename the table to a shorter name first")
        })?
    } else {
        String::new()
    };
    let mut a = Conn::new(s.opts.clone())
        .await
        .map_err(|e| conn_err(e, "opening the cut-over connection"))?;
    let t = secs(s.timeout);
    exec(
        &mut a,
        &format!("SET SESSION lock_wait_timeout = {t}"),
        vec![],
        "cut-over",
    )
    .await?;
    // If godwit hangs, the server drops this connection and with it the locks.
    exec(
        &mut a,
        &format!("SET SESSION wait_timeout = {}", 3 * t + 30),
        vec![],
        "cut-over",
    )
    .await?;
    let mut spare = Vec::new();
    if s.sentry {
        for _ in 0..3 {
            spare.push(
                Conn::new(s.opts.clone())
                    .await
                    .map_err(|e| conn_err(e, "opening the cut-over connections"))?,
            );
        }
    }
    let mut me = MysqlCutOver {
        a: Some(a),
        spare,
        blocked_since: None,
        s,
        sentry,
        sentry_created: false,
    };
    if let Err(e) = me.take_locks().await {
        let _ = me.release().await;
        return Err(e);
    }
    Ok(me)
}

impl MysqlCutOver {
    fn a(&mut self) -> Result<&mut Conn> {
        self.a
            .as_mut()
            .ok_or_else(|| failed("the cut-over connection is gone"))
    }

    async fn other(&self, what: &str) -> Result<Conn> {
        Conn::new(self.s.opts.clone())
            .await
            .map_err(|e| conn_err(e, what))
    }

    async fn take_locks(&mut self) -> Result<()> {
        let db = self.s.db.clone();
        let orig = qualified(&db, &self.s.orig);
        let shadow = qualified(&db, &self.s.shadow);
        let tables = if self.s.sentry {
            let sentry = qualified(&db, &self.sentry);
            let sql = format!(
                "CREATE TABLE {sentry} (id INT PRIMARY KEY) ENGINE=InnoDB COMMENT='{SENTRY_COMMENT}'"
            );
            exec(
                self.a()?,
                &sql,
                vec![],
                "creating the cut-over sentry table",
            )
            .await
            .map_err(|e| e.context(format!("a table named {sentry} must not exist")))?;
            self.sentry_created = true;
            format!("{orig} READ, {sentry} WRITE")
        } else {
            // Aliases o and s are what the flush statements use; each must be locked.
            format!("{orig} WRITE, {orig} AS o WRITE, {shadow} WRITE, {shadow} AS s WRITE")
        };
        exec(
            self.a()?,
            &format!("LOCK TABLES {tables}"),
            vec![],
            "locking the tables for cut-over",
        )
        .await
        .map_err(|e| {
            failed(format!(
                "{} (the lock was not granted within {} s)",
                e.message,
                secs(self.s.timeout)
            ))
        })?;
        Ok(())
    }

    /// Drop the sentry from a fresh connection, if it is still the sentry.
    async fn drop_sentry_elsewhere(&mut self) -> Result<()> {
        if !self.sentry_created {
            return Ok(());
        }
        let mut c = self.other("removing the cut-over sentry").await?;
        let comment: Option<String> = c
            .exec_first(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.s.db, &self.sentry),
            )
            .await
            .map_err(|e| conn_err(e, "removing the cut-over sentry"))?;
        if comment.as_deref() == Some(SENTRY_COMMENT) {
            let sql = format!(
                "DROP TABLE IF EXISTS {}",
                qualified(&self.s.db, &self.sentry)
            );
            exec(&mut c, &sql, vec![], "removing the cut-over sentry").await?;
        }
        self.sentry_created = false;
        let _ = c.disconnect().await;
        Ok(())
    }

    /// The new table's AUTO_INCREMENT counter, set while writes to the original are
    /// held (so the original's counter cannot move any more):
    /// * without `AUTO_INCREMENT = N` in the ALTER, at least the original's counter: ids
    ///   the original handed out and whose rows are gone (deleted at the top of the range,
    ///   before or during the migration) are never handed out again, as with a native
    ///   ALTER, which keeps the counter;
    /// * with it, `N` set again now: the server takes `N`, or the largest id + 1 when
    ///   `N` is not above it, over the rows the table holds at cut-over; that is what the
    ///   native ALTER leaves, even below the original's counter.
    ///
    /// The counters are read from `SHOW CREATE TABLE`, which asks the storage engine;
    /// `information_schema.TABLES` may show a cached value (MySQL 8:
    /// `information_schema_stats_expiry`).
    async fn carry_auto_increment(&mut self) -> Result<()> {
        let (db, orig, shadow) = (
            self.s.db.clone(),
            self.s.orig.clone(),
            self.s.shadow.clone(),
        );
        let explicit = self.s.auto_increment;
        let mut other = None;
        let c = if self.s.sentry {
            other = Some(self.other("carrying over AUTO_INCREMENT").await?);
            other
                .as_mut()
                .ok_or_else(|| Error::internal("no connection"))?
        } else {
            self.a()?
        };
        let s = auto_increment_of(c, &db, &shadow).await?;
        let o = auto_increment_of(c, &db, &orig).await?;
        let set = match (explicit, o, s) {
            // The shadow has no AUTO_INCREMENT column (the ALTER removed it).
            (_, _, None) => None,
            (Some(n), ..) => Some(n),
            (None, Some(o), Some(s)) if o > s => Some(o),
            _ => None,
        };
        if let Some(n) = set {
            let sql = format!(
                "ALTER TABLE {} AUTO_INCREMENT = {n}",
                qualified(&db, &shadow)
            );
            exec(c, &sql, vec![], "carrying over AUTO_INCREMENT").await?;
        }
        if let Some(o) = other {
            self.spare.insert(0, o);
        }
        Ok(())
    }

    async fn swap_with_sentry(&mut self) -> Result<()> {
        let rename = format!(
            "RENAME TABLE {} TO {}, {} TO {}",
            qualified(&self.s.db, &self.s.orig),
            qualified(&self.s.db, &self.sentry),
            qualified(&self.s.db, &self.s.shadow),
            qualified(&self.s.db, &self.s.orig)
        );
        let mut b = self.other("opening the rename connection").await?;
        let b_id = b.id();
        let t = secs(self.s.timeout);
        exec(
            &mut b,
            &format!("SET SESSION lock_wait_timeout = {t}"),
            vec![],
            "cut-over",
        )
        .await?;
        let renamer = tokio::spawn(async move {
            let r = b.query_drop(rename).await;
            let _ = b.disconnect().await;
            r
        });
        // Wait until B's RENAME is queued on the metadata lock, seen from a third connection.
        let mut watcher = self.other("opening the cut-over watcher").await?;
        let deadline = Instant::now() + self.s.timeout;
        let mut queued = false;
        while Instant::now() < deadline && !renamer.is_finished() {
            let state: Option<(Option<String>, Option<String>)> = watcher
                .exec_first(
                    "SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = ?",
                    (b_id,),
                )
                .await
                .map_err(|e| conn_err(e, "watching the rename"))?;
            if let Some((Some(st), Some(info))) = state {
                if st.to_lowercase().contains("metadata lock")
                    && info.to_uppercase().starts_with("RENAME")
                {
                    queued = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = watcher.disconnect().await;
        if !queued {
            renamer.abort();
            return Err(match renamer.await {
                Ok(Err(e)) => failed(format!("the RENAME failed before it was queued: {e}")),
                _ => failed("the RENAME was not queued behind the cut-over lock in time"),
            });
        }
        if let Some(hold) = self.s.hold {
            // Test seam: keep the lock with the RENAME queued, so a test can kill A here.
            let a = self.a()?;
            let r = a
                .exec_drop(
                    "SELECT /* godwit cut-over hold */ SLEEP(?)",
                    (hold.as_secs_f64(),),
                )
                .await;
            if let Err(e) = r {
                self.a = None;
                let _ = renamer.await;
                return Err(failed(format!(
                    "the cut-over connection died while holding the lock: {e}"
                )));
            }
        }
        let sentry = qualified(&self.s.db, &self.sentry);
        let dropped = async {
            let a = self.a()?;
            exec(
                a,
                &format!("DROP TABLE {sentry}"),
                vec![],
                "dropping the sentry",
            )
            .await?;
            exec(a, "UNLOCK TABLES", vec![], "releasing the cut-over lock").await
        }
        .await;
        if let Err(e) = dropped {
            self.a = None;
            let _ = renamer.await;
            return Err(failed(format!(
                "the cut-over connection failed before the swap: {}",
                e.message
            )));
        }
        self.sentry_created = false;
        match renamer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(format!("the RENAME failed: {e}"))),
            Err(e) => return Err(failed(format!("the RENAME task failed: {e}"))),
        }
        // The original now carries the sentry's name; give it its final name.
        let mut c = self.other("naming the old table").await?;
        let sql = format!(
            "RENAME TABLE {sentry} TO {}",
            qualified(&self.s.db, &self.s.old)
        );
        if let Err(e) = exec(&mut c, &sql, vec![], "naming the old table").await {
            tracing::warn!(
                "tables swapped, but the old table keeps the name {}: {e}",
                self.sentry
            );
        }
        let _ = c.disconnect().await;
        Ok(())
    }
}

#[async_trait]
impl CutOverLock for MysqlCutOver {
    async fn fence(&mut self) -> Result<Position> {
        let (file, pos) = super::MysqlEngine::binlog_position(self.a()?).await?;
        Ok(Position::Binlog { file, pos })
    }

    async fn flush(&mut self, keys: &[Key]) -> Result<u64> {
        let b = self.s.builder.clone();
        if self.s.sentry {
            // Writers are held by A's READ lock and every one of them has committed, so
            // a plain read sees the final state; a locking read could wait on A.
            let mut c = self.other("flushing under the cut-over lock").await?;
            let n = flush_keys(&mut c, &b, keys, false, false).await;
            if n.is_ok() {
                self.spare.insert(0, c);
            }
            return n;
        }
        flush_keys(self.a()?, &b, keys, false, true).await
    }

    async fn swap(&mut self) -> Result<()> {
        if let Err(e) = self.carry_auto_increment().await {
            let _ = self.release().await;
            return Err(e);
        }
        if self.s.sentry {
            let r = self.swap_with_sentry().await;
            if r.is_err() {
                let _ = self.release().await;
            }
            return r;
        }
        let rename = format!(
            "RENAME TABLE {} TO {}, {} TO {}",
            qualified(&self.s.db, &self.s.orig),
            qualified(&self.s.db, &self.s.old),
            qualified(&self.s.db, &self.s.shadow),
            qualified(&self.s.db, &self.s.orig)
        );
        let a = self.a()?;
        exec(a, &rename, vec![], "swapping the tables").await?;
        exec(a, "UNLOCK TABLES", vec![], "releasing the cut-over lock").await?;
        Ok(())
    }

    fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    async fn release(&mut self) -> Result<()> {
        if let Some(mut a) = self.a.take() {
            let _ = a.query_drop("UNLOCK TABLES").await;
            let _ = a.disconnect().await;
        }
        self.drop_sentry_elsewhere().await
    }
}

/// The table's AUTO_INCREMENT counter, `None` when it has no AUTO_INCREMENT column.
async fn auto_increment_of(c: &mut Conn, db: &str, table: &str) -> Result<Option<u64>> {
    // Bytes: a BINARY default is not always UTF-8.
    let row: Option<(String, Vec<u8>)> = c
        .query_first(format!("SHOW CREATE TABLE {}", qualified(db, table)))
        .await
        .map_err(|e| conn_err(e, "reading AUTO_INCREMENT"))?;
    Ok(row.and_then(|(_, create)| table_auto_increment(&String::from_utf8_lossy(&create))))
}

/// The AUTO_INCREMENT counter in a `SHOW CREATE TABLE` text; `None` when no column is
/// AUTO_INCREMENT. The counter is the `AUTO_INCREMENT=N` table option on the line that
/// closes the column list (`) ENGINE=InnoDB AUTO_INCREMENT=91 DEFAULT CHARSET=…`;
/// partitions follow on later lines), read before any `COMMENT` (whose text could hold
/// anything); the server leaves the option out while the counter is 1. Column lines
/// say `AUTO_INCREMENT` without `=`.
pub(crate) fn table_auto_increment(create: &str) -> Option<u64> {
    let lines: Vec<&str> = create.lines().collect();
    let end = lines.iter().position(|l| l.starts_with(')'))?;
    let has_column = lines[..end].iter().any(|l| {
        l.trim_start().starts_with('`')
            && (l.contains(" AUTO_INCREMENT ")
                || l.contains(" AUTO_INCREMENT,")
                || l.ends_with(" AUTO_INCREMENT"))
    });
    if !has_column {
        return None;
    }
    let options = lines[end];
    let options = options.split(" COMMENT=").next().unwrap_or(options);
    let Some(at) = options.find(" AUTO_INCREMENT=") else {
        return Some(1);
    };
    let digits: String = options[at + " AUTO_INCREMENT=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::sentry_name;

    #[test]
    fn auto_increment_is_read_from_the_table_options() {
        use super::table_auto_increment as ai;
        let t = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=256 DEFAULT CHARSET=latin1";
        assert_eq!(ai(t), Some(256));
        let none = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT=' AUTO_INCREMENT=5'";
        assert_eq!(ai(none), Some(1));
        assert_eq!(ai("CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB"), None);
        let partitioned = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=12 DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)\nPARTITIONS 2";
        assert_eq!(ai(partitioned), Some(12));
    }

    #[test]
    fn shadow_and_sentry_sort_after_the_original() {
        for t in ["orders", "A", "Zeta", "t_1", "_x"] {
            let (sh, se) = (super::shadow_name(t).unwrap(), sentry_name(t).unwrap());
            assert!(t < se.as_str() && t < sh.as_str(), "{t} {se} {sh}");
        }
    }

    #[test]
    fn sentry_sorts_right_after_the_original() {
        for t in ["orders", "A", "Zeta", "t_1", "_x"] {
            let s = sentry_name(t).unwrap();
            assert!(s.as_str() > t, "{s} must sort after {t}");
        }
        assert!(sentry_name(&"x".repeat(60)).is_none());
    }
}
