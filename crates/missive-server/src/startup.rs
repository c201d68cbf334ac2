//! Building and running the application. The caller supplies the listener
//! and the shutdown future, so tests can bind port 0 and stop the server
//! without signals.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{AuthMode, Config};
use crate::http;
use crate::service::Service;
use crate::state::AppState;
use crate::store;

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Opens the store (running migrations) and builds the router, serving on `listener`.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let store = store::open(&config.database_url).await?;
        let local_addr = listener.local_addr()?;
        let state = AppState {
            config: Arc::new(config),
            service: Arc::new(Service::new(store.clone())),
            store,
        };
        Ok(Application {
            listener,
            local_addr,
            state,
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
        tracing::info!(address = %self.local_addr, database = %redact(&config.database_url), "missive listening");
        let store = self.state.store.clone();
        let app = http::router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("shutting down: closing the database");
        store.close().await;
        served?;
        tracing::info!("bye");
        Ok(())
    }
}

/// The database URL without a password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/missive"),
            "postgres://***@db:5432/missive"
        );
        assert_eq!(
            redact("sqlite://data/missive.db"),
            "sqlite://data/missive.db"
        );
    }
}
