//! `GET /asyncapi.json` and the docs pages: the AsyncAPI document generated
//! from the code is what the checked-in `web/asyncapi.json` says, the frames
//! a real server sends and accepts match the schemas it publishes, and the
//! docs pages load nothing from another site.

use std::path::PathBuf;

use missive_client::protocol::{ClientFrame, MessageStatus};
use missive_client::ws::{Connection, WsQuery};
use serde_json::{Value, json};

use crate::helpers::{ALICE, BOB, spawn_app};
use crate::ws_helpers::{WAIT, open_as};

/// The checked-in copy of the document.
fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/asyncapi.json")
}

#[tokio::test]
async fn asyncapi_served_document_matches_the_checked_in_copy() {
    let app = spawn_app().await;
    let response = app.get("/asyncapi.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/json");
    let served = response.body;
    let path = checked_in_path();
    if std::env::var_os("MISSIVE_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, format!("{}\n", served.trim_end()))
            .expect("writes web/asyncapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served.trim_end() == checked_in.trim_end(),
        "web/asyncapi.json differs from the document the server generates.\n\
         Regenerate it with `make openapi` and commit the result."
    );
}

/// Validates frames against the payload schemas of the served document.
struct Frames {
    doc: Value,
}

impl Frames {
    /// What is wrong with `frame` against the payload of `message` (e.g.
    /// `server.ready`), whose `$ref`s resolve inside the document.
    fn errors(&self, message: &str, frame: &Value) -> Vec<String> {
        assert!(
            self.doc["components"]["messages"].get(message).is_some(),
            "{message} is described"
        );
        let schema = json!({
            "$ref": format!("#/components/messages/{message}/payload"),
            "components": self.doc["components"],
        });
        let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
        validator
            .iter_errors(frame)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }

    /// Asserts that `frame` is valid against the payload of `message`.
    fn assert_valid(&self, message: &str, frame: &Value) {
        let errors = self.errors(message, frame);
        assert!(
            errors.is_empty(),
            "{message} frame {frame} does not match its schema: {errors:?}"
        );
    }

    /// Asserts that `frame` is valid against the payload of the server frame
    /// named by its `type`.
    fn assert_server_frame(&self, frame: &Value) {
        let kind = frame["type"].as_str().expect("a type");
        self.assert_valid(&format!("server.{kind}"), frame);
    }

    /// Reads frames from `conn`, each checked against its schema, until one
    /// of every type in `kinds` has arrived.
    async fn until_seen(&self, conn: &mut Connection, kinds: &[&str]) {
        let mut missing: Vec<&str> = kinds.to_vec();
        while !missing.is_empty() {
            let frame = conn.next_json(WAIT).await.expect("a frame arrives");
            self.assert_server_frame(&frame);
            missing.retain(|kind| frame["type"] != *kind);
        }
    }
}

#[tokio::test]
async fn frames_a_real_server_sends_and_accepts_match_the_published_schemas() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(&app.get("/asyncapi.json").await.body).expect("JSON");
    assert_eq!(doc["asyncapi"], "3.1.0");
    let frames = Frames { doc };
    // Every example in the document is a valid frame.
    for (key, message) in frames.doc["components"]["messages"]
        .as_object()
        .expect("present")
    {
        let examples = message["examples"]
            .as_array()
            .expect("each frame has an example");
        for example in examples {
            frames.assert_valid(key, &example["payload"]);
        }
    }

    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;

    // `ready`, raw, as the server sends it.
    let mut raw = Connection::connect(bob.client.base_url().as_str(), &WsQuery::token(&bob.token))
        .await
        .expect("the upgrade succeeds");
    let ready = raw.next_json(WAIT).await.expect("ready");
    frames.assert_server_frame(&ready);
    // The schemas are strict enough to catch a broken frame.
    let mut broken = ready.clone();
    broken.as_object_mut().expect("an object").remove("cursor");
    assert!(!frames.errors("server.ready", &broken).is_empty());
    assert!(
        !frames
            .errors("client.receipt", &json!({"type": "receipt", "chatId": chat.id, "messageId": chat.id, "status": "sent"}))
            .is_empty(),
        "a receipt can only say delivered or read"
    );

    // Client frames as a client would write them are valid.
    let send = json!({"type": "send", "ref": "r1", "chatId": chat.id, "content": "hi", "clientMessageId": "c1"});
    frames.assert_valid("client.send", &send);
    frames.assert_valid("client.ping", &json!({"type": "ping"}));
    frames.assert_valid(
        "client.legacySend",
        &json!({"From": ALICE, "To": BOB, "Content": "hello"}),
    );
    let typed = serde_json::to_value(ClientFrame::Typing {
        chat_id: chat.id,
        is_typing: true,
    })
    .expect("serializes");
    frames.assert_valid("client.typing", &typed);

    // `ack` and `message` on Alice's side, `message` on Bob's.
    let mut alice_socket = open_as(&alice).await;
    alice_socket.send_text(&send.to_string()).await;
    frames
        .until_seen(&mut alice_socket.conn, &["ack", "message"])
        .await;
    let message = raw.next_json(WAIT).await.expect("the message");
    frames.assert_server_frame(&message);
    assert_eq!(message["type"], "message");

    // `receipt` (Bob marks it read) and `typing` reach Alice.
    let receipt = ClientFrame::Receipt {
        chat_id: chat.id,
        message_id: message["message"]["id"]
            .as_str()
            .expect("a message id")
            .parse()
            .expect("a UUID"),
        status: MessageStatus::Read,
    };
    frames.assert_valid(
        "client.receipt",
        &serde_json::to_value(&receipt).expect("serializes"),
    );
    raw.send_frame(&receipt).await.expect("sent");
    raw.send_frame(&ClientFrame::Typing {
        chat_id: chat.id,
        is_typing: true,
    })
    .await
    .expect("sent");
    frames
        .until_seen(&mut alice_socket.conn, &["receipt", "typing"])
        .await;

    // `pong` and `error`.
    raw.send_frame(&ClientFrame::Ping).await.expect("sent");
    let frame = raw.next_json(WAIT).await.expect("pong");
    frames.assert_server_frame(&frame);
    assert_eq!(frame["type"], "pong");
    raw.send_text(r#"{"type":"send","ref":"bad"}"#)
        .await
        .expect("sent");
    loop {
        let frame = raw.next_json(WAIT).await.expect("a frame");
        frames.assert_server_frame(&frame);
        if frame["type"] == "error" {
            assert_eq!(frame["ref"], "bad");
            break;
        }
    }
}

#[tokio::test]
async fn docs_pages_are_served_and_load_nothing_from_another_site() {
    let app = spawn_app().await;
    for (path, content_type, must_contain) in [
        ("/docs", "text/html; charset=utf-8", "/docs/scalar.js"),
        (
            "/docs/websocket",
            "text/html; charset=utf-8",
            "/asyncapi.json",
        ),
        (
            "/docs/scalar.js",
            "text/javascript; charset=utf-8",
            "createApiReference",
        ),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.headers["content-type"], content_type, "{path}");
        assert!(
            response.body.contains(must_contain),
            "{path} contains {must_contain}"
        );
        if content_type.starts_with("text/html") {
            for attribute in ["src=\"", "href=\""] {
                for value in response.body.split(attribute).skip(1) {
                    assert!(
                        value.starts_with('/') || value.starts_with('#'),
                        "{path} links only to this server: {attribute}{}",
                        &value[..value.len().min(60)]
                    );
                }
            }
        }
    }
}
