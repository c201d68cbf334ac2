//! `GET /users?phoneNumber=`: contact lookup, which needs a token in every mode.

use crate::helpers::{ALICE, BOB, CAROL, USER_KEYS, assert_error, assert_keys, spawn_app};

#[tokio::test]
async fn looking_up_a_registered_number_returns_the_user() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;

    let response = alice
        .client
        .lookup_user(BOB)
        .await
        .expect("the lookup succeeds");

    assert_eq!(response.status, 200);
    assert_eq!(response.body, bob.user);
    let raw = alice
        .client
        .raw(
            missive_client::Method::GET,
            &format!("/users?phoneNumber=%2B{}", &BOB[1..]),
            None,
            None,
        )
        .await
        .expect("the server answers");
    assert_eq!(raw.status, 200, "body: {}", raw.body);
    let body = raw.json().expect("JSON");
    assert_keys(&body, USER_KEYS);
    assert!(
        body.get("token").is_none(),
        "a lookup never reveals a token"
    );
}

#[tokio::test]
async fn looking_up_an_unknown_number_returns_404_user_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    assert_error(alice.client.lookup_user(CAROL).await, 404, "user_not_found");
}

#[tokio::test]
async fn looking_up_an_invalid_number_returns_400_invalid_phone_number() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    assert_error(
        alice.client.lookup_user("nope").await,
        400,
        "invalid_phone_number",
    );
}

#[tokio::test]
async fn looking_up_without_a_token_returns_401_even_from_loopback() {
    let app = spawn_app().await;
    app.register(BOB).await;

    assert_error(app.client.lookup_user(BOB).await, 401, "unauthorized");
    assert_error(
        app.client.with_token("not-a-token").lookup_user(BOB).await,
        401,
        "unauthorized",
    );
}
