//! `cluster-check`: an end-to-end check of a running cluster through its load
//! balancer (`make cluster-test` runs it against `deploy/cluster.sh`).
//!
//! 1. Registers two users through the balancer and opens the recipient's
//!    WebSocket (it lands on one node; nginx names it in `X-Missive-Upstream`).
//! 2. Sends `--messages` messages over HTTP: round robin passes about half
//!    through the other node, so they reach the socket over the Redis bus.
//!    Every one must arrive exactly once.
//! 3. SIGKILLs the node holding the socket, sends half as many again while
//!    the recipient is away (retrying a refused request with the same
//!    `clientMessageId`, as a client would), reconnects the recipient with
//!    `since=<last cursor>` through the balancer and expects all of them,
//!    then sends the other half live over the surviving node.
//!
//! Nothing here starts or stops the cluster; it only kills the one node.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use missive_client::Client;
use missive_client::ws::{WsQuery, ws_url};
use missive_protocol::{SendMessageRequest, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::report::emit;
use crate::setup::Socket;

/// The response header nginx adds (deploy/nginx-cluster.conf.template).
const UPSTREAM_HEADER: &str = "x-missive-upstream";
/// How long one step may wait for frames.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries per HTTP send (a request refused by a dying node is tried again).
const SEND_TRIES: u32 = 10;

/// Options of `cluster-check`.
#[derive(Debug, Clone, Args)]
pub struct ClusterCheckArgs {
    /// The load balancer in front of the cluster.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// State directory of `deploy/cluster.sh` (holds `node-<port>.pid`): the
    /// node holding the recipient's socket is killed with SIGKILL.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Messages sent before the kill (as many again after it).
    #[arg(long, default_value_t = 50)]
    pub messages: usize,
}

/// What the recipient has seen so far.
#[derive(Default)]
struct Inbox {
    /// Message id → times received.
    seen: HashMap<Uuid, u32>,
    /// Per-chat sequence numbers received.
    seqs: Vec<i64>,
    /// Cursor of the last durable frame processed.
    cursor: Option<String>,
}

impl Inbox {
    fn duplicates(&self) -> u32 {
        self.seen.values().map(|n| n.saturating_sub(1)).sum()
    }
}

/// The user's sends through the balancer, and which node answered each.
struct Sender {
    client: Client,
    chat: Uuid,
    by_node: BTreeMap<String, usize>,
    retries: u32,
    sent: Vec<Uuid>,
}

impl Sender {
    /// `POST /messages` as the sender, tried again on a refusal or a 5xx with
    /// the same `clientMessageId` (so a retried commit is stored once).
    async fn send(&mut self, label: &str) -> anyhow::Result<Uuid> {
        let request = SendMessageRequest {
            sender: None,
            receiver: None,
            chat_id: Some(self.chat),
            content: label.to_owned(),
            client_message_id: Some(format!("cluster-check-{label}")),
        };
        let mut last_error = None;
        for attempt in 0..SEND_TRIES {
            if attempt > 0 {
                self.retries += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match self.client.send_message(&request).await {
                Ok(answer) => {
                    let node = answer
                        .headers
                        .get(UPSTREAM_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .to_owned();
                    *self.by_node.entry(node).or_insert(0) += 1;
                    self.sent.push(answer.body.id);
                    return Ok(answer.body.id);
                }
                Err(e) if e.status().is_none_or(|status| status >= 500) => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e).with_context(|| format!("sending {label}")),
            }
        }
        Err(anyhow::anyhow!(
            "sending {label}: {last_error:?} after {SEND_TRIES} tries"
        ))
    }
}

/// Runs the check; `Ok(false)` when a message was lost, duplicated or a step failed.
pub async fn run(args: &ClusterCheckArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let base = args.url.trim_end_matches('/').to_owned();
    let count = args.messages.max(2);
    let client = Client::new(&base)?;
    let ready = client
        .readyz()
        .await
        .context("GET /readyz through the balancer")?;
    eprintln!(
        "balancer {base}: /readyz {} {}",
        ready.status,
        ready.body.trim()
    );

    // Unique phone numbers, so the check can run on a database that is kept.
    let stem = Uuid::now_v7().as_u128() % 1_000_000_000;
    let alice_phone = format!("+19{stem:09}0");
    let bob_phone = format!("+19{stem:09}1");
    let alice = client.register(&alice_phone, Some("Alice")).await?.body;
    let bob = client.register(&bob_phone, Some("Bob")).await?.body;
    let alice_client = client.with_token(alice.token.clone());
    let chat = alice_client
        .create_chat([alice_phone.as_str(), bob_phone.as_str()])
        .await
        .context("creating the chat")?
        .body
        .id;
    eprintln!("registered {alice_phone} and {bob_phone}, chat {chat}");

    let (mut socket, bob_node) = connect(&base, &bob.token, None).await?;
    let mut inbox = Inbox::default();
    read_until_ready(&mut socket, &mut inbox).await?;
    eprintln!("recipient's WebSocket is on node {bob_node}");

    // Phase 1: sends over both nodes, delivered live to one socket.
    let mut sender = Sender {
        client: alice_client,
        chat,
        by_node: BTreeMap::new(),
        retries: 0,
        sent: Vec::new(),
    };
    for i in 0..count {
        sender.send(&format!("before-{i}")).await?;
    }
    let phase1: Vec<Uuid> = sender.sent.clone();
    read_until_all(&mut socket, &mut inbox, &phase1).await?;
    let cross_node = sender
        .by_node
        .iter()
        .filter(|(node, _)| **node != bob_node)
        .map(|(_, n)| *n)
        .sum::<usize>();
    let phase1_ok = inbox.duplicates() == 0 && cross_node > 0;
    eprintln!(
        "phase 1: {} sends by node {:?}, {} received, {} duplicates",
        phase1.len(),
        sender.by_node,
        inbox.seen.len(),
        inbox.duplicates()
    );

    // Phase 2: kill the recipient's node; send while the recipient is away.
    let killed_pid = kill_node(&args.state_dir, &bob_node)?;
    eprintln!("SIGKILLed node {bob_node} (pid {killed_pid})");
    let dropped = tokio::time::timeout(STEP_TIMEOUT, async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Close(_) = frame {
                break;
            }
        }
    })
    .await
    .is_ok();
    let before_kill = sender.by_node.clone();
    let offline = count / 2;
    for i in 0..offline {
        sender.send(&format!("offline-{i}")).await?;
    }
    let cursor = inbox
        .cursor
        .clone()
        .context("no cursor seen before the kill")?;
    let (mut socket, resumed_node) = connect(&base, &bob.token, Some(cursor.clone())).await?;
    read_until_ready(&mut socket, &mut inbox).await?;
    for i in 0..count - offline {
        sender.send(&format!("after-{i}")).await?;
    }
    read_until_all(&mut socket, &mut inbox, &sender.sent).await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    let after_kill: BTreeMap<String, usize> = sender
        .by_node
        .iter()
        .map(|(node, n)| {
            (
                node.clone(),
                n - before_kill.get(node).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let ready_after = client.readyz().await.map(|r| r.status).unwrap_or(0);

    // Exactly once, in order: seqs 1..=total, each once.
    let total = sender.sent.len();
    let lost = sender
        .sent
        .iter()
        .filter(|id| !inbox.seen.contains_key(id))
        .count();
    let duplicates = inbox.duplicates();
    let mut seqs = inbox.seqs.clone();
    let in_order = seqs.windows(2).all(|w| w[0] < w[1]);
    seqs.dedup();
    let contiguous = seqs.iter().copied().eq(1..=total as i64);
    let ok = phase1_ok
        && dropped
        && lost == 0
        && duplicates == 0
        && in_order
        && contiguous
        && resumed_node != bob_node
        && ready_after == 200;
    let record = json!({
        "scenario": "cluster_check",
        "url": base,
        "messages": total,
        "recipient_node": bob_node,
        "resumed_node": resumed_node,
        "killed_pid": killed_pid,
        "sends_by_node_before_kill": before_kill,
        "sends_by_node_after_kill": after_kill,
        "send_retries": sender.retries,
        "socket_dropped_by_kill": dropped,
        "received": inbox.seen.len(),
        "lost": lost,
        "duplicates": duplicates,
        "in_order": in_order,
        "seqs_contiguous": contiguous,
        "readyz_after_kill": ready_after,
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "ok": ok,
    });
    let rows = vec![
        ("balancer", base.clone()),
        (
            "before the kill",
            format!(
                "{count} sends over HTTP by node {before_kill:?}; recipient on {bob_node}; {} cross-node",
                cross_node
            ),
        ),
        (
            "kill",
            format!(
                "SIGKILL node {bob_node} (pid {killed_pid}); socket dropped: {}",
                if dropped { "yes" } else { "NO" }
            ),
        ),
        (
            "after the kill",
            format!(
                "{offline} sent while away + {} live, by node {after_kill:?}; {} retried tries; resumed with since={cursor} on {resumed_node}",
                count - offline,
                sender.retries
            ),
        ),
        (
            "delivered",
            format!(
                "{} of {total}, lost {lost}, duplicates {duplicates}, in order: {}, seq 1..{total}: {}",
                inbox.seen.len(),
                if in_order { "yes" } else { "NO" },
                if contiguous { "yes" } else { "NO" }
            ),
        ),
        ("/readyz after the kill", ready_after.to_string()),
        ("result", if ok { "PASS" } else { "FAIL" }.to_owned()),
    ];
    emit("Cluster check through the load balancer", &rows, &record);
    Ok(ok)
}

/// Opens `/ws?token=…[&since=…]` through the balancer; returns the socket and
/// the node that took it.
async fn connect(
    base: &str,
    token: &str,
    since: Option<String>,
) -> anyhow::Result<(Socket, String)> {
    let mut query = WsQuery::token(token);
    if let Some(cursor) = since {
        query = query.since(cursor);
    }
    let url = ws_url(base, &query)?;
    let (socket, response) =
        tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .context("timed out opening the WebSocket")?
            .context("opening the WebSocket through the balancer")?;
    let node = response
        .headers()
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .context("the balancer did not name the node (X-Missive-Upstream)")?
        .to_owned();
    Ok((socket, node))
}

/// Reads frames until `ready`, recording any message frames before it.
async fn read_until_ready(socket: &mut Socket, inbox: &mut Inbox) -> anyhow::Result<()> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            if let ServerFrame::Ready { .. } = next_frame(socket, inbox).await? {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("timed out waiting for the ready frame")?
}

/// Reads frames until every id of `expected` has arrived.
async fn read_until_all(
    socket: &mut Socket,
    inbox: &mut Inbox,
    expected: &[Uuid],
) -> anyhow::Result<()> {
    let outcome = tokio::time::timeout(STEP_TIMEOUT, async {
        while expected.iter().any(|id| !inbox.seen.contains_key(id)) {
            next_frame(socket, inbox).await?;
        }
        anyhow::Ok(())
    })
    .await;
    match outcome {
        Ok(result) => result,
        Err(_) => bail!(
            "timed out: {} of {} messages never arrived",
            expected
                .iter()
                .filter(|id| !inbox.seen.contains_key(id))
                .count(),
            expected.len()
        ),
    }
}

/// The next server frame; message frames are recorded in `inbox`.
async fn next_frame(socket: &mut Socket, inbox: &mut Inbox) -> anyhow::Result<ServerFrame> {
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => bail!("the server closed the socket: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the socket ended"),
        };
        let frame: ServerFrame = serde_json::from_str(text.as_str())
            .with_context(|| format!("undecodable frame {text}"))?;
        match &frame {
            ServerFrame::Message { message, cursor } => {
                *inbox.seen.entry(message.id).or_insert(0) += 1;
                inbox.seqs.push(message.seq);
                inbox.cursor = Some(cursor.clone());
            }
            ServerFrame::Ready { cursor, .. } if inbox.cursor.is_none() => {
                inbox.cursor = Some(cursor.clone());
            }
            _ => {}
        }
        return Ok(frame);
    }
}

/// SIGKILLs the node listening on `node` (`127.0.0.1:<port>`), found through
/// the pid file `deploy/cluster.sh` wrote; returns its pid.
fn kill_node(state_dir: &std::path::Path, node: &str) -> anyhow::Result<u32> {
    let port = node
        .rsplit(':')
        .next()
        .context("the upstream address has no port")?;
    let file = state_dir.join(format!("node-{port}.pid"));
    let pid: u32 = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("no pid in {}", file.display()))?;
    // Guard against a recycled pid: it must still be a missive binary.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    if !exe.to_string_lossy().contains("missive") {
        bail!(
            "pid {pid} of {} is not a running missive node",
            file.display()
        );
    }
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("running kill -KILL")?;
    if !status.success() {
        bail!("kill -KILL {pid} failed");
    }
    Ok(pid)
}
