//! `POST /chats`, `GET /chats`, `GET /chats/{chatId}`.

use missive_client::ChatsQuery;
use missive_client::protocol::{MessageStatus, StatusRequest};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    ALICE, BOB, CAROL, CHAT_KEYS, DAVE, assert_error, assert_keys, assert_raw_error,
    assert_timestamp, spawn_app,
};

fn sorted(mut phones: Vec<String>) -> Vec<String> {
    phones.sort();
    phones
}

// ---- POST /chats -------------------------------------------------------------

#[tokio::test]
async fn creating_a_chat_between_two_registered_users_returns_201() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;

    let raw = alice
        .client
        .raw(
            missive_client::Method::POST,
            "/chats",
            Some(json!({ "participants": [ALICE, BOB] }).to_string()),
            Some("application/json"),
        )
        .await
        .expect("the server answers");

    assert_eq!(raw.status, 201, "body: {}", raw.body);
    let body = raw.json().expect("JSON");
    assert_keys(&body, CHAT_KEYS);
    assert_eq!(body["lastMessage"], serde_json::Value::Null);
    assert_eq!(body["unreadCount"], 0);
    assert_timestamp(body["createdAt"].as_str().expect("a string"));
    let participants: Vec<String> =
        serde_json::from_value(body["participants"].clone()).expect("a list of phones");
    assert_eq!(sorted(participants), sorted(vec![ALICE.into(), BOB.into()]));
}

#[tokio::test]
async fn creating_the_same_one_to_one_chat_again_returns_200_with_the_same_id() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let first = alice
        .client
        .create_chat([ALICE, BOB])
        .await
        .expect("created");
    assert_eq!(first.status, 201);

    let same_order = alice.client.create_chat([ALICE, BOB]).await.expect("found");
    let other_order = alice.client.create_chat([BOB, ALICE]).await.expect("found");
    let by_bob = bob.client.create_chat([BOB, ALICE]).await.expect("found");

    for again in [same_order, other_order, by_bob] {
        assert_eq!(again.status, 200);
        assert_eq!(again.body.id, first.body.id);
    }
}

#[tokio::test]
async fn the_chat_created_by_a_first_message_is_the_one_post_chats_finds() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let message = alice.send_to(BOB, "hi").await;

    let response = alice.client.create_chat([BOB, ALICE]).await.expect("found");

    assert_eq!(response.status, 200);
    assert_eq!(response.body.id, message.chat_id);
    assert_eq!(response.body.last_message, Some(message));
}

#[tokio::test]
async fn creating_a_group_chat_of_three_returns_201() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    app.register(CAROL).await;

    let response = alice
        .client
        .create_chat([ALICE, BOB, CAROL])
        .await
        .expect("created");

    assert_eq!(response.status, 201);
    assert_eq!(
        sorted(response.body.participants.clone()),
        sorted(vec![ALICE.into(), BOB.into(), CAROL.into()])
    );
    let one_to_one = alice.create_chat(&[ALICE, BOB]).await;
    assert_ne!(one_to_one.id, response.body.id, "a group is not the 1:1");
}

#[tokio::test]
async fn creating_a_chat_with_invalid_participants_returns_400() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let padded_alice = format!(" {ALICE} ");
    let cases: [(&str, Vec<&str>, &str); 6] = [
        ("no participants", vec![], "invalid_participants"),
        ("only the caller", vec![ALICE], "invalid_participants"),
        ("a duplicate", vec![ALICE, ALICE], "invalid_participants"),
        (
            "a duplicate after trimming",
            vec![ALICE, &padded_alice],
            "invalid_participants",
        ),
        (
            "a duplicate in a group",
            vec![ALICE, BOB, BOB],
            "invalid_participants",
        ),
        (
            "an invalid phone",
            vec![ALICE, "nope"],
            "invalid_phone_number",
        ),
    ];

    for (why, participants, code) in cases {
        let result = alice.client.create_chat(&participants).await;
        assert_eq!(
            result.as_ref().err().and_then(|e| e.code()),
            Some(code),
            "{why}: {result:?}"
        );
        assert_error(result, 400, code);
    }
}

#[tokio::test]
async fn creating_a_chat_with_an_unknown_participant_returns_404_user_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;

    assert_error(
        alice.client.create_chat([ALICE, CAROL]).await,
        404,
        "user_not_found",
    );
    assert_error(
        alice.client.create_chat([ALICE, BOB, CAROL]).await,
        404,
        "user_not_found",
    );
}

#[tokio::test]
async fn creating_a_chat_the_caller_is_not_in_returns_403_forbidden() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    app.register(CAROL).await;

    assert_error(
        alice.client.create_chat([BOB, CAROL]).await,
        403,
        "forbidden",
    );
}

// ---- GET /chats ----------------------------------------------------------------

#[tokio::test]
async fn listing_chats_by_phone_number_returns_the_callers_chats() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    app.register(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    let by_phone = app
        .client
        .list_chats(&ChatsQuery::as_phone(ALICE))
        .await
        .expect("listed");
    let by_participant = app
        .client
        .list_chats(&ChatsQuery {
            participant: Some(ALICE.into()),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");
    let for_carol = app
        .client
        .list_chats(&ChatsQuery::as_phone(CAROL))
        .await
        .expect("listed");

    assert_eq!(by_phone.status, 200);
    assert_eq!(by_phone.body, vec![chat.clone()]);
    assert_eq!(by_participant.status, 200);
    assert_eq!(by_participant.body, vec![chat]);
    assert_eq!(for_carol.body, vec![]);
}

#[tokio::test]
async fn listing_chats_with_a_token_returns_the_callers_chats() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    let response = alice
        .client
        .list_chats(&ChatsQuery::default())
        .await
        .expect("listed");

    assert_eq!(response.status, 200);
    assert!(response.next.is_none());
    assert_eq!(response.body, vec![chat.clone()]);
    assert_eq!(bob.chats().await, vec![chat]);
    assert_eq!(carol.chats().await, vec![]);
}

#[tokio::test]
async fn listing_chats_lists_every_field_of_a_chat() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    alice.create_chat(&[ALICE, BOB]).await;

    let raw = app
        .get(&format!("/chats?phoneNumber=%2B{}", &ALICE[1..]))
        .await;

    assert_eq!(raw.status, 200, "body: {}", raw.body);
    let body = raw.json().expect("JSON");
    let chats = body.as_array().expect("a bare JSON array");
    assert_eq!(chats.len(), 1);
    assert_keys(&chats[0], CHAT_KEYS);
    assert_eq!(chats[0]["lastMessage"], serde_json::Value::Null);
}

#[tokio::test]
async fn listing_chats_puts_the_most_recent_activity_first() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    app.register(CAROL).await;
    app.register(DAVE).await;
    let with_bob = alice.create_chat(&[ALICE, BOB]).await;
    let with_carol = alice.create_chat(&[ALICE, CAROL]).await;
    let with_dave = alice.create_chat(&[ALICE, DAVE]).await;
    let ids = |chats: Vec<missive_client::protocol::Chat>| -> Vec<Uuid> {
        chats.into_iter().map(|chat| chat.id).collect()
    };

    assert_eq!(
        ids(alice.chats().await),
        vec![with_dave.id, with_carol.id, with_bob.id],
        "newest chat first when nothing was sent"
    );

    alice.send_in(with_carol.id, "one").await;
    assert_eq!(
        ids(alice.chats().await),
        vec![with_carol.id, with_dave.id, with_bob.id]
    );

    alice.send_in(with_bob.id, "two").await;
    assert_eq!(
        ids(alice.chats().await),
        vec![with_bob.id, with_carol.id, with_dave.id]
    );
}

#[tokio::test]
async fn listing_chats_reports_the_last_message_and_the_callers_unread_count() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    bob.send_to(ALICE, "one").await;
    let second = bob.send_to(ALICE, "two").await;
    let third = bob.send_to(ALICE, "three").await;

    let for_alice = alice.chats().await;
    let for_bob = bob.chats().await;

    assert_eq!(for_alice.len(), 1);
    assert_eq!(for_alice[0].unread_count, 3);
    assert_eq!(for_alice[0].last_message.as_ref(), Some(&third));
    assert_eq!(
        for_bob[0].unread_count, 0,
        "your own messages are never unread"
    );
    assert_eq!(
        for_bob[0].last_message.as_ref().map(|m| m.id),
        Some(third.id)
    );

    alice
        .client
        .mark_status(
            second.chat_id,
            &StatusRequest {
                message_id: second.id,
                status: MessageStatus::Read,
            },
        )
        .await
        .expect("marked");
    assert_eq!(alice.chats().await[0].unread_count, 1);
    alice
        .client
        .mark_status(
            third.chat_id,
            &StatusRequest {
                message_id: third.id,
                status: MessageStatus::Delivered,
            },
        )
        .await
        .expect("marked");
    assert_eq!(
        alice.chats().await[0].unread_count,
        1,
        "delivered is not read"
    );
}

#[tokio::test]
async fn a_chat_read_without_any_identity_has_an_unread_count_of_0() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    let bob = app.user(BOB).await;
    let message = bob.send_to(ALICE, "one").await;

    let response = app
        .client
        .get_chat(message.chat_id)
        .await
        .expect("an identity-less read is allowed from loopback");

    assert_eq!(response.body.unread_count, 0);
    assert_eq!(response.body.last_message, Some(message));
}

#[tokio::test]
async fn listing_chats_without_any_identity_returns_an_empty_list() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    alice.create_chat(&[ALICE, BOB]).await;

    let response = app
        .client
        .list_chats(&ChatsQuery::default())
        .await
        .expect("listed");

    assert_eq!(response.status, 200);
    assert_eq!(response.body, vec![]);
}

#[tokio::test]
async fn listing_chats_for_an_unregistered_number_returns_404_user_not_found() {
    let app = spawn_app().await;

    assert_error(
        app.client.list_chats(&ChatsQuery::as_phone(ALICE)).await,
        404,
        "user_not_found",
    );
}

#[tokio::test]
async fn listing_chats_for_an_invalid_number_returns_400_invalid_phone_number() {
    let app = spawn_app().await;

    assert_error(
        app.client.list_chats(&ChatsQuery::as_phone("nope")).await,
        400,
        "invalid_phone_number",
    );
}

#[tokio::test]
async fn listing_chats_with_bad_paging_parameters_returns_400_invalid_parameter() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    let cases = [
        ("limit=0", "limit below 1"),
        ("limit=201", "limit above 200"),
        ("limit=x", "limit not a number"),
        ("limit=-1", "negative limit"),
        ("limit=", "empty limit"),
        ("offset=x", "offset not a number"),
        ("offset=-1", "negative offset"),
        ("before=not-a-uuid", "cursor not a uuid"),
    ];

    for (query, why) in cases {
        let raw = app
            .get(&format!("/chats?phoneNumber=%2B{}&{query}", &ALICE[1..]))
            .await;
        assert_eq!(raw.status, 400, "{why} ({query}): {}", raw.body);
        assert_raw_error(&raw, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn listing_chats_accepts_the_limits_1_and_200() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    app.register(CAROL).await;
    alice.create_chat(&[ALICE, BOB]).await;
    alice.create_chat(&[ALICE, CAROL]).await;

    for (limit, expected) in [(1, 1), (200, 2)] {
        let response = alice
            .client
            .list_chats(&ChatsQuery {
                limit: Some(limit),
                ..ChatsQuery::default()
            })
            .await
            .expect("listed");
        assert_eq!(response.body.len(), expected, "limit={limit}");
        assert_eq!(response.next.is_some(), limit == 1, "limit={limit}");
    }
}

// ---- GET /chats/{chatId} -------------------------------------------------------

#[tokio::test]
async fn getting_a_chat_as_a_member_returns_it() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    let by_token = bob.client.get_chat(chat.id).await.expect("found");
    let by_claim = app.client.get_chat_as(chat.id, ALICE).await.expect("found");

    assert_eq!(by_token.status, 200);
    assert_eq!(by_token.body, chat);
    assert_eq!(by_claim.status, 200);
    assert_eq!(by_claim.body, chat);
}

#[tokio::test]
async fn getting_a_chat_with_a_malformed_id_returns_400_invalid_parameter() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    for id in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
        let raw = alice
            .client
            .raw(
                missive_client::Method::GET,
                &format!("/chats/{id}"),
                None,
                None,
            )
            .await
            .expect("the server answers");
        assert_raw_error(&raw, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn getting_an_unknown_chat_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    assert_error(
        alice.client.get_chat(Uuid::now_v7()).await,
        404,
        "chat_not_found",
    );
}

#[tokio::test]
async fn getting_a_chat_as_a_non_member_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    assert_error(carol.client.get_chat(chat.id).await, 404, "chat_not_found");
    assert_error(
        app.client.get_chat_as(chat.id, CAROL).await,
        404,
        "chat_not_found",
    );
}
