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
use crate::domain::PhoneNumber;
use crate::state::AppState;
use crate::store::ChatQuery;

/// Most participants of a chat ("small groups").
pub const MAX_PARTICIPANTS: usize = 32;

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
    let phones = parse_participants(&body.participants)?;
    let me = caller.identify(&state, None).await?;
    if let Some(me) = &me
        && !phones.iter().any(|p| p.as_str() == me.phone_number)
    {
        return Err(ApiError::forbidden(
            "the caller must be one of the participants",
        ));
    }
    let mut ids = Vec::with_capacity(phones.len());
    for phone in &phones {
        let user = state
            .store
            .user_by_phone(phone)
            .await?
            .ok_or_else(ApiError::user_not_found)?;
        ids.push(user.id);
    }
    let (view, created) = state.store.create_chat(ids, me.map(|u| u.id)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view.chat)))
}

/// 2 to 32 distinct, valid phone numbers.
fn parse_participants(raw: &[String]) -> Result<Vec<PhoneNumber>, ApiError> {
    if raw.len() < 2 || raw.len() > MAX_PARTICIPANTS {
        return Err(ApiError::bad_request(
            "invalid_participants",
            format!("a chat has 2 to {MAX_PARTICIPANTS} participants"),
        ));
    }
    let mut phones: Vec<PhoneNumber> = Vec::with_capacity(raw.len());
    for value in raw {
        let phone = PhoneNumber::parse(value)
            .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?;
        if phones.contains(&phone) {
            return Err(ApiError::bad_request(
                "invalid_participants",
                format!("{phone} is listed twice"),
            ));
        }
        phones.push(phone);
    }
    Ok(phones)
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
    let Some(me) = caller.identify(&state, params.identity.claim()).await? else {
        return Ok((HeaderMap::new(), Json(Vec::new())));
    };
    let page = state
        .store
        .list_chats(
            me.id,
            ChatQuery {
                limit,
                offset,
                before,
            },
        )
        .await?;
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
    let me = caller.identify(&state, identity.claim()).await?;
    let view = state.store.chat(chat_id, me.map(|u| u.id)).await?;
    Ok(Json(view.chat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_are_validated() {
        let ok =
            parse_participants(&["+1234567890".into(), " +0987654321 ".into()]).expect("valid");
        assert_eq!(ok[1].as_str(), "+0987654321");
        let cases: [(&[&str], &str); 4] = [
            (&["+1234567890"], "invalid_participants"),
            (&["+1234567890", "+1234567890"], "invalid_participants"),
            (&["+1234567890", " +1234567890"], "invalid_participants"),
            (&["+1234567890", "nope"], "invalid_phone_number"),
        ];
        for (raw, code) in cases {
            let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                parse_participants(&raw).expect_err("invalid").code(),
                code,
                "{raw:?}"
            );
        }
    }
}
