//! Chat rules every store shares: how a message's status follows from the
//! participants' watermarks, and the key that makes a pair's 1:1 chat unique.

use missive_protocol::{Message, MessageStatus};
use uuid::Uuid;

/// A participant of a chat and their delivered/read watermarks (message `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The participant.
    pub user_id: Uuid,
    /// Their phone number.
    pub phone: String,
    /// Every message up to this `seq` is delivered to them.
    pub delivered_seq: i64,
    /// Every message up to this `seq` is read by them.
    pub read_seq: i64,
}

/// The furthest state a message reached for every participant but its sender
/// (the minimum over recipients). Watermarks only move up, so it never goes back.
pub fn status_of(members: &[Member], sender_phone: &str, seq: i64) -> MessageStatus {
    members
        .iter()
        .filter(|m| m.phone != sender_phone)
        .map(|m| {
            if m.read_seq >= seq {
                MessageStatus::Read
            } else if m.delivered_seq >= seq {
                MessageStatus::Delivered
            } else {
                MessageStatus::Sent
            }
        })
        .min()
        .unwrap_or(MessageStatus::Sent)
}

/// Recomputes `status` of each message from the members' watermarks.
pub fn refresh_statuses(messages: &mut [Message], members: &[Member]) {
    for message in messages {
        message.status = status_of(members, &message.sender, message.seq);
    }
}

/// The newest message of `page` sent by someone else that `viewer` has not
/// yet marked delivered (reading a chat marks what was read delivered).
pub fn newest_undelivered(page: &[Message], members: &[Member], viewer: Uuid) -> Option<Uuid> {
    let me = members.iter().find(|m| m.user_id == viewer)?;
    page.iter()
        .filter(|m| m.sender != me.phone && m.seq > me.delivered_seq)
        .max_by_key(|m| m.seq)
        .map(|m| m.id)
}

/// The key of the 1:1 chat of two users, the same whichever of them asks.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(phone: &str, delivered: i64, read: i64) -> Member {
        Member {
            user_id: Uuid::now_v7(),
            phone: phone.into(),
            delivered_seq: delivered,
            read_seq: read,
        }
    }

    #[test]
    fn status_is_the_minimum_over_recipients() {
        let members = [
            member("+1000000", 9, 9),
            member("+2000000", 5, 3),
            member("+3000000", 4, 0),
        ];
        assert_eq!(status_of(&members, "+1000000", 3), MessageStatus::Delivered);
        assert_eq!(status_of(&members, "+1000000", 5), MessageStatus::Sent);
        assert_eq!(status_of(&members[..2], "+1000000", 3), MessageStatus::Read);
        assert_eq!(status_of(&members[..2], "+2000000", 9), MessageStatus::Read);
    }

    #[test]
    fn own_messages_do_not_need_delivery() {
        let members = [member("+1000000", 0, 0), member("+2000000", 0, 0)];
        let me = members[0].user_id;
        let mine = Message {
            id: Uuid::now_v7(),
            chat_id: Uuid::nil(),
            seq: 1,
            sender: "+1000000".into(),
            content: "x".into(),
            created_at: String::new(),
            client_message_id: None,
            status: MessageStatus::Sent,
        };
        let theirs = Message {
            id: Uuid::now_v7(),
            seq: 2,
            sender: "+2000000".into(),
            ..mine.clone()
        };
        assert_eq!(
            newest_undelivered(std::slice::from_ref(&mine), &members, me),
            None
        );
        assert_eq!(
            newest_undelivered(&[theirs.clone(), mine], &members, me),
            Some(theirs.id)
        );
    }

    #[test]
    fn a_pair_has_one_direct_key_whoever_asks() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(direct_key(a, b), direct_key(b, a));
        assert_ne!(direct_key(a, b), direct_key(a, Uuid::now_v7()));
    }
}
