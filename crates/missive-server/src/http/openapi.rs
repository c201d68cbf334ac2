//! The OpenAPI 3.1 document of the API, generated from the code: the
//! `#[utoipa::path]` annotations of the handlers and the `ToSchema` wire
//! types of `missive-protocol`. It is built once and served at
//! `GET /openapi.json`; `web/openapi.json` is a checked-in copy that a test
//! keeps in sync (`make openapi` rewrites it).

use std::sync::LazyLock;

use missive_protocol::openapi::{LegacySendFrame, PhoneNumber, ReceiptStatus};
use missive_protocol::{
    Chat, ClientFrame, CreateChatRequest, ErrorBody, LoginRequest, Message, MessageStatus,
    RegisterRequest, Registered, SendMessageRequest, ServerFrame, Session, SessionInfo,
    StatusRequest, StatusResponse, TypingRequest, User, VerifyRequest,
};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi as Document, PathItem, Ref, RefOr,
};
use utoipa::{Modify, OpenApi, ToSchema};

use super::bodies::{CodeSent, Empty, Health};

/// The document's introduction (`info.description`).
const DESCRIPTION: &str = "A real-time messaging backend: REST + WebSocket.

All bodies are JSON (`Content-Type: application/json`), field names camelCase, times RFC 3339 UTC with milliseconds, ids UUID strings (UUIDv7). Every field listed in a response is always present; an absent optional value is `null`, never an omitted key.

**Identity.** Either a bearer token (`Authorization: Bearer <token>`, from `POST /register` or the login flow `POST /sessions` → `POST /sessions/verify`) or a claimed identity (`sender`, `phoneNumber`, `participant`, `userID`). `AUTH_MODE=open` believes claims from anyone, `loopback` (default) only from a loopback peer addressing the server as `localhost`, a 127.0.0.0/8 address, `[::1]` or a name of `ALLOWED_HOSTS` in `Host` (else 401, against DNS rebinding), `required` never (every endpoint except `/register`, `POST /users`, `/sessions`, `/sessions/verify` and the ops endpoints answers 401 without a token). A token always wins: a claim naming another user gets 403. A token unused for `TOKEN_TTL` (default 30 days; each use extends it) has expired and gets 401 `unauthorized`; `GET /sessions` lists the caller's live sessions and `DELETE /sessions/{sessionId}` revokes one. Behind a reverse proxy on the same host every peer is loopback, so such a deployment must run with `AUTH_MODE=required`.

**Errors.** Every 4xx/5xx has the body `{\"code\",\"message\"}` (schema `ErrorBody`). Malformed JSON, a missing or wrongly typed field or a wrong content type is 400; a body over 64 KiB is 413 `payload_too_large`; request headers over 16 KiB, or a request head over 32 KiB, are 431 `headers_too_large`; a body that does not arrive within `HTTP_BODY_TIMEOUT` (10 s) is 408 `request_timeout` and the connection closes; rate limiting is 429 with `Retry-After`; a client address over `MAX_CONNECTIONS_PER_ADDRESS` connections, or a user over `MAX_SOCKETS_PER_USER` WebSockets, gets 429 `too_many_connections`; an unknown route is 404 `not_found`, a wrong method 405 `method_not_allowed`; a 500 (`internal`) never leaks internals; any endpoint that needs the database may answer 503 `unavailable` while it does not answer.

**Pagination.** Lists return a bare JSON array. When more items exist the response carries `Link: <next page URL>; rel=\"next\"`, with a relative URL (path and query); no `Link` on the last page.";

/// The operations, schemas and tags of the document.
#[derive(OpenApi)]
#[openapi(
    servers((url = "/")),
    paths(
        super::users::register,
        super::users::lookup,
        super::sessions::request_code,
        super::sessions::verify_code,
        super::sessions::logout,
        super::sessions::list_sessions,
        super::sessions::revoke_session,
        super::users::me,
        super::chats::create_chat,
        super::chats::list_chats,
        super::chats::get_chat,
        super::messages::list_messages,
        super::messages::mark_status,
        super::messages::typing,
        super::messages::send_message,
        super::ws::upgrade,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
        super::ops::asyncapi,
        super::ops::docs,
        super::ops::docs_websocket,
        super::ops::scalar,
        super::ops::index,
        super::ops::sdk,
    ),
    components(schemas(
        PhoneNumber,
        User,
        Registered,
        RegisterRequest,
        MessageStatus,
        ReceiptStatus,
        Message,
        Chat,
        CreateChatRequest,
        SendMessageRequest,
        StatusRequest,
        StatusResponse,
        TypingRequest,
        Health,
        Empty,
        LoginRequest,
        CodeSent,
        VerifyRequest,
        Session,
        SessionInfo,
        ErrorBody,
        ServerFrame,
        ClientFrame,
        LegacySendFrame,
    )),
    tags(
        (name = "users", description = "Registration and contact lookup."),
        (name = "sessions", description = "Login by one-time code, logout, the current user, the list of sessions and revoking one."),
        (name = "chats", description = "Chats, their messages, receipts and typing."),
        (name = "messages", description = "Sending messages."),
        (name = "websocket", description = "Real-time events and sending over a WebSocket."),
        (name = "ops", description = "Health, readiness and metrics."),
        (name = "web", description = "This document, the docs page and the web client."),
    ),
    security(("bearerAuth" = []), ()),
    modifiers(&Finish)
)]
pub struct ApiDoc;

/// What the annotations cannot say: the document's info, the bearer scheme,
/// the two alias routes, and the 500/503 every API operation may answer.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut Document) {
        doc.info = InfoBuilder::new()
            .title("missive")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(DESCRIPTION))
            .license(Some(
                LicenseBuilder::new()
                    .name("MIT")
                    .identifier(Some("MIT"))
                    .build(),
            ))
            .build();

        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An opaque token from `POST /register`, `POST /users` or \
                         `POST /sessions/verify`. Revocable with `DELETE /sessions/current` \
                         (or `DELETE /sessions/{sessionId}` from another session); valid on \
                         every node; expires when unused for `TOKEN_TTL` (default 30 days; \
                         each use extends it).",
                    ))
                    .build(),
            ),
        );

        for schema in components.schemas.values_mut() {
            hoist_nullable_descriptions(schema);
        }
        for name in ["Chat", "CreateChatRequest"] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name)
                && let Some(RefOr::T(Schema::Array(participants))) =
                    object.properties.get_mut("participants")
            {
                // Duplicates are 400 `invalid_participants`.
                participants.unique_items = true;
            }
        }
        add_server_errors(doc);
        add_aliases(doc);
    }
}

/// A nullable reference (`oneOf: [null, $ref]`) carries the field's
/// description on the `$ref`; readers (and the docs page) look for it on the
/// property itself, so it moves up to the `oneOf`.
fn hoist_nullable_descriptions(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            for property in object.properties.values_mut() {
                if let RefOr::T(Schema::OneOf(one_of)) = property
                    && one_of.description.is_none()
                {
                    for item in &mut one_of.items {
                        if let RefOr::Ref(r) = item
                            && !r.description.is_empty()
                        {
                            one_of.description = Some(std::mem::take(&mut r.description));
                        }
                    }
                }
            }
        }
        Schema::OneOf(one_of) => one_of
            .items
            .iter_mut()
            .for_each(hoist_nullable_descriptions),
        Schema::AllOf(all_of) => all_of
            .items
            .iter_mut()
            .for_each(hoist_nullable_descriptions),
        _ => {}
    }
}

/// An error answer with the `ErrorBody` schema.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build(),
    )
}

/// Every operation of the API (not the ops and web pages) may answer 500
/// and, while the database does not answer, 503.
fn add_server_errors(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let infrastructure = op.tags.iter().flatten().any(|t| t == "ops" || t == "web");
            if infrastructure {
                continue;
            }
            let responses = &mut op.responses.responses;
            responses.entry("500".into()).or_insert_with(|| {
                error_response(
                    "`internal`: an unexpected server error; the body never carries internal details.",
                )
            });
            responses.entry("503".into()).or_insert_with(|| {
                error_response("`unavailable`: a dependency (database, Redis) does not answer.")
            });
        }
    }
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// `POST /users` is `POST /register`, `POST /message` is `POST /messages`:
/// one handler each, two routes.
fn add_aliases(doc: &mut Document) {
    let paths = &mut doc.paths.paths;
    if let Some(mut op) = paths.get("/register").and_then(|i| i.post.clone()) {
        op.operation_id = Some("createUser".into());
        op.summary = Some("Register a user (alias of POST /register)".into());
        op.description = Some("Identical to `POST /register`.".into());
        if let Some(item) = paths.get_mut("/users") {
            item.post = Some(op);
        }
    }
    if let Some(mut op) = paths.get("/messages").and_then(|i| i.post.clone()) {
        op.operation_id = Some("sendMessageLegacy".into());
        op.summary = Some("Send a message (sandbox alias of POST /messages)".into());
        let mut rebuilt = std::mem::take(paths);
        for (path, item) in rebuilt.drain(..) {
            if path == "/messages" {
                let mut alias = PathItem::default();
                alias.post = Some(op.clone());
                paths.insert("/message".into(), alias);
            }
            paths.insert(path, item);
        }
    }
}

/// The document, built once, as pretty-printed JSON.
static JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        "{}".to_owned()
    })
});

/// The OpenAPI document served at `GET /openapi.json`.
pub fn json() -> &'static str {
    &JSON
}
