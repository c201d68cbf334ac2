//! Users: registration, contact lookup, and the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use missive_protocol::openapi::PhoneNumber;
use missive_protocol::{ErrorBody, RegisterRequest, Registered, User};
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

/// Register a user
///
/// Creates a user with a unique phone number and returns it with a bearer
/// token (its first session). `POST /users` is the same operation. Rate
/// limited per client address by `AUTH_RATE_LIMIT`.
#[utoipa::path(
    post,
    path = "/register",
    operation_id = "register",
    tag = "users",
    request_body(
        content = RegisterRequest,
        example = json!({"phoneNumber": "+1234567890", "displayName": "Ada"})
    ),
    responses(
        (status = 201, description = "The new user and its bearer token.", body = Registered),
        (status = 400, description = "`invalid_request` (malformed body, or a `displayName` over 64 characters or with control characters) or `invalid_phone_number`.", body = ErrorBody),
        (status = 409, description = "`phone_taken`: the phone number is already registered.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `AUTH_RATE_LIMIT` requests per minute from this address.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(())
)]
pub(crate) async fn register(
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
pub(crate) struct LookupParams {
    phone_number: Option<String>,
}

/// Look up a user by phone number
///
/// Contact lookup. Needs a bearer token in every `AUTH_MODE`. Limited to
/// `LOOKUP_RATE_LIMIT` lookups per minute per user (default 30) and four
/// times that per client address: contact discovery must not become a way
/// to enumerate who uses the service.
#[utoipa::path(
    get,
    path = "/users",
    operation_id = "lookupUser",
    tag = "users",
    params(("phoneNumber" = PhoneNumber, Query, description = "The phone number to look up.", example = "+1234567890")),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 400, description = "`invalid_phone_number`, or a missing `phoneNumber` (`invalid_parameter`).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
        (status = 404, description = "`user_not_found`: no user has this phone number.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `LOOKUP_RATE_LIMIT` lookups per minute of this user, or four times that from this address.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn lookup(
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

/// The current user
///
/// Returns the user of the bearer token.
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    tag = "sessions",
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.service.require_token(&caller).await?))
}
