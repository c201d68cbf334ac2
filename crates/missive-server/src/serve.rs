//! The accept loop: every TCP connection of the node, HTTP and WebSocket.
//!
//! `axum::serve` never times a connection out: a client that sends nothing,
//! or dribbles a header, or idles after a keep-alive request holds its socket
//! (and up to hyper's 400 KB read buffer) for as long as it likes. This loop
//! serves the same router through hyper directly, with three limits:
//!
//! - **At most `max_connections` at once.** The loop takes a permit *before*
//!   `accept`, so past the cap it waits (new clients queue in the kernel's
//!   backlog) instead of spinning or running out of file descriptors. The
//!   permit travels with the socket, so an upgraded WebSocket holds its slot
//!   until it closes.
//! - **A request head must arrive within `header_timeout`,** counted from the
//!   accept, or from the first byte of a later request on a kept-alive
//!   connection. hyper's own `header_read_timeout` cannot tell a slow head
//!   from an idle keep-alive (its timer starts as soon as it waits for the
//!   next request), so the phases are tracked here, in [`Watchdog`].
//! - **An idle keep-alive connection closes after `idle_timeout`.**
//! - **A request body must arrive within `body_timeout`** of its head
//!   ([`TimedBody`]): past it, reading the body fails, the answer is a 408
//!   (whatever the handler made of the failed read) and the connection
//!   closes. The deadline is one total for the whole body (bodies are at
//!   most 64 KiB); [`TimedBody`] is the one place to turn it into a minimum
//!   rate once large uploads exist.
//! - **At most `max_per_address` connections per client address** (IPv6:
//!   per /64), counted per TCP peer at accept: the forwarded address a
//!   proxy names is known only per request, so trusted proxies' own
//!   addresses are exempt instead. Past it the new connection gets a 429
//!   written at once (when the socket takes it) and is closed; it never
//!   waits, and never holds a slot of the others.
//!
//! hyper's read buffer is capped at [`MAX_READ_BUFFER`], so an oversized
//! header block is refused (431) as it arrives instead of being buffered.
//!
//! hyper answers a request it cannot parse itself, before the router runs:
//! 400 (bad request line, header or version), 431 (more than 100 headers, or
//! a head over the read buffer) and 414 (a URI over 64 KiB that still fits),
//! each with an empty body. The socket wrapper recognises exactly that
//! answer on its way out and gives it the API's `{"code","message"}` body
//! (see [`json_error_for`]).
//! Once a connection is upgraded to a WebSocket, hyper hands the socket over
//! and these timers stop; the gateway's ping and idle rules take over.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::security::caps::{self, PerKey};

/// Largest read buffer of a connection: a request head (request line and
/// headers) that does not fit is answered 431 by hyper as soon as the buffer
/// is full. The bound is loose (one read may bring in more, and a head that
/// arrived whole is parsed), so the router checks it again: headers over
/// 16 KiB, or a head over this size, get its JSON 431 too.
pub const MAX_READ_BUFFER: usize = 32 * 1024;

/// The connection limits of [`serve`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Concurrent TCP connections (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Concurrent TCP connections of one client address (IPv6: one /64); 0: no cap.
    pub max_per_address: usize,
    /// Peers exempt from `max_per_address` (the trusted proxies).
    pub exempt: Arc<[IpNet]>,
    /// Time allowed to receive a whole request head.
    pub header_timeout: Duration,
    /// Time allowed to receive the whole body of a request, from its head.
    pub body_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
}

/// The timers of one connection (see [`Watchdog`]).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    body: Duration,
    idle: Duration,
}

/// Open connections per client address, for `max_per_address`.
struct PerAddress {
    exempt: Arc<[IpNet]>,
    cap: Arc<PerKey<IpAddr>>,
}

/// One counted connection of an address; uncounted when dropped.
type AddressSlot = caps::Slot<IpAddr>;

impl PerAddress {
    /// A cap of `max` connections per address (0: none), `exempt` not counted.
    fn new(max: usize, exempt: Arc<[IpNet]>) -> Self {
        PerAddress {
            exempt,
            cap: Arc::new(PerKey::new(max)),
        }
    }

    /// A slot for a connection from `peer`: `Ok(None)` when uncounted (no
    /// cap, or a trusted proxy), `Err(())` when the address is at its cap.
    fn take(&self, peer: IpAddr) -> Result<Option<AddressSlot>, ()> {
        let peer = peer.to_canonical();
        if self.cap.max() == 0 || self.exempt.iter().any(|net| net.contains(&peer)) {
            return Ok(None);
        }
        let key = crate::security::rate_limit::address_key(peer);
        self.cap.take(key).map(Some).ok_or(())
    }
}

/// What a connection over its address's cap is told before it is closed.
fn too_many_from_address() -> Vec<u8> {
    let body = serde_json::to_vec(&missive_protocol::ErrorBody {
        code: crate::service::ErrorCode::TooManyConnections
            .as_str()
            .to_owned(),
        message: "too many open connections from this address (MAX_CONNECTIONS_PER_ADDRESS)"
            .to_owned(),
    })
    .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\nretry-after: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        crate::gateway::CAP_RETRY_AFTER_SECS,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets every request in flight finish (at most `grace`) and
/// returns. Upgraded WebSockets are not waited for: their owner closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::new(limits.max_per_address, limits.exempt.clone());
    let refusal = too_many_from_address();
    let mut warned_address = false;
    let timeouts = Timeouts {
        header: limits.header_timeout,
        body: limits.body_timeout,
        idle: limits.idle_timeout,
    };
    let connections = TaskTracker::new();
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut warned_full = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if slots.available_permits() > limits.max_connections / 10 {
            warned_full = false;
        }
        let address_slot = match per_address.take(peer.ip()) {
            Ok(slot) => slot,
            Err(()) => {
                if !warned_address {
                    tracing::warn!(
                        peer = %peer.ip(),
                        max_connections_per_address = limits.max_per_address,
                        "an address reached its connection cap: its new connections get 429 and are closed"
                    );
                    warned_address = true;
                }
                // One non-blocking write, then the socket is closed.
                let _ = tcp.try_write(&refusal);
                drop(tcp);
                continue;
            }
        };
        // Small frames (an ack right after a push) must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = match make_service.call(peer).await {
            Ok(router) => router,
            Err(never) => match never {},
        };
        connections.spawn(serve_connection(
            tcp,
            Slot {
                _permit: permit,
                _address: address_slot,
            },
            router,
            timeouts,
            shutdown.clone(),
        ));
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "requests still running at the end of the shutdown grace period"
        );
    }
}

/// Accept errors are per connection (reset before accept) or resource
/// exhaustion (out of file descriptors): neither stops the server, and the
/// latter must not spin the loop.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What a connection holds while it is open: its place under
/// `max_connections` and, when counted, under its address's cap.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// One connection, from accept to close (or to its upgrade to a WebSocket).
async fn serve_connection<S>(
    tcp: TcpStream,
    slot: Slot,
    service: S,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) where
    S: Service<Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let watchdog = Arc::new(Watchdog::new(timeouts));
    let io = TokioIo::new(Guarded {
        tcp,
        watchdog: watchdog.clone(),
        _slot: slot,
        rewrite: None,
    });
    let observed = {
        let watchdog = watchdog.clone();
        tower::service_fn(move |request: axum::http::Request<Incoming>| {
            let service = service.clone();
            let watchdog = watchdog.clone();
            async move {
                watchdog.request_started();
                let timed_out = Arc::new(AtomicBool::new(false));
                let request = request.map(|body| {
                    if body.is_end_stream() {
                        Body::new(body)
                    } else {
                        Body::new(TimedBody::new(body, timeouts.body, timed_out.clone()))
                    }
                });
                let mut response = service.oneshot(request).await;
                if timed_out.load(Ordering::Acquire) {
                    // Whatever the handler made of its failed read, the
                    // answer is a 408, and the rest of the body is not read.
                    tracing::debug!("request body not received in time");
                    let mut timeout = crate::service::Error::new(
                        crate::service::ErrorCode::RequestTimeout,
                        "the request body did not arrive within HTTP_BODY_TIMEOUT",
                    )
                    .into_response();
                    timeout
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    response = Ok(timeout);
                }
                watchdog.response_ready();
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times heads; hyper's timer would also cut idle keep-alives.
        .header_read_timeout(None)
        .max_buf_size(MAX_READ_BUFFER);
    let connection = builder
        .serve_connection(io, TowerToHyperService::new(observed))
        .with_upgrades();
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let check_at = watchdog.next_check();
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check_at) => {
                if let Some(reason) = watchdog.expired() {
                    tracing::debug!(reason, "closing a connection");
                    return;
                }
            }
        }
    }
}

/// A request body that fails once `timeout` has passed since the head
/// arrived without all of it having been read.
///
/// A total deadline, as bodies are small; for uploads, `poll_frame` is
/// where a minimum rate would move the deadline as data arrives.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error a [`TimedBody`] fails with.
#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration, timed_out: Arc<AtomicBool>) -> Self {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timed_out,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting for (the rest of) a request head: `header_timeout` runs.
    Head = 0,
    /// A request is being handled: no timer.
    Busy = 1,
    /// Between requests, nothing received yet: `idle_timeout` runs.
    Idle = 2,
}

/// The per-connection timer state, shared by the socket (which sees bytes
/// arrive), the service (which sees requests start and end) and the
/// connection task (which closes the socket when a deadline has passed).
#[derive(Debug)]
struct Watchdog {
    limits: Timeouts,
    opened: Instant,
    phase: AtomicU8,
    /// Milliseconds after `opened` when the current phase expires.
    deadline_ms: AtomicU64,
}

impl Watchdog {
    fn new(limits: Timeouts) -> Self {
        Watchdog {
            limits,
            opened: Instant::now(),
            phase: AtomicU8::new(Phase::Head as u8),
            deadline_ms: AtomicU64::new(millis(limits.header)),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.opened.elapsed())
    }

    fn enter(&self, phase: Phase, timeout: Duration) {
        self.deadline_ms
            .store(self.now_ms() + millis(timeout), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Bytes arrived: on an idle connection they start the next request head.
    fn bytes_received(&self) {
        if self.phase.load(Ordering::Acquire) == Phase::Idle as u8 {
            self.enter(Phase::Head, self.limits.header);
        }
    }

    fn request_started(&self) {
        self.phase.store(Phase::Busy as u8, Ordering::Release);
    }

    fn response_ready(&self) {
        self.enter(Phase::Idle, self.limits.idle);
    }

    /// When the connection task should look again.
    fn next_check(&self) -> Instant {
        let phase = self.phase.load(Ordering::Acquire);
        let deadline = if phase == Phase::Busy as u8 {
            // The handler's end moves us to Idle; look again within a head timeout.
            self.now_ms() + millis(self.limits.header)
        } else {
            self.deadline_ms.load(Ordering::Relaxed)
        };
        self.opened + Duration::from_millis(deadline)
    }

    /// Why the connection must close now, if it must.
    fn expired(&self) -> Option<&'static str> {
        let phase = self.phase.load(Ordering::Acquire);
        if phase == Phase::Busy as u8 || self.now_ms() < self.deadline_ms.load(Ordering::Relaxed) {
            return None;
        }
        Some(if phase == Phase::Head as u8 {
            "request head not received in time"
        } else {
            "idle keep-alive timeout"
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

/// The TCP stream with the connection's slot and watchdog attached.
struct Guarded {
    tcp: TcpStream,
    watchdog: Arc<Watchdog>,
    /// Released when the socket is dropped (also after a WebSocket upgrade).
    _slot: Slot,
    /// hyper's own error answer, rewritten with a JSON body, being written.
    rewrite: Option<Rewrite>,
}

/// A write replaced by other bytes: hyper is told its `original` bytes were
/// written once all of `bytes` are.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    original: usize,
}

/// Longest head hyper writes for a parse error (status line, `connection`,
/// `content-length` and `date`: about 130 bytes).
const MAX_HYPER_ERROR_HEAD: usize = 512;

/// The answer hyper writes for a request it could not parse, with the API's
/// JSON error body; `None` for anything else.
///
/// hyper's answer is a head alone: `HTTP/1.1 400|414|431 …`, a
/// `content-length: 0` and no `content-type`, written in one piece before
/// any response of the router on that connection (hyper answers a parse
/// error only when nothing else is being written), and never by the router,
/// whose error answers all carry a JSON body.
fn json_error_for(buf: &[u8]) -> Option<Vec<u8>> {
    use crate::service::ErrorCode;
    // Cheap refusals first: every write of the connection passes here,
    // WebSocket frames too after an upgrade (those never start with "H").
    if buf.len() > MAX_HYPER_ERROR_HEAD || !buf.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let lines = head.strip_suffix("\r\n\r\n")?;
    let (code, message) = match head.strip_prefix("HTTP/1.1 ")?.get(..4)? {
        "400 " => (
            ErrorCode::InvalidRequest,
            "the request line or a header is malformed",
        ),
        "414 " => (ErrorCode::UriTooLong, "the request URI is too long"),
        "431 " => (
            ErrorCode::HeadersTooLarge,
            "the request head has more than 100 headers or is over 32 KiB",
        ),
        _ => return None,
    };
    let lines: Vec<&str> = lines.split("\r\n").collect();
    let empty = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    if lines
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("content-type:"))
    {
        return None;
    }
    let body = serde_json::to_vec(&missive_protocol::ErrorBody {
        code: code.as_str().to_owned(),
        message: message.to_owned(),
    })
    .ok()?;
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    for (i, line) in lines.iter().enumerate() {
        if i == empty {
            out.extend_from_slice(b"content-type: application/json\r\n");
            out.extend_from_slice(format!("content-length: {}", body.len()).as_bytes());
        } else {
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Some(out)
}

impl Guarded {
    /// Writes `buf`, or its JSON rewrite when it is hyper's own error answer.
    fn write_or_rewrite(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Only between requests: while the router's answer is written, the
        // connection is busy.
        if self.rewrite.is_none()
            && self.watchdog.phase.load(Ordering::Acquire) != Phase::Busy as u8
            && let Some(bytes) = json_error_for(buf)
        {
            self.rewrite = Some(Rewrite {
                bytes,
                written: 0,
                original: buf.len(),
            });
        }
        let Some(rewrite) = self.rewrite.as_mut() else {
            return Pin::new(&mut self.tcp).poll_write(cx, buf);
        };
        while rewrite.written < rewrite.bytes.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.tcp).poll_write(cx, &rewrite.bytes[rewrite.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rewrite.written += n;
        }
        let original = rewrite.original;
        self.rewrite = None;
        Poll::Ready(Ok(original))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watchdog.bytes_received();
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_or_rewrite(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's error answer is one slice (a head without a body); a
        // vectored write may report fewer bytes than offered, so writing
        // just the first slice is allowed.
        let first = bufs.iter().find(|b| !b.is_empty());
        if let Some(first) = first
            && (this.rewrite.is_some() || first.starts_with(b"HTTP/1.1 4"))
        {
            return this.write_or_rewrite(cx, first);
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_answers_get_the_json_body() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 20:02:27 GMT\r\n\r\n";
        let rewritten =
            String::from_utf8(json_error_for(hyper).expect("rewritten")).expect("utf-8");
        let (head, body) = rewritten.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(
            head.ends_with("date: Tue, 01 Dec 2026 20:02:27 GMT"),
            "{head}"
        );
        let body: missive_protocol::ErrorBody = serde_json::from_str(body).expect("JSON");
        assert_eq!(body.code, "headers_too_large");

        let bad = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8_lossy(&json_error_for(bad).expect("rewritten"))
                .contains("invalid_request")
        );
        let long = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8_lossy(&json_error_for(long).expect("rewritten"))
                .contains("uri_too_long")
        );
    }

    #[test]
    fn other_writes_are_left_alone() {
        for untouched in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"code\":\"x\"}",
        ] {
            assert!(json_error_for(untouched).is_none(), "{:?}", String::from_utf8_lossy(untouched));
        }
    }

    fn limits() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_address_gets_at_most_its_cap_and_trusted_proxies_are_not_counted() {
        let counts = PerAddress::new(
            2,
            Arc::from(vec![crate::config::parse_net("10.0.0.1").expect("a net")]),
        );
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        let a = counts.take(ip("127.0.0.1")).expect("free");
        let b = counts.take(ip("::ffff:127.0.0.1")).expect("free");
        assert!(a.is_some() && b.is_some());
        assert!(counts.take(ip("127.0.0.1")).is_err());
        assert!(counts.take(ip("127.0.0.2")).is_ok_and(|s| s.is_some()));
        // One /64 is one address.
        let v6 = counts.take(ip("2001:db8::1")).expect("free");
        let v6b = counts.take(ip("2001:db8::ffff:2")).expect("free");
        assert!(counts.take(ip("2001:db8::3")).is_err());
        assert!(counts.take(ip("2001:db8:0:1::3")).is_ok());
        for _ in 0..10 {
            assert!(counts.take(ip("10.0.0.1")).is_ok_and(|s| s.is_none()));
        }
        drop(a);
        assert!(counts.take(ip("127.0.0.1")).is_ok_and(|s| s.is_some()));
        drop((b, v6, v6b));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_must_arrive_within_the_header_timeout() {
        let watchdog = Watchdog::new(limits());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(watchdog.expired(), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            watchdog.expired(),
            Some("request head not received in time")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_never_expires_and_an_idle_one_gets_the_idle_timeout() {
        let watchdog = Watchdog::new(limits());
        watchdog.request_started();
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(watchdog.expired(), None);
        watchdog.response_ready();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(watchdog.expired(), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(watchdog.expired(), Some("idle keep-alive timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_of_the_next_request_starts_the_header_timeout() {
        let watchdog = Watchdog::new(limits());
        watchdog.request_started();
        watchdog.response_ready();
        tokio::time::advance(Duration::from_secs(30)).await;
        watchdog.bytes_received();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            watchdog.expired(),
            Some("request head not received in time")
        );
    }
}
