//! Typed Rust client of the missive API: REST (the OpenAPI document) and the
//! WebSocket (the AsyncAPI document). Used by the integration tests and the
//! tools, and usable by any Rust program (see the crate's README).
//!
//! Layout:
//! - [`Client`]: one method per endpoint, shaped like the API, each returning a
//!   [`Response`] (status, body, the parsed `Link: rel="next"` target) or a
//!   [`ClientError`] (`Api` for every 4xx/5xx with its `{"code","message"}` body).
//! - [`Client::raw`]: an escape hatch that sends any bytes with any content type,
//!   for malformed-input tests.
//! - [`ChatsQuery`], [`MessagesQuery`]: the query parameters of the list endpoints.
//! - [`ws::Connection`]: one raw `GET /ws` socket (typed or raw frames, with
//!   timeouts).
//! - [`live::LiveConnection`]: a `GET /ws` connection that reconnects with
//!   backoff, resumes from the last cursor and drops duplicate messages.
//!
//! TLS (`https://`, `wss://`) needs the `rustls` feature.

mod error;
mod link;
pub mod live;
mod query;
pub mod ws;

pub use error::ClientError;
pub use missive_protocol as protocol;
pub use query::{ChatsQuery, MessagesQuery};
pub use reqwest::header::HeaderMap;
pub use reqwest::{Method, Url};

use missive_protocol::{
    Chat, CreateChatRequest, ErrorBody, LoginRequest, Message, RegisterRequest, Registered,
    SendMessageRequest, Session, SessionInfo, StatusRequest, StatusResponse, TypingRequest, User,
    VerifyRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A successful (2xx) answer, decoded.
#[derive(Debug, Clone)]
pub struct Response<T> {
    /// HTTP status code.
    pub status: u16,
    /// The decoded body.
    pub body: T,
    /// The `Link: <…>; rel="next"` target, resolved against the base URL.
    pub next: Option<Url>,
    /// Every response header.
    pub headers: HeaderMap,
}

/// Any answer, undecoded: what [`Client::raw`] returns.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Every response header.
    pub headers: HeaderMap,
    /// The body as text.
    pub body: String,
}

impl RawResponse {
    /// The body parsed as any JSON value.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        decode(self.status, &self.body)
    }

    /// The body parsed as the documented error body `{"code","message"}`.
    pub fn error_body(&self) -> Result<ErrorBody, ClientError> {
        decode(self.status, &self.body)
    }

    /// The value of header `name`, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A client of one missive server, optionally authenticated by a bearer token.
///
/// Cloning is cheap; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    user_agent: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`), without a token.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = Url::parse(base_url).map_err(|err| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason: err.to_string(),
        })?;
        Ok(Client {
            http: reqwest::Client::new(),
            base,
            token: None,
            user_agent: None,
        })
    }

    /// The same client sending `Authorization: Bearer <token>` on every request.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same client sending `User-Agent: <user_agent>` on every request
    /// (the server keeps it with the tokens it issues; see `GET /sessions`).
    pub fn with_user_agent(&self, user_agent: impl Into<String>) -> Client {
        Client {
            user_agent: Some(user_agent.into()),
            ..self.clone()
        }
    }

    /// The same client without a token.
    pub fn anonymous(&self) -> Client {
        Client {
            token: None,
            ..self.clone()
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `POST /register`: a new user and its token.
    pub async fn register(
        &self,
        phone_number: &str,
        display_name: Option<&str>,
    ) -> Result<Response<Registered>, ClientError> {
        self.register_at("/register", phone_number, display_name)
            .await
    }

    /// `POST /users`: the alias of `POST /register`.
    pub async fn create_user(
        &self,
        phone_number: &str,
        display_name: Option<&str>,
    ) -> Result<Response<Registered>, ClientError> {
        self.register_at("/users", phone_number, display_name).await
    }

    async fn register_at(
        &self,
        path: &str,
        phone_number: &str,
        display_name: Option<&str>,
    ) -> Result<Response<Registered>, ClientError> {
        let body = RegisterRequest {
            phone_number: phone_number.to_owned(),
            display_name: display_name.map(str::to_owned),
        };
        self.send_json(Method::POST, path, &[], Some(&body)).await
    }

    /// `GET /users?phoneNumber=`: contact lookup (needs a token).
    pub async fn lookup_user(&self, phone_number: &str) -> Result<Response<User>, ClientError> {
        let query = [("phoneNumber", phone_number.to_owned())];
        self.send_json(Method::GET, "/users", &query, None::<&()>)
            .await
    }

    /// `POST /sessions`: asks for a login code sent to `phone_number`.
    pub async fn login(
        &self,
        phone_number: &str,
    ) -> Result<Response<serde_json::Value>, ClientError> {
        let body = LoginRequest {
            phone_number: phone_number.to_owned(),
        };
        self.send_json(Method::POST, "/sessions", &[], Some(&body))
            .await
    }

    /// `POST /sessions/verify`: trades a login code for a token.
    pub async fn verify(
        &self,
        phone_number: &str,
        code: &str,
    ) -> Result<Response<Session>, ClientError> {
        let body = VerifyRequest {
            phone_number: phone_number.to_owned(),
            code: code.to_owned(),
        };
        self.send_json(Method::POST, "/sessions/verify", &[], Some(&body))
            .await
    }

    /// `DELETE /sessions/current`: revokes the client's token.
    pub async fn logout(&self) -> Result<Response<()>, ClientError> {
        let url = self.url("/sessions/current", &[])?;
        let (status, headers, next, _body) =
            self.exchange(self.request(Method::DELETE, url)).await?;
        Ok(Response {
            status,
            body: (),
            next,
            headers,
        })
    }

    /// `GET /sessions`: the token's user's live sessions, most recently used first.
    pub async fn list_sessions(&self) -> Result<Response<Vec<SessionInfo>>, ClientError> {
        self.send_json(Method::GET, "/sessions", &[], None::<&()>)
            .await
    }

    /// `DELETE /sessions/{id}`: revokes one of the token's user's sessions.
    pub async fn revoke_session(&self, id: Uuid) -> Result<Response<()>, ClientError> {
        self.revoke_session_raw(&id.to_string()).await
    }

    /// `DELETE /sessions/{id}` with any path segment (malformed-id tests).
    pub async fn revoke_session_raw(&self, id: &str) -> Result<Response<()>, ClientError> {
        let url = self.url(&format!("/sessions/{id}"), &[])?;
        let (status, headers, next, _body) =
            self.exchange(self.request(Method::DELETE, url)).await?;
        Ok(Response {
            status,
            body: (),
            next,
            headers,
        })
    }

    /// `GET /me`: the token's user.
    pub async fn me(&self) -> Result<Response<User>, ClientError> {
        self.send_json(Method::GET, "/me", &[], None::<&()>).await
    }

    /// `POST /chats`: creates a chat, or returns the existing 1:1 of that pair.
    pub async fn create_chat<I, S>(&self, participants: I) -> Result<Response<Chat>, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let body = CreateChatRequest {
            participants: participants
                .into_iter()
                .map(|phone| phone.as_ref().to_owned())
                .collect(),
        };
        self.send_json(Method::POST, "/chats", &[], Some(&body))
            .await
    }

    /// `GET /chats`: the caller's chats, most recent activity first.
    pub async fn list_chats(&self, query: &ChatsQuery) -> Result<Response<Vec<Chat>>, ClientError> {
        self.send_json(Method::GET, "/chats", &query.pairs(), None::<&()>)
            .await
    }

    /// `GET /chats/{chatId}`.
    pub async fn get_chat(&self, chat_id: Uuid) -> Result<Response<Chat>, ClientError> {
        let path = format!("/chats/{chat_id}");
        self.send_json(Method::GET, &path, &[], None::<&()>).await
    }

    /// `GET /chats/{chatId}?phoneNumber=`: the chat, as the claimed identity `phone_number`.
    pub async fn get_chat_as(
        &self,
        chat_id: Uuid,
        phone_number: &str,
    ) -> Result<Response<Chat>, ClientError> {
        let path = format!("/chats/{chat_id}");
        let query = [("phoneNumber", phone_number.to_owned())];
        self.send_json(Method::GET, &path, &query, None::<&()>)
            .await
    }

    /// `GET /chats/{chatId}/messages`: one page, newest first.
    pub async fn list_messages(
        &self,
        chat_id: Uuid,
        query: &MessagesQuery,
    ) -> Result<Response<Vec<Message>>, ClientError> {
        let path = format!("/chats/{chat_id}/messages");
        self.send_json(Method::GET, &path, &query.pairs(), None::<&()>)
            .await
    }

    /// `POST /messages`: sends a message (1:1 by `sender`/`receiver`, or to a `chatId`).
    pub async fn send_message(
        &self,
        request: &SendMessageRequest,
    ) -> Result<Response<Message>, ClientError> {
        self.send_json(Method::POST, "/messages", &[], Some(request))
            .await
    }

    /// `POST /message`: the original sandbox route, same as [`Client::send_message`].
    pub async fn send_message_legacy(
        &self,
        request: &SendMessageRequest,
    ) -> Result<Response<Message>, ClientError> {
        self.send_json(Method::POST, "/message", &[], Some(request))
            .await
    }

    /// `POST /chats/{chatId}/status`: moves the caller's delivered/read watermark.
    pub async fn mark_status(
        &self,
        chat_id: Uuid,
        request: &StatusRequest,
    ) -> Result<Response<StatusResponse>, ClientError> {
        let path = format!("/chats/{chat_id}/status");
        self.send_json(Method::POST, &path, &[], Some(request))
            .await
    }

    /// `POST /chats/{chatId}/typing`: tells the others the caller is (not) typing.
    pub async fn typing(
        &self,
        chat_id: Uuid,
        is_typing: bool,
    ) -> Result<Response<serde_json::Value>, ClientError> {
        let path = format!("/chats/{chat_id}/typing");
        let body = TypingRequest { is_typing };
        self.send_json(Method::POST, &path, &[], Some(&body)).await
    }

    /// `GET /healthz`: the body as text.
    pub async fn healthz(&self) -> Result<Response<String>, ClientError> {
        self.get_text("/healthz").await
    }

    /// `GET /readyz`: the body as text.
    pub async fn readyz(&self) -> Result<Response<String>, ClientError> {
        self.get_text("/readyz").await
    }

    /// `GET` of an absolute URL (a `Link` target), decoded as `T`.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<Response<T>, ClientError> {
        self.fetch(self.request(Method::GET, url.clone())).await
    }

    /// The page after `page` (its `Link: rel="next"`), or `None` on the last page.
    pub async fn follow_next<T: DeserializeOwned>(
        &self,
        page: &Response<T>,
    ) -> Result<Option<Response<T>>, ClientError> {
        match &page.next {
            Some(url) => self.get_page(url).await.map(Some),
            None => Ok(None),
        }
    }

    /// Sends `body` (if any) to `path` (which may carry a query string) with
    /// the given content type, and returns whatever comes back, undecoded.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> Result<RawResponse, ClientError> {
        let url = self.url(path, &[])?;
        let mut builder = self.request(method, url);
        if let Some(content_type) = content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let answer = builder.send().await?;
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let body = answer.text().await?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn get_text(&self, path: &str) -> Result<Response<String>, ClientError> {
        let url = self.url(path, &[])?;
        let (status, headers, next, body) = self.exchange(self.request(Method::GET, url)).await?;
        Ok(Response {
            status,
            body,
            next,
            headers,
        })
    }

    async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Response<T>, ClientError> {
        let url = self.url(path, query)?;
        let mut builder = self.request(method, url);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        self.fetch(builder).await
    }

    async fn fetch<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<Response<T>, ClientError> {
        let (status, headers, next, text) = self.exchange(builder).await?;
        let body = decode(status, &text)?;
        Ok(Response {
            status,
            body,
            next,
            headers,
        })
    }

    /// Sends the request; a 4xx/5xx becomes [`ClientError::Api`], anything
    /// else yields the status, headers, resolved next link and body text.
    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, Option<Url>, String), ClientError> {
        let answer = builder.send().await?;
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let text = answer.text().await?;
        if status >= 400 {
            let body = decode(status, &text)?;
            return Err(ClientError::Api { status, body });
        }
        let next = self.next_link(&headers)?;
        Ok((status, headers, next, text))
    }

    fn next_link(&self, headers: &HeaderMap) -> Result<Option<Url>, ClientError> {
        for value in headers.get_all(reqwest::header::LINK) {
            let Ok(value) = value.to_str() else { continue };
            if let Some(target) = link::next_target(value) {
                let url = self
                    .base
                    .join(target)
                    .map_err(|err| ClientError::InvalidUrl {
                        url: target.to_owned(),
                        reason: err.to_string(),
                    })?;
                return Ok(Some(url));
            }
        }
        Ok(None)
    }

    /// `path` (absolute, may carry a query string) under the base URL, plus `query`.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ClientError> {
        let text = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        let mut url = Url::parse(&text).map_err(|err| ClientError::InvalidUrl {
            url: text.clone(),
            reason: err.to_string(),
        })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut builder = self.http.request(method, url);
        if let Some(user_agent) = &self.user_agent {
            builder = builder.header(reqwest::header::USER_AGENT, user_agent);
        }
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }
}

fn decode<T: DeserializeOwned>(status: u16, text: &str) -> Result<T, ClientError> {
    serde_json::from_str(text).map_err(|source| ClientError::Decode {
        status,
        body: text.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_the_base_prefix_and_encode_the_query() {
        let client = Client::new("http://127.0.0.1:1/api/").expect("valid base");
        let url = client
            .url("/chats", &[("phoneNumber", "+1234567890".to_owned())])
            .expect("valid url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/api/chats?phoneNumber=%2B1234567890"
        );
    }

    #[test]
    fn a_relative_next_link_resolves_against_the_base() {
        let client = Client::new("http://127.0.0.1:1").expect("valid base");
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            r#"</chats/x/messages?limit=50&before=y>; rel="next""#
                .parse()
                .expect("valid header"),
        );
        let next = client.next_link(&headers).expect("resolves");
        assert_eq!(
            next.map(String::from).as_deref(),
            Some("http://127.0.0.1:1/chats/x/messages?limit=50&before=y")
        );
    }

    #[test]
    fn an_invalid_base_url_is_an_error() {
        assert!(matches!(
            Client::new("not a url"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }
}

#[cfg(test)]
mod readme {
    #[test]
    fn readme_example_is_the_example_that_compiles() {
        let readme = include_str!("../README.md");
        let example = include_str!("../examples/chat.rs");
        assert!(
            readme.contains(example),
            "README.md must show examples/chat.rs verbatim (it is built by `cargo test --all-targets`)"
        );
    }
}
