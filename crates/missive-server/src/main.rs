//! The `missive` binary: parse the configuration, start logging, serve until
//! SIGTERM or Ctrl-C.

use clap::Parser;
use missive_server::{Application, Config, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(&config.log_level, config.log_format)?;
    let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port)).await?;
    let app = Application::build(config, listener).await?;
    app.run_until_stopped(missive_server::shutdown_signal())
        .await
}
