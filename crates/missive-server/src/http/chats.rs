//! Chats: create (or find the 1:1), list the caller's, read one.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use missive_protocol::{Chat, CreateChatRequest, ErrorBody};

use super::auth::{Caller, IdentityParams};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_id};
use super::pagination::{ListParams, PageParams, link_headers, next_url};
use crate::state::AppState;
use crate::store::ChatQuery;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chats", get(list_chats).post(create_chat))
        .route("/chats/{chat_id}", get(get_chat))
}

/// Create (or find) a chat
///
/// Creates a chat between the participants, the caller among them (the
/// bearer token's user; an anonymous sandbox caller where `AUTH_MODE`
/// allows it). For two participants that already have a 1:1 chat, returns
/// the existing chat with 200.
#[utoipa::path(
    post,
    path = "/chats",
    operation_id = "createChat",
    tag = "chats",
    request_body(content = CreateChatRequest, example = json!({"participants": ["+1234567890", "+0987654321"]})),
    responses(
        (status = 201, description = "The new chat.", body = Chat),
        (status = 200, description = "The existing 1:1 chat of that pair.", body = Chat),
        (status = 400, description = "`invalid_participants` (fewer than 2 or more than 32, duplicates), `invalid_phone_number`, `invalid_request`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token, or no token where `AUTH_MODE` requires one.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not among the participants.", body = ErrorBody),
        (status = 404, description = "`user_not_found`: a participant is not registered.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn create_chat(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateChatRequest>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    let (chat, created) = state
        .service
        .create_chat(&caller, &body.participants)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(chat)))
}

/// List the caller's chats
///
/// The caller's chats, most recent activity first. Identity: the bearer
/// token, or a claimed `phoneNumber`/`participant`. With no identity at all
/// the answer is `200 []` (under `AUTH_MODE=required`: 401). A well-formed
/// claimed phone number that is not registered gets 404 `user_not_found`.
/// Paginate with `offset` or the `before` cursor; the `Link` header carries
/// the next page.
#[utoipa::path(
    get,
    path = "/chats",
    operation_id = "listChats",
    tag = "chats",
    params(
        IdentityParams,
        PageParams,
        ("before" = Option<uuid::Uuid>, Query, description = "Chat id cursor: list the chats that come after this one in the most-recent-activity order (i.e. less recent). Use instead of `offset`. A malformed id, or a chat that is not among the caller's, is 400 `invalid_parameter`."),
    ),
    responses(
        (status = 200, description = "A page of chats (a bare array).", body = Vec<Chat>,
            headers(("Link" = String, description = "Present only when more items exist: `<URL>; rel=\"next\"` (RFC 8288). The URL is relative to the server (path and query, e.g. `/chats?limit=50&before=…`); resolve it against the request URL. Absent on the last page."))),
        (status = 400, description = "`invalid_parameter` (bad `limit` or `offset`, a malformed `before`, or a `before` chat that is not among the caller's) or `invalid_phone_number` (malformed claim).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token, a claim the current `AUTH_MODE` does not believe, or no identity under `AUTH_MODE=required`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the claim names another user than the bearer token's.", body = ErrorBody),
        (status = 404, description = "`user_not_found`: the claimed phone number is not registered.", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn list_chats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<(HeaderMap, Json<Vec<Chat>>), ApiError> {
    let (limit, offset) = params.page()?;
    let before = params
        .before
        .as_deref()
        .map(|b| parse_id("before", b))
        .transpose()?;
    let query = ChatQuery {
        limit,
        offset,
        before,
    };
    let Some(page) = state
        .service
        .list_chats(&caller, params.identity.claim(), query)
        .await?
    else {
        return Ok((HeaderMap::new(), Json(Vec::new())));
    };
    let next = match page.items.last() {
        Some(last) if page.more => Some(next_url(
            "/chats",
            &[
                ("phoneNumber", params.identity.phone_number.clone()),
                ("participant", params.identity.participant.clone()),
                ("limit", Some(limit.to_string())),
                ("before", Some(last.id.to_string())),
            ],
        )),
        _ => None,
    };
    Ok((link_headers(next), Json(page.items)))
}

/// Get a chat
///
/// Identity: the bearer token, or (where `AUTH_MODE` allows claims) a
/// `phoneNumber` (or `participant`) claim in the query. A non-member (known
/// identity) gets 404.
#[utoipa::path(
    get,
    path = "/chats/{chatId}",
    operation_id = "getChat",
    tag = "chats",
    params(
        ("chatId" = uuid::Uuid, Path, description = "Chat id. A malformed id is a 400 (`invalid_parameter`)."),
        IdentityParams,
    ),
    responses(
        (status = 200, description = "The chat.", body = Chat),
        (status = 400, description = "`invalid_parameter`: malformed chat id; `invalid_phone_number`: malformed claim.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token, a claim the current `AUTH_MODE` does not believe, or no identity under `AUTH_MODE=required`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the claim names another user than the bearer token's.", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: unknown chat, or the caller is not a member; `user_not_found`: the claimed phone number is not registered.", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn get_chat(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiQuery(identity): ApiQuery<IdentityParams>,
) -> Result<Json<Chat>, ApiError> {
    let chat_id = parse_id("chatId", &chat_id)?;
    let chat = state
        .service
        .chat(&caller, identity.claim(), chat_id)
        .await?;
    Ok(Json(chat))
}
