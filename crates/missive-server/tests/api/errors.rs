//! The error contract (README, errors): malformed input is a 400 with the app's own
//! `{"code","message"}` body (never 415/422), oversized bodies 413, unknown
//! routes a JSON 404.

use missive_client::Method;
use serde_json::json;

use crate::helpers::{ALICE, BOB, TestApp, assert_raw_error, spawn_app};

/// Alice's token and every JSON-accepting route, with the id of a chat of
/// Alice's where one is needed.
async fn json_routes(app: &TestApp) -> (String, Vec<String>) {
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let routes = vec![
        "/register".into(),
        "/users".into(),
        "/chats".into(),
        "/messages".into(),
        "/message".into(),
        format!("/chats/{}/status", chat.id),
        format!("/chats/{}/typing", chat.id),
    ];
    (alice.token, routes)
}

/// Posts `body` with `content_type` to `path` as Alice (token `token`).
async fn post(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &str,
    content_type: Option<&str>,
) -> missive_client::RawResponse {
    app.client
        .with_token(token)
        .raw(Method::POST, path, Some(body.to_owned()), content_type)
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn malformed_json_returns_400_invalid_request_on_every_route() {
    let app = spawn_app().await;
    let (token, routes) = json_routes(&app).await;

    for path in &routes {
        for body in [r#"{"phoneNumber":"#, "not json", "", "{}}"] {
            let raw = post(&app, &token, path, body, Some("application/json")).await;
            assert_eq!(raw.status, 400, "{path} with {body:?}: {}", raw.body);
            assert_raw_error(&raw, 400, "invalid_request");
        }
    }
}

#[tokio::test]
async fn a_wrongly_typed_field_returns_400_invalid_request() {
    let app = spawn_app().await;
    let (token, routes) = json_routes(&app).await;
    let cases = [
        ("/register", json!({ "phoneNumber": 1234567890 })),
        (
            "/register",
            json!({ "phoneNumber": ALICE, "displayName": 7 }),
        ),
        ("/users", json!({ "phoneNumber": [ALICE] })),
        ("/chats", json!({ "participants": ALICE })),
        ("/chats", json!({ "participants": [1, 2] })),
        (
            "/messages",
            json!({ "sender": ALICE, "receiver": BOB, "content": 5 }),
        ),
        ("/messages", json!({ "chatId": 5, "content": "hi" })),
        (
            "/message",
            json!({ "sender": 1, "receiver": BOB, "content": "hi" }),
        ),
        ("/messages", json!([1, 2, 3])),
        (routes[6].as_str(), json!({ "isTyping": 1 })),
    ];

    for (path, body) in cases {
        let raw = post(
            &app,
            &token,
            path,
            &body.to_string(),
            Some("application/json"),
        )
        .await;
        assert_eq!(raw.status, 400, "{path} with {body}: {}", raw.body);
        assert_raw_error(&raw, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_missing_required_field_returns_400_invalid_request() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;
    let cases = [
        ("/register", json!({})),
        ("/chats", json!({})),
        ("/messages", json!({ "sender": ALICE, "receiver": BOB })),
        ("/message", json!({ "sender": ALICE, "receiver": BOB })),
    ];

    for (path, body) in cases {
        let raw = app.post_json(path, &body).await;
        assert_eq!(raw.status, 400, "{path} with {body}: {}", raw.body);
        assert_raw_error(&raw, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_send_naming_neither_a_receiver_nor_a_chat_returns_400() {
    let app = spawn_app().await;
    app.register(ALICE).await;

    for path in ["/messages", "/message"] {
        let raw = app
            .post_json(path, &json!({ "sender": ALICE, "content": "to whom?" }))
            .await;
        assert_eq!(raw.status, 400, "{path}: {}", raw.body);
        let body = raw.error_body().expect("{code,message}");
        assert!(!body.message.is_empty());
    }
}

#[tokio::test]
async fn a_missing_or_wrong_content_type_returns_400_invalid_request() {
    let app = spawn_app().await;
    let (token, routes) = json_routes(&app).await;

    for path in &routes {
        let body = json!({ "phoneNumber": "+1777777777", "participants": [ALICE, BOB], "content": "hi", "isTyping": true }).to_string();
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let raw = post(&app, &token, path, &body, content_type).await;
            assert_ne!(raw.status, 415, "{path} {content_type:?}: never 415");
            assert_eq!(raw.status, 400, "{path} {content_type:?}: {}", raw.body);
            assert_raw_error(&raw, 400, "invalid_request");
        }
    }
}

#[tokio::test]
async fn a_json_content_type_with_a_charset_is_accepted() {
    let app = spawn_app().await;

    let raw = app
        .client
        .raw(
            Method::POST,
            "/register",
            Some(json!({ "phoneNumber": ALICE }).to_string()),
            Some("application/json; charset=utf-8"),
        )
        .await
        .expect("the server answers");

    assert_eq!(raw.status, 201, "body: {}", raw.body);
}

#[tokio::test]
async fn a_body_over_64_kib_returns_413_payload_too_large() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;
    let content = "a".repeat(70 * 1024);

    for path in ["/messages", "/message", "/register"] {
        let body =
            json!({ "sender": ALICE, "receiver": BOB, "content": content, "phoneNumber": ALICE })
                .to_string();
        let raw = app
            .client
            .raw(Method::POST, path, Some(body), Some("application/json"))
            .await
            .expect("the server answers");
        assert_raw_error(&raw, 413, "payload_too_large");
    }
}

#[tokio::test]
async fn a_body_just_under_64_kib_is_not_rejected_for_its_size() {
    let app = spawn_app().await;
    app.register(ALICE).await;
    app.register(BOB).await;
    // Valid JSON of ~63 KiB whose content is too long: the answer is about
    // the content (400), not about the size (413).
    let content = "a".repeat(63 * 1024);
    let raw = app
        .post_json(
            "/messages",
            &json!({ "sender": ALICE, "receiver": BOB, "content": content }),
        )
        .await;

    assert_raw_error(&raw, 400, "invalid_content");
}

#[tokio::test]
async fn an_unknown_route_returns_a_json_404_not_found() {
    let app = spawn_app().await;

    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::GET, "/chats/x/y/z"),
        (Method::GET, "/register/extra"),
    ] {
        let raw = app
            .client
            .raw(method.clone(), path, None, None)
            .await
            .expect("the server answers");
        assert_eq!(raw.status, 404, "{method} {path}: {}", raw.body);
        assert_raw_error(&raw, 404, "not_found");
    }
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_returns_a_json_400() {
    let app = spawn_app().await;

    for (method, path) in [
        (Method::GET, "/chats/%FF"),
        (Method::GET, "/chats/%FF/messages"),
        (Method::POST, "/chats/%C3%28/status"),
    ] {
        let raw = app
            .client
            .raw(method.clone(), path, None, None)
            .await
            .expect("the server answers");
        assert_raw_error(&raw, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn errors_never_use_415_or_422() {
    let app = spawn_app().await;
    let (token, routes) = json_routes(&app).await;
    let bodies = [
        ("{}", Some("application/json")),
        (r#"{"unexpected":true}"#, Some("application/json")),
        ("null", Some("application/json")),
        ("42", Some("application/json")),
        (r#"{"a":1}"#, Some("application/xml")),
        (r#"{"a":1}"#, None),
    ];

    for path in &routes {
        for (body, content_type) in bodies {
            let raw = post(&app, &token, path, body, content_type).await;
            assert!(
                raw.status != 415 && raw.status != 422,
                "{path} {body} {content_type:?} gave {}",
                raw.status
            );
            assert_eq!(
                raw.status, 400,
                "{path} {body} {content_type:?}: {}",
                raw.body
            );
            assert!(raw.error_body().is_ok(), "{path}: {}", raw.body);
        }
    }
}
