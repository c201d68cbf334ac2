//! `GET /sdk/{file}`: the TypeScript SDK's committed build (`clients/js/dist`)
//! is served as JavaScript modules, and the web client at `/` imports it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::helpers::{assert_raw_error, spawn_app};

/// The relative imports (`from "./x.js"`) of a module's source.
fn relative_imports(source: &str) -> Vec<String> {
    source
        .split("from \"./")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_web_client_imports_the_sdk_and_every_module_it_needs_is_served_as_javascript() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("from \"/sdk/missive.js\""),
        "the web client imports the SDK"
    );

    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/dist");
    let mut todo = vec!["missive.js".to_owned()];
    let mut served = BTreeSet::new();
    while let Some(file) = todo.pop() {
        if !served.insert(file.clone()) {
            continue;
        }
        let response = app.get(&format!("/sdk/{file}")).await;
        assert_eq!(response.status, 200, "/sdk/{file}");
        assert_eq!(
            response.headers["content-type"], "text/javascript; charset=utf-8",
            "/sdk/{file} is served as JavaScript (browsers refuse a module of another type)"
        );
        let committed = std::fs::read_to_string(dist.join(&file)).expect("the dist file exists");
        assert_eq!(
            response.body, committed,
            "/sdk/{file} is the committed build"
        );
        todo.extend(relative_imports(&response.body));
    }
    assert!(
        served.contains("live.js") && served.contains("client.js"),
        "the entry point pulls in the client and the live connection: {served:?}"
    );
}

#[tokio::test]
async fn an_unknown_sdk_module_is_a_json_404() {
    let app = spawn_app().await;
    for path in ["/sdk/nope.js", "/sdk/missive.d.ts", "/sdk/..%2FCargo.toml"] {
        let response = app.get(path).await;
        assert_raw_error(&response, 404, "not_found");
    }
}
