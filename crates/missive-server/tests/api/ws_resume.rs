//! Resuming with `since=` (README, "WebSocket"): a reconnecting client gets every
//! durable event it missed, in order, before live traffic — also across a
//! server restart on the same database; shutdown closes sockets with 1001.

use missive_client::protocol::{Message, MessageStatus, ServerFrame, StatusRequest};
use missive_client::ws::WsError;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, spawn_app};
use crate::ws_helpers::{Socket, cursor_number, open_as, resume_as, spawn_app_on};

/// Reads `count` message frames, checking that cursors increase; returns the
/// messages and the last cursor.
async fn read_messages(socket: &mut Socket, count: usize, after: &str) -> (Vec<Message>, String) {
    let mut last = after.to_owned();
    let mut messages = Vec::new();
    for _ in 0..count {
        let (message, cursor) = socket.next_message().await;
        assert!(
            cursor_number(&cursor) > cursor_number(&last),
            "cursor {cursor} after {last}"
        );
        last = cursor;
        messages.push(message);
    }
    (messages, last)
}

fn ids(messages: &[Message]) -> Vec<Uuid> {
    messages.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn reconnecting_with_since_replays_exactly_the_missed_messages_in_order_then_live_ones() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let mut bob_socket = open_as(&bob).await;
    for i in 0..3 {
        alice.send_to(BOB, &format!("seen {i}")).await;
    }
    let ready_cursor = bob_socket.cursor.clone();
    let (_, processed) = read_messages(&mut bob_socket, 3, &ready_cursor).await;
    bob_socket.conn.close().await.expect("closed");

    let mut missed = Vec::new();
    for i in 0..6 {
        // Two chats, interleaved: the replay follows the user's log order.
        let sender = if i % 2 == 0 { &alice } else { &carol };
        missed.push(sender.send_to(BOB, &format!("missed {i}")).await);
    }
    let mut bob_socket = resume_as(&bob, &processed).await;
    let live = alice.send_to(BOB, "live").await;

    let (replayed, _) = read_messages(&mut bob_socket, 7, &processed).await;
    let mut expected = ids(&missed);
    expected.push(live.id);
    assert_eq!(ids(&replayed), expected);
    bob_socket.assert_silent().await;
}

#[tokio::test]
async fn the_ready_cursor_of_a_resumed_connection_is_the_newest_event() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let bob_socket = open_as(&bob).await;
    let since = bob_socket.cursor.clone();
    bob_socket.conn.close().await.expect("closed");
    for i in 0..3 {
        alice.send_to(BOB, &format!("m{i}")).await;
    }

    let mut bob_socket = resume_as(&bob, &since).await;
    let (_, last) = read_messages(&mut bob_socket, 3, &since).await;

    // `ready` says where the log is now; resuming from it replays nothing more.
    assert_eq!(bob_socket.cursor, last);
    bob_socket.conn.close().await.expect("closed");
    let mut again = resume_as(&bob, &last).await;
    again.assert_silent().await;
}

#[tokio::test]
async fn since_zero_replays_the_whole_log() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(alice.send_to(BOB, &format!("m{i}")).await);
    }

    let mut bob_socket = resume_as(&bob, "0").await;

    let (replayed, _) = read_messages(&mut bob_socket, 4, "0").await;
    assert_eq!(ids(&replayed), ids(&sent));
    bob_socket.assert_silent().await;
}

#[tokio::test]
async fn a_replay_of_more_than_one_store_page_is_complete_and_ordered() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let bob_socket = open_as(&bob).await;
    let since = bob_socket.cursor.clone();
    bob_socket.conn.close().await.expect("closed");
    let mut sent = Vec::new();
    for i in 0..600 {
        sent.push(alice.send_to(BOB, &format!("m{i}")).await);
    }

    let mut bob_socket = resume_as(&bob, &since).await;

    let (replayed, _) = read_messages(&mut bob_socket, 600, &since).await;
    assert_eq!(ids(&replayed), ids(&sent));
    let seqs: Vec<i64> = replayed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=600).collect::<Vec<i64>>());
}

#[tokio::test]
async fn missed_receipts_are_replayed_too() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = alice.send_to(BOB, "did you read it?").await;
    let alice_socket = open_as(&alice).await;
    let since = alice_socket.cursor.clone();
    alice_socket.conn.close().await.expect("closed");

    bob.client
        .mark_status(
            message.chat_id,
            &StatusRequest {
                message_id: message.id,
                status: MessageStatus::Read,
            },
        )
        .await
        .expect("accepted");
    let mut alice_socket = resume_as(&alice, &since).await;

    match alice_socket.next().await {
        ServerFrame::Receipt {
            message_id,
            status,
            user,
            cursor,
            ..
        } => {
            assert_eq!(
                (message_id, status, user.as_str()),
                (message.id, MessageStatus::Read, BOB)
            );
            assert!(cursor_number(&cursor) > cursor_number(&since));
        }
        other => panic!("expected the missed receipt, got {other:?}"),
    }
}

#[tokio::test]
async fn resume_works_across_a_server_restart_on_the_same_database() {
    let db = std::sync::Arc::new(crate::test_db::TestDb::for_suite().await);
    let app = spawn_app_on(&db).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut bob_socket = open_as(&bob).await;
    for i in 0..3 {
        alice.send_to(BOB, &format!("before {i}")).await;
    }
    let since = bob_socket.cursor.clone();
    let (_, processed) = read_messages(&mut bob_socket, 3, &since).await;
    bob_socket.conn.close().await.expect("closed");
    let mut missed = Vec::new();
    for i in 0..2 {
        missed.push(alice.send_to(BOB, &format!("while away {i}")).await);
    }
    app.stop().await;

    let app = spawn_app_on(&db).await;
    let (alice, bob) = (app.again(&alice), app.again(&bob));
    for i in 0..3 {
        missed.push(alice.send_to(BOB, &format!("after restart {i}")).await);
    }
    let mut bob_socket = resume_as(&bob, &processed).await;

    let (replayed, _) = read_messages(&mut bob_socket, 5, &processed).await;
    assert_eq!(ids(&replayed), ids(&missed));
    bob_socket.assert_silent().await;
    let live = alice.send_to(BOB, "live").await;
    assert_eq!(bob_socket.next_message().await.0.id, live.id);
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_open_sockets_with_1001() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut sockets = vec![
        open_as(&alice).await,
        open_as(&alice).await,
        open_as(&bob).await,
    ];

    app.stop().await.expect("the server stops cleanly");

    for socket in &mut sockets {
        match socket.conn.next_frame(crate::ws_helpers::WAIT).await {
            Err(WsError::Closed { code, .. }) => assert_eq!(code, 1001),
            other => panic!("expected a close with 1001, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn messages_committed_before_shutdown_reach_the_socket_before_the_close() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut bob_socket = open_as(&bob).await;
    let sent = alice.send_to(BOB, "last words").await;

    app.stop().await.expect("the server stops cleanly");

    assert_eq!(bob_socket.next_message().await.0.id, sent.id);
    match bob_socket.conn.next_frame(crate::ws_helpers::WAIT).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 1001),
        other => panic!("expected a close with 1001, got {other:?}"),
    }
}
