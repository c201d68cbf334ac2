//! Chats: create (or find the 1:1 of a pair), list the caller's, read one.

use missive_protocol::Chat;
use uuid::Uuid;

use super::{Caller, Claim, Error, ErrorCode, Service};
use crate::domain::PhoneNumber;
use crate::store::{ChatQuery, Page};

/// Most participants of a chat ("small groups").
pub const MAX_PARTICIPANTS: usize = 32;

/// 2 to 32 distinct, valid phone numbers.
pub fn parse_participants(raw: &[String]) -> Result<Vec<PhoneNumber>, Error> {
    let invalid = |message: String| Error::new(ErrorCode::InvalidParticipants, message);
    if raw.len() < 2 || raw.len() > MAX_PARTICIPANTS {
        return Err(invalid(format!(
            "a chat has 2 to {MAX_PARTICIPANTS} participants"
        )));
    }
    let mut phones: Vec<PhoneNumber> = Vec::with_capacity(raw.len());
    for value in raw {
        let phone = super::identity::parse_phone(value)?;
        if phones.contains(&phone) {
            return Err(invalid(format!("{phone} is listed twice")));
        }
        phones.push(phone);
    }
    Ok(phones)
}

impl Service {
    /// Creates a chat of `participants` (the caller among them when known);
    /// `true` when it is new, `false` for the existing 1:1 chat of that pair.
    pub async fn create_chat(
        &self,
        caller: &Caller,
        participants: &[String],
    ) -> Result<(Chat, bool), Error> {
        let phones = parse_participants(participants)?;
        let me = self.identify(caller, None).await?;
        if let Some(me) = &me
            && !phones.iter().any(|p| p.as_str() == me.phone_number)
        {
            return Err(Error::forbidden(
                "the caller must be one of the participants",
            ));
        }
        let mut ids = Vec::with_capacity(phones.len());
        for phone in &phones {
            let user = self
                .store
                .user_by_phone(phone)
                .await?
                .ok_or_else(Error::user_not_found)?;
            ids.push(user.id);
        }
        let (view, created) = self.store.create_chat(ids, me.map(|u| u.id)).await?;
        Ok((view.chat, created))
    }

    /// The caller's chats, most recent activity first; `None` for an
    /// anonymous sandbox caller (who has no chats).
    pub async fn list_chats(
        &self,
        caller: &Caller,
        claim: Option<Claim<'_>>,
        query: ChatQuery,
    ) -> Result<Option<Page<Chat>>, Error> {
        let Some(me) = self.identify(caller, claim).await? else {
            return Ok(None);
        };
        Ok(Some(self.store.list_chats(me.id, query).await?))
    }

    /// One chat; `chat_not_found` when unknown or the caller is not in it.
    pub async fn chat(
        &self,
        caller: &Caller,
        claim: Option<Claim<'_>>,
        chat_id: Uuid,
    ) -> Result<Chat, Error> {
        let me = self.identify(caller, claim).await?;
        Ok(self.store.chat(chat_id, me.map(|u| u.id)).await?.chat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_are_validated() {
        let ok =
            parse_participants(&["+1234567890".into(), " +0987654321 ".into()]).expect("valid");
        assert_eq!(ok[1].as_str(), "+0987654321");
        let cases: [(&[&str], &str); 6] = [
            (&["+1234567890"], "invalid_participants"),
            (&["+1234567890", "+1234567890"], "invalid_participants"),
            (&["+1234567890", " +1234567890"], "invalid_participants"),
            (&["+1234567890", "nope"], "invalid_phone_number"),
            // The first problem in list order decides (found by fuzz target
            // request_bodies: a duplicate before an invalid number).
            (
                &["+123457890", "+123457890", "+09876543)1"],
                "invalid_participants",
            ),
            (
                &["+123457890", "+09876543)1", "+123457890"],
                "invalid_phone_number",
            ),
        ];
        for (raw, code) in cases {
            let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                parse_participants(&raw)
                    .expect_err("invalid")
                    .code()
                    .as_str(),
                code,
                "{raw:?}"
            );
        }
    }
}
