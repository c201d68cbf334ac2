//! The SQL of the SQLite store: plain functions over a connection, called on
//! the writer thread (inside its transaction) or on a reader.

use missive_protocol::{Chat, Message, MessageStatus, User};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::cache::Cache;
use crate::domain::chat::{Member, direct_key, refresh_statuses, status_of};
use crate::domain::event::{Event as LogEvent, EventKind, EventRow, ReceiptEvent};
use crate::domain::login::{StoredCode, Verdict, judge};
use crate::domain::{format_ms, now_ms};
use crate::store::{
    ChatQuery, ChatView, CodeAttempt, EventLog, LoginCode, MessageCursor, MessageQuery, NewMessage,
    NewUser, Page, PendingPush, PushFilter, Receipt, Redeemed, SendTarget, Sent, SessionRecord,
    StoreError, StoreResult, TokenSession,
};

const USER_COLUMNS: &str = "u.id, u.phone_number, u.display_name, u.created_at";
const MESSAGE_COLUMNS: &str =
    "m.id, m.chat_id, m.seq, u.phone_number, m.content, m.created_at, m.client_message_id";

fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// An id stored as 16 bytes (the event log's columns).
fn uuid_blob_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(index)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Room for an id in the text form the other tables store.
pub(super) type IdText = [u8; uuid::fmt::Hyphenated::LENGTH];

/// `id` as the text the tables store, written into `buf` (no allocation on
/// the writer's hot path).
pub(super) fn id_text<'a>(id: &Uuid, buf: &'a mut IdText) -> &'a str {
    id.hyphenated().encode_lower(buf)
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_at(row, 0)?,
        phone_number: row.get(1)?,
        display_name: row.get(2)?,
        created_at: format_ms(row.get(3)?),
    })
}

/// A message row; its status is filled in from the members' watermarks.
fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: uuid_at(row, 0)?,
        chat_id: uuid_at(row, 1)?,
        seq: row.get(2)?,
        sender: row.get(3)?,
        content: row.get(4)?,
        created_at: format_ms(row.get(5)?),
        client_message_id: row.get(6)?,
        status: MessageStatus::Sent,
    })
}

pub fn insert_user(conn: &Connection, new: &NewUser) -> StoreResult<User> {
    let phone = new.phone_number.as_str();
    let taken = conn
        .prepare_cached("SELECT 1 FROM users WHERE phone_number = ?1")?
        .exists([phone])?;
    if taken {
        return Err(StoreError::PhoneTaken);
    }
    let id = Uuid::now_v7();
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO users (id, phone_number, display_name, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id.to_string(), phone, new.display_name, now])?;
    insert_token(conn, id, &new.token_hash, new.user_agent.as_deref(), now)?;
    Ok(User {
        id,
        phone_number: phone.to_owned(),
        display_name: new.display_name.clone(),
        created_at: format_ms(now),
    })
}

/// A user by `id` or `phone_number` (the only two values of `column`).
pub fn user_where(
    conn: &Connection,
    column: &'static str,
    value: &str,
) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.{column} = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([value], user_from_row)
        .optional()?)
}

pub fn session_by_token(conn: &Connection, token_hash: &str) -> StoreResult<Option<TokenSession>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, t.id, t.created_at, t.last_used_at
         FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND t.revoked_at IS NULL"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([token_hash], |row| {
            Ok(TokenSession {
                user: user_from_row(row)?,
                id: uuid_at(row, 4)?,
                created_at: row.get(5)?,
                last_used_at: row.get(6)?,
            })
        })
        .optional()?)
}

pub fn add_token(
    conn: &Connection,
    user: Uuid,
    token_hash: &str,
    user_agent: Option<&str>,
) -> StoreResult<()> {
    insert_token(conn, user, token_hash, user_agent, now_ms())
}

/// A new token row: a new session, last used at its creation.
fn insert_token(
    conn: &Connection,
    user: Uuid,
    token_hash: &str,
    user_agent: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (token_hash, user_id, created_at, id, user_agent, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
    )?
    .execute(params![
        token_hash,
        user.to_string(),
        now,
        Uuid::now_v7().to_string(),
        user_agent
    ])?;
    Ok(())
}

pub fn touch_token(conn: &Connection, token_hash: &str, at: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE tokens SET last_used_at = ?2
         WHERE token_hash = ?1 AND last_used_at < ?2 AND revoked_at IS NULL",
    )?
    .execute(params![token_hash, at])?;
    Ok(())
}

pub fn list_sessions(
    conn: &Connection,
    user: Uuid,
    used_since: i64,
) -> StoreResult<Vec<SessionRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, last_used_at, user_agent FROM tokens
         WHERE user_id = ?1 AND revoked_at IS NULL AND last_used_at >= ?2
         ORDER BY last_used_at DESC, created_at DESC, id",
    )?;
    let rows = stmt.query_map(params![user.to_string(), used_since], |row| {
        Ok(SessionRecord {
            id: uuid_at(row, 0)?,
            created_at: row.get(1)?,
            last_used_at: row.get(2)?,
            user_agent: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke_session(
    conn: &Connection,
    user: Uuid,
    id: Uuid,
    used_since: i64,
) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached(
            "UPDATE tokens SET revoked_at = ?4
             WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND last_used_at >= ?3
             RETURNING token_hash",
        )?
        .query_row(
            params![id.to_string(), user.to_string(), used_since, now_ms()],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn prune_tokens(conn: &Connection, unused_since: i64) -> StoreResult<u64> {
    let revoked = conn
        .prepare_cached("DELETE FROM tokens WHERE revoked_at IS NOT NULL")?
        .execute([])?;
    let expired = conn
        .prepare_cached("DELETE FROM tokens WHERE last_used_at < ?1")?
        .execute([unused_since])?;
    Ok((revoked + expired) as u64)
}

pub fn prune_login_codes(conn: &Connection, now: i64) -> StoreResult<u64> {
    let expired = conn
        .prepare_cached("DELETE FROM login_codes WHERE expires_at < ?1")?
        .execute([now])?;
    Ok(expired as u64)
}

pub fn revoke_token(conn: &Connection, token_hash: &str) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE tokens SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![token_hash, now_ms()])?;
    Ok(changed > 0)
}

pub fn put_login_code(conn: &Connection, code: &LoginCode) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO login_codes (phone_number, user_id, code_hash, expires_at, attempts)
         VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (phone_number) DO UPDATE SET
             user_id = excluded.user_id, code_hash = excluded.code_hash,
             expires_at = excluded.expires_at, attempts = 0",
    )?
    .execute(params![
        code.phone_number,
        code.user.to_string(),
        code.code_hash,
        code.expires_at
    ])?;
    Ok(())
}

pub fn redeem_login_code(conn: &Connection, attempt: &CodeAttempt) -> StoreResult<Redeemed> {
    let row: Option<(Uuid, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT user_id, code_hash, expires_at, attempts FROM login_codes WHERE phone_number = ?1",
        )?
        .query_row([&attempt.phone_number], |r| Ok((uuid_at(r, 0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((user, code_hash, expires_at, attempts)) = row else {
        return Ok(Redeemed::Invalid);
    };
    let stored = StoredCode {
        code_hash: &code_hash,
        expires_at,
        attempts,
    };
    match judge(
        &stored,
        &attempt.code_hash,
        attempt.now,
        attempt.max_attempts,
    ) {
        Verdict::Accept => {}
        Verdict::Burned => return Ok(Redeemed::TooManyAttempts),
        Verdict::Expired => return Ok(Redeemed::Invalid),
        Verdict::Wrong => {
            conn.prepare_cached(
                "UPDATE login_codes SET attempts = attempts + 1 WHERE phone_number = ?1",
            )?
            .execute([&attempt.phone_number])?;
            return Ok(Redeemed::Invalid);
        }
    }
    conn.prepare_cached("DELETE FROM login_codes WHERE phone_number = ?1")?
        .execute([&attempt.phone_number])?;
    add_token(
        conn,
        user,
        &attempt.token_hash,
        attempt.user_agent.as_deref(),
    )?;
    // After writes, so not a domain error: a missing user here is a broken database.
    let user = user_where(conn, "id", &user.to_string())?
        .ok_or_else(|| StoreError::Internal("a login code names a missing user".into()))?;
    Ok(Redeemed::Valid(user))
}

pub fn members(conn: &Connection, chat_id: Uuid) -> StoreResult<Vec<Member>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cm.user_id, u.phone_number, cm.delivered_seq, cm.read_seq
         FROM chat_members cm JOIN users u ON u.id = cm.user_id
         WHERE cm.chat_id = ?1 ORDER BY cm.position",
    )?;
    let rows = stmt.query_map([chat_id.to_string()], |row| {
        Ok(Member {
            user_id: uuid_at(row, 0)?,
            phone: row.get(1)?,
            delivered_seq: row.get(2)?,
            read_seq: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The members of a chat, checking it exists and `viewer` (if known) is one of them.
fn members_for(conn: &Connection, chat_id: Uuid, viewer: Option<Uuid>) -> StoreResult<Vec<Member>> {
    let members = members(conn, chat_id)?;
    let visible =
        !members.is_empty() && viewer.is_none_or(|v| members.iter().any(|m| m.user_id == v));
    if visible {
        Ok(members)
    } else {
        Err(StoreError::ChatNotFound)
    }
}

pub fn chat_view(conn: &Connection, chat_id: Uuid, viewer: Option<Uuid>) -> StoreResult<ChatView> {
    let members = members_for(conn, chat_id, viewer)?;
    let created_at: i64 = conn
        .prepare_cached("SELECT created_at FROM chats WHERE id = ?1")?
        .query_row([chat_id.to_string()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::ChatNotFound)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.chat_id = ?1 ORDER BY m.seq DESC LIMIT 1"
    );
    let mut last_message = conn
        .prepare_cached(&sql)?
        .query_row([chat_id.to_string()], message_from_row)
        .optional()?;
    if let Some(message) = last_message.as_mut() {
        message.status = status_of(&members, &message.sender, message.seq);
    }
    let unread_count = match viewer.and_then(|v| members.iter().find(|m| m.user_id == v)) {
        Some(me) => conn
            .prepare_cached(
                "SELECT COUNT(*) FROM messages WHERE chat_id = ?1 AND seq > ?2 AND sender_id <> ?3",
            )?
            .query_row(
                params![chat_id.to_string(), me.read_seq, me.user_id.to_string()],
                |r| r.get(0),
            )?,
        None => 0,
    };
    Ok(ChatView {
        chat: Chat {
            id: chat_id,
            participants: members.iter().map(|m| m.phone.clone()).collect(),
            created_at: format_ms(created_at),
            last_message,
            unread_count,
        },
        member_ids: members.iter().map(|m| m.user_id).collect(),
    })
}

fn insert_chat(
    conn: &Connection,
    cache: &mut Cache,
    participants: &[Uuid],
    direct: Option<String>,
) -> StoreResult<Uuid> {
    let id = Uuid::now_v7();
    let activity = cache.next_activity(conn)?;
    conn.prepare_cached(
        "INSERT INTO chats (id, direct_key, created_at, activity) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        id.to_string(),
        direct.as_deref(),
        now_ms(),
        activity
    ])?;
    let mut add = conn.prepare_cached(
        "INSERT INTO chat_members (chat_id, user_id, position) VALUES (?1, ?2, ?3)",
    )?;
    for (position, user) in participants.iter().enumerate() {
        add.execute(params![id.to_string(), user.to_string(), position as i64])?;
    }
    cache.created_chat(id, participants, direct.as_deref(), activity);
    Ok(id)
}

pub fn create_chat(
    conn: &Connection,
    cache: &mut Cache,
    participants: &[Uuid],
    viewer: Option<Uuid>,
) -> StoreResult<(ChatView, bool)> {
    if let [a, b] = participants {
        let key = direct_key(*a, *b);
        if let Some(existing) = cache.direct(conn, &key)? {
            return Ok((chat_view(conn, existing, viewer)?, false));
        }
        let id = insert_chat(conn, cache, participants, Some(key))?;
        return Ok((chat_view(conn, id, viewer)?, true));
    }
    let id = insert_chat(conn, cache, participants, None)?;
    Ok((chat_view(conn, id, viewer)?, true))
}

pub fn list_chats(conn: &Connection, user: Uuid, query: ChatQuery) -> StoreResult<Page<Chat>> {
    let before_activity: Option<i64> = match query.before {
        None => None,
        Some(chat) => Some(
            conn.prepare_cached(
                "SELECT c.activity FROM chats c JOIN chat_members cm ON cm.chat_id = c.id
                 WHERE c.id = ?1 AND cm.user_id = ?2",
            )?
            .query_row(params![chat.to_string(), user.to_string()], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::InvalidCursor)?,
        ),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT c.id FROM chat_members cm JOIN chats c ON c.id = cm.chat_id
         WHERE cm.user_id = ?1 AND c.activity < ?2
         ORDER BY c.activity DESC LIMIT ?3 OFFSET ?4",
    )?;
    let ids = stmt
        .query_map(
            params![
                user.to_string(),
                before_activity.unwrap_or(i64::MAX),
                i64::from(query.limit) + 1,
                i64::from(query.offset)
            ],
            |row| uuid_at(row, 0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = ids.len() > query.limit as usize;
    let items = ids
        .into_iter()
        .take(query.limit as usize)
        .map(|id| chat_view(conn, id, Some(user)).map(|view| view.chat))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page { items, more })
}

fn message_seq(conn: &Connection, chat_id: Uuid, message_id: Uuid) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM messages WHERE id = ?1 AND chat_id = ?2")?
        .query_row(params![message_id.to_string(), chat_id.to_string()], |r| {
            r.get(0)
        })
        .optional()?)
}

pub fn list_messages(
    conn: &Connection,
    chat_id: Uuid,
    viewer: Option<Uuid>,
    query: MessageQuery,
) -> StoreResult<(Page<Message>, Vec<Member>)> {
    let members = members_for(conn, chat_id, viewer)?;
    let cursor_seq = |id| message_seq(conn, chat_id, id)?.ok_or(StoreError::InvalidCursor);
    let (condition, order, bound) = match query.cursor {
        MessageCursor::Newest => ("", "DESC", 0),
        MessageCursor::Before(id) => ("AND m.seq < ?4", "DESC", cursor_seq(id)?),
        MessageCursor::After(id) => ("AND m.seq > ?4", "ASC", cursor_seq(id)?),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.chat_id = ?1 AND ?4 = ?4 {condition}
         ORDER BY m.seq {order} LIMIT ?2 OFFSET ?3"
    );
    let mut items = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                chat_id.to_string(),
                i64::from(query.limit) + 1,
                i64::from(query.offset),
                bound
            ],
            message_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > query.limit as usize;
    items.truncate(query.limit as usize);
    if order == "ASC" {
        items.reverse();
    }
    refresh_statuses(&mut items, &members);
    Ok((Page { items, more }, members))
}

/// A durable event for a user's log.
struct Event<'a> {
    kind: EventKind,
    chat_id: Uuid,
    message_id: Uuid,
    status: Option<MessageStatus>,
    actor: Option<&'a str>,
    at: i64,
}

/// Rows of the event log written by one `INSERT` (a chunk of an event's
/// targets); each count has its own cached statement.
const EVENT_ROWS_PER_INSERT: usize = 8;

/// The `INSERT` of `rows` events (1..=[`EVENT_ROWS_PER_INSERT`]).
fn insert_events_sql(rows: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (1..=EVENT_ROWS_PER_INSERT)
            .map(|n| {
                let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ");
                format!(
                    "INSERT OR FAIL INTO events (user_id, seq, kind, chat_id, message_id, status, actor, created_at) \
                     VALUES {values}"
                )
            })
            .collect()
    });
    &SQL[rows - 1]
}

/// Appends `event` to the log of each of `users`, numbering it per user;
/// returns each user with their new event number. One statement per
/// [`EVENT_ROWS_PER_INSERT`] users.
fn append_events(
    conn: &Connection,
    cache: &mut Cache,
    users: &[Uuid],
    event: &Event<'_>,
) -> StoreResult<Vec<(Uuid, i64)>> {
    let Event {
        kind,
        chat_id,
        message_id,
        status,
        actor,
        at,
    } = *event;
    let kind = kind.as_str();
    let status = status.map(MessageStatus::as_str);
    let mut numbered = Vec::with_capacity(users.len());
    for chunk in users.chunks(EVENT_ROWS_PER_INSERT) {
        let mut stmt = conn.prepare_cached(insert_events_sql(chunk.len()))?;
        let first = numbered.len();
        for user in chunk {
            numbered.push((*user, cache.next_event(conn, *user)?));
        }
        let mut column = 0;
        for (user, seq) in &numbered[first..] {
            let values: [&dyn rusqlite::ToSql; 8] = [
                user.as_bytes(),
                seq,
                &kind,
                chat_id.as_bytes(),
                message_id.as_bytes(),
                &status,
                &actor,
                &at,
            ];
            for value in values {
                column += 1;
                stmt.raw_bind_parameter(column, value)?;
            }
        }
        stmt.raw_execute()?;
    }
    Ok(numbered)
}

/// The stored message of the send's `(sender, clientMessageId)`, if any,
/// with the direct key of its chat (to tell an exact repeat from a reuse).
fn existing_send(
    conn: &Connection,
    new: &NewMessage,
) -> StoreResult<Option<(Message, Option<String>)>> {
    let Some(key) = &new.client_message_id else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, c.direct_key FROM messages m
         JOIN users u ON u.id = m.sender_id JOIN chats c ON c.id = m.chat_id
         WHERE m.sender_id = ?1 AND m.client_message_id = ?2"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row(params![new.sender.id.to_string(), key.as_str()], |row| {
            Ok((message_from_row(row)?, row.get::<_, Option<String>>(7)?))
        })
        .optional()?;
    match found {
        Some((mut message, direct)) => {
            let members = members(conn, message.chat_id)?;
            message.status = status_of(&members, &message.sender, message.seq);
            Ok(Some((message, direct)))
        }
        None => Ok(None),
    }
}

pub fn send_message(conn: &Connection, cache: &mut Cache, new: &NewMessage) -> StoreResult<Sent> {
    // The key first, before the target is checked: a retry of a stored send
    // gets its original even if the chat could no longer take it.
    if let Some((message, direct)) = existing_send(conn, new)? {
        if !new.repeats(&message, direct.as_deref()) {
            // Refused before any write, so the batch needs no rollback.
            return Err(StoreError::IdempotencyConflict);
        }
        return Ok(Sent {
            message,
            targets: Vec::new(),
            duplicate: true,
            pushes: 0,
        });
    }
    let sender = new.sender.id;
    let chat_id = match new.target {
        SendTarget::Chat(id) => id,
        SendTarget::Direct(receiver) => {
            let key = direct_key(sender, receiver);
            match cache.direct(conn, &key)? {
                Some(id) => id,
                None => insert_chat(conn, cache, &[sender, receiver], Some(key))?,
            }
        }
    };
    // Membership and counters from the writer's cache: no read-modify-write.
    let members = match cache.chat(conn, chat_id)? {
        Some(chat) if chat.members.contains(&sender) => chat.members.clone(),
        _ => return Err(StoreError::ChatNotFound),
    };
    let seq = cache.next_message(conn, chat_id)?;
    let id = Uuid::now_v7();
    let now = now_ms();
    let client_message_id = new
        .client_message_id
        .as_ref()
        .map(|k| k.as_str().to_owned());
    let (mut id_buf, mut chat_buf, mut sender_buf) = ([0; 36], [0; 36], [0; 36]);
    conn.prepare_cached(
        "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at, client_message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id_text(&id, &mut id_buf),
        id_text(&chat_id, &mut chat_buf),
        seq,
        id_text(&sender, &mut sender_buf),
        new.content.as_str(),
        now,
        client_message_id
    ])?;
    let event = Event {
        kind: EventKind::Message,
        chat_id,
        message_id: id,
        status: None,
        actor: None,
        at: now,
    };
    let events = append_events(conn, cache, &members, &event)?;
    // Only with push enabled; in the message's transaction, so that an
    // acknowledged message cannot lose its push.
    let pushes = match &new.push {
        Some(filter) => queue_pushes(conn, filter, new, &members, chat_id, id, now)?,
        None => 0,
    };
    let message = Message {
        id,
        chat_id,
        seq,
        sender: new.sender.phone_number.clone(),
        content: new.content.as_str().to_owned(),
        created_at: format_ms(now),
        client_message_id,
        status: MessageStatus::Sent,
    };
    Ok(Sent {
        message,
        targets: events,
        duplicate: false,
        pushes,
    })
}

/// Writes a push outbox row for every recipient of a new message (never its
/// sender) whom `filter` wants; the number of rows.
fn queue_pushes(
    conn: &Connection,
    filter: &PushFilter,
    new: &NewMessage,
    members: &[Uuid],
    chat_id: Uuid,
    message_id: Uuid,
    now: i64,
) -> StoreResult<usize> {
    let mut count = 0;
    let preview = crate::domain::preview(new.content.as_str());
    for member in members
        .iter()
        .filter(|m| **m != new.sender.id && filter.wants(**m))
    {
        conn.prepare_cached(
            "INSERT INTO push_outbox (user_id, chat_id, message_id, sender, preview, attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
        )?
        .execute(params![
            member.to_string(),
            chat_id.to_string(),
            message_id.to_string(),
            new.sender.phone_number,
            preview,
            now
        ])?;
        count += 1;
    }
    Ok(count)
}

/// Claims up to `limit` due pushes (see [`crate::store::Store::claim_pushes`]).
pub fn claim_pushes(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> StoreResult<Vec<PendingPush>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE push_outbox SET attempts = attempts + 1, next_attempt_at = ?1
         WHERE id IN (SELECT id FROM push_outbox WHERE next_attempt_at <= ?2
                      ORDER BY next_attempt_at LIMIT ?3)
         RETURNING id, user_id, chat_id, message_id, sender, preview, attempts",
    )?;
    let rows = stmt
        .query_map(params![lease_until, now, i64::from(limit)], |row| {
            Ok(PendingPush {
                id: row.get(0)?,
                user_id: uuid_at(row, 1)?,
                chat_id: uuid_at(row, 2)?,
                message_id: uuid_at(row, 3)?,
                sender: row.get(4)?,
                preview: row.get(5)?,
                attempts: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// When the next push is due, `None` when the outbox is empty.
pub fn next_push_due(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM push_outbox")?
        .query_row([], |r| r.get(0))?)
}

/// Removes a push from the outbox.
pub fn remove_push(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM push_outbox WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Moves a push's next attempt to `at`.
pub fn reschedule_push(conn: &Connection, id: i64, at: i64) -> StoreResult<()> {
    conn.prepare_cached("UPDATE push_outbox SET next_attempt_at = ?1 WHERE id = ?2")?
        .execute([at, id])?;
    Ok(())
}

/// The SQL expression of [`EVENT_CURSOR`], over a row `u` of `users` and
/// the user's id as 16 bytes in `?2`.
macro_rules! last_event_number {
    () => {
        "MAX(u.event_seq, IFNULL((SELECT MAX(e.seq) FROM events e WHERE e.user_id = ?2), 0))"
    };
}

/// The last event number handed out to a user (`?1`: the id as text, `?2`:
/// as the log's 16 bytes): the larger of `users.event_seq` and the newest
/// number in the log. The writer does not rewrite the user's row for every
/// batch (on a large database each active user's row would be a page of its
/// own to write per commit); the row is a floor, raised by pruning and by
/// `missive restore`, so that a number is never handed out twice even after
/// its events are gone.
pub const EVENT_CURSOR: &str = concat!(
    "SELECT ",
    last_event_number!(),
    " FROM users u WHERE u.id = ?1"
);

/// The cursor of the newest event of `user`'s log.
pub fn event_cursor(conn: &Connection, user: Uuid) -> StoreResult<i64> {
    conn.prepare_cached(EVENT_CURSOR)?
        .query_row(params![user.to_string(), user.as_bytes()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::UserNotFound)
}

/// Where `user`'s log stands: its newest event and how far it was pruned.
pub fn event_log(conn: &Connection, user: Uuid) -> StoreResult<EventLog> {
    conn.prepare_cached(concat!(
        "SELECT ",
        last_event_number!(),
        ", u.events_pruned_seq FROM users u WHERE u.id = ?1"
    ))?
    .query_row(params![user.to_string(), user.as_bytes()], |r| {
        Ok(EventLog {
            cursor: r.get(0)?,
            pruned_through: r.get(1)?,
        })
    })
    .optional()?
    .ok_or(StoreError::UserNotFound)
}

/// One step of pruning (see `Store::prune_events`): the users of up to
/// `limit` of the oldest events created before `cutoff_ms`, each with the
/// newest such event, lose their log up to it. Runs on the writer, so the
/// `events_pruned_seq` it raises and the `event_seq` the cache keeps (which
/// pruning never touches) stay consistent.
pub fn prune_events(conn: &Connection, cutoff_ms: i64, limit: u32) -> StoreResult<u64> {
    let found = conn
        .prepare_cached(
            "SELECT user_id, MAX(seq) FROM
                 (SELECT user_id, seq FROM events WHERE created_at < ?1
                  ORDER BY created_at LIMIT ?2)
             GROUP BY user_id",
        )?
        .query_map(params![cutoff_ms, i64::from(limit)], |r| {
            Ok((uuid_blob_at(r, 0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0;
    let mut delete = conn.prepare_cached("DELETE FROM events WHERE user_id = ?1 AND seq <= ?2")?;
    // The row keeps the pruned numbers: they are never handed out again.
    let mut mark = conn.prepare_cached(
        "UPDATE users SET events_pruned_seq = MAX(events_pruned_seq, ?2),
                          event_seq = MAX(event_seq, ?2)
         WHERE id = ?1",
    )?;
    for (user, through) in found {
        deleted += delete.execute(params![&user.as_bytes()[..], through])? as u64;
        mark.execute(params![user.to_string(), through])?;
    }
    Ok(deleted)
}

/// Up to `limit` events of `user`'s log after `cursor`, oldest first.
pub fn events_since(
    conn: &Connection,
    user: Uuid,
    cursor: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, LogEvent)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, chat_id, message_id, status, actor, created_at FROM events
         WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    type Row = (i64, String, Uuid, Uuid, Option<String>, Option<String>, i64);
    let rows = stmt
        .query_map(
            params![&user.as_bytes()[..], cursor, i64::from(limit)],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    uuid_blob_at(row, 2)?,
                    uuid_blob_at(row, 3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            },
        )?
        .collect::<Result<Vec<Row>, _>>()?;
    let mut events = Vec::with_capacity(rows.len());
    for (seq, kind, chat_id, message_id, status, actor, at) in rows {
        let row = EventRow {
            kind: &kind,
            chat_id,
            message_id,
            status: status.as_deref(),
            actor: actor.as_deref(),
            at,
        };
        let event = LogEvent::from_row(row, |id| message_by_id(conn, id))?;
        events.push((seq, event));
    }
    Ok(events)
}

/// A message with its current status.
fn message_by_id(conn: &Connection, id: Uuid) -> StoreResult<Message> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.id = ?1"
    );
    let mut message = conn
        .prepare_cached(&sql)?
        .query_row([id.to_string()], message_from_row)
        .optional()?
        .ok_or(StoreError::MessageNotFound)?;
    let members = members(conn, message.chat_id)?;
    message.status = status_of(&members, &message.sender, message.seq);
    Ok(message)
}

pub fn mark_status(
    conn: &Connection,
    cache: &mut Cache,
    chat_id: Uuid,
    user: Uuid,
    message_id: Uuid,
    status: MessageStatus,
) -> StoreResult<Receipt> {
    let members = members_for(conn, chat_id, Some(user))?;
    let me = members
        .iter()
        .find(|m| m.user_id == user)
        .ok_or(StoreError::ChatNotFound)?;
    let seq = message_seq(conn, chat_id, message_id)?.ok_or(StoreError::MessageNotFound)?;
    let delivered = me.delivered_seq.max(seq);
    let read = if status == MessageStatus::Read {
        me.read_seq.max(seq)
    } else {
        me.read_seq
    };
    let now = now_ms();
    let moved = if read > me.read_seq {
        Some(MessageStatus::Read)
    } else if delivered > me.delivered_seq {
        Some(MessageStatus::Delivered)
    } else {
        None
    };
    let events = if let Some(moved) = moved {
        conn.prepare_cached(
            "UPDATE chat_members SET delivered_seq = ?3, read_seq = ?4 WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .execute(params![chat_id.to_string(), user.to_string(), delivered, read])?;
        let event = Event {
            kind: EventKind::Receipt,
            chat_id,
            message_id,
            status: Some(moved),
            actor: Some(&me.phone),
            at: now,
        };
        let others: Vec<Uuid> = members
            .iter()
            .filter(|m| m.user_id != user)
            .map(|m| m.user_id)
            .collect();
        append_events(conn, cache, &others, &event)?
    } else {
        Vec::new()
    };
    Ok(Receipt {
        event: ReceiptEvent {
            chat_id,
            message_id,
            status,
            user: me.phone.clone(),
            at: format_ms(now),
        },
        targets: events,
    })
}
