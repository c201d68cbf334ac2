//! Message content and client idempotency keys.

/// Maximum content length, in Unicode scalar values.
pub const MAX_CONTENT_CHARS: usize = 4096;
/// Maximum length of a `clientMessageId`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;

/// Length of a push notification's preview, in Unicode scalar values.
pub const PREVIEW_CHARS: usize = 100;

/// The first [`PREVIEW_CHARS`] characters of `content` (all of it when
/// shorter), cut on a character boundary: the `preview` of a push.
pub fn preview(content: &str) -> &str {
    match content.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => &content[..end],
        None => content,
    }
}

/// Message text: 1 to 4096 characters (not bytes), not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

/// Why content was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidContent {
    /// Empty or only whitespace.
    #[error("content must not be empty")]
    Empty,
    /// Longer than [`MAX_CONTENT_CHARS`].
    #[error("content must be at most {MAX_CONTENT_CHARS} characters, got {0}")]
    TooLong(usize),
    /// Contains U+0000, which PostgreSQL text cannot hold (refused on every
    /// store, so that both answer the same).
    #[error("content must not contain the NUL character (U+0000)")]
    Nul,
}

impl MessageContent {
    /// Checks length in characters and refuses NUL; the text is kept as sent.
    pub fn parse(raw: String) -> Result<Self, InvalidContent> {
        if raw.trim().is_empty() {
            return Err(InvalidContent::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_CONTENT_CHARS {
            return Err(InvalidContent::TooLong(chars));
        }
        if raw.contains('\0') {
            return Err(InvalidContent::Nul);
        }
        Ok(MessageContent(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A sender's idempotency key: 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    /// Accepts 1 to [`MAX_CLIENT_MESSAGE_ID_CHARS`] characters.
    pub fn parse(raw: String) -> Result<Self, String> {
        let n = raw.chars().count();
        if n == 0 || n > MAX_CLIENT_MESSAGE_ID_CHARS {
            return Err(format!(
                "clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters"
            ));
        }
        // PostgreSQL text cannot hold NUL.
        if raw.contains('\0') {
            return Err("clientMessageId must not contain the NUL character (U+0000)".into());
        }
        Ok(ClientMessageId(raw))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_the_first_hundred_characters_cut_on_a_boundary() {
        assert_eq!(preview("hi"), "hi");
        let long = "é".repeat(150);
        assert_eq!(preview(&long), "é".repeat(100));
        assert_eq!(preview(&"a".repeat(100)), "a".repeat(100));
        let emoji = format!("{}🎉🎉", "x".repeat(99));
        assert_eq!(preview(&emoji), format!("{}🎉", "x".repeat(99)));
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(MessageContent::parse("é".repeat(4096)).is_ok());
        assert_eq!(
            MessageContent::parse("é".repeat(4097)),
            Err(InvalidContent::TooLong(4097))
        );
    }

    proptest::proptest! {
        #[test]
        fn content_is_accepted_up_to_4096_characters_of_any_kind(text in "\\PC{1,5000}") {
            let chars = text.chars().count();
            match MessageContent::parse(text.clone()) {
                Ok(content) => {
                    proptest::prop_assert!(chars <= MAX_CONTENT_CHARS);
                    proptest::prop_assert_eq!(content.as_str(), text.as_str());
                }
                Err(InvalidContent::TooLong(n)) => proptest::prop_assert_eq!(n, chars),
                Err(InvalidContent::Empty) => proptest::prop_assert!(text.trim().is_empty()),
                Err(InvalidContent::Nul) => proptest::prop_assert!(text.contains('\0')),
            }
        }
    }

    #[test]
    fn empty_and_blank_content_is_rejected() {
        assert_eq!(
            MessageContent::parse(String::new()),
            Err(InvalidContent::Empty)
        );
        assert_eq!(
            MessageContent::parse(" \n\t".into()),
            Err(InvalidContent::Empty)
        );
    }

    #[test]
    fn client_message_id_is_bounded() {
        assert!(ClientMessageId::parse("a".into()).is_ok());
        assert!(ClientMessageId::parse(String::new()).is_err());
        assert!(ClientMessageId::parse("x".repeat(129)).is_err());
        assert!(ClientMessageId::parse("a\0b".into()).is_err());
    }

    #[test]
    fn nul_is_refused_in_content() {
        assert_eq!(
            MessageContent::parse("a\0b".into()),
            Err(InvalidContent::Nul)
        );
    }
}
