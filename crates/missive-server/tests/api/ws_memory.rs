//! Resident memory per idle WebSocket connection, measured on the real
//! binary (run on demand):
//!
//! `cargo build --release -p missive-server && MISSIVE_BIN=target/release/missive \
//!  cargo test -p missive-server --test api ws_memory -- --ignored --nocapture`
//!
//! The number depends on the build profile: the 10 KiB budget is for the
//! release binary (a debug build carries larger futures, ≈ 18 KiB). Without
//! `MISSIVE_BIN` the test runs the debug binary of this test build.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use missive_client::Client;
use missive_client::ws::{Connection, WsQuery};

/// Idle connections opened.
const CONNECTIONS: usize = 2000;
/// Users the connections claim (several connections each).
const USERS: usize = 5;
/// The budget per idle connection.
const MAX_KIB_PER_CONNECTION: f64 = 10.0;

/// The binary as a child process; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

async fn start(dir: &Path) -> (Server, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let log = File::create(dir.join("server.log")).expect("a log file");
    let bin =
        std::env::var("MISSIVE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_missive").to_owned());
    let child = Command::new(bin)
        .env("PORT", port.to_string())
        .env("BIND", "127.0.0.1")
        // SQLite only, on purpose: this measures the server's own memory per
        // idle socket, which does not depend on the store.
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("memory.db").display()),
        )
        .env("AUTH_MODE", "open")
        .env("SEND_RATE_LIMIT", "0")
        .env("AUTH_RATE_LIMIT", "0")
        // 2,000 sockets of 5 users, all from 127.0.0.1.
        .env("MAX_CONNECTIONS_PER_ADDRESS", "0")
        .env("MAX_SOCKETS_PER_USER", "0")
        .env("LOG_LEVEL", "WARN")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let server = Server(child);
    let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("a valid base url");
    let started = Instant::now();
    while client.healthz().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not answer /healthz within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, client)
}

async fn open_idle(client: &Client, phone: &str) -> Connection {
    let mut conn = Connection::connect(client.base_url().as_str(), &WsQuery::user(phone))
        .await
        .expect("the upgrade succeeds");
    conn.next_frame(Duration::from_secs(10))
        .await
        .expect("a ready frame");
    conn
}

#[tokio::test]
#[ignore = "measures the real binary's memory; run on demand with --ignored --nocapture"]
async fn an_idle_websocket_costs_at_most_10_kib_of_resident_memory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, client) = start(dir.path()).await;
    let pid = server.0.id();
    let phones: Vec<String> = (0..USERS).map(|i| format!("+3100000{i:04}")).collect();
    for phone in &phones {
        client.register(phone, None).await.expect("registered");
    }
    // Warm up: the first connections size the runtime's and allocator's pools.
    let mut warm = Vec::new();
    for phone in &phones {
        warm.push(open_idle(&client, phone).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib(pid);

    let mut connections = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        connections.push(open_idle(&client, &phones[i % USERS]).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_kib(pid);

    let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    let binary =
        std::env::var("MISSIVE_BIN").unwrap_or_else(|_| "the test's debug build".to_owned());
    println!(
        "VmRSS {before} KiB -> {after} KiB with {CONNECTIONS} idle connections: \
         {per_connection:.2} KiB per connection (binary: {binary})"
    );
    assert!(
        per_connection <= MAX_KIB_PER_CONNECTION,
        "{per_connection:.2} KiB per idle connection (budget {MAX_KIB_PER_CONNECTION} KiB)"
    );
    drop(connections);
    drop(warm);
}
