//! What the single writer keeps in memory so that a send is a few inserts and
//! no read-modify-write queries: per-user event counters, per-chat message
//! counters and members, the 1:1 chat of each pair, and the global activity
//! counter.
//!
//! # Why it is safe
//!
//! - **Only the writer thread touches it,** inside the batch's transaction,
//!   so event numbers are still handed out in commit order.
//! - **The rows stay the truth.** Entries are loaded from the database on
//!   first use. A user's event counter needs no write of its own: it is the
//!   larger of `users.event_seq` and the newest number in the user's log
//!   ([`EVENT_CURSOR`]), and the log rows are written by the batch itself
//!   (pruning raises the row, so a number survives its event). Chat counters
//!   are written back once per batch, just before `COMMIT` ([`Cache::flush`]),
//!   in the same transaction. A batch that fails is rolled back and the whole
//!   cache is dropped ([`Cache::clear`]), so nothing of a rolled-back batch
//!   survives in memory.
//! - **Another writer invalidates it.** At the start of every batch the
//!   writer reads `PRAGMA data_version`, which changes when *another*
//!   connection committed (a second process or node on the same file); the
//!   cache is then dropped and reloaded lazily.
//! - **It is bounded:** past [`MAX_ENTRIES`] entries it is dropped at the
//!   start of a batch and refilled by use.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::sql::{EVENT_CURSOR, IdText, id_text};
use crate::store::{StoreError, StoreResult};

/// Entries (users + chats + pairs) kept before the cache starts over.
pub const MAX_ENTRIES: usize = 500_000;

/// A chat as the writer needs it for a send.
#[derive(Debug, Clone)]
pub struct CachedChat {
    /// Participants, in position order.
    pub members: Vec<Uuid>,
    /// The highest message `seq` handed out.
    pub last_seq: i64,
    /// The chat's activity value (ordering of chat lists).
    pub activity: i64,
}

/// The writer's in-memory state (see the module docs).
#[derive(Debug, Default)]
pub struct Cache {
    event_seq: HashMap<Uuid, i64>,
    chats: HashMap<Uuid, CachedChat>,
    /// `direct_key` → chat id, for pairs known to have a 1:1 chat.
    direct: HashMap<String, Uuid>,
    activity: Option<i64>,
    dirty_chats: HashSet<Uuid>,
    data_version: Option<i64>,
}

fn uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Internal(format!("a stored id: {e}")))
}

impl Cache {
    /// Drops everything (after a rollback, or when another connection wrote).
    pub fn clear(&mut self) {
        *self = Cache::default();
    }

    /// Called after `BEGIN`: drops the cache if another connection committed
    /// since the last batch, or if it grew past [`MAX_ENTRIES`].
    pub fn begin(&mut self, conn: &Connection) -> StoreResult<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let size = self.event_seq.len() + self.chats.len() + self.direct.len();
        if self.data_version != Some(version) || size > MAX_ENTRIES {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Called before `COMMIT`: writes the chat counters advanced in this
    /// batch back to their rows, in the batch's transaction. (Event counters
    /// live in the log rows themselves; see the module docs.)
    pub fn flush(&mut self, conn: &Connection) -> StoreResult<()> {
        let mut buf: IdText = [0; 36];
        if !self.dirty_chats.is_empty() {
            let mut update =
                conn.prepare_cached("UPDATE chats SET last_seq = ?2, activity = ?3 WHERE id = ?1")?;
            for chat in self.dirty_chats.drain() {
                if let Some(cached) = self.chats.get(&chat) {
                    let chat = id_text(&chat, &mut buf);
                    update.execute(params![chat, cached.last_seq, cached.activity])?;
                }
            }
        }
        Ok(())
    }

    /// The next number of `user`'s event log (its row in the log, written by
    /// the caller in this batch, is what makes it durable).
    pub fn next_event(&mut self, conn: &Connection, user: Uuid) -> StoreResult<i64> {
        let seq = match self.event_seq.get(&user) {
            Some(seq) => *seq,
            None => conn
                .prepare_cached(EVENT_CURSOR)?
                .query_row(params![user.to_string(), user.as_bytes()], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                // Members reference users: a missing one is a broken database,
                // and an internal error rolls the batch back.
                .ok_or_else(|| StoreError::Internal(format!("an event for missing user {user}")))?,
        } + 1;
        self.event_seq.insert(user, seq);
        Ok(seq)
    }

    /// The next value of the global activity counter.
    pub fn next_activity(&mut self, conn: &Connection) -> StoreResult<i64> {
        let current = match self.activity {
            Some(activity) => activity,
            None => conn
                .prepare_cached("SELECT COALESCE(MAX(activity), 0) FROM chats")?
                .query_row([], |r| r.get(0))?,
        };
        self.activity = Some(current + 1);
        Ok(current + 1)
    }

    /// The chat `id`, loaded on first use; `None` when it does not exist.
    pub fn chat(&mut self, conn: &Connection, id: Uuid) -> StoreResult<Option<&CachedChat>> {
        if let Entry::Vacant(slot) = self.chats.entry(id) {
            let row: Option<(i64, i64)> = conn
                .prepare_cached("SELECT last_seq, activity FROM chats WHERE id = ?1")?
                .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((last_seq, activity)) = row else {
                return Ok(None);
            };
            let mut members = Vec::new();
            let mut select = conn.prepare_cached(
                "SELECT user_id FROM chat_members WHERE chat_id = ?1 ORDER BY position",
            )?;
            let mut rows = select.query([id.to_string()])?;
            while let Some(row) = rows.next()? {
                members.push(uuid(&row.get::<_, String>(0)?)?);
            }
            slot.insert(CachedChat {
                members,
                last_seq,
                activity,
            });
        }
        Ok(self.chats.get(&id))
    }

    /// Hands out the next message `seq` of `chat` (loaded already) and a new
    /// activity value; both are flushed with the batch.
    pub fn next_message(&mut self, conn: &Connection, chat: Uuid) -> StoreResult<i64> {
        let activity = self.next_activity(conn)?;
        let cached = self
            .chats
            .get_mut(&chat)
            .ok_or_else(|| StoreError::Internal("a send to a chat not loaded".into()))?;
        cached.last_seq += 1;
        cached.activity = activity;
        self.dirty_chats.insert(chat);
        Ok(cached.last_seq)
    }

    /// The 1:1 chat of the pair with `key`, if it exists.
    pub fn direct(&mut self, conn: &Connection, key: &str) -> StoreResult<Option<Uuid>> {
        if let Some(id) = self.direct.get(key) {
            return Ok(Some(*id));
        }
        let found: Option<String> = conn
            .prepare_cached("SELECT id FROM chats WHERE direct_key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        let Some(found) = found else {
            return Ok(None);
        };
        let id = uuid(&found)?;
        self.direct.insert(key.to_owned(), id);
        Ok(Some(id))
    }

    /// Records a chat just inserted (its row holds these values already).
    pub fn created_chat(
        &mut self,
        id: Uuid,
        members: &[Uuid],
        direct: Option<&str>,
        activity: i64,
    ) {
        self.chats.insert(
            id,
            CachedChat {
                members: members.to_vec(),
                last_seq: 0,
                activity,
            },
        );
        if let Some(key) = direct {
            self.direct.insert(key.to_owned(), id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch(
            "CREATE TABLE users (id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE events (user_id BLOB, seq INTEGER, PRIMARY KEY (user_id, seq));
             CREATE TABLE chats (id TEXT PRIMARY KEY, direct_key TEXT UNIQUE,
                                 last_seq INTEGER NOT NULL DEFAULT 0, activity INTEGER NOT NULL);
             CREATE TABLE chat_members (chat_id TEXT, user_id TEXT, position INTEGER);",
        )
        .expect("schema");
        conn
    }

    #[test]
    fn event_numbers_continue_from_the_row_or_the_log_whichever_is_further() {
        let conn = database();
        let user = Uuid::now_v7();
        conn.execute(
            "INSERT INTO users (id, event_seq) VALUES (?1, 41)",
            [user.to_string()],
        )
        .expect("insert");
        let mut cache = Cache::default();
        cache.begin(&conn).expect("begin");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 42, "the row");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 43);
        cache.flush(&conn).expect("flush");
        let stored: i64 = conn
            .query_row("SELECT event_seq FROM users", [], |r| r.get(0))
            .expect("row");
        assert_eq!(stored, 41, "the row is not rewritten for every batch");

        // The log went further than the row (its rows were committed).
        for seq in [42, 43, 44] {
            conn.execute(
                "INSERT INTO events (user_id, seq) VALUES (?1, ?2)",
                params![user.as_bytes(), seq],
            )
            .expect("an event");
        }
        let mut fresh = Cache::default();
        fresh.begin(&conn).expect("begin");
        assert_eq!(fresh.next_event(&conn, user).expect("next"), 45, "the log");
    }

    #[test]
    fn a_cleared_cache_forgets_what_a_rolled_back_batch_handed_out() {
        let conn = database();
        let user = Uuid::now_v7();
        conn.execute("INSERT INTO users (id) VALUES (?1)", [user.to_string()])
            .expect("insert");
        let mut cache = Cache::default();
        cache.begin(&conn).expect("begin");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 1);
        cache.clear(); // the batch failed: its row update never happened
        cache.begin(&conn).expect("begin");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 1);
    }

    #[test]
    fn a_commit_by_another_connection_drops_the_cache() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(
            "CREATE TABLE users (id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE events (user_id BLOB, seq INTEGER, PRIMARY KEY (user_id, seq));",
        )
        .expect("schema");
        let user = Uuid::now_v7();
        conn.execute("INSERT INTO users (id) VALUES (?1)", [user.to_string()])
            .expect("insert");
        let mut cache = Cache::default();
        cache.begin(&conn).expect("begin");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 1);
        cache.flush(&conn).expect("flush");

        let other = Connection::open(&path).expect("a second writer");
        other
            .execute("UPDATE users SET event_seq = 10", [])
            .expect("the other writer commits");

        cache.begin(&conn).expect("begin");
        assert_eq!(cache.next_event(&conn, user).expect("next"), 11);
    }

    #[test]
    fn unknown_users_and_chats_are_reported_not_invented() {
        let conn = database();
        let mut cache = Cache::default();
        assert!(matches!(
            cache.next_event(&conn, Uuid::now_v7()),
            Err(StoreError::Internal(_))
        ));
        assert!(cache.chat(&conn, Uuid::now_v7()).expect("query").is_none());
    }
}
