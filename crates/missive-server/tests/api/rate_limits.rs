//! Rate limits (the README and the OpenAPI document): 429 with `Retry-After` and the error body.
//! The rest of the suite runs with both limits at 0 (disabled).

use missive_client::RawResponse;
use serde_json::json;

use crate::helpers::{ALICE, BOB, spawn_app_with};

/// Asserts a 429 with a numeric `Retry-After` and a `{"code","message"}` body.
fn assert_rate_limited(raw: &RawResponse) {
    assert_eq!(raw.status, 429, "body: {}", raw.body);
    let retry_after = raw.header("retry-after").expect("a Retry-After header");
    retry_after
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {retry_after:?}"));
    let body = raw.error_body().expect("the error body");
    assert_eq!(body.code, "rate_limited");
    assert!(!body.message.is_empty());
}

#[tokio::test]
async fn sending_faster_than_the_send_rate_limit_returns_429_with_retry_after() {
    let app = spawn_app_with(|config| config.send_rate_limit = 1).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let body = json!({ "receiver": BOB, "content": "fast" }).to_string();

    let mut limited = None;
    for _ in 0..40 {
        let raw = alice
            .client
            .raw(
                missive_client::Method::POST,
                "/messages",
                Some(body.clone()),
                Some("application/json"),
            )
            .await
            .expect("the server answers");
        if raw.status != 201 {
            limited = Some(raw);
            break;
        }
    }

    let raw = limited.expect("40 sends at once exceed 1/s with a burst of 10");
    assert_rate_limited(&raw);
}

#[tokio::test]
async fn registering_faster_than_the_auth_rate_limit_returns_429_with_retry_after() {
    let app = spawn_app_with(|config| config.auth_rate_limit = 3).await;

    let mut limited = None;
    for i in 0..30 {
        let raw = app
            .post_json(
                "/register",
                &json!({ "phoneNumber": format!("+1666{i:07}") }),
            )
            .await;
        if raw.status != 201 {
            limited = Some(raw);
            break;
        }
    }

    let raw = limited.expect("30 registrations at once exceed 3 per minute");
    assert_rate_limited(&raw);
}

#[tokio::test]
async fn phone_lookups_past_the_lookup_rate_limit_get_429_and_other_users_go_on() {
    let app = spawn_app_with(|config| config.lookup_rate_limit = 3).await;
    let alice = app.user(ALICE).await;
    let carol = app.user(crate::helpers::CAROL).await;
    app.register(BOB).await;
    let lookup = |user: &crate::helpers::TestUser, phone: &str| {
        let client = user.client.clone();
        let path = format!("/users?phoneNumber={}", phone.replace('+', "%2B"));
        async move {
            client
                .raw(missive_client::Method::GET, &path, None, None)
                .await
                .expect("the server answers")
        }
    };
    // Found or not, every lookup counts: enumeration learns from both.
    assert_eq!(lookup(&alice, BOB).await.status, 200);
    assert_eq!(lookup(&alice, "+15550009999").await.status, 404);
    assert_eq!(lookup(&alice, BOB).await.status, 200);
    assert_rate_limited(&lookup(&alice, BOB).await);
    // Another user from the same address has a budget of its own.
    assert_eq!(lookup(&carol, BOB).await.status, 200);
}
