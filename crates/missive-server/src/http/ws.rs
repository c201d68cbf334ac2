//! `GET /ws`: admits a WebSocket upgrade (origin, identity, cursor, the
//! per-user cap) and hands the connection to the gateway.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use axum::routing::get;
use missive_protocol::ErrorBody;
use serde::Deserialize;

use super::auth::{Caller, Claim};
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::gateway::{self, Context};
use crate::security::tokens::hash_token;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// Query of `GET /ws`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Params {
    /// Bearer token (browsers cannot set headers on a WebSocket). An
    /// `Authorization: Bearer` header works too; an invalid token is 401.
    token: Option<String>,
    /// Claimed identity: a user id or a phone number (subject to
    /// `AUTH_MODE`; `userId` is accepted too). Naming another user than the
    /// token's is 403; an unknown user is 404 `user_not_found`.
    #[serde(rename = "userID", alias = "userId")]
    #[param(example = "+1234567890")]
    user_id: Option<String>,
    /// The last cursor processed (a non-negative integer taken from a
    /// previous frame): missed durable events are replayed first. Anything
    /// else is 400 `invalid_parameter`.
    #[param(pattern = "^[0-9]+$", example = "42")]
    since: Option<String>,
}

/// Real-time events (WebSocket)
///
/// Upgrades to a WebSocket. Text frames, one JSON object each (schemas
/// `ServerFrame` and `ClientFrame`; the sandbox frame is `LegacySendFrame`).
///
/// **Server → client**: `ready` {user, cursor} first; `message` {message,
/// cursor} for every new message in any of the user's chats (the user's own
/// included, on every connection — the sending one too, so that its cursors
/// stay contiguous; dedupe by message `id`); `receipt` {chatId, messageId,
/// status, user, at, cursor}; `typing` {chatId, user, isTyping} (ephemeral,
/// no cursor); `ack` {ref, message} answering a `send` after the commit;
/// `error` {ref?, code, message} for a bad frame (the connection stays
/// open); `pong` answering `ping`; `resync` {cursor} when `since=` cannot be
/// replayed (see Resume).
///
/// **Client → server**: `{"type":"send","ref"?,"chatId"|"to","content","clientMessageId"?}`;
/// the sandbox frame `{"From","To","Content"}` (keys case-insensitive;
/// `From` must be the connection's user); `{"type":"receipt","chatId","messageId","status"}`;
/// `{"type":"typing","chatId","isTyping"}`; `{"type":"ping"}`. Frames over
/// 64 KiB get an `error` frame (`frame_too_large`).
///
/// **Resume**: the cursor is opaque. Reconnecting with `since=` the last
/// cursor processed replays, in order, every durable event (message,
/// receipt) missed, then live events — across restarts and nodes. A
/// duplicate is possible only around the resume point and carries the same
/// message `id`: clients dedupe by id. Events older than `EVENT_RETENTION`
/// (default 30 days) may be pruned: a `since=` older than what is kept (or
/// one this database never handed out, after a restore) gets, right after
/// `ready`, `{"type":"resync","cursor"}` instead of a replay: re-list the
/// chats and their messages, then continue from that cursor. Events are
/// never skipped silently. Every open connection of a user
/// receives the user's events. A client that does not read its socket is
/// disconnected once its outbound queue (1,024 events) is full: with close
/// code 1013, or, when its socket buffer is full too, by dropping the TCP
/// connection; it then resumes. At shutdown the server closes with 1001.
#[utoipa::path(
    get,
    path = "/ws",
    operation_id = "websocket",
    tag = "websocket",
    params(Params),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket session starts with a `ready` frame."),
        (status = 400, description = "`invalid_request`: not a WebSocket upgrade request; `invalid_parameter`: a malformed `since`; `invalid_phone_number`: a malformed `userID`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no usable identity (no `token`/`userID`, an invalid, expired or revoked token, or a claim `AUTH_MODE` does not believe).", body = ErrorBody),
        (status = 403, description = "`forbidden`: `userID` names another user than the token's, or a browser `Origin` other than the server's own and `CORS_ORIGINS`.", body = ErrorBody),
        (status = 404, description = "`user_not_found`: the claimed `userID` is not registered.", body = ErrorBody),
        (status = 429, description = "`too_many_connections`: the user already has `MAX_SOCKETS_PER_USER` (default 32) WebSockets open on this node.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying (5: time for another socket to close)."))),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    ApiQuery(params): ApiQuery<Params>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Browsers send `Origin` on every WebSocket upgrade and let any page
    // open one: without this check, a page of another site open on the
    // same machine could act as any user under `AUTH_MODE=loopback`.
    if !origin_allowed(&headers, &state.config.cors_origins) {
        return Err(ApiError::forbidden(
            "this Origin may not open WebSockets here (see CORS_ORIGINS)",
        ));
    }
    let since = params.since.as_deref().map(parse_cursor).transpose()?;
    let caller = caller.or_token(params.token);
    let token_hash = caller.token().map(hash_token);
    let user = state
        .service
        .identify(&caller, params.user_id.as_deref().map(Claim::IdOrPhone))
        .await?
        .ok_or_else(|| ApiError::unauthorized("token= or userID= is required"))?;
    let upgrade = upgrade.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    // Taken before answering 101, held until the session ends.
    let slot = state.gateway.sockets.take(user.id).ok_or_else(|| {
        ApiError::new(
            crate::service::ErrorCode::TooManyConnections,
            "this user has too many open WebSockets on this node (MAX_SOCKETS_PER_USER)",
        )
        .with_retry_after(gateway::CAP_RETRY_AFTER_SECS)
    })?;
    let ctx = Context {
        service: state.service.clone(),
        metrics: state.metrics.clone(),
        gateway: state.gateway.clone(),
    };
    Ok(gateway::accept(upgrade, ctx, user, since, token_hash, slot))
}

/// Whether a WebSocket upgrade may proceed: no `Origin` (not a browser),
/// the server's own origin (`Origin` names the `Host` the request was sent
/// to), or one of `allowed`.
///
/// "Same host" is no proof of a trusted page: after DNS rebinding, a page of
/// another site has `Origin` and `Host` both naming that site. What a
/// claimed `userID` needs beyond this check is a trusted `Host` (a loopback
/// name or one of `ALLOWED_HOSTS`, see `http::auth::host_is_trusted`),
/// which the identity decision requires under `AUTH_MODE=loopback`.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    let same_host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .zip(origin.split_once("://"))
        .is_some_and(|(host, (_, origin_host))| origin_host == host.to_ascii_lowercase());
    same_host || allowed.contains(&origin)
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

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().expect("a header value"));
        }
        map
    }

    #[test]
    fn only_the_servers_own_and_listed_origins_may_open_websockets() {
        let listed = vec!["https://chat.example.com".to_owned()];
        let host = (HOST, "localhost:8080");
        // Not a browser: no Origin.
        assert!(origin_allowed(&headers(std::slice::from_ref(&host)), &[]));
        // The page the server itself serves.
        assert!(origin_allowed(
            &headers(&[host.clone(), (ORIGIN, "http://localhost:8080")]),
            &[]
        ));
        // Another site open in the same browser.
        assert!(!origin_allowed(
            &headers(&[host.clone(), (ORIGIN, "https://evil.example")]),
            &listed
        ));
        assert!(!origin_allowed(
            &headers(&[host.clone(), (ORIGIN, "http://localhost:9999")]),
            &[]
        ));
        assert!(origin_allowed(
            &headers(&[host, (ORIGIN, "https://Chat.Example.com")]),
            &listed
        ));
    }

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
