//! Helpers of the authentication tests: a stand-in SMS gateway that records
//! the login codes the server posts to `OTP_WEBHOOK_URL`, logging in through
//! it, requests carrying any `Authorization` header, and polling for a
//! revocation to take effect.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use missive_client::protocol::Session;
use missive_client::{Client, Method, RawResponse};
use serde_json::Value;
use tokio::task::JoinHandle;

/// How the stand-in gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    /// 200: the SMS is on its way.
    Deliver,
    /// 500: the gateway is broken.
    Fail,
    /// Never answers.
    Hang,
}

#[derive(Clone, Default)]
struct Shared {
    posts: Arc<Mutex<Vec<Value>>>,
    mode: Arc<AtomicU8>,
}

/// An SMS gateway on `127.0.0.1:<random port>` recording every `POST /sms`
/// body (in every mode, before answering).
pub struct SmsGateway {
    /// The webhook URL to configure as `OTP_WEBHOOK_URL`.
    pub url: String,
    shared: Shared,
    server: JoinHandle<()>,
}

impl SmsGateway {
    /// Starts a gateway that delivers (answers 200).
    pub async fn start() -> SmsGateway {
        let shared = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address: SocketAddr = listener.local_addr().expect("a local address");
        let app = Router::new()
            .route("/sms", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the SMS gateway serves");
        });
        SmsGateway {
            url: format!("http://{address}/sms"),
            shared,
            server,
        }
    }

    /// Switches how the following posts are answered.
    pub fn set_mode(&self, mode: GatewayMode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Every body posted so far, in order.
    pub fn posts(&self) -> Vec<Value> {
        self.shared
            .posts
            .lock()
            .expect("the lock is healthy")
            .clone()
    }

    /// The code of the latest post for `phone`, checking the post's exact shape.
    pub fn last_code(&self, phone: &str) -> String {
        let post = self
            .posts()
            .into_iter()
            .rev()
            .find(|p| p["phoneNumber"] == phone)
            .unwrap_or_else(|| panic!("the gateway got no code for {phone}"));
        let object = post.as_object().expect("the post is a JSON object");
        assert_eq!(
            object.len(),
            2,
            "the post is exactly {{\"phoneNumber\",\"code\"}}: {post}"
        );
        let code = post["code"].as_str().expect("the code is a string");
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "the code is six digits: {code:?}"
        );
        code.to_owned()
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// POST /sms of the stand-in gateway.
async fn receive(State(shared): State<Shared>, Json(body): Json<Value>) -> StatusCode {
    shared.posts.lock().expect("the lock is healthy").push(body);
    match shared.mode.load(Ordering::SeqCst) {
        m if m == GatewayMode::Fail as u8 => StatusCode::INTERNAL_SERVER_ERROR,
        m if m == GatewayMode::Hang as u8 => std::future::pending().await,
        _ => StatusCode::OK,
    }
}

/// Logs `phone` in on a new device: `POST /sessions`, then `POST
/// /sessions/verify` with the code `gateway` received; returns the session.
pub async fn login(client: &Client, gateway: &SmsGateway, phone: &str) -> Session {
    let sent = client.login(phone).await.expect("the code is sent");
    assert_eq!(sent.status, 202);
    let code = gateway.last_code(phone);
    let session = client
        .verify(phone, &code)
        .await
        .expect("the right code is accepted");
    assert_eq!(session.status, 201);
    session.body
}

/// A different six-digit code than `code`.
pub fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().expect("a numeric code");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// `phone` for a query string (`+` would read as a space).
pub fn query_phone(phone: &str) -> String {
    phone.replace('+', "%2B")
}

/// Sends `method path` to the server of `client` with the literal
/// `Authorization` header `authorization` and an optional JSON `body`.
pub async fn raw_with_authorization(
    client: &Client,
    method: Method,
    path: &str,
    authorization: &str,
    body: Option<&Value>,
) -> RawResponse {
    let url = format!("{}{path}", client.base_url().as_str().trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header(reqwest::header::AUTHORIZATION, authorization);
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let answer = request.send().await.expect("the server answers");
    RawResponse {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.text().await.expect("the body is text"),
    }
}

/// A WebSocket upgrade request (`GET /ws` with the handshake headers) whose
/// `Authorization` header is the literal `authorization`; returns the answer.
pub async fn upgrade_with_authorization(client: &Client, authorization: &str) -> RawResponse {
    let url = format!("{}/ws", client.base_url().as_str().trim_end_matches('/'));
    let answer = reqwest::Client::new()
        .get(url)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header(reqwest::header::CONNECTION, "Upgrade")
        .header(reqwest::header::UPGRADE, "websocket")
        .header(reqwest::header::SEC_WEBSOCKET_VERSION, "13")
        .header(
            reqwest::header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==",
        )
        .send()
        .await
        .expect("the server answers");
    RawResponse {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.text().await.expect("the body is text"),
    }
}

/// Calls `probe` until it returns `true` or `within` has passed; returns how
/// long it took, or `None` if it never did.
pub async fn eventually<F, Fut>(within: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts a 429 `rate_limited` with a `Retry-After` of whole seconds; returns them.
pub fn assert_rate_limited(raw: &RawResponse) -> u64 {
    crate::helpers::assert_raw_error(raw, 429, "rate_limited");
    let retry_after = raw.header("retry-after").expect("a Retry-After header");
    retry_after
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {retry_after:?}"))
}
