//! The Rust client's `LiveConnection` against a real server: it reconnects
//! when the server restarts, resumes from its cursor with nothing lost and
//! nothing twice, and stops (instead of retrying for ever) once its token is
//! revoked.

use std::sync::Arc;
use std::time::Duration;

use missive_client::live::{LiveConnection, LiveOptions};
use missive_client::protocol::ServerFrame;
use missive_client::ws::WsQuery;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestAppBuilder, TestUser};
use crate::test_db::TestDb;

/// Short delays, so that a test reconnects within a second.
fn fast() -> LiveOptions {
    LiveOptions {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        idle: Duration::from_secs(2),
        ..LiveOptions::default()
    }
}

/// The next frame, which must come within 15 s.
async fn next(live: &mut LiveConnection) -> ServerFrame {
    tokio::time::timeout(Duration::from_secs(15), live.next())
        .await
        .expect("a frame within 15 s")
        .expect("the connection lives on")
}

#[tokio::test]
async fn live_connection_resumes_across_a_server_restart_with_nothing_lost_or_repeated() {
    let db = Arc::new(TestDb::for_suite().await);
    let first = TestAppBuilder::new().database(db.clone()).spawn().await;
    let address = first.address;
    let alice = first.user(ALICE).await;
    let bob = first.user(BOB).await;
    let mut live = LiveConnection::connect(
        &format!("http://{address}"),
        WsQuery::token(&bob.token),
        fast(),
    )
    .await
    .expect("connects");
    assert!(matches!(next(&mut live).await, ServerFrame::Ready { .. }));

    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(alice.send_to(BOB, &format!("before {i}")).await.id);
    }
    let mut received: Vec<Uuid> = Vec::new();
    while received.len() < 3 {
        if let ServerFrame::Message { message, .. } = next(&mut live).await {
            received.push(message.id);
        }
    }
    let cursor_before = live.cursor().expect("a cursor").to_owned();

    // The server goes away; a new one starts on the same port and data a
    // moment later, and Alice sends two more (maybe before Bob is back:
    // those come from the resume, the others live).
    first.stop().await.expect("stops");
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = TestAppBuilder::new()
            .database(db)
            .port(address.port())
            .spawn()
            .await;
        let alice = TestUser {
            client: second.client.with_token(&alice.token),
            ..alice
        };
        let mut ids = Vec::new();
        for i in 0..2 {
            ids.push(alice.send_to(BOB, &format!("after {i}")).await.id);
        }
        (second, ids)
    });

    let mut readies = 0;
    while received.len() < 5 {
        match next(&mut live).await {
            ServerFrame::Message { message, .. } => received.push(message.id),
            ServerFrame::Ready { .. } => readies += 1,
            _ => {}
        }
    }
    let (second, after) = restart.await.expect("the restart task");
    sent.extend(after);
    assert_eq!(received, sent, "every message once, in order");
    assert_eq!(readies, 1, "one reconnection");
    assert!(
        live.cursor()
            .expect("a cursor")
            .parse::<u64>()
            .expect("a numeric cursor")
            > cursor_before.parse::<u64>().expect("a numeric cursor"),
        "the cursor moved on"
    );
    // Nothing else is pending: no duplicate shows up later.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), live.next())
            .await
            .is_err(),
        "no duplicate after the resume"
    );
    second.stop().await.expect("stops");
}

#[tokio::test]
async fn live_connection_gives_up_when_its_token_is_revoked() {
    let app = TestAppBuilder::new().spawn().await;
    let bob = app.user(BOB).await;
    let mut live = LiveConnection::connect(
        &format!("http://{}", app.address),
        WsQuery::token(&bob.token),
        fast(),
    )
    .await
    .expect("connects");
    assert!(matches!(next(&mut live).await, ServerFrame::Ready { .. }));

    bob.client.logout().await.expect("logged out");
    let error = tokio::time::timeout(Duration::from_secs(15), live.next())
        .await
        .expect("an answer within 15 s")
        .expect_err("a revoked token cannot reconnect");
    assert_eq!(error.status(), Some(401), "{error}");
}
