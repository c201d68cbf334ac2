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
async fn readyz_reports_the_store_and_a_local_bus_without_redis() {
    let app = spawn_app().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status, 200);
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "store": "ok", "bus": "local"})
    );
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
