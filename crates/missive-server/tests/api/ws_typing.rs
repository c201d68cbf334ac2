//! Typing indicators over `GET /ws` (README, "WebSocket"): ephemeral `typing` frames to
//! the other participants only, from `POST /chats/{id}/typing` or the socket.

use missive_client::protocol::ClientFrame;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, spawn_app};
use crate::ws_helpers::{error_of, open_as};

#[tokio::test]
async fn typing_over_http_reaches_the_other_participant_only() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;
    let mut carol_socket = open_as(&carol).await;

    for is_typing in [true, false] {
        alice
            .client
            .typing(chat.id, is_typing)
            .await
            .expect("accepted");

        assert_eq!(
            bob_socket.next_json().await,
            json!({"type": "typing", "chatId": chat.id, "user": ALICE, "isTyping": is_typing})
        );
    }
    alice_socket.assert_silent().await;
    carol_socket.assert_silent().await;
}

#[tokio::test]
async fn typing_over_ws_reaches_the_other_participant_only() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut alice_socket = open_as(&alice).await;
    let mut alice_tab = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;
    let mut carol_socket = open_as(&carol).await;

    alice_socket
        .send(&ClientFrame::Typing {
            chat_id: chat.id,
            is_typing: true,
        })
        .await;

    assert_eq!(
        bob_socket.next_json().await,
        json!({"type": "typing", "chatId": chat.id, "user": ALICE, "isTyping": true})
    );
    alice_socket.assert_silent().await;
    alice_tab.assert_silent().await;
    carol_socket.assert_silent().await;
}

#[tokio::test]
async fn typing_in_a_chat_of_others_over_ws_gets_an_error_frame() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut bob_socket = open_as(&bob).await;
    let mut carol_socket = open_as(&carol).await;

    for chat_id in [chat.id, Uuid::now_v7()] {
        carol_socket
            .send(&ClientFrame::Typing {
                chat_id,
                is_typing: true,
            })
            .await;
        let frame = carol_socket.next().await;
        assert_eq!(error_of(&frame).1, "chat_not_found");
    }
    bob_socket.assert_silent().await;
    carol_socket.assert_usable().await;
}

#[tokio::test]
async fn typing_is_not_replayed_on_resume() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let bob_socket = open_as(&bob).await;
    let since = bob_socket.cursor.clone();
    bob_socket.conn.close().await.expect("closed");

    alice.client.typing(chat.id, true).await.expect("accepted");
    let mut bob_socket = crate::ws_helpers::resume_as(&bob, &since).await;

    bob_socket.assert_silent().await;
}
