//! State shared by every request handler.

use std::sync::Arc;

use crate::config::Config;
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
}
