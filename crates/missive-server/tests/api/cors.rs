//! CORS for the REST API (`CORS_ORIGINS`, docs/operations.md "Deploy"):
//! browsers on the listed origins may call it; other origins get no
//! `Access-Control-Allow-Origin` (so the browser blocks the answer), and
//! without `CORS_ORIGINS` no CORS header is served at all.

use reqwest::Method;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const ALLOWED: &str = "https://chat.example.com";

async fn spawn_with_cors() -> TestApp {
    spawn_app_with(|config| {
        config.cors_origins = vec![ALLOWED.to_owned(), "http://localhost:3000".to_owned()];
    })
    .await
}

/// A browser's preflight of `POST /messages` with a JSON body and a token.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("http://{}/messages", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-request-id",
        )
        .send()
        .await
        .expect("the server answers")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

fn listed(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_204_with_the_cors_headers() {
    let app = spawn_with_cors().await;

    let response = preflight(&app, ALLOWED).await;

    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let methods = listed(header(&response, "access-control-allow-methods"));
    for method in ["get", "post", "delete"] {
        assert!(methods.contains(&method.to_owned()), "{methods:?}");
    }
    let headers = listed(header(&response, "access-control-allow-headers"));
    for name in ["authorization", "content-type", "x-request-id"] {
        assert!(headers.contains(&name.to_owned()), "{headers:?}");
    }
    assert!(header(&response, "access-control-max-age").is_some());
    assert!(
        response.text().await.expect("a body").is_empty(),
        "no content"
    );
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_allow_origin_header() {
    let app = spawn_with_cors().await;

    let response = preflight(&app, "https://evil.example.net").await;

    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_simple_get_from_an_allowed_origin_may_read_the_answer_and_its_request_id() {
    let app = spawn_with_cors().await;
    let http = reqwest::Client::new();

    let allowed = http
        .get(format!("http://{}/healthz", app.address))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("the server answers");
    let other = http
        .get(format!("http://{}/healthz", app.address))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .expect("the server answers");

    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert!(
        listed(header(&allowed, "access-control-expose-headers"))
            .contains(&"x-request-id".to_owned())
    );
    assert!(header(&allowed, "x-request-id").is_some());
    // The server still answers (CORS is enforced by browsers), without the header.
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_cors_origins_no_cors_header_is_served() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();

    let get = http
        .get(format!("http://{}/healthz", app.address))
        .header("origin", ALLOWED)
        .send()
        .await
        .expect("the server answers");
    let options = preflight(&app, ALLOWED).await;

    for response in [&get, &options] {
        let cors: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{cors:?}");
    }
    assert_eq!(get.status(), 200);
    // No preflight handling: OPTIONS is not a method of the API.
    assert_eq!(options.status(), 405);
}
