//! State shared by every request handler.

use std::sync::Arc;

use crate::bus::DynBus;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::push::PushStats;
use crate::service::Service;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server runs with.
    pub config: Arc<Config>,
    /// Every use case, shared by HTTP and WebSocket.
    pub service: Arc<Service>,
    /// The fan-out bus (its health shows on `/readyz`).
    pub bus: DynBus,
    /// Live WebSocket connections.
    pub gateway: Arc<Gateway>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The push dispatcher's counters (`None` without `PUSH_WEBHOOK_URL`).
    pub push: Option<Arc<PushStats>>,
}
