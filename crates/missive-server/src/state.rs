//! State shared by every request handler.

use std::sync::Arc;

use crate::bus::DynBus;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::{Exporter, Metrics};
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
    /// The instruments of `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Renders `/metrics`.
    pub exporter: Arc<Exporter>,
}
