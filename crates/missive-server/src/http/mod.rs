//! The REST API: one module per resource, each with its own `router()`, and
//! the cross-cutting pieces (errors, extractors, identity, pagination, the
//! request log).

pub mod asyncapi;
pub mod auth;
pub mod bodies;
pub mod chats;
pub mod error;
pub mod extract;
pub mod messages;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod sessions;
pub mod users;
pub mod ws;

use std::time::Instant;

use axum::Router;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

use self::error::{ApiError, InternalCause};
use crate::metrics::{HttpLabels, Metrics, Route, method_label};
use crate::service::ErrorCode;
use crate::state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .merge(users::router())
        .merge(sessions::router())
        .merge(chats::router())
        .merge(messages::router())
        .merge(ops::router())
        .merge(ws::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_headers));
    // Browsers on the CORS_ORIGINS may call the API; without any, no CORS
    // headers at all (a browser then allows only the server's own pages).
    let router = match cors(&state.config.cors_origins) {
        Some(cors) => router
            .layer(cors)
            .layer(middleware::from_fn(preflight_no_content)),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            log_request,
        ))
        // Every request (and WebSocket upgrade) gets an id: the client's
        // `X-Request-Id`, or a fresh UUID; it is echoed in the response and
        // on every log line of the request.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The CORS layer for `origins` (exact origins), `None` when there are none.
/// A preflight from an allowed origin is answered here (200/204 with the
/// CORS headers); other origins get no `Access-Control-Allow-Origin`.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let request_id = HeaderName::from_static("x-request-id");
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                request_id.clone(),
            ])
            .expose_headers([request_id])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// A preflight's answer has no content: 204 rather than the CORS layer's 200.
async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight && response.status() == axum::http::StatusCode::OK {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}

async fn unknown_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// Largest total size of the request headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// 431 when the request headers are larger than [`MAX_HEADER_BYTES`], or
/// the whole head (request line and headers) larger than
/// [`crate::serve::MAX_READ_BUFFER`]: hyper's own check of the read buffer
/// is approximate (one read may bring in more than the buffer's bound, and
/// a head that arrived whole is then parsed), so a long URL is caught here.
/// The connection is closed after the answer, as after hyper's own 431.
async fn limit_headers(request: Request, next: Next) -> Response {
    let headers: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let uri = request.uri();
    // `METHOD <target> HTTP/1.1\r\n`
    let request_line = request.method().as_str().len()
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n ".len();
    let refusal = if headers > MAX_HEADER_BYTES {
        Some("the request headers are larger than 16 KiB")
    } else if request_line + headers + 2 > crate::serve::MAX_READ_BUFFER {
        Some("the request head (request line and headers) is larger than 32 KiB")
    } else {
        None
    };
    if let Some(message) = refusal {
        let mut response = ApiError::new(ErrorCode::HeadersTooLarge, message).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// One INFO line per request (method, path, status, latency); 5xx causes at
/// ERROR; the request's duration in the HTTP histogram of `/metrics`.
async fn log_request(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The route template, never the raw path: bounded label values.
    let route = Route::new(request.extensions().get::<MatchedPath>());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // The service records the authenticated user on this span (`user`).
    let span =
        tracing::info_span!("request", request_id = %request_id, user = tracing::field::Empty);
    let response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    let status = response.status().as_u16();
    metrics.http.request(
        &HttpLabels {
            method: method_label(&method),
            route,
            status,
        },
        started.elapsed(),
    );
    // Microsecond resolution, printed as a plain number of milliseconds.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, %path, status, latency_ms, cause = %cause, "request failed");
    } else {
        tracing::info!(%method, %path, status, latency_ms, "request");
    }
    response.into_response()
}
