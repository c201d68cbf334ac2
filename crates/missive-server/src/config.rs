//! Runtime configuration: one typed struct, read from the environment and the
//! command line (each configuration variable is also a flag; `--help` lists them).
//! Loading it has no side effects.

use std::time::Duration;

use clap::{Parser, ValueEnum};

pub use crate::store::sqlite::StartupCheck;

/// Who may claim an identity without a token (README, "Authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Claims are believed from anyone (sandbox only).
    Open,
    /// Claims are believed from loopback peers only (127.0.0.0/8, ::1).
    Loopback,
    /// A bearer token is required; claims are never believed.
    Required,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "missive", version, about = "A real-time messaging backend")]
pub struct Config {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// DEBUG, INFO, WARN, ERROR, or a tracing filter (e.g. `missive_server=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// `text` or `json`.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `sqlite::memory:`
    /// or `postgres://user@host:5432/db` (several nodes may share a PostgreSQL database).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/missive.db")]
    pub database_url: String,
    /// Check an SQLite file before serving: `quick` (PRAGMA quick_check, about
    /// a second per GB) or `off` (for huge files; damage is then found while serving).
    #[arg(
        long,
        env = "DATABASE_STARTUP_CHECK",
        value_enum,
        ignore_case = true,
        default_value = "quick"
    )]
    pub database_startup_check: StartupCheck,
    /// Connections of the PostgreSQL pool (ignored for SQLite).
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,
    /// Redis for fan-out across nodes, e.g. `redis://:password@host:6379/0`
    /// (unset: one node, in-process fan-out).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key of this deployment, so that several
    /// deployments (or tests) can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "missive")]
    pub redis_prefix: String,
    /// `open`, `loopback` or `required` (see README, "Authentication").
    #[arg(
        long,
        env = "AUTH_MODE",
        value_enum,
        ignore_case = true,
        default_value = "loopback"
    )]
    pub auth_mode: AuthMode,
    /// Where login codes are POSTed as `{"phoneNumber","code"}` (unset: the server log).
    #[arg(long, env = "OTP_WEBHOOK_URL")]
    pub otp_webhook_url: Option<String>,
    /// Messages per second per user, bursts up to 10x; 0 disables.
    #[arg(long, env = "SEND_RATE_LIMIT", default_value_t = 50)]
    pub send_rate_limit: u32,
    /// Requests per minute per client address on register and login; 0 disables.
    #[arg(long, env = "AUTH_RATE_LIMIT", default_value_t = 20)]
    pub auth_rate_limit: u32,
    /// Concurrent TCP connections (HTTP and WebSocket); past it, new ones wait in the backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Time a client has to send a whole request head (e.g. `10s`).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,
    /// Time an idle keep-alive HTTP connection stays open (e.g. `60s`).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,
}

impl Default for Config {
    /// The documented defaults, ignoring the environment.
    fn default() -> Self {
        Config {
            port: 8080,
            bind: "0.0.0.0".into(),
            log_level: "INFO".into(),
            log_format: LogFormat::Text,
            database_url: "sqlite://data/missive.db".into(),
            database_startup_check: StartupCheck::Quick,
            database_pool_size: crate::store::DEFAULT_POOL_SIZE,
            redis_url: None,
            redis_prefix: "missive".into(),
            auth_mode: AuthMode::Loopback,
            otp_webhook_url: None,
            send_rate_limit: 50,
            auth_rate_limit: 20,
            max_connections: 16_384,
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let config = Config::try_parse_from([
            "missive",
            "--port",
            "9000",
            "--auth-mode",
            "REQUIRED",
            "--database-url",
            "sqlite::memory:",
        ])
        .expect("parses");
        assert_eq!(config.port, 9000);
        assert_eq!(config.auth_mode, AuthMode::Required);
        assert_eq!(config.database_url, "sqlite::memory:");
    }

    #[test]
    fn the_parsed_defaults_equal_default() {
        let parsed = Config::try_parse_from(["missive"]).expect("parses");
        let default = Config::default();
        assert_eq!(parsed.max_connections, default.max_connections);
        assert_eq!(parsed.database_pool_size, default.database_pool_size);
        assert_eq!(parsed.redis_prefix, default.redis_prefix);
        assert_eq!(parsed.http_header_timeout, default.http_header_timeout);
        assert_eq!(parsed.http_idle_timeout, default.http_idle_timeout);
    }

    #[test]
    fn timeouts_take_human_durations() {
        let config =
            Config::try_parse_from(["missive", "--http-header-timeout", "1500ms"]).expect("parses");
        assert_eq!(config.http_header_timeout, Duration::from_millis(1500));
        assert!(Config::try_parse_from(["missive", "--http-idle-timeout", "soon"]).is_err());
    }

    #[test]
    fn unknown_auth_mode_is_rejected() {
        assert!(Config::try_parse_from(["missive", "--auth-mode", "maybe"]).is_err());
    }
}
