//! Users: registration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use missive_protocol::{RegisterRequest, Registered};

use super::auth::{hash_token, new_token};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::domain::PhoneNumber;
use crate::state::AppState;
use crate::store::NewUser;

/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/users", post(register))
}

/// POST /register (alias POST /users): create a user; the answer carries its first token.
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let phone_number = PhoneNumber::parse(&body.phone_number)
        .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?;
    let display_name = parse_display_name(body.display_name)?;
    let token = new_token()?;
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
