//! DNS rebinding under `AUTH_MODE=loopback` (README, "Security model"): a
//! page of another site whose name resolves to 127.0.0.1 reaches the server
//! from a loopback peer, but its requests name that site in `Host` (and
//! `Origin`). Claimed identities are believed only when `Host` is a loopback
//! name or address or one of `ALLOWED_HOSTS`; tokens work whatever the Host.

use std::time::Duration;

use missive_server::AuthMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{ALICE, BOB, TestApp, content_length, spawn_app_with};

/// A raw answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// Asserts a JSON error `{"code","message"}` with `status` and `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{self:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON body");
        assert_eq!(body["code"], code, "{self:?}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }
}

/// Sends one raw HTTP/1.1 request on a new connection and reads its answer
/// (the head, and a `Content-Length` body; a 101 ends at its head).
pub async fn exchange(stream: &mut TcpStream, request: &str) -> Answer {
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is written");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status line");
            let length = content_length(&head);
            if status == 101 || received.len() >= end + 4 + length {
                let body = text[end + 4..].to_owned();
                return Answer { status, head, body };
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the answer arrives")
            .expect("the socket reads");
        assert!(n > 0, "closed before a whole answer: {text:?}");
        received.extend_from_slice(&chunk[..n]);
    }
}

async fn send(app: &TestApp, request: String) -> Answer {
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    exchange(&mut stream, &request).await
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

fn post_message(host: &str, extra: &str, body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!(
        "POST /messages HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A WebSocket upgrade of `path` to `host`, from a page of `origin`.
fn upgrade(path: &str, host: &str, origin: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

const ALICE_Q: &str = "%2B1234567890";

fn claimed_send() -> serde_json::Value {
    serde_json::json!({"sender": ALICE, "receiver": BOB, "content": "claimed"})
}

/// An app in `mode` with `allowed_hosts`, where Alice and Bob have a chat.
async fn app_with_a_chat(mode: AuthMode, allowed_hosts: &[&str]) -> (TestApp, String) {
    let allowed: Vec<String> = allowed_hosts.iter().map(|h| (*h).to_owned()).collect();
    let app = spawn_app_with(move |config| {
        config.auth_mode = mode;
        config.allowed_hosts = allowed;
    })
    .await;
    let (_, token) = app.register(ALICE).await;
    app.register(BOB).await;
    let chat = app
        .client
        .with_token(&token)
        .create_chat(&[ALICE, BOB])
        .await
        .expect("a chat")
        .body
        .id
        .to_string();
    (app, chat)
}

#[tokio::test]
async fn claims_sent_to_a_foreign_host_get_401_on_rest_and_websocket() {
    let (app, chat) = app_with_a_chat(AuthMode::Loopback, &[]).await;
    let port = app.address.port();
    for host in ["evil.example".to_owned(), format!("evil.example:{port}")] {
        let origin = format!("http://{host}");
        let from_page = format!("Origin: {origin}\r\n");
        send(
            &app,
            get(&format!("/chats?phoneNumber={ALICE_Q}"), &host, &from_page),
        )
        .await
        .assert_error(401, "unauthorized");
        send(
            &app,
            get(&format!("/chats?participant={ALICE_Q}"), &host, &from_page),
        )
        .await
        .assert_error(401, "unauthorized");
        send(
            &app,
            get(
                &format!("/chats/{chat}/messages?phoneNumber={ALICE_Q}"),
                &host,
                &from_page,
            ),
        )
        .await
        .assert_error(401, "unauthorized");
        send(&app, post_message(&host, &from_page, &claimed_send()))
            .await
            .assert_error(401, "unauthorized");
        send(
            &app,
            upgrade(&format!("/ws?userID={ALICE_Q}"), &host, &origin),
        )
        .await
        .assert_error(401, "unauthorized");
    }
    // Nothing was sent by the refused claims.
    let listed = send(
        &app,
        get(&format!("/chats?phoneNumber={ALICE_Q}"), "localhost", ""),
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let chats: serde_json::Value = serde_json::from_str(&listed.body).expect("JSON");
    assert!(chats[0]["lastMessage"].is_null(), "{chats}");
}

#[tokio::test]
async fn claims_sent_to_loopback_names_and_allowed_hosts_are_believed() {
    let (app, chat) = app_with_a_chat(AuthMode::Loopback, &["chat.internal"]).await;
    let port = app.address.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
        format!("chat.internal:{port}"),
        "chat.internal".to_owned(),
    ] {
        let chats = send(
            &app,
            get(&format!("/chats?phoneNumber={ALICE_Q}"), &host, ""),
        )
        .await;
        assert_eq!(chats.status, 200, "{host}: {chats:?}");
        let messages = send(
            &app,
            get(
                &format!("/chats/{chat}/messages?phoneNumber={ALICE_Q}"),
                &host,
                "",
            ),
        )
        .await;
        assert_eq!(messages.status, 200, "{host}: {messages:?}");
        let sent = send(&app, post_message(&host, "", &claimed_send())).await;
        assert_eq!(sent.status, 201, "{host}: {sent:?}");
        // The server's own page (Origin = Host) opens a socket with a claim.
        let socket = send(
            &app,
            upgrade(
                &format!("/ws?userID={ALICE_Q}"),
                &host,
                &format!("http://{host}"),
            ),
        )
        .await;
        assert_eq!(socket.status, 101, "{host}: {socket:?}");
    }
}

#[tokio::test]
async fn a_bearer_token_works_whatever_the_host() {
    let (app, chat) = app_with_a_chat(AuthMode::Loopback, &[]).await;
    let (_, token) = app.register("+15550000002").await;
    let (host, origin) = ("evil.example", "http://evil.example");
    let auth = format!("Authorization: Bearer {token}\r\nOrigin: {origin}\r\n");
    let chats = send(&app, get("/chats", host, &auth)).await;
    assert_eq!(chats.status, 200, "{chats:?}");
    let sent = send(
        &app,
        post_message(
            host,
            &auth,
            &serde_json::json!({"receiver": ALICE, "content": "with a token"}),
        ),
    )
    .await;
    assert_eq!(sent.status, 201, "{sent:?}");
    let socket = send(&app, upgrade(&format!("/ws?token={token}"), host, origin)).await;
    assert_eq!(socket.status, 101, "{socket:?}");
    // Alice's chat with Bob is not the token's: still 404 by token.
    let other = send(&app, get(&format!("/chats/{chat}/messages"), host, &auth)).await;
    other.assert_error(404, "chat_not_found");
}

#[tokio::test]
async fn open_mode_believes_claims_whatever_the_host() {
    let (app, _) = app_with_a_chat(AuthMode::Open, &[]).await;
    let chats = send(
        &app,
        get(
            &format!("/chats?phoneNumber={ALICE_Q}"),
            "evil.example",
            "Origin: http://evil.example\r\n",
        ),
    )
    .await;
    assert_eq!(chats.status, 200, "{chats:?}");
}
