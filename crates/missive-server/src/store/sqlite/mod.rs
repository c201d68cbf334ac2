//! The embedded SQLite store: WAL mode, `synchronous=FULL`, one writer
//! thread with group commit ([`writer`]) and a small pool of read connections.
//! An in-memory database (`sqlite::memory:`) has a single connection, so its
//! reads go through the writer too.

mod cache;
mod checkpoint;
mod health;
pub mod schema;
mod sql;
mod wal_vfs;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use missive_protocol::{Chat, Message, MessageStatus, User};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;
use uuid::Uuid;

use self::writer::WriterHandle;
use super::{
    ChatQuery, ChatView, CodeAttempt, Committing, EventLog, LoginCode, MessageQuery, NewMessage,
    NewUser, Page, PendingPush, Receipt, Redeemed, SchemaStatus, Sent, SessionRecord, Store,
    StoreError, StoreResult, TokenSession,
};
use crate::domain::event::Event;
use crate::domain::{PhoneNumber, chat};

/// Read connections of a file database.
const READERS: usize = 4;

/// Page size of a database file this build creates. A commit writes every
/// page it dirtied to the WAL and syncs them, and a send dirties a few pages
/// that other sends of its batch do not share (its chat's index tail, each
/// member's event log tail), so the commit's cost follows the page size:
/// 2 KiB pages carried about 30 % more HTTP sends per second than SQLite's
/// default 4 KiB (`docs/benchmarks.md`). A file created with another page
/// size keeps it.
pub(crate) const PAGE_SIZE: u32 = 2048;

/// Page cache of the writer's connection, in KiB. SQLite ends every commit
/// with a truncation pass over this cache (`pager_end_transaction` →
/// `pcache1TruncateUnsafe`), which under load walked its whole hash table,
/// so it costs more the bigger the cache: 7.7 % of the writer's CPU with
/// 64 MiB under HTTP load, 1.7 % with 8 MiB (`perf`, `docs/benchmarks.md`).
/// What the writer misses is read from the operating system's cache of the
/// file.
const WRITER_CACHE_KIB: u32 = 16384;

/// Page cache of each read connection, in KiB. Reads that miss it are served
/// from the operating system's cache of the file; four readers with 16 MiB
/// each held about 1.4 KiB per connection of duplicated token pages after
/// 15,000 WebSocket logins.
const READER_CACHE_KIB: u32 = 4096;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file (created with its directory when missing).
    File(PathBuf),
    /// A private in-memory database, gone at exit.
    Memory,
}

impl Location {
    /// Parses `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or `sqlite::memory:`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("sqlite:")
            .ok_or_else(|| anyhow::anyhow!("not an sqlite URL: {url:?}"))?;
        let rest = rest.split('?').next().unwrap_or_default();
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok(Location::Memory);
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            anyhow::bail!("sqlite URL {url:?} names no file");
        }
        Ok(Location::File(PathBuf::from(path)))
    }
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: Mutex<Option<WriterHandle>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    readers: Option<ReaderPool>,
    health: Arc<health::Health>,
}

pub use crate::config::StartupCheck;

impl SqliteStore {
    /// Opens (creating when missing), checks and migrates the database; the
    /// writer of a file goes through the WAL layer when `wal_batching`
    /// (`open_file`).
    pub async fn open(
        location: Location,
        check: StartupCheck,
        wal_batching: bool,
        metrics: crate::metrics::WriterMetrics,
    ) -> anyhow::Result<Self> {
        let dir = match &location {
            Location::Memory => None,
            Location::File(path) => Some(match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            }),
        };
        let label = match &location {
            Location::Memory => ":memory:".to_owned(),
            Location::File(path) => path.display().to_string(),
        };
        let (conn, readers) = match &location {
            Location::Memory => (Connection::open_in_memory()?, None),
            Location::File(path) => {
                let conn = open_file(path, wal_batching)?;
                (conn, Some(path.clone()))
            }
        };
        let prepare = || -> anyhow::Result<()> {
            configure_writer(&conn)?;
            if check == StartupCheck::Quick {
                quick_check(&conn)?;
            }
            schema::migrate(&conn)
        };
        prepare().map_err(|e| anyhow::anyhow!("database {label}: {e}"))?;
        let (readers, checkpointer) = match readers {
            Some(path) => (
                Some(ReaderPool::open(&path, READERS)?),
                Some(checkpoint::Checkpointer::spawn(&path)?),
            ),
            None => (None, None),
        };
        let (writer, thread) = WriterHandle::spawn(conn, metrics)?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(writer)),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(checkpointer),
            readers,
            health: Arc::new(health::Health::new(label, dir)),
        })
    }

    fn writer(&self) -> StoreResult<WriterHandle> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Internal("writer lock poisoned".into()))?
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))
    }

    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut cache::Cache) -> StoreResult<T> + Send + 'static,
    {
        self.health.observe_write(self.writer()?.write(work).await)
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        match &self.readers {
            Some(pool) => self.health.observe(pool.run(work).await),
            None => self.write(move |conn, _| work(conn)).await,
        }
    }
}

/// Opens the file at `path` for writing, creating it and its directory when
/// missing: through the layer that writes a commit's WAL frames in one call
/// (`wal_vfs`) when `wal_batching`, else through SQLite's default VFS
/// alone (the layer is then not even registered). The layer changes only
/// how the writes reach the kernel, never the bytes or where they go, so a
/// file written one way opens the other way.
pub(crate) fn open_file(path: &Path, wal_batching: bool) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the database directory {}: {e}",
                dir.display()
            )
        })?;
    }
    // `configure_writer` sets the `synchronous=FULL` the layer needs.
    let opened = if wal_batching {
        Connection::open_with_flags_and_vfs(path, OpenFlags::default(), wal_vfs::name()?)
    } else {
        Connection::open_with_flags(path, OpenFlags::default())
    };
    opened.map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))
}

/// `missive migrate` on a file: applies the pending migrations (creating
/// the file when missing) and returns the schema status before and after;
/// `wal_batching` as for `open_file`.
pub fn migrate_file(
    path: &Path,
    wal_batching: bool,
) -> anyhow::Result<(SchemaStatus, SchemaStatus)> {
    let conn = open_file(path, wal_batching)?;
    let run = || -> anyhow::Result<(SchemaStatus, SchemaStatus)> {
        configure_writer(&conn)?;
        let before = schema::status(&conn)?;
        schema::migrate(&conn)?;
        Ok((before, schema::status(&conn)?))
    };
    run().map_err(|e| anyhow::anyhow!("database {}: {e}", path.display()))
}

/// The writer's settings: WAL, `synchronous=FULL`, foreign keys, timeouts;
/// [`PAGE_SIZE`] when the file is new.
pub(crate) fn configure_writer(conn: &Connection) -> anyhow::Result<()> {
    // Before anything writes the file; a no-op on an existing database.
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))?;
    // journal_mode answers with a row, so it is queried rather than executed.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    tracing::debug!(journal_mode = %mode, "sqlite opened");
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -{WRITER_CACHE_KIB};
         PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 10000;"
    ))?;
    // Every statement of the writer's jobs stays prepared (rusqlite keeps 16
    // by default; the writer uses about 30).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Refuses a damaged file before serving from it.
fn quick_check(conn: &Connection) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut stmt = conn.prepare("PRAGMA quick_check(10)")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        anyhow::bail!(
            "the file is corrupt (PRAGMA quick_check: {}); restore it from a backup",
            problems.join("; ")
        );
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "quick_check passed"
    );
    Ok(())
}

/// Read-only connections, used from blocking threads.
struct ReaderPool {
    conns: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReaderPool {
    fn open(path: &Path, size: usize) -> anyhow::Result<Self> {
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.execute_batch(&format!(
                "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; \
                 PRAGMA cache_size = -{READER_CACHE_KIB};"
            ))?;
            conns.push(conn);
        }
        Ok(ReaderPool {
            conns: Mutex::new(conns),
            permits: Semaphore::new(size),
        })
    }

    async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the database is closed".into()))?;
        let conn = self
            .conns
            .lock()
            .map_err(|_| StoreError::Internal("reader pool lock poisoned".into()))?
            .pop()
            .ok_or_else(|| StoreError::Internal("reader pool is empty".into()))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&conn)))
                .unwrap_or_else(|_| Err(StoreError::Internal("a read panicked".into())));
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(conn);
        }
        result
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        if let Some(detail) = self.health.corruption() {
            return Err(StoreError::Corrupt(detail));
        }
        if let Some(recent) = self.health.recent_probe() {
            return recent.map_err(StoreError::Unavailable);
        }
        // A real write through the writer (batched with the traffic): a full
        // disk or a failing fsync shows here, where a SELECT would still answer.
        // Not through `write`: a probe that commits is judged by the health
        // (after a failure it needs room on the disk too).
        let outcome = self.health.observe(
            self.writer()?
                .write(|conn, _| {
                    conn.prepare_cached("UPDATE health SET checked_at = ?1 WHERE id = 1")?
                        .execute([crate::domain::now_ms()])?;
                    Ok(())
                })
                .await,
        );
        self.health.judge_probe(outcome)
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.write(move |conn, _| sql::insert_user(conn, &new))
            .await
    }

    async fn user_by_phone(&self, phone: &PhoneNumber) -> StoreResult<Option<User>> {
        let phone = phone.as_str().to_owned();
        self.read(move |conn| sql::user_where(conn, "phone_number", &phone))
            .await
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.read(move |conn| sql::user_where(conn, "id", &id.to_string()))
            .await
    }

    async fn session_by_token(&self, token_hash: &str) -> StoreResult<Option<TokenSession>> {
        let hash = token_hash.to_owned();
        self.read(move |conn| sql::session_by_token(conn, &hash))
            .await
    }

    async fn add_token(
        &self,
        user: Uuid,
        token_hash: String,
        user_agent: Option<String>,
    ) -> StoreResult<()> {
        self.write(move |conn, _| sql::add_token(conn, user, &token_hash, user_agent.as_deref()))
            .await
    }

    async fn touch_token(&self, token_hash: &str, at: i64) -> StoreResult<()> {
        // Through the writer: touches share the batches (and fsyncs) of the traffic.
        let hash = token_hash.to_owned();
        self.write(move |conn, _| sql::touch_token(conn, &hash, at))
            .await
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        let hash = token_hash.to_owned();
        self.write(move |conn, _| sql::revoke_token(conn, &hash))
            .await
    }

    async fn list_sessions(&self, user: Uuid, used_since: i64) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |conn| sql::list_sessions(conn, user, used_since))
            .await
    }

    async fn revoke_session(
        &self,
        user: Uuid,
        id: Uuid,
        used_since: i64,
    ) -> StoreResult<Option<String>> {
        self.write(move |conn, _| sql::revoke_session(conn, user, id, used_since))
            .await
    }

    async fn prune_tokens(&self, unused_since: i64) -> StoreResult<u64> {
        self.write(move |conn, _| sql::prune_tokens(conn, unused_since))
            .await
    }

    async fn prune_login_codes(&self, now: i64) -> StoreResult<u64> {
        self.write(move |conn, _| sql::prune_login_codes(conn, now))
            .await
    }

    async fn put_login_code(&self, code: LoginCode) -> StoreResult<()> {
        self.write(move |conn, _| sql::put_login_code(conn, &code))
            .await
    }

    async fn redeem_login_code(&self, attempt: CodeAttempt) -> StoreResult<Redeemed> {
        self.write(move |conn, _| sql::redeem_login_code(conn, &attempt))
            .await
    }

    async fn create_chat(
        &self,
        participants: Vec<Uuid>,
        viewer: Option<Uuid>,
    ) -> StoreResult<(ChatView, bool)> {
        self.write(move |conn, cache| sql::create_chat(conn, cache, &participants, viewer))
            .await
    }

    async fn chat(&self, chat_id: Uuid, viewer: Option<Uuid>) -> StoreResult<ChatView> {
        self.read(move |conn| sql::chat_view(conn, chat_id, viewer))
            .await
    }

    async fn list_chats(&self, user: Uuid, query: ChatQuery) -> StoreResult<Page<Chat>> {
        self.read(move |conn| sql::list_chats(conn, user, query))
            .await
    }

    async fn queue_message(&self, new: NewMessage) -> StoreResult<Committing<Sent>> {
        let committed = self
            .writer()?
            .submit(move |conn, cache| sql::send_message(conn, cache, &new))
            .await?;
        let health = self.health.clone();
        Ok(Box::pin(
            async move { health.observe_write(committed.await) },
        ))
    }

    async fn list_messages(
        &self,
        chat_id: Uuid,
        viewer: Option<Uuid>,
        query: MessageQuery,
    ) -> StoreResult<(Page<Message>, Option<Receipt>)> {
        let (mut page, members) = self
            .read(move |conn| sql::list_messages(conn, chat_id, viewer, query))
            .await?;
        // A recipient reading the page has received it: move their delivered watermark.
        let Some(viewer) = viewer else {
            return Ok((page, None));
        };
        let Some(newest) = chat::newest_undelivered(&page.items, &members, viewer) else {
            return Ok((page, None));
        };
        let marked = self
            .write(move |conn, cache| {
                sql::mark_status(
                    conn,
                    cache,
                    chat_id,
                    viewer,
                    newest,
                    MessageStatus::Delivered,
                )
            })
            .await;
        let receipt = match marked {
            Ok(receipt) => receipt,
            // The read succeeded: answer it, with the statuses as stored
            // (a full disk, say). The next listing (or receipt) that
            // commits moves the watermark.
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "listed messages, but could not mark them delivered");
                return Ok((page, None));
            }
            Err(e) => return Err(e),
        };
        let members = self.read(move |conn| sql::members(conn, chat_id)).await?;
        chat::refresh_statuses(&mut page.items, &members);
        Ok((page, Some(receipt)))
    }

    async fn mark_status(
        &self,
        chat_id: Uuid,
        user: Uuid,
        message_id: Uuid,
        status: MessageStatus,
    ) -> StoreResult<Receipt> {
        self.write(move |conn, cache| {
            sql::mark_status(conn, cache, chat_id, user, message_id, status)
        })
        .await
    }

    async fn event_cursor(&self, user: Uuid) -> StoreResult<i64> {
        self.read(move |conn| sql::event_cursor(conn, user)).await
    }

    async fn events_since(
        &self,
        user: Uuid,
        cursor: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Event)>> {
        self.read(move |conn| sql::events_since(conn, user, cursor, limit))
            .await
    }

    async fn event_log(&self, user: Uuid) -> StoreResult<EventLog> {
        self.read(move |conn| sql::event_log(conn, user)).await
    }

    async fn prune_events(&self, cutoff_ms: i64, limit: u32) -> StoreResult<u64> {
        // On the writer, in a batch of its own size: sends queued meanwhile
        // wait for one short step, never for the whole pruning.
        self.write(move |conn, _| sql::prune_events(conn, cutoff_ms, limit))
            .await
    }

    async fn claim_pushes(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<PendingPush>> {
        self.write(move |conn, _| sql::claim_pushes(conn, now, lease_until, limit))
            .await
    }

    async fn next_push_due(&self) -> StoreResult<Option<i64>> {
        self.read(sql::next_push_due).await
    }

    async fn remove_push(&self, id: i64) -> StoreResult<()> {
        self.write(move |conn, _| sql::remove_push(conn, id)).await
    }

    async fn reschedule_push(&self, id: i64, at: i64) -> StoreResult<()> {
        self.write(move |conn, _| sql::reschedule_push(conn, id, at))
            .await
    }

    async fn close(&self) {
        // Dropping the last handle lets the writer drain its inbox and stop.
        if let Ok(mut writer) = self.writer.lock() {
            writer.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(thread) = thread {
                let _ = thread.join();
            }
            if let Some(checkpointer) = checkpointer {
                checkpointer.stop();
            }
        })
        .await;
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_files_or_memory() {
        assert_eq!(
            Location::parse("sqlite::memory:").expect("ok"),
            Location::Memory
        );
        assert_eq!(
            Location::parse("sqlite://data/missive.db").expect("ok"),
            Location::File(PathBuf::from("data/missive.db"))
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/missive.db").expect("ok"),
            Location::File(PathBuf::from("/var/lib/missive.db"))
        );
        assert_eq!(
            Location::parse("sqlite://data/m.db?mode=rwc").expect("ok"),
            Location::File(PathBuf::from("data/m.db"))
        );
        assert!(Location::parse("sqlite://").is_err());
        assert!(Location::parse("postgres://x").is_err());
    }

    fn page_size(path: &Path) -> i64 {
        let conn = Connection::open(path).expect("open");
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page_size")
    }

    #[test]
    fn a_new_file_gets_the_small_pages_and_an_old_file_keeps_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new.db");
        migrate_file(&new, true).expect("migrate a new file");
        assert_eq!(page_size(&new), i64::from(PAGE_SIZE));

        // A file of an earlier build: SQLite's default 4 KiB pages, with data.
        let old = dir.path().join("old.db");
        Connection::open(&old)
            .expect("open")
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE earlier (x); INSERT INTO earlier VALUES (1);")
            .expect("an earlier file");
        migrate_file(&old, true).expect("migrate an old file");
        assert_eq!(page_size(&old), 4096);
        let kept: i64 = Connection::open(&old)
            .expect("open")
            .query_row("SELECT x FROM earlier", [], |r| r.get(0))
            .expect("its data");
        assert_eq!(kept, 1);
    }
}
