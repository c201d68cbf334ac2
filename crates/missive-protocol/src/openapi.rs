//! Schemas that exist only in the OpenAPI document: formats the Rust types
//! carry as plain strings (a phone number), narrower views of a shared type
//! (the statuses a recipient can report) and the two shapes of a send, whose
//! Rust type is one struct with optional fields.

use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::SendMessageRequest;

/// `+` followed by 7 to 15 digits. Surrounding whitespace is trimmed before
/// validation; there is no stricter carrier validation.
#[derive(ToSchema)]
#[schema(pattern = r"^\+[0-9]{7,15}$", examples("+1234567890"))]
pub struct PhoneNumber(pub String);

/// A status a recipient can report: `delivered` or `read` (`read` implies
/// `delivered`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Reached the recipient's device.
    Delivered,
    /// Seen by the recipient.
    Read,
}

/// Send from `sender` to `receiver`; the 1:1 chat of the pair is created on
/// the first message.
#[derive(ToSchema)]
#[schema(
    title = "1:1 by phone number",
    examples(json!({"sender": "+1234567890", "receiver": "+0987654321", "content": "Hello!"}))
)]
#[serde(rename_all = "camelCase")]
pub struct SendToReceiver {
    /// Claimed sender, believed where `AUTH_MODE` allows claims; optional with
    /// a bearer token (then it must be the token's user, else 403).
    #[schema(value_type = Option<PhoneNumber>, required = false)]
    pub sender: Option<String>,
    /// Receiver; must differ from the sender (else 400 `invalid_participants`).
    #[schema(value_type = PhoneNumber)]
    pub receiver: String,
    /// The text: 1 to 4096 characters (Unicode scalar values, not bytes),
    /// not only whitespace.
    #[schema(min_length = 1, max_length = 4096, examples("Hello!"))]
    pub content: String,
    /// Optional idempotency key of the sender, 1 to 128 characters (a UUID
    /// is a good choice).
    #[schema(
        min_length = 1,
        max_length = 128,
        required = false,
        examples("9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69")
    )]
    pub client_message_id: Option<String>,
}

/// Send to an existing chat by id; the sender must be a member.
#[derive(ToSchema)]
#[schema(
    title = "to an existing chat",
    examples(json!({
        "chatId": "01943f6f-1111-7222-8333-444455556666",
        "content": "Hello!",
        "clientMessageId": "9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69"
    }))
)]
#[serde(rename_all = "camelCase")]
pub struct SendToChat {
    /// The chat.
    pub chat_id: Uuid,
    /// Claimed sender, believed where `AUTH_MODE` allows claims; optional with
    /// a bearer token (then it must be the token's user, else 403).
    #[schema(value_type = Option<PhoneNumber>, required = false)]
    pub sender: Option<String>,
    /// The text: 1 to 4096 characters (Unicode scalar values, not bytes),
    /// not only whitespace.
    #[schema(min_length = 1, max_length = 4096, examples("Hello!"))]
    pub content: String,
    /// Optional idempotency key of the sender, 1 to 128 characters (a UUID
    /// is a good choice).
    #[schema(
        min_length = 1,
        max_length = 128,
        required = false,
        examples("9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69")
    )]
    pub client_message_id: Option<String>,
}

/// A frame of the original sandbox protocol, accepted from clients over
/// `GET /ws` (keys case-insensitive): a send from `From`, which must be the
/// connection's user, to `To`.
#[derive(ToSchema)]
#[schema(examples(json!({"From": "+1234567890", "To": "+0987654321", "Content": "hi"})))]
pub struct LegacySendFrame {
    /// The sender: the connection's user.
    #[schema(value_type = PhoneNumber, rename = "From")]
    pub from: String,
    /// The receiver.
    #[schema(value_type = PhoneNumber, rename = "To")]
    pub to: String,
    /// The text.
    #[schema(rename = "Content")]
    pub content: String,
}

impl PartialSchema for SendMessageRequest {
    fn schema() -> RefOr<Schema> {
        let one_of = OneOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(
                SendToReceiver::name(),
            )))
            .item(RefOr::Ref(Ref::from_schema_name(
                SendToChat::name(),
            )))
            .description(Some(
                "Body of `POST /messages` (and `POST /message`): exactly one of two shapes, \
                 `sender`+`receiver` or `chatId` (both or neither is 400 `invalid_request`). \
                 A repeat with the same (sender, `clientMessageId`) returns the original \
                 message (same `id` and `seq`) with 201 and is stored and delivered once; \
                 reusing a `clientMessageId` for another chat or another content is 409 \
                 `idempotency_conflict`.",
            ))
            .examples([
                serde_json::json!({"sender": "+1234567890", "receiver": "+0987654321", "content": "Hello!"}),
                serde_json::json!({
                    "chatId": "01943f6f-1111-7222-8333-444455556666",
                    "content": "Hello!",
                    "clientMessageId": "9b2f7c1e-3c55-4d0e-8f6a-1e2d3c4b5a69"
                }),
            ])
            .build();
        RefOr::T(Schema::OneOf(one_of))
    }
}

impl ToSchema for SendMessageRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            SendToReceiver::name().into_owned(),
            SendToReceiver::schema(),
        ));
        schemas.push((SendToChat::name().into_owned(), SendToChat::schema()));
        <SendToReceiver as ToSchema>::schemas(schemas);
        <SendToChat as ToSchema>::schemas(schemas);
    }
}
