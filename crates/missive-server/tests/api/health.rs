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

#[tokio::test]
async fn every_response_carries_a_request_id_the_clients_own_when_it_sent_one() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/healthz", app.address);

    let mine = http
        .get(&url)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("answers");
    let made = http.get(&url).send().await.expect("answers");
    let unknown = http
        .get(format!("http://{}/nope", app.address))
        .send()
        .await
        .expect("answers");

    assert_eq!(mine.headers()["x-request-id"], "trace-me-42");
    let made_id = made.headers()["x-request-id"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(made_id).is_ok(), "{made_id}");
    assert!(unknown.headers().contains_key("x-request-id"), "404s too");
}
