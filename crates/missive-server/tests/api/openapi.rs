//! `GET /openapi.json`: the document generated from the code is what the
//! checked-in `web/openapi.json` says, and it keeps the API's conventions
//! (every error answer is an `ErrorBody`, 429 carries `Retry-After`, lists
//! carry `Link`).

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::spawn_app;

/// The checked-in copy of the document.
fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json")
}

/// The document as the server serves it.
async fn served() -> String {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers["content-type"], "application/json",
        "served as JSON"
    );
    response.body
}

#[tokio::test]
async fn openapi_served_document_matches_the_checked_in_copy() {
    let served = served().await;
    let path = checked_in_path();
    if std::env::var_os("MISSIVE_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, format!("{}\n", served.trim_end())).expect("writes web/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served.trim_end() == checked_in.trim_end(),
        "web/openapi.json differs from the document the server generates.\n\
         Regenerate it with `make openapi` (or \
         `MISSIVE_UPDATE_OPENAPI=1 cargo test -p missive-server --test api openapi`) \
         and commit the result."
    );
}

#[tokio::test]
async fn openapi_document_keeps_the_api_conventions() {
    let doc: Value = serde_json::from_str(&served().await).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "missive");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["info"]["license"]["identifier"], "MIT");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    let paths = doc["paths"].as_object().expect("paths");
    for route in [
        "/register",
        "/users",
        "/sessions",
        "/sessions/verify",
        "/sessions/current",
        "/me",
        "/chats",
        "/chats/{chatId}",
        "/chats/{chatId}/messages",
        "/chats/{chatId}/status",
        "/chats/{chatId}/typing",
        "/message",
        "/messages",
        "/ws",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/",
    ] {
        assert!(paths.contains_key(route), "{route} is documented");
    }
    for (route, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let label = format!("{} {route}", method.to_uppercase());
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{label} {status} answers an ErrorBody"
                    );
                }
                if status == "429" {
                    assert!(
                        response["headers"].get("Retry-After").is_some(),
                        "{label} 429 has Retry-After"
                    );
                }
            }
        }
    }
    for route in ["/chats", "/chats/{chatId}/messages"] {
        assert!(
            paths[route]["get"]["responses"]["200"]["headers"]
                .get("Link")
                .is_some(),
            "GET {route} documents Link"
        );
    }
    let send = &paths["/messages"]["post"]["responses"];
    assert!(send.get("409").is_some(), "POST /messages documents 409");
}
