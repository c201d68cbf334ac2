//! Helpers of the WebSocket tests (README, "WebSocket"): opening a connection that has
//! read its `ready` frame, reading the frames a test expects, asserting
//! silence, and a server on a database that outlives it (restarts).

use std::sync::Arc;
use std::time::Duration;

use missive_client::Client;
use missive_client::protocol::{ClientFrame, Message, ServerFrame, User};
use missive_client::ws::{Connection, WsError, WsQuery};

use crate::helpers::{TestApp, TestAppBuilder, TestUser};
use crate::test_db::TestDb;

/// How long a test waits for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to conclude that nothing comes.
pub const QUIET: Duration = Duration::from_millis(300);

/// An open connection that has read its `ready` frame.
pub struct Socket {
    /// The connection.
    pub conn: Connection,
    /// The user of the `ready` frame.
    pub user: User,
    /// The cursor of the `ready` frame.
    pub cursor: String,
}

/// Opens `GET /ws` on `client`'s server with `query` and reads the `ready` frame.
pub async fn open(client: &Client, query: &WsQuery) -> Socket {
    let mut conn = Connection::connect(client.base_url().as_str(), query)
        .await
        .expect("the upgrade succeeds");
    match conn.next_frame(WAIT).await.expect("a first frame") {
        ServerFrame::Ready { user, cursor } => Socket { conn, user, cursor },
        other => panic!("the first frame must be ready, got {other:?}"),
    }
}

/// Opens a connection of `user` with its token (`token=`).
pub async fn open_as(user: &TestUser) -> Socket {
    open(&user.client, &WsQuery::token(&user.token)).await
}

/// Opens a connection of `user` with its token, resuming after `since`.
pub async fn resume_as(user: &TestUser, since: &str) -> Socket {
    open(&user.client, &WsQuery::token(&user.token).since(since)).await
}

/// Tries to open `GET /ws` and expects the upgrade to be refused.
pub async fn refused(client: &Client, query: &WsQuery) -> WsError {
    match Connection::connect(client.base_url().as_str(), query).await {
        Ok(_) => panic!("the upgrade with {query:?} must be refused"),
        Err(e) => e,
    }
}

impl Socket {
    /// The next frame, which must come within [`WAIT`].
    pub async fn next(&mut self) -> ServerFrame {
        self.conn.next_frame(WAIT).await.expect("a frame arrives")
    }

    /// The next frame as raw JSON, which must come within [`WAIT`].
    pub async fn next_json(&mut self) -> serde_json::Value {
        self.conn.next_json(WAIT).await.expect("a frame arrives")
    }

    /// The next frame, which must be a `message`: the message and its cursor.
    pub async fn next_message(&mut self) -> (Message, String) {
        match self.next().await {
            ServerFrame::Message { message, cursor } => (message, cursor),
            other => panic!("expected a message frame, got {other:?}"),
        }
    }

    /// Asserts that no frame arrives within [`QUIET`].
    pub async fn assert_silent(&mut self) {
        match self.conn.next_frame(QUIET).await {
            Err(WsError::Timeout(_)) => {}
            other => panic!("expected no frame, got {other:?}"),
        }
    }

    /// Sends a typed frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        self.conn
            .send_frame(frame)
            .await
            .expect("the frame is sent");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.conn.send_text(text).await.expect("the frame is sent");
    }

    /// Reads frames until one matches `pick`, returning what it picked and
    /// every frame skipped on the way.
    pub async fn until<T>(
        &mut self,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> (T, Vec<ServerFrame>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.next().await;
            match pick(&frame) {
                Some(found) => return (found, skipped),
                None => skipped.push(frame),
            }
        }
    }

    /// Sends `content` to `to` (a chat or a phone) over the socket and waits
    /// for its `ack` (matched by `ref`); returns the acknowledged message.
    pub async fn send_message(
        &mut self,
        reference: &str,
        to: Target<'_>,
        content: &str,
    ) -> Message {
        let (chat_id, to) = match to {
            Target::Chat(id) => (Some(id), None),
            Target::Phone(phone) => (None, Some(phone.to_owned())),
        };
        self.send(&ClientFrame::Send {
            reference: Some(reference.to_owned()),
            chat_id,
            to,
            content: content.to_owned(),
            client_message_id: None,
        })
        .await;
        self.ack(reference).await
    }

    /// Waits for the `ack` of `reference`, skipping `message`/`receipt` frames.
    pub async fn ack(&mut self, reference: &str) -> Message {
        let (message, _) = self
            .until(|frame| match frame {
                ServerFrame::Ack {
                    reference: r,
                    message,
                } if r.as_deref() == Some(reference) => Some(message.clone()),
                ServerFrame::Message { .. } | ServerFrame::Receipt { .. } => None,
                other => panic!("expected the ack of {reference:?}, got {other:?}"),
            })
            .await;
        message
    }

    /// Sends a `ping` and expects a `pong` (skipping durable events): the connection is usable.
    pub async fn assert_usable(&mut self) {
        self.send(&ClientFrame::Ping).await;
        self.until(|frame| match frame {
            ServerFrame::Pong => Some(()),
            ServerFrame::Message { .. } | ServerFrame::Receipt { .. } => None,
            other => panic!("expected a pong, got {other:?}"),
        })
        .await;
    }
}

/// Where a WebSocket `send` goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// `chatId`.
    Chat(uuid::Uuid),
    /// `to` (a phone number).
    Phone(&'a str),
}

/// The `error` frame's `(ref, code)`, or a panic naming what came instead.
pub fn error_of(frame: &ServerFrame) -> (Option<String>, String) {
    match frame {
        ServerFrame::Error {
            reference,
            code,
            message,
        } => {
            assert!(!message.is_empty(), "an error frame carries a message");
            (reference.clone(), code.clone())
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// A cursor as a number, to compare order (cursors are opaque to clients,
/// but this server's are decimal numbers; a change here is a test update).
pub fn cursor_number(cursor: &str) -> u64 {
    cursor
        .parse()
        .unwrap_or_else(|_| panic!("cursor {cursor:?} is not a number"))
}

/// A server on a database the test owns, so that it can be stopped and
/// started again on the same data.
pub struct DiskApp {
    /// A client without a token.
    pub client: Client,
    app: TestApp,
}

/// Starts the app on `db` (SQLite file or PostgreSQL database, kept by the
/// caller across restarts) with the test defaults.
pub async fn spawn_app_on(db: &Arc<TestDb>) -> DiskApp {
    let app = TestAppBuilder::new().database(db.clone()).spawn().await;
    DiskApp {
        client: app.client.clone(),
        app,
    }
}

impl DiskApp {
    /// Registers `phone` and returns it with an authenticated client.
    pub async fn user(&self, phone: &str) -> TestUser {
        self.app.user(phone).await
    }

    /// The same user (its token survives restarts) as a client of this server.
    pub fn again(&self, user: &TestUser) -> TestUser {
        TestUser {
            user: user.user.clone(),
            token: user.token.clone(),
            client: self.client.with_token(&user.token),
        }
    }

    /// Signals shutdown and waits (bounded) for the server to return.
    pub async fn stop(self) {
        self.app.stop().await.expect("the server stops cleanly");
    }
}
