//! Operations endpoints (liveness, readiness, metrics) and the embedded
//! static pages: the web client, the JavaScript SDK it imports, the OpenAPI
//! document and its docs page.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use missive_protocol::ErrorBody;

use super::bodies::Health;
use super::error::{ApiError, InternalCause};
use super::extract::ApiPath;
use crate::service::ErrorCode;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/asyncapi.json", get(asyncapi))
        .route("/docs", get(docs))
        .route("/docs/websocket", get(docs_websocket))
        .route("/docs/scalar.js", get(scalar))
        .route("/", get(index))
        .route("/sdk/{file}", get(sdk))
}

/// The ES modules of the TypeScript SDK (`clients/js/dist`, committed), by file name.
/// `missive.js` is the entry point; it imports the others relatively.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "missive.js",
        include_str!("../../../../clients/js/dist/missive.js"),
    ),
    (
        "client.js",
        include_str!("../../../../clients/js/dist/client.js"),
    ),
    (
        "live.js",
        include_str!("../../../../clients/js/dist/live.js"),
    ),
    (
        "errors.js",
        include_str!("../../../../clients/js/dist/errors.js"),
    ),
    (
        "emitter.js",
        include_str!("../../../../clients/js/dist/emitter.js"),
    ),
    (
        "types.js",
        include_str!("../../../../clients/js/dist/types.js"),
    ),
];

/// The JavaScript SDK
///
/// The ES modules of the TypeScript SDK `@missive/client` (the same code as
/// the npm package's `dist/`), which the web client imports:
/// `import { MissiveClient } from "/sdk/missive.js"`. The entry point is
/// `missive.js`; it imports its sibling modules by relative path.
#[utoipa::path(
    get,
    path = "/sdk/{file}",
    operation_id = "sdk",
    tag = "web",
    params(("file" = String, Path, description = "A module of the SDK: `missive.js` (the entry point), `client.js`, `live.js`, `errors.js`, `emitter.js` or `types.js`.", example = "missive.js")),
    responses(
        (status = 200, description = "The module.", body = String, content_type = "text/javascript"),
        (status = 404, description = "`not_found`: no such module.", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn sdk(ApiPath(file): ApiPath<String>) -> Result<Response, ApiError> {
    let (_, source) = SDK_FILES
        .iter()
        .find(|(name, _)| *name == file)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such SDK module"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Revalidated on every load, so a new server version never runs with an old SDK.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *source,
    )
        .into_response())
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
/// This document rendered by the vendored Scalar API reference, with
/// request examples and a "try it" client; it loads nothing from the
/// internet. Links to `/docs/websocket` for the WebSocket frames.
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

/// WebSocket documentation page
///
/// The frames of `GET /ws`, rendered from `/asyncapi.json`.
#[utoipa::path(
    get,
    path = "/docs/websocket",
    operation_id = "docsWebsocket",
    tag = "web",
    responses((status = 200, description = "HTML page.", body = String, content_type = "text/html")),
    security(())
)]
pub(crate) async fn docs_websocket() -> Html<&'static str> {
    Html(include_str!("../../../../web/docs-websocket.html"))
}

/// The docs page's script
///
/// The vendored Scalar API reference bundle (`web/vendor/scalar/`, MIT).
#[utoipa::path(
    get,
    path = "/docs/scalar.js",
    operation_id = "docsScript",
    tag = "web",
    responses((status = 200, description = "JavaScript.", body = String, content_type = "text/javascript")),
    security(())
)]
pub(crate) async fn scalar() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../../../web/vendor/scalar/standalone.js"),
    )
}

/// The WebSocket's AsyncAPI document
///
/// The AsyncAPI 3.1 document of `GET /ws`: one message per frame, each with
/// its JSON Schema, generated from the code (a copy is checked in as
/// `web/asyncapi.json`).
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    operation_id = "asyncapi",
    tag = "web",
    responses((status = 200, description = "The document.", body = Object, content_type = "application/json")),
    security(())
)]
pub(crate) async fn asyncapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::asyncapi::json(),
    )
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
/// Prometheus text exposition format (0.0.4); every metric is described in
/// the operator's guide.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    responses((status = 200, description = "Metrics.", body = String, content_type = "text/plain")),
    security(())
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.exporter.render(),
    )
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
