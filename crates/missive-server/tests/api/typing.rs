//! `POST /chats/{chatId}/typing`: ephemeral, token only.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, assert_error, assert_raw_error, spawn_app};

#[tokio::test]
async fn typing_in_a_chat_as_a_member_returns_200_and_an_empty_object() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    for is_typing in [true, false] {
        let response = alice
            .client
            .typing(chat.id, is_typing)
            .await
            .expect("accepted");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, json!({}));
    }
}

#[tokio::test]
async fn typing_is_never_stored_as_a_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    alice.client.typing(chat.id, true).await.expect("accepted");

    assert!(alice.messages(chat.id, 50).await.is_empty());
    assert_eq!(alice.chats().await[0].last_message, None);
}

#[tokio::test]
async fn typing_in_a_chat_of_others_or_an_unknown_chat_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    assert_error(
        carol.client.typing(chat.id, true).await,
        404,
        "chat_not_found",
    );
    assert_error(
        alice.client.typing(Uuid::now_v7(), true).await,
        404,
        "chat_not_found",
    );
}

#[tokio::test]
async fn typing_with_a_bad_body_returns_400_invalid_request() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let cases = [
        ("an empty object", "{}"),
        ("a string flag", r#"{"isTyping":"yes"}"#),
        ("malformed JSON", r#"{"isTyping":"#),
        ("not an object", "[]"),
    ];

    for (why, body) in cases {
        let raw = alice
            .client
            .raw(
                missive_client::Method::POST,
                &format!("/chats/{}/typing", chat.id),
                Some(body.to_owned()),
                Some("application/json"),
            )
            .await
            .expect("the server answers");
        assert_eq!(raw.status, 400, "{why}: {}", raw.body);
        assert_raw_error(&raw, 400, "invalid_request");
    }
}

#[tokio::test]
async fn typing_without_a_token_returns_401_even_from_loopback() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    assert_error(app.client.typing(chat.id, true).await, 401, "unauthorized");
}
