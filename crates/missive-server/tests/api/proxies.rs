//! `TRUSTED_PROXIES`: only a trusted peer's `X-Forwarded-For`/`Forwarded`
//! name the client, whose address then decides `loopback` claims and the
//! per-address rate limits; anyone else's forwarding headers are ignored.

use serde_json::json;

use crate::helpers::{ALICE, BOB, TestApp, spawn_app_with};

async fn post(app: &TestApp, path: &str, body: serde_json::Value, forwarded: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", app.address))
        .json(&body);
    if let Some(client) = forwarded {
        request = request.header("x-forwarded-for", client);
    }
    request
        .send()
        .await
        .expect("the server answers")
        .status()
        .as_u16()
}

fn sandbox_send() -> serde_json::Value {
    json!({"sender": ALICE, "receiver": BOB, "content": "hi"})
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_remote_client_cannot_use_loopback_claims() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a net")];
    })
    .await;
    app.register(ALICE).await;
    app.register(BOB).await;

    let remote = post(&app, "/message", sandbox_send(), Some("203.0.113.9")).await;
    let local = post(&app, "/message", sandbox_send(), None).await;

    assert_eq!(
        remote, 401,
        "a remote client behind the proxy is not loopback"
    );
    assert_eq!(local, 201, "the proxy host itself still is");
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let app = spawn_app_with(|_| {}).await;
    app.register(ALICE).await;
    app.register(BOB).await;

    // A loopback peer claiming to forward for a remote client: not believed,
    // so the request is judged by the real (loopback) peer.
    let status = post(&app, "/message", sandbox_send(), Some("203.0.113.9")).await;

    assert_eq!(status, 201);
}

#[tokio::test]
async fn each_client_behind_a_trusted_proxy_has_its_own_register_budget() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a net")];
        config.auth_rate_limit = 2;
    })
    .await;
    let register = |n: u32| json!({"phoneNumber": format!("+1555000{n:04}")});

    let first = post(&app, "/register", register(1), Some("198.51.100.1")).await;
    let second = post(&app, "/register", register(2), Some("198.51.100.1")).await;
    let third = post(&app, "/register", register(3), Some("198.51.100.1")).await;
    let other = post(&app, "/register", register(4), Some("198.51.100.2")).await;

    assert_eq!((first, second), (201, 201));
    assert_eq!(third, 429, "the first client's budget is spent");
    assert_eq!(other, 201, "another client behind the proxy is not");
}
