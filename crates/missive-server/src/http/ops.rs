//! Operations endpoints (liveness, readiness, metrics) and the embedded
//! static pages: the web client, the OpenAPI document and its docs page.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .route("/", get(index))
}

/// GET /: the web client.
async fn index() -> Html<&'static str> {
    Html(include_str!("../../../../web/index.html"))
}

/// GET /docs: the API docs page (renders /openapi.json; no external assets).
async fn docs() -> Html<&'static str> {
    Html(include_str!("../../../../web/docs.html"))
}

/// GET /openapi.json: the OpenAPI 3.1 document.
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../../../web/openapi.json"),
    )
}

/// GET /metrics: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.metrics.render(state.gateway.registry.connections());
    body.push_str(&crate::bus::render_metrics(state.bus.as_ref()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// GET /healthz: 200 while the process runs.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// GET /readyz: 200 when the database answers, else 503. The bus is only
/// reported: while Redis is down the node still serves (same-node delivery,
/// other nodes catch up from the store later).
async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .service
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(format!("readiness: {e}")))?;
    let bus = state.bus.health().as_str();
    Ok((
        StatusCode::OK,
        Json(json!({"status": "ready", "store": "ok", "bus": bus})),
    ))
}
