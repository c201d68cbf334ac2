//! Oracles shared by the fuzz targets: each `check_*` runs one of the
//! server's parsers on an input and asserts what the API documents about it
//! (README, "API"), written independently of the parser where that is practical.

use missive_server::domain::{ClientMessageId, MessageContent, PhoneNumber};
use missive_server::service::{Draft, Error, ErrorCode, Recipient};
use uuid::Uuid;

/// Largest content, in characters (the API allows 1–4096).
pub const MAX_CONTENT_CHARS: usize = 4096;
/// Largest `clientMessageId`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;
/// Largest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// `^\+[0-9]{7,15}$`, by hand.
pub fn is_phone_form(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.first() == Some(&b'+')
        && (8..=16).contains(&bytes.len())
        && bytes[1..].iter().all(u8::is_ascii_digit)
}

/// A phone number is accepted exactly when its trimmed form matches
/// `^\+[0-9]{7,15}$`; the accepted value is that trimmed form and re-parses to itself.
pub fn check_phone(raw: &str) -> Option<PhoneNumber> {
    let expected = is_phone_form(raw.trim());
    match PhoneNumber::parse(raw) {
        Ok(phone) => {
            assert!(expected, "accepted {raw:?}");
            assert!(is_phone_form(phone.as_str()), "{phone:?} from {raw:?}");
            assert_eq!(phone.as_str(), raw.trim());
            assert_eq!(phone.to_string(), phone.as_str());
            let again = PhoneNumber::parse(phone.as_str()).expect("an accepted number re-parses");
            assert_eq!(again, phone);
            Some(phone)
        }
        Err(e) => {
            assert!(!expected, "rejected {raw:?}: {e}");
            // The error quotes at most 40 characters of the input.
            assert!(e.0.chars().count() <= 40);
            None
        }
    }
}

/// The service's phone parser: the same verdict, `invalid_phone_number` on refusal.
pub fn check_service_phone(raw: &str) -> Option<PhoneNumber> {
    let expected = check_phone(raw);
    match missive_server::service::identity::parse_phone(raw) {
        Ok(phone) => {
            assert_eq!(Some(&phone), expected.as_ref());
            Some(phone)
        }
        Err(e) => {
            assert!(expected.is_none());
            assert_eq!(e.code(), ErrorCode::InvalidPhoneNumber);
            None
        }
    }
}

/// Content is accepted exactly when it is not blank, has at most 4096
/// characters and no NUL; it is kept byte for byte.
pub fn check_content(raw: &str) -> Option<MessageContent> {
    let chars = raw.chars().count();
    let expected = !raw.trim().is_empty() && chars <= MAX_CONTENT_CHARS && !raw.contains('\0');
    match MessageContent::parse(raw.to_owned()) {
        Ok(content) => {
            assert!(expected, "accepted content of {chars} chars");
            assert!((1..=MAX_CONTENT_CHARS).contains(&content.as_str().chars().count()));
            assert!(!content.as_str().contains('\0'));
            assert_eq!(content.as_str(), raw);
            assert_eq!(content.clone().into_string(), raw);
            Some(content)
        }
        Err(e) => {
            assert!(!expected, "rejected content of {chars} chars: {e}");
            None
        }
    }
}

/// A `clientMessageId` is accepted exactly when it has 1–128 characters and no NUL.
pub fn check_client_message_id(raw: &str) -> Option<ClientMessageId> {
    let chars = raw.chars().count();
    let expected = (1..=MAX_CLIENT_MESSAGE_ID_CHARS).contains(&chars) && !raw.contains('\0');
    match ClientMessageId::parse(raw.to_owned()) {
        Ok(id) => {
            assert!(expected, "accepted a clientMessageId of {chars} chars");
            assert_eq!(id.as_str(), raw);
            Some(id)
        }
        Err(_) => {
            assert!(!expected, "rejected a clientMessageId of {chars} chars");
            None
        }
    }
}

/// A display name is trimmed; blank means none; otherwise at most 64
/// characters and no control character, else `invalid_request`.
pub fn check_display_name(raw: Option<&str>) {
    let result = missive_server::service::accounts::parse_display_name(raw.map(str::to_owned));
    let trimmed = raw.map(str::trim).filter(|t| !t.is_empty());
    match (trimmed, result) {
        (None, Ok(None)) => {}
        (Some(t), Ok(Some(name))) => {
            assert_eq!(name, t);
            assert!(name.chars().count() <= MAX_DISPLAY_NAME_CHARS);
            assert!(!name.chars().any(char::is_control));
        }
        (Some(t), Err(e)) => {
            assert_eq!(e.code(), ErrorCode::InvalidRequest);
            assert!(t.chars().count() > MAX_DISPLAY_NAME_CHARS || t.chars().any(char::is_control));
        }
        (t, r) => panic!("display name {raw:?} (trimmed {t:?}) gave {r:?}"),
    }
}

/// A draft is accepted exactly when its content and its key are; a bad
/// content is `invalid_content` (checked first), a bad key `invalid_request`.
pub fn check_draft(content: &str, client_message_id: Option<&str>) -> Option<Draft> {
    let content_ok = check_content(content).is_some();
    let key_ok = client_message_id.is_none_or(|k| check_client_message_id(k).is_some());
    match Draft::parse(content.to_owned(), client_message_id.map(str::to_owned)) {
        Ok(draft) => {
            assert!(content_ok && key_ok);
            assert_eq!(draft.content.as_str(), content);
            assert_eq!(
                draft
                    .client_message_id
                    .as_ref()
                    .map(ClientMessageId::as_str),
                client_message_id
            );
            Some(draft)
        }
        Err(e) => {
            let expected = if content_ok {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::InvalidContent
            };
            assert!(!(content_ok && key_ok), "rejected a valid draft: {e}");
            assert_eq!(e.code(), expected, "{e}");
            None
        }
    }
}

/// Exactly one of a chat id and a valid phone number.
pub fn check_recipient(chat_id: Option<Uuid>, to: Option<&str>) -> Result<Recipient, Error> {
    let result = Recipient::parse(chat_id, to);
    match (chat_id, to, &result) {
        (Some(id), None, Ok(Recipient::Chat(got))) => assert_eq!(*got, id),
        (None, Some(raw), Ok(Recipient::Phone(phone))) => {
            assert_eq!(check_service_phone(raw).as_ref(), Some(phone));
        }
        (None, Some(raw), Err(e)) => {
            assert_eq!(e.code(), ErrorCode::InvalidPhoneNumber);
            assert!(check_service_phone(raw).is_none());
        }
        (Some(_), Some(_), Err(e)) | (None, None, Err(e)) => {
            assert_eq!(e.code(), ErrorCode::InvalidRequest);
        }
        (c, t, r) => panic!("recipient chat {c:?} to {t:?} gave {r:?}"),
    }
    result
}

/// A decimal integer as Rust's `FromStr` for integers reads it: an optional
/// sign (`-` only when `signed`), then one or more ASCII digits. Returns
/// whether it is negative and its magnitude (saturating).
pub fn decimal(s: &str, signed: bool) -> Option<(bool, u128)> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') if signed => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0u128, |n, b| {
        n.saturating_mul(10).saturating_add(u128::from(b - b'0'))
    });
    Some((negative, magnitude))
}

/// The value of `raw` (trimmed) as an unsigned decimal (`+` allowed, `-` not).
pub fn unsigned(raw: &str) -> Option<u128> {
    decimal(raw.trim(), false).map(|(_, n)| n)
}

/// The value of `raw` (trimmed) as a signed decimal, clamped to the `i128` range.
pub fn signed(raw: &str) -> Option<i128> {
    decimal(raw.trim(), true).map(|(negative, n)| {
        let n = i128::try_from(n).unwrap_or(i128::MAX);
        if negative { -n } else { n }
    })
}
