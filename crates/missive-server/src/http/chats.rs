//! Chats: create (or find the 1:1), list the caller's, read one.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use missive_protocol::{Chat, CreateChatRequest};

use super::auth::{Caller, IdentityParams};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_id};
use super::pagination::{ListParams, link_headers, next_url};
use crate::state::AppState;
use crate::store::ChatQuery;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chats", get(list_chats).post(create_chat))
        .route("/chats/{chat_id}", get(get_chat))
}

/// POST /chats: 201 with a new chat, 200 with the existing 1:1 of that pair.
async fn create_chat(
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

/// GET /chats: the caller's chats, most recent activity first; `[]` without an identity.
async fn list_chats(
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

/// GET /chats/{chatId}: one chat; 404 when unknown or the caller is not in it.
async fn get_chat(
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
