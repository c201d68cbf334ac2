//! One WebSocket connection. The reader half parses client frames and starts
//! them in order (sends are queued for commit in frame order, several may
//! await their commit at once, answers go out in frame order); the writer half sends the `ready` frame, replays the user's
//! log after `since`, then forwards live events from the registry queue,
//! skipping what it already sent and filling gaps from the store, in cursor
//! order. Writes are batched: `feed` per frame, one `flush` per burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use missive_protocol::{ServerFrame, User};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Context;
use super::frames::{self, Command};
use crate::bus::Payload;
use crate::bus::{Outbound, Subscription};
use crate::domain::event::Event;
use crate::domain::now_ms;
use crate::metrics::{Metrics, WsClose};
use crate::security::tokens::{TokenWatch, socket_touch_every, ttl_ms};
use crate::service::{Draft, Error, Recipient, Service};

/// How often the server pings.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A peer silent for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A write that takes longer than this means the peer does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Client frames waiting for their commit, per connection (pipelining).
const IN_FLIGHT: usize = 64;
/// Events read from the store per query while catching up.
const REPLAY_PAGE: u32 = 256;
/// Frames fed before a flush.
const BURST: usize = 128;
/// Replies (acks, errors, pongs) waiting for the writer (boxed, so an idle
/// connection's channel block stays small).
const REPLIES: usize = 64;

/// Close codes.
const GOING_AWAY: u16 = 1001;
const TRY_AGAIN_LATER: u16 = 1013;
const POLICY_VIOLATION: u16 = 1008;
const MESSAGE_TOO_BIG: u16 = 1009;
const INTERNAL_ERROR: u16 = 1011;

/// How long the connection stays open after a 1009 close, so that the peer
/// can read the close frame: the rest of its oversized message is left
/// unread (reading it would mean buffering it), and closing a socket with
/// unread input sends a TCP reset, which can destroy the close frame on its
/// way.
const LINGER: Duration = Duration::from_secs(1);

/// Serves one connection of `user` until either side ends it.
/// `token_hash` is the hash of the token the connection was opened with, if any:
/// revoking that token closes the connection (1008). The token is checked
/// against the store once more after the connection is registered (a
/// revocation committed before that is seen here, one committed after
/// reaches the registered connection), so a socket opened with a token
/// whose revocation is under way never gets `ready`.
pub async fn run(
    socket: WebSocket,
    ctx: Context,
    user: User,
    since: Option<i64>,
    token_hash: Option<String>,
) {
    let gateway = ctx.gateway.clone();
    let metrics = ctx.metrics.clone();
    metrics.ws.opened.inc();
    let (sink, stream) = socket.split();
    let mut writer = Writer {
        sink,
        service: ctx.service.clone(),
        metrics: metrics.clone(),
        closed: None,
        user: user.id,
        last: 0,
        resync: false,
        token: None,
        touched_at: now_ms(),
        touch_every_ms: ttl_ms(socket_touch_every(ctx.service.token_ttl())),
        pinged_at: now_ms(),
        overflow: Arc::default(),
        too_big: Arc::default(),
    };
    let too_big = writer.too_big.clone();
    // The cursor is read before registering: anything committed after it
    // arrives through the queue or, if the queue missed it, through a gap fill.
    let log = match ctx.service.event_log(user.id).await {
        Ok(log) => log,
        Err(e) => {
            tracing::error!(error = %e, "websocket: cannot read the event cursor");
            Box::pin(writer.close(INTERNAL_ERROR, "database unavailable")).await;
            metrics.ws.close(WsClose::Code(INTERNAL_ERROR));
            return;
        }
    };
    let current = log.cursor;
    // A cursor whose next events were pruned, or one this database never
    // handed out (it is ahead: the database was restored from an older
    // backup), cannot be replayed: the client re-lists and goes on from
    // `current` (a `resync` frame right after `ready`).
    writer.resync = since.is_some_and(|s| s < log.pruned_through || s > current);
    writer.last = match since {
        Some(s) if !writer.resync => s.max(0),
        _ => current,
    };
    let subscription = gateway.registry.register(user.id);
    if let Some(hash) = token_hash {
        let refused = match ctx.service.check_token(&hash, true).await {
            Ok(Some(checked)) => {
                writer.token = Some(TokenWatch::new(hash, &checked));
                None
            }
            Ok(None) => Some((POLICY_VIOLATION, "token revoked")),
            Err(e) => {
                tracing::error!(error = %e, "websocket: cannot check the token");
                Some((INTERNAL_ERROR, "database unavailable"))
            }
        };
        if let Some((code, reason)) = refused {
            gateway
                .registry
                .unregister(subscription.user, subscription.id);
            Box::pin(writer.close(code, reason)).await;
            metrics.ws.close(WsClose::Code(code));
            return;
        }
    }
    if let Some(presence) = &gateway.presence {
        // Before `ready`: once a client is told it is connected, no node
        // sends it a push (bounded: Redis down delays a connection ≤ 1 s).
        Box::pin(presence.joined(user.id)).await;
    }
    writer.overflow = subscription.overflow.clone();
    let (id, user_id) = (subscription.id, subscription.user);
    let (replies_tx, replies_rx) = flume::bounded(REPLIES);
    let local = CancellationToken::new();
    let last_seen = Arc::new(AtomicI64::new(now_ms()));
    tracing::debug!(user = %user.phone_number, connection = id, since = ?since, "websocket open");

    let ready = ServerFrame::Ready {
        user: user.clone(),
        cursor: current.to_string(),
    };
    let token = writer.token.clone();
    let writer_task = tokio::spawn(writer.run(
        ready,
        subscription,
        replies_rx,
        gateway.shutdown.clone(),
        local.clone(),
        last_seen.clone(),
    ));
    let mut stream = stream;
    let ending = read_loop(
        &mut stream,
        &ctx,
        &user,
        token.as_deref(),
        replies_tx,
        &local,
        &last_seen,
    )
    .await;
    if ending == Ending::TooBig {
        too_big.store(true, Ordering::SeqCst);
    }
    local.cancel();
    // A panicked writer said nothing: the connection is dropped.
    let closed = writer_task.await.unwrap_or(WsClose::Dropped);
    metrics.ws.close(closed);
    if ending == Ending::TooBig {
        // The read half is held (not read) a moment longer; see `LINGER`.
        tokio::select! {
            () = tokio::time::sleep(LINGER) => {}
            () = gateway.shutdown.cancelled() => {}
        }
    }
    drop(stream);
    gateway.registry.unregister(user_id, id);
    if let Some(presence) = &gateway.presence {
        Box::pin(presence.left(user_id)).await;
    }
    tracing::debug!(user = %user.phone_number, connection = id, "websocket closed");
}

type Sink = SplitSink<WebSocket, Message>;

/// What woke a connection's writer.
enum Wake {
    /// The server is shutting down.
    Shutdown,
    /// The reader ended: the peer closed or failed.
    PeerGone,
    /// The queue overflowed: the peer does not keep up.
    Overflow,
    /// An event for the user.
    Item(Outbound),
    /// An answer to a client frame.
    Reply(Box<ServerFrame>),
    /// Time to ping.
    Ping,
    /// A channel closed.
    Ended,
}

/// The sending half of a connection.
struct Writer {
    sink: Sink,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    /// How the connection ended, once the writer closed it.
    closed: Option<WsClose>,
    user: Uuid,
    /// Cursor of the last durable event sent.
    last: i64,
    /// `since` cannot be replayed (pruned, or never handed out): `resync`
    /// follows `ready`.
    resync: bool,
    /// The token that opened the connection, and how recently it was checked.
    token: Option<Arc<TokenWatch>>,
    /// When this connection last recorded a use of its token (ms).
    touched_at: i64,
    /// How often an open connection records a use of its token (ms): an
    /// open WebSocket keeps its token from expiring.
    touch_every_ms: i64,
    /// When this connection last pinged its peer (ms).
    pinged_at: i64,
    /// Fires when the connection's queue overflowed.
    overflow: Arc<Notify>,
    /// Set by the reader when the peer sent a message over the protocol
    /// limit: the close is then 1009, not a plain close handshake.
    too_big: Arc<AtomicBool>,
}

impl Writer {
    async fn run(
        mut self,
        ready: ServerFrame,
        mut subscription: Subscription,
        mut replies: flume::Receiver<Box<ServerFrame>>,
        shutdown: CancellationToken,
        local: CancellationToken,
        last_seen: Arc<AtomicI64>,
    ) -> WsClose {
        let served = self
            .serve(
                ready,
                &mut subscription,
                &mut replies,
                &shutdown,
                &local,
                &last_seen,
            )
            .await;
        if let Err(e) = &served {
            tracing::debug!(error = %e, "websocket writer ended");
            if e.is::<SlowPeer>() {
                self.metrics.ws.slow_consumers.inc();
            }
        }
        local.cancel();
        match (self.closed, served) {
            (Some(closed), _) => closed,
            (None, Ok(())) => WsClose::Peer,
            (None, Err(_)) => WsClose::Dropped,
        }
    }

    async fn serve(
        &mut self,
        ready: ServerFrame,
        subscription: &mut Subscription,
        replies: &mut flume::Receiver<Box<ServerFrame>>,
        shutdown: &CancellationToken,
        local: &CancellationToken,
        last_seen: &AtomicI64,
    ) -> anyhow::Result<()> {
        Box::pin(self.start(ready)).await?;
        // One timer for the ping and the token's keep-alive: a token whose
        // `TOKEN_TTL` is shorter than four pings is kept alive on its own
        // schedule (a quarter of the TTL), not on the ping's.
        let mut ping = tokio::time::interval(self.tick_every());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            let wake = tokio::select! {
                biased;
                () = shutdown.cancelled() => Wake::Shutdown,
                () = local.cancelled() => Wake::PeerGone,
                () = subscription.overflow.notified() => Wake::Overflow,
                item = subscription.queue.recv_async() => item.map_or(Wake::Ended, Wake::Item),
                frame = replies.recv_async() => frame.map_or(Wake::Ended, Wake::Reply),
                _ = ping.tick() => Wake::Ping,
            };
            // The work of each wake-up is boxed, so that an idle connection
            // carries only the small future of the `select!` above.
            match wake {
                Wake::Item(item) => Box::pin(self.forward(item, subscription)).await?,
                Wake::Reply(frame) => Box::pin(self.answer(frame, replies)).await?,
                Wake::Ping => {
                    if !Box::pin(self.ping(last_seen)).await? {
                        return Ok(());
                    }
                }
                Wake::Shutdown => {
                    Box::pin(self.goodbye(subscription, replies)).await?;
                    return Ok(());
                }
                Wake::PeerGone if self.token.as_ref().is_some_and(|t| t.revoked()) => {
                    Box::pin(self.close(POLICY_VIOLATION, "token revoked")).await;
                    return Ok(());
                }
                Wake::PeerGone if self.too_big.load(Ordering::SeqCst) => {
                    Box::pin(self.close(MESSAGE_TOO_BIG, super::TOO_BIG_REASON)).await;
                    return Ok(());
                }
                Wake::PeerGone => {
                    // The peer closed (or the reader failed): complete the close handshake.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
                    return Ok(());
                }
                Wake::Overflow => {
                    self.metrics.ws.slow_consumers.inc();
                    Box::pin(self.close(
                        TRY_AGAIN_LATER,
                        "too slow: reconnect with since=<last cursor>",
                    ))
                    .await;
                    return Ok(());
                }
                Wake::Ended => return Ok(()),
            }
        }
    }

    /// The `ready` frame, then `resync` (when `since` cannot be replayed)
    /// or everything after `since`.
    async fn start(&mut self, ready: ServerFrame) -> anyhow::Result<()> {
        self.feed(&ready).await?;
        if self.resync {
            self.feed(&ServerFrame::Resync {
                cursor: self.last.to_string(),
            })
            .await?;
        }
        self.catch_up().await?;
        self.flush().await
    }

    /// Sends a burst of queued events with one flush.
    async fn forward(
        &mut self,
        first: Outbound,
        subscription: &mut Subscription,
    ) -> anyhow::Result<()> {
        self.ensure_token().await?;
        self.deliver(first).await?;
        for _ in 0..BURST {
            let Ok(item) = subscription.queue.try_recv() else {
                break;
            };
            self.deliver(item).await?;
        }
        self.flush().await
    }

    /// Before delivering: re-checks the connection's token once its last
    /// check is older than the token cache's TTL, and closes the
    /// connection (1008) when it was revoked or has expired, even if the
    /// bus lost the revocation. A store failure keeps the connection (the
    /// next delivery checks again).
    async fn ensure_token(&mut self) -> anyhow::Result<()> {
        if let Some(token) = self.token.clone()
            && !still_valid(&self.service, &token).await
        {
            self.close(POLICY_VIOLATION, "token revoked").await;
            anyhow::bail!("the connection's token was revoked");
        }
        Ok(())
    }

    /// Sends a burst of replies with one flush.
    async fn answer(
        &mut self,
        first: Box<ServerFrame>,
        replies: &mut flume::Receiver<Box<ServerFrame>>,
    ) -> anyhow::Result<()> {
        self.feed(&first).await?;
        for _ in 0..BURST {
            let Ok(frame) = replies.try_recv() else { break };
            self.feed(&frame).await?;
        }
        self.flush().await
    }

    /// The period of the connection's timer: the ping's, or the token's
    /// keep-alive when that is more frequent.
    fn tick_every(&self) -> Duration {
        match self.token {
            Some(_) => PING_INTERVAL.min(Duration::from_millis(
                u64::try_from(self.touch_every_ms).unwrap_or(0).max(100),
            )),
            None => PING_INTERVAL,
        }
    }

    /// On the connection's timer: pings the peer when a ping is due, and
    /// records a use of the token when one is due; `false` (after closing)
    /// when the peer has been silent too long.
    async fn ping(&mut self, last_seen: &AtomicI64) -> anyhow::Result<bool> {
        // A tick may come a little early: a tenth of the period is slack.
        let slack = |every: i64| every - every / 10;
        let ping_every = PING_INTERVAL.as_millis() as i64;
        if now_ms() - self.pinged_at >= slack(ping_every) {
            let silent_ms = now_ms() - last_seen.load(Ordering::Relaxed);
            if silent_ms > IDLE_TIMEOUT.as_millis() as i64 {
                self.close(GOING_AWAY, "idle timeout").await;
                return Ok(false);
            }
            timed(
                &self.overflow,
                self.sink.send(Message::Ping(Default::default())),
            )
            .await?;
            self.pinged_at = now_ms();
        }
        let now = now_ms();
        if let Some(token) = &self.token
            && now - self.touched_at >= slack(self.touch_every_ms)
        {
            self.service.keep_token_alive(&token.hash);
            self.touched_at = now;
        }
        Ok(true)
    }

    /// At shutdown: flush what was committed and queued, then say goodbye (1001).
    async fn goodbye(
        &mut self,
        subscription: &mut Subscription,
        replies: &mut flume::Receiver<Box<ServerFrame>>,
    ) -> anyhow::Result<()> {
        while let Ok(item) = subscription.queue.try_recv() {
            self.deliver(item).await?;
        }
        while let Ok(frame) = replies.try_recv() {
            self.feed(&frame).await?;
        }
        self.close(GOING_AWAY, "server shutting down").await;
        Ok(())
    }

    /// Sends a queued item in cursor order: skips what was sent, fills gaps from the store.
    async fn deliver(&mut self, item: Outbound) -> anyhow::Result<()> {
        if let Payload::TokenRevoked { token_hash } = item.payload.as_ref() {
            if self.token.as_ref().is_some_and(|t| &t.hash == token_hash) {
                self.close(POLICY_VIOLATION, "token revoked").await;
                anyhow::bail!("the connection's token was revoked");
            }
            return Ok(());
        }
        if let Payload::CatchUp = item.payload.as_ref() {
            return Box::pin(self.resync()).await;
        }
        match item.cursor {
            None => self.feed(&frame_of(None, &item.payload)).await,
            Some(cursor) if cursor <= self.last => Ok(()),
            Some(cursor) if cursor == self.last + 1 => {
                self.feed_event(cursor, &item.payload).await?;
                self.last = cursor;
                Ok(())
            }
            Some(cursor) => {
                Box::pin(self.catch_up()).await?;
                if cursor > self.last {
                    // The store did not show it yet (cannot happen after a commit); send it anyway.
                    self.feed_event(cursor, &item.payload).await?;
                    self.last = cursor;
                }
                Ok(())
            }
        }
    }

    /// The bus may have lost events, revocations included: re-check the
    /// token, then send what the store has after `last`.
    async fn resync(&mut self) -> anyhow::Result<()> {
        if let Some(token) = &self.token {
            let checked = self.service.check_token(&token.hash, true).await?;
            token.checked(checked.as_ref());
        }
        self.ensure_token().await?;
        self.catch_up().await
    }

    /// Sends every event of the user's log after `last`, from the store.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let events = self
                .service
                .events_since(self.user, self.last, REPLAY_PAGE)
                .await?;
            if events
                .first()
                .is_some_and(|(first, _)| *first > self.last + 1)
            {
                // Numbers have no holes, so the events in between were
                // pruned while this connection was behind: never skip them
                // silently.
                Box::pin(self.pruned_meanwhile()).await?;
                continue;
            }
            let full = events.len() as u32 == REPLAY_PAGE;
            for (cursor, event) in events {
                self.feed(&durable_frame(cursor, event)).await?;
                self.last = cursor;
            }
            if !full {
                return Ok(());
            }
            self.flush().await?;
        }
    }

    /// Events after `last` were pruned: tell the client to re-list and go on
    /// from the newest event (`resync`).
    async fn pruned_meanwhile(&mut self) -> anyhow::Result<()> {
        let log = self.service.event_log(self.user).await?;
        self.last = self.last.max(log.cursor);
        tracing::debug!(
            cursor = self.last,
            "websocket: events were pruned meanwhile: resync"
        );
        self.feed(&ServerFrame::Resync {
            cursor: self.last.to_string(),
        })
        .await
    }

    async fn feed(&mut self, frame: &ServerFrame) -> anyhow::Result<()> {
        let text = serde_json::to_string(frame)?;
        self.feed_text(text).await
    }

    /// Sends a durable payload at `cursor`: its frame is serialized once per
    /// node (the first recipient's connection does it) and only the cursor
    /// differs per recipient.
    async fn feed_event(&mut self, cursor: i64, payload: &Payload) -> anyhow::Result<()> {
        if let Payload::Durable { event, frame } = payload {
            let template = frame.get_or_init(|| frame_template(event));
            if let Some(text) = with_cursor(template, cursor) {
                return self.feed_text(text).await;
            }
        }
        self.feed(&frame_of(Some(cursor), payload)).await
    }

    async fn feed_text(&mut self, text: String) -> anyhow::Result<()> {
        self.metrics.ws.frames_out.inc();
        timed(&self.overflow, self.sink.feed(Message::Text(text.into()))).await
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        timed(&self.overflow, self.sink.flush()).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        self.closed = Some(WsClose::Code(code));
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.send(frame)).await;
    }
}

/// A socket write that gives up when the peer stops reading.
/// A socket write that gives up when the peer stops reading: after
/// [`WRITE_TIMEOUT`], or as soon as the queue overflows while the write is
/// blocked (a close frame could not get through a full socket anyway).
async fn timed(
    overflow: &Notify,
    io: impl Future<Output = Result<(), axum::Error>>,
) -> anyhow::Result<()> {
    tokio::select! {
        written = tokio::time::timeout(WRITE_TIMEOUT, io) => {
            written.map_err(|_| SlowPeer("write timed out: the peer does not read"))??;
            Ok(())
        }
        () = overflow.notified() => Err(SlowPeer("queue overflow while the socket was full: dropping the peer").into()),
    }
}

/// The peer does not read: a write timed out, or the queue overflowed while
/// a write was blocked. The connection is dropped (a slow consumer).
#[derive(Debug)]
struct SlowPeer(&'static str);

impl std::fmt::Display for SlowPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SlowPeer {}

fn durable_frame(cursor: i64, event: Event) -> ServerFrame {
    let cursor = cursor.to_string();
    match event {
        Event::Message { message } => ServerFrame::Message { message, cursor },
        Event::Receipt(r) => ServerFrame::Receipt {
            chat_id: r.chat_id,
            message_id: r.message_id,
            status: r.status,
            user: r.user,
            at: r.at,
            cursor,
        },
    }
}

/// How a durable frame's text ends when its cursor is empty: the cursor is
/// the last field of `message` and `receipt` frames.
const EMPTY_CURSOR_END: &str = "\"cursor\":\"\"}";

/// The text of `event`'s frame with an empty cursor, for [`with_cursor`]
/// (empty if it cannot be serialized: every connection then serializes the
/// frame itself).
fn frame_template(event: &Event) -> String {
    let mut frame = durable_frame(0, event.clone());
    if let ServerFrame::Message { cursor, .. } | ServerFrame::Receipt { cursor, .. } = &mut frame {
        cursor.clear();
    }
    serde_json::to_string(&frame).unwrap_or_default()
}

/// The frame text of [`frame_template`] with `cursor` filled in; `None`
/// when the template does not end with the empty cursor.
fn with_cursor(template: &str, cursor: i64) -> Option<String> {
    use std::fmt::Write as _;
    if !template.ends_with(EMPTY_CURSOR_END) {
        return None;
    }
    let head = &template[..template.len() - 2];
    let mut text = String::with_capacity(template.len() + 20);
    text.push_str(head);
    write!(text, "{cursor}\"}}").ok()?;
    Some(text)
}

fn frame_of(cursor: Option<i64>, payload: &Payload) -> ServerFrame {
    match payload {
        Payload::Durable { event, .. } => durable_frame(cursor.unwrap_or_default(), event.clone()),
        Payload::Typing {
            chat_id,
            user,
            is_typing,
        } => ServerFrame::Typing {
            chat_id: *chat_id,
            user: user.clone(),
            is_typing: *is_typing,
        },
        // Handled by `Writer::deliver` before any frame is built.
        Payload::TokenRevoked { .. } | Payload::CatchUp => ServerFrame::Error {
            reference: None,
            code: "unauthorized".into(),
            message: "the token was revoked".into(),
        },
    }
}

/// The answer to a client frame, once its work is done (`None`: nothing to say).
type Reply = BoxFuture<'static, Option<ServerFrame>>;

fn reply_now(frame: Option<ServerFrame>) -> Reply {
    Box::pin(std::future::ready(frame))
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The peer closed or failed, or the writer stopped.
    Done,
    /// A message over the protocol layer's limit: the peer gets a 1009 close.
    TooBig,
}

/// Whether a read error is a message over the protocol layer's size limit
/// (after which the stream cannot be read any further without buffering
/// the rest of that message).
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { .. },
        )) = e.downcast_ref::<tungstenite::Error>()
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Reads client frames until the peer leaves or the writer stops. Each frame
/// is started in order (sends are queued for commit in frame order) and up to
/// [`IN_FLIGHT`] of them wait for their commit at once; their answers go out
/// in frame order.
async fn read_loop(
    stream: &mut SplitStream<WebSocket>,
    ctx: &Context,
    user: &User,
    token: Option<&TokenWatch>,
    replies: flume::Sender<Box<ServerFrame>>,
    local: &CancellationToken,
    last_seen: &AtomicI64,
) -> Ending {
    let mut pending: FuturesOrdered<Reply> = FuturesOrdered::new();
    loop {
        let next = tokio::select! {
            biased;
            () = local.cancelled() => return Ending::Done,
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if let Some(frame) = reply
                    && !forward(&replies, frame).await
                {
                    return Ending::Done;
                }
                continue;
            }
            next = stream.next(), if pending.len() < IN_FLIGHT => next,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) if is_too_big(&e) => {
                tracing::debug!(error = %e, "websocket: message over the protocol limit");
                return Ending::TooBig;
            }
            Some(Err(_)) | None => return Ending::Done,
        };
        last_seen.store(now_ms(), Ordering::Relaxed);
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            ctx.metrics.ws.frames_in.inc();
        }
        // The common case (checked within the last second) costs a clock
        // read; only a re-check is boxed.
        if matches!(message, Message::Text(_))
            && let Some(token) = token
            && !token.trusted()
            && !Box::pin(still_valid(&ctx.service, token)).await
        {
            // The writer closes the connection with 1008.
            return Ending::Done;
        }
        let reply = match message {
            // Boxed: starting a command is a large future that an idle connection should not carry.
            Message::Text(text) => Box::pin(start(ctx, user, text.as_str())).await,
            Message::Binary(_) => reply_now(Some(error_frame(
                None,
                "invalid_frame",
                "binary frames are not supported",
            ))),
            Message::Close(_) => return Ending::Done,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        pending.push_back(reply);
    }
}

/// Whether the connection's token may still act: its last check is recent
/// enough, or a new one (through the token cache) finds it valid. A store
/// failure lets the frame through (it meets the same store next).
async fn still_valid(service: &Service, token: &TokenWatch) -> bool {
    if token.trusted() {
        return true;
    }
    if !token.revoked() {
        match service.check_token(&token.hash, false).await {
            Ok(checked) => token.checked(checked.as_ref()),
            Err(e) => tracing::debug!(error = %e, "websocket: cannot re-check the token"),
        }
    }
    !token.revoked()
}

/// Hands a reply to the writer; `false` when the writer is gone.
async fn forward(replies: &flume::Sender<Box<ServerFrame>>, frame: ServerFrame) -> bool {
    // Most replies fit at once; waiting for room is the rare, boxed path.
    match replies.try_send(Box::new(frame)) {
        Ok(()) => true,
        Err(flume::TrySendError::Full(frame)) => Box::pin(replies.send_async(frame)).await.is_ok(),
        Err(flume::TrySendError::Disconnected(_)) => false,
    }
}

/// Starts one client frame: validates it and queues its work (in frame
/// order); the returned future finishes the work and gives the answer.
async fn start(ctx: &Context, user: &User, text: &str) -> Reply {
    let command = match frames::parse(text) {
        Ok(command) => command,
        Err(e) => return reply_now(Some(error_frame(e.reference, e.code, e.message))),
    };
    match command {
        Command::Ping => reply_now(Some(ServerFrame::Pong)),
        Command::Send {
            reference,
            chat_id,
            to,
            content,
            client_message_id,
        } => {
            let draft = Draft::parse(content, client_message_id);
            let to = Recipient::parse(chat_id, to.as_deref());
            queue_send(ctx, user, reference, draft, to).await
        }
        Command::Sandbox { from, to, content } => {
            let from = from.trim();
            if from != user.phone_number && from != user.id.to_string() {
                return reply_now(Some(error_frame(
                    None,
                    "forbidden",
                    "\"From\" must be this connection's user",
                )));
            }
            let draft = Draft::parse(content, None);
            let to = Recipient::parse(None, Some(&to));
            queue_send(ctx, user, None, draft, to).await
        }
        Command::Receipt {
            chat_id,
            message_id,
            status,
        } => {
            let (service, user) = (ctx.service.clone(), user.id);
            Box::pin(async move {
                match service
                    .mark_status_of(user, chat_id, message_id, status)
                    .await
                {
                    Ok(_) => None,
                    Err(e) => Some(service_error_frame(None, e)),
                }
            })
        }
        Command::Typing { chat_id, is_typing } => {
            let (service, user) = (ctx.service.clone(), user.clone());
            Box::pin(async move {
                match service.typing(&user, chat_id, is_typing).await {
                    Ok(()) => None,
                    Err(e) => Some(service_error_frame(None, e)),
                }
            })
        }
    }
}

/// Queues a send now; its `ack` (or `error`) comes after the commit.
async fn queue_send(
    ctx: &Context,
    user: &User,
    reference: Option<String>,
    draft: Result<Draft, Error>,
    to: Result<Recipient, Error>,
) -> Reply {
    let queued = match (draft, to) {
        (Ok(draft), Ok(to)) => ctx.service.queue_send(user.clone(), to, draft).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match queued {
        Ok(pending) => Box::pin(async move { Some(ack_or_error(reference, pending.await)) }),
        Err(e) => reply_now(Some(ack_or_error(reference, Err(e)))),
    }
}

fn ack_or_error(
    reference: Option<String>,
    outcome: Result<missive_protocol::Message, Error>,
) -> ServerFrame {
    match outcome {
        Ok(message) => ServerFrame::Ack { reference, message },
        Err(e) => service_error_frame(reference, e),
    }
}

/// The `error` frame of a refused or failed use case (its cause, if any, is logged).
fn service_error_frame(reference: Option<String>, error: Error) -> ServerFrame {
    if let Some(cause) = error.cause() {
        tracing::error!(code = %error.code(), cause, "websocket command failed");
    }
    error_frame(reference, error.code().as_str(), error.message().to_owned())
}

fn error_frame(reference: Option<String>, code: &str, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        reference,
        code: code.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use missive_protocol::{Message, MessageStatus};

    use super::*;
    use crate::domain::event::ReceiptEvent;

    fn events() -> Vec<Event> {
        let message = Message {
            id: Uuid::now_v7(),
            chat_id: Uuid::now_v7(),
            seq: 7,
            sender: "+1234567890".into(),
            // Text that looks like the end of a frame must not confuse the splice.
            content: "say \"cursor\":\"\"} and \u{1F600}".into(),
            created_at: "2026-01-01T12:00:00.123Z".into(),
            client_message_id: Some("k-1".into()),
            status: MessageStatus::Sent,
        };
        vec![
            Event::Message { message },
            Event::Receipt(ReceiptEvent {
                chat_id: Uuid::now_v7(),
                message_id: Uuid::now_v7(),
                status: MessageStatus::Read,
                user: "+1987654321".into(),
                at: "2026-01-01T12:00:01.000Z".into(),
            }),
        ]
    }

    #[test]
    fn a_shared_frame_with_its_cursor_is_the_frame_serialized_for_that_cursor() {
        for event in events() {
            let template = frame_template(&event);
            for cursor in [1, 42, 1_000_000_007, i64::MAX] {
                let shared = with_cursor(&template, cursor).expect("the cursor ends the frame");
                let own = serde_json::to_string(&durable_frame(cursor, event.clone()))
                    .expect("serializes");
                assert_eq!(shared, own);
            }
        }
    }

    #[test]
    fn a_template_without_the_empty_cursor_at_its_end_is_not_spliced() {
        assert_eq!(with_cursor("", 1), None);
        assert_eq!(with_cursor("{\"type\":\"typing\"}", 1), None);
    }
}
