//! Login on a new device by one-time code (README, "Authentication"): `POST /sessions`
//! hands a 6-digit code to the SMS gateway (`OTP_WEBHOOK_URL`, here a
//! stand-in on 127.0.0.1), `POST /sessions/verify` trades it for a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_server::security::ManualClock;
use serde_json::json;

use crate::auth_helpers::{GatewayMode, SmsGateway, assert_rate_limited, login, wrong_code};
use crate::helpers::{
    ALICE, BOB, CAROL, TestApp, USER_KEYS, assert_error, assert_keys, spawn_app_with,
    spawn_app_with_clock,
};

/// An app whose login codes go to `gateway`.
async fn app_with(gateway: &SmsGateway) -> TestApp {
    let url = gateway.url.clone();
    spawn_app_with(move |config| config.otp_webhook_url = Some(url)).await
}

/// Asks for a code for `phone` and returns what the gateway received.
async fn request_code(app: &TestApp, gateway: &SmsGateway, phone: &str) -> String {
    let sent = app.client.login(phone).await.expect("the code is sent");
    assert_eq!(sent.status, 202);
    gateway.last_code(phone)
}

/// `POST /sessions/verify` as raw JSON (to read `Retry-After`).
async fn verify_raw(app: &TestApp, phone: &str, code: &str) -> missive_client::RawResponse {
    app.post_json(
        "/sessions/verify",
        &json!({ "phoneNumber": phone, "code": code }),
    )
    .await
}

#[tokio::test]
async fn requesting_a_code_returns_202_code_sent_and_posts_six_digits_to_the_gateway() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;

    let raw = app
        .post_json("/sessions", &json!({ "phoneNumber": ALICE }))
        .await;

    assert_eq!(raw.status, 202, "body: {}", raw.body);
    assert_eq!(raw.json().expect("JSON"), json!({ "status": "code_sent" }));
    assert_eq!(gateway.posts().len(), 1);
    gateway.last_code(ALICE);
}

#[tokio::test]
async fn requesting_a_code_for_an_unknown_number_returns_404_and_sends_nothing() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;

    assert_error(app.client.login(ALICE).await, 404, "user_not_found");
    assert!(gateway.posts().is_empty(), "{:?}", gateway.posts());
}

#[tokio::test]
async fn requesting_a_code_for_an_invalid_number_returns_400_and_sends_nothing() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;

    for bad in ["12345", "+12", "+1234567890123456", "phone", ""] {
        assert_error(app.client.login(bad).await, 400, "invalid_phone_number");
    }
    assert!(gateway.posts().is_empty(), "{:?}", gateway.posts());
}

#[tokio::test]
async fn verifying_the_right_code_returns_201_with_a_token_that_works_on_me() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    let (alice, _) = app.register(ALICE).await;
    let code = request_code(&app, &gateway, ALICE).await;

    let raw = verify_raw(&app, ALICE, &code).await;

    assert_eq!(raw.status, 201, "body: {}", raw.body);
    let body = raw.json().expect("JSON");
    assert_keys(&body, &["token", "user"]);
    assert_keys(&body["user"], USER_KEYS);
    assert_eq!(body["user"]["id"], alice.id.to_string());
    let token = body["token"].as_str().expect("the token is a string");
    let me = app
        .client
        .with_token(token)
        .me()
        .await
        .expect("the token works");
    assert_eq!(me.status, 200);
    assert_eq!(me.body, alice);
}

#[tokio::test]
async fn a_wrong_code_returns_401_invalid_code_and_the_right_one_still_works() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    let code = request_code(&app, &gateway, ALICE).await;

    assert_error(
        app.client.verify(ALICE, &wrong_code(&code)).await,
        401,
        "invalid_code",
    );
    for malformed in ["12345", "1234567", "abcdef", ""] {
        assert_error(
            app.client.verify(ALICE, malformed).await,
            401,
            "invalid_code",
        );
    }
    let session = app.client.verify(ALICE, &code).await.expect("still valid");
    assert_eq!(session.status, 201);
}

#[tokio::test]
async fn a_code_is_bound_to_its_number() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    app.register(BOB).await;
    let alices = request_code(&app, &gateway, ALICE).await;

    assert_error(app.client.verify(BOB, &alices).await, 401, "invalid_code");
    assert_error(app.client.verify(CAROL, &alices).await, 401, "invalid_code");
}

#[tokio::test]
async fn a_used_code_cannot_be_replayed() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    let code = request_code(&app, &gateway, ALICE).await;
    app.client.verify(ALICE, &code).await.expect("first use");

    assert_error(app.client.verify(ALICE, &code).await, 401, "invalid_code");
}

#[tokio::test]
async fn after_five_wrong_codes_every_try_gets_429_even_the_right_code() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    let code = request_code(&app, &gateway, ALICE).await;
    let wrong = wrong_code(&code);

    for attempt in 1..=5 {
        let raw = verify_raw(&app, ALICE, &wrong).await;
        assert_eq!(raw.status, 401, "wrong try {attempt}: {}", raw.body);
    }
    let sixth_wrong = verify_raw(&app, ALICE, &wrong).await;
    let right = verify_raw(&app, ALICE, &code).await;

    assert!(assert_rate_limited(&sixth_wrong) >= 1);
    assert!(assert_rate_limited(&right) >= 1);
}

#[tokio::test]
async fn a_new_code_replaces_a_burned_one_and_works() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    let first = request_code(&app, &gateway, ALICE).await;
    for _ in 0..5 {
        let raw = verify_raw(&app, ALICE, &wrong_code(&first)).await;
        assert_eq!(raw.status, 401, "body: {}", raw.body);
    }
    assert_rate_limited(&verify_raw(&app, ALICE, &first).await);

    let second = request_code(&app, &gateway, ALICE).await;

    if second != first {
        // The fresh code replaced the burned one (one chance in a million that they match).
        assert_error(app.client.verify(ALICE, &first).await, 401, "invalid_code");
    }
    let session = app
        .client
        .verify(ALICE, &second)
        .await
        .expect("the fresh code works");
    assert_eq!(session.status, 201);
    assert_eq!(gateway.posts().len(), 2);
}

#[tokio::test]
async fn a_code_is_valid_for_five_minutes_and_then_returns_401_invalid_code() {
    let gateway = SmsGateway::start().await;
    let clock = Arc::new(ManualClock::new());
    let url = gateway.url.clone();
    let app = spawn_app_with_clock(
        move |config| config.otp_webhook_url = Some(url),
        clock.clone(),
    )
    .await;
    app.register(ALICE).await;

    let code = request_code(&app, &gateway, ALICE).await;
    clock.advance(Duration::from_secs(5 * 60 - 1));
    let in_time = app.client.verify(ALICE, &code).await;

    let code = request_code(&app, &gateway, ALICE).await;
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let too_late = app.client.verify(ALICE, &code).await;

    assert_eq!(in_time.expect("valid after 4:59").status, 201);
    assert_error(too_late, 401, "invalid_code");
}

#[tokio::test]
async fn a_gateway_answering_500_gives_502_code_delivery_failed_and_issues_no_code() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    gateway.set_mode(GatewayMode::Fail);

    assert_error(app.client.login(ALICE).await, 502, "code_delivery_failed");

    let undelivered = gateway.last_code(ALICE);
    assert_error(
        app.client.verify(ALICE, &undelivered).await,
        401,
        "invalid_code",
    );
    gateway.set_mode(GatewayMode::Deliver);
    let session = login(&app.client, &gateway, ALICE).await;
    assert_eq!(session.user.phone_number, ALICE);
}

#[tokio::test]
async fn a_hanging_gateway_gives_502_within_the_webhook_timeout() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;
    gateway.set_mode(GatewayMode::Hang);

    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(15), app.client.login(ALICE))
        .await
        .expect("the server answers despite the hanging gateway");
    let took = start.elapsed();

    assert_error(answer, 502, "code_delivery_failed");
    assert!(
        took < Duration::from_secs(10),
        "the webhook timeout is about 5 s, the answer took {took:?}"
    );
    let undelivered = gateway.last_code(ALICE);
    assert_error(
        app.client.verify(ALICE, &undelivered).await,
        401,
        "invalid_code",
    );
}

#[tokio::test]
async fn verifying_without_a_pending_code_returns_401_invalid_code() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    app.register(ALICE).await;

    assert_error(
        app.client.verify(ALICE, "123456").await,
        401,
        "invalid_code",
    );
    assert_error(app.client.verify(BOB, "123456").await, 401, "invalid_code");
}

#[tokio::test]
async fn a_number_with_surrounding_whitespace_is_trimmed_for_login() {
    let gateway = SmsGateway::start().await;
    let app = app_with(&gateway).await;
    let (alice, _) = app.register(ALICE).await;

    let sent = app
        .client
        .login(&format!("  {ALICE} "))
        .await
        .expect("sent");
    let code = gateway.last_code(ALICE);
    let session = app
        .client
        .verify(&format!(" {ALICE}\t"), &code)
        .await
        .expect("verified");

    assert_eq!(sent.status, 202);
    assert_eq!(session.body.user, alice);
}
