//! The SQL of the PostgreSQL store (except sends, see [`super::writer`]):
//! plain async functions over a pooled connection or a transaction.
//!
//! Lock order, which every writer here keeps so that transactions of several
//! nodes cannot deadlock: user rows first, in ascending id order; then chat
//! rows (ascending id); then the caller's own `chat_members` row.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use missive_protocol::{Chat, Message, MessageStatus, User};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{PgResult, is_unique_violation};
use crate::domain::chat::{Member, direct_key, refresh_statuses, status_of};
use crate::domain::event::{Event as LogEvent, EventKind, EventRow, ReceiptEvent};
use crate::domain::login::{StoredCode, Verdict, judge};
use crate::domain::{format_ms, now_ms};
use crate::store::{
    ChatQuery, ChatView, CodeAttempt, EventLog, LoginCode, MessageCursor, MessageQuery, NewUser,
    Page, Receipt, Redeemed, SessionRecord, StoreError, StoreResult, TokenSession,
};

const USER_COLUMNS: &str = "u.id, u.phone_number, u.display_name, u.created_at";
/// Columns decoded by [`message_from_row`].
pub const MESSAGE_COLUMNS: &str =
    "m.id, m.chat_id, m.seq, u.phone_number, m.content, m.created_at, m.client_message_id";

/// Prepares `sql` once per connection (statement cache) and runs it.
pub async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// Like [`query`], for at most one row.
pub async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// Like [`query`], for statements without rows; the number of rows changed.
pub async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<u64> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

fn user_from_row(row: &Row) -> PgResult<User> {
    Ok(User {
        id: row.try_get(0)?,
        phone_number: row.try_get(1)?,
        display_name: row.try_get(2)?,
        created_at: format_ms(row.try_get(3)?),
    })
}

/// A message row of [`MESSAGE_COLUMNS`]; its status is filled in from the watermarks.
pub fn message_from_row(row: &Row) -> PgResult<Message> {
    Ok(Message {
        id: row.try_get(0)?,
        chat_id: row.try_get(1)?,
        seq: row.try_get(2)?,
        sender: row.try_get(3)?,
        content: row.try_get(4)?,
        created_at: format_ms(row.try_get(5)?),
        client_message_id: row.try_get(6)?,
        status: MessageStatus::Sent,
    })
}

fn member_from_row(row: &Row, first: usize) -> PgResult<Member> {
    Ok(Member {
        user_id: row.try_get(first)?,
        phone: row.try_get(first + 1)?,
        delivered_seq: row.try_get(first + 2)?,
        read_seq: row.try_get(first + 3)?,
    })
}

/// Inserts a user and their first token in one transaction.
pub async fn insert_user(
    client: &mut deadpool_postgres::Client,
    new: &NewUser,
) -> StoreResult<User> {
    let id = Uuid::now_v7();
    let now = now_ms();
    let phone = new.phone_number.as_str();
    let tx = client.transaction().await?;
    let inserted = execute(
        &tx,
        "INSERT INTO users (id, phone_number, display_name, created_at) VALUES ($1, $2, $3, $4)",
        &[&id, &phone, &new.display_name, &now],
    )
    .await;
    match inserted {
        // Whichever node raced, the loser of the unique index learns it here.
        Err(e) if is_unique_violation(&e, "users_phone_number_key") => {
            return Err(StoreError::PhoneTaken);
        }
        other => other?,
    };
    insert_token(&tx, id, &new.token_hash, new.user_agent.as_deref(), now).await?;
    tx.commit().await?;
    Ok(User {
        id,
        phone_number: phone.to_owned(),
        display_name: new.display_name.clone(),
        created_at: format_ms(now),
    })
}

/// A user by id.
pub async fn user_by_id<C: GenericClient>(client: &C, id: Uuid) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
    let row = query_opt(client, &sql, &[&id]).await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

/// A user by phone number.
pub async fn user_by_phone<C: GenericClient>(client: &C, phone: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.phone_number = $1");
    let row = query_opt(client, &sql, &[&phone]).await?;
    Ok(row.as_ref().map(user_from_row).transpose()?)
}

/// The session (and user) of a token that is not revoked.
pub async fn session_by_token<C: GenericClient>(
    client: &C,
    token_hash: &str,
) -> StoreResult<Option<TokenSession>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, t.id, t.created_at, t.last_used_at
         FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
    );
    let Some(row) = query_opt(client, &sql, &[&token_hash]).await? else {
        return Ok(None);
    };
    Ok(Some(TokenSession {
        user: user_from_row(&row)?,
        id: row.try_get(4)?,
        created_at: row.try_get(5)?,
        last_used_at: row.try_get(6)?,
    }))
}

/// Adds a token (a new session, last used now); `UserNotFound` when the user does not exist.
pub async fn add_token<C: GenericClient>(
    client: &C,
    user: Uuid,
    token_hash: &str,
    user_agent: Option<&str>,
) -> StoreResult<()> {
    insert_token(client, user, token_hash, user_agent, now_ms())
        .await
        .map_err(super::foreign_key_is_user)?;
    Ok(())
}

/// A new token row: a new session, last used at its creation.
async fn insert_token<C: GenericClient>(
    client: &C,
    user: Uuid,
    token_hash: &str,
    user_agent: Option<&str>,
    now: i64,
) -> PgResult<u64> {
    execute(
        client,
        "INSERT INTO tokens (token_hash, user_id, created_at, id, user_agent, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $3)",
        &[&token_hash, &user, &now, &Uuid::now_v7(), &user_agent],
    )
    .await
}

/// Moves a token's `last_used_at` up to `at` (never back).
pub async fn touch_token<C: GenericClient>(
    client: &C,
    token_hash: &str,
    at: i64,
) -> StoreResult<()> {
    execute(
        client,
        "UPDATE tokens SET last_used_at = $2
         WHERE token_hash = $1 AND last_used_at < $2 AND revoked_at IS NULL",
        &[&token_hash, &at],
    )
    .await?;
    Ok(())
}

/// The live sessions of a user, most recently used first.
pub async fn list_sessions<C: GenericClient>(
    client: &C,
    user: Uuid,
    used_since: i64,
) -> StoreResult<Vec<SessionRecord>> {
    let rows = query(
        client,
        "SELECT id, created_at, last_used_at, user_agent FROM tokens
         WHERE user_id = $1 AND revoked_at IS NULL AND last_used_at >= $2
         ORDER BY last_used_at DESC, created_at DESC, id",
        &[&user, &used_since],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SessionRecord {
                id: row.try_get(0)?,
                created_at: row.try_get(1)?,
                last_used_at: row.try_get(2)?,
                user_agent: row.try_get(3)?,
            })
        })
        .collect()
}

/// Revokes a live session of `user`; the hash of its token, or `None`.
pub async fn revoke_session<C: GenericClient>(
    client: &C,
    user: Uuid,
    id: Uuid,
    used_since: i64,
) -> StoreResult<Option<String>> {
    let row = query_opt(
        client,
        "UPDATE tokens SET revoked_at = $4
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND last_used_at >= $3
         RETURNING token_hash",
        &[&id, &user, &used_since, &now_ms()],
    )
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Deletes revoked tokens and those unused since before `unused_since`.
pub async fn prune_tokens<C: GenericClient>(client: &C, unused_since: i64) -> StoreResult<u64> {
    Ok(execute(
        client,
        "DELETE FROM tokens WHERE revoked_at IS NOT NULL OR last_used_at < $1",
        &[&unused_since],
    )
    .await?)
}

/// Deletes login codes that expired before `now`.
pub async fn prune_login_codes<C: GenericClient>(client: &C, now: i64) -> StoreResult<u64> {
    Ok(execute(
        client,
        "DELETE FROM login_codes WHERE expires_at < $1",
        &[&now],
    )
    .await?)
}

/// Revokes a token; `false` when unknown or revoked already.
pub async fn revoke_token<C: GenericClient>(client: &C, token_hash: &str) -> StoreResult<bool> {
    let changed = execute(
        client,
        "UPDATE tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        &[&token_hash, &now_ms()],
    )
    .await?;
    Ok(changed > 0)
}

/// Stores (or replaces) the login code of a phone number.
pub async fn put_login_code<C: GenericClient>(client: &C, code: &LoginCode) -> StoreResult<()> {
    execute(
        client,
        "INSERT INTO login_codes (phone_number, user_id, code_hash, expires_at, attempts)
         VALUES ($1, $2, $3, $4, 0)
         ON CONFLICT (phone_number) DO UPDATE SET
             user_id = excluded.user_id, code_hash = excluded.code_hash,
             expires_at = excluded.expires_at, attempts = 0",
        &[
            &code.phone_number,
            &code.user,
            &code.code_hash,
            &code.expires_at,
        ],
    )
    .await
    .map_err(super::foreign_key_is_user)?;
    Ok(())
}

/// Judges a try at a login code under the code's row lock (so two concurrent
/// tries cannot both count as the first), consuming it when it matches.
pub async fn redeem_login_code(
    client: &mut deadpool_postgres::Client,
    attempt: &CodeAttempt,
) -> StoreResult<Redeemed> {
    let tx = client.transaction().await?;
    let row = query_opt(
        &tx,
        "SELECT user_id, code_hash, expires_at, attempts FROM login_codes
         WHERE phone_number = $1 FOR UPDATE",
        &[&attempt.phone_number],
    )
    .await?;
    let Some(row) = row else {
        return Ok(Redeemed::Invalid);
    };
    let user: Uuid = row.try_get(0)?;
    let code_hash: String = row.try_get(1)?;
    let stored = StoredCode {
        code_hash: &code_hash,
        expires_at: row.try_get(2)?,
        attempts: row.try_get(3)?,
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
            execute(
                &tx,
                "UPDATE login_codes SET attempts = attempts + 1 WHERE phone_number = $1",
                &[&attempt.phone_number],
            )
            .await?;
            tx.commit().await?;
            return Ok(Redeemed::Invalid);
        }
    }
    execute(
        &tx,
        "DELETE FROM login_codes WHERE phone_number = $1",
        &[&attempt.phone_number],
    )
    .await?;
    add_token(
        &tx,
        user,
        &attempt.token_hash,
        attempt.user_agent.as_deref(),
    )
    .await?;
    let user = user_by_id(&tx, user)
        .await?
        .ok_or_else(|| StoreError::Internal("a login code names a missing user".into()))?;
    tx.commit().await?;
    Ok(Redeemed::Valid(user))
}

/// The members of a chat, in participant order.
pub async fn members<C: GenericClient>(client: &C, chat_id: Uuid) -> StoreResult<Vec<Member>> {
    let rows = query(
        client,
        "SELECT cm.user_id, u.phone_number, cm.delivered_seq, cm.read_seq
         FROM chat_members cm JOIN users u ON u.id = cm.user_id
         WHERE cm.chat_id = $1 ORDER BY cm.position",
        &[&chat_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| member_from_row(row, 0))
        .collect::<PgResult<_>>()?)
}

/// The members of several chats at once (one round trip), by chat.
pub async fn members_of<C: GenericClient>(
    client: &C,
    chat_ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, Vec<Member>>> {
    let rows = query(
        client,
        "SELECT cm.chat_id, cm.user_id, u.phone_number, cm.delivered_seq, cm.read_seq
         FROM chat_members cm JOIN users u ON u.id = cm.user_id
         WHERE cm.chat_id = ANY($1) ORDER BY cm.chat_id, cm.position",
        &[&chat_ids],
    )
    .await?;
    let mut by_chat: HashMap<Uuid, Vec<Member>> = HashMap::new();
    for row in &rows {
        let chat: Uuid = row.try_get(0)?;
        by_chat
            .entry(chat)
            .or_default()
            .push(member_from_row(row, 1)?);
    }
    Ok(by_chat)
}

/// Checks the chat exists and `viewer` (if known) is in it.
pub fn visible(members: Vec<Member>, viewer: Option<Uuid>) -> StoreResult<Vec<Member>> {
    let visible =
        !members.is_empty() && viewer.is_none_or(|v| members.iter().any(|m| m.user_id == v));
    if visible {
        Ok(members)
    } else {
        Err(StoreError::ChatNotFound)
    }
}

/// A chat as `viewer` sees it. Its four queries are pipelined on one connection.
pub async fn chat_view<C: GenericClient>(
    client: &C,
    chat_id: Uuid,
    viewer: Option<Uuid>,
) -> StoreResult<ChatView> {
    let last_sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.chat_id = $1 ORDER BY m.seq DESC LIMIT 1"
    );
    let (members, created, last, unread) = tokio::try_join!(
        members(client, chat_id),
        async {
            Ok::<_, StoreError>(
                query_opt(
                    client,
                    "SELECT created_at FROM chats WHERE id = $1",
                    &[&chat_id],
                )
                .await?,
            )
        },
        async { Ok::<_, StoreError>(query_opt(client, &last_sql, &[&chat_id]).await?) },
        async {
            let Some(viewer) = viewer else {
                return Ok::<_, StoreError>(0);
            };
            let row = query_opt(
                client,
                "SELECT COUNT(*) FROM messages m
                 WHERE m.chat_id = $1 AND m.sender_id <> $2 AND m.seq > (
                     SELECT cm.read_seq FROM chat_members cm
                     WHERE cm.chat_id = $1 AND cm.user_id = $2)",
                &[&chat_id, &viewer],
            )
            .await?;
            Ok(match row {
                Some(row) => row.try_get::<_, i64>(0)?,
                None => 0,
            })
        },
    )?;
    let members = visible(members, viewer)?;
    let created_at: i64 = created.ok_or(StoreError::ChatNotFound)?.try_get(0)?;
    let mut last_message = last.as_ref().map(message_from_row).transpose()?;
    if let Some(message) = last_message.as_mut() {
        message.status = status_of(&members, &message.sender, message.seq);
    }
    Ok(ChatView {
        chat: Chat {
            id: chat_id,
            participants: members.iter().map(|m| m.phone.clone()).collect(),
            created_at: format_ms(created_at),
            last_message,
            unread_count: unread,
        },
        member_ids: members.iter().map(|m| m.user_id).collect(),
    })
}

/// Inserts a chat and its members (inside the caller's transaction); `None`
/// when `direct` names a 1:1 chat that exists already.
async fn insert_chat<C: GenericClient>(
    client: &C,
    participants: &[Uuid],
    direct: Option<&str>,
) -> StoreResult<Option<Uuid>> {
    let id = Uuid::now_v7();
    // ON CONFLICT waits for a concurrent inserter of the same key and then
    // does nothing: exactly one of two racing nodes creates the chat.
    let inserted = query_opt(
        client,
        "INSERT INTO chats (id, direct_key, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (direct_key) DO NOTHING RETURNING id",
        &[&id, &direct, &now_ms()],
    )
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    let positions: Vec<i32> = (0..participants.len() as i32).collect();
    execute(
        client,
        "INSERT INTO chat_members (chat_id, user_id, position)
         SELECT $1, p.user_id, p.position FROM unnest($2::uuid[], $3::int4[]) AS p(user_id, position)",
        &[&id, &participants, &positions],
    )
    .await
    .map_err(super::foreign_key_is_user)?;
    Ok(Some(id))
}

/// The id of the 1:1 chat with `key`, if it exists.
async fn find_direct<C: GenericClient>(client: &C, key: &str) -> StoreResult<Option<Uuid>> {
    let row = query_opt(
        client,
        "SELECT id FROM chats WHERE direct_key = $1",
        &[&key],
    )
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The ids of the 1:1 chats with these keys that exist, by key (one round trip).
pub async fn find_directs<C: GenericClient>(
    client: &C,
    keys: &[String],
) -> StoreResult<HashMap<String, Uuid>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = query(
        client,
        "SELECT direct_key, id FROM chats WHERE direct_key = ANY($1)",
        &[&keys],
    )
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<PgResult<_>>()
        .map_err(StoreError::from)
}

/// Finds or creates the chat of `participants` (committed when this returns).
pub async fn ensure_chat(
    client: &mut deadpool_postgres::Client,
    participants: &[Uuid],
) -> StoreResult<(Uuid, bool)> {
    let key = match participants {
        [a, b] => Some(direct_key(*a, *b)),
        _ => None,
    };
    if let Some(key) = &key
        && let Some(existing) = find_direct(&*client, key).await?
    {
        return Ok((existing, false));
    }
    let tx = client.transaction().await?;
    let created = insert_chat(&tx, participants, key.as_deref()).await?;
    tx.commit().await?;
    match (created, key) {
        (Some(id), _) => Ok((id, true)),
        // Another node created it between our look-up and our insert.
        (None, Some(key)) => find_direct(&*client, &key)
            .await?
            .map(|id| (id, false))
            .ok_or_else(|| StoreError::Internal("a conflicting 1:1 chat vanished".into())),
        (None, None) => Err(StoreError::Internal("a group chat was not inserted".into())),
    }
}

/// The chats of `user`, most recent activity first.
pub async fn list_chats<C: GenericClient>(
    client: &C,
    user: Uuid,
    query_: ChatQuery,
) -> StoreResult<Page<Chat>> {
    let before_activity: i64 = match query_.before {
        None => i64::MAX,
        Some(chat) => query_opt(
            client,
            "SELECT c.activity FROM chats c JOIN chat_members cm ON cm.chat_id = c.id
             WHERE c.id = $1 AND cm.user_id = $2",
            &[&chat, &user],
        )
        .await?
        .ok_or(StoreError::InvalidCursor)?
        .try_get(0)?,
    };
    let rows = query(
        client,
        "SELECT c.id FROM chat_members cm JOIN chats c ON c.id = cm.chat_id
         WHERE cm.user_id = $1 AND c.activity < $2
         ORDER BY c.activity DESC LIMIT $3 OFFSET $4",
        &[
            &user,
            &before_activity,
            &(i64::from(query_.limit) + 1),
            &i64::from(query_.offset),
        ],
    )
    .await?;
    let more = rows.len() > query_.limit as usize;
    let ids = rows
        .iter()
        .take(query_.limit as usize)
        .map(|r| r.try_get::<_, Uuid>(0))
        .collect::<PgResult<Vec<_>>>()?;
    // Pipelined: every chat's queries go out on the one connection at once.
    let views =
        futures_util::future::try_join_all(ids.iter().map(|id| chat_view(client, *id, Some(user))))
            .await?;
    Ok(Page {
        items: views.into_iter().map(|v| v.chat).collect(),
        more,
    })
}

async fn message_seq<C: GenericClient>(
    client: &C,
    chat_id: Uuid,
    message_id: Uuid,
) -> StoreResult<Option<i64>> {
    let row = query_opt(
        client,
        "SELECT seq FROM messages WHERE id = $1 AND chat_id = $2",
        &[&message_id, &chat_id],
    )
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// A page of messages and the chat's members (for the delivered watermark).
pub async fn list_messages<C: GenericClient>(
    client: &C,
    chat_id: Uuid,
    viewer: Option<Uuid>,
    query_: MessageQuery,
) -> StoreResult<(Page<Message>, Vec<Member>)> {
    let members = visible(members(client, chat_id).await?, viewer)?;
    let limit = i64::from(query_.limit) + 1;
    let offset = i64::from(query_.offset);
    let base = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.chat_id = $1"
    );
    let (rows, ascending) = match query_.cursor {
        MessageCursor::Newest => {
            let sql = format!("{base} ORDER BY m.seq DESC LIMIT $2 OFFSET $3");
            (
                query(client, &sql, &[&chat_id, &limit, &offset]).await?,
                false,
            )
        }
        MessageCursor::Before(id) | MessageCursor::After(id) => {
            let bound = message_seq(client, chat_id, id)
                .await?
                .ok_or(StoreError::InvalidCursor)?;
            let ascending = matches!(query_.cursor, MessageCursor::After(_));
            let sql = if ascending {
                format!("{base} AND m.seq > $4 ORDER BY m.seq ASC LIMIT $2 OFFSET $3")
            } else {
                format!("{base} AND m.seq < $4 ORDER BY m.seq DESC LIMIT $2 OFFSET $3")
            };
            (
                query(client, &sql, &[&chat_id, &limit, &offset, &bound]).await?,
                ascending,
            )
        }
    };
    let mut items = rows
        .iter()
        .map(message_from_row)
        .collect::<PgResult<Vec<_>>>()?;
    let more = items.len() > query_.limit as usize;
    items.truncate(query_.limit as usize);
    if ascending {
        items.reverse();
    }
    refresh_statuses(&mut items, &members);
    Ok((Page { items, more }, members))
}

/// Locks the rows of `users` in ascending id order and returns their current
/// `event_seq`. Every transaction that appends events calls this first, so
/// two of them (on any nodes) wait for each other instead of deadlocking,
/// and a user's numbers are taken — and committed — one transaction at a time.
pub async fn lock_users<C: GenericClient>(
    client: &C,
    users: &[Uuid],
) -> StoreResult<HashMap<Uuid, i64>> {
    let mut sorted = users.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rows = query(
        client,
        "SELECT id, event_seq FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&sorted],
    )
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<PgResult<_>>()
        .map_err(StoreError::from)
}

/// Writes back the event numbers taken under [`lock_users`]:
/// `UPDATE … RETURNING` bumps each user's `event_seq` by the events appended
/// and checks it lands where the numbers were assigned.
pub async fn bump_event_seqs<C: GenericClient>(
    client: &C,
    added: &HashMap<Uuid, (i64, i64)>,
) -> StoreResult<()> {
    if added.is_empty() {
        return Ok(());
    }
    let (ids, counts): (Vec<Uuid>, Vec<i64>) =
        added.iter().map(|(id, (count, _))| (*id, *count)).unzip();
    let rows = query(
        client,
        "UPDATE users u SET event_seq = u.event_seq + d.n
         FROM unnest($1::uuid[], $2::int8[]) AS d(id, n)
         WHERE u.id = d.id RETURNING u.id, u.event_seq",
        &[&ids, &counts],
    )
    .await?;
    for row in &rows {
        let id: Uuid = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        if added.get(&id).map(|(_, last)| *last) != Some(seq) {
            return Err(StoreError::Internal(format!(
                "event numbers of user {id} moved while locked"
            )));
        }
    }
    if rows.len() != added.len() {
        return Err(StoreError::Internal("an event's user vanished".into()));
    }
    Ok(())
}

/// Events to insert, as columns (for one multi-row `INSERT … SELECT unnest`).
#[derive(Default)]
pub struct EventRows {
    users: Vec<Uuid>,
    seqs: Vec<i64>,
    kinds: Vec<&'static str>,
    chats: Vec<Uuid>,
    messages: Vec<Uuid>,
    statuses: Vec<Option<&'static str>>,
    actors: Vec<Option<String>>,
    times: Vec<i64>,
}

impl EventRows {
    /// Adds an event of `user` numbered `seq`.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        user: Uuid,
        seq: i64,
        kind: EventKind,
        chat: Uuid,
        message: Uuid,
        status: Option<MessageStatus>,
        actor: Option<String>,
        at: i64,
    ) {
        self.users.push(user);
        self.seqs.push(seq);
        self.kinds.push(kind.as_str());
        self.chats.push(chat);
        self.messages.push(message);
        self.statuses.push(status.map(MessageStatus::as_str));
        self.actors.push(actor);
        self.times.push(at);
    }

    /// Inserts them all in one statement.
    pub async fn insert<C: GenericClient>(&self, client: &C) -> StoreResult<()> {
        if self.users.is_empty() {
            return Ok(());
        }
        execute(
            client,
            "INSERT INTO events (user_id, seq, kind, chat_id, message_id, status, actor, created_at)
             SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::uuid[], $5::uuid[],
                                  $6::text[], $7::text[], $8::int8[])",
            &[
                &self.users,
                &self.seqs,
                &self.kinds,
                &self.chats,
                &self.messages,
                &self.statuses,
                &self.actors,
                &self.times,
            ],
        )
        .await?;
        Ok(())
    }
}

/// Numbers events: per user, how many were added and the last number given.
#[derive(Default)]
pub struct Numbering {
    current: HashMap<Uuid, i64>,
    /// `user → (events added, last number)`.
    pub added: HashMap<Uuid, (i64, i64)>,
}

impl Numbering {
    /// Starts from the numbers read under the locks.
    pub fn new(current: HashMap<Uuid, i64>) -> Self {
        Numbering {
            current,
            added: HashMap::new(),
        }
    }

    /// The next number of `user`'s log.
    pub fn next(&mut self, user: Uuid) -> StoreResult<i64> {
        let current = self
            .current
            .get_mut(&user)
            .ok_or(StoreError::UserNotFound)?;
        *current += 1;
        let entry = self.added.entry(user).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = *current;
        Ok(*current)
    }
}

/// Moves `user`'s watermark(s) up to `message_id` and appends the receipt to
/// the other participants' logs, in one transaction.
pub async fn mark_status(
    client: &mut deadpool_postgres::Client,
    chat_id: Uuid,
    user: Uuid,
    message_id: Uuid,
    status: MessageStatus,
) -> StoreResult<Receipt> {
    let tx = client.transaction().await?;
    let members = visible(members(&tx, chat_id).await?, Some(user))?;
    let seq = message_seq(&tx, chat_id, message_id)
        .await?
        .ok_or(StoreError::MessageNotFound)?;
    let others: Vec<Uuid> = members
        .iter()
        .map(|m| m.user_id)
        .filter(|id| *id != user)
        .collect();
    let mut numbering = Numbering::new(lock_users(&tx, &others).await?);
    // Read under the row lock, so concurrent marks of one user never move a
    // watermark backwards.
    let row = query_opt(
        &tx,
        "SELECT cm.delivered_seq, cm.read_seq, u.phone_number
         FROM chat_members cm JOIN users u ON u.id = cm.user_id
         WHERE cm.chat_id = $1 AND cm.user_id = $2 FOR UPDATE OF cm",
        &[&chat_id, &user],
    )
    .await?
    .ok_or(StoreError::ChatNotFound)?;
    let (was_delivered, was_read, phone): (i64, i64, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let delivered = was_delivered.max(seq);
    let read = if status == MessageStatus::Read {
        was_read.max(seq)
    } else {
        was_read
    };
    let moved = if read > was_read {
        Some(MessageStatus::Read)
    } else if delivered > was_delivered {
        Some(MessageStatus::Delivered)
    } else {
        None
    };
    let now = now_ms();
    let mut targets = Vec::new();
    if let Some(moved) = moved {
        let mut events = EventRows::default();
        for other in &others {
            let number = numbering.next(*other)?;
            events.push(
                *other,
                number,
                EventKind::Receipt,
                chat_id,
                message_id,
                Some(moved),
                Some(phone.clone()),
                now,
            );
            targets.push((*other, number));
        }
        tokio::try_join!(
            async {
                execute(
                    &tx,
                    "UPDATE chat_members SET delivered_seq = $3, read_seq = $4
                     WHERE chat_id = $1 AND user_id = $2",
                    &[&chat_id, &user, &delivered, &read],
                )
                .await
                .map_err(StoreError::from)
            },
            events.insert(&tx),
            bump_event_seqs(&tx, &numbering.added),
        )?;
        tx.commit().await?;
    }
    Ok(Receipt {
        event: ReceiptEvent {
            chat_id,
            message_id,
            status,
            user: phone,
            at: format_ms(now),
        },
        targets,
    })
}

/// The cursor of the newest event of `user`'s log.
pub async fn event_cursor<C: GenericClient>(client: &C, user: Uuid) -> StoreResult<i64> {
    query_opt(
        client,
        "SELECT event_seq FROM users WHERE id = $1",
        &[&user],
    )
    .await?
    .ok_or(StoreError::UserNotFound)?
    .try_get(0)
    .map_err(StoreError::from)
}

/// Where `user`'s log stands: its newest event and how far it was pruned.
pub async fn event_log<C: GenericClient>(client: &C, user: Uuid) -> StoreResult<EventLog> {
    let row = query_opt(
        client,
        "SELECT event_seq, events_pruned_seq FROM users WHERE id = $1",
        &[&user],
    )
    .await?
    .ok_or(StoreError::UserNotFound)?;
    Ok(EventLog {
        cursor: row.try_get(0)?,
        pruned_through: row.try_get(1)?,
    })
}

/// One step of pruning (see `Store::prune_events`): the users of up to
/// `limit` of the oldest events created before `cutoff_ms`, each with the
/// newest such event, lose their log up to it. The user rows are locked
/// first, in id order, like every transaction that appends events (see the
/// module docs): an append and a prune of one user take turns, and nodes
/// pruning at once find the work done (`GREATEST` keeps it idempotent).
pub async fn prune_events(
    client: &mut deadpool_postgres::Client,
    cutoff_ms: i64,
    limit: u32,
) -> StoreResult<u64> {
    let tx = client.transaction().await?;
    let rows = query(
        &tx,
        "SELECT user_id, MAX(seq) FROM
             (SELECT user_id, seq FROM events WHERE created_at < $1
              ORDER BY created_at LIMIT $2) AS old
         GROUP BY user_id ORDER BY user_id",
        &[&cutoff_ms, &i64::from(limit)],
    )
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (users, through): (Vec<Uuid>, Vec<i64>) = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<PgResult<Vec<(Uuid, i64)>>>()?
        .into_iter()
        .unzip();
    lock_users(&tx, &users).await?;
    let deleted = tx
        .execute(
            "DELETE FROM events e USING unnest($1::uuid[], $2::int8[]) AS d(id, through)
             WHERE e.user_id = d.id AND e.seq <= d.through",
            &[&users, &through],
        )
        .await?;
    tx.execute(
        "UPDATE users u SET events_pruned_seq = GREATEST(u.events_pruned_seq, d.through)
         FROM unnest($1::uuid[], $2::int8[]) AS d(id, through) WHERE u.id = d.id",
        &[&users, &through],
    )
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Messages by id with their current status.
pub async fn messages_by_id<C: GenericClient>(
    client: &C,
    ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, Message>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.id = ANY($1)"
    );
    let rows = query(client, &sql, &[&ids]).await?;
    let mut messages = rows
        .iter()
        .map(message_from_row)
        .collect::<PgResult<Vec<_>>>()?;
    let mut chats: Vec<Uuid> = messages.iter().map(|m| m.chat_id).collect();
    chats.sort_unstable();
    chats.dedup();
    let members = members_of(client, &chats).await?;
    for message in &mut messages {
        if let Some(members) = members.get(&message.chat_id) {
            message.status = status_of(members, &message.sender, message.seq);
        }
    }
    Ok(messages.into_iter().map(|m| (m.id, m)).collect())
}

/// Up to `limit` events of `user`'s log after `cursor`, oldest first.
pub async fn events_since<C: GenericClient>(
    client: &C,
    user: Uuid,
    cursor: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, LogEvent)>> {
    let rows = query(
        client,
        "SELECT seq, kind, chat_id, message_id, status, actor, created_at FROM events
         WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&user, &cursor, &i64::from(limit)],
    )
    .await?;
    let mut wanted = Vec::new();
    for row in &rows {
        if row.try_get::<_, &str>(1)?.parse::<EventKind>()? == EventKind::Message {
            wanted.push(row.try_get::<_, Uuid>(3)?);
        }
    }
    let messages = messages_by_id(client, &wanted).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        let decoded = EventRow {
            kind: row.try_get(1)?,
            chat_id: row.try_get(2)?,
            message_id: row.try_get(3)?,
            status: row.try_get(4)?,
            actor: row.try_get(5)?,
            at: row.try_get(6)?,
        };
        let event = LogEvent::from_row(decoded, |id| {
            messages
                .get(&id)
                .cloned()
                .ok_or(StoreError::MessageNotFound)
        })?;
        events.push((seq, event));
    }
    Ok(events)
}
