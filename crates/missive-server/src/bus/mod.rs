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

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::Event;

/// What travels on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Payload {
    /// A committed event of the targets' logs.
    Durable {
        /// The event.
        event: Event,
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

    /// At shutdown: flushes what is queued (bounded) and stops background work.
    async fn close(&self) {}
}

/// A shared handle on the bus.
pub type DynBus = Arc<dyn Bus>;
