//! Login limits per phone number, whatever the client address: 3 codes per
//! 10 minutes and 10 per day; 10 wrong guesses per hour, which a new code
//! does not reset. Over them: 429 `rate_limited` with `Retry-After`.
//! `AUTH_RATE_LIMIT=0` turns them off (the suite's default), so these tests
//! turn it on, high enough that the per-address limit stays out of the way.
//! Across nodes (Redis): `cluster::login_limits_per_number_hold_across_nodes`.

use std::sync::Arc;
use std::time::Duration;

use missive_server::security::ManualClock;
use serde_json::json;

use crate::auth_helpers::{SmsGateway, assert_rate_limited, wrong_code};
use crate::helpers::{ALICE, BOB, TestApp, spawn_app_with, spawn_app_with_clock};

/// An app with the login limits on, codes going to `gateway`, time from `clock`.
async fn limited_app(gateway: &SmsGateway, clock: Arc<ManualClock>) -> TestApp {
    let url = gateway.url.clone();
    spawn_app_with_clock(
        move |config| {
            config.otp_webhook_url = Some(url);
            config.auth_rate_limit = 1_000;
        },
        clock,
    )
    .await
}

async fn ask_code(app: &TestApp, phone: &str) -> missive_client::RawResponse {
    app.post_json("/sessions", &json!({ "phoneNumber": phone }))
        .await
}

async fn verify(app: &TestApp, phone: &str, code: &str) -> missive_client::RawResponse {
    app.post_json(
        "/sessions/verify",
        &json!({ "phoneNumber": phone, "code": code }),
    )
    .await
}

#[tokio::test]
async fn a_number_gets_three_codes_per_ten_minutes_and_ten_per_day() {
    let gateway = SmsGateway::start().await;
    let clock = Arc::new(ManualClock::new());
    let app = limited_app(&gateway, clock.clone()).await;
    app.register(ALICE).await;
    app.register(BOB).await;

    for _ in 0..3 {
        assert_eq!(ask_code(&app, ALICE).await.status, 202);
    }
    let fourth = ask_code(&app, ALICE).await;
    let wait = assert_rate_limited(&fourth);
    assert!((590..=600).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        ask_code(&app, BOB).await.status,
        202,
        "another number is not affected"
    );
    assert_eq!(
        gateway.posts().len(),
        4,
        "no code was sent for the refused request"
    );

    // Ten minutes on, three more; and so on until the day's ten are used.
    let mut issued = 3;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(600));
        for _ in 0..3 {
            if ask_code(&app, ALICE).await.status == 202 {
                issued += 1;
            }
        }
    }
    assert_eq!(issued, 10);
    clock.advance(Duration::from_secs(600));
    let over_the_day = ask_code(&app, ALICE).await;
    assert!(assert_rate_limited(&over_the_day) > 600, "the day's limit");
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
}

#[tokio::test]
async fn ten_wrong_guesses_an_hour_lock_the_number_even_across_new_codes() {
    let gateway = SmsGateway::start().await;
    let clock = Arc::new(ManualClock::new());
    let app = limited_app(&gateway, clock.clone()).await;
    app.register(ALICE).await;

    // Two codes, five wrong guesses each (each code is burned after five).
    for _ in 0..2 {
        assert_eq!(ask_code(&app, ALICE).await.status, 202);
        let code = gateway.last_code(ALICE);
        for _ in 0..5 {
            assert_eq!(verify(&app, ALICE, &wrong_code(&code)).await.status, 401);
        }
    }
    // A third, fresh code: the number's budget is spent, so even the right
    // code is refused, with a Retry-After of up to an hour.
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
    let code = gateway.last_code(ALICE);
    let right = verify(&app, ALICE, &code).await;
    let wait = assert_rate_limited(&right);
    assert!((3590..=3600).contains(&wait), "Retry-After {wait}");
    assert!(right.body.contains("wrong codes"), "{}", right.body);

    // An hour on, a new code works.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
    let code = gateway.last_code(ALICE);
    assert_eq!(verify(&app, ALICE, &code).await.status, 201);
}

#[tokio::test]
async fn right_codes_do_not_use_up_the_guess_budget() {
    let gateway = SmsGateway::start().await;
    let app = limited_app(&gateway, Arc::new(ManualClock::new())).await;
    app.register(ALICE).await;

    // Nine wrong guesses over two codes, then two right ones: were right
    // guesses counted, the last would be the eleventh and refused.
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
    let first = gateway.last_code(ALICE);
    for _ in 0..5 {
        assert_eq!(verify(&app, ALICE, &wrong_code(&first)).await.status, 401);
    }
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
    let second = gateway.last_code(ALICE);
    for _ in 0..4 {
        assert_eq!(verify(&app, ALICE, &wrong_code(&second)).await.status, 401);
    }
    assert_eq!(verify(&app, ALICE, &second).await.status, 201);
    assert_eq!(ask_code(&app, ALICE).await.status, 202);
    let third = gateway.last_code(ALICE);
    assert_eq!(verify(&app, ALICE, &third).await.status, 201);
    // The tenth wrong guess is still allowed; the eleventh is not.
    assert_eq!(verify(&app, ALICE, "000000").await.status, 401);
    assert_rate_limited(&verify(&app, ALICE, "000000").await);
}

#[tokio::test]
async fn auth_rate_limit_zero_turns_the_per_number_limits_off() {
    let gateway = SmsGateway::start().await;
    let url = gateway.url.clone();
    let app = spawn_app_with(move |config| {
        config.otp_webhook_url = Some(url);
        config.auth_rate_limit = 0;
    })
    .await;
    app.register(ALICE).await;

    for _ in 0..12 {
        assert_eq!(ask_code(&app, ALICE).await.status, 202);
        let code = gateway.last_code(ALICE);
        assert_eq!(verify(&app, ALICE, &wrong_code(&code)).await.status, 401);
    }
    let code = gateway.last_code(ALICE);
    assert_eq!(verify(&app, ALICE, &code).await.status, 201);
}
