//! PostgreSQL stalling: it stops answering but keeps its connections open
//! (a frozen server, a partition that drops nothing). Sends, reads,
//! registrations and `/readyz` answer `503 unavailable` within the store's
//! deadline instead of hanging, and everything recovers by itself once the
//! database answers again. The stall is staged by a TCP proxy of this test
//! that stops forwarding without closing anything. PostgreSQL-only by
//! nature; skipped loudly when PostgreSQL is unreachable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_client::protocol::SendMessageRequest;
use missive_client::{Client, ClientError, MessagesQuery, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{ALICE, BOB, TestAppBuilder, assert_error};
use crate::pg_outage::{eventually, upstream_and_url};
use crate::test_db::TestDb;

/// The bound the README promises for a store call on PostgreSQL (5 s), with
/// room for a loaded test machine; the documented ceiling is 10 s.
const BOUND: Duration = Duration::from_secs(9);

/// Forwards TCP to `upstream`; while paused it neither reads nor writes,
/// but keeps every socket open (and accepts new connections, which then
/// hang in their handshake) — what a stalled server looks like.
struct StallingProxy {
    address: SocketAddr,
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    async fn start(upstream: SocketAddr) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("an address");
        let (paused, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                let watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (down_read, down_write) = downstream.into_split();
                    let (up_read, up_write) = up.into_split();
                    tokio::join!(
                        pump(down_read, up_write, watching.clone()),
                        pump(up_read, down_write, watching),
                    );
                });
            }
        });
        StallingProxy {
            address,
            paused,
            task,
        }
    }

    fn pause(&self) {
        self.paused.send_replace(true);
    }

    fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, waiting (sockets open) whenever the switch says paused.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read just as the pause began: held until it ends.
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Runs `call`, returning its result and how long it took; fails the test
/// when it hangs (for three times the bound).
async fn timed<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<Response<T>, ClientError>>,
) -> (Result<Response<T>, ClientError>, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(3 * BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hangs on a stalled database"));
    (result, started.elapsed())
}

fn request(content: &str, client_message_id: &str) -> SendMessageRequest {
    SendMessageRequest {
        receiver: Some(BOB.to_owned()),
        content: content.to_owned(),
        client_message_id: Some(client_message_id.to_owned()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_postgres_gives_503_within_the_bound_and_the_server_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (upstream, _) = upstream_and_url(&db, "127.0.0.1:1".parse().expect("an address"));
    let proxy = StallingProxy::start(upstream).await;
    let (_, url) = upstream_and_url(&db, proxy.address);
    let app = TestAppBuilder::new()
        .database(Arc::new(db))
        .configure(move |config| {
            config.database_url = url;
            config.database_pool_size = 4;
        })
        .spawn()
        .await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let before = alice.send_to(BOB, "before the stall").await;
    let query = MessagesQuery {
        limit: Some(10),
        ..MessagesQuery::default()
    };
    assert_eq!(
        bob.client
            .list_messages(before.chat_id, &query)
            .await
            .expect("a listing")
            .status,
        200
    );
    assert_eq!(app.client.readyz().await.expect("ready").status, 200);

    proxy.pause();

    // All four at once, as the clients of a node would hit it.
    let stalled_send = request("during the stall", "stall-1");
    let anonymous: &Client = &app.client;
    let (send, read, register, ready) = tokio::join!(
        timed("send", alice.client.send_message(&stalled_send)),
        timed("read", bob.client.list_messages(before.chat_id, &query)),
        timed("register", anonymous.register("+4400000001", None)),
        timed("readyz", anonymous.readyz()),
    );
    eprintln!(
        "stalled: send {:?}, read {:?}, register {:?}, readyz {:?}",
        send.1, read.1, register.1, ready.1
    );
    for (what, took) in [
        ("send", send.1),
        ("read", read.1),
        ("register", register.1),
        ("readyz", ready.1),
    ] {
        assert!(took < BOUND, "{what} took {took:?} on a stalled database");
    }
    assert_error(send.0, 503, "unavailable");
    assert_error(read.0, 503, "unavailable");
    assert_error(register.0, 503, "unavailable");
    assert_error(ready.0, 503, "unavailable");

    proxy.resume();
    let resumed = Instant::now();

    eventually(Duration::from_secs(15), "ready again", || async {
        matches!(app.client.readyz().await, Ok(r) if r.status == 200)
    })
    .await;
    eprintln!("ready again {:?} after the stall ended", resumed.elapsed());
    // The retry of the stalled send stores it once.
    let retried = alice
        .client
        .send_message(&stalled_send)
        .await
        .expect("the retry is stored");
    assert_eq!(retried.status, 201);
    let after = alice.send_to(BOB, "after the stall").await;
    let listed = bob
        .client
        .list_messages(before.chat_id, &query)
        .await
        .expect("a listing after the stall");
    assert_eq!(listed.status, 200);
    let contents: Vec<&str> = listed.body.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        vec!["after the stall", "during the stall", "before the stall"]
    );
    assert_eq!(after.seq, before.seq + 2);
    assert_eq!(
        app.client
            .register("+4400000001", None)
            .await
            .expect("registration after the stall")
            .status,
        201
    );
}
