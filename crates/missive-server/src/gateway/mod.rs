//! The WebSocket gateway (`GET /ws`, API.md §5): the upgrade, one session per
//! connection (registered in the bus's connection registry).

pub mod frames;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Registry;
use crate::http::auth::{Caller, Claim};
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::security::tokens::hash_token;
use crate::state::AppState;

/// Read buffer per connection: small, so that idle sockets stay cheap.
const READ_BUFFER: usize = 1024;
/// Bytes fed before the socket is written even without a flush.
const WRITE_BUFFER: usize = 16 * 1024;
/// Hard cap of the write buffer of one connection.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// Largest message the protocol layer reads; frames over 64 KiB get an `error` frame.
const MAX_MESSAGE: usize = 256 * 1024;

/// The node's live connections and their lifecycle.
#[derive(Default)]
pub struct Gateway {
    /// Connections per user.
    pub registry: Arc<Registry>,
    /// Cancelled when the server shuts down: sessions flush and close with 1001.
    pub shutdown: CancellationToken,
    /// Every session, to wait for them at shutdown.
    pub tracker: TaskTracker,
}

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

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// Query of `GET /ws`.
#[derive(Debug, Default, Deserialize)]
struct Params {
    token: Option<String>,
    #[serde(rename = "userID", alias = "userId")]
    user_id: Option<String>,
    since: Option<String>,
}

/// GET /ws: authenticate, then upgrade to a WebSocket session.
async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<Params>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let since = params.since.as_deref().map(parse_cursor).transpose()?;
    let caller = caller.or_token(params.token);
    let token_hash = caller.token().map(hash_token);
    let user = state
        .service
        .identify(&caller, params.user_id.as_deref().map(Claim::IdOrPhone))
        .await?
        .ok_or_else(|| ApiError::unauthorized("token= or userID= is required"))?;
    let upgrade = upgrade.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let tracker = state.gateway.tracker.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| {
            tracker.track_future(Box::pin(session::run(
                socket, state, user, since, token_hash,
            )))
        }))
}

/// Parses `since=` of `GET /ws`: a cursor is the decimal number of an event
/// of the user's log. Public only so that the fuzz targets (`fuzz/`) reach it.
pub fn parse_cursor(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| ApiError::invalid_parameter("since must be a cursor from a previous frame"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_non_negative_numbers() {
        assert_eq!(parse_cursor("0").expect("ok"), 0);
        assert_eq!(parse_cursor("42").expect("ok"), 42);
        for bad in ["-1", "x", "", "1.5"] {
            assert_eq!(
                parse_cursor(bad).expect_err(bad).code().as_str(),
                "invalid_parameter"
            );
        }
    }
}
