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
use crate::state::AppState;

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
    let (user, token) = state
        .service
        .register(&caller, &body.phone_number, body.display_name)
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
    let user = state
        .service
        .lookup(&caller, params.phone_number.as_deref())
        .await?;
    Ok(Json(user))
}

/// GET /me: the token's user.
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<User>, ApiError> {
    Ok(Json(state.service.require_token(&caller).await?))
}
