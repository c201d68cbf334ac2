//! The AsyncAPI 3.1 document of the WebSocket at `GET /ws`, generated from
//! the same code as the OpenAPI document: every variant of `ServerFrame`
//! and `ClientFrame` (and the sandbox `LegacySendFrame`) becomes one
//! message whose payload is that variant's JSON Schema, and the schemas they
//! reference come along. Served at `GET /asyncapi.json` and rendered by
//! `/docs/websocket`; `web/asyncapi.json` is a checked-in copy that a test
//! keeps in sync (`make openapi` rewrites both).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// What the document says about the connection as a whole.
const DESCRIPTION: &str = "The real-time side of missive: one WebSocket per device at `GET /ws`, \
text frames carrying one JSON object each, discriminated by `type`.

**Connecting.** Authenticate with `?token=` (or an `Authorization: Bearer` header), or with a \
claimed `?userID=` where `AUTH_MODE` allows it. The first frame is always `ready`. Browsers may \
connect only from the server's own origin or one listed in `CORS_ORIGINS` (another `Origin` is 403).

**Durable events and resume.** `message` and `receipt` frames carry a `cursor`. A client that \
reconnects with `?since=<the last cursor it processed>` first receives, in order, every durable \
event it missed (across restarts and nodes), then live events. A duplicate is possible only around \
the resume point and carries the same message `id`: dedupe by id. `typing` is ephemeral and never \
replayed. Events older than `EVENT_RETENTION` may be pruned: a resume from before what is kept \
gets `resync` right after `ready`; the client re-lists its chats and messages over REST and \
continues from that frame's cursor. Events are never skipped silently.

**Sending.** A `send` frame is answered by `ack` (after the commit: the message is durable) or \
`error`, both echoing its `ref`. A frame the server cannot process gets an `error` frame and the \
connection stays open; a frame over 64 KiB gets `frame_too_large`.

**Flow control and shutdown.** Every open connection of a user receives the user's events. A \
client that does not read its socket is disconnected once its outbound queue (1,024 events) is \
full, with close code 1013 (or by dropping the TCP connection when its socket buffer is full too); \
it then resumes. A revoked token closes its connections with 1008. At shutdown the server closes \
with 1001.";

/// Builds the document from the OpenAPI components.
fn build() -> Value {
    // The OpenAPI document as served: one generation, one source of schemas.
    let openapi: Value = serde_json::from_str(super::openapi::json()).unwrap_or_default();
    let schemas = &openapi["components"]["schemas"];

    let mut messages = Map::new();
    let mut server_refs = Vec::new();
    let mut client_refs = Vec::new();
    for (union, prefix, direction, refs) in [
        ("ServerFrame", "server", "server → client", &mut server_refs),
        ("ClientFrame", "client", "client → server", &mut client_refs),
    ] {
        for variant in schemas[union]["oneOf"].as_array().into_iter().flatten() {
            let Some(kind) = variant["properties"]["type"]["enum"][0].as_str() else {
                continue;
            };
            let key = format!("{prefix}.{kind}");
            messages.insert(key.clone(), message(&key, kind, direction, variant));
            refs.push(json!({"$ref": format!("#/channels/ws/messages/{key}")}));
        }
    }
    let legacy = &schemas["LegacySendFrame"];
    messages.insert(
        "client.legacySend".into(),
        message("client.legacySend", "legacySend", "client → server", legacy),
    );
    client_refs.push(json!({"$ref": "#/channels/ws/messages/client.legacySend"}));

    // Only the schemas the frames need, found by following `$ref`s.
    let mut needed = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    collect_refs(&Value::Object(messages.clone()), &mut pending);
    while let Some(name) = pending.pop() {
        if needed.insert(name.clone()) {
            collect_refs(&schemas[&name], &mut pending);
        }
    }
    let components_schemas: Map<String, Value> = needed
        .into_iter()
        .map(|name| {
            let schema = schemas[&name].clone();
            (name, schema)
        })
        .collect();

    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|key| {
            (
                key.clone(),
                json!({"$ref": format!("#/components/messages/{key}")}),
            )
        })
        .collect();

    json!({
        "asyncapi": "3.1.0",
        "id": "urn:missive:websocket",
        "info": {
            "title": "missive WebSocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8080",
                "protocol": "ws",
                "description": "The server that serves this document (`wss` behind TLS).",
            }
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "The user's live connection",
                "description": "One per device; every connection of a user receives the user's events.",
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "query": query_schema(&openapi)}},
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "send",
                "title": "Events the server sends",
                "summary": "`ready` first, then durable `message`/`receipt` events (replayed from `since=`), \
                            ephemeral `typing`, and answers (`ack`, `error`, `pong`).",
                "channel": {"$ref": "#/channels/ws"},
                "messages": server_refs,
            },
            "sendFrames": {
                "action": "receive",
                "title": "Frames a client sends",
                "summary": "`send`, `receipt`, `typing`, `ping`, and the sandbox frame.",
                "channel": {"$ref": "#/channels/ws"},
                "messages": client_refs,
            },
        },
        "components": {
            "messages": messages,
            "schemas": components_schemas,
        },
    })
}

/// One frame as an AsyncAPI message whose payload is the frame's schema.
fn message(key: &str, kind: &str, direction: &str, payload: &Value) -> Value {
    let mut message = json!({
        "name": kind,
        "title": format!("{kind} ({direction})"),
        "contentType": "application/json",
        "payload": payload,
    });
    if let Some(summary) = payload["description"].as_str() {
        message["summary"] = Value::String(summary.replace('\n', " "));
    }
    if let Some(example) = example(key) {
        message["examples"] = json!([{"name": kind, "payload": example}]);
    }
    message
}

/// A realistic example of each frame (a test checks each against its schema).
fn example(key: &str) -> Option<Value> {
    const CHAT: &str = "0193b6a2-7c1e-7a4b-9d2f-1c2b3a4d5e6f";
    const MESSAGE: &str = "0193b6a2-8d01-7c3e-b1a4-5e6f7a8b9c0d";
    let user = json!({
        "id": "0193b6a2-6b0d-7f1a-8c3e-2d4f6a8b0c1e",
        "phoneNumber": "+15550000002",
        "displayName": "Bob",
        "createdAt": "2026-01-01T12:00:00.000Z",
    });
    let message = json!({
        "id": MESSAGE,
        "chatId": CHAT,
        "seq": 7,
        "sender": "+15550000001",
        "content": "Hello Bob!",
        "clientMessageId": "c-42",
        "createdAt": "2026-01-01T12:00:01.234Z",
        "status": "sent",
    });
    Some(match key {
        "server.ready" => json!({"type": "ready", "user": user, "cursor": "41"}),
        "server.message" => json!({"type": "message", "message": message, "cursor": "42"}),
        "server.receipt" => json!({
            "type": "receipt", "chatId": CHAT, "messageId": MESSAGE, "status": "read",
            "user": "+15550000002", "at": "2026-01-01T12:00:05.000Z", "cursor": "43",
        }),
        "server.typing" => {
            json!({"type": "typing", "chatId": CHAT, "user": "+15550000002", "isTyping": true})
        }
        "server.ack" => json!({"type": "ack", "ref": "r-1", "message": message}),
        "server.error" => json!({
            "type": "error", "ref": "r-2", "code": "chat_not_found",
            "message": "no such chat, or you are not in it",
        }),
        "server.pong" => json!({"type": "pong"}),
        "server.resync" => json!({"type": "resync", "cursor": "1041"}),
        "client.send" => json!({
            "type": "send", "ref": "r-1", "chatId": CHAT, "content": "Hello Bob!",
            "clientMessageId": "c-42",
        }),
        "client.receipt" => {
            json!({"type": "receipt", "chatId": CHAT, "messageId": MESSAGE, "status": "read"})
        }
        "client.typing" => json!({"type": "typing", "chatId": CHAT, "isTyping": true}),
        "client.ping" => json!({"type": "ping"}),
        "client.legacySend" => {
            json!({"From": "+15550000001", "To": "+15550000002", "Content": "Hello Bob!"})
        }
        _ => return None,
    })
}

/// The query parameters of `GET /ws`, from the OpenAPI operation.
fn query_schema(openapi: &Value) -> Value {
    let mut properties = Map::new();
    for parameter in openapi["paths"]["/ws"]["get"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
    {
        let mut schema = parameter["schema"].clone();
        schema["description"] = parameter["description"].clone();
        if let Some(example) = parameter.get("example") {
            schema["examples"] = json!([example]);
        }
        if let Some(name) = parameter["name"].as_str() {
            properties.insert(name.to_owned(), schema);
        }
    }
    json!({"type": "object", "properties": properties})
}

/// Pushes the schema names of every `#/components/schemas/…` reference in
/// `value`.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The document, built once, as pretty-printed JSON.
static JSON: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&build()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the AsyncAPI document does not serialize");
        "{}".to_owned()
    })
});

/// The AsyncAPI document served at `GET /asyncapi.json`.
pub fn json() -> &'static str {
    &JSON
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_is_a_message_with_its_schema_and_references_resolve() {
        let doc = build();
        let messages = doc["components"]["messages"].as_object().expect("present");
        for key in [
            "server.ready",
            "server.message",
            "server.receipt",
            "server.typing",
            "server.ack",
            "server.error",
            "server.pong",
            "server.resync",
            "client.send",
            "client.receipt",
            "client.typing",
            "client.ping",
            "client.legacySend",
        ] {
            assert!(messages.contains_key(key), "{key} is described");
        }
        assert_eq!(
            doc["components"]["messages"]["server.ready"]["payload"]["properties"]["type"]["enum"]
                [0],
            "ready"
        );
        // Every schema a frame references is in the document.
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.contains(&"User".to_owned()));
        for name in refs {
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "{name} is referenced but missing"
            );
        }
        let query = &doc["channels"]["ws"]["bindings"]["ws"]["query"]["properties"];
        for name in ["token", "userID", "since"] {
            assert!(query.get(name).is_some(), "query parameter {name}");
        }
    }
}
