//! `POST /register` and its alias `POST /users`.

use serde_json::json;

use crate::helpers::{
    ALICE, BOB, USER_KEYS, assert_error, assert_keys, assert_raw_error, assert_timestamp, spawn_app,
};

#[tokio::test]
async fn registering_a_new_phone_number_returns_201_with_the_user_and_a_token() {
    let app = spawn_app().await;

    let raw = app
        .post_json("/register", &json!({ "phoneNumber": ALICE }))
        .await;

    assert_eq!(raw.status, 201, "body: {}", raw.body);
    let body = raw.json().expect("a JSON body");
    assert_keys(&body, USER_KEYS);
    assert_keys(&body, &["token"]);
    assert_eq!(body["phoneNumber"], ALICE);
    assert_eq!(body["displayName"], serde_json::Value::Null);
    let token = body["token"].as_str().expect("the token is a string");
    assert!(!token.is_empty());
    let id = body["id"].as_str().expect("the id is a string");
    uuid::Uuid::parse_str(id).expect("the id is a UUID");
    assert_timestamp(body["createdAt"].as_str().expect("createdAt is a string"));
}

#[tokio::test]
async fn registering_with_a_display_name_returns_it() {
    let app = spawn_app().await;

    let response = app
        .client
        .register(ALICE, Some("Alice"))
        .await
        .expect("registration succeeds");

    assert_eq!(response.status, 201);
    assert_eq!(response.body.user.display_name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn each_registration_gets_its_own_id_and_token() {
    let app = spawn_app().await;

    let (alice, alice_token) = app.register(ALICE).await;
    let (bob, bob_token) = app.register(BOB).await;

    assert_ne!(alice.id, bob.id);
    assert_ne!(alice_token, bob_token);
}

#[tokio::test]
async fn registering_a_taken_phone_number_returns_409_phone_taken() {
    let app = spawn_app().await;
    app.register(ALICE).await;

    assert_error(app.client.register(ALICE, None).await, 409, "phone_taken");
}

#[tokio::test]
async fn a_number_with_surrounding_whitespace_is_the_same_number() {
    let app = spawn_app().await;
    app.register(ALICE).await;

    let result = app.client.register(&format!(" {ALICE} "), None).await;

    assert_error(result, 409, "phone_taken");
}

#[tokio::test]
async fn surrounding_whitespace_is_trimmed_from_the_stored_number() {
    let app = spawn_app().await;

    let (user, _) = app.register(&format!("  {ALICE}\t")).await;

    assert_eq!(user.phone_number, ALICE);
    assert_error(app.client.register(ALICE, None).await, 409, "phone_taken");
}

#[tokio::test]
async fn registering_an_invalid_phone_number_returns_400() {
    let app = spawn_app().await;
    let cases = [
        ("nope", "not digits"),
        ("+123", "too short"),
        ("+123456", "6 digits"),
        ("1234567890", "no plus sign"),
        ("+1234567890123456", "16 digits"),
        ("", "empty"),
        ("   ", "only whitespace"),
        ("+12345-67890", "a dash"),
        ("+12 3456 7890", "inner spaces"),
        ("++1234567890", "two plus signs"),
    ];

    for (phone, why) in cases {
        let result = app.client.register(phone, None).await;
        match &result {
            Err(err) if err.status() == Some(400) => {}
            other => panic!("{why} ({phone:?}): expected 400, got {other:?}"),
        }
        assert_error(result, 400, "invalid_phone_number");
    }
}

#[tokio::test]
async fn phone_numbers_of_7_to_15_digits_are_accepted() {
    let app = spawn_app().await;
    let cases = [
        "+1234567",
        "+123456789012345",
        "+1234567890",
        "+0987654321",
        "+3306666666",
    ];

    for phone in cases {
        let response = app
            .client
            .register(phone, None)
            .await
            .unwrap_or_else(|err| panic!("{phone} is valid: {err}"));
        assert_eq!(response.status, 201, "{phone}");
        assert_eq!(response.body.user.phone_number, phone);
    }
}

#[tokio::test]
async fn post_users_is_an_alias_of_register() {
    let app = spawn_app().await;

    let response = app
        .client
        .create_user(ALICE, Some("Alice"))
        .await
        .expect("registration succeeds");

    assert_eq!(response.status, 201);
    assert_eq!(response.body.user.phone_number, ALICE);
    assert!(!response.body.token.is_empty());
    assert_error(app.client.register(ALICE, None).await, 409, "phone_taken");
    assert_error(
        app.client.create_user(ALICE, None).await,
        409,
        "phone_taken",
    );
    assert_error(
        app.client.create_user("nope", None).await,
        400,
        "invalid_phone_number",
    );
}

#[tokio::test]
async fn registering_without_a_phone_number_returns_400_invalid_request() {
    let app = spawn_app().await;

    let raw = app
        .post_json("/register", &json!({ "displayName": "x" }))
        .await;

    assert_raw_error(&raw, 400, "invalid_request");
}
