//! Every use case of missive, shared by the HTTP API and the WebSocket
//! gateway: who is calling ([`identity`]), accounts and login
//! ([`accounts`]), the caller's sessions ([`sessions`]), chats ([`chats`])
//! and messages ([`messages`]). Each rule
//! lives here once; the transports parse, call one method, and map the
//! result. Writes commit to the store first, and only then are published on
//! the bus.

pub mod accounts;
pub mod chats;
mod directory;
mod error;
pub mod identity;
pub mod messages;
pub mod sessions;

pub use error::{Error, ErrorCode};
pub use identity::{Caller, Claim};
pub use messages::{Draft, PendingSend, Recipient};

use std::sync::Arc;

use uuid::Uuid;

use crate::bus::{DynBus, Envelope, Payload};
use crate::config::AuthMode;
use crate::domain::event::Event;
use crate::metrics::Metrics;
use crate::push::PushHook;
use crate::security::{Clock, CodeSender, RateLimits, TokenCache};
use crate::store::{DynStore, EventLog, StoreResult};

/// What the service needs from the rest of the node.
pub struct Parts {
    /// The database.
    pub store: DynStore,
    /// Fan-out of committed events.
    pub bus: DynBus,
    /// Register/login and send rate limits.
    pub limits: Arc<RateLimits>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Delivers login codes.
    pub codes: Arc<dyn CodeSender>,
    /// The time, for code expiry.
    pub clock: Arc<dyn Clock>,
    /// Who may claim an identity without a token.
    pub auth_mode: AuthMode,
    /// Push notifications (`PUSH_WEBHOOK_URL`); `None`: disabled.
    pub push: Option<PushHook>,
    /// A token unused this long has expired (`TOKEN_TTL`, sliding).
    pub token_ttl: std::time::Duration,
}

/// The use cases, with what they need.
pub struct Service {
    store: DynStore,
    bus: DynBus,
    limits: Arc<RateLimits>,
    metrics: Arc<Metrics>,
    codes: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
    auth_mode: AuthMode,
    push: Option<PushHook>,
    token_ttl: std::time::Duration,
    /// Recently validated tokens (at most a second old).
    tokens: TokenCache,
    /// Phone numbers of registered users, for sends addressed by number.
    directory: directory::Directory,
}

impl Service {
    /// A service over `parts`.
    pub fn new(parts: Parts) -> Self {
        Service {
            store: parts.store,
            bus: parts.bus,
            limits: parts.limits,
            metrics: parts.metrics,
            codes: parts.codes,
            clock: parts.clock,
            auth_mode: parts.auth_mode,
            push: parts.push,
            token_ttl: parts.token_ttl,
            tokens: TokenCache::default(),
            directory: directory::Directory::default(),
        }
    }

    /// Checks the database answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    /// The cursor of the newest event of `user`'s log (0 when empty).
    pub async fn event_cursor(&self, user: Uuid) -> StoreResult<i64> {
        self.store.event_cursor(user).await
    }

    /// Where `user`'s log stands: its newest event and how far it was pruned.
    pub async fn event_log(&self, user: Uuid) -> StoreResult<EventLog> {
        self.store.event_log(user).await
    }

    /// Up to `limit` events of `user`'s log after `cursor`, oldest first
    /// (a connection catching up).
    pub async fn events_since(
        &self,
        user: Uuid,
        cursor: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Event)>> {
        self.store.events_since(user, cursor, limit).await
    }

    /// Finishes pending writes and closes the database.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Publishes a committed event to its targets.
    async fn publish_durable(&self, targets: Vec<(Uuid, i64)>, event: Event) {
        publish_durable(&self.bus, targets, event).await;
    }
}

/// Publishes a committed event to its targets (nothing when there are none).
async fn publish_durable(bus: &DynBus, targets: Vec<(Uuid, i64)>, event: Event) {
    if targets.is_empty() {
        return;
    }
    let targets = targets
        .into_iter()
        .map(|(user, cursor)| (user, Some(cursor)))
        .collect();
    bus.publish(Envelope {
        targets,
        payload: Arc::new(Payload::durable(event)),
    })
    .await;
}
