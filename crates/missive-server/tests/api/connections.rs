//! The connection limits: request heads must arrive in time, idle keep-alives
//! close, an oversized head is refused as it arrives, and past
//! `MAX_CONNECTIONS` new clients wait until a slot frees.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, content_length, spawn_app_with};

const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const IDLE_TIMEOUT: Duration = Duration::from_millis(2500);

async fn spawn_with_timeouts(max_connections: usize) -> TestApp {
    spawn_app_with(|config| {
        config.http_header_timeout = HEADER_TIMEOUT;
        config.http_idle_timeout = IDLE_TIMEOUT;
        config.max_connections = max_connections;
    })
    .await
}

/// Reads until the server closes the socket (EOF or reset); returns what was read.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None, // still open
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A raw keep-alive request; returns once the whole (small, `Content-Length`) response is in.
async fn raw_get_healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("the request is written");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the response arrives")
            .expect("the socket reads");
        assert!(n > 0, "the server closed the connection before answering");
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = content_length(&text[..head_end]);
            if received.len() >= head_end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test]
async fn connections_dribbling_a_header_are_closed_within_the_header_timeout_while_others_are_served()
 {
    let app = spawn_with_timeouts(1024).await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(app.address).await.expect("connects");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .expect("the start of a head is written");
        slow.push(stream);
    }
    let started = Instant::now();
    let dribblers = slow
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                // One byte every 100 ms: each write is "progress", the head never ends.
                for _ in 0..100 {
                    if stream.write_all(b"a").await.is_err() {
                        return started.elapsed();
                    }
                    if let Some(rest) =
                        read_until_closed(&mut stream, Duration::from_millis(100)).await
                    {
                        assert!(
                            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
                            "{rest:?}"
                        );
                        return started.elapsed();
                    }
                }
                panic!("a dribbling connection stayed open for 10 s");
            })
        })
        .collect::<Vec<_>>();

    // A normal client keeps being served meanwhile.
    let mut served = 0;
    while started.elapsed() < HEADER_TIMEOUT * 2 {
        let response = app
            .client
            .healthz()
            .await
            .expect("a normal client is served");
        assert_eq!(response.status, 200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 10, "only {served} requests were served");

    for dribbler in dribblers {
        let closed_after = dribbler.await.expect("the dribbler does not panic");
        assert!(
            closed_after < HEADER_TIMEOUT + Duration::from_millis(1500),
            "a dribbling connection was closed only after {closed_after:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = spawn_with_timeouts(1024).await;
    let mut silent = TcpStream::connect(app.address).await.expect("connects");
    let started = Instant::now();

    let closed = read_until_closed(&mut silent, Duration::from_secs(5)).await;

    assert!(
        closed.is_some(),
        "the silent connection is still open after 5 s"
    );
    let after = started.elapsed();
    assert!(
        after >= HEADER_TIMEOUT - Duration::from_millis(100) && after < HEADER_TIMEOUT * 3,
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_timeout() {
    let app = spawn_with_timeouts(1024).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    assert!(
        raw_get_healthz(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );

    // Idle for longer than the header timeout, less than the idle timeout: still usable.
    tokio::time::sleep(HEADER_TIMEOUT + Duration::from_millis(500)).await;
    assert!(
        raw_get_healthz(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );

    let idle_from = Instant::now();
    let closed = read_until_closed(&mut stream, IDLE_TIMEOUT * 3).await;
    assert!(closed.is_some(), "the idle connection is still open");
    let after = idle_from.elapsed();
    assert!(
        after >= IDLE_TIMEOUT - Duration::from_millis(100),
        "an idle keep-alive closed early, after {after:?}"
    );
}

#[tokio::test]
async fn an_oversized_header_block_is_refused_with_431_before_it_is_all_sent() {
    let app = spawn_with_timeouts(1024).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .expect("the request line is written");

    // An unterminated header block of up to 1 MB, written in 8 KiB lines.
    let line = format!("X-Filler: {}\r\n", "f".repeat(8 * 1024));
    let mut written = 0;
    let mut refused_after = None;
    for _ in 0..128 {
        if stream.write_all(line.as_bytes()).await.is_err() {
            refused_after = Some(written);
            break;
        }
        written += line.len();
        let mut peek = [0u8; 64];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut peek)).await
            && n > 0
        {
            assert!(
                peek.starts_with(b"HTTP/1.1 431"),
                "{:?}",
                String::from_utf8_lossy(&peek[..n])
            );
            refused_after = Some(written);
            break;
        }
    }

    let refused_after = refused_after.expect("the server refused the header block");
    assert!(
        refused_after <= 128 * 1024,
        "the server read {refused_after} bytes of headers before refusing"
    );
    // The server stays healthy.
    assert_eq!(app.client.healthz().await.expect("healthy").status, 200);
}

#[tokio::test]
async fn past_max_connections_new_clients_wait_and_are_served_once_slots_free() {
    const MAX: usize = 8;
    let app = spawn_app_with(|config| {
        config.max_connections = MAX;
        config.http_header_timeout = Duration::from_secs(30);
    })
    .await;
    let mut holders = Vec::new();
    for _ in 0..MAX {
        let mut stream = TcpStream::connect(app.address).await.expect("connects");
        // Each one is a live keep-alive connection the server has accepted.
        assert!(
            raw_get_healthz(&mut stream)
                .await
                .starts_with("HTTP/1.1 200")
        );
        holders.push(stream);
    }

    // One more: the kernel completes the handshake, but the server does not accept it yet.
    let mut waiting = TcpStream::connect(app.address).await.expect("connects");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("the request is written");
    let mut first = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut first)).await;
    assert!(early.is_err(), "the server answered past MAX_CONNECTIONS");

    drop(holders);

    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut first))
        .await
        .expect("the waiting client is served once the others close")
        .expect("reads");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(app.client.healthz().await.expect("healthy").status, 200);
}

/// Sends `request` raw and returns the whole answer (the server closes the
/// connection after a request it cannot parse).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    // The server may answer and close before all of it is written.
    let _ = stream.write_all(request).await;
    let received = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&received).into_owned()
}

/// Asserts a raw answer has `status` and the `{"code","message"}` body with `code`.
fn assert_json_error(answer: &str, status: &str, code: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{answer}");
    assert!(
        lower.contains(&format!("content-length: {}", body.len())),
        "{answer}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], code, "{answer}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

#[tokio::test]
async fn requests_hyper_refuses_before_the_router_get_the_json_error_body() {
    let app = spawn_with_timeouts(1024).await;

    let mut many_headers = b"GET /healthz HTTP/1.1\r\nHost: test\r\n".to_vec();
    for i in 0..101 {
        many_headers.extend_from_slice(format!("X-H{i}: a\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    assert_json_error(
        &raw_exchange(&app, &many_headers).await,
        "431",
        "headers_too_large",
    );

    let long_uri = format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: test\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert_json_error(
        &raw_exchange(&app, long_uri.as_bytes()).await,
        "431",
        "headers_too_large",
    );

    // A URL that fits hyper's buffer bound only loosely (one read brings
    // it in whole) but makes the head larger than 32 KiB.
    for url_bytes in [32 * 1024, 49_088] {
        let url = format!("/healthz?{}", "a".repeat(url_bytes - "/healthz?".len()));
        let request = format!("GET {url} HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_json_error(
            &raw_exchange(&app, request.as_bytes()).await,
            "431",
            "headers_too_large",
        );
    }
    // Just under: served.
    let url = format!("/healthz?{}", "a".repeat(30 * 1024));
    let request = format!("GET {url} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert!(
        raw_exchange(&app, request.as_bytes())
            .await
            .starts_with("HTTP/1.1 200 "),
    );

    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nHost: test\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        assert_json_error(&raw_exchange(&app, bad).await, "400", "invalid_request");
    }

    // Ordinary answers are untouched, and the server stays healthy.
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    assert!(
        raw_get_healthz(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(app.client.healthz().await.expect("healthy").status, 200);
}
