//! Push notifications for recipients with no open connection
//! (`PUSH_WEBHOOK_URL`).
//!
//! - **Outbox.** When push is enabled, a send carries a [`PushFilter`]: the
//!   store writes a `push_outbox` row, in the message's own commit, for every
//!   recipient (never the sender) with no connection on this node. An
//!   acknowledged message therefore cannot lose its push, not even to a
//!   crash. With push disabled, sends do no extra work at all.
//! - **Dispatcher.** One task per node ([`Dispatcher`]) claims due rows
//!   (a lease, so that dispatchers of several nodes never take the same row
//!   at once), checks that the recipient is still without a connection on
//!   any node ([`ClusterPresence`] with `REDIS_URL`, the node's registry
//!   without), POSTs the signed JSON body, and deletes the row on a 2xx or
//!   reschedules it with exponential backoff; after [`MAX_ATTEMPTS`] the
//!   push is dropped with a warning.

pub mod presence;

pub use presence::ClusterPresence;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::Registry;
use crate::domain::now_ms;
use crate::metrics::PushMetrics;
use crate::store::{DynStore, PendingPush, PushFilter};
use crate::telemetry::LogLimiter;

/// Attempts of one push (the first included) before it is dropped.
pub const MAX_ATTEMPTS: u32 = 8;
/// Default delay before the first retry (`PUSH_RETRY_BASE`); it doubles
/// with each further retry: 30 s … 32 min, about 64 minutes in all.
pub use crate::config::DEFAULT_RETRY_BASE;
/// Longest wait for the push gateway's answer to one POST.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed push stays reserved for the dispatcher that claimed
/// it (longer than [`TIMEOUT`]); if that node dies, another (or the same,
/// restarted) takes it after this.
pub const LEASE: Duration = Duration::from_secs(30);
/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Missive-Signature";
/// POSTs in flight at once per node.
const CONCURRENCY: usize = 16;
/// Pushes claimed at once: one wave of POSTs, so that every claimed push is
/// tried within [`TIMEOUT`], well inside its [`LEASE`].
const BATCH: u32 = CONCURRENCY as u32;
/// Longest sleep between two looks at the outbox (rows queued by other
/// nodes, or left by a dead one, are found within this).
const POLL: Duration = Duration::from_secs(2);

/// How pushes are sent.
#[derive(Clone)]
pub struct PushSettings {
    /// Where pushes are POSTed.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Missive-Signature` header.
    pub secret: String,
    /// Delay before the first retry; doubled for each further one.
    pub retry_base: Duration,
}

impl std::fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSettings")
            .field("url", &crate::redaction::redact(&self.url))
            .field("secret", &"***")
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

/// The JSON body POSTed for one push.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushBody<'a> {
    /// The recipient's user id.
    pub user_id: Uuid,
    /// The chat of the message.
    pub chat_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The sender's phone number (as in message frames).
    pub sender: &'a str,
    /// The first 100 characters of the content.
    pub preview: &'a str,
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The delay before the next attempt after `attempts` failed ones (≥ 1):
/// `base`, then doubled each time.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
}

/// What the send path needs: the filter to put on a send, and the wake-up
/// of the dispatcher once pushes were queued.
#[derive(Clone, Debug)]
pub struct PushHook {
    /// Recipients connected to this node get no outbox row.
    pub filter: PushFilter,
    wake: Arc<Notify>,
}

impl PushHook {
    /// Tells the dispatcher that new pushes were committed.
    pub fn queued(&self) {
        self.wake.notify_one();
    }
}

/// The node's push dispatcher: a background task sending the outbox.
pub struct Dispatcher {
    wake: Arc<Notify>,
    registry: Arc<Registry>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the dispatcher task works with.
struct Worker {
    settings: PushSettings,
    client: reqwest::Client,
    store: DynStore,
    registry: Arc<Registry>,
    presence: Option<Arc<ClusterPresence>>,
    stats: PushMetrics,
    failures: LogLimiter,
}

/// The outcome of one attempt.
enum Outcome {
    Sent,
    Skipped,
    Failed(String),
}

impl Dispatcher {
    /// Starts the dispatcher of this node. `presence` (with `REDIS_URL`)
    /// tells which users are connected to other nodes.
    pub fn start(
        settings: PushSettings,
        store: DynStore,
        registry: Arc<Registry>,
        presence: Option<Arc<ClusterPresence>>,
        stats: PushMetrics,
    ) -> anyhow::Result<Self> {
        reqwest::Url::parse(&settings.url).map_err(|e| {
            anyhow::anyhow!(
                "PUSH_WEBHOOK_URL {} is not a URL: {e}",
                crate::redaction::redact(&settings.url)
            )
        })?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let worker = Worker {
            settings,
            client,
            store,
            registry: registry.clone(),
            presence,
            stats,
            failures: LogLimiter::default(),
        };
        let task = tokio::spawn(worker.run(wake.clone(), stop.clone()));
        Ok(Dispatcher {
            wake,
            registry,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The hook the send path uses.
    pub fn hook(&self) -> PushHook {
        let registry = self.registry.clone();
        PushHook {
            filter: PushFilter(Arc::new(move |user| registry.is_connected(user))),
            wake: self.wake.clone(),
        }
    }

    /// Stops the task (a push in flight is abandoned: its row comes back
    /// after the lease, and is sent then).
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Worker {
    async fn run(self, wake: Arc<Notify>, stop: CancellationToken) {
        loop {
            let now = now_ms();
            let sleep = match self.store.next_push_due().await {
                Ok(Some(due)) if due <= now => match self.round(now).await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "push dispatcher: the outbox is unavailable");
                        Duration::from_secs(1)
                    }
                },
                Ok(Some(due)) => {
                    Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(POLL)
                }
                Ok(None) => POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "push dispatcher: the outbox is unavailable");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::debug!("push dispatcher stopped");
    }

    /// Claims a batch of due pushes and handles each.
    async fn round(&self, now: i64) -> crate::store::StoreResult<()> {
        let lease_until = now + LEASE.as_millis() as i64;
        let batch = self.store.claim_pushes(now, lease_until, BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let elsewhere = self.connected_elsewhere(&batch).await;
        futures_util::stream::iter(batch)
            .for_each_concurrent(CONCURRENCY, |push| {
                let online = elsewhere.contains(&push.user_id);
                async move { self.handle(push, online).await }
            })
            .await;
        Ok(())
    }

    /// Recipients of `batch` with a connection on another node (empty
    /// without `REDIS_URL`, or when Redis does not answer: a push too many
    /// is better than a missing one).
    async fn connected_elsewhere(&self, batch: &[PendingPush]) -> HashSet<Uuid> {
        let Some(presence) = &self.presence else {
            return HashSet::new();
        };
        let mut users: Vec<Uuid> = batch.iter().map(|p| p.user_id).collect();
        users.sort_unstable();
        users.dedup();
        match presence.connected(&users).await {
            Ok(found) => found,
            Err(e) => {
                self.failures.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "push dispatcher: cannot read presence from Redis; sending anyway");
                });
                HashSet::new()
            }
        }
    }

    async fn handle(&self, push: PendingPush, online_elsewhere: bool) {
        let outcome = if online_elsewhere || self.registry.is_connected(push.user_id) {
            Outcome::Skipped
        } else {
            self.post(&push).await
        };
        let result = match outcome {
            Outcome::Sent => {
                self.stats.sent.inc();
                tracing::debug!(user = %push.user_id, message = %push.message_id, "push sent");
                self.store.remove_push(push.id).await
            }
            Outcome::Skipped => {
                self.stats.skipped.inc();
                tracing::debug!(user = %push.user_id, message = %push.message_id, "push skipped: the recipient is connected");
                self.store.remove_push(push.id).await
            }
            Outcome::Failed(why) if push.attempts >= MAX_ATTEMPTS => {
                self.stats.dropped.inc();
                tracing::warn!(
                    user = %push.user_id,
                    message = %push.message_id,
                    attempts = push.attempts,
                    error = %why,
                    "push dropped: the push gateway refused every attempt"
                );
                self.store.remove_push(push.id).await
            }
            Outcome::Failed(why) => {
                self.stats.retried.inc();
                let delay = retry_delay(self.settings.retry_base, push.attempts);
                tracing::debug!(user = %push.user_id, attempts = push.attempts, error = %why, retry_in = ?delay, "push failed");
                self.failures.warn(|suppressed| {
                    tracing::warn!(error = %why, suppressed, "push gateway failed; retrying with backoff");
                });
                let at = now_ms() + delay.as_millis() as i64;
                self.store.reschedule_push(push.id, at).await
            }
        };
        if let Err(e) = result {
            // The row stays claimed and comes back after the lease.
            tracing::warn!(error = %e, "push dispatcher: cannot update the outbox");
        }
    }

    async fn post(&self, push: &PendingPush) -> Outcome {
        let body = PushBody {
            user_id: push.user_id,
            chat_id: push.chat_id,
            message_id: push.message_id,
            sender: &push.sender,
            preview: &push.preview,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let signature = sign(self.settings.secret.as_bytes(), &body);
        let answer = self
            .client
            .post(&self.settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => Outcome::Sent,
            Ok(response) => Outcome::Failed(format!("HTTP {}", response.status().as_u16())),
            // reqwest quotes the URL, which may carry credentials.
            Err(e) => Outcome::Failed(crate::redaction::scrub(
                &e.to_string(),
                &[self.settings.url.as_str()],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_lowercase_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_double_and_span_about_an_hour() {
        let base = DEFAULT_RETRY_BASE;
        assert_eq!(retry_delay(base, 1), Duration::from_secs(30));
        assert_eq!(retry_delay(base, 2), Duration::from_secs(60));
        let total: Duration = (1..MAX_ATTEMPTS).map(|n| retry_delay(base, n)).sum();
        assert!(
            total > Duration::from_secs(55 * 60) && total < Duration::from_secs(70 * 60),
            "{total:?}"
        );
        assert!(retry_delay(base, u32::MAX) >= retry_delay(base, 20));
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let body = PushBody {
            user_id: Uuid::nil(),
            chat_id: Uuid::nil(),
            message_id: Uuid::nil(),
            sender: "+1234567",
            preview: "hi",
        };
        let nil = Uuid::nil();
        assert_eq!(
            serde_json::to_string(&body).expect("serializes"),
            format!(
                r#"{{"userId":"{nil}","chatId":"{nil}","messageId":"{nil}","sender":"+1234567","preview":"hi"}}"#
            )
        );
    }

    #[test]
    fn the_settings_debug_form_hides_the_secret() {
        let settings = PushSettings {
            url: "https://u:pw@push.example/hook".into(),
            secret: "s3cr3t".into(),
            retry_base: DEFAULT_RETRY_BASE,
        };
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains(":pw@"),
            "{debug}"
        );
    }
}
