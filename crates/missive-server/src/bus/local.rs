//! The in-process bus of a single node: hands envelopes straight to the
//! node's connection registry.

use std::sync::Arc;

use async_trait::async_trait;

use super::Registry;
use super::{Bus, Envelope};

/// Fan-out inside one process.
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    /// A bus delivering to `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        LocalBus { registry }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, envelope: Envelope) {
        self.registry.deliver(&envelope);
    }
}
