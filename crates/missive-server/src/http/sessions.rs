//! Login on a new device by one-time code (API.md §1), and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use missive_protocol::{LoginRequest, Session, VerifyRequest};
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use super::users::parse_phone;
use crate::security::codes::{CODE_TTL, MAX_ATTEMPTS, hash_code, is_well_formed, new_code};
use crate::security::tokens::{hash_token, new_token};
use crate::state::AppState;
use crate::store::{CodeAttempt, LoginCode, Redeemed};

/// How long a client should wait after burning a code (it must request a new one).
const BURNED_RETRY_AFTER_SECS: u64 = 60;

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
    caller.check_auth_rate(&state)?;
    let phone = parse_phone(&body.phone_number)?;
    let user = state
        .store
        .user_by_phone(&phone)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    let code = new_code().map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    // Deliver first: a code the user never received must not be issued.
    state.codes.send(phone.as_str(), &code).await.map_err(|e| {
        tracing::warn!(error = %e, "login code not delivered");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "code_delivery_failed",
            "the login code could not be sent; try again",
        )
    })?;
    state
        .store
        .put_login_code(LoginCode {
            user: user.id,
            phone_number: phone.as_str().to_owned(),
            code_hash: hash_code(phone.as_str(), &code),
            expires_at: state.clock.now_ms() + CODE_TTL.as_millis() as i64,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "code_sent"}))))
}

/// POST /sessions/verify: trade a valid code for a token; 201 `{token, user}`.
async fn verify_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    caller.check_auth_rate(&state)?;
    let phone = parse_phone(&body.phone_number)?;
    let code = body.code.trim();
    if !is_well_formed(code) {
        return Err(invalid_code());
    }
    let token = new_token().map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let attempt = CodeAttempt {
        phone_number: phone.as_str().to_owned(),
        code_hash: hash_code(phone.as_str(), code),
        now: state.clock.now_ms(),
        token_hash: hash_token(&token),
        max_attempts: MAX_ATTEMPTS,
    };
    match state.store.redeem_login_code(attempt).await? {
        Redeemed::Valid(user) => Ok((StatusCode::CREATED, Json(Session { token, user }))),
        Redeemed::Invalid => Err(invalid_code()),
        Redeemed::TooManyAttempts => {
            let mut error = ApiError::rate_limited(BURNED_RETRY_AFTER_SECS);
            error.set_message("too many wrong codes: request a new code with POST /sessions");
            Err(error)
        }
    }
}

fn invalid_code() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "the code is wrong or expired",
    )
}

/// DELETE /sessions/current: revoke the token of this request; 204.
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    caller.check_auth_rate(&state)?;
    let me = caller.require_token(&state).await?;
    if let Some(token) = caller.token() {
        let hash = hash_token(token);
        state.store.revoke_token(&hash).await?;
        state.tokens.remove(&hash);
        state.service.token_revoked(me.id, hash).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
