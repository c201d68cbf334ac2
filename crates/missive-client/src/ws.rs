//! The WebSocket side of the client (`GET /ws`, README, "WebSocket"): one
//! [`Connection`] per socket, sending [`ClientFrame`]s (or raw text, for
//! malformed-input tests) and reading [`ServerFrame`]s with a timeout.
//!
//! WebSocket control frames (ping/pong) never reach the caller: the server's
//! pings are answered by the protocol layer while [`Connection::next_frame`]
//! reads. A close from the server surfaces as [`WsError::Closed`].
//!
//! Resuming with [`WsQuery::since`] from a cursor the server no longer keeps
//! (older than its `EVENT_RETENTION`, or unknown after a restore) yields
//! [`ServerFrame::Resync`] right after `ready`: the caller re-lists its chats
//! and their messages ([`crate::Client::list_chats`],
//! [`crate::Client::list_messages`]) and keeps the frame's `cursor` as the one
//! to resume from.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use missive_protocol::{ClientFrame, ServerFrame};
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Close code reported when the socket ended without a close frame (RFC 6455 §7.1.5).
pub const ABNORMAL_CLOSURE: u16 = 1006;
/// Close code reported when a close frame carried no status (RFC 6455 §7.1.5).
pub const NO_STATUS: u16 = 1005;

/// Why a WebSocket call did not produce what was expected.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The server refused the upgrade with an HTTP answer (e.g. 400, 401, 403).
    #[error("the server refused the upgrade with {status}: {body}")]
    Rejected {
        /// HTTP status code of the refusal.
        status: u16,
        /// The answer's body as text (the API's `{"code","message"}` JSON).
        body: String,
    },
    /// The server closed the connection: its close frame, or [`ABNORMAL_CLOSURE`]
    /// when the socket ended without one.
    #[error("the connection was closed ({code}): {reason}")]
    Closed {
        /// The close code (1001 going away, 1008/1013 too slow, …).
        code: u16,
        /// The close reason text.
        reason: String,
    },
    /// Nothing arrived within the timeout.
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    /// A text frame that is not a [`ServerFrame`].
    #[error("could not decode the frame ({source}): {text}")]
    Decode {
        /// The raw frame text.
        text: String,
        /// What serde complained about.
        #[source]
        source: serde_json::Error,
    },
    /// The server sent a binary frame (the protocol only uses text frames).
    #[error("unexpected binary frame of {0} bytes")]
    Binary(usize),
    /// The base URL is not an `http://` or `https://` URL.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The offending text.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A frame could not be encoded as JSON.
    #[error("could not encode the frame: {0}")]
    Encode(#[from] serde_json::Error),
    /// The WebSocket transport failed (reset, protocol violation, I/O error).
    #[error("websocket transport error: {0}")]
    Transport(#[from] tungstenite::Error),
}

impl WsError {
    /// The HTTP status of a refused upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            WsError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The close code, when the server closed the connection.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            WsError::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The API error `code` of a refused upgrade's `{"code","message"}` body.
    pub fn code(&self) -> Option<String> {
        match self {
            WsError::Rejected { body, .. } => serde_json::from_str::<serde_json::Value>(body)
                .ok()?
                .get("code")?
                .as_str()
                .map(str::to_owned),
            _ => None,
        }
    }

    /// True when the connection is gone: closed by the server, reset, or ended.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, WsError::Closed { .. } | WsError::Transport(_))
    }
}

/// Who the connection is and where its event stream resumes: the query of `GET /ws`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsQuery {
    /// Bearer token (`token=`).
    pub token: Option<String>,
    /// Claimed identity, a user id or phone number (`userID=`).
    pub user_id: Option<String>,
    /// Resume point: the last cursor processed (`since=`); any text, for bad-input tests.
    pub since: Option<String>,
    /// Bearer token sent as an `Authorization` header instead of the query.
    pub bearer: Option<String>,
}

impl WsQuery {
    /// Authenticates with `token=`.
    pub fn token(token: impl Into<String>) -> Self {
        WsQuery {
            token: Some(token.into()),
            ..WsQuery::default()
        }
    }

    /// Claims the identity `user` (a user id or a phone number) with `userID=`.
    pub fn user(user: impl Into<String>) -> Self {
        WsQuery {
            user_id: Some(user.into()),
            ..WsQuery::default()
        }
    }

    /// Authenticates with an `Authorization: Bearer` header.
    pub fn bearer(token: impl Into<String>) -> Self {
        WsQuery {
            bearer: Some(token.into()),
            ..WsQuery::default()
        }
    }

    /// The same query resuming after `cursor` (`since=`).
    pub fn since(self, cursor: impl Into<String>) -> Self {
        WsQuery {
            since: Some(cursor.into()),
            ..self
        }
    }

    /// The `(name, value)` pairs to append to the URL, in a stable order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("token", self.token.as_deref()),
            ("userID", self.user_id.as_deref()),
            ("since", self.since.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

/// The `ws://…/ws?…` URL of the server at `base_http_url` for `query`.
pub fn ws_url(base_http_url: &str, query: &WsQuery) -> Result<Url, WsError> {
    let invalid = |reason: String| WsError::InvalidUrl {
        url: base_http_url.to_owned(),
        reason,
    };
    let base = Url::parse(base_http_url).map_err(|e| invalid(e.to_string()))?;
    let scheme = match base.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(invalid(format!("unsupported scheme {other:?}"))),
    };
    let mut url = base.join("/ws").map_err(|e| invalid(e.to_string()))?;
    url.set_scheme(scheme)
        .map_err(|()| invalid("cannot change the scheme".into()))?;
    let pairs = query.pairs();
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One open WebSocket connection to `GET /ws`.
#[derive(Debug)]
pub struct Connection {
    socket: Socket,
}

impl Connection {
    /// Opens `GET /ws` on the server at `base_http_url` (e.g. `http://127.0.0.1:8080`).
    ///
    /// An HTTP refusal of the upgrade is [`WsError::Rejected`] with its status and body.
    pub async fn connect(base_http_url: &str, query: &WsQuery) -> Result<Connection, WsError> {
        let url = ws_url(base_http_url, query)?;
        let mut request = url.as_str().into_client_request()?;
        if let Some(token) = &query.bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
                WsError::InvalidUrl {
                    url: url.to_string(),
                    reason: format!("invalid bearer token: {e}"),
                }
            })?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::connect_async_with_config(request, None, true).await {
            Ok((socket, _response)) => Ok(Connection { socket }),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(WsError::Rejected { status, body })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a typed client frame as one JSON text frame.
    pub async fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), WsError> {
        let text = serde_json::to_string(frame)?;
        self.send_text(&text).await
    }

    /// Sends any JSON value as one text frame (e.g. the sandbox `{"From","To","Content"}`).
    pub async fn send_json(&mut self, value: &serde_json::Value) -> Result<(), WsError> {
        self.send_text(&value.to_string()).await
    }

    /// Sends raw text as one text frame, valid JSON or not.
    pub async fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends raw bytes as one binary frame (which the protocol does not use).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), WsError> {
        self.socket.send(Message::binary(bytes)).await?;
        Ok(())
    }

    /// The next text frame's raw text, waiting at most `timeout`.
    ///
    /// Ping/pong control frames are skipped; a close is [`WsError::Closed`].
    pub async fn next_text(&mut self, timeout: Duration) -> Result<String, WsError> {
        let read = async {
            loop {
                match self.socket.next().await {
                    None => {
                        return Err(WsError::Closed {
                            code: ABNORMAL_CLOSURE,
                            reason: "the connection ended without a close frame".into(),
                        });
                    }
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                    Some(Ok(Message::Binary(bytes))) => return Err(WsError::Binary(bytes.len())),
                    Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| WsError::Timeout(timeout))?
    }

    /// The next frame as any JSON value (to check the exact keys on the wire).
    pub async fn next_json(&mut self, timeout: Duration) -> Result<serde_json::Value, WsError> {
        let text = self.next_text(timeout).await?;
        serde_json::from_str(&text).map_err(|source| WsError::Decode { text, source })
    }

    /// The next server frame, waiting at most `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame, WsError> {
        let text = self.next_text(timeout).await?;
        serde_json::from_str(&text).map_err(|source| WsError::Decode { text, source })
    }

    /// Starts the closing handshake (code 1000) and waits for the server's
    /// answer (at most one second), discarding frames still in flight.
    pub async fn close(mut self) -> Result<(), WsError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        match self.socket.close(Some(frame)).await {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(e) => return Err(e.into()),
        }
        let drain = async {
            while let Some(Ok(_)) = self.socket.next().await {
                // Frames sent before the server saw the close; the caller is done with them.
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        Ok(())
    }
}

fn closed(frame: Option<CloseFrame>) -> WsError {
    match frame {
        Some(frame) => WsError::Closed {
            code: u16::from(frame.code),
            reason: frame.reason.as_str().to_owned(),
        },
        None => WsError::Closed {
            code: NO_STATUS,
            reason: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_switches_the_scheme_and_encodes_the_query() {
        let query = WsQuery::user("+1234567890").since("42");
        let url = ws_url("http://127.0.0.1:8080", &query).expect("a valid url");
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:8080/ws?userID=%2B1234567890&since=42"
        );
        let url = ws_url("https://example.com/", &WsQuery::token("t")).expect("a valid url");
        assert_eq!(url.as_str(), "wss://example.com/ws?token=t");
        assert!(ws_url("ftp://example.com", &WsQuery::default()).is_err());
    }
}
