//! Periodic pruning of rows nothing can use any more, on every node: once
//! at start-up, then every [`EVERY`] (more often when `EVENT_RETENTION` is
//! shorter than that, so that a short retention is honoured). Each job is
//! idempotent and safe on several nodes at once (the second node finds the
//! work done), so no node is special. Each job is one function here; to add
//! one, write its function and call it from [`Maintenance::run_once`].
//!
//! Jobs today:
//! - [`Maintenance::prune_tokens`]: revoked tokens, and tokens unused for
//!   longer than `TOKEN_TTL` (expired: a lookup refuses them anyway).
//! - [`Maintenance::prune_login_codes`]: login codes past their expiry
//!   (used codes are deleted when redeemed).
//! - [`Maintenance::prune_events`]: events older than `EVENT_RETENTION`
//!   (a prefix of each user's log; a resume from before it gets `resync`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Retention;
use crate::security::Clock;
use crate::security::tokens::ttl_ms;
use crate::store::{DynStore, StoreResult};

/// How often the jobs run (after the first run at start-up).
pub const EVERY: Duration = Duration::from_secs(600);

/// Events deleted per step of [`Maintenance::prune_events`]: a step is one
/// short transaction, so sends never wait behind a long one.
const PRUNE_STEP: u32 = 1_000;

/// What the pruning jobs need.
#[derive(Clone)]
pub struct Maintenance {
    store: DynStore,
    clock: Arc<dyn Clock>,
    token_ttl: Duration,
    event_retention: Retention,
}

impl Maintenance {
    /// Jobs on `store`, reading time from `clock`: tokens expire after
    /// `token_ttl`, events are kept for `event_retention`.
    pub fn new(
        store: DynStore,
        clock: Arc<dyn Clock>,
        token_ttl: Duration,
        event_retention: Retention,
    ) -> Self {
        Maintenance {
            store,
            clock,
            token_ttl,
            event_retention,
        }
    }

    /// Runs every job once; a failing job is logged and the others still run.
    pub async fn run_once(&self) {
        log("tokens", self.prune_tokens().await);
        log("login codes", self.prune_login_codes().await);
        if self.event_retention.0.is_some() {
            log("events", self.prune_events().await);
        }
    }

    /// Deletes revoked tokens and tokens unused for longer than `TOKEN_TTL`.
    pub async fn prune_tokens(&self) -> StoreResult<u64> {
        let unused_since = self.clock.now_ms().saturating_sub(ttl_ms(self.token_ttl));
        self.store.prune_tokens(unused_since).await
    }

    /// Deletes expired login codes.
    pub async fn prune_login_codes(&self) -> StoreResult<u64> {
        self.store.prune_login_codes(self.clock.now_ms()).await
    }

    /// Deletes the events older than `EVENT_RETENTION` (a prefix of each
    /// user's log, see [`crate::store::Store::prune_events`]), step by step
    /// until none is left; returns how many were deleted (none when
    /// retention is off).
    pub async fn prune_events(&self) -> StoreResult<u64> {
        let Some(keep) = self.event_retention.0 else {
            return Ok(0);
        };
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.clock.now_ms().saturating_sub(keep_ms);
        let mut total = 0;
        loop {
            let deleted = self.store.prune_events(cutoff, PRUNE_STEP).await?;
            if deleted == 0 {
                return Ok(total);
            }
            total += deleted;
        }
    }

    /// How often the jobs run: [`EVERY`], or half the event retention when
    /// that is shorter (at least a second).
    fn period(&self) -> Duration {
        self.event_retention.0.map_or(EVERY, |keep| {
            (keep / 2).clamp(Duration::from_secs(1), EVERY)
        })
    }

    /// Runs the jobs now and then every [`Maintenance::period`] until `stop`
    /// is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(self.period());
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.run_once() => {}
                }
            }
        })
    }
}

fn log(job: &'static str, outcome: StoreResult<u64>) {
    match outcome {
        Ok(0) => tracing::debug!(job, "pruned nothing"),
        Ok(rows) => tracing::info!(job, rows, "pruned"),
        Err(e) => tracing::warn!(job, error = %e, "pruning failed; it is retried at the next run"),
    }
}
