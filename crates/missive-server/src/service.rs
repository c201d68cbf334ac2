//! Messaging operations shared by the HTTP API and the WebSocket gateway:
//! validate, commit to the store, and only then tell anyone.

use missive_protocol::{Message, MessageStatus, User};
use uuid::Uuid;

use crate::domain::{ClientMessageId, MessageContent, PhoneNumber};
use crate::store::{DynStore, MessageQuery, NewMessage, Page, Receipt, SendTarget, StoreError};

/// Why a send was refused before reaching the store.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Empty or too long content.
    #[error("{0}")]
    InvalidContent(String),
    /// A malformed phone number.
    #[error("{0}")]
    InvalidPhoneNumber(String),
    /// Sender and receiver are the same user.
    #[error("cannot send a message to yourself")]
    SelfMessage,
    /// Neither or both of a chat and a receiver.
    #[error("{0}")]
    InvalidRequest(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a send goes, as the client named it.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// An existing chat.
    Chat(Uuid),
    /// The 1:1 chat with this phone number.
    Phone(PhoneNumber),
}

impl Recipient {
    /// Exactly one of a chat id and a receiver's phone number.
    pub fn parse(chat_id: Option<Uuid>, to: Option<&str>) -> Result<Self, SendError> {
        match (chat_id, to) {
            (Some(id), None) => Ok(Recipient::Chat(id)),
            (None, Some(raw)) => PhoneNumber::parse(raw)
                .map(Recipient::Phone)
                .map_err(|e| SendError::InvalidPhoneNumber(e.to_string())),
            (Some(_), Some(_)) => Err(SendError::InvalidRequest(
                "give either a chat id or a receiver, not both".into(),
            )),
            (None, None) => Err(SendError::InvalidRequest(
                "a chat id or a receiver is required".into(),
            )),
        }
    }
}

/// The validated content of a send.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The text.
    pub content: MessageContent,
    /// The sender's idempotency key.
    pub client_message_id: Option<ClientMessageId>,
}

impl Draft {
    /// Checks the content (1–4096 characters) and the idempotency key.
    pub fn parse(content: String, client_message_id: Option<String>) -> Result<Self, SendError> {
        let content =
            MessageContent::parse(content).map_err(|e| SendError::InvalidContent(e.to_string()))?;
        let client_message_id = client_message_id
            .map(ClientMessageId::parse)
            .transpose()
            .map_err(SendError::InvalidRequest)?;
        Ok(Draft {
            content,
            client_message_id,
        })
    }
}

/// The messaging operations.
pub struct Service {
    store: DynStore,
}

impl Service {
    /// A service over `store`.
    pub fn new(store: DynStore) -> Self {
        Service { store }
    }

    /// Stores a message from `sender`; returns it after the commit.
    /// A repeated `client_message_id` returns the original message.
    pub async fn send(
        &self,
        sender: User,
        to: Recipient,
        draft: Draft,
    ) -> Result<Message, SendError> {
        let target = match to {
            Recipient::Chat(id) => SendTarget::Chat(id),
            Recipient::Phone(phone) => {
                if phone.as_str() == sender.phone_number {
                    return Err(SendError::SelfMessage);
                }
                let receiver = self
                    .store
                    .user_by_phone(&phone)
                    .await?
                    .ok_or(StoreError::UserNotFound)?;
                SendTarget::Direct(receiver.id)
            }
        };
        let new = NewMessage {
            sender,
            target,
            content: draft.content,
            client_message_id: draft.client_message_id,
        };
        Ok(self.store.send_message(new).await?.message)
    }

    /// A page of a chat's messages; a participant reading it marks the others' messages delivered.
    pub async fn list_messages(
        &self,
        chat_id: Uuid,
        viewer: Option<Uuid>,
        query: MessageQuery,
    ) -> Result<Page<Message>, StoreError> {
        let (page, _receipt) = self.store.list_messages(chat_id, viewer, query).await?;
        Ok(page)
    }

    /// Moves `user`'s watermark in a chat (`read` implies `delivered`).
    pub async fn mark_status(
        &self,
        chat_id: Uuid,
        user: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> Result<Receipt, StoreError> {
        self.store
            .mark_status(chat_id, user, message_id, status)
            .await
    }
}
