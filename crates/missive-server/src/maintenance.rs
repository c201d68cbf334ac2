//! Periodic pruning of rows nothing can use any more, on every node: once
//! at start-up, then every [`EVERY`]. Each job is idempotent (nodes may
//! prune the same rows at once: the second deletes nothing) and is one
//! function here; to add a job, write its function and call it from
//! [`Maintenance::run_once`].
//!
//! Jobs today:
//! - [`Maintenance::prune_tokens`]: revoked tokens, and tokens unused for
//!   longer than `TOKEN_TTL` (expired: a lookup refuses them anyway).
//! - [`Maintenance::prune_login_codes`]: login codes past their expiry
//!   (used codes are deleted when redeemed).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::security::Clock;
use crate::security::tokens::ttl_ms;
use crate::store::{DynStore, StoreResult};

/// How often the jobs run (after the first run at start-up).
pub const EVERY: Duration = Duration::from_secs(600);

/// What the pruning jobs need.
#[derive(Clone)]
pub struct Maintenance {
    store: DynStore,
    clock: Arc<dyn Clock>,
    token_ttl: Duration,
}

impl Maintenance {
    /// Jobs on `store`, reading time from `clock`, tokens expiring after `token_ttl`.
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, token_ttl: Duration) -> Self {
        Maintenance {
            store,
            clock,
            token_ttl,
        }
    }

    /// Runs every job once; a failing job is logged and the others still run.
    pub async fn run_once(&self) {
        log("tokens", self.prune_tokens().await);
        log("login codes", self.prune_login_codes().await);
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

    /// Runs the jobs now and then every [`EVERY`] until `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
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
