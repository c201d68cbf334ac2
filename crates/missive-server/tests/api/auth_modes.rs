//! Claimed identity under each `AUTH_MODE`, seen from a loopback peer (the
//! tests connect from 127.0.0.1). The non-loopback case is unit-tested in the
//! server.

use missive_client::protocol::SendMessageRequest;
use missive_client::{ChatsQuery, MessagesQuery};
use missive_server::AuthMode;

use crate::helpers::{ALICE, BOB, CAROL, TestApp, assert_error, spawn_app_with};

async fn app_in(mode: AuthMode) -> TestApp {
    spawn_app_with(|config| config.auth_mode = mode).await
}

#[tokio::test]
async fn open_and_loopback_modes_believe_claims_from_a_loopback_peer() {
    for mode in [AuthMode::Open, AuthMode::Loopback] {
        let app = app_in(mode).await;
        assert!(app.address.ip().is_loopback(), "claims come from loopback");
        app.register(ALICE).await;
        app.register(BOB).await;

        let sent = app
            .send_as(ALICE, BOB, "claimed")
            .await
            .unwrap_or_else(|err| panic!("{mode:?}: the sender claim is believed: {err}"));
        let chats = app
            .client
            .list_chats(&ChatsQuery::as_phone(BOB))
            .await
            .unwrap_or_else(|err| panic!("{mode:?}: the phoneNumber claim is believed: {err}"));
        let messages = app
            .client
            .list_messages(sent.body.chat_id, &MessagesQuery::as_phone(BOB))
            .await
            .unwrap_or_else(|err| panic!("{mode:?}: the phoneNumber claim is believed: {err}"));

        assert_eq!(sent.status, 201, "{mode:?}");
        assert_eq!(sent.body.sender, ALICE, "{mode:?}");
        assert_eq!(chats.body.len(), 1, "{mode:?}");
        assert_eq!(chats.body[0].id, sent.body.chat_id, "{mode:?}");
        assert_eq!(messages.body.len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn required_mode_answers_401_to_requests_without_a_token() {
    let app = app_in(AuthMode::Required).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    assert_error(
        app.client.list_chats(&ChatsQuery::default()).await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client.list_chats(&ChatsQuery::as_phone(ALICE)).await,
        401,
        "unauthorized",
    );
    assert_error(
        app.send_as(ALICE, BOB, "claimed").await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client
            .send_message_legacy(&SendMessageRequest {
                sender: Some(ALICE.into()),
                receiver: Some(BOB.into()),
                content: "claimed".into(),
                ..SendMessageRequest::default()
            })
            .await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client.create_chat([ALICE, BOB]).await,
        401,
        "unauthorized",
    );
    assert_error(app.client.get_chat(chat.id).await, 401, "unauthorized");
    assert_error(
        app.client.get_chat_as(chat.id, ALICE).await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client
            .list_messages(chat.id, &MessagesQuery::as_phone(ALICE))
            .await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client
            .with_token("bogus")
            .list_chats(&ChatsQuery::default())
            .await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn required_mode_still_lets_anyone_register_and_check_health() {
    let app = app_in(AuthMode::Required).await;

    let registered = app.client.register(ALICE, None).await.expect("registered");
    let alias = app.client.create_user(BOB, None).await.expect("registered");
    let health = app.client.healthz().await.expect("healthy");
    let ready = app.client.readyz().await.expect("ready");

    assert_eq!(registered.status, 201);
    assert_eq!(alias.status, 201);
    assert_eq!(health.status, 200);
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn a_token_works_in_every_mode() {
    for mode in [AuthMode::Open, AuthMode::Loopback, AuthMode::Required] {
        let app = app_in(mode).await;
        let alice = app.user(ALICE).await;
        let bob = app.user(BOB).await;

        let chat = alice.create_chat(&[ALICE, BOB]).await;
        let sent = alice.send_in(chat.id, "by token").await;
        let reply = bob.send_to(ALICE, "reply").await;

        assert_eq!(reply.chat_id, chat.id, "{mode:?}");
        assert_eq!(alice.chats().await.len(), 1, "{mode:?}");
        assert_eq!(
            bob.client.get_chat(chat.id).await.expect("found").body.id,
            chat.id,
            "{mode:?}"
        );
        let listed = bob.messages(chat.id, 50).await;
        let ids: Vec<_> = listed.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![reply.id, sent.id], "{mode:?}");
    }
}

#[tokio::test]
async fn a_claim_naming_another_user_than_the_token_returns_403_in_every_mode() {
    for mode in [AuthMode::Open, AuthMode::Loopback, AuthMode::Required] {
        let app = app_in(mode).await;
        let alice = app.user(ALICE).await;
        app.register(BOB).await;
        app.register(CAROL).await;
        let chat = alice.create_chat(&[ALICE, BOB]).await;

        assert_error(
            alice
                .client
                .send_message(&SendMessageRequest {
                    sender: Some(BOB.into()),
                    receiver: Some(ALICE.into()),
                    content: "spoofed".into(),
                    ..SendMessageRequest::default()
                })
                .await,
            403,
            "forbidden",
        );
        assert_error(
            alice.client.list_chats(&ChatsQuery::as_phone(BOB)).await,
            403,
            "forbidden",
        );
        assert_error(
            alice
                .client
                .list_chats(&ChatsQuery {
                    participant: Some(CAROL.into()),
                    ..ChatsQuery::default()
                })
                .await,
            403,
            "forbidden",
        );
        assert_error(
            alice
                .client
                .list_messages(chat.id, &MessagesQuery::as_phone(BOB))
                .await,
            403,
            "forbidden",
        );
        assert_error(
            alice.client.get_chat_as(chat.id, BOB).await,
            403,
            "forbidden",
        );

        let own_claim = alice
            .client
            .list_chats(&ChatsQuery::as_phone(ALICE))
            .await
            .unwrap_or_else(|err| panic!("{mode:?}: a matching claim is fine: {err}"));
        assert_eq!(own_claim.body.len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn an_invalid_token_returns_401_even_with_a_believable_claim() {
    for mode in [AuthMode::Open, AuthMode::Loopback] {
        let app = app_in(mode).await;
        app.register(ALICE).await;
        app.register(BOB).await;
        let bogus = app.client.with_token("not-a-real-token");

        assert_error(
            bogus.list_chats(&ChatsQuery::as_phone(ALICE)).await,
            401,
            "unauthorized",
        );
        assert_error(
            bogus
                .send_message(&SendMessageRequest {
                    sender: Some(ALICE.into()),
                    receiver: Some(BOB.into()),
                    content: "hi".into(),
                    ..SendMessageRequest::default()
                })
                .await,
            401,
            "unauthorized",
        );
    }
}
