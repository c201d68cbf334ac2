//! Query parameters of the list endpoints (`GET /chats`, `GET /chats/{id}/messages`).

use uuid::Uuid;

/// Query of `GET /chats`; every field is optional and omitted when `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatsQuery {
    /// Claimed identity (`phoneNumber=`).
    pub phone_number: Option<String>,
    /// Claimed identity, the sandbox spelling (`participant=`).
    pub participant: Option<String>,
    /// Page size, 1 to 200 (`limit=`).
    pub limit: Option<u32>,
    /// Chats to skip from the most recent (`offset=`).
    pub offset: Option<u32>,
    /// Chat id cursor: the chats listed after that one (`before=`).
    pub before: Option<Uuid>,
}

impl ChatsQuery {
    /// A query claiming the identity `phone` through `phoneNumber=`.
    pub fn as_phone(phone: &str) -> Self {
        ChatsQuery {
            phone_number: Some(phone.to_owned()),
            ..ChatsQuery::default()
        }
    }

    /// The `(name, value)` pairs to append to the URL, in a stable order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "phoneNumber", self.phone_number.as_ref());
        push(&mut pairs, "participant", self.participant.as_ref());
        push(&mut pairs, "limit", self.limit.as_ref());
        push(&mut pairs, "offset", self.offset.as_ref());
        push(&mut pairs, "before", self.before.as_ref());
        pairs
    }
}

/// Query of `GET /chats/{chatId}/messages`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagesQuery {
    /// Page size, 1 to 200 (`limit=`).
    pub limit: Option<u32>,
    /// Messages to skip from the newest (`offset=`).
    pub offset: Option<u32>,
    /// Message id: the messages immediately older than it (`before=`).
    pub before: Option<Uuid>,
    /// Message id: the messages immediately newer than it (`after=`).
    pub after: Option<Uuid>,
    /// Claimed identity (`phoneNumber=`).
    pub phone_number: Option<String>,
}

impl MessagesQuery {
    /// A query claiming the identity `phone` through `phoneNumber=`.
    pub fn as_phone(phone: &str) -> Self {
        MessagesQuery {
            phone_number: Some(phone.to_owned()),
            ..MessagesQuery::default()
        }
    }

    /// The `(name, value)` pairs to append to the URL, in a stable order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "phoneNumber", self.phone_number.as_ref());
        push(&mut pairs, "limit", self.limit.as_ref());
        push(&mut pairs, "offset", self.offset.as_ref());
        push(&mut pairs, "before", self.before.as_ref());
        push(&mut pairs, "after", self.after.as_ref());
        pairs
    }
}

fn push<T: ToString>(
    pairs: &mut Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&T>,
) {
    if let Some(value) = value {
        pairs.push((name, value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_set_fields_become_parameters() {
        let query = ChatsQuery {
            phone_number: Some("+1234567890".into()),
            limit: Some(5),
            ..ChatsQuery::default()
        };
        assert_eq!(
            query.pairs(),
            vec![
                ("phoneNumber", "+1234567890".to_owned()),
                ("limit", "5".to_owned())
            ]
        );
        assert!(MessagesQuery::default().pairs().is_empty());
    }
}
