//! The fan-out boundary. The store is the truth and the bus is only a hint:
//! events are published after their commit, and a connection that misses one
//! notices the gap in its cursors and reads the store.
//!
//! Each node keeps a [`Registry`] of its live connections; a bus hands every
//! envelope to the registry of each node (the in-process bus: just this one;
//! the Redis bus: every node sharing the stream).

mod local;
mod redis;
mod registry;

pub use local::LocalBus;
pub use redis::{RedisBus, STREAM_BOUND};
pub use registry::{Outbound, QUEUE, Registry, Subscription};

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::event::Event;

/// What travels on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Payload {
    /// A committed event of the targets' logs.
    Durable {
        /// The event.
        event: Event,
        /// Its frame's text, serialized once for every recipient on this node.
        #[serde(skip)]
        frame: FrameText,
    },
    /// A participant is (not) typing: never stored, never replayed.
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Phone number of who is typing.
        user: String,
        /// Whether they are typing.
        is_typing: bool,
    },
    /// A token was revoked: connections opened with it must close.
    #[serde(rename_all = "camelCase")]
    TokenRevoked {
        /// SHA-256 of the token, hex.
        token_hash: String,
    },
    /// This node may have missed events (the scale-out bus lost its position
    /// or could not publish): every connection reads the store after its last
    /// cursor and re-checks its token. Handed to all local connections.
    CatchUp,
}

impl Payload {
    /// A committed event, for its targets.
    pub fn durable(event: Event) -> Payload {
        Payload::Durable {
            event,
            frame: FrameText::default(),
        }
    }
}

/// The wire text of a payload's frame, made by the first connection that
/// sends it and shared by the others (the WebSocket gateway fills it). A
/// cache: it is no part of the payload's value, so it never travels on the
/// bus and payloads compare equal whatever it holds.
#[derive(Debug, Default, Clone)]
pub struct FrameText(OnceLock<Box<str>>);

impl FrameText {
    /// The text, made by `make` on first use.
    pub fn get_or_init(&self, make: impl FnOnce() -> String) -> &str {
        self.0.get_or_init(|| make().into_boxed_str())
    }
}

impl PartialEq for FrameText {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FrameText {}

/// A payload and the users it is for, each with their event cursor
/// (`None` for ephemeral payloads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// `(user, cursor)` pairs.
    pub targets: Vec<(Uuid, Option<i64>)>,
    /// The shared payload.
    pub payload: Arc<Payload>,
}

/// How the bus is doing, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// In-process fan-out only (no `REDIS_URL`).
    Local,
    /// Connected to the shared bus.
    Ok,
    /// The shared bus is unreachable: same-node delivery goes on, other
    /// nodes catch up from the store once it is back.
    Down,
}

impl BusHealth {
    /// The name `/readyz` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BusHealth::Local => "local",
            BusHealth::Ok => "ok",
            BusHealth::Down => "down",
        }
    }
}

/// Counters of a bus for `/metrics` (the stream's are zero for the in-process bus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Envelopes this node published (on any bus).
    pub events_published: u64,
    /// Entries this node added to the shared stream.
    pub published: u64,
    /// Entries lost by failed or timed-out publishes (the store has them).
    pub failed: u64,
    /// Entries dropped because the outbox to the publisher was full.
    pub dropped: u64,
    /// Entries of other nodes handed to this node's registry.
    pub received: u64,
    /// Times this node told all its connections to catch up from the store.
    pub catch_ups: u64,
}

/// Delivers envelopes to every connection of their targets, on every node.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes after the commit; best effort (the store is the fallback).
    /// Never blocks on a remote service.
    async fn publish(&self, envelope: Envelope);

    /// The bus's state, for readiness.
    fn health(&self) -> BusHealth {
        BusHealth::Local
    }

    /// Counters for `/metrics`.
    fn stats(&self) -> BusStats {
        BusStats::default()
    }

    /// At shutdown: flushes what is queued (bounded) and stops background work.
    async fn close(&self) {}
}

/// A shared handle on the bus.
pub type DynBus = Arc<dyn Bus>;

#[cfg(test)]
mod contract {
    //! What every [`Bus`] promises, run against each implementation.

    use std::time::Duration;

    use super::*;

    fn typing() -> Arc<Payload> {
        Arc::new(Payload::Typing {
            chat_id: Uuid::nil(),
            user: "+1234567".into(),
            is_typing: true,
        })
    }

    /// A published envelope reaches the publishing node's registry before
    /// `publish` returns, and (for a bus across nodes) `remote`, once.
    async fn keeps_the_contract(bus: &dyn Bus, local: &Registry, remote: Option<&Registry>) {
        let user = Uuid::now_v7();
        let here = local.register(user);
        let there = remote.map(|r| r.register(user));
        let envelope = Envelope {
            targets: vec![(user, Some(7))],
            payload: typing(),
        };

        bus.publish(envelope).await;

        let item = here.queue.try_recv().expect("delivered locally at once");
        assert_eq!((item.cursor, item.payload), (Some(7), typing()));
        if let Some(there) = there {
            let item = tokio::time::timeout(Duration::from_secs(5), there.queue.recv_async())
                .await
                .expect("delivered on the other node")
                .expect("an item");
            assert_eq!((item.cursor, item.payload), (Some(7), typing()));
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(there.queue.try_recv().is_err(), "delivered once");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            here.queue.try_recv().is_err(),
            "the publisher's node does not get its own entry back"
        );
    }

    #[tokio::test]
    async fn the_local_bus_keeps_the_contract() {
        let registry = Arc::new(Registry::default());
        let bus = LocalBus::new(registry.clone());
        keeps_the_contract(&bus, &registry, None).await;
        assert_eq!(bus.health(), BusHealth::Local);
        assert_eq!(bus.stats().events_published, 1);
    }

    /// Waits (bounded) until `bus` reports `health`.
    async fn wait_for(bus: &dyn Bus, health: BusHealth) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while bus.health() != health {
            assert!(std::time::Instant::now() < deadline, "never {health:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_redis_bus_keeps_the_contract() {
        let url = std::env::var("MISSIVE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("missive-test-{}", Uuid::now_v7());
        let (one, two) = (Arc::new(Registry::default()), Arc::new(Registry::default()));
        let bus_one = RedisBus::start(&url, &prefix, one.clone()).expect("a valid URL");
        let bus_two = RedisBus::start(&url, &prefix, two.clone()).expect("a valid URL");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while bus_one.health() != BusHealth::Ok || bus_two.health() != BusHealth::Ok {
            if std::time::Instant::now() > deadline {
                assert!(
                    std::env::var("MISSIVE_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "MISSIVE_TEST_REQUIRE_SERVICES=1 but no Redis at {url}"
                );
                eprintln!("\n*** skipped: no Redis at {url} ***\n");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        keeps_the_contract(&bus_one, &one, Some(&two)).await;
        keeps_the_contract(&bus_two, &two, Some(&one)).await;
        let stats = bus_one.stats();
        assert_eq!((stats.published, stats.received), (1, 1), "{stats:?}");

        if let Ok(client) = ::redis::Client::open(url.as_str())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let _ = ::redis::cmd("DEL")
                .arg(format!("{prefix}:events"))
                .query_async::<()>(&mut conn)
                .await;
        }
    }

    #[tokio::test]
    async fn without_redis_the_bus_is_down_and_still_delivers_locally_at_once() {
        let registry = Arc::new(Registry::default());
        // Port 1: nothing listens, connections are refused.
        let bus = RedisBus::start("redis://127.0.0.1:1", "missive-test", registry.clone())
            .expect("a valid URL");
        wait_for(&bus, BusHealth::Down).await;
        let user = Uuid::now_v7();
        let here = registry.register(user);
        for _ in 0..super::redis::OUTBOX_FOR_TESTS + 10 {
            let started = std::time::Instant::now();
            bus.publish(Envelope {
                targets: vec![(user, None)],
                payload: typing(),
            })
            .await;
            assert!(
                started.elapsed() < Duration::from_millis(50),
                "publish never waits"
            );
        }
        assert!(here.queue.try_recv().is_ok(), "delivered locally");
        assert!(bus.stats().dropped >= 10, "{:?}", bus.stats());
        assert_eq!(bus.health(), BusHealth::Down);
        assert!(RedisBus::start("not a url", "p", registry).is_err());
    }
}
