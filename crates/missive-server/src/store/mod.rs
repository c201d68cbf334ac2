//! The storage boundary. The store is the truth: a message is committed here
//! before anybody is told about it.
//!
//! [`Store`] is the trait the HTTP and WebSocket layers use; [`sqlite`] is the
//! embedded implementation, [`postgres`] the one for several nodes. Models are the wire types of `missive-protocol`
//! plus the small records below; nothing of the database leaks out.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use missive_protocol::{Chat, Message, MessageStatus, User};
use uuid::Uuid;

use crate::domain::event::{Event, ReceiptEvent, UnknownKind};
use crate::domain::{ClientMessageId, MessageContent, PhoneNumber};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The phone number is registered already.
    #[error("phone number already registered")]
    PhoneTaken,
    /// A `(sender, clientMessageId)` already names a message of another
    /// chat or with other content; nothing was stored.
    #[error("clientMessageId reused for another send")]
    IdempotencyConflict,
    /// A referenced user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The chat does not exist or the viewer is not a participant.
    #[error("chat not found")]
    ChatNotFound,
    /// The message does not exist in that chat.
    #[error("message not found")]
    MessageNotFound,
    /// A pagination cursor names no item of that list.
    #[error("unknown pagination cursor")]
    InvalidCursor,
    /// The database could not be reached or the commit failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database file is damaged: the node cannot serve until it is restored.
    #[error("database corrupt: {0}")]
    Corrupt(String),
    /// Anything else (a bug or a corrupt database).
    #[error("storage error: {0}")]
    Internal(String),
}

/// A stored event of a kind this build does not know: the row cannot be
/// served (it is never read as another kind).
impl From<UnknownKind> for StoreError {
    fn from(e: UnknownKind) -> StoreError {
        StoreError::Internal(format!("event log: {e}"))
    }
}

/// Result of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user to create, with the hash of their first token.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The (unique) phone number.
    pub phone_number: PhoneNumber,
    /// Optional display name.
    pub display_name: Option<String>,
    /// SHA-256 of the first bearer token, hex.
    pub token_hash: String,
    /// The `User-Agent` that registered (shown in the sessions list).
    pub user_agent: Option<String>,
}

/// A token's session, as the token's lookup finds it (revoked tokens are
/// never found; whether it expired is the caller's judgement, from
/// `last_used_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSession {
    /// The token's user.
    pub user: User,
    /// The session id (a UUID, never the token or its hash).
    pub id: Uuid,
    /// When the token was issued, in milliseconds since the epoch.
    pub created_at: i64,
    /// When it was last used (coarse: see [`Store::touch_token`]), in
    /// milliseconds since the epoch.
    pub last_used_at: i64,
}

/// One live session of a user, for the sessions list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: Uuid,
    /// When the token was issued, in milliseconds since the epoch.
    pub created_at: i64,
    /// When it was last used, in milliseconds since the epoch.
    pub last_used_at: i64,
    /// The `User-Agent` that obtained the token, if it sent one.
    pub user_agent: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum SendTarget {
    /// An existing chat the sender is in.
    Chat(Uuid),
    /// The 1:1 chat with that user, created on the first message.
    Direct(Uuid),
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The sender.
    pub sender: User,
    /// The chat.
    pub target: SendTarget,
    /// The text.
    pub content: MessageContent,
    /// The sender's idempotency key.
    pub client_message_id: Option<ClientMessageId>,
    /// Set only when push notifications are enabled: the store then writes,
    /// in the message's own commit, a push outbox row for every recipient
    /// (never the sender) the filter says has no connection here.
    pub push: Option<PushFilter>,
}

/// Tells the store which recipients of a new message get a push: those
/// for whom `connected(user)` is false (no open connection on this node).
#[derive(Clone)]
pub struct PushFilter(pub Arc<dyn Fn(Uuid) -> bool + Send + Sync>);

impl PushFilter {
    /// True when `user` has no open connection on this node, so that a push
    /// must be queued for them.
    pub fn wants(&self, user: Uuid) -> bool {
        !(self.0)(user)
    }
}

impl std::fmt::Debug for PushFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushFilter")
    }
}

/// A push notification of the outbox, as a dispatcher claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPush {
    /// The outbox row.
    pub id: i64,
    /// The recipient.
    pub user_id: Uuid,
    /// The chat of the message.
    pub chat_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The sender's phone number.
    pub sender: String,
    /// The first characters of the content (see [`crate::domain::preview`]).
    pub preview: String,
    /// Attempts so far, this one included (the claim counts it).
    pub attempts: u32,
}

impl NewMessage {
    /// Whether this send is an exact repeat of `original`, the stored message
    /// of its `(sender, clientMessageId)`: same content and same chat. A
    /// `Direct` send names its chat by the pair, so it repeats a message of
    /// the chat whose direct key (`original_direct_key`, `None` for a group)
    /// is that pair's.
    pub(crate) fn repeats(&self, original: &Message, original_direct_key: Option<&str>) -> bool {
        let same_chat = match self.target {
            SendTarget::Chat(id) => original.chat_id == id,
            SendTarget::Direct(receiver) => {
                original_direct_key
                    == Some(crate::domain::chat::direct_key(self.sender.id, receiver).as_str())
            }
        };
        same_chat && original.content == self.content.as_str()
    }
}

/// A stored message and who must hear about it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message as stored.
    pub message: Message,
    /// `(user, event cursor)` for every participant, sender included.
    pub targets: Vec<(Uuid, i64)>,
    /// True when this was a repeated send of an earlier message (nothing new stored).
    pub duplicate: bool,
    /// Push outbox rows written with the message (0 unless [`NewMessage::push`] was set).
    pub pushes: usize,
}

/// The outcome of a status update and who must hear about it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// What happened.
    pub event: ReceiptEvent,
    /// `(user, event cursor)` of the other participants (empty if nothing moved).
    pub targets: Vec<(Uuid, i64)>,
}

/// Where a user's event log stands (see [`Store::event_log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventLog {
    /// The number of the newest event (0 when none was ever appended). It
    /// only grows: pruning never lowers it, so numbers are never reused.
    pub cursor: i64,
    /// Every event numbered up to this one may have been pruned (0 when none
    /// was): a resume from a cursor below it cannot be replayed in full.
    pub pruned_through: i64,
}

/// How a database's schema compares with this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Migrations the database has applied (its schema version).
    pub applied: i64,
    /// Migrations this build knows.
    pub known: i64,
}

impl SchemaStatus {
    /// Migrations this build would apply.
    pub fn pending(&self) -> i64 {
        (self.known - self.applied).max(0)
    }

    /// True when the database was migrated by a newer build.
    pub fn is_newer(&self) -> bool {
        self.applied > self.known
    }
}

impl std::fmt::Display for SchemaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_newer() {
            write!(
                f,
                "the database schema is at version {}, newer than this build of missive knows ({})",
                self.applied, self.known
            )
        } else if self.pending() > 0 {
            write!(
                f,
                "{} pending migration(s): the database schema is at version {}, this build's is {}",
                self.pending(),
                self.applied,
                self.known
            )
        } else {
            write!(
                f,
                "the database schema is current (version {})",
                self.applied
            )
        }
    }
}

/// A login code to store.
#[derive(Debug, Clone)]
pub struct LoginCode {
    /// The user it logs in.
    pub user: Uuid,
    /// Their phone number.
    pub phone_number: String,
    /// Hash of the code.
    pub code_hash: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// A try at a login code.
#[derive(Debug, Clone)]
pub struct CodeAttempt {
    /// The phone number the code was sent to.
    pub phone_number: String,
    /// Hash of the code tried.
    pub code_hash: String,
    /// Now, in milliseconds since the epoch.
    pub now: i64,
    /// Hash of the token to create when the code matches.
    pub token_hash: String,
    /// The `User-Agent` of the login (stored with the new token).
    pub user_agent: Option<String>,
    /// Wrong tries after which the code is burned.
    pub max_attempts: i64,
}

/// The outcome of a [`CodeAttempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The code matched; the token now belongs to this user.
    Valid(User),
    /// No code, a wrong code, or an expired one.
    Invalid,
    /// The code was burned by too many wrong tries.
    TooManyAttempts,
}

/// A chat and the ids of its participants.
#[derive(Debug, Clone)]
pub struct ChatView {
    /// The chat as the viewer sees it.
    pub chat: Chat,
    /// Participant ids, in the order of `chat.participants`.
    pub member_ids: Vec<Uuid>,
}

/// A page of results, newest first, and whether more exist beyond it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// True when a next page exists.
    pub more: bool,
}

/// Which slice of a chat's messages to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageCursor {
    /// The newest messages.
    Newest,
    /// Messages immediately older than this one.
    Before(Uuid),
    /// Messages immediately newer than this one (the oldest of them first).
    After(Uuid),
}

/// Parameters of a message listing.
#[derive(Debug, Clone, Copy)]
pub struct MessageQuery {
    /// Page size, 1–200.
    pub limit: u32,
    /// Items skipped from the start of the slice.
    pub offset: u32,
    /// The slice.
    pub cursor: MessageCursor,
}

/// Parameters of a chat listing.
#[derive(Debug, Clone, Copy)]
pub struct ChatQuery {
    /// Page size, 1–200.
    pub limit: u32,
    /// Items skipped.
    pub offset: u32,
    /// Only chats with less recent activity than this one.
    pub before: Option<Uuid>,
}

/// The persistence operations of missive.
///
/// # What every backend guarantees
///
/// - **Commit before acknowledgement.** A method returns `Ok` only after its
///   writes are durable (committed; for SQLite, fsynced).
/// - **Per-user event numbers commit in number order.** The events appended
///   to a user's log (see [`Store::events_since`]) are numbered 1, 2, 3, …
///   without gaps, and a number is visible only once every smaller number of
///   that user is: a reader that has seen event `n` can never later find an
///   event `< n` it had not seen. (A global sequence does not give this; the
///   number must be taken under the user's lock, or by a single writer.)
/// - **A connection's sends are stored in the order they were queued:**
///   messages passed to [`Store::queue_message`] one after the other get
///   increasing `seq` in their chat and increasing event numbers.
/// - **Unique violations are domain errors,** whichever node raced:
///   a taken phone number is [`StoreError::PhoneTaken`]; two concurrent
///   creations of the 1:1 chat of one pair yield the same chat; two sends with
///   one `(sender, clientMessageId)` store one message and both return it.
/// - **An idempotency key is checked before the target.** A send whose
///   `(sender, clientMessageId)` names a stored message returns that message
///   (`duplicate`) when the chat and content are the same — even if the
///   chat could no longer take a new message — and is refused with
///   [`StoreError::IdempotencyConflict`], storing nothing, when they differ.
///   For a [`SendTarget::Direct`] send, the same chat is the 1:1 chat of the
///   pair.
/// - **Unavailability is [`StoreError::Unavailable`]** (the API's 503), and the
///   store recovers by itself when the database is back.
/// - **Tokens are sessions.** Every token row has a session id (a random
///   UUID, never derived from the token), the `User-Agent` that obtained
///   it and a `last_used_at` time, set to the issue time. A revoked token is
///   never found again. The store does not judge expiry: the callers pass
///   the cut-off (`now - TOKEN_TTL`) to the methods that need it, so every
///   node and backend applies the same rule.
/// - **Pruning is idempotent and safe on every node at once:** it deletes
///   only rows that no lookup would accept anyway (revoked or expired
///   tokens, expired login codes).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that writes commit (not merely that the database answers a
    /// read), for `/readyz`; `Unavailable` when they do not.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates a user and their first token; `PhoneTaken` if the number exists.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    /// Looks a user up by phone number.
    async fn user_by_phone(&self, phone: &PhoneNumber) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// The session (and user) of a token that is not revoked, by the token's
    /// hash; the caller judges expiry from `last_used_at`.
    async fn session_by_token(&self, token_hash: &str) -> StoreResult<Option<TokenSession>>;

    /// Adds a token for `user` (a new session, last used now).
    async fn add_token(
        &self,
        user: Uuid,
        token_hash: String,
        user_agent: Option<String>,
    ) -> StoreResult<()>;
    /// Records a use of a token at `at` (milliseconds since the epoch): its
    /// `last_used_at` moves up to `at`, never back. Callers throttle it (at
    /// most about once a minute per token), so that reads do not each write.
    async fn touch_token(&self, token_hash: &str, at: i64) -> StoreResult<()>;
    /// Revokes a token; `false` if it was unknown or already revoked.
    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool>;
    /// The live sessions of `user`: not revoked and used at or after
    /// `used_since`; most recently used first.
    async fn list_sessions(&self, user: Uuid, used_since: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes the session `id` when it is a live session (as in
    /// [`Store::list_sessions`]) of `user`, returning its token's hash
    /// (so that its connections can be closed); `None` otherwise, whoever
    /// it belongs to.
    async fn revoke_session(
        &self,
        user: Uuid,
        id: Uuid,
        used_since: i64,
    ) -> StoreResult<Option<String>>;
    /// Deletes revoked tokens and tokens last used before `unused_since`;
    /// returns how many rows went.
    async fn prune_tokens(&self, unused_since: i64) -> StoreResult<u64>;
    /// Deletes login codes that expired before `now` (used codes are deleted
    /// when redeemed); returns how many rows went.
    async fn prune_login_codes(&self, now: i64) -> StoreResult<u64>;
    /// Stores the login code of a user (replacing an earlier one, attempts reset).
    async fn put_login_code(&self, code: LoginCode) -> StoreResult<()>;
    /// Checks a login code and, when it matches, consumes it and stores `token_hash`
    /// as a new token of its user, in one transaction.
    async fn redeem_login_code(&self, attempt: CodeAttempt) -> StoreResult<Redeemed>;

    /// Finds the 1:1 chat of two users or creates it (`true` when created);
    /// three or more participants always make a new chat.
    async fn create_chat(
        &self,
        participants: Vec<Uuid>,
        viewer: Option<Uuid>,
    ) -> StoreResult<(ChatView, bool)>;
    /// A chat, as `viewer` sees it; `ChatNotFound` if `viewer` is not a participant.
    async fn chat(&self, chat_id: Uuid, viewer: Option<Uuid>) -> StoreResult<ChatView>;
    /// The chats of `user`, most recent activity first.
    async fn list_chats(&self, user: Uuid, query: ChatQuery) -> StoreResult<Page<Chat>>;

    /// Stores a message (or returns the original of a repeated `clientMessageId`;
    /// `IdempotencyConflict` when the key names another chat or content).
    async fn send_message(&self, new: NewMessage) -> StoreResult<Sent> {
        self.queue_message(new).await?.await
    }
    /// Queues a message for storage without waiting for its commit; the returned
    /// future resolves once it is committed. Messages queued one after the other
    /// are stored in that order (so a connection can pipeline its sends).
    async fn queue_message(&self, new: NewMessage) -> StoreResult<Committing<Sent>>;
    /// A page of a chat's messages, newest first. When `viewer` is a participant,
    /// the returned messages of the others are marked delivered for them.
    async fn list_messages(
        &self,
        chat_id: Uuid,
        viewer: Option<Uuid>,
        query: MessageQuery,
    ) -> StoreResult<(Page<Message>, Option<Receipt>)>;
    /// Moves `user`'s delivered (and for `read`, read) watermark up to `message_id`.
    async fn mark_status(
        &self,
        chat_id: Uuid,
        user: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> StoreResult<Receipt>;

    /// The cursor of the newest event of `user`'s log (0 when empty).
    async fn event_cursor(&self, user: Uuid) -> StoreResult<i64>;
    /// Up to `limit` events of `user`'s log after `cursor`, oldest first.
    async fn events_since(
        &self,
        user: Uuid,
        cursor: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Event)>>;

    /// Where `user`'s log stands: its newest event and how far it was pruned.
    async fn event_log(&self, user: Uuid) -> StoreResult<EventLog>;
    /// One step of pruning: finds up to `limit` events created before
    /// `cutoff_ms` (milliseconds since the epoch) and deletes, for each of
    /// their users, every event up to the newest of them — always a prefix
    /// of the user's log, so that what is kept has no hole — recording it in
    /// [`EventLog::pruned_through`]. Returns how many events were deleted (0
    /// when nothing is older than the cutoff). Idempotent, and safe on
    /// several nodes at once.
    async fn prune_events(&self, cutoff_ms: i64, limit: u32) -> StoreResult<u64>;
    /// Claims up to `limit` pushes of the outbox due at `now` (ms since the
    /// epoch), oldest due first: each one's attempt count goes up by one and
    /// its next attempt moves to `lease_until`, so that no other dispatcher
    /// (of this node or another) takes it meanwhile; a dispatcher that dies
    /// holding a claim leaves it to be retried once the lease is over.
    async fn claim_pushes(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<PendingPush>>;
    /// When the next push of the outbox is due (ms), `None` when it is empty.
    async fn next_push_due(&self) -> StoreResult<Option<i64>>;
    /// Removes a push from the outbox (delivered, skipped or given up).
    async fn remove_push(&self, id: i64) -> StoreResult<()>;
    /// Schedules the next attempt of a claimed push at `at` (ms).
    async fn reschedule_push(&self, id: i64, at: i64) -> StoreResult<()>;

    /// Finishes pending writes and closes the database.
    async fn close(&self);
}

/// A write that was queued and resolves after its commit.
pub type Committing<T> = futures_util::future::BoxFuture<'static, StoreResult<T>>;

/// A shared handle on the store.
pub type DynStore = Arc<dyn Store>;

pub use crate::config::DEFAULT_POOL_SIZE;

/// How to open the store, besides its URL.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How an SQLite file is checked before serving.
    pub startup_check: sqlite::StartupCheck,
    /// Whether an SQLite writer opens its file through the layer that writes
    /// a commit's WAL frames in one call (`DATABASE_WAL_BATCHING`; PostgreSQL
    /// ignores it).
    pub wal_batching: bool,
    /// Connections of a PostgreSQL store's pool (SQLite ignores it).
    pub pool_size: usize,
    /// The writer's instruments (queue depth, batch size, commit time).
    pub metrics: crate::metrics::WriterMetrics,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            startup_check: sqlite::StartupCheck::Quick,
            wal_batching: true,
            pool_size: DEFAULT_POOL_SIZE,
            metrics: crate::metrics::WriterMetrics::default(),
        }
    }
}

/// Opens the store named by `DATABASE_URL`. An error never carries the
/// URL's password (it names the URL redacted).
pub async fn open(database_url: &str, options: OpenOptions) -> anyhow::Result<DynStore> {
    open_unredacted(database_url, options)
        .await
        .map_err(|e| anyhow::anyhow!(crate::redaction::scrub(&format!("{e:#}"), &[database_url])))
}

/// The schema of the database named by `DATABASE_URL` against this build's
/// migrations (`missive migrate --check`); applies nothing. A missing SQLite
/// file is at version 0. Errors never carry the URL's password.
pub async fn schema_status(database_url: &str) -> anyhow::Result<SchemaStatus> {
    let status = async {
        match Backend::of(database_url)? {
            Backend::Sqlite(sqlite::Location::File(path)) => sqlite::schema::file_status(&path),
            Backend::Sqlite(sqlite::Location::Memory) => {
                anyhow::bail!("sqlite::memory: has no schema to check: it starts empty every time")
            }
            Backend::Postgres => postgres::schema_status(database_url).await,
        }
    };
    status.await.map_err(|e| redacted(e, database_url))
}

/// Applies the pending migrations of the database named by `DATABASE_URL`
/// (`missive migrate`) and returns its schema status before and after;
/// refuses a database migrated by a newer build. An SQLite file is written
/// through the WAL layer when `wal_batching` (`DATABASE_WAL_BATCHING`) is
/// set. Errors never carry the URL's password.
pub async fn migrate(
    database_url: &str,
    wal_batching: bool,
) -> anyhow::Result<(SchemaStatus, SchemaStatus)> {
    let migrated = async {
        match Backend::of(database_url)? {
            Backend::Sqlite(sqlite::Location::File(path)) => {
                sqlite::migrate_file(&path, wal_batching)
            }
            Backend::Sqlite(sqlite::Location::Memory) => {
                anyhow::bail!("sqlite::memory: cannot be migrated: it starts empty every time")
            }
            Backend::Postgres => postgres::migrate_url(database_url).await,
        }
    };
    migrated.await.map_err(|e| redacted(e, database_url))
}

/// The kind of database a `DATABASE_URL` names.
pub enum Backend {
    /// An SQLite file or memory database.
    Sqlite(sqlite::Location),
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// Parses the scheme of `database_url`.
    pub fn of(database_url: &str) -> anyhow::Result<Backend> {
        if database_url.starts_with("sqlite:") {
            Ok(Backend::Sqlite(sqlite::Location::parse(database_url)?))
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!(
                "unsupported DATABASE_URL {:?}: expected sqlite://path.db, sqlite:///abs/path.db, sqlite::memory: or postgres://user@host/db",
                crate::redaction::redact(database_url)
            )
        }
    }
}

fn redacted(e: anyhow::Error, database_url: &str) -> anyhow::Error {
    anyhow::anyhow!(crate::redaction::scrub(&format!("{e:#}"), &[database_url]))
}

async fn open_unredacted(database_url: &str, options: OpenOptions) -> anyhow::Result<DynStore> {
    if database_url.starts_with("sqlite:") {
        let location = sqlite::Location::parse(database_url)?;
        Ok(Arc::new(
            sqlite::SqliteStore::open(
                location,
                options.startup_check,
                options.wal_batching,
                options.metrics,
            )
            .await?,
        ))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = postgres::PgStore::open(database_url, options.pool_size, options.metrics)
            .await
            .map_err(|e| {
                e.context(format!(
                    "DATABASE_URL {}",
                    crate::redaction::redact(database_url)
                ))
            })?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!(
            "unsupported DATABASE_URL {:?}: expected sqlite://path.db, sqlite:///abs/path.db, sqlite::memory: or postgres://user@host/db",
            crate::redaction::redact(database_url)
        )
    }
}
