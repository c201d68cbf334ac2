//! The PostgreSQL store, for running several nodes on one database:
//! `tokio-postgres` connections in a `deadpool-postgres` pool (prepared
//! statements cached per connection, concurrent queries pipelined), one
//! writer task per node with group commit for sends ([`writer`]), and the
//! other writes in transactions of their own.
//!
//! Everything the trait guarantees holds across nodes because it rests on
//! PostgreSQL's locks and unique indexes, not on this process: see
//! [`sql`] for the lock order and `docs/architecture.md`.

mod sql;
mod writer;

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use missive_protocol::{Chat, Message, MessageStatus, User};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use self::writer::WriterHandle;
use super::{
    ChatQuery, ChatView, CodeAttempt, Committing, EventLog, LoginCode, MessageQuery, NewMessage,
    NewUser, Page, PendingPush, Receipt, Redeemed, SchemaStatus, Sent, SessionRecord, Store,
    StoreError, StoreResult, TokenSession,
};
use crate::domain::event::Event;
use crate::domain::{PhoneNumber, chat};

/// Result of the driver.
type PgResult<T> = Result<T, tokio_postgres::Error>;

/// Migrations, applied in order; `schema_migrations` records which ran.
///
/// Why the in-house runner rather than `refinery` (its tokio-postgres
/// flavour): databases made by earlier builds record their version in
/// `schema_migrations`, which refinery would not read (it keeps its own
/// history table, with checksums of each script that would have to be
/// forged for existing databases); and nodes starting together must take
/// turns, which the runner below does with an advisory lock held by its
/// one transaction. It is a plain ordered list, one transaction for all the
/// pending scripts, and a refusal of a newer database.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_sessions.sql"),
    include_str!("../../../migrations/postgres/0003_event_retention.sql"),
    include_str!("../../../migrations/postgres/0004_push_outbox.sql"),
];

/// How long a caller waits for a pooled connection, a new connection, or a
/// recycled one before the store answers `Unavailable` (HTTP 503).
const WAIT: Duration = Duration::from_secs(5);

/// Client-side deadline of one store call (taking a connection included)
/// and of one batch of the send writer. A database that keeps its sockets
/// open but stops answering (stalled, partitioned) is only noticed this way:
/// past it the call fails with `Unavailable` and its connection is closed,
/// never handed back to the pool mid-protocol.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Server-side `statement_timeout` and `idle_in_transaction_session_timeout`
/// of every connection (set at connect, through the `options` startup
/// parameter, before any the URL sets): they end the statements and release
/// the locks of a client that gave up, which the server cannot otherwise tell
/// from a slow one. Longer than [`DEADLINE`], so that the client's deadline
/// answers first.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);

/// Key of the advisory lock that serializes migrations of nodes starting together.
const MIGRATION_LOCK: i64 = 0x006d_6973_7369_7665; // "missive" in ASCII

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: Pool,
    writer: Mutex<Option<WriterHandle>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) with a pool of
    /// `pool_size` connections and applies the missing migrations; refuses a
    /// database whose schema is newer than this binary.
    pub async fn open(
        url: &str,
        pool_size: usize,
        metrics: crate::metrics::WriterMetrics,
    ) -> anyhow::Result<Self> {
        let pool = pool(url, pool_size)?;
        migrate(&pool).await?;
        let (writer, task) = WriterHandle::spawn(pool.clone(), metrics);
        Ok(PgStore {
            pool,
            writer: Mutex::new(Some(writer)),
            task: Mutex::new(Some(task)),
        })
    }

    /// A pooled connection, waited for until `deadline` at most.
    async fn client_until(&self, deadline: Instant) -> StoreResult<deadpool_postgres::Client> {
        client_until(&self.pool, deadline).await
    }

    fn writer(&self) -> StoreResult<WriterHandle> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Internal("writer lock poisoned".into()))?
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))
    }
}

/// A connection of `pool`, waited for (free slot, connect or recycle) until
/// `deadline` at most; `Unavailable` otherwise.
pub(crate) async fn client_until(
    pool: &Pool,
    deadline: Instant,
) -> StoreResult<deadpool_postgres::Client> {
    match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(client) => Ok(client?),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no PostgreSQL connection within {DEADLINE:?}"
        ))),
    }
}

/// Closes a connection whose call missed its deadline (it may be mid-protocol,
/// or its server stalled) instead of returning it to the pool, and returns
/// the error of that call.
pub(crate) fn stalled(client: deadpool_postgres::Client) -> StoreError {
    // Detached from the pool; dropping it aborts its connection task, which
    // closes the socket.
    drop(deadpool_postgres::Object::take(client));
    StoreError::Unavailable(format!("PostgreSQL did not answer within {DEADLINE:?}"))
}

/// Runs `$body` (an expression that may use `$client`, a pooled connection)
/// within [`DEADLINE`], taking the connection included; past it the call is
/// `Unavailable` and the connection is closed (see [`stalled`]).
macro_rules! bounded {
    ($store:expr, |$client:ident| $body:expr) => {{
        let deadline = Instant::now() + DEADLINE;
        #[allow(unused_mut)]
        let mut $client = $store.client_until(deadline).await?;
        let outcome: Result<StoreResult<_>, _> =
            tokio::time::timeout_at(deadline, async { $body }).await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(stalled($client)),
        }
    }};
}

/// A pool of `pool_size` connections to `url` (none is opened yet).
fn pool(url: &str, pool_size: usize) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?;
    let server_ms = SERVER_TIMEOUT.as_millis();
    let options = format!(
        "-c statement_timeout={server_ms} -c idle_in_transaction_session_timeout={server_ms}"
    );
    // The URL's own options come after ours, so that they win.
    let options = match config.get_options() {
        Some(own) if !own.trim().is_empty() => format!("{options} {own}"),
        _ => options,
    };
    config
        .options(options)
        .connect_timeout(WAIT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        // A query sent into a silent network (no reset, no answer) fails
        // after this instead of hanging: the store is then Unavailable.
        .tcp_user_timeout(Duration::from_secs(15))
        .application_name("missive");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(pool_size.max(2))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .recycle_timeout(Some(WAIT))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the PostgreSQL pool: {e}"))
}

/// The schema version of the database at `url` against [`MIGRATIONS`]
/// (`missive migrate --check`); applies nothing.
pub async fn schema_status(url: &str) -> anyhow::Result<SchemaStatus> {
    let pool = pool(url, 2)?;
    let client = pool
        .get()
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot connect to PostgreSQL"))?;
    let table: Option<String> = client
        .query_one("SELECT to_regclass('schema_migrations')::text", &[])
        .await?
        .try_get(0)?;
    let applied: i32 = match table {
        None => 0,
        Some(_) => client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?,
    };
    Ok(SchemaStatus {
        applied: i64::from(applied),
        known: MIGRATIONS.len() as i64,
    })
}

/// `missive migrate`: applies the pending migrations of the database at
/// `url` and returns the schema status before and after.
pub async fn migrate_url(url: &str) -> anyhow::Result<(SchemaStatus, SchemaStatus)> {
    let before = schema_status(url).await?;
    let pool = pool(url, 2)?;
    migrate(&pool).await?;
    pool.close();
    Ok((before, schema_status(url).await?))
}

async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .await
        // The whole chain (down to "connection refused"); `store::open`
        // names the redacted URL and scrubs the text.
        .map_err(|e| anyhow::Error::new(e).context("cannot connect to PostgreSQL"))?;
    let tx = client.transaction().await?;
    // A migration may run (or wait for another node's) longer than the
    // server-side timeouts of ordinary statements.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    // Nodes starting at once take turns; the second finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     integer PRIMARY KEY,
             applied_at  bigint NOT NULL
         )",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        anyhow::bail!(
            "the database schema is at version {applied} but this build knows only {known}: \
             refusing to start (run a newer missive)"
        );
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(script)
            .await
            .map_err(|e| anyhow::anyhow!("migration {version} failed: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &crate::domain::now_ms()],
        )
        .await?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}

/// True when `e` violates the unique index `constraint`.
fn is_unique_violation(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// A foreign key naming a missing user is the domain's `UserNotFound`.
fn foreign_key_is_user(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::FOREIGN_KEY_VIOLATION => StoreError::UserNotFound,
        _ => e.into(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No SQLSTATE: the connection broke, timed out, or never opened.
            return StoreError::Unavailable(e.to_string());
        };
        let code = db.code().code();
        // 08: connection exception; 40: rollback (deadlock, serialization);
        // 53: insufficient resources; 57: operator intervention (shutdown);
        // 58: system error (I/O).
        if ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class))
        {
            StoreError::Unavailable(format!("{code}: {}", db.message()))
        } else {
            StoreError::Internal(format!("{code}: {}", db.message()))
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        bounded!(self, |client| client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(StoreError::from))
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        bounded!(self, |client| sql::insert_user(&mut client, &new).await)
    }

    async fn user_by_phone(&self, phone: &PhoneNumber) -> StoreResult<Option<User>> {
        bounded!(self, |client| sql::user_by_phone(&client, phone.as_str())
            .await)
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        bounded!(self, |client| sql::user_by_id(&client, id).await)
    }

    async fn session_by_token(&self, token_hash: &str) -> StoreResult<Option<TokenSession>> {
        bounded!(self, |client| sql::session_by_token(&client, token_hash)
            .await)
    }

    async fn add_token(
        &self,
        user: Uuid,
        token_hash: String,
        user_agent: Option<String>,
    ) -> StoreResult<()> {
        bounded!(self, |client| sql::add_token(
            &client,
            user,
            &token_hash,
            user_agent.as_deref(),
        )
        .await)
    }

    async fn touch_token(&self, token_hash: &str, at: i64) -> StoreResult<()> {
        bounded!(self, |client| sql::touch_token(&client, token_hash, at)
            .await)
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        bounded!(self, |client| sql::revoke_token(&client, token_hash).await)
    }

    async fn list_sessions(&self, user: Uuid, used_since: i64) -> StoreResult<Vec<SessionRecord>> {
        bounded!(self, |client| sql::list_sessions(&client, user, used_since)
            .await)
    }

    async fn revoke_session(
        &self,
        user: Uuid,
        id: Uuid,
        used_since: i64,
    ) -> StoreResult<Option<String>> {
        bounded!(self, |client| sql::revoke_session(
            &client, user, id, used_since
        )
        .await)
    }

    async fn prune_tokens(&self, unused_since: i64) -> StoreResult<u64> {
        bounded!(self, |client| sql::prune_tokens(&client, unused_since)
            .await)
    }

    async fn prune_login_codes(&self, now: i64) -> StoreResult<u64> {
        bounded!(self, |client| sql::prune_login_codes(&client, now).await)
    }

    async fn put_login_code(&self, code: LoginCode) -> StoreResult<()> {
        bounded!(self, |client| sql::put_login_code(&client, &code).await)
    }

    async fn redeem_login_code(&self, attempt: CodeAttempt) -> StoreResult<Redeemed> {
        bounded!(self, |client| sql::redeem_login_code(&mut client, &attempt)
            .await)
    }

    async fn create_chat(
        &self,
        participants: Vec<Uuid>,
        viewer: Option<Uuid>,
    ) -> StoreResult<(ChatView, bool)> {
        bounded!(self, |client| {
            let (id, created) = sql::ensure_chat(&mut client, &participants).await?;
            Ok((sql::chat_view(&client, id, viewer).await?, created))
        })
    }

    async fn chat(&self, chat_id: Uuid, viewer: Option<Uuid>) -> StoreResult<ChatView> {
        bounded!(self, |client| sql::chat_view(&client, chat_id, viewer)
            .await)
    }

    async fn list_chats(&self, user: Uuid, query: ChatQuery) -> StoreResult<Page<Chat>> {
        bounded!(self, |client| sql::list_chats(&client, user, query).await)
    }

    async fn queue_message(&self, new: NewMessage) -> StoreResult<Committing<Sent>> {
        self.writer()?.submit(new).await
    }

    async fn list_messages(
        &self,
        chat_id: Uuid,
        viewer: Option<Uuid>,
        query: MessageQuery,
    ) -> StoreResult<(Page<Message>, Option<Receipt>)> {
        // One deadline for the read and the delivered mark.
        let deadline = Instant::now() + DEADLINE;
        let mut client = self.client_until(deadline).await?;
        let read = tokio::time::timeout_at(
            deadline,
            sql::list_messages(&client, chat_id, viewer, query),
        )
        .await;
        let (mut page, members) = match read {
            Ok(read) => read?,
            Err(_) => return Err(stalled(client)),
        };
        // A recipient reading the page has received it: move their delivered watermark.
        let Some(viewer) = viewer else {
            return Ok((page, None));
        };
        let Some(newest) = chat::newest_undelivered(&page.items, &members, viewer) else {
            return Ok((page, None));
        };
        let marked = tokio::time::timeout_at(deadline, async {
            let receipt = sql::mark_status(
                &mut client,
                chat_id,
                viewer,
                newest,
                MessageStatus::Delivered,
            )
            .await?;
            Ok::<_, StoreError>((receipt, sql::members(&client, chat_id).await?))
        })
        .await;
        let failure = match marked {
            Ok(Ok((receipt, members))) => {
                chat::refresh_statuses(&mut page.items, &members);
                return Ok((page, Some(receipt)));
            }
            Ok(Err(StoreError::Unavailable(e))) => e,
            Ok(Err(other)) => return Err(other),
            Err(_) => stalled(client).to_string(),
        };
        // The read succeeded: answer it, with the statuses as stored. The
        // next listing (or receipt) that commits moves the watermark.
        tracing::warn!(error = %failure, "listed messages, but could not mark them delivered");
        Ok((page, None))
    }

    async fn mark_status(
        &self,
        chat_id: Uuid,
        user: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> StoreResult<Receipt> {
        bounded!(self, |client| sql::mark_status(
            &mut client,
            chat_id,
            user,
            message_id,
            status
        )
        .await)
    }

    async fn event_cursor(&self, user: Uuid) -> StoreResult<i64> {
        bounded!(self, |client| sql::event_cursor(&client, user).await)
    }

    async fn events_since(
        &self,
        user: Uuid,
        cursor: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Event)>> {
        bounded!(self, |client| sql::events_since(
            &client, user, cursor, limit
        )
        .await)
    }

    async fn event_log(&self, user: Uuid) -> StoreResult<EventLog> {
        bounded!(self, |client| sql::event_log(&client, user).await)
    }

    async fn prune_events(&self, cutoff_ms: i64, limit: u32) -> StoreResult<u64> {
        bounded!(self, |client| sql::prune_events(
            &mut client,
            cutoff_ms,
            limit
        )
        .await)
    }

    async fn claim_pushes(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<PendingPush>> {
        // SKIP LOCKED: dispatchers of several nodes claiming at once each
        // take other rows instead of waiting for (and re-sending) the same.
        let rows = bounded!(self, |client| sql::query(
            &client,
            "UPDATE push_outbox p SET attempts = p.attempts + 1, next_attempt_at = $1
             FROM (SELECT id FROM push_outbox WHERE next_attempt_at <= $2
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
             WHERE p.id = due.id
             RETURNING p.id, p.user_id, p.chat_id, p.message_id, p.sender, p.preview, p.attempts",
            &[&lease_until, &now, &i64::from(limit)],
        )
        .await
        .map_err(StoreError::from))?;
        rows.iter()
            .map(|row| {
                Ok(PendingPush {
                    id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    chat_id: row.try_get(2)?,
                    message_id: row.try_get(3)?,
                    sender: row.try_get(4)?,
                    preview: row.try_get(5)?,
                    attempts: u32::try_from(row.try_get::<_, i32>(6)?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn next_push_due(&self) -> StoreResult<Option<i64>> {
        let row = bounded!(self, |client| sql::query_opt(
            &client,
            "SELECT MIN(next_attempt_at) FROM push_outbox",
            &[],
        )
        .await
        .map_err(StoreError::from))?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn remove_push(&self, id: i64) -> StoreResult<()> {
        bounded!(self, |client| sql::execute(
            &client,
            "DELETE FROM push_outbox WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(StoreError::from))?;
        Ok(())
    }

    async fn reschedule_push(&self, id: i64, at: i64) -> StoreResult<()> {
        bounded!(self, |client| sql::execute(
            &client,
            "UPDATE push_outbox SET next_attempt_at = $1 WHERE id = $2",
            &[&at, &id],
        )
        .await
        .map_err(StoreError::from))?;
        Ok(())
    }

    async fn close(&self) {
        // Dropping the last handle lets the writer store what it holds and stop.
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use deadpool_postgres::TimeoutType;

    use super::*;

    #[test]
    fn pool_timeouts_and_a_closed_pool_are_unavailable() {
        for e in [
            PoolError::Timeout(TimeoutType::Wait),
            PoolError::Timeout(TimeoutType::Create),
            PoolError::Closed,
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_refuses_to_open() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let opened = PgStore::open(
            "postgres://postgres@127.0.0.1:1/postgres",
            2,
            Default::default(),
        )
        .await;
        assert!(opened.is_err());
        assert!(
            PgStore::open("postgres://[bad", 2, Default::default())
                .await
                .is_err()
        );
    }
}
