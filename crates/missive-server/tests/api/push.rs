//! Push notifications (`PUSH_WEBHOOK_URL`, README and docs/operations.md,
//! "Push notifications"): a recipient with no open connection gets one
//! signed POST per message, retried after a failure, kept across a SIGKILL;
//! a connected recipient and the sender get none.
//!
//! The push gateway is a stand-in: a real HTTP server of the test on port 0
//! that records every request and answers with the status it is told to.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use crate::durability::Server;
use crate::helpers::{ALICE, BOB, CAROL, TestApp, TestAppBuilder};
use crate::ws_helpers::open_as;

/// The key the tests sign with.
pub const SECRET: &str = "test-push-secret";
/// Retries start this soon in the tests.
pub const RETRY_BASE: Duration = Duration::from_millis(200);
/// How long a push that must come may take.
const ARRIVES: Duration = Duration::from_secs(10);

/// One request the stand-in gateway received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The parsed JSON body.
    pub body: Value,
    /// Whether `X-Missive-Signature` is the HMAC of the raw body under [`SECRET`].
    pub signed: bool,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The status the gateway answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

/// A push gateway of the test: records requests, answers with a settable status.
pub struct PushGateway {
    /// Where to point `PUSH_WEBHOOK_URL`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // Lowercase hex, as documented.
    signature.chars().all(|c| !c.is_ascii_uppercase())
        && hex::decode(signature).is_ok_and(|tag| mac.verify_slice(&tag).is_ok())
}

async fn record(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-missive-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let status = shared.status.load(Ordering::SeqCst);
    let received = Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signed: verify(SECRET, &body, signature),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        answered: status,
    };
    if let Ok(mut all) = shared.received.lock() {
        all.push(received);
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl PushGateway {
    /// Starts one on `127.0.0.1:0`, answering 200.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!("http://{}/push", listener.local_addr().expect("an address"));
        let app = axum::Router::new()
            .route("/push", axum::routing::post(record))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushGateway { url, shared, task }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The bodies of the requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.body)
            .collect()
    }

    /// Waits (at most `limit`) until `done` holds for the requests so far.
    pub async fn wait_until(
        &self,
        limit: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the push gateway never got what was expected; it got {received:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a push for `user` was accepted and returns its body.
    pub async fn accepted_for(&self, user: Uuid) -> Value {
        let user = user.to_string();
        let received = self
            .wait_until(ARRIVES, |all| {
                all.iter()
                    .any(|r| r.answered == 200 && r.body["userId"] == user.as_str())
            })
            .await;
        received
            .into_iter()
            .find(|r| r.answered == 200 && r.body["userId"] == user.as_str())
            .map(|r| r.body)
            .expect("found above")
    }
}

impl Drop for PushGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server of the suite's store sending pushes to `gateway`.
async fn app_pushing_to(gateway: &PushGateway) -> TestApp {
    let url = gateway.url.clone();
    TestAppBuilder::new()
        .configure(move |config| {
            config.push_webhook_url = Some(url);
            config.push_webhook_secret = Some(SECRET.into());
            config.push_retry_base = RETRY_BASE;
        })
        .spawn()
        .await
}

#[tokio::test]
async fn an_offline_recipient_gets_one_signed_push_with_a_preview() {
    let gateway = PushGateway::start().await;
    let app = app_pushing_to(&gateway).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    // 150 characters, multi-byte ones included: the preview is cut at 100 characters.
    let content = format!("{}{}", "é".repeat(90), "🎉".repeat(60));
    let message = alice.send_to(BOB, &content).await;

    let push = gateway.accepted_for(bob.user.id).await;
    assert_eq!(push["userId"], bob.user.id.to_string());
    assert_eq!(push["chatId"], message.chat_id.to_string());
    assert_eq!(push["messageId"], message.id.to_string());
    assert_eq!(push["sender"], ALICE);
    let expected_preview: String = content.chars().take(100).collect();
    assert_eq!(push["preview"], expected_preview.as_str());
    let object = push.as_object().expect("a JSON object");
    assert_eq!(object.len(), 5, "exactly the documented fields: {push}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = gateway.received();
    assert_eq!(
        received.len(),
        1,
        "one push, not one per retry: {received:#?}"
    );
    assert!(received[0].signed, "X-Missive-Signature verifies");
    assert!(received[0].content_type.starts_with("application/json"));
    assert!(
        received
            .iter()
            .all(|r| r.body["userId"] != alice.user.id.to_string()),
        "the sender gets no push"
    );
    let metrics = app.get("/metrics").await.body;
    assert!(
        metrics.contains("missive_push_total{outcome=\"sent\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_push_the_gateway_refused_is_retried_later() {
    let gateway = PushGateway::start().await;
    gateway.answer(500);
    let app = app_pushing_to(&gateway).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = alice.send_to(BOB, "are you there?").await;

    gateway.wait_until(ARRIVES, |all| !all.is_empty()).await;
    gateway.answer(200);
    let push = gateway.accepted_for(bob.user.id).await;
    assert_eq!(push["messageId"], message.id.to_string());

    let received = gateway.received();
    assert_eq!(received[0].answered, 500, "{received:#?}");
    assert!(
        received
            .iter()
            .all(|r| r.signed && r.body["messageId"] == message.id.to_string()),
        "every attempt is the same signed push: {received:#?}"
    );
    tokio::time::sleep(RETRY_BASE * 4).await;
    assert_eq!(
        gateway.accepted().len(),
        1,
        "delivered once, then no more tries"
    );
}

#[tokio::test]
async fn a_connected_recipient_and_the_sender_get_no_push() {
    let gateway = PushGateway::start().await;
    let app = app_pushing_to(&gateway).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let group = alice.create_chat(&[ALICE, BOB, CAROL]).await;
    let mut bobs_socket = open_as(&bob).await;

    let message = alice.send_in(group.id, "lunch?").await;
    let (delivered, _) = bobs_socket.next_message().await;
    assert_eq!(delivered.id, message.id);
    // Carol, offline, is told: the dispatcher has handled this message.
    let push = gateway.accepted_for(carol.user.id).await;
    assert_eq!(push["messageId"], message.id.to_string());
    assert_eq!(push["sender"], ALICE);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let users: Vec<Value> = gateway
        .received()
        .into_iter()
        .map(|r| r.body["userId"].clone())
        .collect();
    assert_eq!(
        users,
        vec![Value::from(carol.user.id.to_string())],
        "only the offline recipient gets a push"
    );
}

#[tokio::test]
async fn a_recipient_who_connects_before_the_retry_gets_no_stale_push() {
    let gateway = PushGateway::start().await;
    gateway.answer(503);
    let app = app_pushing_to(&gateway).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = alice.send_to(BOB, "ping").await;
    gateway.wait_until(ARRIVES, |all| !all.is_empty()).await;

    // Bob comes online and gets the message from the store.
    let mut socket = crate::ws_helpers::resume_as(&bob, "0").await;
    let (replayed, _) = socket.next_message().await;
    assert_eq!(replayed.id, message.id);
    gateway.answer(200);

    // The retry finds him connected and drops the push.
    let deadline = Instant::now() + ARRIVES;
    loop {
        let metrics = app.get("/metrics").await.body;
        if metrics.contains("missive_push_total{outcome=\"skipped\"} 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "never skipped: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gateway.accepted().is_empty(), "{:#?}", gateway.received());
    socket.assert_silent().await;
}

#[tokio::test]
async fn a_pending_push_survives_a_sigkill() {
    let gateway = PushGateway::start().await;
    gateway.answer(500);
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = crate::test_db::TestDb::for_suite().await;
    let base = format!("{}ms", RETRY_BASE.as_millis());
    let env = [
        ("PUSH_WEBHOOK_URL", gateway.url.as_str()),
        ("PUSH_WEBHOOK_SECRET", SECRET),
        ("PUSH_RETRY_BASE", base.as_str()),
    ];
    let mut server = Server::start_with(db.url(), dir.path(), "first", &env).await;
    let alice = server
        .client()
        .register(ALICE, None)
        .await
        .expect("registered")
        .body;
    let bob = server
        .client()
        .register(BOB, None)
        .await
        .expect("registered")
        .body;
    let sent = server
        .client()
        .with_token(&alice.token)
        .send_message(&missive_client::protocol::SendMessageRequest {
            receiver: Some(BOB.into()),
            content: "while the gateway is down".into(),
            ..Default::default()
        })
        .await
        .expect("sent");
    assert_eq!(sent.status, 201);
    gateway.wait_until(ARRIVES, |all| !all.is_empty()).await;
    server.kill();
    assert!(gateway.accepted().is_empty());

    gateway.answer(200);
    let _restarted = Server::start_with(db.url(), dir.path(), "second", &env).await;
    // A claim cut by the kill comes back after its lease (30 s) at worst.
    let user = bob.user.id.to_string();
    gateway
        .wait_until(Duration::from_secs(45), |all| {
            all.iter()
                .any(|r| r.answered == 200 && r.body["userId"] == user.as_str())
        })
        .await;
    let accepted = gateway.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let push = &accepted[0];
    assert_eq!(push["messageId"], sent.body.id.to_string());
    assert_eq!(push["sender"], ALICE);
    assert!(gateway.received().iter().all(|r| r.signed));
}

/// Without a secret the server refuses to start: pushes are always signed.
#[tokio::test]
async fn a_push_url_without_a_secret_is_refused_at_startup() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let db = crate::test_db::TestDb::for_suite().await;
    let config = missive_server::Config {
        database_url: db.url().to_owned(),
        push_webhook_url: Some("http://127.0.0.1:9/push".into()),
        ..missive_server::Config::default()
    };
    let error = match missive_server::Application::build(config, listener).await {
        Ok(_) => panic!("the app must refuse to start"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("PUSH_WEBHOOK_SECRET"), "{error}");
}
