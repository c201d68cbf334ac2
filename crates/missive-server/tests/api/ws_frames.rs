//! Client frames over `GET /ws` (README, "WebSocket"): `send` (by chat and by phone,
//! idempotent), the sandbox frame, `ping`; bad frames get an `error` frame
//! and leave the connection usable; the upgrade's identity and `since` checks.

use missive_client::protocol::{ClientFrame, MessageStatus, ServerFrame};
use missive_client::ws::{WsError, WsQuery};
use missive_server::AuthMode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, CAROL, spawn_app, spawn_app_with};
use crate::ws_helpers::{Target, error_of, open, open_as, refused};

#[tokio::test]
async fn send_by_chat_id_is_acked_with_its_ref_and_the_stored_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    let first = alice_socket
        .send_message("ref-1", Target::Chat(chat.id), "one")
        .await;
    let second = alice_socket
        .send_message("ref-2", Target::Chat(chat.id), "two")
        .await;

    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.chat_id, chat.id);
    assert_eq!(first.sender, ALICE);
    assert_eq!(first.content, "one");
    assert_eq!(first.status, MessageStatus::Sent);
    let stored = alice.messages(chat.id, 10).await;
    assert_eq!(
        stored.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    assert_eq!(bob_socket.next_message().await.0.id, first.id);
    assert_eq!(bob_socket.next_message().await.0.id, second.id);
}

#[tokio::test]
async fn the_ack_frame_has_type_ref_and_message_on_the_wire() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut socket = open_as(&alice).await;

    socket
        .send(&ClientFrame::Send {
            reference: Some("wire".into()),
            chat_id: None,
            to: Some(BOB.into()),
            content: "hi".into(),
            client_message_id: None,
        })
        .await;

    // The connection also gets its own `message` event; the ack may come first or second.
    for _ in 0..2 {
        let frame = socket.next_json().await;
        if frame["type"] == "ack" {
            assert_eq!(frame["ref"], "wire");
            assert_eq!(frame["message"]["content"], "hi");
            assert!(frame["message"]["seq"].is_i64(), "{frame}");
            return;
        }
        assert_eq!(frame["type"], "message", "{frame}");
    }
    panic!("no ack among the first two frames");
}

#[tokio::test]
async fn send_by_phone_number_creates_the_chat_and_is_acked() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    let acked = alice_socket
        .send_message("to-bob", Target::Phone(BOB), "first contact")
        .await;

    assert_eq!(acked.seq, 1);
    let chats = bob.chats().await;
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].id, acked.chat_id);
    assert_eq!(bob_socket.next_message().await.0.id, acked.id);
}

#[tokio::test]
async fn a_repeated_client_message_id_over_ws_returns_the_original_message_once() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    let mut acks = Vec::new();
    for reference in ["a", "b"] {
        alice_socket
            .send(&ClientFrame::Send {
                reference: Some(reference.into()),
                chat_id: None,
                to: Some(BOB.into()),
                content: "once".into(),
                client_message_id: Some("cmid-1".into()),
            })
            .await;
        acks.push(alice_socket.ack(reference).await);
    }

    assert_eq!(acks[0].id, acks[1].id);
    assert_eq!(acks[0].seq, acks[1].seq);
    assert_eq!(acks[1].content, "once");
    assert_eq!(acks[0].client_message_id.as_deref(), Some("cmid-1"));
    assert_eq!(bob_socket.next_message().await.0.id, acks[0].id);
    bob_socket.assert_silent().await;
    assert_eq!(bob.messages(acks[0].chat_id, 10).await.len(), 1);
}

#[tokio::test]
async fn a_client_message_id_reused_over_ws_for_other_content_or_chat_gets_an_error_frame() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    app.register(CAROL).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;
    alice_socket
        .send(&ClientFrame::Send {
            reference: Some("first".into()),
            chat_id: None,
            to: Some(BOB.into()),
            content: "once".into(),
            client_message_id: Some("cmid-1".into()),
        })
        .await;
    let acked = alice_socket.ack("first").await;
    assert_eq!(bob_socket.next_message().await.0.id, acked.id);

    for (reference, to, content) in [
        ("other-content", BOB, "once again"),
        ("other-chat", CAROL, "once"),
    ] {
        alice_socket
            .send(&ClientFrame::Send {
                reference: Some(reference.into()),
                chat_id: None,
                to: Some(to.into()),
                content: content.into(),
                client_message_id: Some("cmid-1".into()),
            })
            .await;
        let (frame, _) = alice_socket
            .until(|frame| matches!(frame, ServerFrame::Error { .. }).then(|| frame.clone()))
            .await;
        assert_eq!(
            error_of(&frame),
            (
                Some(reference.to_owned()),
                "idempotency_conflict".to_owned()
            )
        );
    }

    alice_socket.assert_usable().await;
    bob_socket.assert_silent().await;
    assert_eq!(bob.messages(acked.chat_id, 10).await.len(), 1);
    assert_eq!(alice.chats().await.len(), 1, "no chat with Carol was made");
}

#[tokio::test]
async fn a_client_message_id_used_over_http_is_the_same_send_over_ws() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let over_http = alice
        .client
        .send_message(&missive_client::protocol::SendMessageRequest {
            receiver: Some(BOB.into()),
            content: "hi".into(),
            client_message_id: Some("shared".into()),
            ..Default::default()
        })
        .await
        .expect("sent")
        .body;
    let mut socket = open_as(&alice).await;

    socket
        .send(&ClientFrame::Send {
            reference: Some("x".into()),
            chat_id: None,
            to: Some(BOB.into()),
            content: "hi".into(),
            client_message_id: Some("shared".into()),
        })
        .await;

    assert_eq!(socket.ack("x").await, over_http);
}

#[tokio::test]
async fn the_sandbox_frame_with_keys_in_any_case_sends_a_message() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    for frame in [
        json!({"From": ALICE, "To": BOB, "Content": "classic"}),
        json!({"from": ALICE, "TO": BOB, "cOnTeNt": "mixed"}),
        json!({"FROM": alice.user.id.to_string(), "to": BOB, "content": "by id"}),
    ] {
        alice_socket.send_text(&frame.to_string()).await;
        let (acked, _) = alice_socket
            .until(|f| match f {
                ServerFrame::Ack { message, .. } => Some(message.clone()),
                ServerFrame::Message { .. } => None,
                other => panic!("expected an ack for {frame}, got {other:?}"),
            })
            .await;
        assert_eq!(acked.content, frame_content(&frame));
        assert_eq!(acked.sender, ALICE);
        let (message, _) = bob_socket.next_message().await;
        assert_eq!(message.id, acked.id);
    }
}

fn frame_content(frame: &serde_json::Value) -> String {
    let object = frame.as_object().expect("an object");
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content"))
        .and_then(|(_, v)| v.as_str())
        .expect("a content key")
        .to_owned()
}

#[tokio::test]
async fn a_forged_from_gets_forbidden_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    app.register(CAROL).await;
    let mut alice_socket = open_as(&alice).await;
    let mut bob_socket = open_as(&bob).await;

    alice_socket
        .send_text(&json!({"From": CAROL, "To": BOB, "Content": "it's carol, honest"}).to_string())
        .await;

    let frame = alice_socket.next().await;
    assert_eq!(error_of(&frame).1, "forbidden");
    alice_socket.assert_usable().await;
    bob_socket.assert_silent().await;
    assert!(bob.chats().await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn malformed_frames_get_invalid_frame_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    let cases: &[(&str, Option<&str>)] = &[
        ("garbage", None),
        ("", None),
        ("[1,2,3]", None),
        ("42", None),
        (r#"{"type":"launch","ref":"r0"}"#, Some("r0")),
        (r#"{"type":"send","ref":"r1"}"#, Some("r1")),
        (
            r#"{"type":"send","ref":"r2","to":7,"content":"x"}"#,
            Some("r2"),
        ),
        (
            r#"{"type":"receipt","chatId":"nope","messageId":"x","status":"read"}"#,
            None,
        ),
        (r#"{"type":"typing","chatId":"nope"}"#, None),
        (r#"{"From":"+1234567890","To":5,"Content":"x"}"#, None),
        (r#"{"hello":"world"}"#, None),
    ];
    for (text, reference) in cases {
        socket.send_text(text).await;
        let frame = socket.next().await;
        let (got_ref, code) = error_of(&frame);
        assert_eq!(code, "invalid_frame", "for {text:?}");
        assert_eq!(got_ref.as_deref(), *reference, "ref for {text:?}");
        socket.assert_usable().await;
    }
}

#[tokio::test]
async fn an_error_frame_has_type_code_and_message_on_the_wire() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    socket.send_text("{{{").await;

    let frame = socket.next_json().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "invalid_frame");
    assert!(
        frame["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{frame}"
    );
}

#[tokio::test]
async fn refused_sends_get_an_error_with_their_ref() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut socket = open_as(&alice).await;

    let send = |reference: &str, chat_id: Option<Uuid>, to: Option<&str>, content: &str| {
        ClientFrame::Send {
            reference: Some(reference.to_owned()),
            chat_id,
            to: to.map(str::to_owned),
            content: content.to_owned(),
            client_message_id: None,
        }
    };
    let cases = [
        (send("empty", None, Some(BOB), ""), "invalid_content"),
        (
            send("long", None, Some(BOB), &"x".repeat(4097)),
            "invalid_content",
        ),
        (
            send("bad-phone", None, Some("12345"), "hi"),
            "invalid_phone_number",
        ),
        (send("nobody", None, Some(CAROL), "hi"), "user_not_found"),
        (
            send("myself", None, Some(ALICE), "hi"),
            "invalid_participants",
        ),
        (
            send("no-chat", Some(Uuid::now_v7()), None, "hi"),
            "chat_not_found",
        ),
        (send("neither", None, None, "hi"), "invalid_request"),
    ];
    for (frame, code) in cases {
        socket.send(&frame).await;
        let reply = socket.next().await;
        let (reference, got) = error_of(&reply);
        let ClientFrame::Send {
            reference: sent_ref,
            ..
        } = &frame
        else {
            unreachable!()
        };
        assert_eq!(got, code, "for {sent_ref:?}");
        assert_eq!(&reference, sent_ref);
    }
    socket.assert_usable().await;
}

#[tokio::test]
async fn a_frame_over_64_kib_gets_frame_too_large_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    let pad = "x".repeat(65 * 1024);
    socket
        .send_text(&json!({"type": "ping", "pad": pad}).to_string())
        .await;

    let frame = socket.next().await;
    assert_eq!(error_of(&frame).1, "frame_too_large");
    socket.assert_usable().await;
}

#[tokio::test]
async fn a_frame_of_the_protocol_limit_still_gets_frame_too_large_and_the_connection_stays_usable()
{
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    // Exactly 256 KiB: the largest message the protocol layer reads.
    let mut text = json!({"type": "ping", "pad": ""}).to_string();
    let pad = "x".repeat(256 * 1024 - text.len());
    text = json!({"type": "ping", "pad": pad}).to_string();
    assert_eq!(text.len(), 256 * 1024);
    socket.send_text(&text).await;

    let frame = socket.next().await;
    assert_eq!(error_of(&frame).1, "frame_too_large");
    socket.assert_usable().await;
}

#[tokio::test]
async fn a_frame_over_the_protocol_limit_gets_a_1009_close_with_a_reason() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    for size in [256 * 1024 + 1, 300 * 1024, 4 * 1024 * 1024] {
        let mut socket = open_as(&alice).await;
        let pad = "x".repeat(size - json!({"type": "ping", "pad": ""}).to_string().len());
        let text = json!({"type": "ping", "pad": pad}).to_string();
        assert_eq!(text.len(), size);
        // The server may close before the whole frame is written: a failed
        // send is fine, the close frame is what counts.
        let _ = socket.conn.send_text(&text).await;

        let closed = loop {
            match socket
                .conn
                .next_text(std::time::Duration::from_secs(5))
                .await
            {
                Ok(text) => assert!(!text.contains("\"ack\""), "{text}"),
                Err(e) => break e,
            }
        };
        match closed {
            WsError::Closed { code, reason } => {
                assert_eq!(code, 1009, "{size} bytes: {reason}");
                assert!(reason.contains("262144"), "{reason}");
            }
            other => panic!("{size} bytes: expected a 1009 close, got {other:?}"),
        }
    }
    // The server is fine: a new connection works.
    open_as(&alice).await.assert_usable().await;
}

#[tokio::test]
async fn a_binary_frame_gets_an_error_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    socket
        .conn
        .send_binary(br#"{"type":"ping"}"#.to_vec())
        .await
        .expect("sent");

    let frame = socket.next().await;
    assert_eq!(error_of(&frame).1, "invalid_frame");
    socket.assert_usable().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let mut socket = open_as(&alice).await;

    socket.send_text(r#"{"type":"ping"}"#).await;

    assert_eq!(socket.next_json().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_claimed_user_id_or_phone_number_is_believed_from_loopback() {
    let app = spawn_app().await;
    let (alice, _) = app.register(ALICE).await;

    for claim in [alice.id.to_string(), ALICE.to_owned(), format!(" {ALICE} ")] {
        let socket = open(&app.client, &WsQuery::user(&claim)).await;
        assert_eq!(socket.user, alice, "claim {claim:?}");
    }
}

#[tokio::test]
async fn an_upgrade_without_identity_gets_401() {
    let app = spawn_app().await;

    let error = refused(&app.client, &WsQuery::default()).await;

    assert_eq!(error.status(), Some(401), "{error}");
    assert_eq!(error.code().as_deref(), Some("unauthorized"), "{error}");
}

#[tokio::test]
async fn an_invalid_token_gets_401() {
    let app = spawn_app().await;
    app.register(ALICE).await;

    let error = refused(&app.client, &WsQuery::token("not-a-token")).await;

    assert_eq!(error.status(), Some(401), "{error}");
}

#[tokio::test]
async fn a_claim_is_refused_under_auth_mode_required_but_a_token_works() {
    let app = spawn_app_with(|config| config.auth_mode = AuthMode::Required).await;
    let alice = app.user(ALICE).await;

    let error = refused(&app.client, &WsQuery::user(ALICE)).await;
    assert_eq!(error.status(), Some(401), "{error}");

    let socket = open_as(&alice).await;
    assert_eq!(socket.user.phone_number, ALICE);
}

#[tokio::test]
async fn a_token_with_a_claim_of_another_user_gets_403() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;

    let query = WsQuery {
        user_id: Some(BOB.into()),
        ..WsQuery::token(&alice.token)
    };
    let error = refused(&app.client, &query).await;

    assert_eq!(error.status(), Some(403), "{error}");
}

#[tokio::test]
async fn a_claim_of_an_unknown_user_is_refused() {
    let app = spawn_app().await;

    let error = refused(&app.client, &WsQuery::user(CAROL)).await;

    assert_eq!(error.status(), Some(404), "{error}");
    assert_eq!(error.code().as_deref(), Some("user_not_found"), "{error}");
}

#[tokio::test]
async fn a_bad_since_gets_400() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    for since in ["x", "-1", "1.5", "", "99999999999999999999999"] {
        let error = refused(&app.client, &WsQuery::token(&alice.token).since(since)).await;
        assert_eq!(error.status(), Some(400), "since={since:?}: {error}");
    }
}

#[tokio::test]
async fn a_plain_get_of_ws_without_upgrade_is_a_json_400() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    let raw = app.get(&format!("/ws?token={}", alice.token)).await;

    crate::helpers::assert_raw_error(&raw, 400, "invalid_request");
}

#[tokio::test]
async fn a_page_of_another_origin_cannot_open_a_websocket_with_a_claimed_identity() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = crate::helpers::spawn_app().await;
    app.register(crate::helpers::ALICE).await;
    let url = format!("ws://{}/ws?userID=%2B1234567890", app.address);
    let open = |origin: Option<String>| {
        let mut request = url.as_str().into_client_request().expect("a request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("a header value"));
        }
        tokio_tungstenite::connect_async(request)
    };

    let foreign = open(Some("https://evil.example".into())).await;
    let other_port = open(Some("http://localhost".into())).await;
    let own = open(Some(format!("http://{}", app.address))).await;
    let no_browser = open(None).await;

    match foreign {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        other => panic!("a foreign origin opened a socket: {:?}", other.map(|_| ())),
    }
    // Another port of the same host is another origin: refused too.
    assert!(other_port.is_err());
    assert!(own.is_ok(), "the server's own page may open a socket");
    assert!(no_browser.is_ok(), "clients without Origin stay allowed");
}
