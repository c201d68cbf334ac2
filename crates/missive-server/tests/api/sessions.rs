//! Sessions (README, "Tokens and sessions"): `GET /sessions` lists the
//! caller's live tokens with their user agents and marks the current one,
//! `DELETE /sessions/{id}` revokes one (its WebSockets close), and a token
//! unused for longer than `TOKEN_TTL` expires while one in use slides.

use std::time::{Duration, Instant};

use missive_client::ws::{Connection, WsQuery};
use missive_client::{Client, ClientError};
use uuid::Uuid;

use crate::auth_helpers::{SmsGateway, login};
use crate::helpers::{
    ALICE, BOB, TestApp, TestAppBuilder, assert_error, assert_keys, assert_timestamp,
};
use crate::ws_helpers::open_as;

/// The user agent of the registration in these tests.
const LAPTOP: &str = "missive-test/1.0 (laptop)";
/// The user agent of the second login.
const PHONE: &str = "missive-test/1.0 (phone)";

/// An app whose login codes go to `gateway`, with `TOKEN_TTL` = `ttl` if given.
async fn app_with(gateway: &SmsGateway, ttl: Option<Duration>) -> TestApp {
    let webhook = gateway.url.clone();
    TestAppBuilder::new()
        .configure(move |config| {
            config.otp_webhook_url = Some(webhook);
            if let Some(ttl) = ttl {
                config.token_ttl = ttl;
            }
        })
        .spawn()
        .await
}

/// Alice registered from her laptop and logged in from her phone: two
/// clients, each with its own token.
async fn alice_on_two_devices(app: &TestApp, gateway: &SmsGateway) -> (Client, Client) {
    let registered = app
        .client
        .with_user_agent(LAPTOP)
        .register(ALICE, None)
        .await
        .expect("registered");
    let laptop = app.client.with_token(registered.body.token);
    let phone_client = app.client.with_user_agent(PHONE);
    let session = login(&phone_client, gateway, ALICE).await;
    (laptop, app.client.with_token(session.token))
}

/// The status and error code of a `GET /ws` upgrade with `token`.
async fn upgrade_with(app: &TestApp, token: &str) -> (u16, Option<String>) {
    match Connection::connect(app.client.base_url().as_str(), &WsQuery::token(token)).await {
        Ok(conn) => {
            let _ = conn.close().await;
            (101, None)
        }
        Err(e) => (e.status().expect("an HTTP refusal"), e.code()),
    }
}

#[tokio::test]
async fn the_list_shows_both_logins_with_their_user_agents_and_marks_the_callers_as_current() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway, None).await;
    let (laptop, phone) = alice_on_two_devices(&app, &gateway).await;

    let from_phone = phone.list_sessions().await.expect("listed");
    let from_laptop = laptop.list_sessions().await.expect("listed");

    assert_eq!(from_phone.status, 200);
    let sessions = from_phone.body;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // Newest use first: the phone logged in (and was used) last.
    assert_eq!(sessions[0].user_agent.as_deref(), Some(PHONE));
    assert!(sessions[0].current);
    assert_eq!(sessions[1].user_agent.as_deref(), Some(LAPTOP));
    assert!(!sessions[1].current);
    for session in &sessions {
        assert_timestamp(&session.created_at);
        assert_timestamp(&session.last_used_at);
        assert!(session.last_used_at >= session.created_at, "{session:?}");
    }
    let mut ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
    ids.sort();
    let mut seen: Vec<Uuid> = from_laptop.body.iter().map(|s| s.id).collect();
    seen.sort();
    assert_eq!(ids, seen, "both tokens see the same sessions");
    let current: Vec<Option<&str>> = from_laptop
        .body
        .iter()
        .filter(|s| s.current)
        .map(|s| s.user_agent.as_deref())
        .collect();
    assert_eq!(current, [Some(LAPTOP)]);

    // The raw shape: every field present, the token (or its hash) nowhere.
    let raw = app
        .client
        .raw(missive_client::Method::GET, "/sessions", None, None)
        .await
        .expect("answers");
    assert_eq!(raw.status, 401, "a token is required: {}", raw.body);
    let raw = phone
        .raw(missive_client::Method::GET, "/sessions", None, None)
        .await
        .expect("answers");
    let json = raw.json().expect("JSON");
    for entry in json.as_array().expect("a bare array") {
        assert_keys(
            entry,
            &["id", "createdAt", "lastUsedAt", "userAgent", "current"],
        );
    }
    let token = phone.token().expect("a token");
    assert!(!raw.body.contains(token), "the token leaks: {}", raw.body);
    let hash = missive_server::security::tokens::hash_token(token);
    assert!(!raw.body.contains(&hash), "its hash leaks: {}", raw.body);
}

#[tokio::test]
async fn a_session_without_a_user_agent_lists_null() {
    let app = TestAppBuilder::new().spawn().await;
    let alice = app.user(ALICE).await;

    let raw = alice
        .client
        .raw(missive_client::Method::GET, "/sessions", None, None)
        .await
        .expect("answers");

    assert_eq!(raw.status, 200, "{}", raw.body);
    let json = raw.json().expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert!(json[0]["userAgent"].is_null(), "{json}");
    assert_eq!(json[0]["current"], true);
}

#[tokio::test]
async fn revoking_a_session_makes_its_token_401_and_drops_it_from_the_list_while_the_other_works() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway, None).await;
    let (laptop, phone) = alice_on_two_devices(&app, &gateway).await;
    let sessions = phone.list_sessions().await.expect("listed").body;
    let laptop_session = sessions
        .iter()
        .find(|s| !s.current)
        .expect("the laptop's session");

    let revoked = phone
        .revoke_session(laptop_session.id)
        .await
        .expect("revoked");

    assert_eq!(revoked.status, 204);
    assert_error(laptop.me().await, 401, "unauthorized");
    assert_error(laptop.list_sessions().await, 401, "unauthorized");
    let me = phone.me().await.expect("the phone still works");
    assert_eq!(me.body.phone_number, ALICE);
    let left = phone.list_sessions().await.expect("listed").body;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].current);
    assert_eq!(left[0].user_agent.as_deref(), Some(PHONE));
    // Gone: revoking it again is a 404.
    assert_error(
        phone.revoke_session(laptop_session.id).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn revoking_your_own_current_session_logs_you_out() {
    let app = TestAppBuilder::new().spawn().await;
    let alice = app.user(ALICE).await;
    let mine = alice.client.list_sessions().await.expect("listed").body;

    let revoked = alice.client.revoke_session(mine[0].id).await.expect("ok");

    assert_eq!(revoked.status, 204);
    assert_error(alice.client.me().await, 401, "unauthorized");
}

#[tokio::test]
async fn another_users_session_is_404_and_keeps_working() {
    let app = TestAppBuilder::new().spawn().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let bobs = bob.client.list_sessions().await.expect("listed").body;

    assert_error(
        alice.client.revoke_session(bobs[0].id).await,
        404,
        "not_found",
    );
    assert_error(
        alice.client.revoke_session(Uuid::now_v7()).await,
        404,
        "not_found",
    );

    assert_eq!(bob.client.me().await.expect("still valid").status, 200);
    let alices = alice.client.list_sessions().await.expect("listed").body;
    assert_eq!(alices.len(), 1, "Bob's session is not Alice's: {alices:?}");
    assert_ne!(alices[0].id, bobs[0].id);
}

#[tokio::test]
async fn a_malformed_session_id_is_400_and_the_routes_need_a_token() {
    let app = TestAppBuilder::new().spawn().await;
    let alice = app.user(ALICE).await;

    for bad in ["not-a-uuid", "123", "0194%2F"] {
        assert_error(
            alice.client.revoke_session_raw(bad).await,
            400,
            "invalid_parameter",
        );
    }
    assert_error(app.client.list_sessions().await, 401, "unauthorized");
    assert_error(
        app.client.revoke_session(Uuid::now_v7()).await,
        401,
        "unauthorized",
    );
    assert_error(
        app.client.with_token("not-a-token").list_sessions().await,
        401,
        "unauthorized",
    );
    // `/sessions/current` is still the logout, not a session id.
    assert_eq!(alice.client.logout().await.expect("logout").status, 204);
}

#[tokio::test]
async fn a_websocket_opened_with_a_revoked_sessions_token_is_closed() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway, None).await;
    let (laptop, phone) = alice_on_two_devices(&app, &gateway).await;
    let laptop_user = crate::helpers::TestUser {
        user: laptop.me().await.expect("me").body,
        token: laptop.token().expect("a token").to_owned(),
        client: laptop.clone(),
    };
    let phone_user = crate::helpers::TestUser {
        user: laptop_user.user.clone(),
        token: phone.token().expect("a token").to_owned(),
        client: phone.clone(),
    };
    let mut laptop_socket = open_as(&laptop_user).await;
    let mut phone_socket = open_as(&phone_user).await;
    laptop_socket.assert_usable().await;
    let laptop_session = phone
        .list_sessions()
        .await
        .expect("listed")
        .body
        .into_iter()
        .find(|s| !s.current)
        .expect("the laptop's session");

    let revoked_at = Instant::now();
    phone
        .revoke_session(laptop_session.id)
        .await
        .expect("revoked");

    match laptop_socket.conn.next_frame(Duration::from_secs(2)).await {
        Err(e) => assert_eq!(e.close_code(), Some(1008), "{e}"),
        Ok(frame) => panic!("the revoked session's socket still works: {frame:?}"),
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(2));
    phone_socket.assert_usable().await;
    assert_eq!(
        upgrade_with(&app, laptop_user.token.as_str()).await,
        (401, Some("unauthorized".to_owned()))
    );
}

#[tokio::test]
async fn a_token_unused_for_longer_than_token_ttl_gets_401_while_one_in_use_slides() {
    let gateway = SmsGateway::start().await;
    let ttl = Duration::from_secs(2);
    let app = app_with(&gateway, Some(ttl)).await;
    let (laptop, phone) = alice_on_two_devices(&app, &gateway).await;

    // The phone is used every 300 ms for 1.5 × TOKEN_TTL; the laptop is not.
    let started = Instant::now();
    while started.elapsed() < ttl + ttl / 2 {
        assert_eq!(
            phone
                .me()
                .await
                .expect("the phone in use stays valid")
                .status,
            200,
            "after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    match laptop.me().await {
        Err(ClientError::Api { status, body }) => {
            assert_eq!((status, body.code.as_str()), (401, "unauthorized"));
            assert!(body.message.contains("expired"), "{}", body.message);
        }
        other => panic!("expected a 401 for the idle token, got {other:?}"),
    }
    assert_eq!(
        upgrade_with(&app, laptop.token().expect("a token")).await,
        (401, Some("unauthorized".to_owned()))
    );
    let live = phone.list_sessions().await.expect("listed").body;
    assert_eq!(live.len(), 1, "the expired session is not listed: {live:?}");
    assert!(live[0].current);
    assert_eq!(phone.me().await.expect("still valid").status, 200);
}
