//! One client cannot take every connection (README, "Security model",
//! "Connections"): a request body must arrive within `HTTP_BODY_TIMEOUT`
//! (408, then the connection closes), one client address holds at most
//! `MAX_CONNECTIONS_PER_ADDRESS` connections (the next ones get 429 and are
//! closed at once), and one user at most `MAX_SOCKETS_PER_USER` WebSockets
//! (the next upgrade gets 429 `too_many_connections`). Whoever is at a cap,
//! the other clients are served at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use missive_client::ws::WsQuery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::dns_rebinding::exchange;
use crate::helpers::{ALICE, BOB, spawn_app_with};
use crate::ws_helpers::{open, open_as, refused};

/// Connects to `server` from the loopback address `source` (Linux routes all
/// of 127.0.0.0/8 to the loopback interface, so 127.0.0.2 is another client).
async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("binds the source address");
    socket.connect(server).await.expect("connects")
}

/// The head of a `POST /messages` whose body of `length` bytes never comes whole.
fn dribbled_post(length: usize) -> String {
    format!(
        "POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"content\":"
    )
}

/// Reads until the server closes the connection (EOF or reset), at most `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn a_body_dribbled_past_the_body_timeout_gets_408_and_the_connection_closes() {
    const BODY_TIMEOUT: Duration = Duration::from_millis(1500);
    let app = spawn_app_with(|config| config.http_body_timeout = BODY_TIMEOUT).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    stream
        .write_all(dribbled_post(1000).as_bytes())
        .await
        .expect("the head is written");
    let started = Instant::now();
    // One byte every 200 ms: progress, but the body never ends.
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed_after = loop {
        assert!(
            started.elapsed() < BODY_TIMEOUT * 4,
            "the dribbling body is still being read after {:?}",
            started.elapsed()
        );
        let _ = stream.write_all(b" ").await;
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut chunk)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    };
    let answer = String::from_utf8_lossy(&received);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], "request_timeout", "{answer}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        closed_after >= BODY_TIMEOUT - Duration::from_millis(100)
            && closed_after < BODY_TIMEOUT + Duration::from_secs(2),
        "closed after {closed_after:?}"
    );

    // A body sent at an ordinary pace, in pieces, is still read.
    let mut stream = TcpStream::connect(app.address).await.expect("connects");
    let body = r#"{"sender":"+1234567890","receiver":"+0987654321","content":"hi"}"#;
    let (first, rest) = body.split_at(20);
    stream
        .write_all(
            format!(
                "POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("written");
    tokio::time::sleep(BODY_TIMEOUT / 3).await;
    let answer = exchange(&mut stream, rest).await;
    // The users are not registered: the body was read and judged.
    answer.assert_error(404, "user_not_found");
}

#[tokio::test]
async fn an_address_at_its_cap_of_dribbling_connections_leaves_other_addresses_served_at_once() {
    const MAX: usize = 20;
    const PER_ADDRESS: usize = 8;
    let app = spawn_app_with(|config| {
        config.max_connections = MAX;
        config.max_connections_per_address = PER_ADDRESS;
        config.http_header_timeout = Duration::from_secs(30);
        config.http_body_timeout = Duration::from_secs(30);
    })
    .await;
    // 127.0.0.1 holds its cap with bodies that never end, then tries for
    // every remaining slot of the node.
    let mut held = Vec::new();
    for _ in 0..PER_ADDRESS {
        let mut stream = connect_from([127, 0, 0, 1], app.address).await;
        stream
            .write_all(dribbled_post(1000).as_bytes())
            .await
            .expect("written");
        held.push(stream);
    }
    // Let the server accept them all before the next ones come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for _ in PER_ADDRESS..MAX {
        let mut extra = connect_from([127, 0, 0, 1], app.address).await;
        let _ = extra.write_all(dribbled_post(1000).as_bytes()).await;
        let answer = read_to_close(&mut extra, Duration::from_secs(2))
            .await
            .expect("a connection past the address's cap is closed at once");
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 429 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        if !answer.is_empty() {
            let text = String::from_utf8_lossy(&answer);
            assert!(text.contains("\"too_many_connections\""), "{text}");
            assert!(text.contains("retry-after: 5\r\n"), "{text}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refusing took {:?}",
        started.elapsed()
    );

    // Another address is served at once.
    for _ in 0..3 {
        let started = Instant::now();
        let mut other = connect_from([127, 0, 0, 2], app.address).await;
        let answer = tokio::time::timeout(
            Duration::from_secs(1),
            exchange(
                &mut other,
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            ),
        )
        .await
        .expect("another address is answered within a second");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // The held connections are still open (their body timeout is 30 s).
    let mut probe = [0u8; 1];
    for stream in &mut held {
        assert!(
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut probe))
                .await
                .is_err(),
            "a connection within the cap was closed"
        );
    }
    // Once one closes, the address gets a connection again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from([127, 0, 0, 1], app.address).await;
    let answer = exchange(
        &mut again,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn a_user_at_max_sockets_per_user_gets_429_and_other_users_connect() {
    const PER_USER: usize = 3;
    let app = spawn_app_with(|config| {
        config.max_sockets_per_user = PER_USER;
        config.max_connections = 50;
    })
    .await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut sockets = Vec::new();
    for _ in 0..PER_USER {
        sockets.push(open_as(&alice).await);
    }
    // By token or by claim, the next one is refused before the upgrade.
    for query in [WsQuery::token(&alice.token), WsQuery::user(ALICE)] {
        let error = refused(&app.client, &query).await;
        assert_eq!(error.status(), Some(429), "{error:?}");
        assert_eq!(error.code().as_deref(), Some("too_many_connections"));
    }
    // Another user connects at once; Alice's sockets still work.
    let started = Instant::now();
    let mut bob_socket = open_as(&bob).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let sent = alice.send_to(BOB, "still here").await;
    for socket in &mut sockets {
        assert_eq!(socket.next_message().await.0.id, sent.id);
    }
    assert_eq!(bob_socket.next_message().await.0.id, sent.id);

    // A closed socket gives its place back.
    let closed = sockets.pop().expect("a socket");
    closed.conn.close().await.expect("closes");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match missive_client::ws::Connection::connect(
            app.client.base_url().as_str(),
            &WsQuery::token(&alice.token),
        )
        .await
        {
            Ok(conn) => {
                let _ = conn.close().await;
                break;
            }
            Err(e) if e.status() == Some(429) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the place of the closed socket is not given back: {e:?}"),
        }
    }
    let _ = open(&bob.client, &WsQuery::token(&bob.token)).await;
}
