//! Parsing of client frames: the typed frames of README, "WebSocket" and the original
//! sandbox frame `{"From","To","Content"}` (keys case-insensitive).

use missive_protocol::{ClientFrame, MessageStatus};
use serde_json::Value;
use uuid::Uuid;

/// Largest text frame accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A typed `send`.
    Send {
        /// Echoed in the `ack`.
        reference: Option<String>,
        /// Target chat.
        chat_id: Option<Uuid>,
        /// Target phone number.
        to: Option<String>,
        /// The text.
        content: String,
        /// Idempotency key.
        client_message_id: Option<String>,
    },
    /// The sandbox frame: a send from `from` (must be the connection's user) to `to`.
    Sandbox {
        /// Claimed sender: phone number or user id.
        from: String,
        /// Receiver's phone number.
        to: String,
        /// The text.
        content: String,
    },
    /// Move the caller's watermark.
    Receipt {
        /// The chat.
        chat_id: Uuid,
        /// The watermark message.
        message_id: Uuid,
        /// `delivered` or `read`.
        status: MessageStatus,
    },
    /// Typing indicator.
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Whether the caller is typing.
        is_typing: bool,
    },
    /// Keep-alive.
    Ping,
}

/// A frame that could not be understood; answered with an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The frame's `ref`, when it had one.
    pub reference: Option<String>,
    /// Stable snake_case reason.
    pub code: &'static str,
    /// Human text.
    pub message: String,
}

impl FrameError {
    fn invalid(reference: Option<String>, message: impl Into<String>) -> Self {
        FrameError {
            reference,
            code: "invalid_frame",
            message: message.into(),
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Command, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError {
            reference: None,
            code: "frame_too_large",
            message: format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
        });
    }
    // A well-formed typed frame, by far the most common, is read straight
    // into its type. Everything else (a sandbox frame, or a mistake to
    // explain) takes the general path through a JSON value, which gives the
    // same result for any object the straight read accepts; the `{` check
    // keeps it to objects (a tagged enum would also read an array).
    if text.trim_start().starts_with('{')
        && let Ok(frame) = serde_json::from_str::<ClientFrame>(text)
    {
        return Ok(frame.into());
    }
    parse_value(text)
}

/// The general path of [`parse`]: the frame as a JSON value first, so that a
/// sandbox frame can be recognized and a mistake explained with the frame's
/// `ref`.
fn parse_value(text: &str) -> Result<Command, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::invalid(None, format!("not JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(FrameError::invalid(None, "a frame is a JSON object"));
    };
    let reference = object.get("ref").and_then(Value::as_str).map(str::to_owned);
    if !object.contains_key("type") {
        return parse_sandbox(object).ok_or_else(|| {
            FrameError::invalid(
                reference,
                "a frame needs a \"type\" (or is {\"From\",\"To\",\"Content\"})",
            )
        });
    }
    serde_json::from_value::<ClientFrame>(value)
        .map(Command::from)
        .map_err(|e| FrameError::invalid(reference, e.to_string()))
}

impl From<ClientFrame> for Command {
    fn from(frame: ClientFrame) -> Self {
        match frame {
            ClientFrame::Send {
                reference,
                chat_id,
                to,
                content,
                client_message_id,
            } => Command::Send {
                reference,
                chat_id,
                to,
                content,
                client_message_id,
            },
            ClientFrame::Receipt {
                chat_id,
                message_id,
                status,
            } => Command::Receipt {
                chat_id,
                message_id,
                status,
            },
            ClientFrame::Typing { chat_id, is_typing } => Command::Typing { chat_id, is_typing },
            ClientFrame::Ping => Command::Ping,
        }
    }
}

/// `{"From","To","Content"}` with keys in any case; all three strings.
fn parse_sandbox(object: &serde_json::Map<String, Value>) -> Option<Command> {
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    Some(Command::Sandbox {
        from: field("from")?,
        to: field("to")?,
        content: field("content")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_frames_have_case_insensitive_keys() {
        for text in [
            r#"{"From":"+1234567890","To":"+0987654321","Content":"hi"}"#,
            r#"{"from":"+1234567890","TO":"+0987654321","content":"hi"}"#,
        ] {
            assert_eq!(
                parse(text),
                Ok(Command::Sandbox {
                    from: "+1234567890".into(),
                    to: "+0987654321".into(),
                    content: "hi".into()
                })
            );
        }
    }

    #[test]
    fn typed_frames_parse() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(Command::Ping));
        let chat = Uuid::now_v7();
        assert_eq!(
            parse(&format!(
                r#"{{"type":"typing","chatId":"{chat}","isTyping":true}}"#
            )),
            Ok(Command::Typing {
                chat_id: chat,
                is_typing: true
            })
        );
    }

    #[test]
    fn bad_frames_are_errors_that_keep_the_ref() {
        let cases = [
            ("garbage", None),
            ("[1,2]", None),
            (r#"{"type":"launch"}"#, None),
            (r#"{"type":"send","ref":"r9"}"#, Some("r9")),
            (r#"{"From":"+1234567890","To":5,"Content":"x"}"#, None),
            (r#"{"hello":"world","ref":"r1"}"#, Some("r1")),
        ];
        for (text, reference) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.code, "invalid_frame", "{text}");
            assert_eq!(error.reference.as_deref(), reference, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn json_objects_with_arbitrary_fields_never_panic(
            fields in proptest::collection::vec(("[A-Za-z]{1,12}", "\\PC{0,20}"), 0..6),
            kind in proptest::option::of("send|receipt|typing|ping|[a-z]{0,8}"),
        ) {
            let mut object = serde_json::Map::new();
            for (key, value) in fields {
                object.insert(key, serde_json::Value::String(value));
            }
            if let Some(kind) = kind {
                object.insert("type".into(), serde_json::Value::String(kind));
            }
            let text = serde_json::Value::Object(object).to_string();
            // The straight read may only ever shortcut the general path.
            proptest::prop_assert_eq!(parse(&text), parse_value(&text));
        }
    }

    #[test]
    fn the_straight_read_of_a_typed_frame_gives_what_the_general_path_gives() {
        let (chat, message) = (Uuid::now_v7(), Uuid::now_v7());
        let frames = [
            format!(
                r#"{{"type":"send","ref":"r1","chatId":"{chat}","content":"hi","clientMessageId":"k1"}}"#
            ),
            r#"{"content":"hi","to":"+15550001","type":"send"}"#.to_owned(),
            r#"  {"type":"send","to":"+15550001","content":"a","content":"b"}"#.to_owned(),
            format!(
                r#"{{"type":"receipt","chatId":"{chat}","messageId":"{message}","status":"read","extra":1}}"#
            ),
            format!(r#"{{"isTyping":false,"chatId":"{chat}","type":"typing"}}"#),
            r#"{"type":"ping"}"#.to_owned(),
            r#"{"type":"ping","type":"launch"}"#.to_owned(),
            r#"{"From":"+15550001","To":"+15550002","Content":"x"}"#.to_owned(),
        ];
        for text in &frames {
            assert_eq!(parse(text), parse_value(text), "{text}");
        }
        // Duplicate keys: the last one counts, as it always did.
        assert!(matches!(
            parse(&frames[2]),
            Ok(Command::Send { content, .. }) if content == "b"
        ));
    }

    #[test]
    fn a_typed_frame_written_as_an_array_is_refused() {
        for text in [r#"["ping"]"#, r#" ["typing","x",true]"#] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.message, "a frame is a JSON object", "{text}");
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let text = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(parse(&text).expect_err("too large").code, "frame_too_large");
    }
}
