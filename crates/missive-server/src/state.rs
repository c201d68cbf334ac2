//! State shared by every request handler.

use std::sync::Arc;

use crate::bus::DynBus;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::security::{Clock, CodeSender, RateLimits, TokenCache};
use crate::service::Service;
use crate::store::DynStore;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server runs with.
    pub config: Arc<Config>,
    /// The database.
    pub store: DynStore,
    /// The messaging operations shared by HTTP and WebSocket.
    pub service: Arc<Service>,
    /// The fan-out bus (its health shows on `/readyz`).
    pub bus: DynBus,
    /// Live WebSocket connections.
    pub gateway: Arc<Gateway>,
    /// Recently validated tokens.
    pub tokens: Arc<TokenCache>,
    /// Register/login and send rate limits.
    pub limits: Arc<RateLimits>,
    /// Delivers login codes.
    pub codes: Arc<dyn CodeSender>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The time, for code expiry.
    pub clock: Arc<dyn Clock>,
}
