//! Users: registration, contact lookup, and the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use missive_protocol::{RegisterRequest, Registered, User};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::domain::PhoneNumber;
use crate::security::tokens::{hash_token, new_token};
use crate::state::AppState;
use crate::store::NewUser;

/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/users", post(register).get(lookup))
        .route("/me", get(me))
}

/// POST /register (alias POST /users): create a user; the answer carries its first token.
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    caller.check_auth_rate(&state)?;
    let phone_number = parse_phone(&body.phone_number)?;
    let display_name = parse_display_name(body.display_name)?;
    let token = new_token().map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let user = state
        .store
        .create_user(NewUser {
            phone_number,
            display_name,
            token_hash: hash_token(&token),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Registered { user, token })))
}

/// Query of `GET /users`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupParams {
    phone_number: Option<String>,
}

/// GET /users?phoneNumber=: find a contact by phone number (needs a token).
async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<LookupParams>,
) -> Result<Json<User>, ApiError> {
    caller.require_token(&state).await?;
    let raw = params
        .phone_number
        .ok_or_else(|| ApiError::invalid_parameter("phoneNumber is required"))?;
    let phone = parse_phone(&raw)?;
    let user = state
        .store
        .user_by_phone(&phone)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    Ok(Json(user))
}

/// GET /me: the token's user.
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<User>, ApiError> {
    Ok(Json(caller.require_token(&state).await?))
}

/// A phone number, or 400 `invalid_phone_number`.
pub fn parse_phone(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))
}

/// Trims; blank means none; at most 64 characters.
fn parse_display_name(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(name) = raw.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("displayName must be at most {MAX_DISPLAY_NAME_CHARS} printable characters"),
        ));
    }
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(parse_display_name(None).expect("ok"), None);
        assert_eq!(parse_display_name(Some("  ".into())).expect("ok"), None);
        assert_eq!(
            parse_display_name(Some(" Ada ".into())).expect("ok"),
            Some("Ada".into())
        );
        assert!(parse_display_name(Some("x".repeat(65))).is_err());
        assert!(parse_display_name(Some("a\u{0}b".into())).is_err());
    }
}
