//! The authorization matrix (the README and the OpenAPI document): every endpoint against every
//! kind of caller, under `AUTH_MODE=required` and `loopback`, asserting the
//! exact status and error code. Each test prints the table it verified (run
//! with `--nocapture`); under `required` it is:
//!
//! | endpoint | owner | participant | non-participant | no identity | revoked token | garbage token | malformed header |
//! |---|---|---|---|---|---|---|---|
//! | GET /chats | 200 | 200 | 200 | 401 unauthorized | 401 unauthorized | 401 unauthorized | 401 unauthorized |
//! | POST /chats | 200 | 200 | 403 forbidden | 401 … | 401 … | 401 … | 401 … |
//! | GET /chats/{id} | 200 | 200 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | GET /chats/{id}/messages | 200 | 200 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | POST /messages | 201 | 201 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | POST /message | 201 | 201 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | POST /chats/{id}/status | 200 | 200 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | POST /chats/{id}/typing | 200 | 200 | 404 chat_not_found | 401 … | 401 … | 401 … | 401 … |
//! | GET /users?phoneNumber= | 200 | 200 | 200 | 401 … | 401 … | 401 … | 401 … |
//! | GET /me | 200 | 200 | 200 | 401 … | 401 … | 401 … | 401 … |
//! | GET /ws (upgrade) | 101 | 101 | 101 | 401 … | 401 … | 401 … | 401 … |
//! | DELETE /sessions/current | 204 | 204 | 204 | 401 … | 401 … | 401 … | 401 … |
//!
//! Under `loopback` only the "no identity" column differs: `GET /chats` → 200
//! `[]`, and the sandbox reads `POST /chats`, `GET /chats/{id}`,
//! `GET /chats/{id}/messages` → 200; every other endpoint stays 401.
//! A non-participant's 404 is byte-for-byte the answer for a chat that does
//! not exist. "Owner" is Alice, who created the chat and wrote its first
//! message; "revoked" is a second token of Alice, logged out.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use missive_client::protocol::{Chat, ClientFrame, Message, MessageStatus, ServerFrame};
use missive_client::ws::{Connection, WsQuery};
use missive_client::{Client, Method, RawResponse};
use missive_server::AuthMode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth_helpers::{
    SmsGateway, login, query_phone, raw_with_authorization, upgrade_with_authorization,
};
use crate::helpers::{ALICE, BOB, CAROL, TestApp, TestUser, spawn_app_with};

/// How long a test waits for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);
/// A well-formed bearer token that was never issued.
const GARBAGE: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// An `Authorization` header that is not `Bearer <token>`.
const MALFORMED: &str = "Basic YWxpY2U6c2VjcmV0";

/// The kinds of caller of the matrix, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Participant,
    Outsider,
    Nobody,
    Revoked,
    Garbage,
    Malformed,
}

const COLUMNS: [Who; 7] = [
    Who::Owner,
    Who::Participant,
    Who::Outsider,
    Who::Nobody,
    Who::Revoked,
    Who::Garbage,
    Who::Malformed,
];

impl Who {
    fn title(self) -> &'static str {
        match self {
            Who::Owner => "owner",
            Who::Participant => "participant",
            Who::Outsider => "non-participant",
            Who::Nobody => "no identity",
            Who::Revoked => "revoked token",
            Who::Garbage => "garbage token",
            Who::Malformed => "malformed header",
        }
    }
}

/// What came back: a status and, for an error, its code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    code: Option<String>,
}

fn ok(status: u16) -> Seen {
    Seen { status, code: None }
}

fn err(status: u16, code: &str) -> Seen {
    Seen {
        status,
        code: Some(code.to_owned()),
    }
}

fn unauthorized() -> Seen {
    err(401, "unauthorized")
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(text) if self.status == 0 => write!(f, "{text}"),
            None => write!(f, "{}", self.status),
            Some(code) => write!(f, "{} {code}", self.status),
        }
    }
}

/// The status of a raw answer and, for a 4xx/5xx, the code of its
/// `{"code","message"}` body (or a note that the body is not that).
fn seen(raw: &RawResponse) -> Seen {
    if raw.status < 400 {
        return ok(raw.status);
    }
    let code = match raw.error_body() {
        Ok(body) if !body.message.is_empty() => body.code,
        Ok(body) => format!("{} (empty message)", body.code),
        Err(_) => format!("(not an error body: {})", raw.body),
    };
    err(raw.status, &code)
}

/// A table being verified: rows of observed cells, and the cells that differ
/// from what the contract says.
struct Table {
    title: String,
    columns: Vec<String>,
    rows: Vec<(String, Vec<String>)>,
    mismatches: Vec<String>,
}

impl Table {
    fn new(title: impl Into<String>, columns: &[&str]) -> Self {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            mismatches: Vec::new(),
        }
    }

    /// Records one row, comparing each observed cell with the expected one.
    fn row(&mut self, label: &str, cells: Vec<(Seen, Seen)>) {
        let mut shown = Vec::new();
        for ((got, want), column) in cells.into_iter().zip(&self.columns) {
            if got == want {
                shown.push(got.to_string());
            } else {
                self.mismatches.push(format!(
                    "{label} as {column}: got {got}, the contract says {want}"
                ));
                shown.push(format!("**{got}** (want {want})"));
            }
        }
        self.rows.push((label.to_owned(), shown));
    }

    /// Prints the table as Markdown and fails on any mismatch.
    fn finish(self) {
        let mut text = format!(
            "\n{}\n\n| request | {} |\n|---|",
            self.title,
            self.columns.join(" | ")
        );
        text.push_str(&"---|".repeat(self.columns.len()));
        for (label, cells) in &self.rows {
            text.push_str(&format!("\n| {label} | {} |", cells.join(" | ")));
        }
        println!("{text}\n");
        assert!(
            self.mismatches.is_empty(),
            "deviations from the contract:\n{}\n{text}",
            self.mismatches.join("\n")
        );
    }
}

/// Alice and Bob share a chat with one message from Alice; Carol is in no
/// chat; `revoked` is a second token of Alice, logged out.
struct World {
    app: TestApp,
    _gateway: SmsGateway,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    revoked: String,
    chat: Chat,
    message: Message,
}

async fn world(mode: AuthMode) -> World {
    let gateway = SmsGateway::start().await;
    let webhook = gateway.url.clone();
    let app = spawn_app_with(move |config| {
        config.auth_mode = mode;
        config.otp_webhook_url = Some(webhook);
    })
    .await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let chat = alice.create_chat(&[ALICE, BOB]).await;
    let message = alice.send_in(chat.id, "hello Bob").await;
    let revoked = login(&app.client, &gateway, ALICE).await.token;
    let logout = app
        .client
        .with_token(&revoked)
        .logout()
        .await
        .expect("the second token is revoked");
    assert_eq!(logout.status, 204);
    World {
        app,
        _gateway: gateway,
        alice,
        bob,
        carol,
        revoked,
        chat,
        message,
    }
}

impl World {
    /// The user a valid-token column stands for.
    fn user(&self, who: Who) -> Option<&TestUser> {
        match who {
            Who::Owner => Some(&self.alice),
            Who::Participant => Some(&self.bob),
            Who::Outsider => Some(&self.carol),
            _ => None,
        }
    }

    /// The bearer token `who` sends, if any.
    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Owner | Who::Participant | Who::Outsider => {
                self.user(who).map(|u| u.token.as_str())
            }
            Who::Revoked => Some(&self.revoked),
            Who::Garbage => Some(GARBAGE),
            Who::Nobody | Who::Malformed => None,
        }
    }

    /// `method path` with `body`, as `who`.
    async fn http(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> RawResponse {
        if who == Who::Malformed {
            return raw_with_authorization(&self.app.client, method, path, MALFORMED, body).await;
        }
        let client = match self.token(who) {
            Some(token) => self.app.client.with_token(token),
            None => self.app.client.anonymous(),
        };
        client
            .raw(
                method,
                path,
                body.map(Value::to_string),
                body.map(|_| "application/json"),
            )
            .await
            .expect("the server answers")
    }

    /// `GET /ws` as `who` (token in the query, or the literal header); 101
    /// only when the `ready` frame names the caller.
    async fn upgrade(&self, who: Who) -> Seen {
        if who == Who::Malformed {
            return seen(&upgrade_with_authorization(&self.app.client, MALFORMED).await);
        }
        let query = match self.token(who) {
            Some(token) => WsQuery::token(token),
            None => WsQuery::default(),
        };
        upgrade_as(&self.app, &query, self.user(who).map(|u| u.user.id)).await
    }
}

/// `GET /ws` with `query`: 101 when the `ready` frame names `expected`,
/// else the refusal's status and code.
async fn upgrade_as(app: &TestApp, query: &WsQuery, expected: Option<Uuid>) -> Seen {
    match Connection::connect(app.client.base_url().as_str(), query).await {
        Ok(mut conn) => {
            let frame = conn.next_frame(WAIT).await.expect("a ready frame");
            let _ = conn.close().await;
            match frame {
                ServerFrame::Ready { user, .. } if Some(user.id) == expected => ok(101),
                other => err(101, &format!("(unexpected first frame {other:?})")),
            }
        }
        Err(e) => match e.status() {
            Some(status) => err(status, &e.code().unwrap_or_else(|| "(no code)".into())),
            None => panic!("the upgrade failed without an HTTP answer: {e}"),
        },
    }
}

/// One HTTP row: the request and what members, the non-participant and an
/// anonymous caller get (the last three columns are always 401).
struct Row {
    label: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    members: Seen,
    outsider: Seen,
    nobody: Seen,
}

impl Row {
    fn expected(&self, who: Who) -> Seen {
        match who {
            Who::Owner | Who::Participant => self.members.clone(),
            Who::Outsider => self.outsider.clone(),
            Who::Nobody => self.nobody.clone(),
            Who::Revoked | Who::Garbage | Who::Malformed => unauthorized(),
        }
    }
}

/// The rows of the HTTP matrix in `mode` (`DELETE /sessions/current` apart: it runs last).
fn http_rows(world: &World, mode: AuthMode) -> Vec<Row> {
    let chat = world.chat.id;
    let sandbox = |status: u16| match mode {
        AuthMode::Required => unauthorized(),
        _ => ok(status),
    };
    let not_found = || err(404, "chat_not_found");
    vec![
        Row {
            label: "GET /chats",
            method: Method::GET,
            path: "/chats".into(),
            body: None,
            members: ok(200),
            outsider: ok(200),
            nobody: sandbox(200),
        },
        Row {
            label: "POST /chats",
            method: Method::POST,
            path: "/chats".into(),
            body: Some(json!({ "participants": [ALICE, BOB] })),
            members: ok(200),
            outsider: err(403, "forbidden"),
            nobody: sandbox(200),
        },
        Row {
            label: "GET /chats/{id}",
            method: Method::GET,
            path: format!("/chats/{chat}"),
            body: None,
            members: ok(200),
            outsider: not_found(),
            nobody: sandbox(200),
        },
        Row {
            label: "GET /chats/{id}/messages",
            method: Method::GET,
            path: format!("/chats/{chat}/messages"),
            body: None,
            members: ok(200),
            outsider: not_found(),
            nobody: sandbox(200),
        },
        Row {
            label: "POST /messages",
            method: Method::POST,
            path: "/messages".into(),
            body: Some(json!({ "chatId": chat, "content": "matrix" })),
            members: ok(201),
            outsider: not_found(),
            nobody: unauthorized(),
        },
        Row {
            label: "POST /message",
            method: Method::POST,
            path: "/message".into(),
            body: Some(json!({ "chatId": chat, "content": "matrix" })),
            members: ok(201),
            outsider: not_found(),
            nobody: unauthorized(),
        },
        Row {
            label: "POST /chats/{id}/status",
            method: Method::POST,
            path: format!("/chats/{chat}/status"),
            body: Some(json!({ "messageId": world.message.id, "status": "read" })),
            members: ok(200),
            outsider: not_found(),
            nobody: unauthorized(),
        },
        Row {
            label: "POST /chats/{id}/typing",
            method: Method::POST,
            path: format!("/chats/{chat}/typing"),
            body: Some(json!({ "isTyping": true })),
            members: ok(200),
            outsider: not_found(),
            nobody: unauthorized(),
        },
        Row {
            label: "GET /users?phoneNumber=",
            method: Method::GET,
            path: format!("/users?phoneNumber={}", query_phone(BOB)),
            body: None,
            members: ok(200),
            outsider: ok(200),
            nobody: unauthorized(),
        },
        Row {
            label: "GET /me",
            method: Method::GET,
            path: "/me".into(),
            body: None,
            members: ok(200),
            outsider: ok(200),
            nobody: unauthorized(),
        },
    ]
}

/// Runs the whole matrix in `mode` and prints it.
async fn verify_matrix(mode: AuthMode) {
    let world = world(mode).await;
    let titles: Vec<&str> = COLUMNS.iter().map(|w| w.title()).collect();
    let mut table = Table::new(format!("Authorization matrix, AUTH_MODE={mode:?}"), &titles);
    let unknown_chat = Uuid::now_v7().to_string();
    let chat = world.chat.id.to_string();

    for row in http_rows(&world, mode) {
        let mut cells = Vec::new();
        for who in COLUMNS {
            let raw = world
                .http(who, row.method.clone(), &row.path, row.body.as_ref())
                .await;
            if who == Who::Outsider && raw.status == 404 {
                // No hint that the chat exists: the same answer as for a chat that does not.
                let path = row.path.replace(&chat, &unknown_chat);
                let body = row
                    .body
                    .as_ref()
                    .map(|b| serde_json::from_str(&b.to_string().replace(&chat, &unknown_chat)))
                    .transpose()
                    .expect("JSON");
                let unknown = world
                    .http(who, row.method.clone(), &path, body.as_ref())
                    .await;
                assert_eq!(
                    (unknown.status, &unknown.body),
                    (raw.status, &raw.body),
                    "{}: a foreign chat answers like an unknown one",
                    row.label
                );
            }
            cells.push((seen(&raw), row.expected(who)));
        }
        table.row(row.label, cells);
    }

    let mut cells = Vec::new();
    for who in COLUMNS {
        let want = match who {
            Who::Owner | Who::Participant | Who::Outsider => ok(101),
            _ => unauthorized(),
        };
        cells.push((world.upgrade(who).await, want));
    }
    table.row("GET /ws (upgrade)", cells);

    // Last: it revokes the members' own tokens.
    let mut cells = Vec::new();
    for who in COLUMNS {
        let want = match who {
            Who::Owner | Who::Participant | Who::Outsider => ok(204),
            _ => unauthorized(),
        };
        let raw = world
            .http(who, Method::DELETE, "/sessions/current", None)
            .await;
        cells.push((seen(&raw), want));
    }
    table.row("DELETE /sessions/current", cells);

    table.finish();
}

#[tokio::test]
async fn every_endpoint_answers_every_kind_of_caller_as_documented_under_required() {
    verify_matrix(AuthMode::Required).await;
}

#[tokio::test]
async fn every_endpoint_answers_every_kind_of_caller_as_documented_under_loopback() {
    verify_matrix(AuthMode::Loopback).await;
}

#[tokio::test]
async fn only_the_chats_of_the_token_user_are_listed_and_me_is_the_token_user() {
    let world = world(AuthMode::Required).await;

    let alices = world.alice.chats().await;
    let carols = world.carol.chats().await;
    let me = world.bob.client.me().await.expect("me");

    assert_eq!(
        alices.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![world.chat.id]
    );
    assert!(carols.is_empty(), "{carols:?}");
    assert_eq!(me.body, world.bob.user);
}

#[tokio::test]
async fn malformed_authorization_headers_get_401_even_where_no_identity_is_fine() {
    let world = world(AuthMode::Loopback).await;
    let token = world.alice.token.clone();
    let headers = [
        MALFORMED.to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        token.clone(),
        format!("Token {token}"),
        format!("Bearer{token}"),
    ];

    for header in &headers {
        for path in ["/me", "/chats"] {
            let raw =
                raw_with_authorization(&world.app.client, Method::GET, path, header, None).await;
            assert_eq!(
                seen(&raw),
                unauthorized(),
                "GET {path} with Authorization: {header:?}"
            );
        }
        let raw = upgrade_with_authorization(&world.app.client, header).await;
        assert_eq!(
            seen(&raw),
            unauthorized(),
            "GET /ws with Authorization: {header:?}"
        );
    }
    let lenient = raw_with_authorization(
        &world.app.client,
        Method::GET,
        "/me",
        &format!("bearer  {token} "),
        None,
    )
    .await;
    assert_eq!(
        lenient.status, 200,
        "the scheme is case-insensitive: {}",
        lenient.body
    );
}

/// Requests with Alice's token plus a claim: each label, what it got, and
/// what the contract says (403 when the claim names someone else).
async fn claim_rows(world: &World) -> Vec<(&'static str, Seen, Seen)> {
    let forbidden = || err(403, "forbidden");
    let chat = world.chat.id;
    let alice = &world.alice;
    let post = |path: &'static str, body: Value| async move {
        seen(
            &alice
                .client
                .raw(
                    Method::POST,
                    path,
                    Some(body.to_string()),
                    Some("application/json"),
                )
                .await
                .expect("answers"),
        )
    };
    let get = |path: String| async move {
        seen(
            &alice
                .client
                .raw(Method::GET, &path, None, None)
                .await
                .expect("answers"),
        )
    };
    let bob_phone = query_phone(BOB);
    let ws = |user_id: String| {
        let query = WsQuery {
            token: Some(alice.token.clone()),
            user_id: Some(user_id),
            ..WsQuery::default()
        };
        async move { upgrade_as(&world.app, &query, Some(alice.user.id)).await }
    };
    vec![
        (
            "POST /messages {sender: Bob, chatId}",
            post(
                "/messages",
                json!({ "sender": BOB, "chatId": chat, "content": "spoof" }),
            )
            .await,
            forbidden(),
        ),
        (
            "POST /messages {sender: Bob, receiver: Carol}",
            post(
                "/messages",
                json!({ "sender": BOB, "receiver": CAROL, "content": "spoof" }),
            )
            .await,
            forbidden(),
        ),
        (
            "POST /message {sender: Bob, chatId}",
            post(
                "/message",
                json!({ "sender": BOB, "chatId": chat, "content": "spoof" }),
            )
            .await,
            forbidden(),
        ),
        (
            "GET /chats?phoneNumber=Bob",
            get(format!("/chats?phoneNumber={bob_phone}")).await,
            forbidden(),
        ),
        (
            "GET /chats?participant=Bob",
            get(format!("/chats?participant={bob_phone}")).await,
            forbidden(),
        ),
        (
            "GET /chats/{id}?phoneNumber=Bob",
            get(format!("/chats/{chat}?phoneNumber={bob_phone}")).await,
            forbidden(),
        ),
        (
            "GET /chats/{id}/messages?phoneNumber=Bob",
            get(format!("/chats/{chat}/messages?phoneNumber={bob_phone}")).await,
            forbidden(),
        ),
        (
            "GET /ws?token=…&userID=<Bob's phone>",
            ws(BOB.to_owned()).await,
            forbidden(),
        ),
        (
            "GET /ws?token=…&userID=<Bob's id>",
            ws(world.bob.user.id.to_string()).await,
            forbidden(),
        ),
        (
            "GET /ws?token=…&userID=<Alice's id>",
            ws(alice.user.id.to_string()).await,
            ok(101),
        ),
        (
            "POST /messages {sender: Alice, chatId}",
            post(
                "/messages",
                json!({ "sender": ALICE, "chatId": chat, "content": "mine" }),
            )
            .await,
            ok(201),
        ),
        (
            "GET /chats?phoneNumber=Alice",
            get(format!("/chats?phoneNumber={}", query_phone(ALICE))).await,
            ok(200),
        ),
    ]
}

#[tokio::test]
async fn a_token_with_a_claim_naming_someone_else_gets_403_in_required_and_loopback() {
    let required = world(AuthMode::Required).await;
    let loopback = world(AuthMode::Loopback).await;
    let mut table = Table::new(
        "Alice's token plus a claimed identity",
        &["AUTH_MODE=required", "AUTH_MODE=loopback"],
    );

    let in_required = claim_rows(&required).await;
    let in_loopback = claim_rows(&loopback).await;

    for ((label, r, want), (_, l, _)) in in_required.into_iter().zip(in_loopback) {
        table.row(label, vec![(r, want.clone()), (l, want)]);
    }
    table.finish();
}

#[tokio::test]
async fn claims_without_a_token_are_believed_from_loopback_only_and_never_under_required() {
    let required = world(AuthMode::Required).await;
    let loopback = world(AuthMode::Loopback).await;
    let mut table = Table::new(
        "No token, claimed identity, from 127.0.0.1",
        &["AUTH_MODE=required", "AUTH_MODE=loopback"],
    );
    for (label, method, path, body, in_loopback) in [
        (
            "GET /chats?phoneNumber=Carol (in no chat)",
            Method::GET,
            format!("/chats?phoneNumber={}", query_phone(CAROL)),
            None,
            ok(200),
        ),
        (
            "GET /chats/{id}?phoneNumber=Carol (not a member)",
            Method::GET,
            format!("/chats/{{chat}}?phoneNumber={}", query_phone(CAROL)),
            None,
            err(404, "chat_not_found"),
        ),
        (
            "GET /chats/{id}/messages?phoneNumber=Carol",
            Method::GET,
            format!(
                "/chats/{{chat}}/messages?phoneNumber={}",
                query_phone(CAROL)
            ),
            None,
            err(404, "chat_not_found"),
        ),
        (
            "POST /messages {sender: Carol, chatId}",
            Method::POST,
            "/messages".to_owned(),
            Some(json!({ "sender": CAROL, "chatId": "{chat}", "content": "hi" })),
            err(404, "chat_not_found"),
        ),
        (
            "POST /messages {sender: Alice, chatId}",
            Method::POST,
            "/messages".to_owned(),
            Some(json!({ "sender": ALICE, "chatId": "{chat}", "content": "hi" })),
            ok(201),
        ),
        (
            "GET /chats/{id}/messages?phoneNumber=Bob",
            Method::GET,
            format!("/chats/{{chat}}/messages?phoneNumber={}", query_phone(BOB)),
            None,
            ok(200),
        ),
    ] {
        let mut cells = Vec::new();
        for (world, want) in [(&required, unauthorized()), (&loopback, in_loopback)] {
            let id = world.chat.id.to_string();
            let path = path.replace("{chat}", &id);
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str::<Value>(&b.to_string().replace("{chat}", &id)))
                .transpose()
                .expect("JSON");
            cells.push((
                seen(
                    &world
                        .http(Who::Nobody, method.clone(), &path, body.as_ref())
                        .await,
                ),
                want,
            ));
        }
        table.row(label, cells);
    }
    let mut cells = Vec::new();
    for (world, want) in [(&required, unauthorized()), (&loopback, ok(101))] {
        let query = WsQuery::user(CAROL);
        cells.push((
            upgrade_as(&world.app, &query, Some(world.carol.user.id)).await,
            want,
        ));
    }
    table.row("GET /ws?userID=Carol", cells);
    table.finish();
}

/// Sends `frame`, then a ping; describes the first answer that is not a
/// pushed event: `ack (sender …)`, `error <code>` or `no reply`.
async fn answer_to(conn: &mut Connection, frame: &Value) -> String {
    conn.send_json(frame).await.expect("sent");
    conn.send_frame(&ClientFrame::Ping).await.expect("sent");
    let mut answer = None;
    loop {
        let seen = match conn.next_frame(WAIT).await.expect("an answer") {
            ServerFrame::Ack { message, .. } => format!("ack (sender {})", message.sender),
            ServerFrame::Error { code, message, .. } => {
                assert!(!message.is_empty(), "an error frame carries a message");
                format!("error {code}")
            }
            // The ping is answered after the frame: everything before it is known.
            ServerFrame::Pong => return answer.unwrap_or_else(|| "no reply".to_owned()),
            ServerFrame::Message { .. }
            | ServerFrame::Receipt { .. }
            | ServerFrame::Typing { .. } => {
                continue;
            }
            ServerFrame::Ready { .. } => panic!("a second ready frame"),
            ServerFrame::Resync { .. } => panic!("a resync without since="),
        };
        assert!(
            answer.is_none(),
            "two answers to one frame: {answer:?}, {seen}"
        );
        answer = Some(seen);
    }
}

/// Opens `GET /ws` for `user` and reads its `ready` frame.
async fn connect(app: &TestApp, user: &TestUser) -> Connection {
    let mut conn =
        Connection::connect(app.client.base_url().as_str(), &WsQuery::token(&user.token))
            .await
            .expect("the upgrade succeeds");
    match conn.next_frame(WAIT).await.expect("a ready frame") {
        ServerFrame::Ready { user: ready, .. } => assert_eq!(ready.id, user.user.id),
        other => panic!("expected ready, got {other:?}"),
    }
    conn
}

#[tokio::test]
async fn websocket_actions_on_a_foreign_chat_get_chat_not_found_error_frames() {
    let world = world(AuthMode::Required).await;
    let chat = world.chat.id;
    let unknown = Uuid::now_v7();
    let mut bob = connect(&world.app, &world.bob).await;
    let mut carol = connect(&world.app, &world.carol).await;
    let read = serde_json::to_value(MessageStatus::Read).expect("JSON");
    let actions = [
        (
            "send {chatId}",
            json!({ "type": "send", "ref": "r1", "chatId": chat, "content": "ws" }),
        ),
        (
            "receipt {chatId, messageId}",
            json!({ "type": "receipt", "chatId": chat, "messageId": world.message.id, "status": read }),
        ),
        (
            "typing {chatId}",
            json!({ "type": "typing", "chatId": chat, "isTyping": true }),
        ),
    ];
    let mut table = Table::new(
        "WebSocket frames on the Alice–Bob chat, AUTH_MODE=required",
        &[
            "participant (Bob)",
            "non-participant (Carol)",
            "Carol, unknown chat id",
        ],
    );

    for (label, frame) in &actions {
        let as_bob = answer_to(&mut bob, frame).await;
        let as_carol = answer_to(&mut carol, frame).await;
        let unknown_frame: Value = serde_json::from_str(
            &frame
                .to_string()
                .replace(&chat.to_string(), &unknown.to_string()),
        )
        .expect("JSON");
        let as_carol_unknown = answer_to(&mut carol, &unknown_frame).await;
        let bob_wants = if label.starts_with("send") {
            format!("ack (sender {BOB})")
        } else {
            "no reply".to_owned()
        };
        table.row(
            label,
            vec![
                (as_text(&as_bob), as_text(&bob_wants)),
                (as_text(&as_carol), as_text("error chat_not_found")),
                (as_text(&as_carol_unknown), as_text("error chat_not_found")),
            ],
        );
    }
    let sandbox = json!({ "From": ALICE, "To": BOB, "Content": "spoof" });
    table.row(
        "sandbox {From: Alice, To: Bob}",
        vec![
            (
                as_text(&answer_to(&mut bob, &sandbox).await),
                as_text("error forbidden"),
            ),
            (
                as_text(&answer_to(&mut carol, &sandbox).await),
                as_text("error forbidden"),
            ),
            (as_text("n/a"), as_text("n/a")),
        ],
    );
    table.finish();

    // Nothing of Carol's attempts reached the chat.
    let messages = world.alice.messages(chat, 50).await;
    assert!(messages.iter().all(|m| m.sender != CAROL), "{messages:?}");
    assert_eq!(
        world.carol.chats().await.len(),
        0,
        "Carol's attempts created no chat"
    );
}

/// A free-text cell of a table (WebSocket answers), compared as text (status 0).
fn as_text(text: &str) -> Seen {
    Seen {
        status: 0,
        code: Some(text.to_owned()),
    }
}

#[tokio::test]
async fn the_sender_is_always_the_token_user_over_http_and_websocket() {
    let world = world(AuthMode::Required).await;
    let chat = world.chat.id;
    let mut bob = connect(&world.app, &world.bob).await;
    let mut alice = connect(&world.app, &world.alice).await;

    let by_http = world.alice.send_in(chat, "by http").await;
    let by_legacy = world
        .alice
        .client
        .send_message_legacy(&missive_client::protocol::SendMessageRequest {
            receiver: Some(BOB.into()),
            content: "legacy route".into(),
            ..Default::default()
        })
        .await
        .expect("sent");
    let acked = answer_to(
        &mut alice,
        &json!({ "type": "send", "ref": "w", "to": BOB, "content": "by ws" }),
    )
    .await;

    assert_eq!(by_http.sender, ALICE);
    assert_eq!(by_legacy.body.sender, ALICE);
    assert_eq!(by_legacy.body.chat_id, chat);
    assert_eq!(acked, format!("ack (sender {ALICE})"));
    let mut pushed = Vec::new();
    while pushed.len() < 3 {
        if let ServerFrame::Message { message, .. } = bob.next_frame(WAIT).await.expect("a frame") {
            pushed.push(message.sender);
        }
    }
    assert_eq!(
        pushed,
        vec![ALICE; 3],
        "Bob sees Alice as the sender of all three"
    );
    let listed = world.bob.messages(chat, 50).await;
    assert!(listed.iter().all(|m| m.sender == ALICE), "{listed:?}");
}

/// A non-loopback address of this host, if it has one (a UDP "connect" only
/// picks the route; nothing is sent).
fn non_loopback_ip() -> Option<IpAddr> {
    ["8.8.8.8:53", "192.0.2.1:9"].into_iter().find_map(|probe| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(probe).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
}

/// A server listening on `ip` (not loopback), so that this test's requests
/// come from a non-loopback peer; it stops when dropped.
async fn spawn_on(ip: IpAddr, mode: AuthMode) -> crate::helpers::TestApp {
    crate::helpers::TestAppBuilder::new()
        .bind(ip)
        .configure(move |config| config.auth_mode = mode)
        .spawn()
        .await
}

#[tokio::test]
async fn claims_from_a_non_loopback_peer_get_401_under_loopback_and_are_believed_under_open() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this host has no non-loopback address");
        return;
    };
    let mut table = Table::new(
        format!("From a non-loopback peer ({ip})"),
        &["AUTH_MODE=loopback", "AUTH_MODE=open"],
    );
    let mut results: Vec<Vec<(&str, Seen)>> = Vec::new();
    for mode in [AuthMode::Loopback, AuthMode::Open] {
        let app = spawn_on(ip, mode).await;
        let client = app.client.clone();
        let alice = client.register(ALICE, None).await.expect("registered").body;
        client.register(BOB, None).await.expect("registered");
        let with_token = client.with_token(&alice.token);
        let raw = |client: Client, method: Method, path: String, body: Option<Value>| async move {
            seen(
                &client
                    .raw(
                        method,
                        &path,
                        body.map(|b| b.to_string()),
                        Some("application/json"),
                    )
                    .await
                    .expect("the server answers"),
            )
        };
        let alice_phone = query_phone(ALICE);
        let ws = |query: WsQuery| {
            let client = client.clone();
            let id = alice.user.id;
            async move {
                match Connection::connect(client.base_url().as_str(), &query).await {
                    Ok(mut conn) => match conn.next_frame(WAIT).await {
                        Ok(ServerFrame::Ready { user, .. }) if user.id == id => ok(101),
                        other => err(101, &format!("(unexpected first frame {other:?})")),
                    },
                    Err(e) => err(
                        e.status().expect("an HTTP refusal"),
                        &e.code().unwrap_or_default(),
                    ),
                }
            }
        };
        results.push(vec![
            (
                "GET /chats?phoneNumber=Alice (claim)",
                raw(
                    client.clone(),
                    Method::GET,
                    format!("/chats?phoneNumber={alice_phone}"),
                    None,
                )
                .await,
            ),
            (
                "GET /chats (no identity)",
                raw(client.clone(), Method::GET, "/chats".into(), None).await,
            ),
            (
                "POST /messages {sender: Alice} (claim)",
                raw(
                    client.clone(),
                    Method::POST,
                    "/messages".into(),
                    Some(json!({ "sender": ALICE, "receiver": BOB, "content": "hi" })),
                )
                .await,
            ),
            (
                "GET /ws?userID=Alice (claim)",
                ws(WsQuery::user(ALICE)).await,
            ),
            (
                "GET /chats (token)",
                raw(with_token.clone(), Method::GET, "/chats".into(), None).await,
            ),
            (
                "POST /messages (token)",
                raw(
                    with_token.clone(),
                    Method::POST,
                    "/messages".into(),
                    Some(json!({ "receiver": BOB, "content": "hi" })),
                )
                .await,
            ),
            (
                "GET /ws?token= (token)",
                ws(WsQuery::token(&alice.token)).await,
            ),
        ]);
    }
    let expected = [
        (unauthorized(), ok(200)),
        (unauthorized(), ok(200)),
        (unauthorized(), ok(201)),
        (unauthorized(), ok(101)),
        (ok(200), ok(200)),
        (ok(201), ok(201)),
        (ok(101), ok(101)),
    ];
    let open = results.pop().expect("open");
    let loopback = results.pop().expect("loopback");
    for (((label, l), (_, o)), (want_l, want_o)) in loopback.into_iter().zip(open).zip(expected) {
        table.row(label, vec![(l, want_l), (o, want_o)]);
    }
    table.finish();
}
