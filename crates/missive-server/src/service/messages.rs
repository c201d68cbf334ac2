//! Messages: send (HTTP and WebSocket alike), list (reading marks delivered),
//! delivered/read watermarks, and typing indicators.

use std::sync::Arc;
use std::time::Instant;

use missive_protocol::{Message, MessageStatus, User};
use uuid::Uuid;

use super::identity::parse_phone;
use super::{Caller, Claim, Error, ErrorCode, Service, publish_durable};
use crate::bus::{Envelope, Payload};
use crate::domain::event::Event;
use crate::domain::{ClientMessageId, MessageContent, PhoneNumber};
use crate::metrics::RateLimitKind;
use crate::store::{MessageQuery, NewMessage, Page, Receipt, SendTarget};

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
    pub fn parse(chat_id: Option<Uuid>, to: Option<&str>) -> Result<Self, Error> {
        match (chat_id, to) {
            (Some(id), None) => Ok(Recipient::Chat(id)),
            (None, Some(raw)) => parse_phone(raw).map(Recipient::Phone),
            (Some(_), Some(_)) => Err(Error::invalid_request(
                "give either a chat id or a receiver, not both",
            )),
            (None, None) => Err(Error::invalid_request(
                "a chat id or a receiver is required",
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
    pub fn parse(content: String, client_message_id: Option<String>) -> Result<Self, Error> {
        let content = MessageContent::parse(content)
            .map_err(|e| Error::new(ErrorCode::InvalidContent, e.to_string()))?;
        let client_message_id = client_message_id
            .map(ClientMessageId::parse)
            .transpose()
            .map_err(Error::invalid_request)?;
        Ok(Draft {
            content,
            client_message_id,
        })
    }
}

/// A send as a client asked for it, before anything is checked.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    /// The claimed sender (sandbox style), if any.
    pub sender: Option<String>,
    /// The chat, or …
    pub chat_id: Option<Uuid>,
    /// … the receiver's phone number (1:1, the chat is created on first message).
    pub receiver: Option<String>,
    /// The text.
    pub content: String,
    /// The sender's idempotency key.
    pub client_message_id: Option<String>,
}

/// A queued send: resolves to the message after its commit.
pub type PendingSend = futures_util::future::BoxFuture<'static, Result<Message, Error>>;

fn self_message() -> Error {
    Error::new(
        ErrorCode::InvalidParticipants,
        "cannot send a message to yourself",
    )
}

/// Receipts move a watermark to `delivered` or `read`; `sent` is no receipt.
fn check_receipt_status(status: MessageStatus) -> Result<(), Error> {
    if status == MessageStatus::Sent {
        return Err(Error::invalid_request(
            "status must be \"delivered\" or \"read\"",
        ));
    }
    Ok(())
}

impl Service {
    /// Stores a message from the caller (token, or the claimed `sender`);
    /// returns it after the commit. An exact repeat of a `clientMessageId`
    /// (same chat, same content) returns the original message; the key
    /// reused otherwise is `idempotency_conflict`.
    pub async fn send(&self, caller: &Caller, request: SendRequest) -> Result<Message, Error> {
        let draft = Draft::parse(request.content, request.client_message_id)?;
        let to = Recipient::parse(request.chat_id, request.receiver.as_deref())?;
        // Refused before identification: a self-send is wrong whoever asks.
        if let (Some(sender), Recipient::Phone(receiver)) = (&request.sender, &to)
            && sender.trim() == receiver.as_str()
        {
            return Err(self_message());
        }
        let me = self
            .identify(caller, request.sender.as_deref().map(Claim::Phone))
            .await?
            .ok_or_else(|| Error::unauthorized("a sender (or a bearer token) is required"))?;
        self.queue_send(me, to, draft).await?.await
    }

    /// Validates a send of `sender` and queues it for storage; the returned
    /// future resolves to the message once it is committed and published.
    /// Sends queued one after the other are stored in that order, so a
    /// connection can keep several in flight (pipelining) without reordering.
    pub async fn queue_send(
        &self,
        sender: User,
        to: Recipient,
        draft: Draft,
    ) -> Result<PendingSend, Error> {
        self.limits.check_send(sender.id).map_err(|wait| {
            self.metrics.rate_limits.reject(RateLimitKind::Send);
            Error::rate_limited(wait).with_message("too many messages; slow down")
        })?;
        let target = match to {
            Recipient::Chat(id) => SendTarget::Chat(id),
            Recipient::Phone(phone) => {
                if phone.as_str() == sender.phone_number {
                    return Err(self_message());
                }
                SendTarget::Direct(self.user_id_by_phone(&phone).await?)
            }
        };
        let new = NewMessage {
            sender,
            target,
            content: draft.content,
            client_message_id: draft.client_message_id,
            push: self.push.as_ref().map(|push| push.filter.clone()),
        };
        let queued = Instant::now();
        let committing = self.store.queue_message(new).await?;
        let (bus, metrics, push) = (self.bus.clone(), self.metrics.clone(), self.push.clone());
        Ok(Box::pin(async move {
            let sent = committing.await?;
            metrics.send_commit.observe_duration(queued.elapsed());
            if sent.pushes > 0
                && let Some(push) = &push
            {
                push.queued();
            }
            if !sent.duplicate {
                metrics.messages.inc();
                let event = Event::Message {
                    message: sent.message.clone(),
                };
                publish_durable(&bus, sent.targets, event).await;
            }
            Ok(sent.message)
        }))
    }

    /// The id of the user registered with `phone` (`user_not_found`), from
    /// the in-memory directory when it was looked up before.
    async fn user_id_by_phone(&self, phone: &PhoneNumber) -> Result<Uuid, Error> {
        if let Some(id) = self.directory.get(phone) {
            return Ok(id);
        }
        let user = self
            .store
            .user_by_phone(phone)
            .await?
            .ok_or_else(Error::user_not_found)?;
        self.directory.put(phone, user.id);
        Ok(user.id)
    }

    /// A page of a chat's messages, newest first; a participant reading it
    /// marks the others' messages delivered (and they are told).
    pub async fn list_messages(
        &self,
        caller: &Caller,
        claim: Option<Claim<'_>>,
        chat_id: Uuid,
        query: MessageQuery,
    ) -> Result<Page<Message>, Error> {
        let me = self.identify(caller, claim).await?;
        let (page, receipt) = self
            .store
            .list_messages(chat_id, me.map(|u| u.id), query)
            .await?;
        if let Some(receipt) = receipt {
            self.publish_receipt(receipt).await;
        }
        Ok(page)
    }

    /// Moves the caller's watermark in a chat (`read` implies `delivered`).
    pub async fn mark_status(
        &self,
        caller: &Caller,
        chat_id: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> Result<Receipt, Error> {
        check_receipt_status(status)?;
        let me = self.require_token(caller).await?;
        self.mark_status_of(me.id, chat_id, message_id, status)
            .await
    }

    /// Moves `user`'s watermark in a chat (`read` implies `delivered`).
    pub async fn mark_status_of(
        &self,
        user: Uuid,
        chat_id: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> Result<Receipt, Error> {
        check_receipt_status(status)?;
        let receipt = self
            .store
            .mark_status(chat_id, user, message_id, status)
            .await?;
        self.publish_receipt(receipt.clone()).await;
        Ok(receipt)
    }

    /// Tells the other participants of a chat that `user` is (not) typing; never stored.
    pub async fn typing(&self, user: &User, chat_id: Uuid, is_typing: bool) -> Result<(), Error> {
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

    async fn publish_receipt(&self, receipt: Receipt) {
        self.publish_durable(receipt.targets, Event::Receipt(receipt.event))
            .await;
    }
}
