//! Logout (`DELETE /sessions/current`, README, "Authentication"): the token stops working on
//! every node — at once on the node that revoked it, within the one-second
//! token cache elsewhere — while the user's other tokens keep working.

use std::sync::Arc;
use std::time::Duration;

use missive_client::protocol::{ClientFrame, SendMessageRequest, ServerFrame};
use missive_client::ws::{Connection, WsQuery};
use missive_client::{Client, ClientError};

use crate::auth_helpers::{SmsGateway, eventually, login};
use crate::helpers::{ALICE, BOB, TestApp, TestAppBuilder, assert_error, spawn_app_with};
use crate::test_db::TestDb;

/// How long a revocation may take to reach another node (cache TTL 1 s + slack).
const ACROSS_NODES: Duration = Duration::from_millis(1500);

/// A send of `content` to `receiver` by `client`'s token.
async fn send(
    client: &Client,
    receiver: &str,
    content: &str,
) -> Result<missive_client::Response<missive_client::protocol::Message>, ClientError> {
    client
        .send_message(&SendMessageRequest {
            receiver: Some(receiver.to_owned()),
            content: content.to_owned(),
            ..SendMessageRequest::default()
        })
        .await
}

/// The HTTP status of a `GET /ws` upgrade with `query` (101 when it succeeds).
async fn upgrade_status(client: &Client, query: &WsQuery) -> (u16, Option<String>) {
    match Connection::connect(client.base_url().as_str(), query).await {
        Ok(conn) => {
            let _ = conn.close().await;
            (101, None)
        }
        Err(e) => (
            e.status()
                .unwrap_or_else(|| panic!("an HTTP refusal, got {e}")),
            e.code(),
        ),
    }
}

/// An app whose login codes go to `gateway`, on the database `db` (shared
/// with another node) if given, else on a fresh one.
async fn app_with(gateway: &SmsGateway, db: Option<Arc<TestDb>>) -> TestApp {
    let webhook = gateway.url.clone();
    let mut builder = TestAppBuilder::new().configure(move |config| {
        config.otp_webhook_url = Some(webhook);
    });
    if let Some(db) = db {
        builder = builder.database(db);
    }
    builder.spawn().await
}

#[tokio::test]
async fn a_revoked_token_gets_401_at_once_while_the_users_other_tokens_keep_working() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway, None).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let other = app
        .client
        .with_token(login(&app.client, &gateway, ALICE).await.token);
    assert_eq!(alice.client.me().await.expect("valid before").status, 200);

    let logout = alice.client.logout().await.expect("the logout succeeds");

    assert_eq!(logout.status, 204);
    assert_error(alice.client.me().await, 401, "unauthorized");
    assert_error(
        send(&alice.client, BOB, "after logout").await,
        401,
        "unauthorized",
    );
    assert_eq!(
        upgrade_status(&app.client, &WsQuery::token(&alice.token)).await,
        (401, Some("unauthorized".to_owned()))
    );
    assert_eq!(
        upgrade_status(&app.client, &WsQuery::bearer(&alice.token)).await,
        (401, Some("unauthorized".to_owned()))
    );
    assert_error(alice.client.logout().await, 401, "unauthorized");

    let me = other.me().await.expect("the second token still works");
    assert_eq!(me.body.id, alice.user.id);
    let sent = send(&other, BOB, "still here").await.expect("sends work");
    assert_eq!(sent.body.sender, ALICE);
    assert_eq!(
        upgrade_status(
            &app.client,
            &WsQuery::token(other.token().expect("a token"))
        )
        .await,
        (101, None)
    );
}

#[tokio::test]
async fn logging_out_a_login_token_leaves_the_registration_token_working() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway, None).await;
    let alice = app.user(ALICE).await;
    let second = app
        .client
        .with_token(login(&app.client, &gateway, ALICE).await.token);

    assert_eq!(second.logout().await.expect("logged out").status, 204);

    assert_error(second.me().await, 401, "unauthorized");
    assert_eq!(alice.client.me().await.expect("still valid").status, 200);
}

#[tokio::test]
async fn a_token_revoked_on_one_node_stops_working_on_another_within_the_cache_ttl() {
    let gateway = SmsGateway::start().await;
    let node_a = app_with(&gateway, None).await;
    let node_b = app_with(&gateway, Some(node_a.database())).await;
    let alice_a = node_a.user(ALICE).await;
    node_a.register(BOB).await;
    let alice_b = node_b.client.with_token(&alice_a.token);
    let other_b = node_b
        .client
        .with_token(login(&node_b.client, &gateway, ALICE).await.token);
    // Node B has validated (and may have cached) the token before the logout.
    assert_eq!(alice_b.me().await.expect("valid on node B").status, 200);
    assert_eq!(
        send(&alice_b, BOB, "via B").await.expect("sent").status,
        201
    );

    assert_eq!(
        alice_a.client.logout().await.expect("logged out").status,
        204
    );

    let took = eventually(ACROSS_NODES, || async {
        matches!(
            alice_b.me().await,
            Err(ClientError::Api { status: 401, .. })
        )
    })
    .await;
    assert!(
        took.is_some(),
        "node B still accepts the token after {ACROSS_NODES:?}"
    );
    assert_error(send(&alice_b, BOB, "via B").await, 401, "unauthorized");
    assert_eq!(
        upgrade_status(&node_b.client, &WsQuery::token(&alice_a.token)).await,
        (401, Some("unauthorized".to_owned()))
    );
    assert_error(alice_a.client.me().await, 401, "unauthorized");
    assert_eq!(
        other_b.me().await.expect("the other token works").status,
        200
    );
    assert_eq!(
        node_a
            .client
            .with_token(other_b.token().expect("a token"))
            .me()
            .await
            .expect("on node A too")
            .status,
        200
    );
}

#[tokio::test]
async fn a_websocket_opened_with_a_token_is_closed_once_that_token_is_revoked() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut conn = Connection::connect(
        app.client.base_url().as_str(),
        &WsQuery::token(&alice.token),
    )
    .await
    .expect("the upgrade succeeds");
    assert!(matches!(
        conn.next_frame(Duration::from_secs(5)).await,
        Ok(ServerFrame::Ready { .. })
    ));

    assert_eq!(alice.client.logout().await.expect("logged out").status, 204);
    tokio::time::sleep(ACROSS_NODES).await;
    bob.send_to(ALICE, "pushed after the logout").await;
    let attempt = conn
        .send_frame(&ClientFrame::Send {
            reference: Some("after-logout".into()),
            chat_id: None,
            to: Some(BOB.into()),
            content: "sent after the logout".into(),
            client_message_id: None,
        })
        .await;

    // The token "stops working on every node" (README, "Authentication"): the socket it
    // opened neither receives the user's events nor sends as the user.
    if attempt.is_ok() {
        loop {
            match conn.next_frame(Duration::from_secs(1)).await {
                Err(e) if e.is_disconnect() => break,
                Err(e) => {
                    panic!("the socket of a token revoked {ACROSS_NODES:?} ago is still open ({e})")
                }
                Ok(ServerFrame::Error { .. }) => {}
                Ok(frame) => panic!(
                    "the socket of a token revoked {ACROSS_NODES:?} ago still works: {frame:?}"
                ),
            }
        }
    }
    let messages = bob.messages(bob.chats().await[0].id, 50).await;
    assert!(
        messages
            .iter()
            .all(|m| m.content != "sent after the logout"),
        "a send through the revoked token's socket was stored"
    );
}
