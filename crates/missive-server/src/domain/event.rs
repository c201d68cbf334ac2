//! The durable events of a user's log, and their one encoding as stored rows.
//!
//! Every store writes an event's kind as [`EventKind::as_str`] and reads a
//! row back through [`Event::from_row`], so both stores agree on the kinds and
//! a kind this build does not know is an error ([`UnknownKind`]), never
//! mistaken for another kind.

use std::fmt;
use std::str::FromStr;

use missive_protocol::{Message, MessageStatus};
use uuid::Uuid;

/// A participant's delivered/read watermark moved (the durable `receipt` event).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptEvent {
    /// The chat.
    pub chat_id: Uuid,
    /// The watermark message.
    pub message_id: Uuid,
    /// The status reached.
    pub status: MessageStatus,
    /// Phone number of the participant who acknowledged.
    pub user: String,
    /// RFC 3339 time.
    pub at: String,
}

/// A durable event of a user's log.
///
/// Its serde tag (`kind`) is the [`EventKind`] text, as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    /// A new message in one of the user's chats.
    Message {
        /// The message (its status as of reading).
        message: Message,
    },
    /// A watermark moved on the user's messages.
    Receipt(ReceiptEvent),
}

/// The kind of an [`Event`], as the `kind` column of the event log stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`Event::Message`]: stored as `message`.
    Message,
    /// [`Event::Receipt`]: stored as `receipt`.
    Receipt,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 2] = [EventKind::Message, EventKind::Receipt];

    /// The stored text of this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Receipt => "receipt",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event kind that this build does not know (a newer build wrote
/// it, or the row is damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<EventKind, UnknownKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownKind(text.to_owned()))
    }
}

impl TryFrom<&str> for EventKind {
    type Error = UnknownKind;

    fn try_from(text: &str) -> Result<EventKind, UnknownKind> {
        text.parse()
    }
}

/// The columns of one row of the event log, as both stores read them.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    /// The `kind` column.
    pub kind: &'a str,
    /// The `chat_id` column.
    pub chat_id: Uuid,
    /// The `message_id` column.
    pub message_id: Uuid,
    /// The `status` column (receipts).
    pub status: Option<&'a str>,
    /// The `actor` column (receipts).
    pub actor: Option<&'a str>,
    /// The `created_at` column, in milliseconds since the epoch.
    pub at: i64,
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Message { .. } => EventKind::Message,
            Event::Receipt(_) => EventKind::Receipt,
        }
    }

    /// Decodes a stored row. `message` loads the message a `message` event
    /// names (the row holds only its id); an unknown kind is an
    /// [`UnknownKind`] error, whatever the other columns hold.
    pub fn from_row<E: From<UnknownKind>>(
        row: EventRow<'_>,
        message: impl FnOnce(Uuid) -> Result<Message, E>,
    ) -> Result<Event, E> {
        Ok(match row.kind.parse::<EventKind>()? {
            EventKind::Message => Event::Message {
                message: message(row.message_id)?,
            },
            EventKind::Receipt => Event::Receipt(ReceiptEvent {
                chat_id: row.chat_id,
                message_id: row.message_id,
                status: if row.status == Some("read") {
                    MessageStatus::Read
                } else {
                    MessageStatus::Delivered
                },
                user: row.actor.unwrap_or_default().to_owned(),
                at: super::format_ms(row.at),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str) -> EventRow<'_> {
        EventRow {
            kind,
            chat_id: Uuid::from_u128(1),
            message_id: Uuid::from_u128(2),
            status: Some("read"),
            actor: Some("+15550000001"),
            at: 0,
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_stored_text() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(EventKind::try_from(kind.as_str()), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(EventKind::Message.as_str(), "message");
        assert_eq!(EventKind::Receipt.as_str(), "receipt");
    }

    #[test]
    fn an_unknown_kind_is_an_error_naming_it() {
        let error = "reaction".parse::<EventKind>().expect_err("not a kind");
        assert_eq!(error, UnknownKind("reaction".into()));
        assert!(error.to_string().contains("\"reaction\""), "{error}");
        // Case matters: the stored text is exact.
        assert!(EventKind::try_from("Receipt").is_err());
    }

    #[test]
    fn a_row_of_an_unknown_kind_is_never_decoded_as_a_receipt() {
        let decoded = Event::from_row(row("reaction"), |_| -> Result<Message, UnknownKind> {
            unreachable!("no message is loaded for an unknown kind")
        });
        assert_eq!(decoded, Err(UnknownKind("reaction".into())));
    }

    #[test]
    fn a_receipt_row_is_decoded_with_its_columns() {
        let decoded = Event::from_row(row("receipt"), |_| -> Result<Message, UnknownKind> {
            unreachable!("a receipt loads no message")
        })
        .expect("a receipt");
        assert_eq!(decoded.kind(), EventKind::Receipt);
        assert_eq!(
            decoded,
            Event::Receipt(ReceiptEvent {
                chat_id: Uuid::from_u128(1),
                message_id: Uuid::from_u128(2),
                status: MessageStatus::Read,
                user: "+15550000001".into(),
                at: "1970-01-01T00:00:00.000Z".into(),
            })
        );
    }

    fn message(id: Uuid) -> Message {
        Message {
            id,
            chat_id: Uuid::from_u128(1),
            seq: 1,
            sender: "+15550000001".into(),
            content: "hi".into(),
            created_at: "1970-01-01T00:00:00.000Z".into(),
            client_message_id: None,
            status: MessageStatus::Sent,
        }
    }

    #[test]
    fn a_message_row_loads_the_message_it_names() {
        let decoded = Event::from_row(row("message"), |id| Ok::<_, UnknownKind>(message(id)))
            .expect("a message");
        assert_eq!(
            decoded,
            Event::Message {
                message: message(Uuid::from_u128(2))
            }
        );
        assert_eq!(decoded.kind(), EventKind::Message);
    }

    #[test]
    fn the_serde_tag_is_the_stored_kind() {
        let events = [
            Event::Message {
                message: message(Uuid::from_u128(2)),
            },
            Event::Receipt(ReceiptEvent {
                chat_id: Uuid::from_u128(1),
                message_id: Uuid::from_u128(2),
                status: MessageStatus::Delivered,
                user: String::new(),
                at: String::new(),
            }),
        ];
        for event in events {
            let json = serde_json::to_value(&event).expect("serializes");
            assert_eq!(json["kind"], event.kind().as_str(), "{json}");
        }
    }
}
