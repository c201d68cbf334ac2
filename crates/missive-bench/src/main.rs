//! `missive-bench`: the load generator of missive (targets in `docs/benchmarks.md`).
//!
//! Each run starts the server binary on a free loopback port with a fresh
//! SQLite file (`SEND_RATE_LIMIT=0`, `AUTH_RATE_LIMIT=0`, `AUTH_MODE=open`,
//! `LOG_LEVEL=WARN`), drives one scenario with real users over real sockets,
//! prints a short table and one JSON line with the numbers, and stops the
//! server with SIGTERM. Every loop is bounded in count and in time
//! (`--max-seconds`). The exit status is 1 when the run saw a failure
//! (a lost or duplicated message, a non-201, a dropped connection).
//!
//! Scenarios:
//! - `idle`: resident memory per idle WebSocket connection;
//! - `ws`: WebSocket send → recipient throughput and end-to-end latency,
//!   full speed (pipelined) or paced (`--rate`);
//! - `http`: `POST /messages` requests per second and latency;
//! - `soak`: a long mixed run (idle sockets, active pairs, receipts, typing,
//!   reconnects), optionally SIGKILLing the server on a schedule, checking
//!   zero loss and zero duplicates and tracking RSS, descriptors and p99.

mod http;
mod idle;
mod report;
mod server;
mod setup;
mod soak;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "missive-bench",
    about = "Load generator of missive: starts the server, drives real users over real sockets"
)]
struct Cli {
    /// The server binary to start.
    #[arg(long, global = true, default_value = "target/release/missive")]
    server_bin: PathBuf,
    /// Worker threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// Upper bound on one run, setup included, in seconds.
    #[arg(long, global = true, default_value_t = 60.0)]
    max_seconds: f64,
    #[command(subcommand)]
    scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Resident memory per idle WebSocket connection.
    Idle(idle::IdleArgs),
    /// WebSocket send → recipient: throughput, end-to-end latency, exactly-once delivery.
    Ws(ws::WsArgs),
    /// HTTP `POST /messages`: requests per second and latency.
    Http(http::HttpArgs),
    /// A long mixed run with optional SIGKILLs (its length is `--minutes`, not `--max-seconds`).
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("missive-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("missive-bench: the run saw failures (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("missive-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the server, runs the scenario, stops the server.
async fn run(cli: &Cli) -> anyhow::Result<bool> {
    if let Scenario::Soak(args) = &cli.scenario {
        // The soak manages its own server: it kills and restarts it.
        return soak::run(&cli.server_bin, args).await;
    }
    let server = server::Server::start(&cli.server_bin).await?;
    eprintln!("server pid {} at {}", server.pid(), server.base);
    let deadline = Instant::now() + Duration::from_secs_f64(cli.max_seconds.max(1.0));
    let outcome = match &cli.scenario {
        Scenario::Idle(args) => idle::run(&server, args, deadline).await,
        Scenario::Ws(args) => ws::run(&server, args, cli.threads, deadline).await,
        Scenario::Http(args) => http::run(&server, args, cli.threads, deadline).await,
        Scenario::Soak(_) => unreachable!("handled above"),
    };
    let stopped = server.stop().await?;
    eprintln!(
        "server stopped by SIGTERM in {:.2} s, exit code {}",
        stopped.seconds,
        stopped
            .exit_code
            .map_or_else(|| "none (signal)".to_owned(), |code| code.to_string())
    );
    for line in stopped.log_warnings.iter().take(10) {
        eprintln!("server log: {line}");
    }
    if stopped.log_warnings.len() > 10 {
        eprintln!(
            "server log: … {} more WARN/ERROR lines",
            stopped.log_warnings.len() - 10
        );
    }
    let ok = outcome?;
    Ok(ok && stopped.exit_code == Some(0))
}

/// Raises this process's soft open-file limit to its hard limit; the server,
/// started from here, inherits it. Idle runs need one descriptor per
/// connection on each side.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => eprintln!("open-file limit: {limit}"),
        Err(e) => {
            eprintln!("warning: could not raise the open-file limit ({e}); try `ulimit -n 20000`")
        }
    }
}
