//! Messages: send, list (newest first), delivered/read watermarks, typing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use missive_protocol::{Message, SendMessageRequest, StatusRequest, StatusResponse, TypingRequest};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_id};
use super::pagination::{ListParams, link_headers, next_url};
use crate::service::messages::SendRequest;
use crate::state::AppState;
use crate::store::{MessageCursor, MessageQuery};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/message", post(send_message))
        .route("/messages", post(send_message))
        .route("/chats/{chat_id}/messages", get(list_messages))
        .route("/chats/{chat_id}/status", post(mark_status))
        .route("/chats/{chat_id}/typing", post(typing))
}

/// POST /message and POST /messages: store a message; 201 after the commit.
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let request = SendRequest {
        sender: body.sender,
        chat_id: body.chat_id,
        receiver: body.receiver,
        content: body.content,
        client_message_id: body.client_message_id,
    };
    let message = state.service.send(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// GET /chats/{chatId}/messages: a page, newest first, with `Link: rel="next"`.
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<(HeaderMap, Json<Vec<Message>>), ApiError> {
    let chat_id = parse_id("chatId", &chat_id)?;
    let (limit, offset) = params.page()?;
    let cursor = match (params.before.as_deref(), params.after.as_deref()) {
        (None, None) => MessageCursor::Newest,
        (Some(before), None) => MessageCursor::Before(parse_id("before", before)?),
        (None, Some(after)) => MessageCursor::After(parse_id("after", after)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "give before or after, not both",
            ));
        }
    };
    let query = MessageQuery {
        limit,
        offset,
        cursor,
    };
    let page = state
        .service
        .list_messages(&caller, params.identity.claim(), chat_id, query)
        .await?;
    // Older pages continue from the oldest item; `after` pages continue from the newest.
    let next_cursor = match cursor {
        MessageCursor::After(_) => page.items.first().map(|m| ("after", m.id)),
        _ => page.items.last().map(|m| ("before", m.id)),
    };
    let next = next_cursor.filter(|_| page.more).map(|(key, id)| {
        let mut query = vec![
            ("phoneNumber", params.identity.phone_number.clone()),
            ("participant", params.identity.participant.clone()),
            ("limit", Some(limit.to_string())),
        ];
        query.push((key, Some(id.to_string())));
        next_url(&format!("/chats/{chat_id}/messages"), &query)
    });
    Ok((link_headers(next), Json(page.items)))
}

/// POST /chats/{chatId}/status: move the caller's delivered/read watermark.
async fn mark_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let chat_id = parse_id("chatId", &chat_id)?;
    let receipt = state
        .service
        .mark_status(&caller, chat_id, body.message_id, body.status)
        .await?;
    Ok(Json(StatusResponse {
        chat_id,
        message_id: receipt.event.message_id,
        status: body.status,
    }))
}

/// POST /chats/{chatId}/typing: tell the other participants (never stored).
async fn typing(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(chat_id): ApiPath<String>,
    ApiJson(body): ApiJson<TypingRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let chat_id = parse_id("chatId", &chat_id)?;
    let me = state.service.require_token(&caller).await?;
    state.service.typing(&me, chat_id, body.is_typing).await?;
    Ok(Json(serde_json::json!({})))
}
