//! The `missive` binary: parse the configuration, start logging, serve until
//! SIGTERM or Ctrl-C. A startup failure is one ERROR line naming what failed
//! (the file, the address) and exit code 1.
//!
//! With a subcommand (`backup`, `restore`, `migrate`; see [`admin`]) it runs
//! that operator's task against `DATABASE_URL` instead, prints what it did
//! and exits (non-zero, saying why, when it failed).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use missive_server::{Application, Config, admin, telemetry};

/// The command line: the server's configuration, and an optional subcommand.
#[derive(Parser)]
#[command(name = "missive", version, about = "A real-time messaging backend")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<admin::Command>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    if let Err(e) = telemetry::init(&config.log_level, config.log_format) {
        eprintln!("missive: {e:#}");
        return ExitCode::FAILURE;
    }
    if let Some(command) = command {
        return match admin::run(command, &config.database_url, config.database_wal_batching).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("missive: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let address = format!("{}:{}", config.bind, config.port);
    let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port))
        .await
        .with_context(|| format!("cannot listen on {address} (BIND, PORT)"))?;
    let app = Application::build(config, listener).await?;
    app.run_until_stopped(missive_server::shutdown_signal())
        .await
}
