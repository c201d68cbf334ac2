//! The scale-out bus: every node appends what it publishes to one Redis
//! stream and reads everyone else's entries from it.
//!
//! The stream is only a hint, like every bus: the store stays the truth. So
//! whenever this node may have missed entries (its reader lost its connection,
//! its position was trimmed away, the stream vanished) or other nodes may have
//! missed this node's entries (an `XADD` failed or was dropped), a
//! [`Payload::CatchUp`] makes the affected connections read the store.
//!
//! Sends never wait for Redis: `publish` delivers to the node's own registry,
//! then hands the serialized entry to a bounded outbox drained by a publisher
//! task.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Bus, BusHealth, BusStats, Envelope, Payload, Registry};
use crate::telemetry::LogLimiter;

/// Entries kept in the stream (approximately: `MAXLEN ~` trims whole nodes).
/// A reader further behind than this catches up from the store instead.
pub const STREAM_BOUND: usize = 100_000;
/// Serialized entries waiting for the publisher task; past it, entries are
/// dropped (and the other nodes told to catch up from the store).
const OUTBOX: usize = 8_192;
/// [`OUTBOX`], for the tests that overflow it.
#[cfg(test)]
pub(super) const OUTBOX_FOR_TESTS: usize = OUTBOX;
/// Entries sent per pipeline.
const BATCH: usize = 256;
/// Longest wait for one pipeline of `XADD`s.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one `XREAD` blocks on an idle stream.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per `XREAD`.
const READ_COUNT: usize = 512;
/// Longest wait for a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection back-off bounds of the reader.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often a pending catch-up marker is retried when nothing is sent.
const MARKER_RETRY: Duration = Duration::from_millis(250);

/// One stream entry: who published it and what.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// The publishing node (its reader skips its own entries).
    node: Uuid,
    /// The envelope.
    envelope: Envelope,
}

/// Field of a stream entry that holds the JSON [`Entry`].
const FIELD: &str = "e";

/// State shared by the bus handle and its two tasks.
struct Shared {
    node: Uuid,
    stream: String,
    registry: Arc<Registry>,
    /// The reader holds a live connection and a valid position.
    reader_up: AtomicBool,
    /// The last pipeline of `XADD`s succeeded (true until one fails).
    publisher_up: AtomicBool,
    /// Entries of this node never reached the stream: the other nodes must
    /// catch up from the store once it is reachable again.
    marker_due: AtomicBool,
    /// Entries dropped because the outbox was full.
    dropped: AtomicU64,
    /// Envelopes this node published.
    events: AtomicU64,
    /// Entries added to the stream.
    published: AtomicU64,
    /// Entries lost by failed pipelines.
    failed: AtomicU64,
    /// Entries of other nodes handed over.
    received: AtomicU64,
    /// Catch-ups handed to every local connection.
    catch_ups: AtomicU64,
    publish_log: LogLimiter,
    read_log: LogLimiter,
    /// For log lines: the URL without its password.
    redacted_url: String,
}

impl Shared {
    /// Tells every connection of this node to read the store.
    fn catch_up(&self) {
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
        self.registry.broadcast(Arc::new(Payload::CatchUp));
    }
}

/// Fan-out across nodes through a Redis stream.
pub struct RedisBus {
    shared: Arc<Shared>,
    outbox: flume::Sender<String>,
    stop: CancellationToken,
    publisher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RedisBus {
    /// Starts the publisher and reader tasks of this node on `url`, under
    /// the key prefix `prefix`, delivering to `registry`. Fails only on a
    /// malformed URL: an unreachable Redis is retried in the background.
    pub fn start(url: &str, prefix: &str, registry: Arc<Registry>) -> anyhow::Result<Self> {
        let redacted_url = crate::redaction::redact(url);
        let client = Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL {redacted_url} is invalid: {e}"))?;
        let shared = Arc::new(Shared {
            node: Uuid::now_v7(),
            stream: format!("{prefix}:events"),
            registry,
            reader_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(true),
            marker_due: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            events: AtomicU64::new(0),
            published: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
            publish_log: LogLimiter::default(),
            read_log: LogLimiter::default(),
            redacted_url,
        });
        let manager = client.get_connection_manager_lazy(
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(PUBLISH_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(BACKOFF_MAX),
        )?;
        let (outbox, inbox) = flume::bounded(OUTBOX);
        let stop = CancellationToken::new();
        let publisher = tokio::spawn(publish_loop(manager, inbox, shared.clone(), stop.clone()));
        tokio::spawn(read_loop(client, shared.clone(), stop.clone()));
        tracing::info!(redis = %shared.redacted_url, stream = %shared.stream, node = %shared.node, "redis bus started");
        Ok(RedisBus {
            shared,
            outbox,
            stop,
            publisher: Mutex::new(Some(publisher)),
        })
    }

    /// This node's id in the stream.
    pub fn node(&self) -> Uuid {
        self.shared.node
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, envelope: Envelope) {
        // Same-node delivery never depends on Redis.
        self.shared.events.fetch_add(1, Ordering::Relaxed);
        self.shared.registry.deliver(&envelope);
        let entry = Entry {
            node: self.shared.node,
            envelope,
        };
        let json = match serde_json::to_string(&entry) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "redis bus: cannot serialize an envelope");
                self.shared.marker_due.store(true, Ordering::Release);
                return;
            }
        };
        if self.outbox.try_send(json).is_err() {
            // Full (Redis too slow or down): the store has the event; the
            // other nodes catch up once the marker gets through.
            self.shared.marker_due.store(true, Ordering::Release);
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.shared.publish_log.warn(|suppressed| {
                tracing::warn!(
                    redis = %self.shared.redacted_url,
                    dropped,
                    suppressed,
                    "redis bus: outbox full, dropping entries (other nodes will catch up from the store)"
                );
            });
        }
    }

    fn health(&self) -> BusHealth {
        let up = self.shared.reader_up.load(Ordering::Acquire)
            && self.shared.publisher_up.load(Ordering::Acquire);
        if up { BusHealth::Ok } else { BusHealth::Down }
    }

    fn stats(&self) -> BusStats {
        let s = &self.shared;
        BusStats {
            events_published: s.events.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            catch_ups: s.catch_ups.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        self.stop.cancel();
        let publisher = self.publisher.lock().ok().and_then(|mut p| p.take());
        if let Some(publisher) = publisher {
            // The publisher flushes its outbox (bounded) before it returns.
            let _ = tokio::time::timeout(PUBLISH_TIMEOUT * 2, publisher).await;
        }
    }
}

/// Drains the outbox into the stream, a pipeline per burst; after a failure,
/// keeps retrying a catch-up marker until one gets through.
async fn publish_loop(
    mut conn: ConnectionManager,
    inbox: flume::Receiver<String>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut retry = tokio::time::interval(MARKER_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            first = inbox.recv_async() => match first {
                Ok(first) => Some(first),
                Err(_) => break,
            },
            _ = retry.tick(), if shared.marker_due.load(Ordering::Acquire) => None,
        };
        let mut batch: Vec<String> = first.into_iter().collect();
        while batch.len() < BATCH {
            match inbox.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        send(&mut conn, &shared, batch).await;
    }
    // Shutting down: what is queued gets one try, and none after a failure
    // (the store has it; the other nodes' readers catch up when they can).
    let rest: Vec<String> = inbox.try_iter().take(OUTBOX).collect();
    for chunk in rest.chunks(BATCH) {
        if !send(&mut conn, &shared, chunk.to_vec()).await {
            break;
        }
    }
}

/// One pipeline of `XADD`s, preceded by a catch-up marker when one is due;
/// `false` when it failed.
async fn send(conn: &mut ConnectionManager, shared: &Shared, mut batch: Vec<String>) -> bool {
    let marker = shared.marker_due.swap(false, Ordering::AcqRel);
    if marker {
        match catch_up_entry(shared.node) {
            Ok(json) => batch.insert(0, json),
            Err(e) => {
                tracing::error!(error = %e, "redis bus: cannot serialize the catch-up marker")
            }
        }
    }
    if batch.is_empty() {
        return true;
    }
    let mut pipe = redis::pipe();
    for json in &batch {
        pipe.cmd("XADD")
            .arg(&shared.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_BOUND)
            .arg("*")
            .arg(FIELD)
            .arg(json)
            .ignore();
    }
    let outcome = tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(conn)).await;
    match outcome {
        Ok(Ok(())) => {
            shared
                .published
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if !shared.publisher_up.swap(true, Ordering::AcqRel) {
                tracing::info!(redis = %shared.redacted_url, "redis bus: publishing again");
            }
            true
        }
        failed => {
            // The events are committed: the marker makes the other nodes
            // read them from the store once Redis takes entries again.
            shared.marker_due.store(true, Ordering::Release);
            shared.publisher_up.store(false, Ordering::Release);
            shared
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let error = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            shared.publish_log.warn(|suppressed| {
                tracing::warn!(
                    redis = %shared.redacted_url,
                    error = %error,
                    entries = batch.len(),
                    suppressed,
                    "redis bus: XADD failed; sends go on, other nodes will catch up from the store"
                );
            });
            false
        }
    }
}

/// The serialized marker telling every other node to catch up.
fn catch_up_entry(node: Uuid) -> serde_json::Result<String> {
    serde_json::to_string(&Entry {
        node,
        envelope: Envelope {
            targets: Vec::new(),
            payload: Arc::new(Payload::CatchUp),
        },
    })
}

/// Why a reading session ended.
enum ReadEnd {
    Stopped,
    Failed(redis::RedisError),
}

/// Connects, reads the stream until the connection fails, and starts over;
/// every (re)connection makes the node's connections catch up from the store,
/// since entries published meanwhile may never arrive.
async fn read_loop(client: Client, shared: Arc<Shared>, stop: CancellationToken) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let mut backoff = BACKOFF_MIN;
    // Position after the last entry handled; `None` until first connected.
    let mut last: Option<StreamPos> = None;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            c = client.get_multiplexed_async_connection_with_config(&config) => c,
        };
        let end = match connected {
            Ok(mut conn) => {
                backoff = BACKOFF_MIN;
                read_session(&mut conn, &shared, &stop, &mut last).await
            }
            Err(e) => ReadEnd::Failed(e),
        };
        shared.reader_up.store(false, Ordering::Release);
        match end {
            ReadEnd::Stopped => return,
            ReadEnd::Failed(e) => shared.read_log.warn(|suppressed| {
                tracing::warn!(
                    redis = %shared.redacted_url,
                    error = %e,
                    suppressed,
                    "redis bus: reading the stream failed; reconnecting (connections catch up from the store)"
                );
            }),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads on one connection until it fails or the bus stops.
async fn read_session(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    stop: &CancellationToken,
    last: &mut Option<StreamPos>,
) -> ReadEnd {
    let position = match last {
        Some(position) => *position,
        None => {
            // First start: from the stream's tail (what came before is in the store).
            let mut tail = redis::cmd("XREVRANGE");
            tail.arg(&shared.stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
            let tail = tail.query_async::<StreamRangeReply>(conn);
            let tail = tokio::select! {
                () = stop.cancelled() => return ReadEnd::Stopped,
                tail = tail => tail,
            };
            match tail {
                Ok(tail) => tail
                    .ids
                    .first()
                    .and_then(|e| StreamPos::parse(&e.id))
                    .unwrap_or(StreamPos::ZERO),
                Err(e) => return ReadEnd::Failed(e),
            }
        }
    };
    *last = Some(position);
    // Whatever other nodes published while this reader was away (or before
    // it started) is only in the store now.
    shared.catch_up();
    shared.reader_up.store(true, Ordering::Release);
    tracing::info!(redis = %shared.redacted_url, stream = %shared.stream, "redis bus: reading");
    loop {
        let Some(position) = *last else {
            return ReadEnd::Stopped;
        };
        // The first entry tells whether our position is still in the stream;
        // the read follows on the same connection right after it.
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE")
            .arg(&shared.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&shared.stream)
            .arg(position.to_string());
        let read = pipe.query_async::<(StreamRangeReply, Option<StreamReadReply>)>(conn);
        let (head, read) = tokio::select! {
            () = stop.cancelled() => return ReadEnd::Stopped,
            read = read => match read {
                Ok(read) => read,
                Err(e) => return ReadEnd::Failed(e),
            },
        };
        let first = head.ids.first().and_then(|e| StreamPos::parse(&e.id));
        let mut next = position;
        match Position::check(position, first) {
            Position::Valid => {}
            Position::Vanished => {
                tracing::info!(stream = %shared.stream, "redis bus: the stream vanished; catching up from the store");
                shared.catch_up();
                next = StreamPos::ZERO;
            }
            Position::Trimmed => {
                tracing::info!(stream = %shared.stream, "redis bus: position trimmed away; catching up from the store");
                shared.catch_up();
            }
        }
        for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            if let Some(id) = StreamPos::parse(&entry.id) {
                next = id;
            }
            hand_over(shared, &entry);
        }
        *last = Some(next);
    }
}

/// Gives an entry of another node to the local registry.
fn hand_over(shared: &Shared, entry: &StreamId) {
    let Some(json) = entry.get::<String>(FIELD) else {
        return;
    };
    let entry: Entry = match serde_json::from_str(&json) {
        Ok(entry) => entry,
        Err(e) => {
            // Another version's entry, or garbage: skip it, but make sure
            // nothing durable is missed.
            tracing::warn!(error = %e, "redis bus: unreadable stream entry; catching up from the store");
            shared.catch_up();
            return;
        }
    };
    if entry.node == shared.node {
        return;
    }
    shared.received.fetch_add(1, Ordering::Relaxed);
    if matches!(entry.envelope.payload.as_ref(), Payload::CatchUp) {
        shared.catch_up();
    } else {
        shared.registry.deliver(&entry.envelope);
    }
}

/// Whether the reader's position is still in the stream.
#[derive(Debug, PartialEq, Eq)]
enum Position {
    /// Every entry after it is still there.
    Valid,
    /// Entries after it may have been trimmed (the stream starts past it).
    Trimmed,
    /// The stream is gone (flushed, deleted, or Redis restarted empty).
    Vanished,
}

impl Position {
    /// Judges `position` against the stream's first entry (`None`: no stream).
    /// `0-0` is the position on a stream that was empty: nothing to miss yet.
    fn check(position: StreamPos, first: Option<StreamPos>) -> Position {
        match first {
            _ if position == StreamPos::ZERO => Position::Valid,
            None => Position::Vanished,
            Some(first) if first > position => Position::Trimmed,
            Some(_) => Position::Valid,
        }
    }
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StreamPos(u64, u64);

impl StreamPos {
    const ZERO: StreamPos = StreamPos(0, 0);

    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(StreamPos(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_like_redis() {
        let a = StreamPos::parse("1700000000000-5").expect("valid");
        let b = StreamPos::parse("1700000000000-12").expect("valid");
        let c = StreamPos::parse("1700000000001-0").expect("valid");
        assert!(a < b && b < c);
        assert_eq!(a.to_string(), "1700000000000-5");
        assert_eq!(StreamPos::parse("nope"), None);
    }

    #[test]
    fn a_position_is_lost_when_the_stream_starts_past_it_or_vanished() {
        let at = StreamPos(100, 3);
        assert_eq!(Position::check(at, Some(StreamPos(90, 0))), Position::Valid);
        assert_eq!(Position::check(at, Some(at)), Position::Valid);
        assert_eq!(
            Position::check(at, Some(StreamPos(100, 4))),
            Position::Trimmed
        );
        assert_eq!(Position::check(at, None), Position::Vanished);
        assert_eq!(Position::check(StreamPos::ZERO, None), Position::Valid);
        assert_eq!(
            Position::check(StreamPos::ZERO, Some(StreamPos(5, 0))),
            Position::Valid
        );
    }
}
