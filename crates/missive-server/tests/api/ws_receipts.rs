//! Receipts over `GET /ws` (the README and the OpenAPI document): a recipient's `delivered`/`read`
//! watermark, moved over the socket or over HTTP, reaches the sender's
//! sockets as a `receipt` frame, is stored, and never goes backwards.

use missive_client::protocol::{ClientFrame, Message, MessageStatus, ServerFrame, StatusRequest};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, TestUser, assert_keys, assert_timestamp, spawn_app};
use crate::ws_helpers::{Socket, WAIT, cursor_number, error_of, open_as};

/// The next frame, which must be a `receipt`: `(chatId, messageId, status, user, cursor)`.
async fn next_receipt(socket: &mut Socket) -> (Uuid, Uuid, MessageStatus, String, String) {
    let frame = socket
        .conn
        .next_frame(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected a receipt frame on the sender's socket: {e}"));
    match frame {
        ServerFrame::Receipt {
            chat_id,
            message_id,
            status,
            user,
            at,
            cursor,
        } => {
            assert_timestamp(&at);
            (chat_id, message_id, status, user, cursor)
        }
        other => panic!("expected a receipt frame, got {other:?}"),
    }
}

/// The statuses of `chat_id`'s messages as `reader` lists them, oldest first.
async fn statuses(reader: &TestUser, chat_id: Uuid) -> Vec<MessageStatus> {
    let mut messages = reader.messages(chat_id, 50).await;
    messages.reverse();
    messages.iter().map(|m| m.status).collect()
}

/// Alice sends two messages to Bob over HTTP before anyone connects.
async fn two_messages(alice: &TestUser) -> (Message, Message) {
    let first = alice.send_to(BOB, "one").await;
    let second = alice.send_to(BOB, "two").await;
    (first, second)
}

fn receipt(message: &Message, status: MessageStatus) -> ClientFrame {
    ClientFrame::Receipt {
        chat_id: message.chat_id,
        message_id: message.id,
        status,
    }
}

#[tokio::test]
async fn a_read_receipt_over_ws_reaches_the_senders_socket_and_is_stored() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (first, second) = two_messages(&alice).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    bob_socket
        .send(&receipt(&second, MessageStatus::Read))
        .await;

    let frame = alice_socket
        .conn
        .next_json(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected a receipt frame on the sender's socket: {e}"));
    assert_eq!(frame["type"], "receipt", "{frame}");
    assert_keys(
        &frame,
        &[
            "type",
            "chatId",
            "messageId",
            "status",
            "user",
            "at",
            "cursor",
        ],
    );
    assert_eq!(frame["chatId"], second.chat_id.to_string());
    assert_eq!(frame["messageId"], second.id.to_string());
    assert_eq!(frame["status"], "read");
    assert_eq!(frame["user"], BOB);
    let cursor = frame["cursor"].as_str().expect("a string cursor");
    assert!(cursor_number(cursor) > cursor_number(&alice_socket.cursor));
    // A watermark: the earlier message is read too, and read implies delivered.
    assert_eq!(
        statuses(&alice, first.chat_id).await,
        vec![MessageStatus::Read, MessageStatus::Read]
    );
    bob_socket.assert_usable().await;
}

#[tokio::test]
async fn a_later_delivered_receipt_does_not_move_read_back() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (_, second) = two_messages(&alice).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;
    bob_socket
        .send(&receipt(&second, MessageStatus::Read))
        .await;
    let (.., status, _, _) = next_receipt(&mut alice_socket).await;
    assert_eq!(status, MessageStatus::Read);

    bob_socket
        .send(&receipt(&second, MessageStatus::Delivered))
        .await;
    bob_socket.assert_usable().await;

    match alice_socket.conn.next_frame(crate::ws_helpers::QUIET).await {
        Err(missive_client::ws::WsError::Timeout(_)) => {}
        Ok(ServerFrame::Receipt { status, .. }) => assert_eq!(
            status,
            MessageStatus::Read,
            "a receipt must never announce a status going backwards"
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        statuses(&alice, second.chat_id).await,
        vec![MessageStatus::Read, MessageStatus::Read]
    );
}

#[tokio::test]
async fn a_status_posted_over_http_pushes_a_receipt_to_the_senders_socket() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (first, _) = two_messages(&alice).await;
    let mut alice_socket = open_as(&alice).await;

    let response = bob
        .client
        .mark_status(
            first.chat_id,
            &StatusRequest {
                message_id: first.id,
                status: MessageStatus::Delivered,
            },
        )
        .await
        .expect("accepted");
    assert_eq!(response.status, 200);

    let (chat_id, message_id, status, user, _) = next_receipt(&mut alice_socket).await;
    assert_eq!(
        (chat_id, message_id, status, user.as_str()),
        (first.chat_id, first.id, MessageStatus::Delivered, BOB)
    );
    assert_eq!(
        statuses(&alice, first.chat_id).await,
        vec![MessageStatus::Delivered, MessageStatus::Sent]
    );
}

#[tokio::test]
async fn every_connection_of_the_sender_gets_the_receipt() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (_, second) = two_messages(&alice).await;
    let mut alice_phone = open_as(&alice).await;
    let mut alice_tab = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    bob_socket
        .send(&receipt(&second, MessageStatus::Read))
        .await;

    for socket in [&mut alice_phone, &mut alice_tab] {
        let (_, message_id, status, user, _) = next_receipt(socket).await;
        assert_eq!(
            (message_id, status, user.as_str()),
            (second.id, MessageStatus::Read, BOB)
        );
    }
}

#[tokio::test]
async fn reading_the_messages_over_http_pushes_a_delivered_receipt() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (_, second) = two_messages(&alice).await;
    let mut alice_socket = open_as(&alice).await;

    bob.messages(second.chat_id, 50).await;

    let (_, message_id, status, user, _) = next_receipt(&mut alice_socket).await;
    assert_eq!(
        (message_id, status, user.as_str()),
        (second.id, MessageStatus::Delivered, BOB)
    );
}

#[tokio::test]
async fn a_receipt_in_a_chat_of_others_gets_an_error_frame() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let carol = app.user(CAROL).await;
    let (first, _) = two_messages(&alice).await;
    let mut carol_socket = open_as(&carol).await;

    carol_socket
        .send(&receipt(&first, MessageStatus::Read))
        .await;

    let frame = carol_socket.next().await;
    assert_eq!(error_of(&frame).1, "chat_not_found");
    carol_socket.assert_usable().await;
    assert_eq!(
        statuses(&alice, first.chat_id).await,
        vec![MessageStatus::Sent, MessageStatus::Sent]
    );
}

#[tokio::test]
async fn a_receipt_with_status_sent_gets_the_same_invalid_request_error_as_over_http() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let (first, _) = two_messages(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    bob_socket.send(&receipt(&first, MessageStatus::Sent)).await;

    let frame = bob_socket.next().await;
    assert_eq!(error_of(&frame).1, "invalid_request");
    bob_socket.assert_usable().await;
}
