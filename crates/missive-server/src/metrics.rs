//! Counters exported at `GET /metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP responses by status class: index 0 = 1xx … 4 = 5xx.
    responses: [AtomicU64; 5],
    /// Messages committed (repeated sends not counted).
    messages: AtomicU64,
}

impl Metrics {
    /// Counts an HTTP response.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a committed message.
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the gauge of open WebSockets.
    pub fn render(&self, websocket_connections: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP missive_http_responses_total HTTP responses by status class.\n");
        out.push_str("# TYPE missive_http_responses_total counter\n");
        for (i, count) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "missive_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP missive_messages_total Messages committed.\n");
        out.push_str("# TYPE missive_messages_total counter\n");
        let _ = writeln!(
            out,
            "missive_messages_total {}",
            self.messages.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP missive_websocket_connections Open WebSocket connections on this node.\n",
        );
        out.push_str("# TYPE missive_websocket_connections gauge\n");
        let _ = writeln!(out, "missive_websocket_connections {websocket_connections}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_class() {
        let metrics = Metrics::default();
        metrics.response(201);
        metrics.response(404);
        metrics.response(404);
        metrics.message();
        let text = metrics.render(3);
        assert!(text.contains("missive_http_responses_total{class=\"2xx\"} 1"));
        assert!(text.contains("missive_http_responses_total{class=\"4xx\"} 2"));
        assert!(text.contains("missive_messages_total 1"));
        assert!(text.contains("missive_websocket_connections 3"));
    }
}
