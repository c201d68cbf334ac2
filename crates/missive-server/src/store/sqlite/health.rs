//! The store's health as `/readyz` reports it: a write probe (cached for a
//! second, so a busy prober cannot load the writer) and a sticky flag set the
//! first time SQLite reports a corrupt database while serving.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{StoreError, StoreResult};

/// How long a probe's outcome is reused.
const PROBE_TTL: Duration = Duration::from_secs(1);

/// Health of one SQLite store.
#[derive(Debug, Default)]
pub struct Health {
    /// Where the database lives, for log lines.
    label: String,
    /// The first corruption seen while serving; stays until restart.
    corrupt: Mutex<Option<String>>,
    /// The last write probe: when, and how it went.
    probe: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Health {
    /// Health of the database described by `label` (its path).
    pub fn new(label: String) -> Self {
        Health {
            label,
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
        let health = Health::new("test.db".into());
        let _ = health.observe::<()>(Err(StoreError::Unavailable("busy".into())));
        assert_eq!(health.corruption(), None);
        let _ = health.observe::<()>(Err(StoreError::Corrupt("malformed".into())));
        let _ = health.observe(Ok(()));
        assert_eq!(health.corruption().as_deref(), Some("malformed"));
    }

    #[test]
    fn a_probe_is_reused_for_a_second() {
        let health = Health::new("test.db".into());
        assert_eq!(health.recent_probe(), None);
        health.record_probe(&Err(StoreError::Unavailable("disk full".into())));
        assert!(health.recent_probe().is_some_and(|p| p.is_err()));
    }
}
