//! No message is lost (README, "WebSocket", Resume): senders send concurrently over
//! HTTP and WebSocket while recipients drop their sockets at random moments
//! and resume with `since=` their last processed cursor. At the end every
//! recipient has every message addressed to it exactly once after dedupe by
//! id, and each chat's messages in `seq` order.
//!
//! The schedule is random but seeded: set `WS_LOSS_SEED` to replay a failure.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use missive_client::protocol::{ClientFrame, Message, SendMessageRequest, ServerFrame};
use missive_client::ws::WsError;
use uuid::Uuid;

use crate::helpers::{TestUser, spawn_app};
use crate::ws_helpers::{Socket, cursor_number, open_as, resume_as};

const SENDERS: usize = 4;
const RECIPIENTS: usize = 4;
const PER_SENDER: usize = 500;
/// The whole exchange must settle within this.
const DEADLINE: Duration = Duration::from_secs(20);

/// xorshift64*: a tiny seeded generator, enough for a test schedule.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// What a recipient saw: every message frame in arrival order, and how its connections ended.
#[derive(Default)]
struct Seen {
    messages: Vec<Message>,
    reconnects: usize,
    server_closes: usize,
}

fn phone(prefix: u32, i: usize) -> String {
    format!("+{prefix}{i:07}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_exactly_once_in_order_despite_random_reconnects() {
    let seed = std::env::var("WS_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
        });
    println!("ws_loss seed: {seed} (WS_LOSS_SEED={seed} replays it)");
    let started = Instant::now();
    let app = spawn_app().await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(app.user(&phone(1, i)).await);
    }
    let mut recipients = Vec::new();
    for i in 0..RECIPIENTS {
        recipients.push(app.user(&phone(2, i)).await);
    }

    // Recipients connect before anything is sent, then churn.
    let stop = Arc::new(AtomicBool::new(false));
    let mut seen = Vec::new();
    let mut readers = Vec::new();
    for (i, recipient) in recipients.iter().enumerate() {
        let socket = open_as(recipient).await;
        let log = Arc::new(Mutex::new(Seen::default()));
        seen.push(log.clone());
        readers.push(tokio::spawn(churning_reader(
            recipient.clone(),
            socket,
            Rng::new(seed ^ (0x9E37_79B9 * (i as u64 + 1))),
            stop.clone(),
            log,
        )));
    }

    // Half the senders use HTTP, half a WebSocket; each picks recipients at random.
    let mut writers = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        let sender = sender.clone();
        let targets: Vec<String> = recipients
            .iter()
            .map(|r| r.user.phone_number.clone())
            .collect();
        let rng = Rng::new(seed.rotate_left(i as u32 * 7 + 1));
        writers.push(tokio::spawn(send_all(sender, targets, rng, i % 2 == 1)));
    }
    let mut expected: Vec<HashSet<Uuid>> = vec![HashSet::new(); RECIPIENTS];
    let mut by_chat: HashMap<Uuid, Vec<Message>> = HashMap::new();
    for writer in writers {
        for (recipient, message) in writer.await.expect("a sender does not panic") {
            expected[recipient].insert(message.id);
            by_chat.entry(message.chat_id).or_default().push(message);
        }
    }
    println!("every send acknowledged after {:?}", started.elapsed());
    let total: usize = expected.iter().map(HashSet::len).sum();
    assert_eq!(total, SENDERS * PER_SENDER, "every send was acknowledged");

    // Wait (bounded) until every recipient has seen everything, then stop the churn.
    loop {
        let complete = seen.iter().zip(&expected).all(|(log, want)| {
            let log = log.lock().expect("not poisoned");
            let got: HashSet<Uuid> = log.messages.iter().map(|m| m.id).collect();
            want.is_subset(&got)
        });
        if complete || started.elapsed() > DEADLINE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("a reader does not panic");
    }

    for (i, (log, want)) in seen.iter().zip(&expected).enumerate() {
        let log = log.lock().expect("not poisoned");
        let mut first: HashMap<Uuid, &Message> = HashMap::new();
        let mut per_chat: HashMap<Uuid, Vec<i64>> = HashMap::new();
        let mut duplicates = 0;
        for message in &log.messages {
            match first.get(&message.id) {
                Some(original) => {
                    duplicates += 1;
                    assert_eq!(
                        (&original.content, original.seq, original.chat_id),
                        (&message.content, message.seq, message.chat_id),
                        "a duplicate is the same message"
                    );
                }
                None => {
                    first.insert(message.id, message);
                    per_chat
                        .entry(message.chat_id)
                        .or_default()
                        .push(message.seq);
                }
            }
        }
        let got: HashSet<Uuid> = first.keys().copied().collect();
        let missing = want.difference(&got).count();
        let extra = got.difference(want).count();
        println!(
            "recipient {i}: {} expected, {} frames, {duplicates} duplicates, {} reconnects, {} closed by the server",
            want.len(),
            log.messages.len(),
            log.reconnects,
            log.server_closes
        );
        assert_eq!(
            (missing, extra),
            (0, 0),
            "recipient {i} (seed {seed}): missing and unexpected messages"
        );
        for (chat, seqs) in &per_chat {
            let stored: Vec<i64> = by_chat[chat].iter().map(|m| m.seq).collect();
            let mut sorted = stored.clone();
            sorted.sort_unstable();
            assert_eq!(
                seqs, &sorted,
                "recipient {i} (seed {seed}): chat {chat} out of seq order"
            );
        }
    }
    println!("ws_loss took {:?}", started.elapsed());
}

/// WebSocket sends in flight before waiting for their acks.
const WINDOW: usize = 25;

/// Sends `PER_SENDER` messages to random recipients; returns `(recipient, message)` per ack.
///
/// Over WebSocket the sends are pipelined (`WINDOW` frames, then their acks),
/// as a real client would; over HTTP they are sequential.
async fn send_all(
    sender: TestUser,
    targets: Vec<String>,
    mut rng: Rng,
    over_ws: bool,
) -> Vec<(usize, Message)> {
    let plan: Vec<(usize, String)> = (0..PER_SENDER)
        .map(|n| {
            let recipient = rng.below(targets.len() as u64) as usize;
            let content = format!(
                "{} #{n} to {}",
                sender.user.phone_number, targets[recipient]
            );
            (recipient, content)
        })
        .collect();
    let mut sent = Vec::with_capacity(PER_SENDER);
    if over_ws {
        let mut socket = open_as(&sender).await;
        for (w, window) in plan.chunks(WINDOW).enumerate() {
            for (i, (recipient, content)) in window.iter().enumerate() {
                socket
                    .send(&ClientFrame::Send {
                        reference: Some(format!("{w}-{i}")),
                        chat_id: None,
                        to: Some(targets[*recipient].clone()),
                        content: content.clone(),
                        client_message_id: None,
                    })
                    .await;
            }
            for (i, (recipient, _)) in window.iter().enumerate() {
                sent.push((*recipient, socket.ack(&format!("{w}-{i}")).await));
            }
        }
    } else {
        for (recipient, content) in plan {
            let request = SendMessageRequest {
                receiver: Some(targets[recipient].clone()),
                content,
                ..SendMessageRequest::default()
            };
            let response = sender
                .client
                .send_message(&request)
                .await
                .expect("the send succeeds");
            assert_eq!(response.status, 201);
            sent.push((recipient, response.body));
        }
    }
    sent
}

/// Reads message frames, resuming with `since=` its last processed cursor
/// after dropping or closing the socket at random moments.
async fn churning_reader(
    user: TestUser,
    mut socket: Socket,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Seen>>,
) {
    let mut last = socket.cursor.clone();
    while !stop.load(Ordering::Relaxed) {
        let wait = Duration::from_millis(5 + rng.below(40));
        let reconnect = match socket.conn.next_frame(wait).await {
            Ok(ServerFrame::Message { message, cursor }) => {
                assert!(
                    cursor_number(&cursor) > cursor_number(&last),
                    "cursor {cursor} after {last} on one connection"
                );
                last = cursor;
                log.lock().expect("not poisoned").messages.push(message);
                rng.one_in(20)
            }
            Ok(other) => panic!("unexpected frame {other:?}"),
            Err(WsError::Timeout(_)) => rng.one_in(3),
            Err(e) if e.is_disconnect() => {
                log.lock().expect("not poisoned").server_closes += 1;
                true
            }
            Err(e) => panic!("reading failed: {e}"),
        };
        if reconnect {
            if rng.one_in(2) {
                let _ = socket.conn.close().await;
            } else {
                drop(socket);
            }
            log.lock().expect("not poisoned").reconnects += 1;
            socket = resume_as(&user, &last).await;
        }
    }
}
