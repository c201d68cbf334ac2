//! Periodic housekeeping that every node runs: one function per pruning
//! job, each run once at startup and then every [`INTERVAL`]. Every job is
//! idempotent and safe on several nodes at once (the store's locks make the
//! second node find the work done), so no node is special.

use std::time::Duration;

use crate::config::Retention;
use crate::domain::now_ms;
use crate::store::{DynStore, StoreResult};

/// How often the jobs run.
pub const INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Events deleted per step of [`prune_events`]: a step is one short
/// transaction, so sends never wait behind a long one.
const PRUNE_STEP: u32 = 1_000;

/// Starts the jobs on `store`: once now, then every [`INTERVAL`] (more often
/// when the retention itself is shorter, so that a short `EVENT_RETENTION`
/// is honoured). Abort the task to stop them.
pub fn spawn(store: DynStore, retention: Retention) -> tokio::task::JoinHandle<()> {
    let every = retention.0.map_or(INTERVAL, |keep| {
        (keep / 2).clamp(Duration::from_secs(1), INTERVAL)
    });
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(keep) = retention.0 {
                match prune_events(&store, keep).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(
                        deleted,
                        retention = %humantime::format_duration(keep),
                        "pruned events older than EVENT_RETENTION"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning old events failed; retrying later")
                    }
                }
            }
        }
    })
}

/// Deletes the events older than `retention` (a prefix of each user's log,
/// see [`crate::store::Store::prune_events`]), step by step until none is
/// left; returns how many were deleted.
pub async fn prune_events(store: &DynStore, retention: Duration) -> StoreResult<u64> {
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms().saturating_sub(keep_ms);
    let mut total = 0;
    loop {
        let deleted = store.prune_events(cutoff, PRUNE_STEP).await?;
        if deleted == 0 {
            return Ok(total);
        }
        total += deleted;
    }
}
