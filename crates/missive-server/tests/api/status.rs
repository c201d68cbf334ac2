//! `POST /chats/{chatId}/status` (delivered/read watermarks) and the implicit
//! `delivered` of a recipient's `GET /chats/{chatId}/messages`.

use missive_client::protocol::{Message, MessageStatus, StatusRequest, StatusResponse};
use missive_client::{Client, ClientError, MessagesQuery, Response};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, TestUser, assert_error, assert_raw_error, spawn_app};

use MessageStatus::{Delivered, Read, Sent};

async fn mark(
    client: &Client,
    message: &Message,
    status: MessageStatus,
) -> Result<Response<StatusResponse>, ClientError> {
    client
        .mark_status(
            message.chat_id,
            &StatusRequest {
                message_id: message.id,
                status,
            },
        )
        .await
}

/// The status of each of `messages` as `viewer` sees it now, in the order given.
async fn statuses(viewer: &TestUser, messages: &[&Message]) -> Vec<MessageStatus> {
    let listed = viewer.messages(messages[0].chat_id, 200).await;
    messages
        .iter()
        .map(|wanted| {
            listed
                .iter()
                .find(|m| m.id == wanted.id)
                .map(|m| m.status)
                .unwrap_or_else(|| panic!("message {} is listed", wanted.id))
        })
        .collect()
}

#[tokio::test]
async fn marking_read_returns_200_and_echoes_the_status() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = bob.send_to(ALICE, "hi").await;

    let response = mark(&alice.client, &message, Read).await.expect("marked");

    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        StatusResponse {
            chat_id: message.chat_id,
            message_id: message.id,
            status: Read,
        }
    );
}

#[tokio::test]
async fn a_read_watermark_marks_every_earlier_message_of_the_other_participant() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let m1 = bob.send_to(ALICE, "one").await;
    let m2 = bob.send_to(ALICE, "two").await;
    let m3 = bob.send_to(ALICE, "three").await;

    mark(&alice.client, &m2, Read).await.expect("marked");

    assert_eq!(
        statuses(&bob, &[&m1, &m2, &m3]).await,
        vec![Read, Read, Sent]
    );
}

#[tokio::test]
async fn a_watermark_leaves_the_markers_own_messages_alone() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let from_bob = bob.send_to(ALICE, "one").await;
    let from_alice = alice.send_to(BOB, "two").await;
    let later_from_bob = bob.send_to(ALICE, "three").await;

    mark(&alice.client, &later_from_bob, Read)
        .await
        .expect("marked");

    // Alice's own message is Bob's to acknowledge: alice's watermark must not
    // make it read (it is at most `sent`, alice has not let Bob read anything).
    let seen_by_alice = alice.messages(from_bob.chat_id, 50).await;
    let own = seen_by_alice
        .iter()
        .find(|m| m.id == from_alice.id)
        .expect("listed");
    assert_eq!(own.status, Sent);
    assert_eq!(
        statuses(&bob, &[&from_bob, &later_from_bob]).await,
        vec![Read, Read]
    );
}

#[tokio::test]
async fn read_implies_delivered_and_status_never_goes_backwards() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let m1 = bob.send_to(ALICE, "one").await;
    let m2 = bob.send_to(ALICE, "two").await;
    let m3 = bob.send_to(ALICE, "three").await;

    mark(&alice.client, &m2, Read).await.expect("marked");
    let response = mark(&alice.client, &m3, Delivered).await.expect("marked");
    assert_eq!(
        response.body.status, Delivered,
        "the requested status is echoed"
    );
    assert_eq!(
        statuses(&bob, &[&m1, &m2, &m3]).await,
        vec![Read, Read, Delivered]
    );

    mark(&alice.client, &m3, Read).await.expect("marked");
    let backwards = mark(&alice.client, &m3, Delivered).await.expect("accepted");
    assert_eq!(backwards.status, 200);
    let older = mark(&alice.client, &m1, Delivered).await.expect("accepted");
    assert_eq!(older.status, 200);
    assert_eq!(
        statuses(&bob, &[&m1, &m2, &m3]).await,
        vec![Read, Read, Read],
        "read stays read"
    );
}

#[tokio::test]
async fn a_group_message_shows_the_least_advanced_recipient() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let group = alice.create_chat(&[ALICE, BOB, CAROL]).await;
    let message = alice.send_in(group.id, "hello both").await;

    mark(&bob.client, &message, Read).await.expect("marked");
    assert_eq!(
        statuses(&alice, &[&message]).await,
        vec![Sent],
        "carol has not got it"
    );

    mark(&carol.client, &message, Delivered)
        .await
        .expect("marked");
    assert_eq!(statuses(&alice, &[&message]).await, vec![Delivered]);

    mark(&carol.client, &message, Read).await.expect("marked");
    assert_eq!(statuses(&alice, &[&message]).await, vec![Read]);
}

#[tokio::test]
async fn reading_messages_as_the_recipient_marks_them_delivered() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let m1 = bob.send_to(ALICE, "one").await;
    let m2 = bob.send_to(ALICE, "two").await;

    // The sender reading their own messages changes nothing.
    assert_eq!(statuses(&bob, &[&m1, &m2]).await, vec![Sent, Sent]);

    alice.messages(m1.chat_id, 50).await;

    assert_eq!(
        statuses(&bob, &[&m1, &m2]).await,
        vec![Delivered, Delivered]
    );
}

#[tokio::test]
async fn reading_messages_by_claimed_phone_number_marks_them_delivered() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    let bob = app.user(BOB).await;
    let m1 = bob.send_to(ALICE, "one").await;

    app.client
        .list_messages(m1.chat_id, &MessagesQuery::as_phone(ALICE))
        .await
        .expect("listed");

    assert_eq!(statuses(&bob, &[&m1]).await, vec![Delivered]);
}

#[tokio::test]
async fn reading_only_a_page_marks_only_that_page_delivered() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let m1 = bob.send_to(ALICE, "one").await;
    let m2 = bob.send_to(ALICE, "two").await;
    let m3 = bob.send_to(ALICE, "three").await;

    alice
        .client
        .list_messages(
            m1.chat_id,
            &MessagesQuery {
                limit: Some(1),
                before: Some(m3.id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    // m2 was returned; a watermark implementation may also cover m1 (older),
    // but m3 was never returned and must stay `sent`.
    let seen = statuses(&bob, &[&m1, &m2, &m3]).await;
    assert_eq!(seen[1], Delivered);
    assert_eq!(seen[2], Sent);
}

#[tokio::test]
async fn marking_an_unknown_message_returns_404_message_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    app.register(CAROL).await;
    let in_chat = bob.send_to(ALICE, "one").await;
    let elsewhere = bob.send_to(CAROL, "x").await;
    let unknown = Message {
        id: Uuid::now_v7(),
        ..in_chat.clone()
    };
    let from_another_chat = Message {
        chat_id: in_chat.chat_id,
        ..elsewhere
    };

    assert_error(
        mark(&alice.client, &unknown, Read).await,
        404,
        "message_not_found",
    );
    assert_error(
        mark(&alice.client, &from_another_chat, Read).await,
        404,
        "message_not_found",
    );
}

#[tokio::test]
async fn marking_in_an_unknown_chat_or_a_chat_of_others_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let message = bob.send_to(ALICE, "one").await;
    let unknown_chat = Message {
        chat_id: Uuid::now_v7(),
        ..message.clone()
    };

    assert_error(
        mark(&alice.client, &unknown_chat, Read).await,
        404,
        "chat_not_found",
    );
    assert_error(
        mark(&carol.client, &message, Read).await,
        404,
        "chat_not_found",
    );
}

#[tokio::test]
async fn marking_with_a_bad_body_returns_400() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = bob.send_to(ALICE, "one").await;
    let id = message.id.to_string();
    let cases = [
        ("an empty object", json!({}), "invalid_request"),
        ("no status", json!({ "messageId": id }), "invalid_request"),
        (
            "a message id that is not a uuid",
            json!({ "messageId": "nope", "status": "read" }),
            "invalid_request",
        ),
        (
            "an unknown status",
            json!({ "messageId": id, "status": "seen" }),
            "invalid_request",
        ),
        (
            "a status of the wrong type",
            json!({ "messageId": id, "status": 2 }),
            "invalid_request",
        ),
    ];

    for (why, body, code) in cases {
        let raw = alice
            .client
            .raw(
                missive_client::Method::POST,
                &format!("/chats/{}/status", message.chat_id),
                Some(body.to_string()),
                Some("application/json"),
            )
            .await
            .expect("the server answers");
        assert_eq!(raw.status, 400, "{why}: {}", raw.body);
        assert_raw_error(&raw, 400, code);
    }
}

#[tokio::test]
async fn marking_a_message_sent_is_refused_with_400() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let message = bob.send_to(ALICE, "one").await;

    let result = mark(&alice.client, &message, Sent).await;

    let err = result.expect_err("only delivered and read can be marked");
    assert_eq!(err.status(), Some(400), "{err:?}");
    let code = err.code().unwrap_or_default();
    assert!(
        code == "invalid_request" || code == "invalid_parameter",
        "code {code:?}"
    );
}

#[tokio::test]
async fn marking_a_malformed_chat_id_returns_400_invalid_parameter() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    let raw = alice
        .client
        .raw(
            missive_client::Method::POST,
            "/chats/not-a-uuid/status",
            Some(json!({ "messageId": Uuid::now_v7(), "status": "read" }).to_string()),
            Some("application/json"),
        )
        .await
        .expect("the server answers");

    assert_raw_error(&raw, 400, "invalid_parameter");
}

#[tokio::test]
async fn marking_without_a_token_returns_401_even_from_loopback() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    let bob = app.user(BOB).await;
    let message = bob.send_to(ALICE, "one").await;

    assert_error(mark(&app.client, &message, Read).await, 401, "unauthorized");
    assert_error(
        mark(&app.client.with_token("bogus"), &message, Read).await,
        401,
        "unauthorized",
    );
    assert_eq!(statuses(&bob, &[&message]).await, vec![Sent]);
}
