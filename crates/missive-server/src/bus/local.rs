//! The in-process bus of a single node: hands envelopes straight to the
//! node's connection registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::Registry;
use super::{Bus, BusStats, Envelope};

/// Fan-out inside one process.
pub struct LocalBus {
    registry: Arc<Registry>,
    published: AtomicU64,
}

impl LocalBus {
    /// A bus delivering to `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        LocalBus {
            registry,
            published: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, envelope: Envelope) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.registry.deliver(&envelope);
    }

    fn stats(&self) -> BusStats {
        BusStats {
            events_published: self.published.load(Ordering::Relaxed),
            ..BusStats::default()
        }
    }
}
