//! PostgreSQL going away: requests get `503 unavailable` (not a 500, not a
//! hang), `/readyz` says so, and the server recovers by itself once the
//! database is back. The loss is staged by a TCP proxy of this test between
//! the app and PostgreSQL, which the test cuts and restores — the machine's
//! PostgreSQL itself is never stopped. PostgreSQL-only by nature; skipped
//! loudly when PostgreSQL is unreachable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{ALICE, BOB, TestAppBuilder, assert_error};
use crate::test_db::TestDb;

/// Forwards TCP to `upstream` until cut; while cut, it drops every
/// connection it has and every new one.
struct Proxy {
    address: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("an address");
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut downstream, _)) = listener.accept().await {
                if *watching.borrow() {
                    drop(downstream);
                    continue;
                }
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut downstream, &mut up) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { address, cut, task }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where PostgreSQL listens, and the URL of `db` through `proxy` instead.
pub(crate) fn upstream_and_url(db: &TestDb, proxy: SocketAddr) -> (SocketAddr, String) {
    let config: tokio_postgres::Config = db.url().parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the outage test needs a TCP host, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("the host resolves")
        .next()
        .expect("an address");
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let name = config.get_dbname().expect("a database name");
    (
        upstream,
        format!("postgres://{user}{password}@{proxy}/{name}"),
    )
}

/// Retries `probe` every 200 ms until it is true, for at most `limit`.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_postgres_gives_503_and_the_server_recovers_when_it_is_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // A placeholder proxy address first, to learn the upstream.
    let (upstream, _) = upstream_and_url(&db, "127.0.0.1:1".parse().expect("an address"));
    let proxy = Proxy::start(upstream).await;
    let (_, url) = upstream_and_url(&db, proxy.address);
    let app = TestAppBuilder::new()
        .database(Arc::new(db))
        .configure(move |config| config.database_url = url)
        .spawn()
        .await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let before = alice.send_to(BOB, "before the outage").await;
    assert_eq!(app.client.readyz().await.expect("ready").status, 200);

    proxy.cut();

    let started = Instant::now();
    assert_error(
        alice
            .client
            .send_message(&missive_client::protocol::SendMessageRequest {
                receiver: Some(BOB.to_owned()),
                content: "during the outage".into(),
                ..Default::default()
            })
            .await,
        503,
        "unavailable",
    );
    assert_error(app.client.readyz().await, 503, "unavailable");
    assert_error(
        app.client.register("+4400000001", None).await,
        503,
        "unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the 503s come within the pool's timeouts, took {:?}",
        started.elapsed()
    );

    proxy.restore();

    eventually(Duration::from_secs(20), "ready again", || async {
        matches!(app.client.readyz().await, Ok(r) if r.status == 200)
    })
    .await;
    let after = alice.send_to(BOB, "after the outage").await;
    let listed = alice.messages(before.chat_id, 10).await;
    let contents: Vec<&str> = listed.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, vec!["after the outage", "before the outage"]);
    assert_eq!(after.seq, before.seq + 1);
}
