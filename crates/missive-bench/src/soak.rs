//! `soak`: a long run of mixed traffic, with the server optionally SIGKILLed
//! and restarted on a schedule (`--chaos`), checking that nothing is lost or
//! duplicated and that memory and descriptors stay bounded.
//!
//! The load: idle sockets, active pairs (a sender pipelining WebSocket sends
//! at a steady rate, a recipient reading, sending read receipts and typing),
//! and a share of every client reconnecting with `since=` each minute. Every
//! client keeps the cursor of the last frame it processed and resumes from
//! it after any disconnect (a kill included); a sender re-sends what was not
//! acknowledged with the same `clientMessageId`, so the server stores each
//! message once whatever happens.
//!
//! With `--cluster` it runs two nodes on a fresh PostgreSQL database and a
//! unique Redis prefix; each client has a home node and fails over to the
//! other when its node is gone, and `--chaos` kills one node at a time.
//!
//! What it reports: per sample window, the servers' RSS and open descriptors,
//! messages delivered and the p99 of send → recipient latency; at the end,
//! every acknowledged message missing at its recipient (lost) and every
//! message id a client saw twice (duplicates). It fails on either.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use missive_client::ws::{Connection, WsQuery};
use missive_protocol::{ClientFrame, MessageStatus, ServerFrame};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::report::{Latencies, emit, round3};
use crate::server::{free_port, status_field};
use crate::setup::{self, BenchUser};

/// Options of `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Length of the traffic phase, in minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Idle WebSocket connections (users that only listen).
    #[arg(long, default_value_t = 2000)]
    pub idle: usize,
    /// Active sender/recipient pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Messages per second of each sender.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Share of every client reconnecting with `since=` each minute, in percent.
    #[arg(long, default_value_t = 5.0)]
    pub reconnect_percent: f64,
    /// SIGKILL and restart the server on a schedule.
    #[arg(long)]
    pub chaos: bool,
    /// Minutes between two kills with `--chaos`.
    #[arg(long, default_value_t = 5.0)]
    pub chaos_every_minutes: f64,
    /// Length of a sample window (RSS, descriptors, p99), in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub sample_seconds: f64,
    /// Seconds allowed at the end for the last messages to arrive.
    #[arg(long, default_value_t = 60.0)]
    pub drain_seconds: f64,
    /// Write a chart of RSS and p99 per window here (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// How long a client waits for a frame before it simply waits again.
const QUIET: Duration = Duration::from_secs(3600);
/// Longest wait between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A recipient sends a read receipt every this many messages …
const RECEIPT_EVERY: u64 = 20;
/// … and a typing indicator every this many.
const TYPING_EVERY: u64 = 50;
/// Sends of one sender waiting for their ack at most.
const WINDOW: usize = 64;
/// Connections opened at once during setup.
const CONNECT_CONCURRENCY: usize = 64;

/// A server process: restartable on the same port and database.
struct Node {
    bin: PathBuf,
    port: u16,
    database_url: String,
    /// `REDIS_URL` and `REDIS_PREFIX` of a cluster node.
    redis: Option<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Spawns the server and waits until it answers `/healthz`.
    async fn start(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .context("opening the server log")?;
        let mut command = Command::new(&self.bin);
        match &self.redis {
            Some((url, prefix)) => command.env("REDIS_URL", url).env("REDIS_PREFIX", prefix),
            None => command.env_remove("REDIS_URL"),
        };
        let child = command
            .env("PORT", self.port.to_string())
            .env("BIND", "127.0.0.1")
            .env("DATABASE_URL", &self.database_url)
            .env("SEND_RATE_LIMIT", "0")
            .env("AUTH_RATE_LIMIT", "0")
            .env("LOOKUP_RATE_LIMIT", "0")
            // Every simulated client connects from 127.0.0.1.
            .env("MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("MAX_SOCKETS_PER_USER", "0")
            .env("LOG_LEVEL", "WARN")
            .env("AUTH_MODE", "open")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        let http = reqwest::Client::new();
        let url = format!("{}/healthz", self.base());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                bail!("the server exited during startup ({status})");
            }
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server did not answer /healthz within 30 s")
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait (bounded) for the exit; `Some(code)` when it exited by itself.
    async fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counters shared by every client task.
#[derive(Default)]
struct Tally {
    /// Messages sent (first attempts).
    sent: AtomicU64,
    /// Sends re-sent after a disconnect (same `clientMessageId`).
    resent: AtomicU64,
    /// Messages delivered to their recipient (first time).
    delivered: AtomicU64,
    /// Message ids a client saw twice.
    duplicates: AtomicU64,
    /// Receipts and typing frames received.
    receipts: AtomicU64,
    typing: AtomicU64,
    /// Reconnections (asked for, or after a failure).
    reconnects: AtomicU64,
    /// Latencies of the current sample window.
    window: Mutex<Latencies>,
}

/// What a pair's sender had acknowledged and its recipient received.
#[derive(Default)]
struct PairLog {
    acked: Mutex<HashSet<Uuid>>,
    received: Mutex<HashSet<Uuid>>,
}

/// One sample window.
struct Sample {
    at_seconds: f64,
    rss_kib: Option<u64>,
    fds: Option<usize>,
    delivered: u64,
    p99_ms: Option<f64>,
    kills: u64,
}

/// What a cluster soak made in PostgreSQL and Redis, removed at the end.
struct Made {
    admin_url: String,
    database: String,
    redis_url: String,
    prefix: String,
}

impl Made {
    async fn remove(self) {
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        if let Err(e) = crate::deployment::admin_execute(&self.admin_url, &drop).await {
            eprintln!("warning: could not drop {}: {e:#}", self.database);
        }
        if let Err(e) =
            crate::deployment::delete_keys(&self.redis_url, &format!("{}:*", self.prefix)).await
        {
            eprintln!("warning: could not delete {}:*: {e:#}", self.prefix);
        }
    }
}

/// Runs the soak: starts its own server(s) (restartable), drives the load, reports.
pub async fn run(
    bin: &Path,
    args: &SoakArgs,
    deployment: &crate::deployment::DeploymentArgs,
) -> anyhow::Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("missive-soak")
        .tempdir()
        .context("creating the temporary directory")?;
    let mut made = None;
    let mut nodes = Vec::new();
    if deployment.cluster {
        let database = format!("missive_soak_{}", Uuid::now_v7().simple());
        crate::deployment::admin_execute(
            &deployment.postgres_url,
            &format!("CREATE DATABASE \"{database}\""),
        )
        .await
        .with_context(|| format!("creating database {database}"))?;
        let mut url = reqwest::Url::parse(&deployment.postgres_url)?;
        url.set_path(&format!("/{database}"));
        let prefix = format!("missive-soak-{}", Uuid::now_v7().simple());
        for name in ["a", "b"] {
            nodes.push(Node {
                bin: bin.to_owned(),
                port: free_port()?,
                database_url: url.to_string(),
                redis: Some((deployment.redis_url.clone(), prefix.clone())),
                log: dir.path().join(format!("node-{name}.log")),
                child: None,
            });
        }
        made = Some(Made {
            admin_url: deployment.postgres_url.clone(),
            database,
            redis_url: deployment.redis_url.clone(),
            prefix,
        });
    } else {
        nodes.push(Node {
            bin: bin.to_owned(),
            port: free_port()?,
            database_url: format!("sqlite://{}", dir.path().join("soak.db").display()),
            redis: None,
            log: dir.path().join("server.log"),
            child: None,
        });
    }
    let outcome = soak(&mut nodes, args).await;
    for node in &mut nodes {
        node.kill();
    }
    if let Some(made) = made {
        made.remove().await;
    }
    outcome
}

/// The soak itself, on started-on-demand `nodes`.
async fn soak(nodes: &mut [Node], args: &SoakArgs) -> anyhow::Result<bool> {
    for node in nodes.iter_mut() {
        node.start().await?;
        eprintln!("soak: node at {}, pid {:?}", node.base(), node.pid());
    }
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(Node::base).collect());
    let base = bases[0].clone();

    let client = setup::client(&base)?;
    let senders = setup::register_users(&client, 1, args.pairs).await?;
    let recipients = setup::register_users(&client, 2, args.pairs).await?;
    let idle = setup::register_users(&client, 3, args.idle).await?;
    let mut chats = Vec::with_capacity(args.pairs);
    for (a, b) in senders.iter().zip(&recipients) {
        chats.push(setup::create_chat(&client, a, b).await?);
    }
    eprintln!(
        "soak: {} pairs, {} idle users; {:.1} min of traffic",
        args.pairs, args.idle, args.minutes
    );

    let started = Instant::now();
    let tally = Arc::new(Tally {
        window: Mutex::new(Latencies::new()),
        ..Tally::default()
    });
    let stop_sending = CancellationToken::new();
    let stop_all = CancellationToken::new();
    // Bumped to make a chosen share of clients reconnect.
    let (reconnect_tx, reconnect_rx) = watch::channel(0u64);
    let client_count = args.pairs * 2 + args.idle;
    let reconnect_each = ((client_count as f64) * args.reconnect_percent / 100.0).ceil() as usize;

    let mut tasks = Vec::new();
    let mut logs = Vec::new();
    let mut index = 0usize;
    for ((sender, recipient), chat) in senders.iter().zip(&recipients).zip(&chats) {
        let log = Arc::new(PairLog::default());
        logs.push(log.clone());
        let listener = Listener {
            bases: bases.clone(),
            user: recipient.clone(),
            index,
            chat: Some(*chat),
            log: Some(log.clone()),
            tally: tally.clone(),
            started,
            reconnect: reconnect_rx.clone(),
            reconnect_each,
            client_count,
            stop: stop_all.clone(),
        };
        index += 1;
        tasks.push(tokio::spawn(listener.run()));
        let sender = Sender {
            bases: bases.clone(),
            home: index,
            user: sender.clone(),
            chat: *chat,
            pair: index,
            rate: args.rate,
            log,
            tally: tally.clone(),
            started,
            stop: stop_sending.clone(),
            halt: stop_all.clone(),
        };
        index += 1;
        tasks.push(tokio::spawn(sender.run()));
    }
    let mut idle_tasks = Vec::new();
    for (i, user) in idle.iter().enumerate() {
        let listener = Listener {
            bases: bases.clone(),
            user: user.clone(),
            index,
            chat: None,
            log: None,
            tally: tally.clone(),
            started,
            reconnect: reconnect_rx.clone(),
            reconnect_each,
            client_count,
            stop: stop_all.clone(),
        };
        index += 1;
        idle_tasks.push(tokio::spawn(listener.run()));
        if i % CONNECT_CONCURRENCY == CONNECT_CONCURRENCY - 1 {
            // Let the server take the connections in waves rather than all at once.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // The traffic phase: sample windows, reconnect waves, kills.
    let traffic = Duration::from_secs_f64(args.minutes.max(0.05) * 60.0);
    let sample_every = Duration::from_secs_f64(args.sample_seconds.max(1.0));
    let chaos_every = Duration::from_secs_f64(args.chaos_every_minutes.max(0.1) * 60.0);
    let mut next_sample = Instant::now() + sample_every;
    let mut next_wave = Instant::now() + Duration::from_secs(60);
    let mut next_kill = Instant::now() + chaos_every;
    let mut samples: Vec<Sample> = Vec::new();
    let mut delivered_before = 0u64;
    let mut kills = 0u64;
    let traffic_end = Instant::now() + traffic;
    while Instant::now() < traffic_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if args.chaos && now >= next_kill && now + Duration::from_secs(5) < traffic_end {
            // One node at a time: with two nodes, the other one keeps serving.
            let victim = kills as usize % nodes.len();
            nodes[victim].kill();
            kills += 1;
            eprintln!(
                "soak: {:>6.1} s  SIGKILL #{kills} of {}; restarting",
                started.elapsed().as_secs_f64(),
                nodes[victim].base()
            );
            nodes[victim].start().await?;
            next_kill = Instant::now() + chaos_every;
        }
        if now >= next_wave {
            reconnect_tx.send_modify(|wave| *wave += 1);
            next_wave = now + Duration::from_secs(60);
        }
        if now >= next_sample {
            let delivered = tally.delivered.load(Ordering::Relaxed);
            let window =
                std::mem::take(&mut *tally.window.lock().unwrap_or_else(|e| e.into_inner()));
            let sample = Sample {
                at_seconds: started.elapsed().as_secs_f64(),
                rss_kib: sum(nodes
                    .iter()
                    .map(|n| n.pid().and_then(|p| status_field(p, "VmRSS:").ok()))),
                fds: sum(nodes.iter().map(|n| n.pid().and_then(open_fds))),
                delivered: delivered - delivered_before,
                p99_ms: (window.count() > 0).then(|| window.summary().p99),
                kills,
            };
            eprintln!(
                "soak: {:>6.1} s  rss {:>7} KiB  fds {:>5}  delivered {:>6}  p99 {:>8} ms  kills {}",
                sample.at_seconds,
                sample.rss_kib.map_or("?".into(), |v| v.to_string()),
                sample.fds.map_or("?".into(), |v| v.to_string()),
                sample.delivered,
                sample.p99_ms.map_or("-".into(), |v| format!("{v:.2}")),
                sample.kills
            );
            delivered_before = delivered;
            samples.push(sample);
            next_sample = now + sample_every;
        }
    }

    // Drain: no new sends; wait until every acknowledged message arrived.
    stop_sending.cancel();
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain_seconds.max(1.0));
    let missing = loop {
        let missing = missing_messages(&logs);
        if missing == 0 || Instant::now() >= drain_end {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if missing > 0 {
        report_missing(&client, &logs, &recipients, &chats).await;
    }
    stop_all.cancel();
    for task in tasks.into_iter().chain(idle_tasks) {
        let _ = task.await;
    }
    let mut exit_code = Some(0);
    for node in nodes.iter_mut() {
        let code = node.stop().await;
        if code != Some(0) {
            exit_code = code;
        }
    }

    let acked: usize = logs
        .iter()
        .map(|l| l.acked.lock().map_or(0, |a| a.len()))
        .sum();
    let duplicates = tally.duplicates.load(Ordering::Relaxed);
    let rss: Vec<u64> = samples.iter().filter_map(|s| s.rss_kib).collect();
    let fds: Vec<usize> = samples.iter().filter_map(|s| s.fds).collect();
    let worst_p99 = samples
        .iter()
        .filter_map(|s| s.p99_ms)
        .fold(0.0f64, f64::max);
    let ok = missing == 0 && duplicates == 0 && acked > 0 && exit_code == Some(0);
    let record = json!({
        "scenario": "soak",
        "minutes": args.minutes,
        "pairs": args.pairs,
        "idle": args.idle,
        "rate_per_sender": args.rate,
        "chaos": args.chaos,
        "nodes": nodes.len(),
        "kills": kills,
        "sent": tally.sent.load(Ordering::Relaxed),
        "resent": tally.resent.load(Ordering::Relaxed),
        "acked": acked,
        "lost": missing,
        "duplicates": duplicates,
        "receipts": tally.receipts.load(Ordering::Relaxed),
        "typing": tally.typing.load(Ordering::Relaxed),
        "reconnects": tally.reconnects.load(Ordering::Relaxed),
        "rss_kib_max": rss.iter().max(),
        "rss_kib_last": rss.last(),
        "fds_max": fds.iter().max(),
        "p99_ms_worst_window": round3(worst_p99),
        "samples": samples.iter().map(|s| json!({
            "at_s": round3(s.at_seconds),
            "rss_kib": s.rss_kib,
            "fds": s.fds,
            "delivered": s.delivered,
            "p99_ms": s.p99_ms.map(round3),
            "kills": s.kills,
        })).collect::<Vec<_>>(),
        "server_exit_code": exit_code,
        "ok": ok,
    });
    emit(
        "soak",
        &[
            (
                "traffic",
                format!(
                    "{:.1} min, {} node(s), {kills} kills",
                    args.minutes,
                    nodes.len()
                ),
            ),
            (
                "clients",
                format!("{} pairs + {} idle", args.pairs, args.idle),
            ),
            (
                "messages",
                format!(
                    "{} sent, {} re-sent after a disconnect, {acked} acknowledged",
                    tally.sent.load(Ordering::Relaxed),
                    tally.resent.load(Ordering::Relaxed)
                ),
            ),
            ("lost", missing.to_string()),
            ("duplicates", duplicates.to_string()),
            (
                "reconnects",
                tally.reconnects.load(Ordering::Relaxed).to_string(),
            ),
            (
                "RSS max / last",
                format!(
                    "{} / {} KiB",
                    rss.iter().max().map_or("?".into(), |v| v.to_string()),
                    rss.last().map_or("?".into(), |v| v.to_string())
                ),
            ),
            (
                "descriptors max",
                fds.iter().max().map_or("?".into(), |v| v.to_string()),
            ),
            ("p99 worst window", format!("{worst_p99:.2} ms")),
        ],
        &record,
    );
    if let Some(path) = &args.chart {
        write_chart(path, &samples)
            .with_context(|| format!("writing the chart {}", path.display()))?;
        eprintln!("soak: chart written to {}", path.display());
    }
    if !ok {
        for node in nodes.iter() {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("ERROR")).take(10) {
                eprintln!("server log: {line}");
            }
        }
    }
    Ok(ok)
}

/// For each acknowledged message its recipient never got: is it stored?
async fn report_missing(
    client: &missive_client::Client,
    logs: &[Arc<PairLog>],
    recipients: &[BenchUser],
    chats: &[Uuid],
) {
    for ((log, recipient), chat) in logs.iter().zip(recipients).zip(chats) {
        let acked = log.acked.lock().map(|a| a.clone()).unwrap_or_default();
        let received = log.received.lock().map(|r| r.clone()).unwrap_or_default();
        let missing: Vec<Uuid> = acked.difference(&received).copied().collect();
        if missing.is_empty() {
            continue;
        }
        let query = missive_client::MessagesQuery {
            limit: Some(200),
            ..Default::default()
        };
        let stored: HashSet<Uuid> = match client
            .with_token(recipient.token.clone())
            .list_messages(*chat, &query)
            .await
        {
            Ok(page) => page.body.iter().map(|m| m.id).collect(),
            Err(e) => {
                eprintln!("soak: cannot list chat {chat}: {e}");
                continue;
            }
        };
        for id in missing {
            eprintln!(
                "soak: missing at {}: message {id} (stored among the newest 200: {})",
                recipient.phone,
                stored.contains(&id)
            );
        }
    }
}

/// Acknowledged messages not (yet) at their recipient.
fn missing_messages(logs: &[Arc<PairLog>]) -> usize {
    logs.iter()
        .map(|log| {
            let acked = log.acked.lock().map(|a| a.clone()).unwrap_or_default();
            let received = log.received.lock().map(|r| r.clone()).unwrap_or_default();
            acked.difference(&received).count()
        })
        .sum()
}

/// The sum of per-node readings, `None` when none could be read.
fn sum<T: std::iter::Sum<T>>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let values: Vec<T> = values.flatten().collect();
    (!values.is_empty()).then(|| values.into_iter().sum())
}

/// Connects (with `since=` once a cursor is known) to the client's home node,
/// failing over to the next node on each failed attempt, with back-off, until `stop`.
async fn connect(
    bases: &[String],
    home: usize,
    token: &str,
    since: Option<&str>,
    stop: &CancellationToken,
    tally: &Tally,
    first: bool,
) -> Option<Connection> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0usize;
    loop {
        if stop.is_cancelled() {
            return None;
        }
        let base = &bases[(home + attempt) % bases.len().max(1)];
        attempt += 1;
        let mut query = WsQuery::token(token);
        if let Some(cursor) = since {
            query = query.since(cursor);
        }
        if let Ok(conn) = Connection::connect(base, &query).await {
            if !first {
                tally.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            return Some(conn);
        }
        // Jittered, so that thousands of clients do not come back in lockstep.
        let jitter = Duration::from_millis(u64::from(Uuid::now_v7().as_bytes()[15]) % 100);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = stop.cancelled() => return None,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A recipient (with its pair's log) or an idle user.
struct Listener {
    bases: Arc<Vec<String>>,
    user: BenchUser,
    index: usize,
    chat: Option<Uuid>,
    log: Option<Arc<PairLog>>,
    tally: Arc<Tally>,
    started: Instant,
    reconnect: watch::Receiver<u64>,
    reconnect_each: usize,
    client_count: usize,
    stop: CancellationToken,
}

impl Listener {
    /// Whether this client is in reconnect wave `wave` (a rotating slice of all clients).
    fn in_wave(&self, wave: u64) -> bool {
        if self.reconnect_each == 0 {
            return false;
        }
        let start = (wave as usize * self.reconnect_each) % self.client_count.max(1);
        let offset = (self.index + self.client_count - start) % self.client_count.max(1);
        offset < self.reconnect_each
    }

    async fn run(mut self) {
        // From the start of the (fresh) user's log: a sender may be faster
        // than this first connection.
        let mut cursor: Option<String> = Some("0".into());
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut count = 0u64;
        let mut first = true;
        'connection: loop {
            let Some(mut conn) = connect(
                &self.bases,
                self.index,
                &self.user.token,
                cursor.as_deref(),
                &self.stop,
                &self.tally,
                first,
            )
            .await
            else {
                return;
            };
            first = false;
            loop {
                let next = tokio::select! {
                    () = self.stop.cancelled() => {
                        let _ = conn.close().await;
                        return;
                    }
                    changed = self.reconnect.changed() => {
                        let wave = *self.reconnect.borrow_and_update();
                        if changed.is_ok() && self.in_wave(wave) {
                            let _ = conn.close().await;
                            continue 'connection;
                        }
                        continue;
                    }
                    next = conn.next_frame(QUIET) => next,
                };
                let frame = match next {
                    Ok(frame) => frame,
                    Err(missive_client::ws::WsError::Timeout(_)) => continue,
                    Err(_) => continue 'connection,
                };
                match frame {
                    ServerFrame::Message { message, cursor: c } => {
                        cursor = Some(c);
                        if !seen.insert(message.id) {
                            self.tally.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let Some(log) = &self.log else { continue };
                        if let Ok(mut received) = log.received.lock() {
                            received.insert(message.id);
                        }
                        self.tally.delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent_at) = sent_at_nanos(&message.content) {
                            let now = self.started.elapsed().as_nanos() as u64;
                            if let Ok(mut window) = self.tally.window.lock() {
                                window.record_nanos(now.saturating_sub(sent_at));
                            }
                        }
                        count += 1;
                        if let Some(chat) = self.chat {
                            let extra = if count.is_multiple_of(RECEIPT_EVERY) {
                                Some(ClientFrame::Receipt {
                                    chat_id: chat,
                                    message_id: message.id,
                                    status: MessageStatus::Read,
                                })
                            } else if count % TYPING_EVERY == 1 {
                                Some(ClientFrame::Typing {
                                    chat_id: chat,
                                    is_typing: true,
                                })
                            } else {
                                None
                            };
                            if let Some(frame) = extra
                                && conn.send_frame(&frame).await.is_err()
                            {
                                continue 'connection;
                            }
                        }
                    }
                    ServerFrame::Receipt { cursor: c, .. } => cursor = Some(c),
                    _ => {}
                }
            }
        }
    }
}

/// The send time written into a message's content by [`Sender`].
fn sent_at_nanos(content: &str) -> Option<u64> {
    content.strip_prefix("t=")?.split(';').next()?.parse().ok()
}

/// A sender: pipelines sends at a steady rate on its own socket.
struct Sender {
    bases: Arc<Vec<String>>,
    /// Index of the home node.
    home: usize,
    user: BenchUser,
    chat: Uuid,
    pair: usize,
    rate: f64,
    log: Arc<PairLog>,
    tally: Arc<Tally>,
    started: Instant,
    /// No new sends after this (the unacknowledged ones are finished).
    stop: CancellationToken,
    /// The end of the run: give up even on unacknowledged sends.
    halt: CancellationToken,
}

impl Sender {
    async fn run(self) {
        // Sends not acknowledged yet, by reference: (clientMessageId, content).
        let mut pending: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut next = 0u64;
        let interval = Duration::from_secs_f64(1.0 / self.rate.max(0.01));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            // After the stop, only the unacknowledged sends are finished.
            if self.stop.is_cancelled() && pending.is_empty() {
                return;
            }
            let Some(mut conn) = connect(
                &self.bases,
                self.home,
                &self.user.token,
                None,
                &self.halt,
                &self.tally,
                first,
            )
            .await
            else {
                return;
            };
            first = false;
            // Whatever was in flight when the connection broke goes again, same key.
            let mut failed = false;
            for (reference, (key, content)) in &pending {
                self.tally.resent.fetch_add(1, Ordering::Relaxed);
                if conn
                    .send_frame(&self.frame(*reference, key, content))
                    .await
                    .is_err()
                {
                    failed = true;
                    break;
                }
            }
            if failed {
                continue;
            }
            loop {
                if self.stop.is_cancelled() && pending.is_empty() {
                    let _ = conn.close().await;
                    return;
                }
                let may_send = !self.stop.is_cancelled() && pending.len() < WINDOW;
                tokio::select! {
                    () = self.halt.cancelled() => return,
                    _ = tick.tick(), if may_send => {
                        let reference = next;
                        next += 1;
                        let key = format!("soak-{}-{reference}", self.pair);
                        let content = format!(
                            "t={};k={reference}",
                            self.started.elapsed().as_nanos() as u64
                        );
                        self.tally.sent.fetch_add(1, Ordering::Relaxed);
                        let frame = self.frame(reference, &key, &content);
                        pending.insert(reference, (key, content));
                        if conn.send_frame(&frame).await.is_err() {
                            break;
                        }
                    }
                    answer = conn.next_frame(QUIET) => match answer {
                        Ok(ServerFrame::Ack { reference: Some(r), message }) => {
                            if let Ok(r) = r.parse::<u64>()
                                && pending.remove(&r).is_some()
                                && let Ok(mut acked) = self.log.acked.lock()
                            {
                                acked.insert(message.id);
                            }
                        }
                        Ok(ServerFrame::Receipt { .. }) => {
                            self.tally.receipts.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(ServerFrame::Typing { .. }) => {
                            self.tally.typing.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(missive_client::ws::WsError::Timeout(_)) => {}
                        Err(_) => break,
                    },
                }
            }
        }
    }

    fn frame(&self, reference: u64, key: &str, content: &str) -> ClientFrame {
        ClientFrame::Send {
            reference: Some(reference.to_string()),
            chat_id: Some(self.chat),
            to: None,
            content: content.to_owned(),
            client_message_id: Some(key.to_owned()),
        }
    }
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// RSS (MiB) and p99 (ms) per sample window, one SVG.
fn write_chart(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let minutes: Vec<f64> = samples.iter().map(|s| s.at_seconds / 60.0).collect();
    let x_max = minutes.iter().copied().fold(0.1f64, f64::max);
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .zip(&minutes)
        .filter_map(|(s, m)| s.rss_kib.map(|r| (*m, r as f64 / 1024.0)))
        .collect();
    let p99: Vec<(f64, f64)> = samples
        .iter()
        .zip(&minutes)
        .filter_map(|(s, m)| s.p99_ms.map(|p| (*m, p)))
        .collect();
    let rss_max = rss.iter().map(|(_, v)| *v).fold(1.0f64, f64::max) * 1.2;
    let p99_max = p99.iter().map(|(_, v)| *v).fold(1.0f64, f64::max) * 1.2;
    let kills: HashMap<u64, f64> = samples
        .windows(2)
        .filter(|w| w[1].kills > w[0].kills)
        .map(|w| (w[1].kills, w[1].at_seconds / 60.0))
        .collect();

    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(300);
    let mut chart = ChartBuilder::on(&top)
        .caption("missive soak: server RSS per window", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..rss_max)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc("RSS (MiB)")
        .draw()?;
    chart.draw_series(LineSeries::new(rss, &BLUE))?;
    for at in kills.values() {
        chart.draw_series(LineSeries::new([(*at, 0.0), (*at, rss_max)], &RED))?;
    }
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "p99 send → recipient latency per window (red: SIGKILL)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..p99_max)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc("p99 (ms)")
        .draw()?;
    chart.draw_series(LineSeries::new(p99, &GREEN))?;
    for at in kills.values() {
        chart.draw_series(LineSeries::new([(*at, 0.0), (*at, p99_max)], &RED))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_is_read_back_from_the_content() {
        assert_eq!(sent_at_nanos("t=12345;k=7"), Some(12345));
        assert_eq!(sent_at_nanos("hello"), None);
    }
}
