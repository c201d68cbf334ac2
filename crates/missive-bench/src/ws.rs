//! `ws`: durable 1:1 messages over WebSocket, sender → server → recipient.
//!
//! `pairs` senders each send `messages_per_sender` messages to their own
//! recipient with `{"type":"send","ref","to","content"}` frames whose
//! content is the send time (nanoseconds on this process's monotonic clock),
//! keeping at most `window` sends un-answered (pipelining: the server
//! commits a connection's sends in frame order and answers them in order).
//! Each recipient measures the end-to-end latency of every `message` frame
//! and checks, by the per-chat `seq`, that each message arrived exactly once.
//! With `--rate`, the senders are paced to a fixed total rate instead:
//! `--phase spread` (the default) staggers the senders evenly over the period,
//! `--phase aligned` makes every sender fire at the same ticks (bursts of
//! `pairs` messages every `pairs / rate` seconds).
//! With two nodes (`--cluster`), the senders connect to node A and the
//! recipients to node B: every message crosses the Redis bus.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use futures_util::{FutureExt, SinkExt, StreamExt};
use missive_protocol::{ClientFrame, ServerFrame};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::report::{Latencies, emit, round3};
use crate::server::{CpuMeter, Server, WriterBatches};
use crate::setup::{self, BenchUser, Socket};

/// Frames handled per wake-up before the sender tops its window up again.
const DRAIN: usize = 256;
/// Messages per sender at full speed unless told otherwise.
const DEFAULT_MESSAGES: u64 = 5000;
/// Seconds of traffic per sender in paced mode unless told otherwise.
const DEFAULT_PACED_SECONDS: f64 = 10.0;

/// Options of `ws`.
#[derive(Debug, Clone, Args)]
pub struct WsArgs {
    /// Sender/recipient pairs (each a user with its own connection).
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Messages each sender sends [default: 5000; with --rate, 10 seconds' worth].
    #[arg(long)]
    pub messages_per_sender: Option<u64>,
    /// Un-acked sends in flight per sender (pipelining).
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// Paced mode: total messages per second over all senders (e.g. 1000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Paced mode: `spread` staggers the senders' ticks evenly over the period
    /// (a smooth stream); `aligned` makes all senders send at the same instants
    /// (in-phase bursts of `pairs` messages every `pairs / rate` s).
    #[arg(long, value_enum, default_value_t = Phase::Spread)]
    pub phase: Phase,
    /// Seconds the recipients keep waiting after the last ack.
    #[arg(long, default_value_t = 5.0)]
    pub grace: f64,
}

/// How paced senders' ticks relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Sender `i` of `n` starts `i / n` of a period late: sends arrive evenly.
    Spread,
    /// Every sender sends at the same ticks: one burst of `n` sends per period.
    Aligned,
}

impl Phase {
    /// `spread` / `aligned`, as in the command line and the JSON record.
    fn name(self) -> &'static str {
        match self {
            Phase::Spread => "spread",
            Phase::Aligned => "aligned",
        }
    }
}

/// The schedule of sender `index` of `pairs` for a total `rate` (msg/s):
/// `(period between its sends, offset of its first send from the common start)`.
/// Each sender sends `rate / pairs` msg/s; the offsets are what `phase` decides.
fn pacing(rate: f64, pairs: usize, index: usize, phase: Phase) -> (Duration, Duration) {
    let pairs = pairs.max(1);
    let period = Duration::from_secs_f64(pairs as f64 / rate);
    let offset = match phase {
        Phase::Spread => period.mul_f64((index % pairs) as f64 / pairs as f64),
        Phase::Aligned => Duration::ZERO,
    };
    (period, offset)
}

/// What one sender saw.
#[derive(Default)]
struct SenderStats {
    sent: u64,
    acked: u64,
    errors: u64,
    echoes: u64,
    other: u64,
    first_error: Option<String>,
    ack_latency: Latencies,
    last_ack: Option<Instant>,
    timed_out: bool,
}

/// What one recipient saw.
#[derive(Default)]
struct RecipientStats {
    /// Distinct messages (by seq).
    unique: u64,
    duplicates: u64,
    out_of_range: u64,
    other: u64,
    latency: Latencies,
    last_delivery: Option<Instant>,
    error: Option<String>,
}

/// The part of a `message` frame a recipient needs.
#[derive(Deserialize)]
struct LiteEvent<'a> {
    #[serde(borrow)]
    message: LiteMessage<'a>,
}

#[derive(Deserialize)]
struct LiteMessage<'a> {
    seq: i64,
    #[serde(borrow)]
    content: Cow<'a, str>,
}

const MESSAGE_PREFIX: &str = r#"{"type":"message""#;
const ACK_PREFIX: &str = r#"{"type":"ack""#;

/// Runs the scenario; `Ok(false)` when a message was lost, duplicated or not answered.
pub async fn run(
    servers: &[Server],
    args: &WsArgs,
    threads: usize,
    deployment: &str,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let (Some(node_a), Some(node_b)) = (servers.first(), servers.last()) else {
        anyhow::bail!("no server to drive");
    };
    let pairs = args.pairs.max(1);
    let window = args.window.max(1);
    let per_sender = args.messages_per_sender.unwrap_or_else(|| match args.rate {
        Some(rate) => ((rate / pairs as f64) * DEFAULT_PACED_SECONDS)
            .ceil()
            .max(1.0) as u64,
        None => DEFAULT_MESSAGES,
    });
    let rate = match args.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => Some(rate),
        Some(_) => anyhow::bail!("--rate must be a positive number"),
        None => None,
    };

    let client = setup::client(&node_a.base)?;
    eprintln!("registering {pairs} senders and {pairs} recipients");
    let (senders, recipients) = tokio::time::timeout_at(deadline.into(), async {
        let senders = setup::register_users(&client, 1, pairs).await?;
        let recipients = setup::register_users(&client, 2, pairs).await?;
        anyhow::Ok((senders, recipients))
    })
    .await
    .context("registering the users took too long")??;

    eprintln!(
        "connecting recipients to {} and senders to {}",
        node_b.base, node_a.base
    );
    let recipient_sockets = connect_all(&node_b.base, &recipients).await?;
    let sender_sockets = connect_all(&node_a.base, &senders).await?;

    let clock = Instant::now();
    let stop_receiving = CancellationToken::new();
    let mut receiving = Vec::with_capacity(pairs);
    for socket in recipient_sockets {
        receiving.push(tokio::spawn(receive_loop(
            socket,
            per_sender,
            clock,
            stop_receiving.clone(),
        )));
    }
    let barrier = Arc::new(Barrier::new(pairs + 1));
    // The paced senders' common time zero, set by the first one past the barrier.
    let start = Arc::new(OnceLock::new());
    let mut sending = Vec::with_capacity(pairs);
    for (index, (socket, recipient)) in sender_sockets.into_iter().zip(&recipients).enumerate() {
        let pacing = rate.map(|rate| pacing(rate, pairs, index, args.phase));
        sending.push(tokio::spawn(send_loop(
            socket,
            recipient.phone.clone(),
            Plan {
                messages: per_sender,
                window,
                pacing,
            },
            clock,
            deadline,
            barrier.clone(),
            start.clone(),
        )));
    }
    let mode = match args.rate {
        Some(rate) => format!("paced at {rate} msg/s, phase {}", args.phase.name()),
        None => "full speed".to_owned(),
    };
    eprintln!(
        "sending {} messages ({pairs} senders x {per_sender}, window {window}, {mode})",
        per_sender * pairs as u64
    );
    let batches = WriterBatches::scrape(servers).await;
    let cpu = CpuMeter::start(servers)?;
    barrier.wait().await;
    let started = Instant::now();

    let mut sender_stats = Vec::with_capacity(pairs);
    for task in sending {
        sender_stats.push(task.await.context("a sender task failed")?);
    }
    let senders_done = Instant::now();
    // Recipients finish when they have every message; give them `grace` more at most.
    let grace_end = senders_done + Duration::from_secs_f64(args.grace);
    let mut recipient_stats = Vec::with_capacity(pairs);
    for mut task in receiving {
        let stats = tokio::select! {
            result = &mut task => result.context("a recipient task failed")?,
            () = tokio::time::sleep_until(grace_end.into()) => {
                stop_receiving.cancel();
                task.await.context("a recipient task failed")?
            }
        };
        recipient_stats.push(stats);
    }
    let cpu = cpu.read(servers)?;
    let batches = batches.until(WriterBatches::scrape(servers).await);
    let mut rss = 0;
    for server in servers {
        rss += server.rss_kib()?;
    }

    // Exactly once, per pair: every acknowledged message arrived, none twice.
    let mut lost = 0u64;
    let mut incomplete_pairs = 0usize;
    let mut latency = Latencies::new();
    let mut ack_latency = Latencies::new();
    let mut first_error = None;
    for (sender, recipient) in sender_stats.iter().zip(&recipient_stats) {
        lost += sender.acked.saturating_sub(recipient.unique);
        if sender.acked != per_sender || recipient.unique != per_sender {
            incomplete_pairs += 1;
        }
        latency.merge(&recipient.latency);
        ack_latency.merge(&sender.ack_latency);
        if first_error.is_none() {
            first_error = sender.first_error.clone().or(recipient.error.clone());
        }
    }
    let sum = |f: &dyn Fn(&SenderStats) -> u64| sender_stats.iter().map(f).sum::<u64>();
    let rsum = |f: &dyn Fn(&RecipientStats) -> u64| recipient_stats.iter().map(f).sum::<u64>();
    let sent = sum(&|s| s.sent);
    let acked = sum(&|s| s.acked);
    let errors = sum(&|s| s.errors);
    let echoes = sum(&|s| s.echoes);
    let timed_out = sender_stats.iter().filter(|s| s.timed_out).count();
    let delivered = rsum(&|r| r.unique);
    let duplicates = rsum(&|r| r.duplicates);
    let out_of_range = rsum(&|r| r.out_of_range);
    let other_frames = sum(&|s| s.other) + rsum(&|r| r.other);
    let last_delivery = recipient_stats
        .iter()
        .filter_map(|r| r.last_delivery)
        .max()
        .unwrap_or(started);
    let last_ack = sender_stats
        .iter()
        .filter_map(|s| s.last_ack)
        .max()
        .unwrap_or(started);
    let delivery_seconds = last_delivery
        .saturating_duration_since(started)
        .as_secs_f64();
    let ack_seconds = last_ack.saturating_duration_since(started).as_secs_f64();
    let throughput = delivered as f64 / delivery_seconds.max(1e-9);
    let ack_rate = acked as f64 / ack_seconds.max(1e-9);
    let expected = per_sender * pairs as u64;
    let exactly_once = lost == 0 && duplicates == 0 && out_of_range == 0;
    let ok = exactly_once && incomplete_pairs == 0 && errors == 0;
    let summary = latency.summary();
    let ack_summary = ack_latency.summary();

    let record = json!({
        "scenario": "ws",
        "deployment": deployment,
        "nodes": servers.len(),
        "mode": if args.rate.is_some() { "paced" } else { "full_speed" },
        "rate_target": args.rate,
        "phase": args.rate.map(|_| args.phase.name()),
        "pairs": pairs,
        "messages_per_sender": per_sender,
        "window": window,
        "threads": threads,
        "expected": expected,
        "sent": sent,
        "acked": acked,
        "send_errors": errors,
        "delivered": delivered,
        "duplicates": duplicates,
        "out_of_range": out_of_range,
        "lost": lost,
        "incomplete_pairs": incomplete_pairs,
        "senders_timed_out": timed_out,
        "echo_frames_to_senders": echoes,
        "other_frames": other_frames,
        "exactly_once": exactly_once,
        "seconds": round3(delivery_seconds),
        "delivered_per_second": round3(throughput),
        "acked_per_second": round3(ack_rate),
        "latency": summary.json(),
        "ack_latency": ack_summary.json(),
        "cpu": cpu.json(),
        "writer_batches": batches.json(),
        "server_rss_kib": rss,
        "first_error": first_error,
        "ok": ok,
    });
    let mut rows = vec![
        (
            "mode",
            format!("{mode}, {pairs} pairs x {per_sender}, window {window}"),
        ),
        ("deployment", deployment.to_owned()),
        (
            "delivered",
            format!("{delivered} of {expected} in {delivery_seconds:.2} s = {throughput:.0} msg/s"),
        ),
        (
            "acked",
            format!("{acked} ({ack_rate:.0}/s), {errors} errors"),
        ),
        (
            "exactly once",
            format!(
                "{} (lost {lost}, duplicates {duplicates}, unexpected {out_of_range})",
                if exactly_once { "yes" } else { "NO" }
            ),
        ),
        ("latency send→recipient", summary.text()),
        ("latency send→ack", ack_summary.text()),
        ("CPU (100% = 1 core)", cpu.text()),
        ("writer group commits", batches.text()),
        ("server RSS (all nodes)", format!("{rss} KiB")),
    ];
    if let Some(error) = &first_error {
        rows.push(("first error", error.clone()));
    }
    emit("WebSocket send → recipient", &rows, &record);
    Ok(ok)
}

/// Opens one connection per user, a batch of 50 at a time.
async fn connect_all(base: &str, users: &[BenchUser]) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(users.len());
    for batch in users.chunks(50) {
        let opened = futures_util::future::join_all(
            batch
                .iter()
                .map(|user| setup::connect_ws(base, &user.token, None, Duration::from_secs(10))),
        )
        .await;
        for socket in opened {
            sockets.push(socket?);
        }
    }
    Ok(sockets)
}

/// How a sender sends.
#[derive(Clone, Copy)]
struct Plan {
    messages: u64,
    window: u64,
    /// Paced mode: (period between sends, offset of the first send).
    pacing: Option<(Duration, Duration)>,
}

/// Nanoseconds since `clock`.
fn nanos_since(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn send_frame(index: u64, to: &str, clock: Instant) -> anyhow::Result<Message> {
    let frame = ClientFrame::Send {
        reference: Some(index.to_string()),
        chat_id: None,
        to: Some(to.to_owned()),
        content: nanos_since(clock).to_string(),
        client_message_id: None,
    };
    Ok(Message::text(serde_json::to_string(&frame)?))
}

/// One sender: sends its messages, counts the answers, until all are answered or `deadline`.
async fn send_loop(
    socket: Socket,
    to: String,
    plan: Plan,
    clock: Instant,
    deadline: Instant,
    barrier: Arc<Barrier>,
    start: Arc<OnceLock<Instant>>,
) -> SenderStats {
    let (mut sink, mut stream) = socket.split();
    let mut stats = SenderStats::default();
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(plan.window as usize);
    barrier.wait().await;
    let mut next_at =
        *start.get_or_init(Instant::now) + plan.pacing.map_or(Duration::ZERO, |(_, offset)| offset);
    let outcome: anyhow::Result<()> = async {
        while stats.acked + stats.errors < plan.messages {
            let can_send =
                |s: &SenderStats| s.sent < plan.messages && s.sent - s.acked - s.errors < plan.window;
            if plan.pacing.is_none() && can_send(&stats) {
                while can_send(&stats) {
                    sink.feed(send_frame(stats.sent, &to, clock)?).await?;
                    in_flight.push_back(Instant::now());
                    stats.sent += 1;
                }
                sink.flush().await?;
            }
            let paced_send = plan.pacing.is_some() && can_send(&stats);
            tokio::select! {
                biased;
                next = stream.next() => {
                    on_sender_frame(next, &mut stats, &mut in_flight)?;
                    for _ in 0..DRAIN {
                        match stream.next().now_or_never() {
                            Some(next) => on_sender_frame(next, &mut stats, &mut in_flight)?,
                            None => break,
                        }
                    }
                }
                () = tokio::time::sleep_until(next_at.into()), if paced_send => {
                    sink.send(send_frame(stats.sent, &to, clock)?).await?;
                    in_flight.push_back(Instant::now());
                    stats.sent += 1;
                    if let Some((period, _)) = plan.pacing {
                        next_at += period;
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    stats.timed_out = true;
                    anyhow::bail!("deadline reached with {} of {} sends answered", stats.acked + stats.errors, plan.messages);
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        stats
            .first_error
            .get_or_insert_with(|| format!("sender: {e:#}"));
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    stats
}

/// Accounts for one frame read by a sender.
fn on_sender_frame(
    next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    stats: &mut SenderStats,
    in_flight: &mut VecDeque<Instant>,
) -> anyhow::Result<()> {
    let text = match next {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(frame))) => {
            anyhow::bail!("the server closed the connection: {frame:?}")
        }
        Some(Ok(_)) => return Ok(()),
        Some(Err(e)) => return Err(e.into()),
        None => anyhow::bail!("the connection ended"),
    };
    let mut answered = |stats: &mut SenderStats| {
        let now = Instant::now();
        if let Some(sent_at) = in_flight.pop_front() {
            stats
                .ack_latency
                .record_nanos(u64::try_from((now - sent_at).as_nanos()).unwrap_or(u64::MAX));
        }
        now
    };
    // Fast paths on the server's field order; anything else is decoded in full.
    if text.as_str().starts_with(ACK_PREFIX) {
        stats.acked += 1;
        stats.last_ack = Some(answered(stats));
        return Ok(());
    }
    if text.as_str().starts_with(MESSAGE_PREFIX) {
        stats.echoes += 1;
        return Ok(());
    }
    match serde_json::from_str::<ServerFrame>(text.as_str())
        .with_context(|| format!("undecodable frame {text}"))?
    {
        ServerFrame::Ack { .. } => {
            stats.acked += 1;
            stats.last_ack = Some(answered(stats));
        }
        ServerFrame::Error { code, message, .. } => {
            // The server answers a connection's frames in order: this one answers the oldest send.
            stats.errors += 1;
            answered(stats);
            stats
                .first_error
                .get_or_insert_with(|| format!("error frame {code}: {message}"));
        }
        ServerFrame::Message { .. } => stats.echoes += 1,
        _ => stats.other += 1,
    }
    Ok(())
}

/// One recipient: reads until it has `expected` distinct messages or is told to stop.
async fn receive_loop(
    mut socket: Socket,
    expected: u64,
    clock: Instant,
    stop: CancellationToken,
) -> RecipientStats {
    let mut stats = RecipientStats::default();
    let mut seen = vec![false; expected as usize + 1];
    while stats.unique < expected {
        let next = tokio::select! {
            biased;
            next = socket.next() => next,
            () = stop.cancelled() => break,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                stats.error = Some(format!(
                    "recipient: the server closed the connection: {frame:?}"
                ));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                stats.error = Some(format!("recipient: {e}"));
                break;
            }
            None => {
                stats.error = Some("recipient: the connection ended".to_owned());
                break;
            }
        };
        let now = nanos_since(clock);
        let (seq, sent_at) = match parse_message(text.as_str()) {
            Ok(Some(found)) => found,
            Ok(None) => {
                stats.other += 1;
                continue;
            }
            Err(e) => {
                stats
                    .error
                    .get_or_insert_with(|| format!("recipient: {e:#}"));
                stats.other += 1;
                continue;
            }
        };
        stats.latency.record_nanos(now.saturating_sub(sent_at));
        match usize::try_from(seq).ok().and_then(|at| seen.get_mut(at)) {
            Some(slot) if seq >= 1 => {
                if *slot {
                    stats.duplicates += 1;
                } else {
                    *slot = true;
                    stats.unique += 1;
                    stats.last_delivery = Some(Instant::now());
                }
            }
            _ => stats.out_of_range += 1,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    stats
}

/// `(seq, send time)` of a `message` frame; `None` for any other frame.
fn parse_message(text: &str) -> anyhow::Result<Option<(i64, u64)>> {
    if text.starts_with(MESSAGE_PREFIX)
        && let Ok(event) = serde_json::from_str::<LiteEvent<'_>>(text)
    {
        let sent_at = event
            .message
            .content
            .parse()
            .context("content is not a timestamp")?;
        return Ok(Some((event.message.seq, sent_at)));
    }
    match serde_json::from_str::<ServerFrame>(text)
        .with_context(|| format!("undecodable frame {text}"))?
    {
        ServerFrame::Message { message, .. } => {
            let sent_at = message
                .content
                .parse()
                .context("content is not a timestamp")?;
            Ok(Some((message.seq, sent_at)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_senders_are_staggered_evenly_over_the_period() {
        // 1,000 msg/s over 50 senders: each sends every 50 ms, 1 ms apart.
        let (period, first) = pacing(1000.0, 50, 0, Phase::Spread);
        assert_eq!(period, Duration::from_millis(50));
        assert_eq!(first, Duration::ZERO);
        let (_, second) = pacing(1000.0, 50, 1, Phase::Spread);
        assert_eq!(second, Duration::from_millis(1));
        let (_, last) = pacing(1000.0, 50, 49, Phase::Spread);
        assert_eq!(last, Duration::from_millis(49));
    }

    #[test]
    fn aligned_senders_fire_at_the_same_ticks() {
        for index in 0..50 {
            assert_eq!(
                pacing(1000.0, 50, index, Phase::Aligned),
                (Duration::from_millis(50), Duration::ZERO)
            );
        }
        // Each sender's own rate is rate / pairs in both phases.
        let (period, _) = pacing(500.0, 10, 3, Phase::Aligned);
        assert_eq!(period, Duration::from_millis(20));
    }

    #[test]
    fn a_message_frame_yields_seq_and_send_time() {
        let text = r#"{"type":"message","message":{"id":"0190a0a0-0000-7000-8000-000000000000","chatId":"0190a0a0-0000-7000-8000-000000000001","seq":7,"sender":"+10000000001","content":"123456","createdAt":"2026-01-01T00:00:00.000Z","clientMessageId":null,"status":"sent"},"cursor":"9"}"#;
        assert_eq!(parse_message(text).expect("parses"), Some((7, 123_456)));
    }

    #[test]
    fn fields_in_another_order_still_parse() {
        let text = r#"{"cursor":"9","message":{"id":"0190a0a0-0000-7000-8000-000000000000","chatId":"0190a0a0-0000-7000-8000-000000000001","seq":3,"sender":"+10000000001","content":"42","createdAt":"2026-01-01T00:00:00.000Z","clientMessageId":null,"status":"sent"},"type":"message"}"#;
        assert_eq!(parse_message(text).expect("parses"), Some((3, 42)));
    }

    #[test]
    fn other_frames_are_not_messages() {
        assert_eq!(parse_message(r#"{"type":"pong"}"#).expect("parses"), None);
    }
}
