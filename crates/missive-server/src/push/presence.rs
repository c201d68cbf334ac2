//! Which users have an open connection on any node, kept in Redis for the
//! push dispatcher (only when push and `REDIS_URL` are both set).
//!
//! Each node keeps the set of its connected users in
//! `<prefix>:presence:node:<node>` (a Redis set with a TTL) and names
//! itself in `<prefix>:presence:nodes`. A connection's first socket adds its
//! user before the `ready` frame (one round trip, bounded), its last one
//! removes it; a heartbeat rewrites the whole set and renews the TTL every
//! [`HEARTBEAT`], which also repairs what a failed or reordered update left
//! wrong. A killed node stops renewing: its set expires after [`TTL`], and
//! its users count as offline again. A query is one Lua script: the live
//! node sets, then one `SISMEMBER` per node and user (nodes whose set expired
//! are dropped from the node list as it goes).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::Registry;

/// How often a node rewrites its set and renews its TTL.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a node's set outlives its last heartbeat.
pub const TTL: Duration = Duration::from_secs(30);
/// Longest wait for one Redis command (a connection never waits longer
/// than this for its presence to be recorded).
const TIMEOUT: Duration = Duration::from_secs(1);

/// KEYS[1]: the node list; ARGV[1]: the prefix of node sets; ARGV[2..]:
/// users. Returns 1 or 0 per user: connected to some live node or not.
const CONNECTED: &str = r"
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. node
  if redis.call('EXISTS', key) == 1 then
    live[#live + 1] = key
  else
    redis.call('SREM', KEYS[1], node)
  end
end
local out = {}
for i = 2, #ARGV do
  local found = 0
  for _, key in ipairs(live) do
    if redis.call('SISMEMBER', key, ARGV[i]) == 1 then
      found = 1
      break
    end
  end
  out[#out + 1] = found
end
return out
";

/// This node's side of the cluster-wide presence.
pub struct ClusterPresence {
    conn: ConnectionManager,
    nodes_key: String,
    node_prefix: String,
    node: String,
    registry: Arc<Registry>,
    stop: CancellationToken,
    /// False after a failed command, until one succeeds: connections then do
    /// not wait for Redis to record them (the heartbeat repairs the set).
    healthy: AtomicBool,
}

impl ClusterPresence {
    /// Starts the heartbeat of this node on Redis at `url`, keys under
    /// `prefix`. Fails only on a malformed URL (Redis is reached lazily).
    pub fn start(url: &str, prefix: &str, registry: Arc<Registry>) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url).map_err(|e| {
            anyhow::anyhow!(
                "REDIS_URL {} is invalid: {e}",
                crate::redaction::redact(url)
            )
        })?;
        let conn = client.get_connection_manager_lazy(
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1),
        )?;
        let presence = Arc::new(ClusterPresence {
            conn,
            nodes_key: format!("{prefix}:presence:nodes"),
            node_prefix: format!("{prefix}:presence:node:"),
            node: Uuid::now_v7().to_string(),
            registry,
            stop: CancellationToken::new(),
            healthy: AtomicBool::new(true),
        });
        let beating = presence.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    () = beating.stop.cancelled() => break,
                    _ = every.tick() => beating.refresh().await,
                }
            }
        });
        Ok(presence)
    }

    fn node_key(&self) -> String {
        format!("{}{}", self.node_prefix, self.node)
    }

    /// Records that `user` has a connection here (call after registering
    /// it). Waits for Redis (at most 1 s) unless Redis failed lately; then the
    /// update goes on in the background, so that connections are not slowed
    /// by an outage.
    pub async fn joined(self: &Arc<Self>, user: Uuid) {
        if self.healthy.load(Ordering::Relaxed) {
            self.record_join(user).await;
        } else {
            let presence = self.clone();
            tokio::spawn(async move { presence.record_join(user).await });
        }
    }

    async fn record_join(&self, user: Uuid) {
        let key = self.node_key();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(&self.nodes_key, &self.node)
            .ignore()
            .sadd(&key, user.to_string())
            .ignore()
            .expire(&key, TTL.as_secs() as i64)
            .ignore();
        self.run(pipe, "record a connection").await;
    }

    /// Records that `user` may have no connection here any more (call after
    /// unregistering one): removed when the registry has none left.
    pub async fn left(&self, user: Uuid) {
        if self.registry.is_connected(user) {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.srem(self.node_key(), user.to_string()).ignore();
        self.run(pipe, "record a disconnection").await;
    }

    /// Rewrites this node's set from the registry and renews its TTL.
    async fn refresh(&self) {
        let key = self.node_key();
        let users: Vec<String> = self
            .registry
            .users()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        if !users.is_empty() {
            pipe.sadd(&key, users)
                .ignore()
                .expire(&key, TTL.as_secs() as i64)
                .ignore()
                .sadd(&self.nodes_key, &self.node)
                .ignore();
        }
        self.run(pipe, "refresh this node's presence").await;
    }

    async fn run(&self, pipe: redis::Pipeline, what: &str) {
        let mut conn = self.conn.clone();
        let ok = match tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "presence: cannot {what}");
                false
            }
            Err(_) => {
                tracing::debug!("presence: cannot {what}: Redis timed out");
                false
            }
        };
        self.healthy.store(ok, Ordering::Relaxed);
    }

    /// Those of `users` connected to some live node (this one included).
    pub async fn connected(&self, users: &[Uuid]) -> anyhow::Result<HashSet<Uuid>> {
        if users.is_empty() {
            return Ok(HashSet::new());
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CONNECTED)
            .arg(1)
            .arg(&self.nodes_key)
            .arg(&self.node_prefix);
        for user in users {
            cmd.arg(user.to_string());
        }
        let mut conn = self.conn.clone();
        let flags: Vec<u8> = tokio::time::timeout(TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis timed out"))??;
        Ok(users
            .iter()
            .zip(flags)
            .filter(|(_, flag)| *flag == 1)
            .map(|(user, _)| *user)
            .collect())
    }

    /// Stops the heartbeat and removes this node's set (its users are
    /// offline at once rather than after the TTL).
    pub async fn stop(&self) {
        self.stop.cancel();
        let mut pipe = redis::pipe();
        pipe.del(self.node_key())
            .ignore()
            .srem(&self.nodes_key, &self.node)
            .ignore();
        self.run(pipe, "remove this node's presence").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_are_seen_across_nodes_until_they_leave() {
        let url = std::env::var("MISSIVE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("missive-test-{}", Uuid::now_v7());
        let (here, there) = (Arc::new(Registry::default()), Arc::new(Registry::default()));
        let a = ClusterPresence::start(&url, &prefix, here.clone()).expect("a valid URL");
        let b = ClusterPresence::start(&url, &prefix, there.clone()).expect("a valid URL");
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let sub = there.register(alice);
        b.joined(alice).await;
        let seen = match a.connected(&[alice, bob]).await {
            Ok(seen) => seen,
            Err(e) => {
                assert!(
                    std::env::var("MISSIVE_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "MISSIVE_TEST_REQUIRE_SERVICES=1 but no Redis at {url}: {e}"
                );
                eprintln!("\n*** skipped: no Redis at {url} ***\n");
                return;
            }
        };
        assert_eq!(seen, HashSet::from([alice]));
        there.unregister(alice, sub.id);
        b.left(alice).await;
        assert!(a.connected(&[alice]).await.expect("answers").is_empty());
        // A node that stops takes its users with it.
        let _sub = there.register(bob);
        b.joined(bob).await;
        assert_eq!(
            a.connected(&[bob]).await.expect("answers"),
            HashSet::from([bob])
        );
        b.stop().await;
        assert!(a.connected(&[bob]).await.expect("answers").is_empty());
        a.stop().await;
    }
}
