//! Messages: send, list (newest first), delivered/read watermarks, typing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use missive_protocol::{
    ErrorBody, Message, SendMessageRequest, StatusRequest, StatusResponse, TypingRequest,
};

use super::auth::{Caller, IdentityParams};
use super::bodies::Empty;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_id};
use super::pagination::{ListParams, PageParams, link_headers, next_url};
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

/// Send a message
///
/// Sends a message either to a phone number (`sender`+`receiver`, the 1:1
/// chat is created on the first message) or to an existing chat (`chatId`).
/// The 201 is sent only after the message is committed. Idempotent on
/// (sender, `clientMessageId`): a repeat returns the original message (same
/// `id`, `seq`) with 201; reusing a `clientMessageId` for another chat or
/// another content is 409 `idempotency_conflict`. The sender is the bearer
/// token's user, or the claimed `sender` where `AUTH_MODE` believes claims.
/// Rate limited per user by `SEND_RATE_LIMIT` (HTTP and WebSocket
/// together). `POST /message` is the same operation (the sandbox spelling).
#[utoipa::path(
    post,
    path = "/messages",
    operation_id = "sendMessage",
    tag = "messages",
    request_body(
        content = SendMessageRequest,
        example = json!({"chatId": "01943f6f-1111-7222-8333-444455556666", "content": "Hello!", "clientMessageId": "9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69"})
    ),
    responses(
        (status = 201, description = "The stored message (or the original one for an idempotent repeat).", body = Message),
        (status = 400, description = "`invalid_request` (malformed body, both or neither of `receiver`/`chatId`, a `clientMessageId` that is empty or over 128 characters), `invalid_content` (empty, only whitespace or over 4096 characters), `invalid_phone_number`, `invalid_participants` (sender = receiver).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no usable identity (no token and the claim is not believed, or no `sender` and no token).", body = ErrorBody),
        (status = 403, description = "`forbidden`: `sender` is not the token's user.", body = ErrorBody),
        (status = 404, description = "`user_not_found` (unknown sender or receiver) or `chat_not_found` (unknown chat, or the sender is not a member).", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict`: this `clientMessageId` was already used by the sender for another chat or another content.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `SEND_RATE_LIMIT` messages per second.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn send_message(
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

/// List a chat's messages
///
/// Identity: the bearer token, or (where `AUTH_MODE` allows claims) a
/// `phoneNumber` (or `participant`) claim in the query. Every page is listed
/// **newest first**. No cursor: the newest `limit`; `before`: the `limit`
/// messages immediately older; `after`: the `limit` messages immediately
/// newer (the oldest ones after it). `before` and `after` are exclusive:
/// giving both is 400. Reading as a recipient (known identity) marks the
/// returned messages `delivered`. A non-member (known identity) gets 404.
#[utoipa::path(
    get,
    path = "/chats/{chatId}/messages",
    operation_id = "listMessages",
    tag = "chats",
    params(
        ("chatId" = uuid::Uuid, Path, description = "Chat id. A malformed id is a 400 (`invalid_parameter`)."),
        PageParams,
        ("before" = Option<uuid::Uuid>, Query, description = "Message id: the `limit` messages immediately older than it. Not together with `after`; a message that is not in this chat is 400 `invalid_parameter`."),
        ("after" = Option<uuid::Uuid>, Query, description = "Message id: the `limit` messages immediately newer than it (the oldest ones after it, so a client can catch up forward page by page), still listed newest first. Not together with `before`; a message that is not in this chat is 400 `invalid_parameter`."),
        IdentityParams,
    ),
    responses(
        (status = 200, description = "A page of messages, newest first (a bare array).", body = Vec<Message>,
            headers(("Link" = String, description = "Present only when more items exist: `<URL>; rel=\"next\"` (RFC 8288), e.g. `</chats/01943f6f-1111-7222-8333-444455556666/messages?limit=50&before=01943f70-0000-7000-8000-000000000001>; rel=\"next\"`. The URL is relative to the server (path and query); resolve it against the request URL. Absent on the last page."))),
        (status = 400, description = "`invalid_parameter`: malformed chat id, `limit`, `offset`, `before` or `after`, both `before` and `after`, or a `before`/`after` message that is not in this chat; `invalid_phone_number`: malformed claim.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token, a claim the current `AUTH_MODE` does not believe, or no identity under `AUTH_MODE=required`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the claim names another user than the bearer token's.", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: unknown chat, or not a member; `user_not_found`: the claimed phone number is not registered.", body = ErrorBody),
    ),
    security(("bearerAuth" = []), ())
)]
pub(crate) async fn list_messages(
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

/// Mark messages delivered or read
///
/// Moves the caller's watermark: marks every message of the other
/// participants up to and including `messageId` as `status`; `read` implies
/// `delivered`. States never go backwards. Needs a bearer token in every
/// `AUTH_MODE`. The senders receive a `receipt` frame.
#[utoipa::path(
    post,
    path = "/chats/{chatId}/status",
    operation_id = "setStatus",
    tag = "chats",
    params(("chatId" = uuid::Uuid, Path, description = "Chat id. A malformed id is a 400 (`invalid_parameter`).")),
    request_body(content = StatusRequest, example = json!({"messageId": "01943f70-0000-7000-8000-000000000001", "status": "read"})),
    responses(
        (status = 200, description = "The recorded watermark.", body = StatusResponse),
        (status = 400, description = "`invalid_request` (body, or a status other than `delivered`/`read`) or `invalid_parameter` (chat id).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
        (status = 404, description = "`chat_not_found` (unknown chat or not a member) or `message_not_found` (no such message in this chat).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn mark_status(
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

/// Typing indicator
///
/// Tells the other participants (over WebSocket `typing` frames) that the
/// caller is or is no longer typing. Ephemeral, never stored. Needs a bearer
/// token in every `AUTH_MODE`.
#[utoipa::path(
    post,
    path = "/chats/{chatId}/typing",
    operation_id = "setTyping",
    tag = "chats",
    params(("chatId" = uuid::Uuid, Path, description = "Chat id. A malformed id is a 400 (`invalid_parameter`).")),
    request_body(content = TypingRequest, example = json!({"isTyping": true})),
    responses(
        (status = 200, description = "Forwarded.", body = Empty),
        (status = 400, description = "`invalid_request` (body) or `invalid_parameter` (chat id).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid bearer token (missing, unknown, revoked or expired).", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: unknown chat or not a member.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn typing(
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
