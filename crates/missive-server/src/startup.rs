//! Building and running the application. The caller supplies the listener
//! and the shutdown future, so tests can bind port 0 and stop the server
//! without signals.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::bus::{DynBus, LocalBus, RedisBus, Registry};
use crate::config::{AuthMode, Config};
use crate::gateway::Gateway;
use crate::http;
use crate::maintenance::Maintenance;
use crate::metrics::{Exporter, Metrics};
use crate::push::{ClusterPresence, Dispatcher, PushSettings};
use crate::redaction::{redact, scrub};
use crate::security::{
    Clock, CodeSender, LogCodeSender, RateLimits, SystemClock, WebhookCodeSender,
};
use crate::serve;
use crate::service::{self, Service};
use crate::state::AppState;
use crate::store;

/// How long open WebSockets get to flush and close at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    limits: Arc<RateLimits>,
    push: Option<Arc<Dispatcher>>,
    maintenance: Maintenance,
}

impl Application {
    /// Opens the store (running migrations) and builds the router, serving on `listener`.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        Self::build_with(config, listener, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`], reading time from `clock` (tests expire login codes with it).
    ///
    /// An error never carries a password of the configured URLs, whatever a
    /// library put into its message.
    pub async fn build_with(
        config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let urls: Vec<String> = [
            Some(config.database_url.clone()),
            config.redis_url.clone(),
            config.otp_webhook_url.clone(),
            config.push_webhook_url.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        Self::assemble(config, listener, clock).await.map_err(|e| {
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            anyhow::anyhow!(scrub(&format!("{e:#}"), &urls))
        })
    }

    async fn assemble(
        config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        let options = store::OpenOptions {
            startup_check: config.database_startup_check,
            wal_batching: config.database_wal_batching,
            pool_size: config.database_pool_size,
            metrics: metrics.writer.clone(),
        };
        let store = store::open(&config.database_url, options).await?;
        let local_addr = listener.local_addr()?;
        let registry = Arc::new(Registry::default());
        let bus: DynBus = match &config.redis_url {
            Some(url) => Arc::new(RedisBus::start(
                url,
                &config.redis_prefix,
                registry.clone(),
            )?),
            None => Arc::new(LocalBus::new(registry.clone())),
        };
        let mut limits = RateLimits::new(
            config.send_rate_limit,
            config.auth_rate_limit,
            config.lookup_rate_limit,
        )
        .with_clock(clock.clone());
        if let Some(url) = &config.redis_url {
            // Counted across nodes too, so that N nodes do not multiply the budgets.
            limits = limits.with_cluster(url, &config.redis_prefix)?;
        }
        let limits = Arc::new(limits);
        let codes: Arc<dyn CodeSender> = match &config.otp_webhook_url {
            Some(url) => Arc::new(WebhookCodeSender::new(url.clone())?),
            None => Arc::new(LogCodeSender),
        };
        let exporter = Arc::new(Exporter::new(&metrics, bus.clone(), registry.clone()));
        // Push notifications: a dispatcher of the outbox and, across nodes,
        // the presence it checks. Nothing at all when PUSH_WEBHOOK_URL is unset.
        let (push, presence) = match &config.push_webhook_url {
            Some(url) => {
                let secret = config
                    .push_webhook_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "PUSH_WEBHOOK_URL is set but PUSH_WEBHOOK_SECRET is not: pushes are signed with it"
                        )
                    })?;
                let presence = match &config.redis_url {
                    Some(redis) => Some(ClusterPresence::start(
                        redis,
                        &config.redis_prefix,
                        registry.clone(),
                    )?),
                    None => None,
                };
                let settings = PushSettings {
                    url: url.clone(),
                    secret,
                    retry_base: config.push_retry_base,
                };
                let dispatcher = Dispatcher::start(
                    settings,
                    store.clone(),
                    registry.clone(),
                    presence.clone(),
                    metrics.push.clone(),
                )?;
                (Some(Arc::new(dispatcher)), presence)
            }
            None => (None, None),
        };
        let maintenance = Maintenance::new(
            store.clone(),
            clock.clone(),
            config.token_ttl,
            config.event_retention,
        );
        let service = Service::new(service::Parts {
            push: push.as_ref().map(|d| d.hook()),
            store: store.clone(),
            bus: bus.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            codes,
            clock,
            auth_mode: config.auth_mode,
            token_ttl: config.token_ttl,
        });
        let sockets = Arc::new(crate::gateway::UserSockets::new(
            config.max_sockets_per_user,
        ));
        let state = AppState {
            config: Arc::new(config),
            service: Arc::new(service),
            metrics,
            exporter,
            bus,
            gateway: Arc::new(Gateway {
                presence,
                sockets,
                ..Gateway::new(registry)
            }),
        };
        Ok(Application {
            listener,
            local_addr,
            state,
            limits,
            push,
            maintenance,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes; then stops accepting, lets the
    /// requests in flight finish (every acknowledged write is committed) and
    /// closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = &self.state.config;
        match config.auth_mode {
            AuthMode::Open => tracing::warn!(
                "AUTH_MODE=open: anyone who can reach this server can act as any user; use it only in a sandbox"
            ),
            AuthMode::Loopback => tracing::info!(
                "AUTH_MODE=loopback: claimed identities are believed from loopback peers only; behind a reverse proxy use AUTH_MODE=required"
            ),
            AuthMode::Required => {
                tracing::info!("AUTH_MODE=required: every user request needs a bearer token")
            }
        }
        let bus = config
            .redis_url
            .as_deref()
            .map_or_else(|| "local (in-process)".to_owned(), redact);
        // Only an SQLite file has a WAL; the field is left out otherwise.
        let wal_batching = matches!(
            store::Backend::of(&config.database_url),
            Ok(store::Backend::Sqlite(store::sqlite::Location::File(_)))
        )
        .then_some(config.database_wal_batching);
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            address = %self.local_addr,
            database = %redact(&config.database_url),
            database_wal_batching = wal_batching,
            bus = %bus,
            auth_mode = ?config.auth_mode,
            send_rate_limit = config.send_rate_limit,
            auth_rate_limit = config.auth_rate_limit,
            log_level = %config.log_level,
            max_connections = config.max_connections,
            max_connections_per_address = config.max_connections_per_address,
            max_sockets_per_user = config.max_sockets_per_user,
            trusted_proxies = ?config.trusted_proxies,
            event_retention = %config
                .event_retention
                .0
                .map_or_else(|| "off".to_owned(), |d| humantime::format_duration(d).to_string()),
            token_ttl = %humantime::format_duration(config.token_ttl),
            "missive listening"
        );
        match &config.redis_url {
            Some(url) => {
                tracing::info!(redis = %redact(url), prefix = %config.redis_prefix, "fan-out across nodes through Redis")
            }
            None => tracing::info!("REDIS_URL is unset: one node, in-process fan-out"),
        }
        if let Some(url) = &config.push_webhook_url {
            tracing::info!(url = %redact(url), retry_base = ?config.push_retry_base, "push notifications for offline recipients");
        }
        if config.otp_webhook_url.is_none() {
            tracing::warn!(
                "OTP_WEBHOOK_URL is unset: login codes are written to this log (development only)"
            );
        }
        let service = self.state.service.clone();
        let gateway = self.state.gateway.clone();
        let bus = self.state.bus.clone();
        let limits = self.limits.clone();
        let push = self.push.clone();
        let presence = gateway.presence.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                limits.shrink();
            }
        });
        // Pruning on every node (idempotent); stopped before the store closes.
        let pruning_stop = tokio_util::sync::CancellationToken::new();
        let pruning = self.maintenance.clone().spawn(pruning_stop.clone());
        let limits = serve::Limits {
            max_connections: connection_budget(config.max_connections),
            max_per_address: config.max_connections_per_address,
            exempt: config.trusted_proxies.clone().into(),
            header_timeout: config.http_header_timeout,
            body_timeout: config.http_body_timeout,
            idle_timeout: config.http_idle_timeout,
        };
        let router = http::router(self.state);
        // On the signal: stop accepting, and have every WebSocket flush and close (1001).
        let stopping = gateway.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopping.cancel();
        });
        serve::serve(
            self.listener,
            router,
            limits,
            gateway.shutdown.clone(),
            SHUTDOWN_GRACE,
        )
        .await;
        gateway.close(SHUTDOWN_GRACE).await;
        if let Some(push) = push {
            push.stop().await;
        }
        if let Some(presence) = presence {
            presence.stop().await;
        }
        bus.close().await;
        housekeeping.abort();
        pruning_stop.cancel();
        let _ = pruning.await;
        tracing::info!("shutting down: closing the database");
        service.close().await;
        tracing::info!("bye");
        Ok(())
    }
}

/// File descriptors kept free for the database, logs and outgoing requests.
const RESERVED_FDS: u64 = 256;

/// `max_connections`, lowered when the process may not open that many files.
///
/// The soft open-file limit is raised to the hard one first; past the cap new
/// connections wait in the backlog, which is better than failing `accept`.
fn connection_budget(max_connections: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return max_connections;
        }
    };
    let budget = usize::try_from(limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    if max_connections > budget {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            using = budget,
            "MAX_CONNECTIONS is above the open-file limit; lowering it"
        );
        return budget;
    }
    max_connections
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
