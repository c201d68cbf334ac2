//! `POST /messages` and the sandbox route `POST /message`: both body shapes,
//! validation, identity, sequence numbers, idempotency.

use missive_client::protocol::Message;
use missive_client::protocol::{MessageStatus, SendMessageRequest};
use missive_client::{Client, ClientError, MessagesQuery, Response};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    ALICE, BOB, CAROL, MESSAGE_KEYS, assert_error, assert_keys, assert_timestamp, seqs, spawn_app,
};

/// `POST /messages` or `POST /message`: the two routes must behave alike.
#[derive(Clone, Copy, Debug)]
enum Route {
    Messages,
    Message,
}

const ROUTES: [Route; 2] = [Route::Messages, Route::Message];

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Messages => "/messages",
            Route::Message => "/message",
        }
    }

    async fn send(
        self,
        client: &Client,
        request: &SendMessageRequest,
    ) -> Result<Response<Message>, ClientError> {
        match self {
            Route::Messages => client.send_message(request).await,
            Route::Message => client.send_message_legacy(request).await,
        }
    }
}

fn one_to_one(sender: &str, receiver: &str, content: &str) -> SendMessageRequest {
    SendMessageRequest {
        sender: Some(sender.to_owned()),
        receiver: Some(receiver.to_owned()),
        content: content.to_owned(),
        ..SendMessageRequest::default()
    }
}

#[tokio::test]
async fn sending_with_sender_and_receiver_creates_the_chat_and_returns_201() {
    for route in ROUTES {
        let app = spawn_app().await;
        app.register(ALICE).await;
        app.register(BOB).await;

        let raw = app
            .post_json(
                route.path(),
                &json!({ "sender": ALICE, "receiver": BOB, "content": "hello" }),
            )
            .await;

        assert_eq!(raw.status, 201, "{route:?}: {}", raw.body);
        let body = raw.json().expect("JSON");
        assert_keys(&body, MESSAGE_KEYS);
        let message: Message = serde_json::from_value(body.clone()).expect("a Message");
        assert_eq!(message.seq, 1);
        assert_eq!(message.sender, ALICE);
        assert_eq!(message.content, "hello");
        assert_eq!(message.status, MessageStatus::Sent);
        assert_eq!(body["clientMessageId"], serde_json::Value::Null);
        assert_timestamp(&message.created_at);
        let chat = app
            .client
            .get_chat_as(message.chat_id, BOB)
            .await
            .expect("the chat exists");
        let mut participants = chat.body.participants.clone();
        participants.sort();
        let mut expected = vec![ALICE.to_owned(), BOB.to_owned()];
        expected.sort();
        assert_eq!(participants, expected, "{route:?}");
        assert_eq!(chat.body.last_message.map(|m| m.id), Some(message.id));
    }
}

#[tokio::test]
async fn later_one_to_one_sends_reuse_the_chat_in_either_direction() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;

    let first = app.send_as(ALICE, BOB, "one").await.expect("sent").body;
    let second = app.send_as(BOB, ALICE, "two").await.expect("sent").body;
    let third = Route::Message
        .send(&app.client, &one_to_one(ALICE, BOB, "three"))
        .await
        .expect("sent")
        .body;

    assert_eq!(second.chat_id, first.chat_id);
    assert_eq!(third.chat_id, first.chat_id);
    assert_eq!(seqs(&[first, second, third]), vec![1, 2, 3]);
    let chats = app
        .client
        .list_chats(&missive_client::ChatsQuery::as_phone(ALICE))
        .await
        .expect("listed");
    assert_eq!(chats.body.len(), 1);
}

#[tokio::test]
async fn sending_to_a_chat_id_returns_201() {
    for route in ROUTES {
        let app = spawn_app().await;
        let alice = app.user(ALICE).await;
        app.register(BOB).await;
        app.register(CAROL).await;
        let group = alice.create_chat(&[ALICE, BOB, CAROL]).await;

        let by_token = route
            .send(
                &alice.client,
                &SendMessageRequest {
                    chat_id: Some(group.id),
                    content: "by token".into(),
                    ..SendMessageRequest::default()
                },
            )
            .await
            .expect("sent");
        let by_claim = route
            .send(
                &app.client,
                &SendMessageRequest {
                    chat_id: Some(group.id),
                    sender: Some(BOB.into()),
                    content: "by claim".into(),
                    ..SendMessageRequest::default()
                },
            )
            .await
            .expect("sent");

        assert_eq!(by_token.status, 201, "{route:?}");
        assert_eq!(by_token.body.chat_id, group.id);
        assert_eq!(by_token.body.sender, ALICE);
        assert_eq!(by_token.body.seq, 1);
        assert_eq!(by_claim.status, 201, "{route:?}");
        assert_eq!(by_claim.body.chat_id, group.id);
        assert_eq!(by_claim.body.sender, BOB);
        assert_eq!(by_claim.body.seq, 2);
    }
}

#[tokio::test]
async fn a_token_and_a_matching_sender_claim_are_accepted_together() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;

    let response = alice
        .client
        .send_message(&one_to_one(ALICE, BOB, "hi"))
        .await
        .expect("sent");

    assert_eq!(response.status, 201);
    assert_eq!(response.body.sender, ALICE);
}

#[tokio::test]
async fn sequence_numbers_count_up_per_chat_in_send_order() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    app.register(CAROL).await;

    let mut sent = Vec::new();
    for i in 0..6 {
        let sender = if i % 2 == 0 { &alice } else { &bob };
        let receiver = if i % 2 == 0 { BOB } else { ALICE };
        sent.push(sender.send_to(receiver, &format!("m{i}")).await);
    }
    let other_chat = alice.send_to(CAROL, "elsewhere").await;

    assert_eq!(seqs(&sent), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(other_chat.seq, 1, "seq is per chat");
}

#[tokio::test]
async fn invalid_sends_return_400() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;
    let too_long = "a".repeat(4097);
    let too_long_wide = "é".repeat(4097);
    let cases = [
        (
            "empty content",
            one_to_one(ALICE, BOB, ""),
            "invalid_content",
        ),
        (
            "4097 characters",
            one_to_one(ALICE, BOB, &too_long),
            "invalid_content",
        ),
        (
            "4097 two-byte characters",
            one_to_one(ALICE, BOB, &too_long_wide),
            "invalid_content",
        ),
        (
            "a NUL character (PostgreSQL text cannot hold it)",
            one_to_one(ALICE, BOB, "a\u{0}b"),
            "invalid_content",
        ),
        (
            "a NUL character in the clientMessageId",
            SendMessageRequest {
                client_message_id: Some("k\u{0}".into()),
                ..one_to_one(ALICE, BOB, "hi")
            },
            "invalid_request",
        ),
        (
            "sender = receiver",
            one_to_one(ALICE, ALICE, "hi"),
            "invalid_participants",
        ),
        (
            "sender = receiver after trimming",
            one_to_one(ALICE, &format!(" {ALICE} "), "hi"),
            "invalid_participants",
        ),
        (
            "a bad sender phone",
            one_to_one("nope", BOB, "hi"),
            "invalid_phone_number",
        ),
        (
            "a bad receiver phone",
            one_to_one(ALICE, "+123", "hi"),
            "invalid_phone_number",
        ),
    ];

    for route in ROUTES {
        for (why, request, code) in &cases {
            let result = route.send(&app.client, request).await;
            assert_eq!(
                result.as_ref().err().and_then(|e| e.status().zip(e.code())),
                Some((400, *code)),
                "{route:?}, {why}: {result:?}"
            );
            assert_error(result, 400, code);
        }
    }
}

#[tokio::test]
async fn content_is_counted_in_characters_not_bytes() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;
    let wide = "é".repeat(4096);
    let narrow = "a".repeat(4096);

    for content in [wide, narrow] {
        let response = app
            .send_as(ALICE, BOB, &content)
            .await
            .expect("4096 characters are accepted");
        assert_eq!(response.status, 201);
        assert_eq!(response.body.content, content);
    }
}

#[tokio::test]
async fn sending_from_or_to_an_unknown_user_returns_404_user_not_found() {
    let app = spawn_app().await;
    app.register(ALICE).await;

    for route in ROUTES {
        assert_error(
            route
                .send(&app.client, &one_to_one(CAROL, ALICE, "hi"))
                .await,
            404,
            "user_not_found",
        );
        assert_error(
            route
                .send(&app.client, &one_to_one(ALICE, CAROL, "hi"))
                .await,
            404,
            "user_not_found",
        );
    }
}

#[tokio::test]
async fn sending_to_an_unknown_chat_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    for route in ROUTES {
        let result = route
            .send(
                &alice.client,
                &SendMessageRequest {
                    chat_id: Some(Uuid::now_v7()),
                    content: "hi".into(),
                    ..SendMessageRequest::default()
                },
            )
            .await;
        assert_error(result, 404, "chat_not_found");
    }
}

#[tokio::test]
async fn sending_to_a_chat_the_sender_is_not_in_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    let by_token = carol
        .client
        .send_message(&SendMessageRequest {
            chat_id: Some(chat.id),
            content: "intruding".into(),
            ..SendMessageRequest::default()
        })
        .await;
    let by_claim = app
        .client
        .send_message(&SendMessageRequest {
            chat_id: Some(chat.id),
            sender: Some(CAROL.into()),
            content: "intruding".into(),
            ..SendMessageRequest::default()
        })
        .await;

    assert_error(by_token, 404, "chat_not_found");
    assert_error(by_claim, 404, "chat_not_found");
    assert!(alice.messages(chat.id, 50).await.is_empty());
}

#[tokio::test]
async fn a_sender_claim_naming_another_user_than_the_token_returns_403() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    for route in ROUTES {
        assert_error(
            route
                .send(&alice.client, &one_to_one(BOB, ALICE, "spoofed"))
                .await,
            403,
            "forbidden",
        );
        assert_error(
            route
                .send(
                    &alice.client,
                    &SendMessageRequest {
                        chat_id: Some(chat.id),
                        sender: Some(BOB.into()),
                        content: "spoofed".into(),
                        ..SendMessageRequest::default()
                    },
                )
                .await,
            403,
            "forbidden",
        );
    }
    assert!(alice.messages(chat.id, 50).await.is_empty());
}

#[tokio::test]
async fn resending_with_the_same_client_message_id_returns_the_original_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let request = SendMessageRequest {
        receiver: Some(BOB.into()),
        content: "once".into(),
        client_message_id: Some("c-1".into()),
        ..SendMessageRequest::default()
    };

    let first = alice.client.send_message(&request).await.expect("sent");
    let again = alice.client.send_message(&request).await.expect("sent");
    let via_legacy = alice
        .client
        .send_message_legacy(&request)
        .await
        .expect("sent");

    assert_eq!(first.status, 201);
    assert_eq!(first.body.client_message_id.as_deref(), Some("c-1"));
    for repeat in [again, via_legacy] {
        assert_eq!(repeat.status, 201);
        assert_eq!(repeat.body.id, first.body.id);
        assert_eq!(repeat.body.seq, first.body.seq);
        assert_eq!(repeat.body.client_message_id.as_deref(), Some("c-1"));
    }
    let listed = alice.messages(first.body.chat_id, 50).await;
    assert_eq!(listed.len(), 1, "stored once: {listed:?}");
    let next = alice.send_to(BOB, "after").await;
    assert_eq!(next.seq, 2);
}

#[tokio::test]
async fn a_client_message_id_reused_for_another_chat_or_content_is_409_and_stores_nothing() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    app.register(CAROL).await;
    let keyed = |receiver: Option<&str>, chat_id: Option<Uuid>, content: &str| SendMessageRequest {
        receiver: receiver.map(str::to_owned),
        chat_id,
        content: content.to_owned(),
        client_message_id: Some("k-1".into()),
        ..SendMessageRequest::default()
    };
    let first = alice
        .client
        .send_message(&keyed(Some(BOB), None, "hello"))
        .await
        .expect("sent");
    assert_eq!(first.status, 201);
    let chat = first.body.chat_id;

    for route in ROUTES {
        // An exact repeat, by the pair or by the chat id: the original, 201.
        for repeat in [
            keyed(Some(BOB), None, "hello"),
            keyed(None, Some(chat), "hello"),
        ] {
            let again = route.send(&alice.client, &repeat).await.expect("sent");
            assert_eq!(again.status, 201, "{route:?}");
            assert_eq!((again.body.id, again.body.seq), (first.body.id, 1));
        }
        // The key reused for other content or another chat: 409.
        for reuse in [
            keyed(Some(BOB), None, "something else"),
            keyed(None, Some(chat), "something else"),
            keyed(Some(CAROL), None, "hello"),
        ] {
            assert_error(
                route.send(&alice.client, &reuse).await,
                409,
                "idempotency_conflict",
            );
        }
    }

    let listed = bob.messages(chat, 50).await;
    assert_eq!(listed.len(), 1, "stored once: {listed:?}");
    assert_eq!(alice.chats().await.len(), 1, "no chat with Carol was made");
    let next = alice.send_to(BOB, "after").await;
    assert_eq!(next.seq, 2);
}

#[tokio::test]
async fn the_same_client_message_id_from_another_sender_is_another_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let request_to = |receiver: &str| SendMessageRequest {
        receiver: Some(receiver.to_owned()),
        content: "hello".into(),
        client_message_id: Some("same".into()),
        ..SendMessageRequest::default()
    };

    let from_alice = alice
        .client
        .send_message(&request_to(BOB))
        .await
        .expect("sent");
    let from_bob = bob
        .client
        .send_message(&request_to(ALICE))
        .await
        .expect("sent");

    assert_ne!(from_alice.body.id, from_bob.body.id);
    assert_eq!(from_bob.body.seq, 2);
}

#[tokio::test]
async fn concurrent_resends_with_one_client_message_id_store_one_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let request = SendMessageRequest {
        receiver: Some(BOB.into()),
        content: "once".into(),
        client_message_id: Some("retry".into()),
        ..SendMessageRequest::default()
    };

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = alice.client.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            client.send_message(&request).await.map(|r| r.body.id)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("no panic").expect("sent"));
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the original: {ids:?}");
    let chats = alice.chats().await;
    assert_eq!(chats.len(), 1);
    let listed = alice
        .client
        .list_messages(chats[0].id, &MessagesQuery::default())
        .await
        .expect("listed");
    assert_eq!(listed.body.len(), 1);
}
