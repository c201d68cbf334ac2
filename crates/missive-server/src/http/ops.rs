//! Operations endpoints (liveness, readiness, metrics) and the embedded
//! static pages: the web client, the OpenAPI document and its docs page.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use missive_protocol::ErrorBody;

use super::error::InternalCause;
use super::openapi::Health;
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

/// The web client
///
/// A self-contained browser chat client.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "webClient",
    tag = "web",
    responses((status = 200, description = "HTML page.", body = String, content_type = "text/html")),
    security(())
)]
pub(crate) async fn index() -> Html<&'static str> {
    Html(include_str!("../../../../web/index.html"))
}

/// API documentation page
///
/// A self-contained page rendering this document; it loads nothing from the
/// internet.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "web",
    responses((status = 200, description = "HTML page.", body = String, content_type = "text/html")),
    security(())
)]
pub(crate) async fn docs() -> Html<&'static str> {
    Html(include_str!("../../../../web/docs.html"))
}

/// This OpenAPI document
///
/// The OpenAPI 3.1 document, generated from the code when the server starts
/// (a copy is checked in as `web/openapi.json`).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "web",
    responses((status = 200, description = "The document.", body = Object, content_type = "application/json")),
    security(())
)]
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::json(),
    )
}

/// Prometheus metrics
///
/// Prometheus text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    responses((status = 200, description = "Metrics.", body = String, content_type = "text/plain")),
    security(())
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.metrics.render(state.gateway.registry.connections());
    body.push_str(&crate::bus::render_metrics(state.bus.as_ref()));
    if let Some(push) = &state.push {
        body.push_str(&push.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Liveness
///
/// 200 whenever the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses((status = 200, description = "The process runs.", body = Health, example = json!({"status": "ok"}))),
    security(())
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness
///
/// 200 when the database answers (a real write is probed), else 503. `bus`
/// reports the fan-out: `local` (one node), `ok` (Redis connected) or `down`
/// (Redis unreachable: the node still serves; other nodes catch up from the
/// database once it is back).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready.", body = Health, example = json!({"status": "ready", "store": "ok", "bus": "local"})),
        (status = 503, description = "`unavailable`: writes do not commit (database down, disk full, corrupt). The body is the error body plus the readiness fields.", body = ErrorBody, example = json!({"status": "unavailable", "store": "down", "bus": "local", "code": "unavailable", "message": "the store cannot commit writes"})),
    ),
    security(())
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let bus = state.bus.health().as_str();
    match state.service.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "store": "ok", "bus": bus})),
        )
            .into_response(),
        Err(e) => {
            // The readiness fields and the API's error body in one object;
            // the cause goes to the request log only.
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "store": "down",
                    "bus": bus,
                    "code": "unavailable",
                    "message": "the store cannot commit writes",
                })),
            )
                .into_response();
            response
                .extensions_mut()
                .insert(InternalCause(format!("readiness: {e}")));
            response
        }
    }
}
