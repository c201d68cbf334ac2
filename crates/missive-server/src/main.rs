//! The `missive` binary: parse the configuration, start logging, serve until
//! SIGTERM or Ctrl-C. A startup failure is one ERROR line naming what failed
//! (the file, the address) and exit code 1.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use missive_server::{Application, Config, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = telemetry::init(&config.log_level, config.log_format) {
        eprintln!("missive: {e:#}");
        return ExitCode::FAILURE;
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
