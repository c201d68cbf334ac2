//! Login on a new device by one-time code, logout, and the caller's
//! sessions (list, revoke one).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use missive_protocol::{ErrorBody, LoginRequest, Session, SessionInfo, VerifyRequest};
use serde_json::{Value, json};

use super::auth::Caller;
use super::bodies::CodeSent;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, parse_id};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(request_code).get(list_sessions))
        .route("/sessions/verify", post(verify_code))
        .route("/sessions/current", delete(logout))
        .route("/sessions/{session_id}", delete(revoke_session))
}

/// Request a login code
///
/// Sends a 6-digit one-time code (valid 5 minutes, 5 attempts) for a
/// registered number to the configured code sender: the server log by
/// default (development), or a POST of `{"phoneNumber","code"}` to
/// `OTP_WEBHOOK_URL`. A new request issues a fresh code. Rate limited per
/// client address by `AUTH_RATE_LIMIT`.
#[utoipa::path(
    post,
    path = "/sessions",
    operation_id = "startLogin",
    tag = "sessions",
    request_body(content = LoginRequest, example = json!({"phoneNumber": "+1234567890"})),
    responses(
        (status = 202, description = "A code was issued.", body = CodeSent),
        (status = 400, description = "`invalid_request` or `invalid_phone_number`.", body = ErrorBody),
        (status = 404, description = "`user_not_found`: no user has this phone number.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `AUTH_RATE_LIMIT` requests per minute from this address.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        (status = 502, description = "`code_delivery_failed`: the code sender (`OTP_WEBHOOK_URL`) did not take the code.", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn request_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .service
        .request_code(&caller, &body.phone_number)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "code_sent"}))))
}

/// Exchange a login code for a token
///
/// Verifies the code and returns a new bearer token. After the fifth wrong
/// try the code is burned: every further try, even with the right code, gets
/// 429 until a new `POST /sessions`.
#[utoipa::path(
    post,
    path = "/sessions/verify",
    operation_id = "verifyLogin",
    tag = "sessions",
    request_body(content = VerifyRequest, example = json!({"phoneNumber": "+1234567890", "code": "123456"})),
    responses(
        (status = 201, description = "A new session.", body = Session),
        (status = 400, description = "`invalid_request` or `invalid_phone_number`.", body = ErrorBody),
        (status = 401, description = "`invalid_code`: wrong or expired code (or none was issued).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong tries (code burned) or over `AUTH_RATE_LIMIT`.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(())
)]
pub(crate) async fn verify_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let session = state
        .service
        .verify_code(&caller, &body.phone_number, &body.code)
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Log out (revoke the current token)
///
/// Revokes the bearer token used for this request; it stops working on
/// every node.
#[utoipa::path(
    delete,
    path = "/sessions/current",
    operation_id = "logout",
    tag = "sessions",
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    state.service.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List your sessions
///
/// The caller's live sessions: every token of the user that is neither
/// revoked nor expired (unused for longer than `TOKEN_TTL`), most recently
/// used first, without the tokens. `current` marks the token making this
/// request. `lastUsedAt` is recorded at most about once a minute per token
/// (an open WebSocket counts as a use). Rate limited per client address by
/// `AUTH_RATE_LIMIT`, like every `/sessions` route.
#[utoipa::path(
    get,
    path = "/sessions",
    operation_id = "listSessions",
    tag = "sessions",
    responses(
        (status = 200, description = "The caller's live sessions, most recently used first.", body = [SessionInfo]),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `AUTH_RATE_LIMIT` requests per minute from this address.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(state.service.list_sessions(&caller).await?))
}

/// Revoke one of your sessions
///
/// Revokes the session's token (for example a lost device's): it stops
/// working on every node, and the WebSockets opened with it are closed
/// (1008). The id is one of `GET /sessions`; the caller's own current
/// session may be revoked too. Any other id, another user's session
/// included, is 404.
#[utoipa::path(
    delete,
    path = "/sessions/{sessionId}",
    operation_id = "revokeSession",
    tag = "sessions",
    params(("sessionId" = uuid::Uuid, Path, description = "A session id from `GET /sessions`.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, description = "`invalid_parameter`: the id is not a UUID.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
        (status = 404, description = "`not_found`: not one of the caller's live sessions.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `AUTH_RATE_LIMIT` requests per minute from this address.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("sessionId", &session_id)?;
    state.service.revoke_session(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
