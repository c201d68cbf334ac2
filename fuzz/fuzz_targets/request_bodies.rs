//! The JSON request body of every endpoint: each `missive_protocol` request
//! type is read from the input (as `axum::Json` reads a body), then the
//! server's validation of that endpoint runs on it.
//!
//! Properties: a body that deserializes survives a serialize/deserialize
//! round trip; each validator's verdict matches the documented rule
//! (see `missive_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_fuzz::{check_display_name, check_draft, check_recipient, check_service_phone};
use missive_protocol::{
    CreateChatRequest, LoginRequest, MessageStatus, RegisterRequest, SendMessageRequest,
    StatusRequest, TypingRequest, VerifyRequest,
};
use missive_server::security::codes::is_well_formed;
use missive_server::service::ErrorCode;
use missive_server::service::chats::{MAX_PARTICIPANTS, parse_participants};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads a `T` from the body; if it is one, checks it round-trips.
fn body<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let wire = serde_json::to_vec(&value).expect("a request serializes");
    let again: T = serde_json::from_slice(&wire).expect("a serialized request deserializes");
    assert_eq!(again, value);
    Some(value)
}

/// The first problem of a participant list of a valid size, in list order:
/// an invalid number (`invalid_phone_number`) or one listed before
/// (`invalid_participants`); `None` when there is none.
fn first_problem(participants: &[String]) -> Option<ErrorCode> {
    let mut seen = Vec::new();
    for raw in participants {
        let Some(phone) = check_service_phone(raw) else {
            return Some(ErrorCode::InvalidPhoneNumber);
        };
        if seen.contains(&phone) {
            return Some(ErrorCode::InvalidParticipants);
        }
        seen.push(phone);
    }
    None
}

fuzz_target!(|data: &[u8]| {
    // POST /register, POST /users
    if let Some(r) = body::<RegisterRequest>(data) {
        check_service_phone(&r.phone_number);
        check_display_name(r.display_name.as_deref());
    }
    // POST /sessions
    if let Some(r) = body::<LoginRequest>(data) {
        check_service_phone(&r.phone_number);
    }
    // POST /sessions/verify
    if let Some(r) = body::<VerifyRequest>(data) {
        check_service_phone(&r.phone_number);
        let code = r.code.trim();
        if is_well_formed(code) {
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }
    // POST /chats
    if let Some(r) = body::<CreateChatRequest>(data) {
        match parse_participants(&r.participants) {
            Ok(phones) => {
                assert!((2..=MAX_PARTICIPANTS).contains(&phones.len()));
                assert_eq!(phones.len(), r.participants.len());
                assert_eq!(first_problem(&r.participants), None);
                for (phone, raw) in phones.iter().zip(&r.participants) {
                    assert_eq!(check_service_phone(raw).as_ref(), Some(phone));
                }
                for (i, a) in phones.iter().enumerate() {
                    assert!(!phones[i + 1..].contains(a), "{a} listed twice");
                }
            }
            Err(e) => {
                // The size is checked first, then each number in list order.
                let expected = if (2..=MAX_PARTICIPANTS).contains(&r.participants.len()) {
                    first_problem(&r.participants)
                } else {
                    Some(ErrorCode::InvalidParticipants)
                };
                assert_eq!(Some(e.code()), expected, "{e}");
            }
        }
    }
    // POST /message, POST /messages
    if let Some(r) = body::<SendMessageRequest>(data) {
        check_draft(&r.content, r.client_message_id.as_deref());
        let _ = check_recipient(r.chat_id, r.receiver.as_deref());
        if let Some(sender) = &r.sender {
            check_service_phone(sender);
        }
    }
    // POST /chats/{chatId}/status
    if let Some(r) = body::<StatusRequest>(data) {
        assert!(matches!(
            r.status,
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
        ));
        assert_eq!(
            serde_json::to_value(r.status).expect("serializes"),
            r.status.as_str()
        );
    }
    // POST /chats/{chatId}/typing
    let _ = body::<TypingRequest>(data);
});
