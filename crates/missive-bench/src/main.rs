//! `missive-bench`: the load generator of missive (targets in `docs/benchmarks.md`).
//!
//! Each run starts the server binary on a free loopback port with a fresh
//! SQLite file (`SEND_RATE_LIMIT=0`, `AUTH_RATE_LIMIT=0`, `AUTH_MODE=open`,
//! `LOG_LEVEL=WARN`) — or on a fresh PostgreSQL database (`--store postgres`),
//! or two such nodes sharing it and Redis (`--cluster`) — drives one scenario with real users over real sockets,
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
//! - `wrk`: the same through `wrk` (a far cheaper client than the bench's own);
//! - `soak`: a long mixed run (idle sockets, active pairs, receipts, typing,
//!   reconnects), optionally SIGKILLing the server on a schedule, checking
//!   zero loss and zero duplicates and tracking RSS, descriptors and p99;
//! - `cluster-check`: not a benchmark: an end-to-end check of a running
//!   cluster through its load balancer (`make cluster-test`), killing a node.

mod cluster_check;
mod deployment;
mod http;
mod idle;
mod report;
mod server;
mod setup;
mod soak;
mod wrk;
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
    #[command(flatten)]
    deployment: deployment::DeploymentArgs,
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
    /// HTTP `POST /messages` driven by wrk (Lua script, 201 check): req/s, latency, CPU split.
    Wrk(wrk::WrkArgs),
    /// A long mixed run with optional SIGKILLs (its length is `--minutes`, not `--max-seconds`).
    Soak(soak::SoakArgs),
    /// Check a running cluster (deploy/cluster.sh) through its load balancer,
    /// killing the node that holds the recipient's socket. Starts no server.
    ClusterCheck(cluster_check::ClusterCheckArgs),
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

/// Starts the server(s), runs the scenario, stops the server(s).
async fn run(cli: &Cli) -> anyhow::Result<bool> {
    if let Scenario::Soak(args) = &cli.scenario {
        // The soak manages its own server: it kills and restarts it.
        return soak::run(&cli.server_bin, args, &cli.deployment).await;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(cli.max_seconds.max(1.0));
    let args = match &cli.scenario {
        Scenario::ClusterCheck(args) => {
            // Checks a cluster started by deploy/cluster.sh: nothing to start here.
            return tokio::time::timeout_at(deadline.into(), cluster_check::run(args))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("the cluster check took longer than {}s", cli.max_seconds)
                })?;
        }
        Scenario::Idle(_) | Scenario::Http(_) | Scenario::Wrk(_) if cli.deployment.cluster => {
            anyhow::bail!("--cluster applies to the ws scenario only");
        }
        other => other,
    };
    let deployment = deployment::Deployment::start(&cli.server_bin, &cli.deployment).await?;
    for (index, server) in deployment.servers.iter().enumerate() {
        eprintln!(
            "server {} pid {} at {} ({})",
            index,
            server.pid(),
            server.base,
            cli.deployment.describe()
        );
    }
    let servers = &deployment.servers;
    let outcome = match (args, servers.first()) {
        (_, None) => Err(anyhow::anyhow!("no server started")),
        (Scenario::Idle(args), Some(server)) => idle::run(server, args, deadline).await,
        (Scenario::Ws(args), Some(_)) => {
            ws::run(
                servers,
                args,
                cli.threads,
                cli.deployment.describe(),
                deadline,
            )
            .await
        }
        (Scenario::Http(args), Some(server)) => {
            http::run(server, args, cli.threads, deadline).await
        }
        (Scenario::Wrk(args), Some(server)) => wrk::run(server, args, deadline).await,
        (Scenario::ClusterCheck(_) | Scenario::Soak(_), Some(_)) => {
            Err(anyhow::anyhow!("handled above"))
        }
    };
    let mut clean_exit = true;
    for (index, stopped) in deployment.stop().await?.into_iter().enumerate() {
        eprintln!(
            "server {index} stopped by SIGTERM in {:.2} s, exit code {}",
            stopped.seconds,
            stopped
                .exit_code
                .map_or_else(|| "none (signal)".to_owned(), |code| code.to_string())
        );
        for line in stopped.log_warnings.iter().take(10) {
            eprintln!("server {index} log: {line}");
        }
        if stopped.log_warnings.len() > 10 {
            eprintln!(
                "server {index} log: … {} more WARN/ERROR lines",
                stopped.log_warnings.len() - 10
            );
        }
        clean_exit &= stopped.exit_code == Some(0);
    }
    let ok = outcome?;
    Ok(ok && clean_exit)
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
