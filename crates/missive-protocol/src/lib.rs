//! Wire types of the missive API (see `API.md`): the JSON bodies of the REST
//! endpoints and the WebSocket frames, shared by the server, the typed client
//! and the load generator. No I/O lives here.
//!
//! Field names are camelCase on the wire; every documented field is always
//! present in responses (`null` when absent, never an omitted key).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Stable user id.
    pub id: Uuid,
    /// Unique phone number, `+` and 7 to 15 digits.
    pub phone_number: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// RFC 3339 UTC time with milliseconds.
    pub created_at: String,
}

/// Body of `POST /register` and `POST /users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The phone number to register.
    pub phone_number: String,
    /// Optional display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Answer to `POST /register`: the user and a bearer token for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The new user.
    #[serde(flatten)]
    pub user: User,
    /// Bearer token of the new user (shown once; stored only as a hash).
    pub token: String,
}

/// Delivery state of a message for its recipient(s); it never goes backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id (UUIDv7).
    pub id: Uuid,
    /// The chat it belongs to.
    pub chat_id: Uuid,
    /// Per-chat sequence number: 1, 2, 3, … in send order.
    pub seq: i64,
    /// Phone number of the sender.
    pub sender: String,
    /// The text.
    pub content: String,
    /// RFC 3339 UTC time with milliseconds.
    pub created_at: String,
    /// The sender's idempotency key, if one was given.
    pub client_message_id: Option<String>,
    /// Furthest state reached for the other participant(s).
    pub status: MessageStatus,
}

/// A chat between two or more users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// Chat id.
    pub id: Uuid,
    /// Phone numbers of the participants.
    pub participants: Vec<String>,
    /// RFC 3339 UTC time with milliseconds.
    pub created_at: String,
    /// The newest message, if any.
    pub last_message: Option<Message>,
    /// Messages from the others the caller has not marked read (0 when the caller is unknown).
    pub unread_count: i64,
}

/// Body of `POST /chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateChatRequest {
    /// Phone numbers of the participants, the caller among them.
    pub participants: Vec<String>,
}

/// Body of `POST /message` and `POST /messages`: either `sender`+`receiver`
/// (1:1, chat created on the first message) or `chatId`.
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
    /// Idempotency key of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

/// Body of `POST /chats/{chatId}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRequest {
    /// The newest message being acknowledged (a watermark).
    pub message_id: Uuid,
    /// `delivered` or `read`.
    pub status: MessageStatus,
}

/// Answer to `POST /chats/{chatId}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The chat.
    pub chat_id: Uuid,
    /// The watermark message.
    pub message_id: Uuid,
    /// The status recorded.
    pub status: MessageStatus,
}

/// Body of `POST /chats/{chatId}/typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    /// Whether the caller is typing now.
    pub is_typing: bool,
}

/// Body of `POST /sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The phone number to send a code to.
    pub phone_number: String,
}

/// Body of `POST /sessions/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The phone number the code was sent to.
    pub phone_number: String,
    /// The 6-digit code.
    pub code: String,
}

/// Answer to `POST /sessions/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The new bearer token.
    pub token: String,
    /// Its user.
    pub user: User,
}

/// The body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable snake_case reason, for programs.
    pub code: String,
    /// Human text.
    pub message: String,
}

/// Frames the server sends over `GET /ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    /// First frame: who the connection is and the current cursor.
    Ready {
        /// The connection's user.
        user: User,
        /// Cursor of the newest durable event of the user.
        cursor: String,
    },
    /// A new message in one of the user's chats.
    Message {
        /// The message.
        message: Message,
        /// Cursor of this event.
        cursor: String,
    },
    /// A participant's delivered/read watermark moved.
    #[serde(rename_all = "camelCase")]
    Receipt {
        /// The chat.
        chat_id: Uuid,
        /// The watermark message.
        message_id: Uuid,
        /// The new status.
        status: MessageStatus,
        /// Phone number of the participant who acknowledged.
        user: String,
        /// When (RFC 3339).
        at: String,
        /// Cursor of this event.
        cursor: String,
    },
    /// A participant started or stopped typing (ephemeral).
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Phone number of the participant.
        user: String,
        /// Whether they are typing.
        is_typing: bool,
    },
    /// Answer to a `send`, after the commit.
    Ack {
        /// The `ref` of the send, echoed.
        #[serde(rename = "ref")]
        reference: Option<String>,
        /// The stored message.
        message: Message,
    },
    /// A frame could not be processed; the connection stays open.
    Error {
        /// The `ref` of the offending frame, if it had one.
        #[serde(rename = "ref")]
        reference: Option<String>,
        /// Stable snake_case reason.
        code: String,
        /// Human text.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

/// Typed frames a client sends over `GET /ws` (the sandbox frame
/// `{"From","To","Content"}` is accepted too; the server parses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientFrame {
    /// Send a message to a chat (`chatId`) or a phone number (`to`).
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
        to: Option<String>,
        /// The text.
        content: String,
        /// Idempotency key.
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
