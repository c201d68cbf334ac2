//! Phone number, message content, `clientMessageId`, display name and login
//! code validation on arbitrary strings.
//!
//! Properties: a phone number is accepted exactly when its trimmed form
//! matches `^\+[0-9]{7,15}$`, and it re-parses to itself; content is accepted
//! exactly when it is 1–4096 characters, not blank and without NUL (also
//! checked on the input repeated up to the 4096-character boundary, which
//! libFuzzer's short inputs would not reach); keys are 1–128 characters
//! without NUL; display names are at most 64 printable characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_fuzz::{
    MAX_CONTENT_CHARS, check_client_message_id, check_content, check_display_name, check_phone,
    check_service_phone,
};
use missive_server::security::codes::is_well_formed;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    check_phone(text);
    check_service_phone(text);

    check_content(text);
    let chars = text.chars().count();
    if (1..=MAX_CONTENT_CHARS).contains(&chars) {
        // The input repeated to just under, at and just over the limit.
        let times = MAX_CONTENT_CHARS / chars;
        check_content(&text.repeat(times));
        check_content(&text.repeat(times + 1));
    }

    check_client_message_id(text);
    check_display_name(Some(text));

    if is_well_formed(text) {
        assert_eq!(text.len(), 6);
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
    }
});
