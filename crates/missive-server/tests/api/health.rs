//! `GET /healthz`, `GET /readyz`, and stopping the application.

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_returns_200() {
    let app = spawn_app().await;

    let response = app.client.healthz().await.expect("healthy");

    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn readyz_returns_200_when_the_database_answers() {
    let app = spawn_app().await;

    let response = app.client.readyz().await.expect("ready");

    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn the_server_returns_once_shutdown_is_signalled() {
    let app = spawn_app().await;
    app.client.healthz().await.expect("healthy");
    let client = app.client.clone();

    app.stop().await.expect("a clean stop");

    assert!(
        client.healthz().await.is_err(),
        "nothing listens after the stop"
    );
}
