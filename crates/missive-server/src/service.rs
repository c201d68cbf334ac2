//! Messaging operations shared by the HTTP API and the WebSocket gateway:
//! validate, commit to the store, and only then tell anyone.

use std::sync::Arc;

use missive_protocol::{Message, MessageStatus, User};
use uuid::Uuid;

use crate::bus::{DynBus, Envelope, Payload};
use crate::domain::{ClientMessageId, MessageContent, PhoneNumber};
use crate::metrics::Metrics;
use crate::security::RateLimits;
use crate::store::{
    DynStore, Event, MessageQuery, NewMessage, Page, Receipt, SendTarget, StoreError,
};

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
    /// The sender is over `SEND_RATE_LIMIT`; retry after this long.
    #[error("too many messages; slow down")]
    RateLimited(std::time::Duration),
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

/// A queued send: resolves to the message after its commit.
pub type PendingSend = futures_util::future::BoxFuture<'static, Result<Message, SendError>>;

/// Publishes a committed event to its targets.
async fn publish(bus: &DynBus, targets: Vec<(Uuid, i64)>, event: Event) {
    if targets.is_empty() {
        return;
    }
    let targets = targets
        .into_iter()
        .map(|(user, cursor)| (user, Some(cursor)))
        .collect();
    bus.publish(Envelope {
        targets,
        payload: Arc::new(Payload::Durable { event }),
    })
    .await;
}

/// The messaging operations.
pub struct Service {
    store: DynStore,
    bus: DynBus,
    limits: Arc<RateLimits>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// A service committing to `store` and then publishing on `bus`, within `limits`.
    pub fn new(
        store: DynStore,
        bus: DynBus,
        limits: Arc<RateLimits>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Service {
            store,
            bus,
            limits,
            metrics,
        }
    }

    async fn publish_receipt(&self, receipt: &Receipt) {
        publish(
            &self.bus,
            receipt.targets.clone(),
            Event::Receipt(receipt.event.clone()),
        )
        .await;
    }

    /// Closes the connections of `user` opened with the revoked token.
    pub async fn token_revoked(&self, user: Uuid, token_hash: String) {
        let payload = Payload::TokenRevoked { token_hash };
        self.bus
            .publish(Envelope {
                targets: vec![(user, None)],
                payload: Arc::new(payload),
            })
            .await;
    }

    /// Tells the other participants of a chat that `user` is (not) typing; never stored.
    pub async fn typing(
        &self,
        user: &User,
        chat_id: Uuid,
        is_typing: bool,
    ) -> Result<(), StoreError> {
        let view = self.store.chat(chat_id, Some(user.id)).await?;
        let targets = view
            .member_ids
            .into_iter()
            .filter(|id| *id != user.id)
            .map(|id| (id, None))
            .collect();
        let payload = Payload::Typing {
            chat_id,
            user: user.phone_number.clone(),
            is_typing,
        };
        self.bus
            .publish(Envelope {
                targets,
                payload: Arc::new(payload),
            })
            .await;
        Ok(())
    }

    /// Stores a message from `sender`; returns it after the commit.
    /// A repeated `client_message_id` returns the original message.
    pub async fn send(
        &self,
        sender: User,
        to: Recipient,
        draft: Draft,
    ) -> Result<Message, SendError> {
        self.queue_send(sender, to, draft).await?.await
    }

    /// Validates a send and queues it for storage; the returned future resolves
    /// to the message once it is committed and published. Sends queued one
    /// after the other are stored in that order, so a connection can keep
    /// several in flight (pipelining) without reordering them.
    pub async fn queue_send(
        &self,
        sender: User,
        to: Recipient,
        draft: Draft,
    ) -> Result<PendingSend, SendError> {
        self.limits
            .check_send(sender.id)
            .map_err(SendError::RateLimited)?;
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
        let committing = self.store.queue_message(new).await?;
        let (bus, metrics) = (self.bus.clone(), self.metrics.clone());
        Ok(Box::pin(async move {
            let sent = committing.await?;
            if !sent.duplicate {
                metrics.message();
                let event = Event::Message {
                    message: sent.message.clone(),
                };
                publish(&bus, sent.targets, event).await;
            }
            Ok(sent.message)
        }))
    }

    /// A page of a chat's messages; a participant reading it marks the others' messages delivered.
    pub async fn list_messages(
        &self,
        chat_id: Uuid,
        viewer: Option<Uuid>,
        query: MessageQuery,
    ) -> Result<Page<Message>, StoreError> {
        let (page, receipt) = self.store.list_messages(chat_id, viewer, query).await?;
        if let Some(receipt) = &receipt {
            self.publish_receipt(receipt).await;
        }
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
        let receipt = self
            .store
            .mark_status(chat_id, user, message_id, status)
            .await?;
        self.publish_receipt(&receipt).await;
        Ok(receipt)
    }
}
