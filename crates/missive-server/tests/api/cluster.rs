//! Two nodes sharing one database (the suite's backend: a SQLite file, or a
//! PostgreSQL database under `MISSIVE_TEST_STORE=postgres`) and one Redis (the
//! scale-out bus): live traffic crosses nodes, and a Redis restart, killed
//! connections or a SIGKILLed node delay delivery without losing or
//! duplicating anything.
//!
//! Each test uses its own key prefix on the shared Redis (127.0.0.1:6379, or
//! `MISSIVE_TEST_REDIS_URL`), or a private `redis-server` it may kill. Without
//! Redis the tests print `skipped: …` and pass, unless
//! `MISSIVE_TEST_REQUIRE_SERVICES=1`.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_client::ClientError;
use missive_client::protocol::{ClientFrame, Message, MessageStatus, ServerFrame};
use missive_client::ws::{Connection, WsError, WsQuery};
use missive_server::Config;
use serde_json::json;
use uuid::Uuid;

use crate::durability::Server;
use crate::helpers::{ALICE, BOB, CAROL, TestApp, TestAppBuilder, TestUser};
use crate::push::{PushGateway, RETRY_BASE as PUSH_RETRY_BASE, SECRET as PUSH_SECRET};
use crate::test_db::TestDb;
use crate::ws_helpers::{Socket, open_as, resume_as};

/// How long cross-node delivery may take in these tests.
const ACROSS: Duration = Duration::from_secs(5);

/// The shared Redis of the tests.
fn shared_redis_url() -> String {
    std::env::var("MISSIVE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// True when Redis at `url` answers a PING within a second.
async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(_))
    )
}

/// `Some(url)` of a reachable shared Redis; otherwise says so loudly and
/// returns `None` (or fails under `MISSIVE_TEST_REQUIRE_SERVICES=1`).
async fn shared_redis() -> Option<String> {
    let url = shared_redis_url();
    if redis_answers(&url).await {
        return Some(url);
    }
    skip(&format!("no Redis at {url}"));
    None
}

fn skip(why: &str) {
    assert!(
        std::env::var("MISSIVE_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "MISSIVE_TEST_REQUIRE_SERVICES=1 but {why}"
    );
    eprintln!("\n*** skipped: {why} ***\n");
}

/// A `redis-server` of this test alone, on a free port, without persistence.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one; `None` (after [`skip`]) when `redis-server` cannot run.
    async fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        if let Err(e) = redis.spawn().await {
            skip(&format!("no private redis-server ({e})"));
            return None;
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !redis_answers(&self.url()).await {
            if Instant::now() > deadline {
                return Err("it does not answer".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Kills the server (SIGKILL: no goodbye to clients, nothing saved).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    async fn restart(&mut self) {
        self.spawn().await.expect("redis-server restarts");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two nodes on one database and one Redis prefix.
struct Cluster {
    a: TestApp,
    b: TestApp,
    redis_url: String,
    prefix: String,
    db: Arc<TestDb>,
}

impl Cluster {
    /// Starts both nodes on `redis_url` and waits until both read the stream.
    async fn start(redis_url: &str) -> Cluster {
        Cluster::start_with(redis_url, 0).await
    }

    /// Like [`Cluster::start`], with `SEND_RATE_LIMIT` (0: off).
    async fn start_with(redis_url: &str, send_rate_limit: u32) -> Cluster {
        Cluster::start_configured(redis_url, move |config| {
            config.send_rate_limit = send_rate_limit;
        })
        .await
    }

    /// Like [`Cluster::start`], with `configure` applied to both nodes' configuration.
    async fn start_configured(
        redis_url: &str,
        configure: impl Fn(&mut Config) + Clone + Send + 'static,
    ) -> Cluster {
        let db = Arc::new(TestDb::for_suite().await);
        let prefix = format!("missive-test-{}", Uuid::now_v7());
        let node = || {
            let (redis_url, prefix) = (redis_url.to_owned(), prefix.clone());
            let configure = configure.clone();
            TestAppBuilder::new()
                .database(db.clone())
                .configure(move |config| {
                    config.redis_url = Some(redis_url);
                    config.redis_prefix = prefix;
                    configure(config);
                })
                .spawn()
        };
        let a = node().await;
        let b = node().await;
        let cluster = Cluster {
            a,
            b,
            redis_url: redis_url.to_owned(),
            prefix,
            db,
        };
        cluster.wait_bus(&cluster.a, "ok").await;
        cluster.wait_bus(&cluster.b, "ok").await;
        cluster
    }

    /// Waits (bounded) until `/readyz` of `node` reports the bus as `state`.
    async fn wait_bus(&self, node: &TestApp, state: &str) {
        let deadline = Instant::now() + ACROSS;
        loop {
            let ready = node.get("/readyz").await;
            assert_eq!(ready.status, 200, "{}", ready.body);
            let body: serde_json::Value = serde_json::from_str(&ready.body).expect("JSON");
            if body["bus"] == state {
                assert_eq!(body["status"], "ready");
                assert_eq!(body["store"], "ok");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the bus never became {state:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `user` (registered on either node) as a client of `node`.
    fn on(node: &TestApp, user: &TestUser) -> TestUser {
        TestUser {
            user: user.user.clone(),
            token: user.token.clone(),
            client: node.client.with_token(&user.token),
        }
    }
}

impl Drop for Cluster {
    /// Deletes this test's stream, passed or failed (the shared Redis
    /// outlives the test; rate-limit keys expire on their own).
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(self.redis_url.as_str())
            && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1))
        {
            let _ = redis::cmd("DEL")
                .arg(format!("{}:events", self.prefix))
                .arg(format!("{}:presence:nodes", self.prefix))
                .query::<()>(&mut conn);
        }
    }
}

/// Whether any node of `prefix` records `user` as connected (its presence set).
async fn present_anywhere(redis_url: &str, prefix: &str, user: Uuid) -> bool {
    let client = redis::Client::open(redis_url).expect("a valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let nodes: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:presence:nodes"))
        .query_async(&mut conn)
        .await
        .expect("SMEMBERS answers");
    for node in nodes {
        let here: bool = redis::cmd("SISMEMBER")
            .arg(format!("{prefix}:presence:node:{node}"))
            .arg(user.to_string())
            .query_async(&mut conn)
            .await
            .expect("SISMEMBER answers");
        if here {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_recipient_connected_to_another_node_gets_no_push() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let gateway = PushGateway::start().await;
    let push_url = gateway.url.clone();
    let cluster = Cluster::start_configured(&url, move |config| {
        config.push_webhook_url = Some(push_url.clone());
        config.push_webhook_secret = Some(PUSH_SECRET.into());
        config.push_retry_base = PUSH_RETRY_BASE;
    })
    .await;
    let alice = cluster.a.user(ALICE).await;
    let bob = cluster.a.user(BOB).await;
    let carol = cluster.a.user(CAROL).await;
    let group = alice.create_chat(&[ALICE, BOB, CAROL]).await;
    // Bob is connected to node B only; Alice sends through node A.
    let bob_on_b = Cluster::on(&cluster.b, &bob);
    let mut bobs_socket = open_as(&bob_on_b).await;

    let message = alice.send_in(group.id, "meet at noon").await;
    let (delivered, _) = bobs_socket.next_message().await;
    assert_eq!(delivered.id, message.id);
    // Carol, connected nowhere, gets hers: the dispatchers handled the message.
    let push = gateway.accepted_for(carol.user.id).await;
    assert_eq!(push["messageId"], message.id.to_string());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let users: Vec<serde_json::Value> = gateway
        .received()
        .into_iter()
        .map(|r| r.body["userId"].clone())
        .collect();
    assert_eq!(
        users,
        vec![serde_json::Value::from(carol.user.id.to_string())],
        "Bob, connected to node B, gets no push for a message sent through node A"
    );

    // Once Bob's only socket is closed, he is offline everywhere again.
    drop(bobs_socket);
    let deadline = Instant::now() + ACROSS;
    while present_anywhere(&url, &cluster.prefix, bob.user.id).await {
        assert!(Instant::now() < deadline, "Bob stays present after closing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let later = alice.send_in(group.id, "where are you?").await;
    let push = gateway.accepted_for(bob.user.id).await;
    assert_eq!(push["messageId"], later.id.to_string());
}

/// Reads message frames until `expected` messages came, skipping nothing
/// else but receipts and typing; panics on a duplicate or a missing one.
async fn collect_messages(socket: &mut Socket, expected: &[Message]) {
    let wanted: Vec<Uuid> = expected.iter().map(|m| m.id).collect();
    let mut got: Vec<Uuid> = Vec::new();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < wanted.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = socket
            .conn
            .next_frame(left)
            .await
            .unwrap_or_else(|e| panic!("after {} of {}: {e}", got.len(), wanted.len()));
        if let ServerFrame::Message { message, .. } = frame {
            assert!(seen.insert(message.id), "message {} came twice", message.id);
            got.push(message.id);
        }
    }
    assert_eq!(got, wanted, "every message, once, in order");
    socket.assert_silent().await;
}

#[tokio::test]
async fn messages_receipts_and_typing_cross_nodes() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    let alice = cluster.a.user(ALICE).await;
    let bob = Cluster::on(&cluster.b, &cluster.a.user(BOB).await);
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    // A message sent on A reaches Bob's socket on B.
    let sent = alice.send_in(chat.id, "across").await;
    let (message, _) = bob_socket.next_message().await;
    assert_eq!(message.id, sent.id);
    let (own, _) = alice_socket.next_message().await;
    assert_eq!(own.id, sent.id, "the sender's node delivers at once");

    // A receipt made on B reaches Alice's socket on A.
    bob_socket
        .send(&ClientFrame::Receipt {
            chat_id: chat.id,
            message_id: sent.id,
            status: MessageStatus::Read,
        })
        .await;
    let (receipt, _) = alice_socket
        .until(|frame| match frame {
            ServerFrame::Receipt {
                message_id, status, ..
            } => Some((*message_id, *status)),
            _ => None,
        })
        .await;
    assert_eq!(receipt, (sent.id, MessageStatus::Read));

    // Typing on A reaches B (never stored, so only the stream carries it).
    alice_socket
        .send(&ClientFrame::Typing {
            chat_id: chat.id,
            is_typing: true,
        })
        .await;
    let (typing, _) = bob_socket
        .until(|frame| match frame {
            ServerFrame::Typing { .. } => Some(serde_json::to_value(frame).expect("JSON")),
            _ => None,
        })
        .await;
    assert_eq!(
        typing,
        json!({"type": "typing", "chatId": chat.id, "user": ALICE, "isTyping": true})
    );
    let metrics = cluster.b.get("/metrics").await.body;
    assert!(metrics.contains("missive_bus_up 1\n"), "{metrics}");
    assert!(
        !metrics.contains("missive_bus_entries_total{outcome=\"received\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_token_made_on_a_works_on_b_and_logout_on_a_closes_its_sockets_on_b() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    let alice_a = cluster.a.user(ALICE).await;
    let alice_b = Cluster::on(&cluster.b, &alice_a);
    assert_eq!(alice_b.client.me().await.expect("valid on B").status, 200);
    let mut socket_b = open_as(&alice_b).await;
    socket_b.assert_usable().await;

    let logged_out = Instant::now();
    assert_eq!(alice_a.client.logout().await.expect("logout").status, 204);

    match socket_b.conn.next_frame(Duration::from_secs(2)).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 1008),
        other => panic!("expected the socket on B to close with 1008, got {other:?}"),
    }
    // The close is under way before the answer, which waits out the token
    // caches of the other nodes (1 s).
    assert!(
        logged_out.elapsed() < Duration::from_millis(2000),
        "closed after {:?}",
        logged_out.elapsed()
    );
    // No node accepts the token once the logout is answered.
    assert_eq!(
        alice_b
            .client
            .me()
            .await
            .expect_err("B refuses it")
            .status(),
        Some(401)
    );
}

#[tokio::test]
async fn twenty_of_twenty_tokens_get_401_on_b_right_after_their_logout_on_a() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(cluster.a.user(&format!("+1555020{i:04}")).await);
    }
    let outcomes = futures_util::future::join_all(users.iter().map(|user| async {
        let on_b = Cluster::on(&cluster.b, user);
        // B has just validated (and cached) the token.
        assert_eq!(on_b.client.me().await.expect("valid on B").status, 200);
        let started = Instant::now();
        assert_eq!(user.client.logout().await.expect("logout").status, 204);
        let logout_took = started.elapsed();
        (on_b.client.me().await.map(|r| r.status), logout_took)
    }))
    .await;
    let accepted: Vec<_> = outcomes.iter().filter(|(me, _)| me.is_ok()).collect();
    assert!(
        accepted.is_empty(),
        "B accepted {} of 20 tokens right after their logout on A",
        accepted.len()
    );
    for (me, _) in &outcomes {
        match me {
            Err(ClientError::Api { status, .. }) => assert_eq!(*status, 401),
            other => panic!("expected 401 on B, got {other:?}"),
        }
    }
    // The price: a logout on a cluster outlasts the nodes' token caches (1 s).
    let slowest = outcomes.iter().map(|(_, took)| *took).max().expect("20");
    assert!(
        slowest < Duration::from_secs(3),
        "a logout took {slowest:?}"
    );
}

#[tokio::test]
async fn a_socket_opened_on_b_during_a_logout_on_a_gets_nothing_and_stores_nothing() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    let alice_a = cluster.a.user(ALICE).await;
    let bob = cluster.a.user(BOB).await;
    let chat = alice_a.create_chat(&[ALICE, BOB]).await;
    let alice_b = Cluster::on(&cluster.b, &alice_a);
    // B has validated (and cached) the token just before the logout.
    assert_eq!(alice_b.client.me().await.expect("valid on B").status, 200);

    let client_a = alice_a.client.clone();
    let logout = tokio::spawn(async move { client_a.logout().await.map(|r| r.status) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let query = WsQuery::token(&alice_b.token);
    match Connection::connect(cluster.b.client.base_url().as_str(), &query).await {
        Err(e) => assert!(
            matches!(e, WsError::Rejected { status: 401, .. }),
            "refused, but not with 401: {e:?}"
        ),
        Ok(mut conn) => {
            // Opened: it must close without delivering anything, and a send
            // written at once must not be stored.
            let _ = conn
                .send_frame(&ClientFrame::Send {
                    reference: Some("late".into()),
                    chat_id: Some(chat.id),
                    to: None,
                    content: "sent after the logout".into(),
                    client_message_id: None,
                })
                .await;
            match conn.next_frame(Duration::from_secs(3)).await {
                Err(WsError::Closed { code, .. }) => assert_eq!(code, 1008),
                other => panic!("the socket on B delivered {other:?} for a revoked token"),
            }
        }
    }
    assert_eq!(logout.await.expect("joined").expect("logout"), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = bob.messages(chat.id, 50).await;
    assert!(
        stored.iter().all(|m| m.content != "sent after the logout"),
        "a send over the revoked token's socket was stored: {stored:?}"
    );
}

#[tokio::test]
async fn with_redis_down_a_logout_on_a_still_stops_the_token_and_its_socket_on_b() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let cluster = Cluster::start(&redis.url()).await;
    let alice_a = cluster.a.user(ALICE).await;
    let bob = cluster.a.user(BOB).await;
    let chat = alice_a.create_chat(&[ALICE, BOB]).await;
    let alice_b = Cluster::on(&cluster.b, &alice_a);
    let mut socket_b = open_as(&alice_b).await;
    socket_b.assert_usable().await;
    assert_eq!(alice_b.client.me().await.expect("valid on B").status, 200);

    redis.kill();
    cluster.wait_bus(&cluster.a, "down").await;
    assert_eq!(alice_a.client.logout().await.expect("logout").status, 204);
    // No revocation event can reach B, yet B refuses the token at once...
    match alice_b.client.me().await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 401),
        other => panic!("B accepted the revoked token with Redis down: {other:?}"),
    }
    // ...and its open socket cannot act for it any more.
    socket_b
        .send(&ClientFrame::Send {
            reference: Some("late".into()),
            chat_id: Some(chat.id),
            to: None,
            content: "sent after the logout".into(),
            client_message_id: None,
        })
        .await;
    match socket_b.conn.next_frame(Duration::from_secs(3)).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 1008),
        other => panic!("the revoked token's socket on B answered {other:?}"),
    }
    let stored = bob.messages(chat.id, 50).await;
    assert!(stored.iter().all(|m| m.content != "sent after the logout"));
    // Valid tokens stay available without Redis.
    let bob_b = Cluster::on(&cluster.b, &bob);
    assert_eq!(bob_b.client.me().await.expect("bob on B").status, 200);
}

#[tokio::test]
async fn revoking_a_session_on_a_closes_its_socket_on_b_and_spares_the_others() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let gateway = crate::auth_helpers::SmsGateway::start().await;
    let webhook = gateway.url.clone();
    let cluster = Cluster::start_configured(&url, move |config| {
        config.otp_webhook_url = Some(webhook.clone());
    })
    .await;
    let laptop_a = cluster.a.user(ALICE).await;
    let laptop_b = Cluster::on(&cluster.b, &laptop_a);
    let phone_token = crate::auth_helpers::login(&cluster.a.client, &gateway, ALICE)
        .await
        .token;
    let phone_b = TestUser {
        user: laptop_a.user.clone(),
        client: cluster.b.client.with_token(&phone_token),
        token: phone_token,
    };
    let phone_a = Cluster::on(&cluster.a, &phone_b);
    let mut laptop_socket_b = open_as(&laptop_b).await;
    let mut phone_socket_b = open_as(&phone_b).await;
    laptop_socket_b.assert_usable().await;
    let laptop_session = phone_a
        .client
        .list_sessions()
        .await
        .expect("listed on A")
        .body
        .into_iter()
        .find(|s| !s.current)
        .expect("the laptop's session");

    let revoked = Instant::now();
    assert_eq!(
        phone_a
            .client
            .revoke_session(laptop_session.id)
            .await
            .expect("revoked on A")
            .status,
        204
    );

    match laptop_socket_b
        .conn
        .next_frame(Duration::from_secs(2))
        .await
    {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 1008),
        other => panic!("expected the laptop's socket on B to close with 1008, got {other:?}"),
    }
    assert!(
        revoked.elapsed() < Duration::from_millis(2000),
        "closed after {:?}",
        revoked.elapsed()
    );
    phone_socket_b.assert_usable().await;
    // No node accepts the laptop's token once the revoke is answered.
    assert_eq!(
        laptop_b
            .client
            .me()
            .await
            .expect_err("B refuses it")
            .status(),
        Some(401)
    );
    let listed_b = phone_b
        .client
        .list_sessions()
        .await
        .expect("listed on B")
        .body;
    assert_eq!(listed_b.len(), 1, "{listed_b:?}");
    assert!(listed_b[0].current);
}

/// Sends `count` messages from `alice` (HTTP, node A) into `chat`, each
/// answered 201 at once; `during(i)` runs before the i-th send.
async fn send_stream(
    alice: &TestUser,
    chat: Uuid,
    count: usize,
    mut during: impl AsyncFnMut(usize),
) -> Vec<Message> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        during(i).await;
        let started = Instant::now();
        sent.push(alice.send_in(chat, &format!("m{i}")).await);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "send {i} took {:?}: a send must not wait for Redis",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sent
}

#[tokio::test]
async fn a_redis_restart_during_a_stream_of_sends_loses_nothing() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let cluster = Cluster::start(&redis.url()).await;
    let alice = cluster.a.user(ALICE).await;
    let bob = Cluster::on(&cluster.b, &cluster.a.user(BOB).await);
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut bob_socket = open_as(&bob).await;
    let mut alice_socket = open_as(&alice).await;

    let sent = send_stream(&alice, chat.id, 90, async |i| match i {
        30 => redis.kill(),
        45 => {
            // Down: still ready, the bus reported, same-node delivery intact.
            cluster.wait_bus(&cluster.a, "down").await;
        }
        60 => redis.restart().await,
        // The last ones go out while Redis is down, and nothing follows
        // them: only the catch-up after the restart can bring them to B.
        80 => redis.kill(),
        _ => {}
    })
    .await;
    // Outlast the publish timeout (1 s), so that those sends cannot reach
    // the stream late by a retry: they are in the store only.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;

    collect_messages(&mut alice_socket, &sent).await;
    collect_messages(&mut bob_socket, &sent).await;
    cluster.wait_bus(&cluster.a, "ok").await;
    cluster.wait_bus(&cluster.b, "ok").await;
    // Live again after the restart: a new message crosses at once.
    let after = alice.send_in(chat.id, "after").await;
    let (message, _) = bob_socket.next_message().await;
    assert_eq!(message.id, after.id);
}

#[tokio::test]
async fn killing_the_nodes_redis_connections_loses_nothing() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let cluster = Cluster::start(&redis.url()).await;
    let alice = cluster.a.user(ALICE).await;
    let bob = Cluster::on(&cluster.b, &cluster.a.user(BOB).await);
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut bob_socket = open_as(&bob).await;
    let admin = redis::Client::open(redis.url()).expect("a valid URL");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("connects");

    let sent = send_stream(&alice, chat.id, 61, async |i| {
        // The last send follows a kill and nothing follows it.
        if i % 20 == 10 || i == 60 {
            // Every client but this one: both nodes' readers and publishers.
            let killed: i64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
                .query_async(&mut admin)
                .await
                .expect("CLIENT KILL");
            assert!(killed >= 2, "killed {killed} connections");
        }
    })
    .await;

    collect_messages(&mut bob_socket, &sent).await;
}

#[tokio::test]
async fn the_send_budget_holds_across_nodes() {
    let Some(url) = shared_redis().await else {
        return;
    };
    // 1/s with bursts of 10, per user, on each node and across both.
    let cluster = Cluster::start_with(&url, 1).await;
    let alice_a = cluster.a.user(ALICE).await;
    cluster.a.register(BOB).await;
    let alice_b = Cluster::on(&cluster.b, &alice_a);
    for i in 0..10 {
        alice_a.send_to(BOB, &format!("burst {i}")).await;
    }

    // Node B has its own full local budget; only the shared one refuses.
    // The checks are asynchronous: a few requests may slip through.
    let mut accepted = 0;
    let refused = loop {
        match alice_b
            .client
            .send_message(&missive_client::protocol::SendMessageRequest {
                receiver: Some(BOB.to_owned()),
                content: "via B".into(),
                ..Default::default()
            })
            .await
        {
            Ok(response) => {
                assert_eq!(response.status, 201);
                accepted += 1;
                assert!(
                    accepted <= 3,
                    "node B accepted {accepted} sends over a spent budget"
                );
            }
            Err(e) => break e,
        }
    };
    match refused {
        ClientError::Api { status, body } => {
            assert_eq!((status, body.code.as_str()), (429, "rate_limited"));
        }
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_of_a_sigkilled_node_resumes_on_the_other_and_gets_everything_once() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    // Node C: the real binary on the same database and stream, to be SIGKILLed.
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut node_c = Server::start_with(
        cluster.db.url(),
        dir.path(),
        "node-c",
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PREFIX", cluster.prefix.as_str()),
        ],
    )
    .await;
    let alice = cluster.a.user(ALICE).await;
    let bob_on_a = Cluster::on(&cluster.a, &cluster.a.user(BOB).await);
    let bob_on_c = TestUser {
        client: node_c.client().with_token(&bob_on_a.token),
        ..bob_on_a.clone()
    };
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut socket = open_as(&bob_on_c).await;
    // C reads the stream from its tail: wait until a message crosses to it.
    let mut processed: Vec<Uuid> = Vec::new();
    let mut cursor;
    let deadline = Instant::now() + ACROSS;
    loop {
        let probe = alice.send_in(chat.id, "probe").await;
        let frame = socket.conn.next_frame(Duration::from_millis(300)).await;
        if let Ok(ServerFrame::Message { message, cursor: c }) = frame {
            assert_eq!(message.id, probe.id);
            processed.push(message.id);
            cursor = c;
            break;
        }
        assert!(Instant::now() < deadline, "node C never received a message");
    }

    // A stream from A; Bob processes some of it on C, then C dies mid-stream.
    let mut sent = Vec::new();
    for i in 0..60 {
        sent.push(alice.send_in(chat.id, &format!("m{i}")).await);
        if i < 20
            && let Ok(ServerFrame::Message { message, cursor: c }) =
                socket.conn.next_frame(Duration::from_secs(2)).await
        {
            processed.push(message.id);
            cursor = c;
        }
        if i == 30 {
            node_c.kill();
        }
    }

    assert!(
        processed.len() > 10,
        "only {} messages were processed on C before the kill",
        processed.len()
    );
    // Bob resumes on A from the last cursor he processed on C.
    let mut resumed = resume_as(&bob_on_a, &cursor).await;
    let mut all: Vec<Uuid> = processed.clone();
    let mut seen: HashSet<Uuid> = processed.iter().copied().collect();
    let wanted = sent.len() + 1;
    let deadline = Instant::now() + ACROSS;
    while all.len() < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        match resumed.conn.next_frame(left).await {
            Ok(ServerFrame::Message { message, .. }) => {
                assert!(seen.insert(message.id), "message {} came twice", message.id);
                all.push(message.id);
            }
            Ok(_) => {}
            Err(e) => panic!("after {} of {wanted} messages: {e}", all.len()),
        }
    }
    let mut expected: Vec<Uuid> = vec![all[0]];
    expected.extend(sent.iter().map(|m| m.id));
    assert_eq!(
        all, expected,
        "every message once, in order, across the kill"
    );
    resumed.assert_silent().await;
}

/// The per-number login limits are counted in Redis: two nodes do not
/// double them (3 codes per 10 minutes, 10 wrong guesses per hour).
#[tokio::test]
async fn login_limits_per_number_hold_across_nodes() {
    let Some(redis_url) = shared_redis().await else {
        return;
    };
    let gateway = crate::auth_helpers::SmsGateway::start().await;
    let db = Arc::new(TestDb::for_suite().await);
    let prefix = format!("missive-test-{}", Uuid::now_v7());
    let node = || {
        let (redis_url, prefix) = (redis_url.clone(), prefix.clone());
        let webhook = gateway.url.clone();
        TestAppBuilder::new()
            .database(db.clone())
            .configure(move |config| {
                config.redis_url = Some(redis_url);
                config.redis_prefix = prefix;
                config.otp_webhook_url = Some(webhook);
                config.auth_rate_limit = 1_000;
            })
            .spawn()
    };
    let (a, b) = (node().await, node().await);
    a.register(ALICE).await;
    a.register(BOB).await;
    let ask = |node: &TestApp, phone: &str| {
        let body = json!({ "phoneNumber": phone });
        let node = node.client.clone();
        async move {
            node.raw(
                missive_client::Method::POST,
                "/sessions",
                Some(body.to_string()),
                Some("application/json"),
            )
            .await
            .expect("the node answers")
        }
    };
    let verify = |node: &TestApp, phone: &str, code: &str| {
        let body = json!({ "phoneNumber": phone, "code": code });
        let node = node.client.clone();
        async move {
            node.raw(
                missive_client::Method::POST,
                "/sessions/verify",
                Some(body.to_string()),
                Some("application/json"),
            )
            .await
            .expect("the node answers")
        }
    };

    // Codes: three, spread over both nodes; the fourth is refused on either.
    for node in [&a, &b, &a] {
        assert_eq!(ask(node, ALICE).await.status, 202);
    }
    crate::auth_helpers::assert_rate_limited(&ask(&b, ALICE).await);
    crate::auth_helpers::assert_rate_limited(&ask(&a, ALICE).await);

    // Guesses: ten wrong ones alternating between the nodes (five a node);
    // then the right code of a fresh code is refused on either node.
    for _ in 0..2 {
        assert_eq!(ask(&a, BOB).await.status, 202);
        let code = gateway.last_code(BOB);
        for i in 0..5 {
            let node = if i % 2 == 0 { &a } else { &b };
            let wrong = crate::auth_helpers::wrong_code(&code);
            assert_eq!(verify(node, BOB, &wrong).await.status, 401);
        }
    }
    assert_eq!(ask(&b, BOB).await.status, 202);
    let code = gateway.last_code(BOB);
    crate::auth_helpers::assert_rate_limited(&verify(&b, BOB, &code).await);
    crate::auth_helpers::assert_rate_limited(&verify(&a, BOB, &code).await);
}

#[tokio::test]
async fn the_auth_limit_is_n_per_minute_on_two_nodes_burst_then_steady() {
    let Some(url) = shared_redis().await else {
        return;
    };
    // AUTH_RATE_LIMIT=3 on both nodes: at most 3 registrations from one
    // address in any 60 s, whichever node they reach.
    let cluster = Cluster::start_configured(&url, |config| config.auth_rate_limit = 3).await;
    let start = Instant::now();
    let mut accepted: Vec<Duration> = Vec::new();
    let mut attempt = 0u32;
    let register = async |attempt: u32| {
        let node = if attempt.is_multiple_of(2) {
            &cluster.a
        } else {
            &cluster.b
        };
        let phone = format!("+1555030{attempt:04}");
        let answer = node
            .post_json("/register", &json!({ "phoneNumber": phone }))
            .await;
        assert!(
            answer.status == 201 || answer.status == 429,
            "{} {}",
            answer.status,
            answer.body
        );
        answer.status == 201
    };
    // A burst of 20, alternating between the nodes...
    for _ in 0..20 {
        if register(attempt).await {
            accepted.push(start.elapsed());
        }
        attempt += 1;
    }
    assert_eq!(accepted.len(), 3, "the burst let {accepted:?} through");
    // ...then one a second, still alternating, for just over a minute.
    while start.elapsed() < Duration::from_secs(64) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if register(attempt).await {
            accepted.push(start.elapsed());
        }
        attempt += 1;
    }
    let first_minute = accepted
        .iter()
        .filter(|at| **at < Duration::from_secs(59))
        .count();
    assert_eq!(first_minute, 3, "accepted at {accepted:?}");
    for (i, at) in accepted.iter().enumerate() {
        let in_window = accepted[..=i]
            .iter()
            // 1 s short of the window: the test sees answers, not the
            // server's own moments.
            .filter(|earlier| *at - **earlier < Duration::from_secs(59))
            .count();
        assert!(in_window <= 3, "more than 3 in a minute: {accepted:?}");
    }
    assert!(
        accepted.len() > 3,
        "the window frees up after a minute: {accepted:?}"
    );
}
