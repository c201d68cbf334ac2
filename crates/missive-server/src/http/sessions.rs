//! Login on a new device by one-time code, and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use missive_protocol::{LoginRequest, Session, VerifyRequest};
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(request_code))
        .route("/sessions/verify", post(verify_code))
        .route("/sessions/current", delete(logout))
}

/// POST /sessions: send a fresh 6-digit code to a registered number; 202.
async fn request_code(
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

/// POST /sessions/verify: trade a valid code for a token; 201 `{token, user}`.
async fn verify_code(
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

/// DELETE /sessions/current: revoke the token of this request; 204.
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.service.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
