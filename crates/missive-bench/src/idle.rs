//! `idle`: how much resident memory one idle WebSocket costs the server.
//!
//! One user per connection is registered first; then the server's RSS is
//! read, the connections are opened in concurrent batches (each waits for
//! its `ready` frame), the server is left alone to settle, and its RSS is
//! read again.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::report::{emit, round3};
use crate::server::Server;
use crate::setup::{self, Socket};

/// Options of `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle WebSocket connections to open (one user each).
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Connections opened concurrently per batch.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Seconds to wait after the last connection before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// Runs the scenario; `Ok(false)` when a connection failed or was dropped.
pub async fn run(server: &Server, args: &IdleArgs, deadline: Instant) -> anyhow::Result<bool> {
    let client = setup::client(&server.base)?;
    eprintln!("registering {} users", args.connections);
    let users = tokio::time::timeout_at(
        deadline.into(),
        setup::register_users(&client, 3, args.connections),
    )
    .await
    .context("registering the users took too long")??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kib()?;

    // The client's own buffers are kept small too: only the server is measured,
    // but 15,000 sockets with 128 KiB read buffers would crowd this box.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut sockets: Vec<Socket> = Vec::with_capacity(args.connections);
    let mut failures = 0usize;
    let mut first_error = None;
    let opening = Instant::now();
    eprintln!("opening {} connections", args.connections);
    for batch in users.chunks(args.batch.max(1)) {
        if Instant::now() >= deadline {
            first_error.get_or_insert_with(|| "deadline reached while connecting".to_owned());
            break;
        }
        let opened = join_all(batch.iter().map(|user| {
            setup::connect_ws(
                &server.base,
                &user.token,
                Some(config),
                Duration::from_secs(10),
            )
        }))
        .await;
        for result in opened {
            match result {
                Ok(socket) => sockets.push(socket),
                Err(e) => {
                    failures += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
    }
    let open_seconds = opening.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_after = server.rss_kib()?;
    let peak_rss = server.peak_rss_kib()?;

    // Still open? A closed socket has its close frame or EOF waiting.
    let mut dropped = 0usize;
    for socket in &mut sockets {
        if let Some(next) = socket.next().now_or_never() {
            match next {
                Some(Ok(message)) if !message.is_close() => {}
                _ => dropped += 1,
            }
        }
    }
    let open = sockets.len();
    drop(sockets);

    let per_connection = if open > 0 {
        rss_after.saturating_sub(rss_before) as f64 / open as f64
    } else {
        0.0
    };
    let ok = failures == 0 && dropped == 0 && open == args.connections;
    let record = json!({
        "scenario": "idle",
        "connections_requested": args.connections,
        "connections_open": open,
        "connect_failures": failures,
        "dropped_after_settle": dropped,
        "first_error": first_error,
        "open_seconds": round3(open_seconds),
        "connections_per_second": round3(open as f64 / open_seconds.max(1e-9)),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "peak_rss_kib": peak_rss,
        "kib_per_connection": round3(per_connection),
        "ok": ok,
    });
    let mut rows = vec![
        (
            "connections",
            format!("{open} open of {}", args.connections),
        ),
        (
            "opened in",
            format!(
                "{open_seconds:.2} s ({:.0}/s)",
                open as f64 / open_seconds.max(1e-9)
            ),
        ),
        ("server RSS before", format!("{rss_before} KiB")),
        ("server RSS after", format!("{rss_after} KiB")),
        ("KiB per connection", format!("{per_connection:.2}")),
        ("failures / dropped", format!("{failures} / {dropped}")),
    ];
    if let Some(error) = &first_error {
        rows.push(("first error", error.clone()));
    }
    emit("idle WebSocket connections", &rows, &record);
    Ok(ok)
}
