//! A 201 is sent only after the commit: SIGKILL the real binary while sends
//! are in flight, restart it on the same database file, and find every
//! acknowledged message (README, "Test it": durability). On SQLite, with the
//! writer's WAL layer on and off (`DATABASE_WAL_BATCHING`), and with the
//! switch flipped between restarts.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use missive_client::protocol::{Message, SendMessageRequest};
use missive_client::{ChatsQuery, Client, MessagesQuery};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::helpers::{assert_error, walk_messages};
use crate::test_db::{Backend, TestDb, suite_backend};

const SENDERS: usize = 8;
const PER_SENDER: usize = 50;
/// Acknowledged sends after which the server is killed, mid-flight.
const KILL_AFTER: usize = 300;

/// The `missive` binary running as a child process; killed when dropped.
pub struct Server {
    child: Child,
    client: Client,
    log: PathBuf,
}

impl Server {
    /// Starts the binary on a free port with `database_url` and extra
    /// environment variables (e.g. `REDIS_URL`), and waits (bounded) for `/healthz`.
    pub async fn start_with(
        database_url: &str,
        dir: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a second handle");
        let child = Command::new(env!("CARGO_BIN_EXE_missive"))
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            .env("SEND_RATE_LIMIT", "0")
            .env("AUTH_RATE_LIMIT", "0")
            .env("AUTH_MODE", "loopback")
            .env("LOG_LEVEL", "WARN")
            .env_remove("REDIS_URL")
            .env_remove("OTP_WEBHOOK_URL")
            .env_remove("LOG_FORMAT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the binary starts");
        let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("a valid url");
        let mut server = Server { child, client, log };
        for _ in 0..200 {
            if let Some(status) = server.child.try_wait().expect("the child can be polled") {
                panic!("the server exited with {status}:\n{}", server.log_text());
            }
            if server.client.healthz().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the server did not answer /healthz in 10 s:\n{}",
            server.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of this server, without a token.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the child is reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `+1555` followed by a 7-digit index: a valid, distinct phone number.
fn phone(index: usize) -> String {
    format!("+1555{index:07}")
}

/// `DATABASE_WAL_BATCHING` set to `on`.
fn wal_batching(on: bool) -> [(&'static str, &'static str); 1] {
    [("DATABASE_WAL_BATCHING", if on { "true" } else { "false" })]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill() {
    // The database is the suite's (a SQLite file or a PostgreSQL database):
    // both must keep every acknowledged message.
    sigkill_during_a_burst(&wal_batching(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill_without_the_wal_layer() {
    if suite_backend() != Backend::Sqlite {
        eprintln!("skipped: DATABASE_WAL_BATCHING only concerns SQLite");
        return;
    }
    sigkill_during_a_burst(&wal_batching(false)).await;
}

/// Sends a burst, SIGKILLs the server mid-flight, restarts it on the same
/// database (both times with `env`) and finds every acknowledged message.
async fn sigkill_during_a_burst(env: &[(&str, &str)]) {
    // Logs go to a temp dir.
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = TestDb::for_suite().await;
    let database_url = db.url().to_owned();
    let mut server = Server::start_with(&database_url, dir.path(), "first", env).await;

    let hub = phone(0);
    let hub_token = server
        .client
        .register(&hub, None)
        .await
        .expect("registered")
        .body
        .token;
    let mut senders = Vec::new();
    for i in 1..=SENDERS {
        let registered = server
            .client
            .register(&phone(i), None)
            .await
            .expect("registered");
        senders.push(server.client.with_token(registered.body.token));
    }

    let (acks, mut acked) = mpsc::unbounded_channel::<Message>();
    let mut tasks = Vec::new();
    for (i, client) in senders.into_iter().enumerate() {
        let acks = acks.clone();
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_SENDER {
                let request = SendMessageRequest {
                    receiver: Some(hub.clone()),
                    content: format!("sender {i} message {n}"),
                    client_message_id: Some(format!("{i}-{n}")),
                    ..SendMessageRequest::default()
                };
                match client.send_message(&request).await {
                    Ok(response) if response.status == 201 => {
                        if acks.send(response.body).is_err() {
                            return;
                        }
                    }
                    // The server is gone: stop sending.
                    _ => return,
                }
            }
        }));
    }
    drop(acks);

    let mut acknowledged = Vec::new();
    while acknowledged.len() < KILL_AFTER {
        match acked.recv().await {
            Some(message) => acknowledged.push(message),
            None => break,
        }
    }
    server.kill();
    for task in tasks {
        task.await.expect("a sender task does not panic");
    }
    while let Some(message) = acked.recv().await {
        acknowledged.push(message);
    }
    assert!(
        acknowledged.len() >= KILL_AFTER,
        "only {} sends were acknowledged before the kill:\n{}",
        acknowledged.len(),
        server.log_text()
    );

    eprintln!(
        "{} of {} sends acknowledged before the SIGKILL",
        acknowledged.len(),
        SENDERS * PER_SENDER
    );

    let restarted = Server::start_with(&database_url, dir.path(), "second", env).await;
    let hub_client = restarted.client.with_token(&hub_token);

    let chats = hub_client
        .list_chats(&ChatsQuery {
            limit: Some(200),
            ..ChatsQuery::default()
        })
        .await
        .expect("the token survives the restart");
    let listed_chats: HashSet<Uuid> = chats.body.iter().map(|chat| chat.id).collect();
    let acked_chats: HashSet<Uuid> = acknowledged.iter().map(|m| m.chat_id).collect();
    assert!(
        acked_chats.is_subset(&listed_chats),
        "every chat with an acknowledged message is still there"
    );
    assert!(chats.body.len() <= SENDERS);

    let mut listed: HashMap<Uuid, Message> = HashMap::new();
    for chat in &chats.body {
        let first = hub_client
            .list_messages(
                chat.id,
                &MessagesQuery {
                    limit: Some(20),
                    ..MessagesQuery::default()
                },
            )
            .await
            .expect("listed");
        let pages = walk_messages(&hub_client, first, 20).await;
        let messages: Vec<Message> = pages.into_iter().flatten().collect();
        let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
        let expected: Vec<i64> = (1..=messages.len() as i64).rev().collect();
        assert_eq!(seqs, expected, "chat {}: seq has no gap or repeat", chat.id);
        for message in messages {
            assert!(
                listed.insert(message.id, message).is_none(),
                "a message is listed twice"
            );
        }
    }

    let mut missing = Vec::new();
    for message in &acknowledged {
        match listed.get(&message.id) {
            Some(found) => {
                assert_eq!(found.content, message.content);
                assert_eq!(found.seq, message.seq);
                assert_eq!(found.chat_id, message.chat_id);
            }
            None => missing.push(message.id),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages are lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
    let unique: HashSet<Uuid> = acknowledged.iter().map(|m| m.id).collect();
    assert_eq!(unique.len(), acknowledged.len());

    assert_error(
        restarted.client.register(&hub, None).await,
        409,
        "phone_taken",
    );
    assert_error(
        restarted.client.register(&phone(SENDERS), None).await,
        409,
        "phone_taken",
    );

    // The sequence goes on where the durable history ends.
    let chat = &chats.body[0];
    let last_seq = chat.last_message.as_ref().map_or(0, |m| m.seq);
    let next = hub_client
        .send_message(&SendMessageRequest {
            chat_id: Some(chat.id),
            content: "after the restart".into(),
            ..SendMessageRequest::default()
        })
        .await
        .expect("sent");
    assert_eq!(next.status, 201);
    assert_eq!(next.body.seq, last_seq + 1);
}

/// Sends `count` messages from `sender` to `receiver`, each acknowledged.
async fn send_all(client: &Client, receiver: &str, from: usize, count: usize) -> Vec<Message> {
    let mut sent = Vec::new();
    for n in from..from + count {
        let response = client
            .send_message(&SendMessageRequest {
                receiver: Some(receiver.to_owned()),
                content: format!("message {n}"),
                ..SendMessageRequest::default()
            })
            .await
            .expect("sent");
        assert_eq!(response.status, 201);
        sent.push(response.body);
    }
    sent
}

/// The messages of the only chat of `client` (if any), oldest first.
async fn history(client: &Client) -> Vec<Message> {
    let chats = client
        .list_chats(&ChatsQuery::default())
        .await
        .expect("chats");
    assert!(chats.body.len() <= 1, "at most one chat");
    if chats.body.is_empty() {
        return Vec::new();
    }
    let first = client
        .list_messages(
            chats.body[0].id,
            &MessagesQuery {
                limit: Some(50),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let mut messages: Vec<Message> = walk_messages(client, first, 50)
        .await
        .into_iter()
        .flatten()
        .collect();
    messages.reverse();
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_wal_layer_switched_keeps_every_message() {
    // SQLite only: the same file, SIGKILLed each time so that the next
    // start recovers a WAL the other setting wrote.
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = TestDb::sqlite();
    let mut expected = Vec::new();
    let mut tokens: Option<(String, String)> = None;
    for (round, on) in [true, false, true].into_iter().enumerate() {
        let name = format!("round{round}");
        let mut server = Server::start_with(db.url(), dir.path(), &name, &wal_batching(on)).await;
        let (alice, bob) = match &tokens {
            Some((alice, bob)) => (
                server.client().with_token(alice),
                server.client().with_token(bob),
            ),
            None => {
                let alice = server
                    .client()
                    .register(&phone(1), None)
                    .await
                    .expect("alice");
                let bob = server
                    .client()
                    .register(&phone(2), None)
                    .await
                    .expect("bob");
                tokens = Some((alice.body.token.clone(), bob.body.token.clone()));
                (
                    server.client().with_token(alice.body.token),
                    server.client().with_token(bob.body.token),
                )
            }
        };
        let found = history(&bob)
            .await
            .into_iter()
            .map(|m| (m.id, m.seq, m.content));
        let wanted = expected
            .iter()
            .map(|m: &Message| (m.id, m.seq, m.content.clone()));
        assert!(
            found.eq(wanted),
            "round {round} (DATABASE_WAL_BATCHING={on}) lost or changed a message"
        );
        expected.extend(send_all(&alice, &phone(2), round * 100, 40).await);
        server.kill();
    }
    let last = Server::start_with(db.url(), dir.path(), "last", &wal_batching(false)).await;
    let (_, bob) = tokens.expect("registered");
    let found: Vec<i64> = history(&last.client().with_token(&bob))
        .await
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(found, (1..=120).collect::<Vec<_>>());
}
