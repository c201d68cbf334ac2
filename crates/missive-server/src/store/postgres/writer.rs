//! Group commit of sends: one task per node takes the sends waiting in a
//! bounded channel (up to [`MAX_BATCH`]) and stores them in one transaction
//! with a fixed number of round trips, whatever the batch size:
//!
//! 1. outside the transaction: look up earlier sends with the batch's
//!    `(sender, clientMessageId)` keys first — an exact repeat gets its
//!    original and a reused key `IdempotencyConflict`, whatever the target
//!    (as in the SQLite store); then look up (and create, if missing) the 1:1
//!    chats of the other `Direct` sends, and load the members of every chat
//!    of the batch; sends to a chat that does not exist or without the sender
//!    are refused here, alone — the rest of the batch goes on;
//! 2. `BEGIN`; lock the users of those chats in id order (the global lock
//!    order, see [`super::sql`]) and the chats, and look up earlier sends
//!    with the same keys again — under the sender's lock, so no other node
//!    can store one meanwhile;
//! 3. number messages (per chat `seq`) and events (per user) in queue order,
//!    in memory, then insert them with multi-row `INSERT … SELECT unnest(…)`
//!    and write the counters back, the four statements pipelined;
//! 4. `COMMIT`, and only then answer each caller.
//!
//! Any database failure fails the whole batch with `Unavailable`: nothing of
//! it was acknowledged, and clients retry (idempotently, by `clientMessageId`).
//! So does a batch that misses its deadline ([`super::DEADLINE`], taking the
//! connection included): its connection is closed, and its `COMMIT`, if it
//! was sent, may still have landed — the same ambiguity as a connection lost
//! during `COMMIT`, resolved the same way (a retry with the same
//! `clientMessageId` returns the stored message). The sends that queued up
//! behind a batch that missed its deadline fail at once with `Unavailable`
//! (nothing of them reached the database), so that no send waits for more
//! than about one deadline.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use deadpool_postgres::Pool;
use missive_protocol::{Message, MessageStatus};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::sql::{self, EventRows, MESSAGE_COLUMNS, Numbering};
use crate::domain::chat::{Member, direct_key, status_of};
use crate::domain::event::EventKind;
use crate::domain::{format_ms, now_ms};
use crate::metrics::WriterMetrics;
use crate::store::{Committing, NewMessage, SendTarget, Sent, StoreError, StoreResult};

/// Most sends stored in one transaction.
pub const MAX_BATCH: usize = 256;
/// Capacity of the writer's inbox; senders wait when it is full (backpressure).
pub const INBOX: usize = 4096;

struct Job {
    new: NewMessage,
    reply: oneshot::Sender<StoreResult<Sent>>,
}

/// The handle through which tasks queue sends.
#[derive(Clone)]
pub struct WriterHandle {
    inbox: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Starts the writer task; it ends when every handle is dropped, after
    /// storing what it had received.
    pub fn spawn(pool: Pool, metrics: WriterMetrics) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(INBOX);
        let task = tokio::spawn(run(pool, rx, metrics));
        (WriterHandle { inbox: tx }, task)
    }

    /// Queues a send (waiting only for room in the inbox); the future resolves
    /// after its batch committed. Sends are stored in the order they are queued.
    pub async fn submit(&self, new: NewMessage) -> StoreResult<Committing<Sent>> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Job { new, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the database is closed".into()))?;
        Ok(Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the database writer stopped".into(),
                ))
            })
        }))
    }
}

async fn run(pool: Pool, mut inbox: mpsc::Receiver<Job>, metrics: WriterMetrics) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = inbox.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics.queue_depth.set(inbox.len() as i64);
        metrics.batch_size.observe(batch.len() as f64);
        let started = Instant::now();
        let sends: Vec<&NewMessage> = batch.iter().map(|job| &job.new).collect();
        let (outcome, stalled) = commit_batch(&pool, &sends).await;
        metrics.commit_seconds.observe_duration(started.elapsed());
        match outcome {
            Ok(results) => {
                tracing::trace!(sends = batch.len(), "send batch committed");
                for (job, result) in batch.drain(..).zip(results) {
                    // The caller may have gone away (client disconnected).
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                metrics.failed_batches.inc();
                tracing::error!(error = %e, sends = batch.len(), "send batch failed");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(clone_error(&e)));
                }
                if stalled {
                    // Queued while the database did not answer: none of them
                    // was sent to it, so failing them stores nothing twice.
                    let mut failed = 0usize;
                    while let Ok(job) = inbox.try_recv() {
                        let _ = job
                            .reply
                            .send(Err(StoreError::Unavailable(format!("not stored: {e}"))));
                        failed += 1;
                    }
                    if failed > 0 {
                        tracing::warn!(
                            sends = failed,
                            "failed the sends queued behind a stalled batch"
                        );
                    }
                }
            }
        }
        metrics.queue_depth.set(inbox.len() as i64);
    }
    tracing::debug!("postgres writer stopped");
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Internal(cause) => StoreError::Internal(cause.clone()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// What phase 1 decided for one send.
enum Plan {
    /// Answered already: the repeat of a stored send, or a reused key.
    Answered(Sent),
    /// Refused with a domain error.
    Refused(StoreError),
    /// To store in `chat`, whose members are known.
    Store { chat: Uuid },
}

/// Stores a batch within [`super::DEADLINE`] (taking a connection
/// included); `true` with the outcome when it missed the deadline.
async fn commit_batch(
    pool: &Pool,
    batch: &[&NewMessage],
) -> (StoreResult<Vec<StoreResult<Sent>>>, bool) {
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    let mut client = match super::client_until(pool, deadline).await {
        Ok(client) => client,
        Err(e) => {
            // Refused at once (the database is down) is not a stall.
            let stalled = tokio::time::Instant::now() >= deadline;
            return (Err(e), stalled);
        }
    };
    match tokio::time::timeout_at(deadline, apply(&mut client, batch)).await {
        Ok(outcome) => (outcome, false),
        // Mid-transaction, maybe mid-`COMMIT`: closed, not pooled.
        Err(_) => (Err(super::stalled(client)), true),
    }
}

/// Stores a batch; the outer `Err` fails every send, an inner one only that send.
async fn apply(
    client: &mut deadpool_postgres::Client,
    batch: &[&NewMessage],
) -> StoreResult<Vec<StoreResult<Sent>>> {
    // Phase 1a: idempotency keys first, before the target is checked, so that
    // a retry of a stored send gets its original even if its chat could no
    // longer take it, and a reused key creates no 1:1 chat. (A send stored
    // meanwhile by another node is caught again under the locks, phase 2.)
    let keys = batch_keys(batch);
    let committed = earlier_sends(&*client, &keys).await?;
    let mut answered: Vec<Option<StoreResult<Sent>>> = batch
        .iter()
        .map(|new| {
            let key = send_key(new)?;
            let (original, direct) = committed.get(&key)?;
            Some(if new.repeats(original, direct.as_deref()) {
                Ok(Sent {
                    message: original.clone(),
                    targets: Vec::new(),
                    duplicate: true,
                    pushes: 0,
                })
            } else {
                Err(StoreError::IdempotencyConflict)
            })
        })
        .collect();

    // Phase 1b: chats and members (reads, plus 1:1 chats created on first use).
    // One look-up for every 1:1 chat of the batch; only missing ones (a
    // pair's first message) cost a transaction of their own.
    let pending = |i: usize| answered[i].is_none();
    let mut pair_keys: Vec<String> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| pending(*i))
        .filter_map(|(_, new)| match new.target {
            SendTarget::Direct(receiver) => Some(direct_key(new.sender.id, receiver)),
            SendTarget::Chat(_) => None,
        })
        .collect();
    pair_keys.sort_unstable();
    pair_keys.dedup();
    let mut direct: HashMap<String, StoreResult<Uuid>> = sql::find_directs(&*client, &pair_keys)
        .await?
        .into_iter()
        .map(|(key, id)| (key, Ok(id)))
        .collect();
    for (i, new) in batch.iter().enumerate() {
        if !pending(i) {
            continue;
        }
        if let SendTarget::Direct(receiver) = new.target {
            let key = direct_key(new.sender.id, receiver);
            if let std::collections::hash_map::Entry::Vacant(slot) = direct.entry(key) {
                let found = match sql::ensure_chat(client, &[new.sender.id, receiver]).await {
                    Ok((id, _)) => Ok(id),
                    Err(e @ (StoreError::Unavailable(_) | StoreError::Internal(_))) => {
                        return Err(e);
                    }
                    Err(domain) => Err(domain),
                };
                slot.insert(found);
            }
        }
    }
    let chat_of = |new: &NewMessage| -> StoreResult<Uuid> {
        match new.target {
            SendTarget::Chat(id) => Ok(id),
            SendTarget::Direct(receiver) => {
                match direct.get(&direct_key(new.sender.id, receiver)) {
                    Some(Ok(id)) => Ok(*id),
                    Some(Err(e)) => Err(same_domain_error(e)),
                    None => Err(StoreError::Internal("a 1:1 chat was not resolved".into())),
                }
            }
        }
    };
    let mut chats: Vec<Uuid> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| pending(*i))
        .filter_map(|(_, new)| chat_of(new).ok())
        .collect();
    chats.sort_unstable();
    chats.dedup();
    let members = sql::members_of(&*client, &chats).await?;
    let plans: Vec<Plan> = batch
        .iter()
        .zip(answered.iter_mut())
        .map(|(new, answer)| match answer.take() {
            Some(Ok(sent)) => Plan::Answered(sent),
            Some(Err(e)) => Plan::Refused(e),
            None => match chat_of(new) {
                Err(e) => Plan::Refused(e),
                Ok(chat) => match members.get(&chat) {
                    Some(list) if list.iter().any(|m| m.user_id == new.sender.id) => {
                        Plan::Store { chat }
                    }
                    _ => Plan::Refused(StoreError::ChatNotFound),
                },
            },
        })
        .collect();
    let mut users: Vec<Uuid> = Vec::new();
    let mut stored_chats: Vec<Uuid> = Vec::new();
    for plan in &plans {
        if let Plan::Store { chat } = plan {
            stored_chats.push(*chat);
            users.extend(members.get(chat).into_iter().flatten().map(|m| m.user_id));
        }
    }
    stored_chats.sort_unstable();
    stored_chats.dedup();
    if stored_chats.is_empty() {
        return Ok(plans.into_iter().map(refused).collect());
    }

    // Phase 2: locks, in the global order (users, then chats).
    let tx = client.transaction().await?;
    let current = sql::lock_users(&tx, &users).await?;
    let (chat_rows, mut earlier, activities) = tokio::try_join!(
        async {
            sql::query(
                &tx,
                "SELECT id, last_seq FROM chats WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&stored_chats],
            )
            .await
            .map_err(StoreError::from)
        },
        earlier_sends(&tx, &keys),
        async {
            // One activity value per chat, handed out below in the order of
            // each chat's last message of the batch.
            sql::query(
                &tx,
                "SELECT nextval('chat_activity') AS v FROM generate_series(1, $1::int8) ORDER BY v",
                &[&(stored_chats.len() as i64)],
            )
            .await
            .map_err(StoreError::from)
        },
    )?;
    let mut last_seq: HashMap<Uuid, i64> = HashMap::new();
    for row in &chat_rows {
        last_seq.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let mut numbering = Numbering::new(current);

    // Phase 3: number everything in queue order, in memory.
    let now = now_ms();
    let mut messages = MessageRows::default();
    let mut events = EventRows::default();
    let mut pushes = PushRows::default();
    let mut results: Vec<StoreResult<Sent>> = Vec::with_capacity(batch.len());
    let mut chat_order: Vec<Uuid> = Vec::new();
    for (new, plan) in batch.iter().zip(plans) {
        let chat = match plan {
            Plan::Answered(sent) => {
                results.push(Ok(sent));
                continue;
            }
            Plan::Refused(e) => {
                results.push(Err(e));
                continue;
            }
            Plan::Store { chat } => chat,
        };
        let key = send_key(new);
        if let Some((original, _)) = key.as_ref().and_then(|k| earlier.get(k)) {
            // Stored by another node since phase 1, or earlier in this batch;
            // this send's chat is resolved, so "the same chat" is its id.
            let repeat = original.chat_id == chat && original.content == new.content.as_str();
            results.push(if repeat {
                Ok(Sent {
                    message: original.clone(),
                    targets: Vec::new(),
                    duplicate: true,
                    pushes: 0,
                })
            } else {
                Err(StoreError::IdempotencyConflict)
            });
            continue;
        }
        let seq = last_seq
            .get_mut(&chat)
            .map(|s| {
                *s += 1;
                *s
            })
            .ok_or(StoreError::ChatNotFound)?;
        let chat_members: &[Member] = members.get(&chat).map(Vec::as_slice).unwrap_or(&[]);
        let message = Message {
            id: Uuid::now_v7(),
            chat_id: chat,
            seq,
            sender: new.sender.phone_number.clone(),
            content: new.content.as_str().to_owned(),
            created_at: format_ms(now),
            client_message_id: key.as_ref().map(|(_, k)| k.clone()),
            status: MessageStatus::Sent,
        };
        let mut targets = Vec::with_capacity(chat_members.len());
        for member in chat_members {
            let number = numbering.next(member.user_id)?;
            events.push(
                member.user_id,
                number,
                EventKind::Message,
                chat,
                message.id,
                None,
                None,
                now,
            );
            targets.push((member.user_id, number));
        }
        // Only with push enabled: outbox rows in the message's own commit.
        let mut queued = 0;
        if let Some(filter) = &new.push {
            let preview = crate::domain::preview(&message.content);
            for member in chat_members
                .iter()
                .filter(|m| m.user_id != new.sender.id && filter.wants(m.user_id))
            {
                pushes.push(member.user_id, &message, preview, now);
                queued += 1;
            }
        }
        messages.push(&message, new.sender.id, now);
        chat_order.retain(|c| *c != chat);
        chat_order.push(chat);
        if let Some(key) = key {
            // A repeat later in this same batch returns this message.
            earlier.insert(key, (message.clone(), None));
        }
        results.push(Ok(Sent {
            message,
            targets,
            duplicate: false,
            pushes: queued,
        }));
    }

    // Phase 4: write, pipelined, and commit.
    let mut chat_ids = Vec::with_capacity(chat_order.len());
    let mut chat_seqs = Vec::with_capacity(chat_order.len());
    let mut chat_activity = Vec::with_capacity(chat_order.len());
    for (chat, row) in chat_order.iter().zip(&activities) {
        chat_ids.push(*chat);
        chat_seqs.push(last_seq.get(chat).copied().unwrap_or_default());
        chat_activity.push(row.try_get::<_, i64>(0)?);
    }
    tokio::try_join!(
        messages.insert(&tx),
        events.insert(&tx),
        async {
            if chat_ids.is_empty() {
                return Ok(0);
            }
            sql::execute(
                &tx,
                "UPDATE chats c SET last_seq = d.last_seq, activity = d.activity
                 FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS d(id, last_seq, activity)
                 WHERE c.id = d.id",
                &[&chat_ids, &chat_seqs, &chat_activity],
            )
            .await
            .map_err(StoreError::from)
        },
        sql::bump_event_seqs(&tx, &numbering.added),
        pushes.insert(&tx),
    )?;
    tx.commit().await?;
    Ok(results)
}

fn refused(plan: Plan) -> StoreResult<Sent> {
    match plan {
        Plan::Answered(sent) => Ok(sent),
        Plan::Refused(e) => Err(e),
        Plan::Store { .. } => Err(StoreError::Internal("a send was not planned".into())),
    }
}

/// The domain errors a 1:1 chat's creation can end with, once per send.
fn same_domain_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::UserNotFound => StoreError::UserNotFound,
        StoreError::ChatNotFound => StoreError::ChatNotFound,
        other => StoreError::Internal(other.to_string()),
    }
}

/// The idempotency key of a send: `(sender, clientMessageId)`.
fn send_key(new: &NewMessage) -> Option<(Uuid, String)> {
    new.client_message_id
        .as_ref()
        .map(|k| (new.sender.id, k.as_str().to_owned()))
}

/// The idempotency keys of a batch.
fn batch_keys(batch: &[&NewMessage]) -> Vec<(Uuid, String)> {
    batch.iter().filter_map(|new| send_key(new)).collect()
}

/// A stored message and the direct key of its chat (`None` for a group).
type Original = (Message, Option<String>);

/// Earlier sends of the batch's `(sender, clientMessageId)` keys, with their
/// current status and their chat's direct key.
async fn earlier_sends<C: deadpool_postgres::GenericClient>(
    tx: &C,
    keys: &[(Uuid, String)],
) -> StoreResult<HashMap<(Uuid, String), Original>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let unique: HashSet<&(Uuid, String)> = keys.iter().collect();
    let (senders, ids): (Vec<Uuid>, Vec<String>) = unique.into_iter().cloned().unzip();
    let sql_text = format!(
        "SELECT {MESSAGE_COLUMNS}, m.sender_id, c.direct_key FROM messages m
         JOIN users u ON u.id = m.sender_id JOIN chats c ON c.id = m.chat_id
         JOIN unnest($1::uuid[], $2::text[]) AS k(sender, cmid)
           ON m.sender_id = k.sender AND m.client_message_id = k.cmid"
    );
    let rows = sql::query(tx, &sql_text, &[&senders, &ids]).await?;
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let message = sql::message_from_row(row)?;
        let sender: Uuid = row.try_get(7)?;
        let direct: Option<String> = row.try_get(8)?;
        found.push((sender, message, direct));
    }
    let mut chats: Vec<Uuid> = found.iter().map(|(_, m, _)| m.chat_id).collect();
    chats.sort_unstable();
    chats.dedup();
    let members = sql::members_of(tx, &chats).await?;
    Ok(found
        .into_iter()
        .filter_map(|(sender, mut message, direct)| {
            if let Some(list) = members.get(&message.chat_id) {
                message.status = status_of(list, &message.sender, message.seq);
            }
            let key = message.client_message_id.clone()?;
            Some(((sender, key), (message, direct)))
        })
        .collect())
}

/// Messages to insert, as columns.
#[derive(Default)]
struct MessageRows {
    ids: Vec<Uuid>,
    chats: Vec<Uuid>,
    seqs: Vec<i64>,
    senders: Vec<Uuid>,
    contents: Vec<String>,
    times: Vec<i64>,
    client_ids: Vec<Option<String>>,
}

impl MessageRows {
    fn push(&mut self, message: &Message, sender: Uuid, at: i64) {
        self.ids.push(message.id);
        self.chats.push(message.chat_id);
        self.seqs.push(message.seq);
        self.senders.push(sender);
        self.contents.push(message.content.clone());
        self.times.push(at);
        self.client_ids.push(message.client_message_id.clone());
    }

    async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> StoreResult<u64> {
        if self.ids.is_empty() {
            return Ok(0);
        }
        Ok(sql::execute(
            tx,
            "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at, client_message_id)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[],
                                  $6::int8[], $7::text[])",
            &[
                &self.ids,
                &self.chats,
                &self.seqs,
                &self.senders,
                &self.contents,
                &self.times,
                &self.client_ids,
            ],
        )
        .await?)
    }
}

/// Push outbox rows to insert, as columns.
#[derive(Default)]
struct PushRows {
    users: Vec<Uuid>,
    chats: Vec<Uuid>,
    messages: Vec<Uuid>,
    senders: Vec<String>,
    previews: Vec<String>,
    times: Vec<i64>,
}

impl PushRows {
    fn push(&mut self, user: Uuid, message: &Message, preview: &str, at: i64) {
        self.users.push(user);
        self.chats.push(message.chat_id);
        self.messages.push(message.id);
        self.senders.push(message.sender.clone());
        self.previews.push(preview.to_owned());
        self.times.push(at);
    }

    async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> StoreResult<u64> {
        if self.users.is_empty() {
            return Ok(0);
        }
        Ok(sql::execute(
            tx,
            "INSERT INTO push_outbox (user_id, chat_id, message_id, sender, preview, next_attempt_at, created_at)
             SELECT u, c, m, s, p, t, t FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                                                   $5::text[], $6::int8[]) AS d(u, c, m, s, p, t)",
            &[
                &self.users,
                &self.chats,
                &self.messages,
                &self.senders,
                &self.previews,
                &self.times,
            ],
        )
        .await?)
    }
}
