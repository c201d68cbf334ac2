//! Rate limits trip exactly where the README's configuration table says and recover after
//! `Retry-After` (rate_limits.rs checks the 429 shape): `AUTH_RATE_LIMIT`
//! per client address shared by register and login, `SEND_RATE_LIMIT` per
//! user shared by HTTP and WebSocket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_client::protocol::{ClientFrame, ServerFrame};
use missive_client::ws::{Connection, WsQuery};
use missive_client::{Method, RawResponse};
use serde_json::json;
use uuid::Uuid;

use crate::auth_helpers::assert_rate_limited;
use missive_server::security::ManualClock;

use crate::helpers::{ALICE, BOB, TestApp, TestUser, spawn_app_with, spawn_app_with_clock};

/// How long a test waits for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);

async fn register_raw(app: &TestApp, i: u32) -> RawResponse {
    app.post_json(
        "/register",
        &json!({ "phoneNumber": format!("+1555{i:07}") }),
    )
    .await
}

#[tokio::test]
async fn an_auth_limit_of_3_refuses_the_fourth_request_of_any_auth_route_for_a_minute() {
    let app = spawn_app_with(|config| config.auth_rate_limit = 3).await;

    for i in 0..3 {
        let raw = register_raw(&app, i).await;
        assert_eq!(raw.status, 201, "request {}: {}", i + 1, raw.body);
    }
    let fourth = register_raw(&app, 3).await;
    let login = app
        .post_json("/sessions", &json!({ "phoneNumber": "+15550000000" }))
        .await;
    let verify = app
        .post_json(
            "/sessions/verify",
            &json!({ "phoneNumber": "+15550000000", "code": "123456" }),
        )
        .await;
    let alias = app
        .post_json("/users", &json!({ "phoneNumber": "+15559999999" }))
        .await;

    // 3 in any minute: the next slot opens when the first leaves the window.
    let retry_after = assert_rate_limited(&fourth);
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    for raw in [&login, &verify, &alias] {
        assert_rate_limited(raw);
    }
}

#[tokio::test]
async fn an_auth_limit_recovers_after_retry_after() {
    let clock = Arc::new(ManualClock::new());
    let app = spawn_app_with_clock(|config| config.auth_rate_limit = 3, clock.clone()).await;
    for i in 0..3 {
        assert_eq!(register_raw(&app, i).await.status, 201);
        clock.advance(Duration::from_secs(10));
    }
    // At 30 s the window (0–60 s) is full: the next slot is at 60 s.
    let retry_after = assert_rate_limited(&register_raw(&app, 3).await);
    assert_eq!(retry_after, 30);
    clock.advance(Duration::from_secs(retry_after - 1));
    assert_rate_limited(&register_raw(&app, 4).await);
    clock.advance(Duration::from_secs(1));
    let again = register_raw(&app, 5).await;
    assert_eq!(again.status, 201, "after Retry-After: {}", again.body);
    // One slot freed, one used: full again until the second leaves at 70 s.
    assert_eq!(assert_rate_limited(&register_raw(&app, 6).await), 10);
}

/// `POST /messages` to Bob with `user`'s token.
async fn send_http(user: &TestUser) -> RawResponse {
    user.client
        .raw(
            Method::POST,
            "/messages",
            Some(json!({ "receiver": BOB, "content": "quick" }).to_string()),
            Some("application/json"),
        )
        .await
        .expect("the server answers")
}

/// A WebSocket `send` to Bob; `Ok(())` on its ack, `Err(code)` on an error frame.
async fn send_ws(conn: &mut Connection) -> Result<(), String> {
    let reference = Uuid::now_v7().to_string();
    conn.send_frame(&ClientFrame::Send {
        reference: Some(reference.clone()),
        chat_id: None,
        to: Some(BOB.to_owned()),
        content: "quick".to_owned(),
        client_message_id: None,
    })
    .await
    .expect("sent");
    loop {
        match conn.next_frame(WAIT).await.expect("an answer") {
            ServerFrame::Ack { reference: r, .. } if r.as_deref() == Some(&reference) => {
                return Ok(());
            }
            ServerFrame::Error {
                reference: r, code, ..
            } => {
                assert_eq!(
                    r.as_deref(),
                    Some(reference.as_str()),
                    "the error names the send"
                );
                return Err(code);
            }
            ServerFrame::Message { .. } => {}
            other => panic!("expected an ack or an error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_send_limit_of_1_allows_a_burst_of_10_over_http_and_websocket_together_then_recovers() {
    let app = spawn_app_with(|config| config.send_rate_limit = 1).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut conn = Connection::connect(
        app.client.base_url().as_str(),
        &WsQuery::token(&alice.token),
    )
    .await
    .expect("the upgrade succeeds");
    assert!(matches!(
        conn.next_frame(WAIT).await.expect("ready"),
        ServerFrame::Ready { .. }
    ));

    // Five sends over each transport use the whole burst of 10.
    let start = Instant::now();
    for i in 0..5 {
        let raw = send_http(&alice).await;
        assert_eq!(raw.status, 201, "HTTP send {}: {}", i + 1, raw.body);
        send_ws(&mut conn)
            .await
            .unwrap_or_else(|code| panic!("WebSocket send {}: {code}", i + 1));
    }
    let eleventh = send_http(&alice).await;
    let burst = start.elapsed();
    // A refused send costs nothing; at most one slot can come back while we look.
    let mut ws_refusal = send_ws(&mut conn).await;
    if ws_refusal.is_ok() {
        ws_refusal = send_ws(&mut conn).await;
    }

    if burst < Duration::from_millis(900) {
        // No slot came back during the burst: exactly the 11th is refused.
        assert_rate_limited(&eleventh);
    }
    assert_eq!(ws_refusal, Err("rate_limited".to_owned()), "over WebSocket");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let http_again = send_http(&alice).await;
    assert_eq!(
        http_again.status, 201,
        "after a second: {}",
        http_again.body
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        send_ws(&mut conn).await,
        Ok(()),
        "over WebSocket after a second"
    );
}

#[tokio::test]
async fn a_refused_http_send_carries_retry_after_1_under_a_send_limit_of_1() {
    let app = spawn_app_with(|config| config.send_rate_limit = 1).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;

    let mut refused = None;
    for _ in 0..40 {
        let raw = send_http(&alice).await;
        if raw.status != 201 {
            refused = Some(raw);
            break;
        }
    }
    let refused = refused.expect("40 quick sends exceed 1/s with a burst of 10");

    assert_eq!(assert_rate_limited(&refused), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(send_http(&alice).await.status, 201);
}
