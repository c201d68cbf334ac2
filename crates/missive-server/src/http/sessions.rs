//! Login on a new device by one-time code, and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use missive_protocol::{ErrorBody, LoginRequest, Session, VerifyRequest};
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use super::openapi::CodeSent;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(request_code))
        .route("/sessions/verify", post(verify_code))
        .route("/sessions/current", delete(logout))
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
        (status = 401, description = "`unauthorized`: no valid bearer token.", body = ErrorBody),
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
