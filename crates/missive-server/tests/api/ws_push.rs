//! `GET /ws` pushes (README, "WebSocket"): the `ready` frame first, then every
//! committed message of the user's chats on every open connection.

use missive_client::protocol::{MessageStatus, ServerFrame};
use missive_client::ws::WsQuery;

use crate::helpers::{ALICE, BOB, CAROL, MESSAGE_KEYS, USER_KEYS, assert_keys, spawn_app};
use crate::ws_helpers::{cursor_number, open, open_as};

#[tokio::test]
async fn the_first_frame_is_ready_with_the_user_and_a_cursor() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut conn = missive_client::ws::Connection::connect(
        app.client.base_url().as_str(),
        &WsQuery::token(&alice.token),
    )
    .await
    .expect("the upgrade succeeds");

    let ready = conn
        .next_json(crate::ws_helpers::WAIT)
        .await
        .expect("a first frame");

    assert_eq!(ready["type"], "ready", "{ready}");
    assert_keys(&ready, &["type", "user", "cursor"]);
    assert_keys(&ready["user"], USER_KEYS);
    assert_eq!(ready["user"]["phoneNumber"], ALICE);
    assert_eq!(ready["user"]["id"], alice.user.id.to_string());
    assert!(
        ready["cursor"].is_string(),
        "the cursor is a string: {ready}"
    );
}

#[tokio::test]
async fn a_bearer_header_also_identifies_the_connection() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    let socket = open(&app.client, &WsQuery::bearer(&alice.token)).await;

    assert_eq!(socket.user, alice.user);
}

#[tokio::test]
async fn a_message_sent_over_http_reaches_every_connection_of_the_recipient() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut bob_phone = open_as(&bob).await;
    let mut bob_laptop = open_as(&bob).await;

    let sent = alice.send_to(BOB, "hello bob").await;

    for socket in [&mut bob_phone, &mut bob_laptop] {
        let frame = socket.next_json().await;
        assert_eq!(frame["type"], "message", "{frame}");
        assert_keys(&frame, &["type", "message", "cursor"]);
        assert_keys(&frame["message"], MESSAGE_KEYS);
        assert!(frame["cursor"].is_string(), "{frame}");
        let message: missive_client::protocol::Message =
            serde_json::from_value(frame["message"].clone()).expect("a Message");
        assert_eq!(message.id, sent.id);
        assert_eq!(message.seq, 1);
        assert_eq!(message.sender, ALICE);
        assert_eq!(message.content, "hello bob");
        assert_eq!(message.chat_id, sent.chat_id);
    }
}

#[tokio::test]
async fn the_senders_other_connections_get_its_own_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut alice_tab = open_as(&alice).await;

    let sent = alice.send_to(BOB, "from my phone").await;

    let (message, _) = alice_tab.next_message().await;
    assert_eq!(message.id, sent.id);
    assert_eq!(message.sender, ALICE);
}

#[tokio::test]
async fn a_message_sent_over_ws_reaches_the_recipient_and_the_senders_other_connections() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut alice_phone = open_as(&alice).await;
    let mut alice_tab = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    let acked = alice_phone
        .send_message("r1", crate::ws_helpers::Target::Phone(BOB), "over ws")
        .await;

    let (at_bob, _) = bob_socket.next_message().await;
    let (at_tab, _) = alice_tab.next_message().await;
    assert_eq!(at_bob, acked);
    assert_eq!(at_tab.id, acked.id);
    assert_eq!(acked.status, MessageStatus::Sent);
}

#[tokio::test]
async fn only_the_participants_of_a_chat_get_its_messages() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let carol = app.user(CAROL).await;
    let mut carol_socket = open_as(&carol).await;

    alice.send_to(BOB, "private").await;

    carol_socket.assert_silent().await;
}

#[tokio::test]
async fn each_event_has_a_greater_cursor_than_the_ready_frame_and_the_previous_event() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    alice.send_to(BOB, "before connecting").await;
    let mut bob_socket = open_as(&bob).await;

    let mut last = cursor_number(&bob_socket.cursor);
    for i in 0..5 {
        let sent = alice.send_to(BOB, &format!("m{i}")).await;
        let (message, cursor) = bob_socket.next_message().await;
        assert_eq!(message.id, sent.id);
        let cursor = cursor_number(&cursor);
        assert!(cursor > last, "cursor {cursor} after {last}");
        last = cursor;
    }
}

#[tokio::test]
async fn a_connection_without_since_gets_no_history() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    alice.send_to(BOB, "old news").await;

    let mut bob_socket = open_as(&bob).await;

    bob_socket.assert_silent().await;
    let sent = alice.send_to(BOB, "fresh").await;
    match bob_socket.next().await {
        ServerFrame::Message { message, .. } => assert_eq!(message.id, sent.id),
        other => panic!("expected the fresh message, got {other:?}"),
    }
}
