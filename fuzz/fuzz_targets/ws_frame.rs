//! The WebSocket client frame parser (`gateway::frames::parse`), then the
//! validation the session runs on a parsed send (`Draft`, `Recipient`).
//!
//! Properties: oversized frames are refused before parsing; errors are
//! `invalid_frame` and echo the frame's string `ref`; every parsed command
//! survives a round trip through its wire form; sandbox frames are exactly
//! the objects without `type`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_fuzz::{check_draft, check_recipient};
use missive_protocol::ClientFrame;
use missive_server::gateway::frames::{Command, MAX_FRAME_BYTES, parse};
use serde_json::{Value, json};

/// The wire form of a command: what a well-behaved client would send for it.
fn wire(command: &Command) -> String {
    let frame = match command.clone() {
        Command::Sandbox { from, to, content } => {
            return json!({"From": from, "To": to, "Content": content}).to_string();
        }
        Command::Send {
            reference,
            chat_id,
            to,
            content,
            client_message_id,
        } => ClientFrame::Send {
            reference,
            chat_id,
            to,
            content,
            client_message_id,
        },
        Command::Receipt {
            chat_id,
            message_id,
            status,
        } => ClientFrame::Receipt {
            chat_id,
            message_id,
            status,
        },
        Command::Typing { chat_id, is_typing } => ClientFrame::Typing { chat_id, is_typing },
        Command::Ping => ClientFrame::Ping,
    };
    serde_json::to_string(&frame).expect("a frame serializes")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // tungstenite refuses non-UTF-8 text frames before the parser
    };
    let parsed = parse(text);
    if text.len() > MAX_FRAME_BYTES {
        let error = parsed.expect_err("an oversized frame is refused");
        assert_eq!(error.code, "frame_too_large");
        assert_eq!(error.reference, None);
        return;
    }
    let json: Option<Value> = serde_json::from_str(text).ok();
    let object = json.as_ref().and_then(Value::as_object);
    match parsed {
        Err(error) => {
            assert_eq!(error.code, "invalid_frame", "{error:?}");
            // The ref is echoed only when the frame is an object with a string ref.
            let sent_ref = object.and_then(|o| o.get("ref")).and_then(Value::as_str);
            assert_eq!(error.reference.as_deref(), sent_ref);
        }
        Ok(command) => {
            let object = object.expect("only JSON objects parse");
            match &command {
                Command::Sandbox { .. } => assert!(!object.contains_key("type")),
                _ => assert!(object.contains_key("type")),
            }
            let again = parse(&wire(&command)).expect("the wire form of a command parses");
            assert_eq!(again, command, "round trip of {text:?}");
            // What the session does next with a send.
            match command {
                Command::Send {
                    chat_id,
                    to,
                    content,
                    client_message_id,
                    ..
                } => {
                    check_draft(&content, client_message_id.as_deref());
                    let _ = check_recipient(chat_id, to.as_deref());
                }
                Command::Sandbox { to, content, .. } => {
                    check_draft(&content, None);
                    let _ = check_recipient(None, Some(&to));
                }
                Command::Receipt { .. } | Command::Typing { .. } | Command::Ping => {}
            }
        }
    }
});
