//! Wire types of the missive API: the JSON bodies of the REST endpoints and
//! the WebSocket frames, shared by the server, the typed client and the load
//! generator. No I/O lives here.
//!
//! Field names are camelCase on the wire; every documented field is always
//! present in responses (`null` when absent, never an omitted key).
//!
//! With the `openapi` feature every type also derives `utoipa::ToSchema`, and
//! [`openapi`] holds the few schemas that exist only in the document (the
//! phone number format, the two shapes of a send, …): the server builds its
//! OpenAPI document from them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
pub mod openapi;

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({
        "id": "01943f6e-8a1b-7c2d-9e3f-0a1b2c3d4e5f",
        "phoneNumber": "+1234567890",
        "displayName": "Ada",
        "createdAt": "2026-01-01T12:00:00.123Z"
    })))
)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Stable user id (UUIDv7).
    pub id: Uuid,
    /// Unique phone number, `+` and 7 to 15 digits.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
    pub phone_number: String,
    /// Optional display name (at most 64 characters); `null` when not set.
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, max_length = 64, examples("Ada"))
    )]
    pub display_name: Option<String>,
    /// RFC 3339 UTC time with milliseconds.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-01T12:00:00.123Z")))]
    pub created_at: String,
}

/// Body of `POST /register` and `POST /users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({"phoneNumber": "+1234567890", "displayName": "Ada"})))
)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The phone number to register; it must not be registered yet (else 409 `phone_taken`).
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
    pub phone_number: String,
    /// Optional display name: trimmed, at most 64 characters, no control
    /// characters (else 400 `invalid_request`); blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64, examples("Ada")))]
    pub display_name: Option<String>,
}

/// Answer to `POST /register` and `POST /users`: the new user plus a bearer
/// token for it (shown once; the server stores only a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({
        "id": "01943f6e-8a1b-7c2d-9e3f-0a1b2c3d4e5f",
        "phoneNumber": "+1234567890",
        "displayName": "Ada",
        "createdAt": "2026-01-01T12:00:00.123Z",
        "token": "mst_4f9c2a7e0b1d…"
    })))
)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The new user.
    #[serde(flatten)]
    pub user: User,
    /// Opaque bearer token of the new user (shown once; stored only as a hash).
    pub token: String,
}

/// Delivery state of a message: `sent` (committed by the server),
/// `delivered` (reached the recipient's device), `read` (seen by the
/// recipient). For a group it is the minimum over the recipients. It never
/// goes backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Committed by the server.
    Sent,
    /// Reached the recipient's device.
    Delivered,
    /// Seen by the recipient.
    Read,
}

impl MessageStatus {
    /// The wire name (`sent`, `delivered`, `read`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
        }
    }
}

/// A message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({
        "id": "01943f70-0000-7000-8000-000000000001",
        "chatId": "01943f6f-1111-7222-8333-444455556666",
        "seq": 1,
        "sender": "+1234567890",
        "content": "Hello!",
        "createdAt": "2026-01-01T12:01:00.456Z",
        "clientMessageId": "9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69",
        "status": "sent"
    })))
)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// The chat it belongs to.
    pub chat_id: Uuid,
    /// Per-chat sequence number, strictly increasing in send order: 1, 2, 3, …
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub seq: i64,
    /// Phone number of the sender.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
    pub sender: String,
    /// The text, 1 to 4096 Unicode scalar values (characters, not bytes).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4096, examples("Hello!"))
    )]
    pub content: String,
    /// RFC 3339 UTC time with milliseconds.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-01T12:01:00.456Z")))]
    pub created_at: String,
    /// The sender's idempotency key (1 to 128 characters), `null` when none was given.
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, min_length = 1, max_length = 128)
    )]
    pub client_message_id: Option<String>,
    /// Furthest state reached for the other participant(s); for a group the
    /// minimum over the recipients. Never goes backwards.
    pub status: MessageStatus,
}

/// A chat between two (or more) users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({
        "id": "01943f6f-1111-7222-8333-444455556666",
        "participants": ["+1234567890", "+0987654321"],
        "createdAt": "2026-01-01T12:00:30.000Z",
        "lastMessage": {
            "id": "01943f70-0000-7000-8000-000000000001",
            "chatId": "01943f6f-1111-7222-8333-444455556666",
            "seq": 1,
            "sender": "+1234567890",
            "content": "Hello!",
            "createdAt": "2026-01-01T12:01:00.456Z",
            "clientMessageId": "9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69",
            "status": "sent"
        },
        "unreadCount": 0
    })))
)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// Chat id.
    pub id: Uuid,
    /// Phone numbers of the participants (2 to 32).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<openapi::PhoneNumber>, min_items = 2, max_items = 32))]
    pub participants: Vec<String>,
    /// RFC 3339 UTC time with milliseconds.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-01T12:00:30.000Z")))]
    pub created_at: String,
    /// The newest message, `null` when the chat is empty.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_message: Option<Message>,
    /// For the caller: messages from the other participants the caller has
    /// not marked `read`; 0 when the caller is unknown.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub unread_count: i64,
}

/// Body of `POST /chats`: 2 to 32 distinct, valid, registered phone numbers
/// (compared after trimming), the caller among them. Two participants that
/// already have a 1:1 chat get that chat back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({"participants": ["+1234567890", "+0987654321"]})))
)]
#[serde(rename_all = "camelCase")]
pub struct CreateChatRequest {
    /// 2 to 32 distinct phone numbers, the caller among them.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<openapi::PhoneNumber>, min_items = 2, max_items = 32))]
    pub participants: Vec<String>,
}

/// Body of `POST /message` and `POST /messages`: exactly one of two shapes,
/// `sender`+`receiver` (1:1, the chat is created on the first message) or
/// `chatId`. A repeat with the same (sender, `clientMessageId`) returns the
/// original message (same `id` and `seq`) with 201 and is stored and
/// delivered once; reusing a `clientMessageId` for another chat or another
/// content is a 409 `idempotency_conflict`.
///
/// Its OpenAPI schema is the `oneOf` of [`openapi::SendToReceiver`] and
/// [`openapi::SendToChat`] (with the `openapi` feature).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Claimed sender (phone number); optional with a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Receiver's phone number (1:1 shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Target chat (chat shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<Uuid>,
    /// The text, 1 to 4096 characters.
    pub content: String,
    /// Idempotency key of the sender, 1 to 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

/// Body of `POST /chats/{chatId}/status`: a watermark. Marks every message
/// of the other participants up to and including `messageId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({"messageId": "01943f70-0000-7000-8000-000000000001", "status": "read"})))
)]
#[serde(rename_all = "camelCase")]
pub struct StatusRequest {
    /// The newest message being acknowledged (a watermark).
    pub message_id: Uuid,
    /// `delivered` or `read`.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::ReceiptStatus))]
    pub status: MessageStatus,
}

/// Answer to `POST /chats/{chatId}/status`: the recorded watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The chat.
    pub chat_id: Uuid,
    /// The watermark message.
    pub message_id: Uuid,
    /// The status recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::ReceiptStatus))]
    pub status: MessageStatus,
}

/// Body of `POST /chats/{chatId}/typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"isTyping": true}))))]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    /// Whether the caller is typing now.
    pub is_typing: bool,
}

/// Body of `POST /sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"phoneNumber": "+1234567890"}))))]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The registered phone number to send a code to.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
    pub phone_number: String,
}

/// Body of `POST /sessions/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({"phoneNumber": "+1234567890", "code": "123456"})))
)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The phone number the code was sent to.
    #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
    pub phone_number: String,
    /// The 6-digit one-time code.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[0-9]{6}$", examples("123456"))
    )]
    pub code: String,
}

/// Answer to `POST /sessions/verify`: a new bearer token and its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The new opaque bearer token.
    pub token: String,
    /// Its user.
    pub user: User,
}

/// One live session of the caller (an entry of `GET /sessions`): a token
/// that is neither revoked nor expired, without the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({
        "id": "01943f6e-8a1b-7c2d-9e3f-0a1b2c3d4e5f",
        "createdAt": "2026-01-01T12:00:00.123Z",
        "lastUsedAt": "2026-01-03T08:15:00.456Z",
        "userAgent": "missive-web/1.0 (Firefox 128)",
        "current": true
    })))
)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The session id (a UUID; not the token): `DELETE /sessions/{id}` revokes it.
    pub id: Uuid,
    /// When the token was issued (`POST /register` or `POST /sessions/verify`),
    /// RFC 3339 UTC with milliseconds.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-01T12:00:00.123Z")))]
    pub created_at: String,
    /// When the token was last used, to about a minute (the server records
    /// a use at most about once a minute per token).
    #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-03T08:15:00.456Z")))]
    pub last_used_at: String,
    /// The `User-Agent` header of the request that obtained the token
    /// (at most 256 characters); `null` when it sent none.
    #[cfg_attr(feature = "openapi", schema(required = true, max_length = 256))]
    pub user_agent: Option<String>,
    /// True for the session of the token making this request.
    pub current: bool,
}

/// The body of every 4xx/5xx answer. A 500 never carries internal details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!({"code": "chat_not_found", "message": "chat not found"})))
)]
pub struct ErrorBody {
    /// Stable snake_case reason, for programs: `invalid_request`,
    /// `invalid_parameter`, `invalid_phone_number`, `invalid_content`,
    /// `invalid_participants`, `invalid_code`, `unauthorized`, `forbidden`,
    /// `not_found`, `user_not_found`, `chat_not_found`, `message_not_found`,
    /// `method_not_allowed`, `phone_taken`, `idempotency_conflict`,
    /// `payload_too_large`, `headers_too_large`, `uri_too_long`,
    /// `request_timeout`, `rate_limited`, `too_many_connections`,
    /// `code_delivery_failed`, `internal`, `unavailable` (and, in WebSocket
    /// `error` frames, `invalid_frame` and `frame_too_large`).
    #[cfg_attr(feature = "openapi", schema(examples("chat_not_found")))]
    pub code: String,
    /// Human-readable text.
    pub message: String,
}

/// Any frame the server sends over `GET /ws`, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    /// Always the first frame: who the connection is and the current cursor.
    Ready {
        /// The connection's user.
        user: User,
        /// Opaque cursor of the newest durable event of the user.
        cursor: String,
    },
    /// Right after `ready` (or, rarely, later): events after the `since=`
    /// cursor are no longer kept (older than the server's `EVENT_RETENTION`,
    /// or the cursor is one this database never handed out, e.g. after a
    /// restore from a backup), so they cannot be replayed. The client must
    /// re-list its chats and their messages over REST, then continue from
    /// `cursor`: the frames that follow on this connection come after it,
    /// and it is the cursor to resume from later (until a newer one
    /// arrives). Events are never skipped without this frame.
    Resync {
        /// Opaque cursor to continue from.
        cursor: String,
    },
    /// A new message in any chat of the user, the user's own included (on
    /// every connection, the sending one too). Durable.
    Message {
        /// The message.
        message: Message,
        /// Opaque cursor of this event.
        cursor: String,
    },
    /// A participant's delivered/read watermark moved. Durable.
    #[serde(rename_all = "camelCase")]
    Receipt {
        /// The chat.
        chat_id: Uuid,
        /// The watermark message.
        message_id: Uuid,
        /// The new status.
        #[cfg_attr(feature = "openapi", schema(value_type = openapi::ReceiptStatus))]
        status: MessageStatus,
        /// Phone number of the participant who acknowledged.
        #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
        user: String,
        /// When: RFC 3339 UTC time with milliseconds.
        #[cfg_attr(feature = "openapi", schema(format = DateTime, examples("2026-01-01T12:00:00.123Z")))]
        at: String,
        /// Opaque cursor of this event.
        cursor: String,
    },
    /// A participant started or stopped typing. Ephemeral, no cursor.
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Phone number of the participant.
        #[cfg_attr(feature = "openapi", schema(value_type = openapi::PhoneNumber))]
        user: String,
        /// Whether they are typing.
        is_typing: bool,
    },
    /// Answer to a `send` frame, sent after the commit.
    Ack {
        /// The `ref` of the send, echoed (`null` when it had none).
        #[serde(rename = "ref")]
        #[cfg_attr(feature = "openapi", schema(required = true))]
        reference: Option<String>,
        /// The stored message.
        message: Message,
    },
    /// A frame could not be processed; the connection stays open.
    Error {
        /// The `ref` of the offending frame (`null` when it had none).
        #[serde(rename = "ref")]
        #[cfg_attr(feature = "openapi", schema(required = true))]
        reference: Option<String>,
        /// Stable snake_case reason.
        code: String,
        /// Human text.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

/// Typed frames a client sends over `GET /ws`, discriminated by `type` (the
/// sandbox frame `{"From","To","Content"}`, schema `LegacySendFrame`, is
/// accepted too; the server parses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientFrame {
    /// Send a message to a chat (`chatId`) or a phone number (`to`).
    /// Answered by `ack` (or `error`) echoing `ref`.
    #[serde(rename_all = "camelCase")]
    Send {
        /// Echoed in the `ack`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Target chat.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_id: Option<Uuid>,
        /// Target phone number (1:1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<openapi::PhoneNumber>))]
        to: Option<String>,
        /// The text, 1 to 4096 characters.
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
        content: String,
        /// Idempotency key, 1 to 128 characters.
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// Move the caller's delivered/read watermark.
    #[serde(rename_all = "camelCase")]
    Receipt {
        /// The chat.
        chat_id: Uuid,
        /// The watermark message.
        message_id: Uuid,
        /// `delivered` or `read`.
        #[cfg_attr(feature = "openapi", schema(value_type = openapi::ReceiptStatus))]
        status: MessageStatus,
    },
    /// Tell the others the caller is (not) typing.
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Whether the caller is typing.
        is_typing: bool,
    },
    /// Keep-alive; answered by `pong`.
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_optional_fields_are_null_not_omitted() {
        let user = User {
            id: Uuid::nil(),
            phone_number: "+1234567890".into(),
            display_name: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&user).expect("serializes");
        assert_eq!(json["displayName"], serde_json::Value::Null);
        assert!(
            json.as_object()
                .expect("object")
                .contains_key("displayName")
        );
    }

    #[test]
    fn server_frames_are_tagged_by_type() {
        let json = serde_json::to_value(ServerFrame::Pong).expect("serializes");
        assert_eq!(json, serde_json::json!({"type": "pong"}));
        let typing = ServerFrame::Typing {
            chat_id: Uuid::nil(),
            user: "+1234567890".into(),
            is_typing: true,
        };
        let json = serde_json::to_value(typing).expect("serializes");
        assert_eq!(json["type"], "typing");
        assert_eq!(json["isTyping"], true);
        assert_eq!(json["chatId"], Uuid::nil().to_string());
    }

    #[test]
    fn client_send_frame_reads_ref_and_camel_case() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"send","ref":"r1","to":"+1234567890","content":"hi","clientMessageId":"c1"}"#,
        )
        .expect("parses");
        assert_eq!(
            frame,
            ClientFrame::Send {
                reference: Some("r1".into()),
                chat_id: None,
                to: Some("+1234567890".into()),
                content: "hi".into(),
                client_message_id: Some("c1".into()),
            }
        );
    }
}
