//! The online core's state machine against the fake engine: no server needed.
//!
//! Every test runs on tokio's paused clock, so backoff and stream waits cost no real time.

use super::checkpoint::ResumeMode;
use super::fake::{diff, Call, Config, FakeEngine, FakeOp, LockFault, World};
use super::{Migration, Outcome, RunOptions};
use crate::ddl::AlterSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Done, Reporter, State};
use crate::throttle::Throttle;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn opts() -> RunOptions {
    RunOptions {
        alter: AlterSpec {
            clauses: "ADD COLUMN c INT".into(),
            renames: vec![],
            new_columns: vec![],
            auto_increment: None,
        },
        execute: true,
        chunk_time: Duration::from_millis(500),
        chunk_size: 100,
        cut_over_timeout: Duration::from_secs(3),
        cut_over_retries: 10,
        postpone_flag_file: None,
        ok_to_drop_table: false,
        verify: true,
        analyze: true,
        resume: ResumeMode::Auto,
        after_swap_hold: None,
        reconnect: Default::default(),
        revert_window: None,
        revert: false,
    }
}

fn no_throttle() -> Throttle {
    Throttle::new(None, None, None, None)
}

/// Run the core against `fake`; the result and the states it went through.
async fn run_with(
    fake: &FakeEngine,
    opts: RunOptions,
    throttle: Throttle,
) -> (Result<Outcome>, Vec<State>) {
    let mut rep = Reporter::silent();
    let r = Migration::new(fake, opts, throttle, &mut rep, fake.abort_flag())
        .run()
        .await;
    (r, rep.states.clone())
}

async fn run(fake: &FakeEngine, opts: RunOptions) -> Result<Outcome> {
    run_with(fake, opts, no_throttle()).await.0
}

fn done(r: Result<Outcome>) -> Done {
    match r {
        Ok(Outcome::Done(d)) => *d,
        Ok(Outcome::DryRun(_)) => panic!("expected a migration, got a dry run"),
        Ok(Outcome::WindowEnded) => panic!("expected a migration, got a revert window"),
        Err(e) => panic!("the migration failed: {e}"),
    }
}

fn failed(r: Result<Outcome>) -> Error {
    match r {
        Ok(_) => panic!("expected the migration to fail"),
        Err(e) => e,
    }
}

/// A successful run: the table the application now uses holds exactly what it wrote,
/// and nothing of the run is left but (maybe) the old table.
fn assert_migrated(w: &World) {
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(w.swapped, "not swapped");
    let new = w.shadow.as_ref().expect("the new table");
    assert_eq!(
        new,
        &w.truth,
        "new table vs writes: {}",
        diff(&w.truth, new)
    );
    assert!(!w.lock_held(), "the cut-over lock is still held");
    assert!(
        w.stream_closed() && !w.stream_artifacts(),
        "stream left open"
    );
}

/// A failed run: nothing swapped, everything it created removed, the original holds every
/// write.
fn assert_untouched(w: &World) {
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(!w.swapped, "swapped");
    assert!(!w.called(&Call::Swap) || w.count(|c| *c == Call::Release) > 0);
    assert!(w.called(&Call::Cleanup(false)), "cleanup not called");
    assert!(w.shadow.is_none(), "the shadow table is left");
    assert!(!w.stream_artifacts(), "the stream's artifacts are left");
    assert!(!w.lock_held(), "the cut-over lock is still held");
    assert!(!w.called(&Call::DropOld));
    assert_eq!(
        w.orig,
        w.truth,
        "original vs writes: {}",
        diff(&w.truth, &w.orig)
    );
}

/// The application: random inserts, updates, deletes and key changes.
struct Writer {
    rng: StdRng,
    max_key: i64,
    ops_per_call: u32,
    next_value: i64,
}

impl Writer {
    fn new(seed: u64, max_key: i64, ops_per_call: u32) -> Writer {
        Writer {
            rng: StdRng::seed_from_u64(seed),
            max_key: max_key.max(10),
            ops_per_call,
            next_value: 1_000_000,
        }
    }

    /// A key that exists (about uniformly), if any.
    fn existing(&mut self, w: &World) -> Option<i64> {
        let from = self.rng.random_range(0..=self.max_key * 2);
        w.truth
            .range(from..)
            .next()
            .or_else(|| w.truth.iter().next())
            .map(|(k, _)| *k)
    }

    fn act(&mut self, w: &mut World) {
        let n = self.rng.random_range(0..=self.ops_per_call);
        for _ in 0..n {
            self.next_value += 1;
            let v = self.next_value;
            let fresh = self.rng.random_range(1..=self.max_key * 2);
            match self.rng.random_range(0..4) {
                0 => w.insert(fresh, v),
                1 => {
                    if let Some(k) = self.existing(w) {
                        w.update(k, v)
                    }
                }
                2 => {
                    if let Some(k) = self.existing(w) {
                        w.delete(k)
                    }
                }
                _ => {
                    if let Some(k) = self.existing(w) {
                        w.change_key(k, fresh)
                    }
                }
            }
        }
    }
}

fn flag_file(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("godwit-fake-{}-{name}", std::process::id()));
    std::fs::write(&p, b"").unwrap();
    p
}

// ---------------------------------------------------------------------------------------
// Chunk boundaries

#[tokio::test(start_paused = true)]
async fn chunk_boundaries_cover_every_row_once() {
    for pg_style in [false, true] {
        for size in [0i64, 1, 99, 100, 101, 1000, 5000] {
            let fake = FakeEngine::with_rows(
                size,
                Config {
                    copier_reports_finished: pg_style,
                    ..Config::default()
                },
            );
            fake.on_call(|c, w| {
                if *c == Call::AfterCopy {
                    let s = w.shadow.as_ref().unwrap();
                    assert_eq!(s, &w.orig, "after the copy: {}", diff(&w.orig, s));
                }
            });
            let d = done(run(&fake, opts()).await);
            let w = fake.world();
            assert_migrated(&w);
            assert_eq!(d.rows_copied, size as u64, "size {size}");
            assert_eq!(d.keys_replayed, 0, "nothing changed, nothing replayed");
            assert_eq!(w.count(|c| matches!(c, Call::Flush(_))), 0);

            // The ranges follow each other from the start to the end.
            let chunks = &w.chunks;
            assert_eq!(chunks.first().map(|c| c.0), Some(None), "size {size}");
            assert_eq!(chunks.last().map(|c| c.1), Some(None), "size {size}");
            for pair in chunks.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "size {size}: {chunks:?}");
                assert!(pair[0].1.is_some());
            }
            let asked: Vec<u64> = w
                .calls
                .iter()
                .filter_map(|c| match c {
                    Call::NextChunk(n) => Some(*n),
                    _ => None,
                })
                .collect();
            assert_eq!(asked[0], 100);
            // A bounded chunk holds exactly the rows asked for.
            for (i, (after, upto)) in chunks.iter().enumerate() {
                if let Some(upto) = upto {
                    let lo = after.unwrap_or(i64::MIN);
                    let n = w.orig.range(lo + 1..=*upto).count() as u64;
                    assert_eq!(n, asked[i], "size {size}, chunk {i}");
                }
            }
            // MySQL's copier answers one more call with None; PostgreSQL's says finished.
            let extra = usize::from(!pg_style);
            assert_eq!(asked.len(), chunks.len() + extra, "size {size}");
            let expect: Vec<(Option<i64>, Option<i64>)> = match size {
                0 | 1 | 99 => vec![(None, None)],
                100 => vec![(None, Some(100)), (Some(100), None)],
                101 => vec![(None, Some(100)), (Some(100), None)],
                _ => continue,
            };
            assert_eq!(chunks, &expect, "size {size}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_copy_shrinks_the_chunk_to_the_floor_and_no_lower() {
    let fake = FakeEngine::with_rows(
        2500,
        Config {
            // Each chunk takes at least 30 ms against a 10 ms target: it halves each time.
            chunk_delay: Duration::from_millis(30),
            ..Config::default()
        },
    );
    let mut o = opts();
    o.chunk_time = Duration::from_millis(10);
    o.chunk_size = 1000;
    let d = done(run(&fake, o).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.rows_copied, 2500);
    let asked: Vec<u64> = w
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::NextChunk(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(&asked[..5], &[1000, 500, 250, 125, 100], "{asked:?}");
    assert!(asked[4..].iter().all(|&n| n == 100), "{asked:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fast_copy_grows_the_chunk_to_the_ceiling_and_no_higher() {
    let fake = FakeEngine::with_rows(260_001, Config::default());
    let mut o = opts();
    // A chunk would have to take 30 s for the size not to double.
    o.chunk_time = Duration::from_secs(60);
    o.chunk_size = 260_000;
    let d = done(run(&fake, o).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.rows_copied, 260_001);
    let asked: Vec<u64> = w
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::NextChunk(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(&asked[..2], &[260_000, 500_000], "{asked:?}");
}

// ---------------------------------------------------------------------------------------
// Replay

#[tokio::test(start_paused = true)]
async fn a_key_changed_many_times_is_flushed_once_per_round() {
    let fake = FakeEngine::with_rows(500, Config::default());
    fake.on_call(|c, w| {
        if *c == Call::AfterCopy {
            for i in 0..500 {
                w.update(7, i);
            }
            for i in 0..300 {
                w.update(8, i);
            }
            w.delete(9);
            w.insert(9, 1);
            w.delete(9);
        }
    });
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    let flushes: Vec<&Call> = w
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Flush(_)))
        .collect();
    assert_eq!(flushes, vec![&Call::Flush(vec![7, 8, 9])]);
    // Replayed in the catch-up, before the cut-over reads the server's position (the
    // first read of it after the engine's after-copy steps: the one before them is the
    // copy's end, see race 8).
    let flush = w.first(|c| matches!(c, Call::Flush(_))).unwrap();
    let after_copy = w.first(|c| *c == Call::AfterCopy).unwrap();
    let cut_over_read = (after_copy..w.calls.len())
        .find(|&i| w.calls[i] == Call::CurrentPosition)
        .unwrap();
    assert!(after_copy < flush && flush < cut_over_read);
    assert_eq!(d.keys_replayed, 3);
    assert!(!w.shadow.as_ref().unwrap().contains_key(&9));
}

/// One run with concurrent writers at every engine call, in a configuration picked by
/// `seed`.
async fn concurrent_run(seed: u64) {
    let sizes = [0i64, 1, 50, 500, 3000];
    let size = sizes[seed as usize % sizes.len()];
    let cfg = Config {
        sees_swap: seed.is_multiple_of(3),
        copier_reports_finished: seed % 2 == 1,
        poll_limit: [usize::MAX, 1, 7][seed as usize % 3],
        knows_position: seed % 4 != 3,
        after_copy_time: if seed % 5 == 2 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        },
        ..Config::default()
    };
    let fake = FakeEngine::with_rows(size, cfg.clone());
    let fault = [
        None,
        Some(LockFault::Timeout),
        Some(LockFault::Fence),
        Some(LockFault::Flush),
        Some(LockFault::Swap),
    ][(seed / 2) as usize % 5];
    if let Some(f) = fault {
        fake.world().lock_faults.insert(1, f);
    }
    let mut writer = Writer::new(seed, size, [2, 5, 12][seed as usize % 3]);
    let mut chunks = 0;
    fake.on_call(move |c, w| {
        writer.act(w);
        if let Call::NextChunk(_) = c {
            chunks += 1;
            // A burst on the second chunk: more than a flush's worth of dirty keys.
            if chunks == 2 && seed % 4 == 1 && cfg.poll_limit > 1 {
                for k in 0..2_500 {
                    w.insert(100_000 + k, k);
                    w.update(1 + k % 40, k);
                }
            }
        }
    });
    let mut o = opts();
    o.chunk_size = [10, 100, 1000][seed as usize % 3];
    o.ok_to_drop_table = seed.is_multiple_of(2);
    let d = done(run(&fake, o.clone()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(w.old_dropped, o.ok_to_drop_table, "seed {seed}");
    assert_eq!(
        d.cut_over_attempts,
        1 + u32::from(fault.is_some()),
        "seed {seed}"
    );
    // A key is never given twice in one flush (the fake checks); every write was seen.
    assert!(w.count(|c| matches!(c, Call::Poll)) > 0);
    // Verified under the same writes, and nothing needed repair: replay is exact.
    let v = d.verify.expect("verified");
    assert_eq!(v.repaired_ranges, 0, "seed {seed}");
    assert!(v.chunks >= 1 && v.rounds == 1, "seed {seed}: {v:?}");
}

#[tokio::test(start_paused = true)]
async fn concurrent_writes_at_every_step_end_in_an_equal_table() {
    for seed in 0..100 {
        concurrent_run(seed).await;
    }
}

// ---------------------------------------------------------------------------------------
// Failures before the cut-over

#[tokio::test(start_paused = true)]
async fn a_stream_error_fails_the_run_keeping_its_kind() {
    // (the call after which the next poll fails)
    let places: [fn(&Call, usize) -> bool; 3] = [
        |c, n| matches!(c, Call::NextChunk(_)) && n == 2,
        |c, _| *c == Call::AfterCopy,
        |c, _| *c == Call::BeforeCutOver,
    ];
    for (i, place) in places.into_iter().enumerate() {
        let fake = FakeEngine::with_rows(1000, Config::default());
        // An engine that cannot resume cleans up after a lost server (one that can keeps
        // what it made for the next run: see the Resume tests).
        fake.world().resumable = false;
        let mut writer = Writer::new(i as u64, 1000, 2);
        let mut seen = 0;
        fake.on_call(move |c, w| {
            writer.act(w);
            if matches!(c, Call::NextChunk(_)) {
                seen += 1;
            }
            if place(c, seen) {
                // Something to read, so the next step polls.
                w.update(1, -1);
                w.fail_next_poll = Some(ErrorKind::Unreachable);
            }
        });
        let e = failed(run(&fake, opts()).await);
        assert_eq!(e.kind, ErrorKind::Unreachable, "place {i}: {e}");
        let w = fake.world();
        assert_untouched(&w);
        assert!(!w.called(&Call::Lock(1)), "place {i}");
    }
}

fn reconnecting() -> RunOptions {
    RunOptions {
        reconnect: crate::engine::retry::Reconnect {
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
        ..opts()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_stream_is_reopened_where_it_was_read() {
    // (the call after which the stream's connection is lost)
    let places: [fn(&Call, usize) -> bool; 4] = [
        |c, n| matches!(c, Call::NextChunk(_)) && n == 2,
        |c, n| matches!(c, Call::NextChunk(_)) && n == 5,
        |c, _| *c == Call::AfterCopy,
        |c, _| *c == Call::BeforeCutOver,
    ];
    for (i, place) in places.into_iter().enumerate() {
        let fake = FakeEngine::with_rows(1000, Config::default());
        let mut writer = Writer::new(10 + i as u64, 1000, 2);
        let mut seen = 0;
        fake.on_call(move |c, w| {
            writer.act(w);
            if matches!(c, Call::NextChunk(_)) {
                seen += 1;
            }
            if place(c, seen) {
                w.update(1, -1);
                w.fail_next_poll = Some(ErrorKind::Unreachable);
            }
        });
        done(run(&fake, reconnecting()).await);
        let w = fake.world();
        assert_migrated(&w);
        assert_eq!(w.count(|c| *c == Call::OpenStream), 2, "place {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn only_a_lost_connection_reopens_the_stream() {
    let fake = FakeEngine::with_rows(1000, Config::default());
    let mut seen = 0;
    fake.on_call(move |c, w| {
        if matches!(c, Call::NextChunk(_)) {
            seen += 1;
            if seen == 2 {
                w.update(1, -1);
                w.fail_next_poll = Some(ErrorKind::Internal);
            }
        }
    });
    let e = failed(run(&fake, reconnecting()).await);
    assert_eq!(e.kind, ErrorKind::Internal);
    let w = fake.world();
    assert_untouched(&w);
    assert_eq!(w.count(|c| *c == Call::OpenStream), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_replay_fails_the_run() {
    let fake = FakeEngine::with_rows(300, Config::default());
    fake.on_call(|c, w| {
        if *c == Call::AfterCopy {
            w.update(5, 1);
            w.fail_next_flush = true;
        }
    });
    let e = failed(run(&fake, opts()).await);
    assert_eq!(e.kind, ErrorKind::Internal);
    assert_untouched(&fake.world());
}

#[tokio::test(start_paused = true)]
async fn a_ddl_on_the_original_during_the_copy_fails_the_run() {
    let fake = FakeEngine::with_rows(1000, Config::default());
    let mut chunks = 0;
    fake.on_call(move |c, w| {
        if matches!(c, Call::NextChunk(_)) {
            chunks += 1;
            if chunks == 3 {
                w.ddl();
            }
        }
    });
    let e = failed(run(&fake, opts()).await);
    assert_eq!(e.kind, ErrorKind::SourceChanged);
    assert_untouched(&fake.world());
}

#[tokio::test(start_paused = true)]
async fn critical_load_aborts_and_cleans_up() {
    let fake = FakeEngine::with_rows(100, Config::default());
    fake.world().status.insert("Threads_running".into(), 50.0);
    let throttle = Throttle::new(
        None,
        None,
        Some("Threads_running=10".parse().unwrap()),
        None,
    );
    let (r, _) = run_with(&fake, opts(), throttle).await;
    let e = failed(r);
    assert_eq!(e.kind, ErrorKind::CriticalLoad);
    let w = fake.world();
    assert_untouched(&w);
    assert!(w.called(&Call::StatusValues));
    assert_eq!(w.count(|c| matches!(c, Call::NextChunk(_))), 0);
}

#[tokio::test(start_paused = true)]
async fn the_throttle_flag_holds_the_copy_while_the_stream_is_read() {
    let flag = flag_file("throttle");
    let fake = FakeEngine::with_rows(300, Config::default());
    let f = flag.clone();
    let mut polls = 0;
    fake.on_call(move |c, w| {
        if *c == Call::Poll && f.exists() {
            polls += 1;
            w.update(3, polls);
            assert!(
                !w.calls.iter().any(|c| matches!(c, Call::NextChunk(_))),
                "a chunk was copied while throttled"
            );
            if polls == 5 {
                std::fs::remove_file(&f).unwrap();
            }
        }
    });
    let throttle = Throttle::new(None, None, None, Some(flag.clone()));
    let (r, states) = run_with(&fake, opts(), throttle).await;
    let _ = std::fs::remove_file(&flag);
    done(r);
    assert_migrated(&fake.world());
    let at = states.iter().position(|s| *s == State::Throttled).unwrap();
    assert_eq!(states[at + 1], State::Copy, "{states:?}");
}

// ---------------------------------------------------------------------------------------
// Cut-over

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(6)).min(Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn lock_timeouts_are_retried_with_backoff() {
    for fault in [LockFault::Timeout, LockFault::Swap] {
        let fake = FakeEngine::with_rows(200, Config::default());
        for a in 1..=3 {
            fake.world().lock_faults.insert(a, fault);
        }
        let mut writer = Writer::new(7, 200, 2);
        fake.on_call(move |_, w| writer.act(w));
        let mut o = opts();
        o.cut_over_retries = 5;
        let d = done(run(&fake, o.clone()).await);
        let w = fake.world();
        assert_migrated(&w);
        assert_eq!(d.cut_over_attempts, 4);
        assert_eq!(w.count(|c| matches!(c, Call::Lock(_))), 4);
        let releases = w.count(|c| *c == Call::Release);
        assert_eq!(releases, if fault == LockFault::Swap { 3 } else { 0 });
        // Virtual time between attempts: the lock wait (when it timed out) plus backoff.
        for (i, pair) in w.lock_times.windows(2).enumerate() {
            let attempt = i as u32 + 1;
            let wait = if fault == LockFault::Timeout {
                o.cut_over_timeout
            } else {
                Duration::ZERO
            };
            let gap = pair[1] - pair[0];
            let min = wait + backoff(attempt);
            assert!(
                gap >= min && gap < min + Duration::from_secs(1),
                "{fault:?} attempt {attempt}: {gap:?} vs {min:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_cut_over_that_always_fails_gives_up_after_the_retries() {
    for (fault, retries) in [
        (LockFault::Timeout, 4),
        (LockFault::Swap, 4),
        (LockFault::Fence, 2),
        (LockFault::Flush, 1),
        (LockFault::Timeout, 0),
    ] {
        let fake = FakeEngine::with_rows(200, Config::default());
        for a in 1..=10 {
            fake.world().lock_faults.insert(a, fault);
        }
        let mut writer = Writer::new(9, 200, 2);
        fake.on_call(move |_, w| writer.act(w));
        let mut o = opts();
        o.cut_over_retries = retries;
        let e = failed(run(&fake, o).await);
        let attempts = retries.max(1) as usize;
        assert_eq!(e.kind, ErrorKind::CutOverFailed, "{fault:?}: {e}");
        assert!(
            e.message
                .contains(&format!("cut-over failed {attempts} times")),
            "{e}"
        );
        assert!(e.hint.is_some());
        let w = fake.world();
        assert_untouched(&w);
        assert_eq!(
            w.count(|c| matches!(c, Call::Lock(_))),
            attempts,
            "{fault:?}"
        );
        let releases = w.count(|c| *c == Call::Release);
        let locked = if fault == LockFault::Timeout {
            0
        } else {
            attempts
        };
        assert_eq!(releases, locked, "{fault:?}: release once per lock granted");
    }
}

/// A failure under the lock on attempt 1, with writes just before the lock (in the dirty
/// set at the fence) and while it is held (they wait, then go to the original).
async fn failure_under_the_lock(fault: LockFault) {
    let fake = FakeEngine::with_rows(200, Config::default());
    fake.world().lock_faults.insert(1, fault);
    fake.on_call(|c, w| match c {
        Call::Lock(1) => {
            for k in 3..=6 {
                w.update(k, -k);
            }
            w.delete(7);
            w.change_key(8, 5000);
            w.insert(6000, 1);
        }
        Call::Fence => {
            // Held until the lock ends.
            w.update(10, -10);
            w.insert(7000, 1);
        }
        _ => {}
    });
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.cut_over_attempts, 2);
    assert_eq!(w.count(|c| *c == Call::Release), 1, "{fault:?}");
    // A failed swap is checked before it is called failed.
    let asked = if fault == LockFault::Swap { 1 } else { 0 };
    assert_eq!(w.count(|c| *c == Call::Swapped), asked, "{fault:?}");
    let before: BTreeSet<i64> = [3, 4, 5, 6, 7, 8, 5000, 6000].into();
    let release = w.first(|c| *c == Call::Release).unwrap();
    if fault != LockFault::Fence {
        // The keys taken for the final flush of attempt 1 ...
        let taken = w.calls[..release]
            .iter()
            .find_map(|c| match c {
                Call::LockFlush(k) => Some(k.iter().copied().collect::<BTreeSet<i64>>()),
                _ => None,
            })
            .unwrap();
        assert_eq!(taken, before, "{fault:?}");
    }
    // ... are replayed before attempt 2, with the writes that waited for the lock.
    let replayed: BTreeSet<i64> = w.calls[release..]
        .iter()
        .take_while(|c| !matches!(c, Call::Lock(_)))
        .flat_map(|c| match c {
            Call::Flush(k) => k.clone(),
            _ => vec![],
        })
        .collect();
    let expect: BTreeSet<i64> = before.iter().copied().chain([10, 7000]).collect();
    assert_eq!(replayed, expect, "{fault:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fence_that_fails_releases_the_lock_and_loses_nothing() {
    failure_under_the_lock(LockFault::Fence).await;
}

#[tokio::test(start_paused = true)]
async fn a_final_flush_that_fails_puts_its_keys_back() {
    failure_under_the_lock(LockFault::Flush).await;
}

#[tokio::test(start_paused = true)]
async fn a_swap_that_fails_puts_its_keys_back() {
    failure_under_the_lock(LockFault::Swap).await;
}

/// The swap happened but its answer was lost: the core asks, learns it happened, and
/// ends as a successful migration (no retry, no release, no cleanup of the new table).
#[tokio::test(start_paused = true)]
async fn a_swap_whose_answer_is_lost_is_found_to_have_happened() {
    let fake = FakeEngine::with_rows(200, Config::default());
    fake.world()
        .lock_faults
        .insert(1, LockFault::SwapAnswerLost);
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.cut_over_attempts, 1);
    assert!(d.cleanup_complete);
    assert_eq!(w.count(|c| *c == Call::Swapped), 1);
    assert_eq!(w.count(|c| *c == Call::Release), 0);
}

/// The server goes away during the swap (a restart): godwit asks again until it answers
/// (within `--reconnect-timeout-seconds`) instead of calling the outcome unknown.
#[tokio::test(start_paused = true)]
async fn a_swap_s_outcome_is_asked_again_until_the_server_answers() {
    for (fault, attempts) in [(LockFault::SwapAnswerLost, 1), (LockFault::Swap, 2)] {
        let fake = FakeEngine::with_rows(200, Config::default());
        {
            let mut w = fake.world();
            w.lock_faults.insert(1, fault);
            w.swapped_unreachable = 3;
        }
        let mut o = opts();
        o.reconnect.timeout = Duration::from_secs(60);
        let d = done(run(&fake, o).await);
        let w = fake.world();
        assert_migrated(&w);
        assert_eq!(d.cut_over_attempts, attempts, "{fault:?}");
        assert_eq!(w.count(|c| *c == Call::Swapped), 4, "{fault:?}");
    }
}

/// When the server stays away longer than `--reconnect-timeout-seconds`, the outcome is
/// unknown: the run says so (exit 10) and removes nothing.
#[tokio::test(start_paused = true)]
async fn a_swap_s_outcome_that_stays_unknown_is_reported_as_such() {
    let fake = FakeEngine::with_rows(200, Config::default());
    {
        let mut w = fake.world();
        w.lock_faults.insert(1, LockFault::SwapAnswerLost);
        w.swapped_unreachable = u32::MAX;
    }
    let mut o = opts();
    o.reconnect.timeout = Duration::from_secs(5);
    let e = run(&fake, o).await.err().expect("the run must fail");
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.message.contains("cannot be told"), "{e}");
    let w = fake.world();
    // The swap happened: the new table stays, nothing is removed.
    assert!(w.swapped);
}

#[tokio::test(start_paused = true)]
async fn a_stream_error_under_the_lock_releases_it_and_retries() {
    let fake = FakeEngine::with_rows(200, Config::default());
    fake.on_call(|c, w| match c {
        Call::Lock(1) => w.update(3, -3),
        Call::Fence if w.count(|c| *c == Call::Fence) == 1 => {
            w.fail_next_poll = Some(ErrorKind::Unreachable)
        }
        _ => {}
    });
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.cut_over_attempts, 2);
    assert_eq!(w.count(|c| *c == Call::Release), 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_after_the_final_flush_fails_loudly_and_keeps_the_old_table() {
    for leak in [false, true] {
        let fake = FakeEngine::with_rows(
            200,
            Config {
                sees_swap: true,
                ..Config::default()
            },
        );
        if leak {
            fake.world().leak_at_swap = vec![FakeOp::Insert(9000, 1), FakeOp::Insert(9001, 2)];
        }
        let mut writer = Writer::new(3, 200, 2);
        fake.on_call(move |_, w| writer.act(w));
        let mut o = opts();
        o.ok_to_drop_table = true;
        let r = run(&fake, o).await;
        let w = fake.world();
        assert!(w.violations.is_empty(), "{:?}", w.violations);
        if !leak {
            let d = done(r);
            assert_migrated(&w);
            assert!(d.old_table_dropped && w.old_dropped);
            continue;
        }
        let e = failed(r);
        assert_eq!(e.kind, ErrorKind::DataError, "{e}");
        assert!(e.message.contains("2 write(s)"), "{e}");
        assert!(e.message.contains("_godwit_old_t_1"), "{e}");
        assert!(w.swapped);
        assert!(!w.called(&Call::DropOld), "the old table was dropped");
        assert!(!w.old_dropped);
        assert_eq!(
            w.orig.get(&9000),
            Some(&1),
            "the leaked write is in the old table"
        );
        assert!(!w.lock_held());
    }
}

// ---------------------------------------------------------------------------------------
// Cancellation

/// Abort when `when` says so; the run must stop with Aborted, clean up, swap nothing.
async fn aborted_at(
    name: &str,
    mut when: impl FnMut(&Call) -> bool + Send + 'static,
    o: RunOptions,
    throttle: Throttle,
) -> (FakeEngine, Vec<State>) {
    let fake = FakeEngine::with_rows(1000, Config::default());
    fake.world().lock_faults.insert(1, LockFault::Timeout);
    let mut writer = Writer::new(11, 1000, 2);
    let mut fired = false;
    let mut after = 0;
    fake.on_call(move |c, w| {
        writer.act(w);
        if fired {
            after += 1;
            // A core that ignores the abort would otherwise run on (postponed: forever).
            assert!(
                after < 300,
                "the core made {after} engine calls after the abort"
            );
        } else if when(c) {
            fired = true;
            w.abort.store(true, Ordering::SeqCst);
        }
    });
    let (r, states) = run_with(&fake, o, throttle).await;
    let e = failed(r);
    assert_eq!(e.kind, ErrorKind::Aborted, "{name}: {e}");
    assert_untouched(&fake.world());
    assert_eq!(states.last(), Some(&State::Failed), "{name}");
    (fake, states)
}

/// The state the run was in when it stopped.
fn stopped_in(states: &[State]) -> State {
    let cleanup = states.iter().rposition(|s| *s == State::Cleanup).unwrap();
    states[cleanup - 1]
}

/// Counts calls matching `f`; true on the `n`-th.
fn nth(n: usize, f: impl Fn(&Call) -> bool) -> impl FnMut(&Call) -> bool {
    let mut seen = 0;
    move |c| {
        seen += usize::from(f(c));
        f(c) && seen == n
    }
}

#[tokio::test(start_paused = true)]
async fn abort_during_preflight() {
    let (fake, _) = aborted_at(
        "preflight",
        |c| *c == Call::Preflight,
        opts(),
        no_throttle(),
    )
    .await;
    // Nothing is copied after the abort.
    assert_eq!(fake.world().count(|c| matches!(c, Call::NextChunk(_))), 0);
}

#[tokio::test(start_paused = true)]
async fn abort_during_copy() {
    let when = nth(2, |c| matches!(c, Call::NextChunk(_)));
    let (fake, states) = aborted_at("copy", when, opts(), no_throttle()).await;
    assert_eq!(stopped_in(&states), State::Copy);
    let w = fake.world();
    assert_eq!(w.count(|c| matches!(c, Call::NextChunk(_))), 2);
    assert!(!w.called(&Call::AfterCopy));
}

#[tokio::test(start_paused = true)]
async fn abort_while_throttled() {
    let flag = flag_file("abort-throttled");
    let throttle = Throttle::new(None, None, None, Some(flag.clone()));
    let when = nth(3, |c| *c == Call::Poll);
    let (fake, states) = aborted_at("throttled", when, opts(), throttle).await;
    let _ = std::fs::remove_file(&flag);
    assert_eq!(stopped_in(&states), State::Throttled);
    assert_eq!(fake.world().count(|c| matches!(c, Call::NextChunk(_))), 0);
}

#[tokio::test(start_paused = true)]
async fn abort_during_catch_up() {
    let (fake, states) =
        aborted_at("catch-up", |c| *c == Call::AfterCopy, opts(), no_throttle()).await;
    assert_eq!(stopped_in(&states), State::CatchUp);
    assert!(!fake.world().called(&Call::BeforeCutOver));
}

#[tokio::test(start_paused = true)]
async fn abort_while_postponed() {
    let flag = flag_file("abort-postponed");
    let mut o = opts();
    o.postpone_flag_file = Some(flag.clone());
    let mut ready = false;
    let mut polls = nth(3, |c| *c == Call::Poll);
    let when = move |c: &Call| {
        ready |= *c == Call::VerifyViews;
        ready && polls(c)
    };
    let (fake, states) = aborted_at("postponed", when, o, no_throttle()).await;
    let _ = std::fs::remove_file(&flag);
    assert_eq!(stopped_in(&states), State::Postponed);
    assert!(!fake.world().called(&Call::Lock(1)));
}

#[tokio::test(start_paused = true)]
async fn abort_before_the_cut_over() {
    let (fake, _) = aborted_at(
        "before cut-over",
        |c| *c == Call::BeforeCutOver,
        opts(),
        no_throttle(),
    )
    .await;
    assert!(!fake.world().called(&Call::Lock(1)));
}

#[tokio::test(start_paused = true)]
async fn abort_between_cut_over_attempts() {
    // Attempt 1 times out (see aborted_at); the abort stops attempt 2.
    let (fake, states) =
        aborted_at("cut-over", |c| *c == Call::Lock(1), opts(), no_throttle()).await;
    assert!(states.contains(&State::CutOver), "{states:?}");
    assert_eq!(fake.world().count(|c| matches!(c, Call::Lock(_))), 1);
}

// ---------------------------------------------------------------------------------------
// Dry run

#[tokio::test(start_paused = true)]
async fn a_dry_run_creates_and_drops_the_shadow_and_never_opens_a_stream() {
    let fake = FakeEngine::with_rows(100, Config::default());
    let mut o = opts();
    o.execute = false;
    let r = run(&fake, o).await;
    let Ok(Outcome::DryRun(d)) = r else {
        panic!("expected a dry run")
    };
    assert_eq!(d.row_estimate, 100);
    assert_eq!(d.shadow_table, "_godwit_new_t");
    assert_eq!(d.mapping.added, vec!["c".to_string()]);
    let w = fake.world();
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert_eq!(
        w.calls,
        vec![
            Call::LockRunner,
            Call::Leftovers,
            Call::Inspect,
            Call::Preflight,
            Call::CreateShadow,
            Call::CheckKey,
            Call::DropShadow
        ]
    );
    assert!(w.shadow.is_none() && !w.stream_artifacts() && !w.swapped);
}

// ---------------------------------------------------------------------------------------
// The fake itself: it must catch a core that calls the engine out of order.

#[tokio::test(start_paused = true)]
#[should_panic(expected = "engine protocol: open_stream before start_stream")]
async fn the_fake_rejects_open_stream_before_start_stream() {
    use crate::engine::{Engine, Position};
    let fake = FakeEngine::with_rows(1, Config::default());
    let t = fake.inspect().await.unwrap();
    let _ = fake
        .open_stream(&t, &["id".into()], &Position::Lsn(0))
        .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "engine protocol: swap in phase Locked")]
async fn the_fake_rejects_a_swap_without_fence() {
    use crate::engine::{Engine, Scope};
    use crate::schema::ColumnMapping;
    let fake = FakeEngine::with_rows(1, Config::default());
    let t = fake.inspect().await.unwrap();
    fake.preflight(Scope::Preflight, &t).await.unwrap();
    let from = fake.start_stream(&t).await.unwrap();
    let shadow = fake.create_shadow(&t, &opts().alter).await.unwrap();
    let m = ColumnMapping::build(&t, &shadow, &[], &[]).unwrap();
    let _s = fake.open_stream(&t, &["id".into()], &from).await.unwrap();
    let mut c = fake.copier(&t, &m, None).await.unwrap();
    while c.next_chunk(100).await.unwrap().is_some() {}
    fake.after_copy(&t, &m).await.unwrap();
    fake.before_cut_over(&m).await.unwrap();
    let mut l = fake
        .lock_for_cut_over(&t, &m, Duration::from_secs(1), 1)
        .await
        .unwrap();
    let _ = l.swap().await;
}

#[tokio::test(start_paused = true)]
async fn a_postponed_cut_over_keeps_replaying_until_the_flag_is_removed() {
    let flag = flag_file("postpone");
    let fake = FakeEngine::with_rows(300, Config::default());
    let f = flag.clone();
    let mut postponed_polls = 0;
    let mut ready = false;
    fake.on_call(move |c, w| {
        ready |= *c == Call::BeforeCutOver;
        if ready && *c == Call::Poll && f.exists() {
            postponed_polls += 1;
            w.update(postponed_polls, -postponed_polls);
            assert!(!w.called(&Call::Lock(1)), "locked while postponed");
            if postponed_polls == 4 {
                std::fs::remove_file(&f).unwrap();
            }
        }
    });
    let mut o = opts();
    o.postpone_flag_file = Some(flag.clone());
    let (r, states) = run_with(&fake, o, no_throttle()).await;
    let _ = std::fs::remove_file(&flag);
    done(r);
    let w = fake.world();
    assert_migrated(&w);
    assert!(states.contains(&State::Postponed), "{states:?}");
    // Each write made while postponed was replayed before the lock was asked for.
    let lock = w.first(|c| *c == Call::Lock(1)).unwrap();
    let replayed: BTreeSet<i64> = w.calls[..lock]
        .iter()
        .flat_map(|c| match c {
            Call::Flush(k) => k.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(replayed, (1..=4).collect());
}

// ---------------------------------------------------------------------------------------
// Verification before the cut-over

#[tokio::test(start_paused = true)]
async fn abort_during_verify() {
    let (fake, states) =
        aborted_at("verify", |c| *c == Call::VerifyViews, opts(), no_throttle()).await;
    assert_eq!(stopped_in(&states), State::Verify);
    assert!(!fake.world().called(&Call::Lock(1)));
}

#[tokio::test(start_paused = true)]
async fn a_shadow_changed_behind_the_cores_back_is_repaired_before_the_swap() {
    // Two and a half chunks' worth of rows.
    let rows = (super::verify::VERIFY_CHUNK * 5 / 2) as i64;
    let fake = FakeEngine::with_rows(rows, Config::default());
    let mut writer = Writer::new(5, rows, 3);
    let mut planted = false;
    fake.on_call(move |c, w| {
        writer.act(w);
        // Planted as the views are taken (the shadow is in sync then: planted earlier, a
        // key the writer changed meanwhile would be put right by the replay).
        if *c == Call::VerifyViews && !planted {
            planted = true;
            let shadow = w.shadow.as_mut().expect("shadow");
            // One in each chunk of keys: the first key, the middle one (by rank,
            // wherever the writer's keys went), one past every key.
            let keys: Vec<i64> = shadow.keys().copied().collect();
            let (first, middle) = (keys[0], keys[keys.len() / 2]);
            shadow.insert(first, -1);
            shadow.remove(&middle);
            shadow.insert(777_777, 1);
        }
    });
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    let v = d.verify.expect("verified");
    // Three chunks, each with one planted difference.
    assert_eq!(v.chunks, 3);
    assert_eq!(v.repaired_ranges, 3, "{v:?}");
    assert_eq!(v.rounds, 2);
    assert_eq!(w.count(|c| *c == Call::VerifyViews), 2);
    assert_eq!(w.count(|c| *c == Call::RangeKeys), 3);
}

#[tokio::test(start_paused = true)]
async fn a_difference_that_keeps_coming_back_stops_the_run_before_the_swap() {
    let fake = FakeEngine::with_rows(1000, Config::default());
    let mut writer = Writer::new(6, 1000, 2);
    fake.on_call(move |c, w| {
        writer.act(w);
        if *c == Call::VerifyViews {
            w.shadow.as_mut().expect("shadow").insert(5, -1);
        }
    });
    let e = failed(run(&fake, opts()).await);
    assert_eq!(e.kind, ErrorKind::VerifyMismatch, "{e}");
    assert!(e.message.contains("the original table is unchanged"), "{e}");
    let w = fake.world();
    assert_untouched(&w);
    assert!(!w.called(&Call::Lock(1)));
    assert_eq!(w.count(|c| *c == Call::VerifyViews), 3);
}

#[tokio::test(start_paused = true)]
async fn a_verify_hold_not_granted_is_retried() {
    let fake = FakeEngine::with_rows(100, Config::default());
    fake.world().verify_lock_timeouts = 2;
    let mut writer = Writer::new(7, 100, 2);
    fake.on_call(move |_, w| writer.act(w));
    done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(w.count(|c| *c == Call::VerifyLock), 3);
}

#[tokio::test(start_paused = true)]
async fn a_verify_hold_never_granted_fails_with_the_original_unchanged() {
    let fake = FakeEngine::with_rows(100, Config::default());
    fake.world().verify_lock_timeouts = 100;
    let mut o = opts();
    o.cut_over_retries = 3;
    let e = failed(run(&fake, o).await);
    assert_eq!(e.kind, ErrorKind::CutOverFailed, "{e}");
    assert!(e.message.contains("the original table is unchanged"), "{e}");
    let w = fake.world();
    assert_untouched(&w);
    assert_eq!(w.count(|c| *c == Call::VerifyLock), 3);
}

#[tokio::test(start_paused = true)]
async fn skip_verify_compares_nothing() {
    let fake = FakeEngine::with_rows(100, Config::default());
    let mut o = opts();
    o.verify = false;
    let d = done(run(&fake, o).await);
    let w = fake.world();
    assert_migrated(&w);
    assert!(d.verify.is_none());
    assert!(!w.called(&Call::VerifyLock));
}

// ---------------------------------------------------------------------------------------
// Resume

/// Run until the stream fails as if the server went away at the `n`-th chunk; the
/// process then "dies" (`World::crash`).
async fn die_at_chunk(fake: &FakeEngine, n: usize) {
    let mut chunks = 0;
    let mut writer = Writer::new(21, 5000, 3);
    fake.on_call(move |c, w| {
        writer.act(w);
        if let Call::NextChunk(_) = c {
            chunks += 1;
            if chunks == n {
                w.fail_next_poll = Some(ErrorKind::Unreachable);
            }
        }
    });
    let e = failed(run(fake, opts()).await);
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    let mut w = fake.world();
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(
        w.shadow.is_some(),
        "the shadow of a resumable run was removed"
    );
    assert!(w.checkpoint.is_some(), "no checkpoint");
    assert!(!w.called(&Call::Cleanup(false)));
    w.crash();
}

#[tokio::test(start_paused = true)]
async fn a_run_that_died_mid_copy_resumes_and_ends_equal() {
    let fake = FakeEngine::with_rows(5000, Config::default());
    die_at_chunk(&fake, 4).await;
    let first_run_chunks = fake.world().chunks.len();
    let mut writer = Writer::new(22, 5000, 3);
    fake.on_call(move |_, w| writer.act(w));
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert!(w.called(&Call::Resume));
    // The resumed copy starts where the checkpoint said the copy was, not from the start.
    let (after, _) = w.chunks[first_run_chunks];
    assert!(after.is_some_and(|k| k >= 600), "resumed from {after:?}");
    // The count goes on from the checkpoint's.
    assert!(d.rows_copied >= 700, "{}", d.rows_copied);
    assert!(w.checkpoint.is_none(), "the checkpoint is left");
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_of_another_change_is_refused_until_restart() {
    let fake = FakeEngine::with_rows(5000, Config::default());
    die_at_chunk(&fake, 3).await;
    fake.on_call(|_, _| {});
    let mut other = opts();
    other.alter.clauses = "ADD COLUMN d INT".into();
    let e = failed(run(&fake, other.clone()).await);
    assert_eq!(e.kind, ErrorKind::Checkpoint, "{e}");
    assert!(e.message.contains("ADD COLUMN c INT"), "{e}");
    {
        let w = fake.world();
        assert!(w.shadow.is_some() && w.checkpoint.is_some(), "touched");
    }
    // A dry run of the same change is refused too: it would disturb the checkpoint.
    let mut dry = opts();
    dry.execute = false;
    assert_eq!(failed(run(&fake, dry).await).kind, ErrorKind::Checkpoint);
    fake.world().crash();
    other.resume = ResumeMode::Restart;
    done(run(&fake, other).await);
    let w = fake.world();
    assert!(!w.called(&Call::Resume));
    assert!(w.checkpoint.is_none());
    assert_migrated(&w);
}

#[tokio::test(start_paused = true)]
async fn resume_requires_a_checkpoint() {
    let fake = FakeEngine::with_rows(100, Config::default());
    let mut o = opts();
    o.resume = ResumeMode::Require;
    let e = failed(run(&fake, o).await);
    assert_eq!(e.kind, ErrorKind::Checkpoint, "{e}");
    assert!(!fake.world().called(&Call::CreateShadow));
}

#[tokio::test(start_paused = true)]
async fn a_handled_failure_removes_the_checkpoint_with_the_shadow() {
    let fake = FakeEngine::with_rows(3000, Config::default());
    let mut chunks = 0;
    fake.on_call(move |c, w| {
        if let Call::NextChunk(_) = c {
            chunks += 1;
            if chunks == 4 {
                w.fail_next_flush = true;
                w.update(1, 5);
            }
        }
    });
    failed(run(&fake, opts()).await);
    let w = fake.world();
    assert_untouched(&w);
    assert!(w.saves > 0);
    assert!(w.checkpoint.is_none(), "the checkpoint is left");
}

#[tokio::test(start_paused = true)]
async fn a_run_that_died_right_after_the_swap_is_finished_by_the_rerun() {
    use futures_util::FutureExt;
    let fake = FakeEngine::with_rows(2000, Config::default());
    let mut writer = Writer::new(23, 2000, 2);
    fake.on_call(move |c, w| {
        writer.act(w);
        if *c == Call::CloseStream && w.swapped {
            panic!("the process dies right after the swap");
        }
    });
    let mut o = opts();
    o.ok_to_drop_table = true;
    let died = std::panic::AssertUnwindSafe(run(&fake, o.clone()))
        .catch_unwind()
        .await;
    assert!(died.is_err(), "the run did not die");
    {
        let mut w = fake.world();
        assert!(w.swapped && w.checkpoint.is_some() && !w.old_dropped);
        w.crash();
    }
    fake.on_call(|_, _| {});
    let d = done(run(&fake, o).await);
    let w = fake.world();
    assert!(d.old_table_dropped && d.cleanup_complete, "{d:?}");
    assert!(w.old_dropped && w.checkpoint.is_none());
    assert!(
        !w.called(&Call::Resume),
        "took over a shadow that is now the table"
    );
    assert_eq!(w.shadow.as_ref(), Some(&w.truth));
}

fn blocker(id: u64, age_seconds: u64) -> crate::engine::Blocker {
    crate::engine::Blocker {
        id,
        user: "app".into(),
        host: None,
        age_seconds,
        state: "idle in transaction".into(),
        query: Some("SELECT 1".into()),
        exact: true,
        since: format!("start of {id}"),
    }
}

async fn run_policy(
    fake: &FakeEngine,
    o: RunOptions,
    policy: super::BlockerPolicy,
) -> Result<Outcome> {
    let mut rep = Reporter::silent();
    Migration::new(fake, o, no_throttle(), &mut rep, fake.abort_flag())
        .with_blocker_policy(policy)
        .run()
        .await
}

#[tokio::test(start_paused = true)]
async fn blockers_are_named_and_ended_only_with_kill_blockers_after_the_delay() {
    // Without --kill-blockers: every attempt fails, the error names the old blocker
    // (not the session younger than an attempt), nothing is ended.
    let fake = FakeEngine::with_rows(200, Config::default());
    fake.world().blockers = vec![blocker(7, 3600), blocker(8, 0)];
    let mut o = opts();
    o.cut_over_retries = 3;
    let e = failed(run_policy(&fake, o, Default::default()).await);
    assert_eq!(e.kind, ErrorKind::CutOverFailed);
    assert!(e.message.contains("blocked by session 7 (app"), "{e}");
    assert!(!e.message.contains("session 8"), "{e}");
    assert!(e
        .hint
        .as_deref()
        .unwrap_or_default()
        .contains("--kill-blockers"));
    {
        let w = fake.world();
        assert_untouched(&w);
        assert!(w.killed.is_empty());
    }

    // With it, after 20 s since the first attempt: the old blocker is ended before the
    // first attempt that starts that late, then the cut-over goes through.
    let fake = FakeEngine::with_rows(200, Config::default());
    fake.world().blockers = vec![blocker(7, 3600), blocker(8, 0)];
    let mut writer = Writer::new(11, 200, 2);
    fake.on_call(move |_, w| writer.act(w));
    let policy = super::BlockerPolicy {
        kill: true,
        after: Duration::from_secs(20),
    };
    let d = done(run_policy(&fake, opts(), policy).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(w.killed, vec![7]);
    let first = w.lock_times[0];
    let last = *w.lock_times.last().unwrap();
    assert!(
        last - first >= Duration::from_secs(20),
        "{:?}",
        last - first
    );
    // The attempt before the last one started less than 20 s after the first.
    let before = w.lock_times[w.lock_times.len() - 2];
    assert!(before - first < Duration::from_secs(20));
    assert_eq!(d.cut_over_attempts as usize, w.lock_times.len());
}

/// `--kill-blockers` never ends a session the server cannot say holds a lock on the
/// table (an open transaction that may be anyone's): the cut-over fails as without it.
#[tokio::test(start_paused = true)]
async fn kill_blockers_spares_a_session_that_only_may_hold_the_lock() {
    let fake = FakeEngine::with_rows(200, Config::default());
    let mut maybe = blocker(7, 3600);
    maybe.exact = false;
    fake.world().blockers = vec![maybe];
    let mut o = opts();
    o.cut_over_retries = 3;
    let policy = super::BlockerPolicy {
        kill: true,
        after: Duration::ZERO,
    };
    let e = failed(run_policy(&fake, o, policy).await);
    assert_eq!(e.kind, ErrorKind::CutOverFailed);
    assert!(e.message.contains("session 7"), "{e}");
    let w = fake.world();
    assert_untouched(&w);
    assert!(w.killed.is_empty(), "{:?}", w.killed);
}

// ---------------------------------------------------------------------------------------
// Control socket

/// `throttle` holds the copy while the stream is read; `no-throttle` releases it;
/// `chunk-size=N` makes the next chunk N rows and caps the adaptation; `unpostpone` ends
/// the postponement while the flag file is still there.
#[tokio::test(start_paused = true)]
async fn the_control_socket_steers_the_run() {
    use crate::control::Control;
    use std::sync::Arc;
    let flag = flag_file("control-postpone");
    let control = Arc::new(Control::default());
    let fake = FakeEngine::with_rows(2_000, Config::default());
    let c = control.clone();
    let mut polls = 0;
    let mut chunks = 0;
    fake.on_call(move |call, w| match call {
        Call::NextChunk(_) => {
            chunks += 1;
            if chunks == 2 {
                assert!(c.execute("throttle").starts_with("throttled"));
            }
        }
        Call::Poll if c.forced_throttle() => {
            assert_eq!(chunks, 2, "a chunk was copied while throttled");
            polls += 1;
            w.update(3, polls);
            if polls == 5 {
                assert_eq!(c.execute("chunk-size=150"), "chunk-size set to 150\n");
                c.execute("no-throttle");
            }
        }
        Call::Poll if c.status().state == Some(State::Postponed) => {
            assert_eq!(c.execute("unpostpone"), "Unpostponed\n");
        }
        _ => {}
    });
    let mut o = opts();
    o.postpone_flag_file = Some(flag.clone());
    let throttle = Throttle::new(None, None, None, None).with_control(control.clone());
    let mut rep = Reporter::silent().with_control(control.clone());
    let r = Migration::new(&fake, o, throttle, &mut rep, fake.abort_flag())
        .with_control(control.clone())
        .run()
        .await;
    let states = rep.states.clone();
    assert!(flag.exists());
    let _ = std::fs::remove_file(&flag);
    let d = done(r);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(d.cut_over_attempts, 1);
    assert_eq!(control.status().cut_over_attempts, 1);
    let at = states.iter().position(|s| *s == State::Throttled).unwrap();
    assert_eq!(states[at + 1], State::Copy, "{states:?}");
    assert!(states.contains(&State::Postponed), "{states:?}");
    let asked: Vec<u64> = w
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::NextChunk(n) => Some(*n),
            _ => None,
        })
        .collect();
    // Two chunks before the hold (the second one asked for when `throttle` came), then
    // 150 rows each: the paused clock makes every chunk fast, so without the cap the
    // chunk would double.
    assert!(asked[0] == 100 && asked[1] == 200, "{asked:?}");
    assert!(asked[2..].iter().all(|n| *n == 150), "{asked:?}");
    assert!(asked.len() > 5, "{asked:?}");
}

/// `panic` stops the run like a signal: cleaned up, exit 30, the original unchanged.
#[tokio::test(start_paused = true)]
async fn panic_on_the_control_socket_aborts_and_cleans_up() {
    use crate::control::Control;
    use std::sync::Arc;
    let control = Arc::new(Control::default());
    control.set_abort(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let fake = FakeEngine::with_rows(1_000, Config::default());
    let c = control.clone();
    fake.on_call(move |call, _| {
        if matches!(call, Call::NextChunk(_)) {
            c.execute("panic");
        }
    });
    let mut rep = Reporter::silent();
    let r = Migration::new(&fake, opts(), no_throttle(), &mut rep, fake.abort_flag())
        .with_control(control)
        .run()
        .await;
    let e = failed(r);
    assert_eq!(e.exit_code(), 30);
    assert!(e.message.contains("`panic`"), "{e}");
    let w = fake.world();
    assert!(w.shadow.is_none(), "the shadow is left");
    assert!(!w.swapped);
}

#[tokio::test(start_paused = true)]
async fn the_shadow_is_analyzed_after_verification_and_before_the_cut_over() {
    let fake = FakeEngine::with_rows(500, Config::default());
    done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert_eq!(w.count(|c| *c == Call::Analyze), 1);
    let at = |f: fn(&Call) -> bool| w.first(f).expect("called");
    assert!(at(|c| *c == Call::VerifyViews) < at(|c| *c == Call::Analyze));
    assert!(at(|c| *c == Call::Analyze) < at(|c| matches!(c, Call::Lock(_))));
}

#[tokio::test(start_paused = true)]
async fn skip_analyze_does_not_analyze() {
    let fake = FakeEngine::with_rows(500, Config::default());
    done(
        run(
            &fake,
            RunOptions {
                analyze: false,
                ..opts()
            },
        )
        .await,
    );
    let w = fake.world();
    assert_migrated(&w);
    assert!(!w.called(&Call::Analyze));
}

#[tokio::test(start_paused = true)]
async fn a_failed_analyze_is_a_warning_and_the_migration_completes() {
    let fake = FakeEngine::with_rows(500, Config::default());
    fake.world().analyze_fails = true;
    let d = done(run(&fake, opts()).await);
    let w = fake.world();
    assert_migrated(&w);
    assert!(w.called(&Call::Analyze));
    assert!(d.cleanup_complete);
}
