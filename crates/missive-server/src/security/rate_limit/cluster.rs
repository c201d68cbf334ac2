//! The send budget counted across nodes: GCRA state in Redis, one key per
//! user, enforced asynchronously. (The register/login limits are exact
//! sliding logs instead, see [`super::sliding`]: a few requests a minute
//! are too few for a bucket's slack.)
//!
//! A check never waits for Redis (sends must not depend on it): the node's
//! own limiter decides at once, and every request it lets through is then
//! recorded in Redis by a background task. Redis answers how long the key
//! must now wait; the node refuses the key until then. Every accepted
//! request is charged, so a request that slipped through on another node
//! lengthens the next wait: over any window a key gets at most its budget
//! plus about one request per node. With Redis down, only the per-node limit
//! applies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Requests waiting to be recorded; past it they are not counted cluster-wide.
const QUEUE: usize = 4_096;
/// Requests recorded per pipeline.
const BATCH: usize = 256;
/// Longest wait for one pipeline.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Keys remembered as blocked at most (an attack on many keys cannot grow
/// the map without bound; when full, expired entries go, then all).
const MAX_BLOCKED: usize = 65_536;
/// At most one warning per this long about Redis failures.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// GCRA over Redis's clock. KEYS[1] holds the theoretical arrival time in
/// microseconds; ARGV[1] is the emission interval (µs), ARGV[2] the burst.
/// Charges one request (it was already let through) and returns how many
/// microseconds the key must wait before the next one, 0 if none.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
local wait = tat + interval - tolerance - now
if wait > 0 then return math.ceil(wait) end
return 0
";

/// A budget: one request per `interval`, bursts of `burst`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Time one request costs.
    pub interval: Duration,
    /// Requests allowed at once.
    pub burst: u32,
}

/// The cluster-wide side of the rate limits.
pub(super) struct ClusterLimits {
    records: flume::Sender<Uuid>,
    blocked: Arc<Mutex<HashMap<Uuid, Instant>>>,
    stop: CancellationToken,
}

/// A lazily connecting Redis connection for the limits, with short timeouts.
pub(super) fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).map_err(|e| {
        anyhow::anyhow!(
            "REDIS_URL {} is invalid: {e}",
            crate::redaction::redact(url)
        )
    })?;
    Ok(client.get_connection_manager_lazy(
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1),
    )?)
}

impl ClusterLimits {
    /// Starts the recording task on Redis at `url`, keys under `prefix`.
    pub(super) fn start(url: &str, prefix: &str, send: Budget) -> anyhow::Result<Self> {
        let conn = connect(url)?;
        let (records, inbox) = flume::bounded(QUEUE);
        let blocked = Arc::new(Mutex::new(HashMap::new()));
        let stop = CancellationToken::new();
        let recorder = Recorder {
            conn,
            prefix: prefix.to_owned(),
            send,
            blocked: blocked.clone(),
            last_warning: None,
            suppressed: AtomicU64::new(0),
        };
        tokio::spawn(recorder.run(inbox, stop.clone()));
        Ok(ClusterLimits {
            records,
            blocked,
            stop,
        })
    }

    /// How long the sends of `user` are still refused, if they are.
    pub(super) fn blocked(&self, user: &Uuid) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = blocked.get(user)?;
        until.checked_duration_since(Instant::now())
    }

    /// Charges a send of `user` that was let through; never waits (a full
    /// queue leaves it to the node's own limit).
    pub(super) fn record(&self, user: Uuid) {
        let _ = self.records.try_send(user);
    }

    /// Forgets blocks that are over.
    pub(super) fn shrink(&self) {
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
    }
}

impl Drop for ClusterLimits {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The background task charging requests in Redis.
struct Recorder {
    conn: ConnectionManager,
    prefix: String,
    send: Budget,
    blocked: Arc<Mutex<HashMap<Uuid, Instant>>>,
    last_warning: Option<Instant>,
    suppressed: AtomicU64,
}

impl Recorder {
    async fn run(mut self, inbox: flume::Receiver<Uuid>, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = stop.cancelled() => return,
                first = inbox.recv_async() => match first {
                    Ok(first) => first,
                    Err(_) => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match inbox.try_recv() {
                    Ok(key) => batch.push(key),
                    Err(_) => break,
                }
            }
            self.charge(batch).await;
        }
    }

    async fn charge(&mut self, batch: Vec<Uuid>) {
        let mut pipe = redis::pipe();
        for user in &batch {
            pipe.cmd("EVAL")
                .arg(GCRA)
                .arg(1)
                .arg(format!("{}:rl:send:{user}", self.prefix))
                .arg(self.send.interval.as_micros() as u64)
                .arg(self.send.burst);
        }
        let charged = batch;
        if charged.is_empty() {
            return;
        }
        let answer = tokio::time::timeout(TIMEOUT, pipe.query_async::<Vec<u64>>(&mut self.conn));
        let waits = match answer.await {
            Ok(Ok(waits)) => waits,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                self.warn(&error);
                return;
            }
        };
        let now = Instant::now();
        let Ok(mut blocked) = self.blocked.lock() else {
            return;
        };
        for (key, wait) in charged.into_iter().zip(waits) {
            if wait == 0 {
                continue;
            }
            if blocked.len() >= MAX_BLOCKED {
                blocked.retain(|_, until| *until > now);
                if blocked.len() >= MAX_BLOCKED {
                    blocked.clear();
                }
            }
            let until = now + Duration::from_micros(wait);
            let entry = blocked.entry(key).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    fn warn(&mut self, error: &str) {
        let due = self.last_warning.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            self.last_warning = Some(Instant::now());
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                error = %error,
                suppressed,
                "cluster rate limits: Redis failed; only this node's limits apply meanwhile"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis for the test, or `None` (skipped) when none answers.
    async fn redis_url() -> Option<String> {
        let url = std::env::var("MISSIVE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url.as_str()).ok()?;
        let ping = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), ping).await {
            return Some(url);
        }
        assert!(
            std::env::var("MISSIVE_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "MISSIVE_TEST_REQUIRE_SERVICES=1 but no Redis at {url}"
        );
        eprintln!("\n*** skipped: no Redis at {url} ***\n");
        None
    }

    fn recorder(url: &str, prefix: &str, budget: Budget) -> Recorder {
        let client = redis::Client::open(url).expect("valid");
        Recorder {
            conn: client
                .get_connection_manager_lazy(ConnectionManagerConfig::new())
                .expect("a manager"),
            prefix: prefix.to_owned(),
            send: budget,
            blocked: Arc::default(),
            last_warning: None,
            suppressed: AtomicU64::new(0),
        }
    }

    fn blocked(recorder: &Recorder, key: &Uuid) -> Option<Duration> {
        let blocked = recorder.blocked.lock().expect("lock");
        blocked.get(key)?.checked_duration_since(Instant::now())
    }

    #[tokio::test]
    async fn requests_on_two_nodes_share_one_budget() {
        let Some(url) = redis_url().await else { return };
        let prefix = format!("missive-test-{}", Uuid::now_v7());
        let budget = Budget {
            interval: Duration::from_secs(10),
            burst: 3,
        };
        let mut one = recorder(&url, &prefix, budget);
        let mut two = recorder(&url, &prefix, budget);
        let (user, other) = (Uuid::now_v7(), Uuid::now_v7());

        one.charge(vec![user, user]).await;
        assert_eq!(blocked(&one, &user), None, "within the burst");

        // The third of the burst, on the other node: the next must wait one interval.
        two.charge(vec![other, user]).await;
        let wait = blocked(&two, &user).expect("the burst is used up");
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert_eq!(blocked(&two, &other), None, "other keys are not affected");
        assert_eq!(
            blocked(&one, &user),
            None,
            "node one learns at its next request"
        );

        // That request slipped through on node one: it is charged too.
        one.charge(vec![user]).await;
        let wait = blocked(&one, &user).expect("over the budget");
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }
}
