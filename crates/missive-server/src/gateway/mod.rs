//! The WebSocket gateway: one session per connection (registered in the
//! bus's connection registry), started by [`accept`] once the HTTP side
//! (`http::ws`) has admitted the upgrade. A session sees only its
//! [`Context`] (the service, the metrics and this gateway), never the HTTP
//! state.

pub mod frames;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use missive_protocol::User;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::bus::Registry;
use crate::metrics::Metrics;
use crate::security::caps::{PerKey, Slot};
use crate::service::Service;

/// `Retry-After` of a `/ws` upgrade refused at `MAX_SOCKETS_PER_USER`.
pub const CAP_RETRY_AFTER_SECS: u64 = 5;
/// Read buffer per connection: small, so that idle sockets stay cheap.
const READ_BUFFER: usize = 1024;
/// Bytes fed before the socket is written even without a flush.
const WRITE_BUFFER: usize = 16 * 1024;
/// Hard cap of the write buffer of one connection.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// Largest message the protocol layer reads. Frames over 64 KiB and up to
/// this get an `error` frame (`frame_too_large`) and the connection goes on;
/// a larger message is refused by the protocol layer as its header arrives,
/// and the connection is closed with 1009 ([`TOO_BIG_REASON`]).
const MAX_MESSAGE: usize = 256 * 1024;
/// The reason of the 1009 close (at most 123 bytes, as close reasons must be).
const TOO_BIG_REASON: &str =
    "message too big: the limit is 262144 bytes (over 65536, an error frame)";

/// The node's live connections and their lifecycle.
#[derive(Default)]
pub struct Gateway {
    /// Connections per user.
    pub registry: Arc<Registry>,
    /// Cancelled when the server shuts down: sessions flush and close with 1001.
    pub shutdown: CancellationToken,
    /// Every session, to wait for them at shutdown.
    pub tracker: TaskTracker,
    /// Cluster-wide presence, kept only with push notifications and `REDIS_URL`.
    pub presence: Option<Arc<crate::push::ClusterPresence>>,
    /// Open WebSockets per user on this node, for `MAX_SOCKETS_PER_USER`.
    pub sockets: Arc<UserSockets>,
}

/// Open (or opening) WebSockets per user on this node, capped at
/// `MAX_SOCKETS_PER_USER` (0: no cap). A place is taken before the upgrade
/// is answered and held until the session ends.
pub type UserSockets = PerKey<Uuid>;

impl Gateway {
    /// A gateway delivering through `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Gateway {
            registry,
            ..Gateway::default()
        }
    }

    /// Tells every session to close and waits (at most `grace`) for them.
    pub async fn close(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.tracker.len(),
                "websocket sessions did not close in time"
            );
        }
    }
}

/// What a session needs from the node: the use cases, the instruments and
/// the gateway itself (registry, presence, shutdown).
#[derive(Clone)]
pub struct Context {
    /// Every use case.
    pub service: Arc<Service>,
    /// The instruments of `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Live connections and their lifecycle.
    pub gateway: Arc<Gateway>,
}

/// Answers an admitted upgrade (101) with the connection's limits, and
/// serves the session of `user` on it, tracked for shutdown. `token_hash`
/// is the hash of the token it was opened with; `slot` is its place under
/// `MAX_SOCKETS_PER_USER`, held until the session ends.
pub fn accept(
    upgrade: WebSocketUpgrade,
    ctx: Context,
    user: User,
    since: Option<i64>,
    token_hash: Option<String>,
    slot: Slot<Uuid>,
) -> Response {
    let tracker = ctx.gateway.tracker.clone();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| {
            tracker.track_future(Box::pin(async move {
                let _slot = slot;
                session::run(socket, ctx, user, since, token_hash).await;
            }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_too_big_reason_names_the_limits_and_fits_a_close_frame() {
        assert!(TOO_BIG_REASON.contains(&MAX_MESSAGE.to_string()));
        assert!(TOO_BIG_REASON.contains(&frames::MAX_FRAME_BYTES.to_string()));
        assert!(TOO_BIG_REASON.len() <= 123);
    }
}
