//! The store's health as `/readyz` reports it: a write probe (cached for a
//! second, so a busy prober cannot load the writer), the outcome of the last
//! write that failed to commit (unready at once, until a write commits), and
//! a sticky flag set the first time SQLite reports a corrupt database while
//! serving.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::store::{StoreError, StoreResult};

/// How long a probe's outcome is reused.
const PROBE_TTL: Duration = Duration::from_secs(1);

/// Free space the database's file system needs before a probe that commits
/// ends a failure of writes. A one-page probe can still commit in what a
/// checkpoint freed while sends no longer fit, so without this margin a full
/// disk would flap between ready and unready.
const RECOVERY_SPACE: u64 = 1024 * 1024;

/// Health of one SQLite store.
#[derive(Debug, Default)]
pub struct Health {
    /// Where the database lives, for log lines.
    label: String,
    /// The first corruption seen while serving; stays until restart.
    corrupt: Mutex<Option<String>>,
    /// The directory of the database file (`None` in memory), whose file
    /// system's free space is checked before recovering from a failure.
    dir: Option<PathBuf>,
    /// The last write probe: when, and how it went.
    probe: Mutex<Option<(Instant, Result<(), String>)>>,
    /// True from a write that did not commit to the next one that did.
    failing: AtomicBool,
}

impl Health {
    /// Health of the database described by `label` (its path), whose file
    /// is in `dir` (`None` in memory).
    pub fn new(label: String, dir: Option<PathBuf>) -> Self {
        Health {
            label,
            dir,
            ..Health::default()
        }
    }

    /// Watches a result: corruption is logged once, at ERROR, and makes the store unready.
    pub fn observe<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(StoreError::Corrupt(detail)) = &result
            && let Ok(mut corrupt) = self.corrupt.lock()
            && corrupt.is_none()
        {
            tracing::error!(
                database = %self.label,
                error = %detail,
                "the database is corrupt: this node reports unready; restore it from a backup"
            );
            *corrupt = Some(detail.clone());
        }
        result
    }

    /// Watches the result of a write. One that did not commit (`Unavailable`:
    /// a full disk, a failing `fsync`) counts as a failed probe, so that
    /// `/readyz` answers 503 at once; the next one that commits counts as a
    /// passing probe.
    pub fn observe_write<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        match &result {
            Err(StoreError::Unavailable(detail)) => {
                self.failing.store(true, Ordering::Relaxed);
                self.record_probe(&Err(StoreError::Unavailable(detail.clone())));
            }
            // Only after a failure: the usual path costs one atomic load.
            Ok(_) if self.failing.swap(false, Ordering::Relaxed) => self.record_probe(&Ok(())),
            _ => {}
        }
        self.observe(result)
    }

    /// Judges the outcome of a write probe of `/readyz` and records it. After
    /// a write that did not commit, a probe that commits ends the failure only
    /// when the file system has [`RECOVERY_SPACE`] free (or a send commits,
    /// see [`Health::observe_write`]).
    pub fn judge_probe(&self, outcome: StoreResult<()>) -> StoreResult<()> {
        let judged = match outcome {
            Ok(()) if self.failing.load(Ordering::Relaxed) => match self.free_space() {
                Some(free) if free < RECOVERY_SPACE => Err(StoreError::Unavailable(format!(
                    "a write failed and only {free} bytes are free for the database"
                ))),
                _ => {
                    self.failing.store(false, Ordering::Relaxed);
                    Ok(())
                }
            },
            Err(StoreError::Unavailable(detail)) => {
                self.failing.store(true, Ordering::Relaxed);
                Err(StoreError::Unavailable(detail))
            }
            other => other,
        };
        self.record_probe(&judged);
        judged
    }

    /// Bytes available to this process on the database's file system.
    fn free_space(&self) -> Option<u64> {
        let dir = self.dir.as_ref()?;
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Why the store is unready because of corruption, if it is.
    pub fn corruption(&self) -> Option<String> {
        self.corrupt.lock().ok().and_then(|c| c.clone())
    }

    /// The cached outcome of a probe younger than a second, if any.
    pub fn recent_probe(&self) -> Option<Result<(), String>> {
        let probe = self.probe.lock().ok()?;
        let (at, outcome) = probe.as_ref()?;
        (at.elapsed() < PROBE_TTL).then(|| outcome.clone())
    }

    /// Records a probe's outcome.
    pub fn record_probe(&self, outcome: &StoreResult<()>) {
        if let Ok(mut probe) = self.probe.lock() {
            *probe = Some((
                Instant::now(),
                outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_is_sticky_and_other_errors_are_not() {
        let health = Health::new("test.db".into(), None);
        let _ = health.observe::<()>(Err(StoreError::Unavailable("busy".into())));
        assert_eq!(health.corruption(), None);
        let _ = health.observe::<()>(Err(StoreError::Corrupt("malformed".into())));
        let _ = health.observe(Ok(()));
        assert_eq!(health.corruption().as_deref(), Some("malformed"));
    }

    #[test]
    fn a_failed_write_is_a_failed_probe_until_one_commits() {
        let health = Health::new("test.db".into(), None);
        let _ = health.observe_write(Ok(()));
        assert_eq!(health.recent_probe(), None, "no probe without a failure");
        let _ = health.observe_write::<()>(Err(StoreError::Unavailable("disk full".into())));
        assert!(health.recent_probe().is_some_and(|p| p.is_err()));
        let _ = health.observe_write::<()>(Err(StoreError::PhoneTaken));
        assert!(health.recent_probe().is_some_and(|p| p.is_err()));
        let _ = health.observe_write(Ok(()));
        assert_eq!(health.recent_probe(), Some(Ok(())));
    }

    #[test]
    fn a_passing_probe_ends_a_failure_when_the_disk_has_room() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let health = Health::new("test.db".into(), Some(dir.path().to_owned()));
        let _ = health.observe_write::<()>(Err(StoreError::Unavailable("disk full".into())));
        // The temp dir of a test machine has more than a MiB free.
        assert!(health.judge_probe(Ok(())).is_ok());
        assert_eq!(health.recent_probe(), Some(Ok(())));
    }

    #[test]
    fn a_probe_is_reused_for_a_second() {
        let health = Health::new("test.db".into(), None);
        assert_eq!(health.recent_probe(), None);
        health.record_probe(&Err(StoreError::Unavailable("disk full".into())));
        assert!(health.recent_probe().is_some_and(|p| p.is_err()));
    }
}
