//! A WebSocket connection that outlives disconnects: [`LiveConnection`]
//! reconnects with exponential backoff and jitter, resumes from the last
//! durable cursor it handed out (`since=`), and drops the duplicate
//! `message` frames that a resume may replay. What a chat app wants from
//! `GET /ws`; [`crate::ws::Connection`] is the raw single socket underneath.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use missive_protocol::{ClientFrame, ServerFrame};
use uuid::Uuid;

use crate::ws::{Connection, WsError, WsQuery};

/// How [`LiveConnection`] waits and retries.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// First reconnect delay (doubled after each failed attempt).
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Silence after which a `ping` frame is sent; a second silence as long
    /// drops the connection and reconnects.
    pub idle: Duration,
    /// How many recent message ids are remembered to drop duplicates.
    pub dedupe_window: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            dedupe_window: 4096,
        }
    }
}

/// A `GET /ws` connection that reconnects and resumes by itself.
///
/// [`LiveConnection::next`] yields server frames in order: a `ready` after
/// every (re)connection, then the events. A `resync` (the resume point is
/// older than the server's `EVENT_RETENTION`) is handed out too: re-list
/// chats and messages over REST; the connection goes on from its cursor. Durable events (`message`,
/// `receipt`) advance the resume cursor; after a disconnect the next call
/// reconnects with `since=` that cursor, so nothing is missed, and a
/// `message` already handed out is not handed out again. A refusal that
/// retrying cannot fix (400, 401, 403, 404: a bad or revoked token, a bad
/// cursor) is returned as the error; anything else is retried for ever.
#[derive(Debug)]
pub struct LiveConnection {
    base_url: String,
    query: WsQuery,
    options: LiveOptions,
    conn: Option<Connection>,
    cursor: Option<String>,
    seen: RecentIds,
    failures: u32,
}

impl LiveConnection {
    /// Connects to the server at `base_http_url` (e.g. `https://chat.example`)
    /// as `query` says (its `since`, if any, is where the first connection
    /// resumes). The first connection is made here, so a bad token fails now.
    pub async fn connect(
        base_http_url: &str,
        query: WsQuery,
        options: LiveOptions,
    ) -> Result<LiveConnection, WsError> {
        let conn = Connection::connect(base_http_url, &query).await?;
        Ok(LiveConnection {
            base_url: base_http_url.to_owned(),
            cursor: query.since.clone(),
            seen: RecentIds::new(options.dedupe_window),
            query,
            options,
            conn: Some(conn),
            failures: 0,
        })
    }

    /// The cursor of the last durable event handed out: where a reconnect
    /// resumes. Store it to resume after the process restarts.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Whether a socket is open right now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The next server frame, reconnecting (and resuming) as often as needed.
    pub async fn next(&mut self) -> Result<ServerFrame, WsError> {
        let mut silent = false;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                self.reconnect().await?;
                silent = false;
                continue;
            };
            match conn.next_frame(self.options.idle).await {
                Ok(frame) => {
                    silent = false;
                    if let Some(frame) = self.accept(frame) {
                        return Ok(frame);
                    }
                }
                Err(WsError::Timeout(_)) if !silent => {
                    // Quiet is normal; a ping tells a dead peer from a quiet one.
                    silent = true;
                    if conn.send_frame(&ClientFrame::Ping).await.is_err() {
                        self.conn = None;
                    }
                }
                Err(WsError::Decode { .. } | WsError::Binary(_)) => {
                    // A frame this client does not know (a newer server): skip it.
                }
                Err(_) => {
                    self.conn = None;
                }
            }
        }
    }

    /// Sends a frame on the open socket. While disconnected this fails with
    /// [`WsError::Closed`]; call [`LiveConnection::next`] to reconnect, then
    /// send again (a `send` with the same `clientMessageId` is stored once).
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), WsError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(WsError::Closed {
                code: crate::ws::ABNORMAL_CLOSURE,
                reason: "not connected; reconnecting".into(),
            });
        };
        let sent = conn.send_frame(frame).await;
        if sent.is_err() {
            self.conn = None;
        }
        sent
    }

    /// Closes the socket (code 1000); the connection is done.
    pub async fn close(mut self) -> Result<(), WsError> {
        match self.conn.take() {
            Some(conn) => conn.close().await,
            None => Ok(()),
        }
    }

    /// Updates the cursor and the dedupe window; `None` for a duplicate.
    fn accept(&mut self, frame: ServerFrame) -> Option<ServerFrame> {
        match &frame {
            ServerFrame::Ready { cursor, .. } if self.cursor.is_none() => {
                self.cursor = Some(cursor.clone());
            }
            ServerFrame::Message { message, cursor } => {
                self.cursor = Some(cursor.clone());
                if !self.seen.insert(message.id) {
                    return None;
                }
            }
            ServerFrame::Receipt { cursor, .. } => self.cursor = Some(cursor.clone()),
            // The resume point was pruned: the caller re-lists over REST, and
            // the stream goes on from here.
            ServerFrame::Resync { cursor } => self.cursor = Some(cursor.clone()),
            _ => {}
        }
        Some(frame)
    }

    /// Waits out the backoff, then opens a socket resuming from the cursor.
    async fn reconnect(&mut self) -> Result<(), WsError> {
        if self.failures > 0 {
            tokio::time::sleep(backoff(&self.options, self.failures)).await;
        }
        let query = match &self.cursor {
            Some(cursor) => self.query.clone().since(cursor.clone()),
            None => self.query.clone(),
        };
        match Connection::connect(&self.base_url, &query).await {
            Ok(conn) => {
                self.conn = Some(conn);
                self.failures = 0;
                Ok(())
            }
            Err(e) if matches!(e.status(), Some(400 | 401 | 403 | 404)) => Err(e),
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                Ok(())
            }
        }
    }
}

/// The delay before reconnect attempt number `failures` (1 for the first
/// retry): "full jitter", a random delay up to the exponential bound, so
/// that the clients of a restarted server do not all come back at once.
fn backoff(options: &LiveOptions, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let bound = options
        .initial_backoff
        .saturating_mul(1 << exponent)
        .min(options.max_backoff);
    let random = RandomState::new().build_hasher().finish();
    bound.mul_f64((random % 1_000 + 1) as f64 / 1_000.0)
}

/// The last `capacity` message ids seen, for dropping duplicates.
#[derive(Debug)]
struct RecentIds {
    capacity: usize,
    order: VecDeque<Uuid>,
    set: HashSet<Uuid>,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        RecentIds {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Remembers `id`; false when it was already remembered.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let options = LiveOptions::default();
        for failures in 1..40 {
            let bound = Duration::from_millis(250)
                .saturating_mul(1 << (failures - 1).min(16))
                .min(Duration::from_secs(30));
            let delay = backoff(&options, failures);
            assert!(
                delay > Duration::ZERO && delay <= bound,
                "{failures}: {delay:?}"
            );
        }
        let delays: HashSet<Duration> = (0..20).map(|_| backoff(&options, 10)).collect();
        assert!(delays.len() > 1, "jittered, not fixed");
    }

    #[test]
    fn recent_ids_drop_duplicates_within_the_window_and_forget_the_oldest() {
        let mut ids = RecentIds::new(2);
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert!(ids.insert(a));
        assert!(!ids.insert(a), "a duplicate is dropped");
        assert!(ids.insert(b));
        assert!(ids.insert(c), "the window holds two: a is forgotten");
        assert!(ids.insert(a));
        assert!(!ids.insert(c));
    }
}
