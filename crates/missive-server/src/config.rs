//! Runtime configuration: one typed struct, read from the environment and the
//! command line (each configuration variable is also a flag; `--help` lists them).
//! Loading it has no side effects.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::redaction::redact;

/// How a SQLite database file is checked when it is opened
/// (`DATABASE_STARTUP_CHECK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartupCheck {
    /// `PRAGMA quick_check`: reads every page (about a second per GB).
    Quick,
    /// No check (for huge files; corruption is then found while serving).
    Off,
}

/// PostgreSQL connections per node by default (`DATABASE_POOL_SIZE`).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// First retry delay of a failed push delivery by default (`PUSH_RETRY_BASE`).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(30);

/// Who may claim an identity without a token (README, "Authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Claims are believed from anyone (sandbox only).
    Open,
    /// Claims are believed from loopback peers only (127.0.0.0/8, ::1), sent to
    /// a loopback `Host` or one of `ALLOWED_HOSTS`.
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

/// How long the per-user event log (replayed by `GET /ws?since=`) is kept:
/// `EVENT_RETENTION`, a duration, or `None` to keep it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// `30d`, `12h`, `1s`, … (humantime), or `0` / `off` to keep events forever.
pub fn parse_retention(raw: &str) -> Result<Retention, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") || raw == "0" {
        return Ok(Retention(None));
    }
    match humantime::parse_duration(raw) {
        Ok(d) if d.is_zero() => Ok(Retention(None)),
        Ok(d) => Ok(Retention(Some(d))),
        Err(e) => Err(format!(
            "{raw:?} is not a duration such as 30d or 12h, nor 0 or off: {e}"
        )),
    }
}

/// The server's configuration. Its `Debug` form redacts the URLs.
#[derive(Clone, Parser)]
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
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/missive.db",
        global = true
    )]
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
    /// Whether an SQLite writer hands each commit's WAL frames to the kernel
    /// in one write (the "missive-wal" VFS layer) rather than SQLite's two
    /// per frame: `true` (commits about 15–20 % shorter) or `false` (SQLite's
    /// default VFS alone). The file format is the same either way, so it can
    /// change between restarts. Ignored for PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_WAL_BATCHING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub database_wal_batching: bool,
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
    /// Requests per minute per client address on register and login (at
    /// most this many in any 60 s); 0 disables.
    #[arg(long, env = "AUTH_RATE_LIMIT", default_value_t = 20)]
    pub auth_rate_limit: u32,
    /// Phone-number lookups (`GET /users`) per minute per user, and 4x that
    /// per client address; 0 disables.
    #[arg(long, env = "LOOKUP_RATE_LIMIT", default_value_t = 30)]
    pub lookup_rate_limit: u32,
    /// Concurrent TCP connections (HTTP and WebSocket); past it, new ones wait in the backlog. At least 1.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 16_384, value_parser = parse_at_least_one)]
    pub max_connections: usize,
    /// Concurrent TCP connections from one client address (IPv6: one /64),
    /// counted per TCP peer; trusted proxies are exempt. Past it a new
    /// connection gets 429 and is closed at once. 0 disables.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Concurrent WebSockets of one user on this node; past it `GET /ws` gets
    /// 429 `too_many_connections`. 0 disables.
    #[arg(long, env = "MAX_SOCKETS_PER_USER", default_value_t = DEFAULT_MAX_SOCKETS_PER_USER)]
    pub max_sockets_per_user: usize,
    /// Time a client has to send a whole request head (e.g. `10s`; more than 0).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub http_header_timeout: Duration,
    /// Time a client has to send the whole body of a request once its head
    /// arrived (e.g. `10s`; more than 0); past it, 408 and the connection closes.
    #[arg(long, env = "HTTP_BODY_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub http_body_timeout: Duration,
    /// Time an idle keep-alive HTTP connection stays open (e.g. `60s`; more than 0).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub http_idle_timeout: Duration,
    /// Reverse proxies (comma-separated CIDRs or addresses, e.g. `127.0.0.1/32,10.0.0.0/8`)
    /// whose `Forwarded`/`X-Forwarded-For` name the client; from anyone else those headers are ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Host names besides the loopback ones (`localhost`, 127.0.0.0/8,
    /// `[::1]`) to which claimed identities may be addressed under
    /// `AUTH_MODE=loopback` (comma-separated, without a port; `.example.com`
    /// is that domain and its subdomains). A claim sent to any other `Host` is
    /// not believed (401): a protection against DNS rebinding.
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',', value_parser = parse_allowed_host)]
    pub allowed_hosts: Vec<String>,
    /// Browser origins besides the server's own that may call the REST API
    /// (CORS: exact origins, comma-separated, e.g. `https://chat.example.com`)
    /// and open `/ws`; a WebSocket upgrade with any other `Origin` is refused
    /// (403). Empty: no CORS headers at all.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Events of a user's log (what `GET /ws?since=` replays) older than this
    /// may be pruned, on every node, once at start and then every 10 minutes
    /// (e.g. `30d`, `12h`); `0` or `off` keeps them forever. A resume from a
    /// pruned cursor gets a `resync` frame.
    #[arg(long, env = "EVENT_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub event_retention: Retention,
    /// Where push notifications are POSTed as `{"userId","chatId","messageId","sender","preview"}`
    /// for recipients with no open connection on any node (unset: no pushes).
    #[arg(long, env = "PUSH_WEBHOOK_URL")]
    pub push_webhook_url: Option<String>,
    /// HMAC-SHA256 key of the `X-Missive-Signature` header of each push (required with PUSH_WEBHOOK_URL).
    #[arg(long, env = "PUSH_WEBHOOK_SECRET", hide_env_values = true)]
    pub push_webhook_secret: Option<String>,
    /// Delay before a failed push is retried the first time (e.g. `30s`); it
    /// doubles with each retry, 8 attempts in all.
    #[arg(long, env = "PUSH_RETRY_BASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub push_retry_base: Duration,
    /// A bearer token unused this long expires (sliding: each use extends
    /// it), e.g. `30d`, `12h`; at least 1s.
    #[arg(long, env = "TOKEN_TTL", default_value = "30d", value_parser = parse_ttl)]
    pub token_ttl: Duration,
}

/// A human duration (`30d`, `12h`, `90s`) of at least one second.
pub fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(raw.trim()).map_err(|e| format!("{raw:?}: {e}"))?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("{raw:?} is shorter than one second"));
    }
    Ok(ttl)
}

/// A duration greater than zero (`10s`, `1500ms`): a timeout of 0 would
/// close every connection at once.
pub fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(raw.trim()).map_err(|e| format!("{raw:?}: {e}"))?;
    if timeout.is_zero() {
        return Err(format!(
            "{raw:?}: must be more than 0 (0 would close every connection at once)"
        ));
    }
    Ok(timeout)
}

/// A count of at least 1 (0 would serve nothing, or one connection at a time).
pub fn parse_at_least_one(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err(format!("{raw:?}: must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{raw:?}: {e}")),
    }
}

/// An `ALLOWED_HOSTS` entry: a host name (`chat.internal`), a domain with its
/// subdomains (`.example.com`) or an address (`10.0.0.5`, `[fd00::1]`),
/// without a scheme or a port; lower-cased, brackets and a final dot removed.
pub fn parse_allowed_host(raw: &str) -> Result<String, String> {
    let host = raw.trim().to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let name = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
        Some(_) => "",
        None => host,
    };
    let bare = name.strip_prefix('.').unwrap_or(name);
    let valid = !bare.is_empty()
        && (name.parse::<std::net::Ipv6Addr>().is_ok()
            || bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{raw:?} is not a host name such as chat.internal or .example.com (no scheme, no port)"
        ))
    }
}

/// `MAX_CONNECTIONS_PER_ADDRESS`'s default.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// `MAX_SOCKETS_PER_USER`'s default.
pub const DEFAULT_MAX_SOCKETS_PER_USER: usize = 32;

/// `scheme://host[:port]`, lower-cased, without a path.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
    });
    if valid {
        Ok(origin)
    } else {
        Err(format!(
            "{raw:?} is not an origin such as https://chat.example.com"
        ))
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`127.0.0.1`, as a /32 or /128).
pub fn parse_net(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not an address or a CIDR such as 10.0.0.0/8"))
}

/// `EVENT_RETENTION`'s default: 30 days.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default `TOKEN_TTL`: 30 days.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

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
            database_wal_batching: true,
            database_pool_size: DEFAULT_POOL_SIZE,
            redis_url: None,
            redis_prefix: "missive".into(),
            auth_mode: AuthMode::Loopback,
            otp_webhook_url: None,
            send_rate_limit: 50,
            auth_rate_limit: 20,
            lookup_rate_limit: 30,
            max_connections: 16_384,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_sockets_per_user: DEFAULT_MAX_SOCKETS_PER_USER,
            http_header_timeout: Duration::from_secs(10),
            http_body_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            event_retention: Retention(Some(DEFAULT_EVENT_RETENTION)),
            push_webhook_url: None,
            push_webhook_secret: None,
            push_retry_base: DEFAULT_RETRY_BASE,
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }
}

impl Config {
    /// Refuses settings that cannot work, naming the variable: the flags'
    /// parsers refuse them already, this also covers a `Config` built in code.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, timeout) in [
            ("HTTP_HEADER_TIMEOUT", self.http_header_timeout),
            ("HTTP_BODY_TIMEOUT", self.http_body_timeout),
            ("HTTP_IDLE_TIMEOUT", self.http_idle_timeout),
        ] {
            if timeout.is_zero() {
                anyhow::bail!(
                    "{name} must be more than 0 (0 would close every connection at once)"
                );
            }
        }
        if self.max_connections == 0 {
            anyhow::bail!("MAX_CONNECTIONS must be at least 1");
        }
        Ok(())
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("database_url", &redact(&self.database_url))
            .field("database_startup_check", &self.database_startup_check)
            .field("database_wal_batching", &self.database_wal_batching)
            .field("database_pool_size", &self.database_pool_size)
            .field("redis_url", &self.redis_url.as_deref().map(redact))
            .field("redis_prefix", &self.redis_prefix)
            .field("auth_mode", &self.auth_mode)
            .field(
                "otp_webhook_url",
                &self.otp_webhook_url.as_deref().map(redact),
            )
            .field("send_rate_limit", &self.send_rate_limit)
            .field("auth_rate_limit", &self.auth_rate_limit)
            .field("lookup_rate_limit", &self.lookup_rate_limit)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("max_sockets_per_user", &self.max_sockets_per_user)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("http_body_timeout", &self.http_body_timeout)
            .field("http_idle_timeout", &self.http_idle_timeout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("cors_origins", &self.cors_origins)
            .field("event_retention", &self.event_retention)
            .field(
                "push_webhook_url",
                &self.push_webhook_url.as_deref().map(redact),
            )
            .field(
                "push_webhook_secret",
                &self.push_webhook_secret.as_ref().map(|_| "***"),
            )
            .field("push_retry_base", &self.push_retry_base)
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_redacts_urls() {
        let config = Config {
            database_url: "postgres://u:secretpw@db/m".into(),
            redis_url: Some("redis://:redispw@cache".into()),
            otp_webhook_url: Some("https://api:hookpw@sms.example/send".into()),
            push_webhook_url: Some("https://push:pushpw@push.example/hook".into()),
            push_webhook_secret: Some("hmac-key-42".into()),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        for secret in ["secretpw", "redispw", "hookpw", "pushpw", "hmac-key-42"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

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
        assert_eq!(parsed.database_wal_batching, default.database_wal_batching);
        assert_eq!(parsed.redis_prefix, default.redis_prefix);
        assert_eq!(parsed.http_header_timeout, default.http_header_timeout);
        assert_eq!(parsed.http_idle_timeout, default.http_idle_timeout);
        assert_eq!(parsed.http_body_timeout, default.http_body_timeout);
        assert_eq!(
            parsed.max_connections_per_address,
            default.max_connections_per_address
        );
        assert_eq!(parsed.max_sockets_per_user, default.max_sockets_per_user);
        assert_eq!(parsed.allowed_hosts, default.allowed_hosts);
        assert_eq!(parsed.event_retention, default.event_retention);
        assert_eq!(parsed.push_retry_base, default.push_retry_base);
        assert_eq!(parsed.push_webhook_url, None);
        assert_eq!(parsed.token_ttl, default.token_ttl);
    }

    #[test]
    fn token_ttl_takes_a_human_duration_of_at_least_a_second() {
        let config = Config::try_parse_from(["missive", "--token-ttl", "12h"]).expect("parses");
        assert_eq!(config.token_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(
            Config::default().token_ttl,
            Duration::from_secs(30 * 86_400)
        );
        for bad in ["0s", "500ms", "forever", ""] {
            assert!(
                Config::try_parse_from(["missive", "--token-ttl", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let config =
            Config::try_parse_from(["missive", "--trusted-proxies", "127.0.0.1,10.0.0.0/8, ::1"])
                .expect("parses");
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        assert!(Config::try_parse_from(["missive", "--trusted-proxies", "nginx"]).is_err());
    }

    #[test]
    fn timeouts_take_human_durations() {
        let config =
            Config::try_parse_from(["missive", "--http-header-timeout", "1500ms"]).expect("parses");
        assert_eq!(config.http_header_timeout, Duration::from_millis(1500));
        assert!(Config::try_parse_from(["missive", "--http-idle-timeout", "soon"]).is_err());
    }

    #[test]
    fn allowed_hosts_take_names_domains_and_addresses() {
        let config = Config::try_parse_from([
            "missive",
            "--allowed-hosts",
            "Chat.Internal, .dev.example,10.0.0.5,[fd00::1],box.",
        ])
        .expect("parses");
        assert_eq!(
            config.allowed_hosts,
            [
                "chat.internal",
                ".dev.example",
                "10.0.0.5",
                "fd00::1",
                "box"
            ]
        );
        for bad in [
            "http://chat.internal",
            "chat.internal:8080",
            "a/b",
            "[nope]",
            ".",
        ] {
            assert!(
                Config::try_parse_from(["missive", "--allowed-hosts", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn zero_timeouts_and_a_zero_connection_limit_are_refused_naming_the_setting() {
        for (flag, env) in [
            ("--http-header-timeout", "HTTP_HEADER_TIMEOUT"),
            ("--http-body-timeout", "HTTP_BODY_TIMEOUT"),
            ("--http-idle-timeout", "HTTP_IDLE_TIMEOUT"),
            ("--max-connections", "MAX_CONNECTIONS"),
        ] {
            for zero in ["0", "0s", "0ms"] {
                if flag == "--max-connections" && zero != "0" {
                    continue;
                }
                let error = Config::try_parse_from(["missive", flag, zero])
                    .err()
                    .unwrap_or_else(|| panic!("{flag} {zero} is refused"))
                    .to_string();
                assert!(error.contains(flag), "{error}");
                assert!(error.contains(env), "{error}");
            }
        }
        // 0 disables the per-address and per-user caps: it stays accepted.
        let config = Config::try_parse_from([
            "missive",
            "--max-connections-per-address",
            "0",
            "--max-sockets-per-user",
            "0",
            "--max-connections",
            "1",
            "--http-body-timeout",
            "1ms",
        ])
        .expect("parses");
        assert_eq!(config.max_connections_per_address, 0);
        assert_eq!(config.max_sockets_per_user, 0);
        assert_eq!(config.max_connections, 1);
        assert_eq!(config.http_body_timeout, Duration::from_millis(1));
    }

    #[test]
    fn event_retention_takes_a_duration_or_off() {
        let parse = |v: &str| Config::try_parse_from(["missive", "--event-retention", v]);
        assert_eq!(
            parse("12h").expect("parses").event_retention,
            Retention(Some(Duration::from_secs(12 * 3600)))
        );
        assert_eq!(
            parse("1s").expect("parses").event_retention,
            Retention(Some(Duration::from_secs(1)))
        );
        for off in ["0", "off", "OFF", "0s"] {
            assert_eq!(
                parse(off).expect(off).event_retention,
                Retention(None),
                "{off}"
            );
        }
        assert!(parse("a month").is_err());
        assert!(parse("-1d").is_err());
    }

    #[test]
    fn wal_batching_is_on_by_default_and_takes_a_boolean() {
        assert!(Config::default().database_wal_batching);
        let parse = |v: &str| Config::try_parse_from(["missive", "--database-wal-batching", v]);
        for off in ["false", "off", "0", "no", "FALSE"] {
            assert!(!parse(off).expect(off).database_wal_batching, "{off}");
        }
        for on in ["true", "on", "1", "yes"] {
            assert!(parse(on).expect(on).database_wal_batching, "{on}");
        }
        assert!(parse("maybe").is_err());
    }

    #[test]
    fn unknown_auth_mode_is_rejected() {
        assert!(Config::try_parse_from(["missive", "--auth-mode", "maybe"]).is_err());
    }
}
