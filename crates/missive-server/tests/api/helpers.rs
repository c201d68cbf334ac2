//! Spawning the app on port 0 with its own database (SQLite or PostgreSQL,
//! see [`crate::test_db`]), and the helpers the tests share (registered
//! users, sends, error assertions).

use std::fmt::Debug;
use std::net::SocketAddr;

use missive_client::protocol::{Chat, Message, SendMessageRequest, User};
use missive_client::{Client, ClientError, MessagesQuery, RawResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

use missive_server::security::{Clock, SystemClock};
use missive_server::{Application, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::test_db::TestDb;

/// Phone numbers the tests use (each test has its own database).
pub const ALICE: &str = "+1234567890";
/// The second user.
pub const BOB: &str = "+0987654321";
/// The third user.
pub const CAROL: &str = "+3306666666";
/// The fourth user.
pub const DAVE: &str = "+4915112345678";

/// A running server on `127.0.0.1:<random port>` with its own database file.
pub struct TestApp {
    /// Where the server listens.
    pub address: SocketAddr,
    /// A client without a token.
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the database lives (or is dropped) here.
    db: Arc<TestDb>,
}

/// A registered user with a client that sends its token.
#[derive(Clone)]
pub struct TestUser {
    /// The user as the server returned it.
    pub user: User,
    /// Its bearer token.
    pub token: String,
    /// A client authenticated as this user.
    pub client: Client,
}

impl TestUser {
    /// Sends `content` to `receiver` (1:1 shape, token only) and expects a 201.
    pub async fn send_to(&self, receiver: &str, content: &str) -> Message {
        self.send_expecting_201(SendMessageRequest {
            receiver: Some(receiver.to_owned()),
            content: content.to_owned(),
            ..SendMessageRequest::default()
        })
        .await
    }

    /// Sends `content` to the chat `chat_id` (token only) and expects a 201.
    pub async fn send_in(&self, chat_id: Uuid, content: &str) -> Message {
        self.send_expecting_201(SendMessageRequest {
            chat_id: Some(chat_id),
            content: content.to_owned(),
            ..SendMessageRequest::default()
        })
        .await
    }

    async fn send_expecting_201(&self, request: SendMessageRequest) -> Message {
        let response = self
            .client
            .send_message(&request)
            .await
            .expect("the send succeeds");
        assert_eq!(response.status, 201);
        response.body
    }

    /// Creates (or finds) the chat of `participants` and expects 200 or 201.
    pub async fn create_chat(&self, participants: &[&str]) -> Chat {
        let response = self
            .client
            .create_chat(participants)
            .await
            .expect("the chat is created");
        assert!(
            response.status == 201 || response.status == 200,
            "{}",
            response.status
        );
        response.body
    }

    /// The user's chats, by token (first page, default limit).
    pub async fn chats(&self) -> Vec<Chat> {
        self.client
            .list_chats(&Default::default())
            .await
            .expect("the chats are listed")
            .body
    }

    /// The newest `limit` messages of `chat_id`, read with the user's token.
    pub async fn messages(&self, chat_id: Uuid, limit: u32) -> Vec<Message> {
        let query = MessagesQuery {
            limit: Some(limit),
            ..MessagesQuery::default()
        };
        self.client
            .list_messages(chat_id, &query)
            .await
            .expect("the messages are listed")
            .body
    }
}

/// Starts the app with the test defaults.
pub async fn spawn_app() -> TestApp {
    TestAppBuilder::new().spawn().await
}

/// Starts the app with the test defaults changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestAppBuilder::new().configure(configure).spawn().await
}

/// Like [`spawn_app_with`], reading time from `clock` (a
/// `missive_server::security::ManualClock` expires login codes on demand).
pub async fn spawn_app_with_clock(
    configure: impl FnOnce(&mut Config),
    clock: Arc<dyn Clock>,
) -> TestApp {
    TestAppBuilder::new()
        .configure(configure)
        .clock(clock)
        .spawn()
        .await
}

/// How a test's server is made: the one place that spawns the app.
///
/// Defaults: a fresh database of the suite's backend (`MISSIVE_TEST_STORE`,
/// see [`crate::test_db`]), `127.0.0.1:0`, rate limits off, the documented
/// `AUTH_MODE` (loopback), the system clock.
pub struct TestAppBuilder {
    // `database_url` stays empty until `spawn` unless a test sets its own.
    config: Config,
    clock: Arc<dyn Clock>,
    db: Option<Arc<TestDb>>,
    bind: IpAddr,
    port: u16,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAppBuilder {
    /// The test defaults.
    pub fn new() -> Self {
        TestAppBuilder {
            config: Config {
                bind: "127.0.0.1".into(),
                port: 0,
                log_level: "WARN".into(),
                database_url: String::new(),
                // Tests run many apps at once: a small pool each.
                database_pool_size: 4,
                send_rate_limit: 0,
                auth_rate_limit: 0,
                ..Config::default()
            },
            clock: Arc::new(SystemClock),
            db: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
        }
    }

    /// Changes the configuration (the test defaults are set already).
    pub fn configure(mut self, configure: impl FnOnce(&mut Config)) -> Self {
        configure(&mut self.config);
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs on `db` (shared with other nodes of the test) instead of a fresh one.
    pub fn database(mut self, db: Arc<TestDb>) -> Self {
        self.db = Some(db);
        self
    }

    /// Listens on `port` (e.g. a stopped app's, to restart it where its
    /// clients reconnect) instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Listens on `ip` (port 0) instead of loopback.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self.config.bind = ip.to_string();
        self
    }

    /// Starts the server.
    pub async fn spawn(self) -> TestApp {
        let db = match self.db {
            Some(db) => db,
            None => Arc::new(TestDb::for_suite().await),
        };
        let mut config = self.config;
        if config.database_url.is_empty() {
            config.database_url = db.url().to_owned();
        }
        let listener = tokio::net::TcpListener::bind((self.bind, self.port))
            .await
            .expect("a free port");
        let app = Application::build_with(config, listener, self.clock)
            .await
            .expect("the app builds");
        let address = app.local_addr();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        let client = Client::new(&format!("http://{address}")).expect("a valid base url");
        TestApp {
            address,
            client,
            shutdown: Some(shutdown),
            server: Some(server),
            db,
        }
    }
}

impl TestApp {
    /// The database this app runs on (to start another node on it).
    pub fn database(&self) -> Arc<TestDb> {
        self.db.clone()
    }

    /// Registers `phone` and returns the user and its token.
    pub async fn register(&self, phone: &str) -> (User, String) {
        let response = self
            .client
            .register(phone, None)
            .await
            .expect("registration succeeds");
        assert_eq!(response.status, 201);
        (response.body.user, response.body.token)
    }

    /// Registers `phone` and returns it with an authenticated client.
    pub async fn user(&self, phone: &str) -> TestUser {
        let (user, token) = self.register(phone).await;
        TestUser {
            user,
            client: self.client.with_token(&token),
            token,
        }
    }

    /// Sends through `POST /messages` with a claimed sender and no token.
    pub async fn send_as(
        &self,
        sender: &str,
        receiver: &str,
        content: &str,
    ) -> Result<Response<Message>, ClientError> {
        self.client
            .send_message(&SendMessageRequest {
                sender: Some(sender.to_owned()),
                receiver: Some(receiver.to_owned()),
                content: content.to_owned(),
                ..SendMessageRequest::default()
            })
            .await
    }

    /// Sends `body` as JSON to `path` with no token.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> RawResponse {
        self.client
            .raw(
                missive_client::Method::POST,
                path,
                Some(body.to_string()),
                Some("application/json"),
            )
            .await
            .expect("the server answers")
    }

    /// A `GET` of `path` (with its query string) with no token.
    pub async fn get(&self, path: &str) -> RawResponse {
        self.client
            .raw(missive_client::Method::GET, path, None, None)
            .await
            .expect("the server answers")
    }

    /// Signals shutdown and waits (bounded) for `run_until_stopped` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self.server.take().expect("the server task is there");
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Asserts that `result` is the API error `status` with `code` and a message.
pub fn assert_error<T: Debug>(result: Result<Response<T>, ClientError>, status: u16, code: &str) {
    match result {
        Err(ClientError::Api { status: got, body }) => {
            assert_eq!(
                (got, body.code.as_str()),
                (status, code),
                "unexpected error (message: {:?})",
                body.message
            );
            assert!(!body.message.is_empty(), "the error message is empty");
        }
        other => panic!("expected a {status} {code} error, got {other:?}"),
    }
}

/// Asserts that a raw answer is `status` with a JSON `{"code","message"}` body carrying `code`.
pub fn assert_raw_error(raw: &RawResponse, status: u16, code: &str) {
    assert_eq!(raw.status, status, "body: {}", raw.body);
    let content_type = raw.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "an error is JSON, got content-type {content_type:?}"
    );
    let body = raw
        .error_body()
        .expect("the body is {\"code\",\"message\"}");
    assert_eq!(body.code, code, "message: {:?}", body.message);
    assert!(!body.message.is_empty(), "the error message is empty");
}

/// Asserts that the JSON object `value` has every key of `keys` (null counts as present).
pub fn assert_keys(value: &serde_json::Value, keys: &[&str]) {
    let object = value.as_object().expect("a JSON object");
    for key in keys {
        assert!(object.contains_key(*key), "key {key:?} missing in {value}");
    }
}

/// Every key of a User.
pub const USER_KEYS: &[&str] = &["id", "phoneNumber", "displayName", "createdAt"];
/// Every key of a Chat.
pub const CHAT_KEYS: &[&str] = &[
    "id",
    "participants",
    "createdAt",
    "lastMessage",
    "unreadCount",
];
/// Every key of a Message.
pub const MESSAGE_KEYS: &[&str] = &[
    "id",
    "chatId",
    "seq",
    "sender",
    "content",
    "createdAt",
    "clientMessageId",
    "status",
];

/// Asserts the RFC 3339 UTC form with milliseconds: `2026-01-01T12:00:00.123Z`.
pub fn assert_timestamp(text: &str) {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape_ok, "{text:?} is not RFC 3339 UTC with milliseconds");
}

/// Walks a message list from `first` along its `Link: rel="next"` headers
/// (at most `max_pages`), returning every page in order.
pub async fn walk_messages(
    client: &Client,
    first: Response<Vec<Message>>,
    max_pages: usize,
) -> Vec<Vec<Message>> {
    let mut pages = Vec::new();
    let mut page = first;
    loop {
        let next = client
            .follow_next(&page)
            .await
            .expect("the next page loads");
        pages.push(page.body);
        match next {
            Some(next) => page = next,
            None => return pages,
        }
        assert!(pages.len() < max_pages, "more than {max_pages} pages");
    }
}

/// The `seq` of every message, in list order.
pub fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Runs the real `missive` binary with `args` (a subcommand such as
/// `backup` or `migrate`) against `database_url`, on one node (no Redis),
/// and waits for it to exit.
pub async fn run_missive(args: &[&str], database_url: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_missive"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("LOG_LEVEL", "WARN")
        .env_remove("REDIS_URL");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the task runs")
        .expect("the binary runs")
}

/// What a run of the binary printed, stdout then stderr.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `Content-Length` of a raw HTTP response head (0 when absent), for
/// the tests that speak HTTP over a bare socket.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}
