//! The domain: values that are valid by construction (phone numbers, message
//! content) and the pure rules every store and transport shares.

pub mod chat;
mod content;
pub mod event;
pub mod login;
mod phone;

pub use content::{ClientMessageId, MessageContent, preview};
pub use phone::PhoneNumber;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 UTC with exactly three fractional digits: `2026-01-01T12:00:00.123Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let base = t
                .replace_nanosecond(0)
                .unwrap_or(t)
                .format(&Rfc3339)
                .unwrap_or_default();
            // `base` ends in "Z" with no fraction; insert the milliseconds.
            let stem = base.trim_end_matches('Z');
            format!("{stem}.{millis:03}Z")
        }
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_milliseconds_and_zulu() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_767_268_800_123), "2026-01-01T12:00:00.123Z");
    }
}
