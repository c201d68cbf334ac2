//! What `GET /metrics` exports, in the Prometheus text format (0.0.4), on
//! `prometheus-client`.
//!
//! Each [`Application`](crate::Application) has its own [`Metrics`] (no
//! global recorder: the API tests run several servers in one process). The
//! instruments are handles shared with the code that updates them: atomic
//! counters, gauges and [`Histogram`]s, label sets resolved once at start-up
//! where they are fixed (close codes, rate-limit kinds, …), so that the hot
//! paths (a message sent, a frame written) never lock or allocate for a
//! metric. What is cheaper to read than to count (open WebSockets, the bus's
//! state, the process's memory and descriptors) is read at scrape time by
//! [`Exporter`]'s collector.
//!
//! Every metric is listed in `docs/operations.md` ("Watch").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::MatchedPath;
use axum::http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::bus::{BusHealth, DynBus, Registry as Connections};

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Bounds of the latency histograms, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bounds of the batch-size histogram (jobs per write transaction).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram with fixed bounds and one atomic counter per bucket: an
/// observation is a binary search and two atomic additions, never a lock
/// (`prometheus-client`'s own histogram takes a mutex per observation).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramInner {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let inner = &self.0;
        let bucket = inner.bounds.partition_point(|bound| *bound < value);
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // A lock-free add of floats: retried only when another thread added at the same instant.
        let _ = inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: std::time::Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.0;
        // Per bucket, as the encoder wants them (it writes the cumulative counts).
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.counts.iter())
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(inner.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The route template of a request (`/chats/{chat_id}/messages`), never its
/// raw path: the label's values are bounded by the routes of the API.
/// `unmatched` for requests no route took (404s).
#[derive(Debug, Clone)]
pub struct Route(Option<MatchedPath>);

impl Route {
    /// The route of a request, from axum's [`MatchedPath`] (a shared string: no copy).
    pub fn new(matched: Option<&MatchedPath>) -> Self {
        Route(matched.cloned())
    }

    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Labels of the HTTP request histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    /// The request method (`OTHER` for unusual ones, to bound the values).
    pub method: &'static str,
    /// The route template.
    pub route: Route,
    /// The response status code.
    pub status: u16,
}

/// A request method as a label value without allocating.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// HTTP instruments.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// Request durations by method, route template and status.
    pub requests: HistogramFamily<HttpLabels>,
    /// Responses by status class, index 0 = 1xx … 4 = 5xx.
    pub responses: [Counter; 5],
}

impl HttpMetrics {
    /// Records a finished request.
    pub fn request(&self, labels: &HttpLabels, elapsed: std::time::Duration) {
        let class = usize::from(labels.status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
        self.requests
            .get_or_create(labels)
            .observe_duration(elapsed);
    }
}

/// Instruments of a store's writer (the SQLite writer thread, or the
/// PostgreSQL send batcher).
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Jobs waiting in the writer's queue (set by the writer at each batch).
    pub queue_depth: Gauge,
    /// Jobs per transaction.
    pub batch_size: Histogram,
    /// Time to apply and commit a batch (for SQLite, including the fsync), seconds.
    pub commit_seconds: Histogram,
    /// Batches whose transaction failed (every job of it failed).
    pub failed_batches: Counter,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            queue_depth: Gauge::default(),
            batch_size: Histogram::new(BATCH_BUCKETS),
            commit_seconds: latency_histogram(),
            failed_batches: Counter::default(),
        }
    }
}

/// Close codes counted by [`WsMetrics::closed`], and what each means.
pub const CLOSE_CODES: [(&str, &str); 7] = [
    ("1001", "going away: idle peer or server shutdown"),
    ("1008", "policy violation: token revoked"),
    ("1009", "message too big"),
    ("1011", "internal error: database unavailable at connect"),
    ("1013", "try again later: too slow a reader"),
    ("peer", "closed by the peer"),
    ("dropped", "TCP connection dropped (the peer did not read)"),
];

/// How a WebSocket ended, for [`WsMetrics::closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsClose {
    /// The server sent this close code.
    Code(u16),
    /// The peer closed or went away.
    Peer,
    /// The server dropped the TCP connection (writes did not get through).
    Dropped,
}

/// WebSocket instruments.
#[derive(Debug, Clone)]
pub struct WsMetrics {
    /// Connections opened.
    pub opened: Counter,
    /// Connections closed, by close code, in the order of [`CLOSE_CODES`].
    pub closed: [Counter; 7],
    /// Connections closed because the client did not read (queue overflow or write timeout).
    pub slow_consumers: Counter,
    /// Frames received from clients.
    pub frames_in: Counter,
    /// Frames sent to clients.
    pub frames_out: Counter,
}

impl WsMetrics {
    /// Counts a closed connection.
    pub fn close(&self, how: WsClose) {
        let label = match how {
            WsClose::Code(1001) => "1001",
            WsClose::Code(1008) => "1008",
            WsClose::Code(1009) => "1009",
            WsClose::Code(1011) => "1011",
            WsClose::Code(1013) => "1013",
            WsClose::Code(_) | WsClose::Peer => "peer",
            WsClose::Dropped => "dropped",
        };
        if let Some(i) = CLOSE_CODES.iter().position(|(code, _)| *code == label) {
            self.closed[i].inc();
        }
    }
}

/// What a rate limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    /// A send over the user's message rate.
    Send,
    /// Register/login/logout over the address's rate.
    Auth,
    /// A login code over the number's budget.
    LoginCode,
    /// A login code guess over the number's budget (or a burned code).
    LoginGuess,
    /// A phone-number lookup over the user's or the address's budget.
    Lookup,
}

impl RateLimitKind {
    /// Every kind, in the order of [`RateLimitMetrics::rejected`].
    pub const ALL: [RateLimitKind; 5] = [
        RateLimitKind::Send,
        RateLimitKind::Auth,
        RateLimitKind::LoginCode,
        RateLimitKind::LoginGuess,
        RateLimitKind::Lookup,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitKind::Send => "send",
            RateLimitKind::Auth => "auth",
            RateLimitKind::LoginCode => "login_code",
            RateLimitKind::LoginGuess => "login_guess",
            RateLimitKind::Lookup => "lookup",
        }
    }
}

/// Rate-limit instruments.
#[derive(Debug, Clone)]
pub struct RateLimitMetrics {
    /// Rejections by kind, in the order of [`RateLimitKind::ALL`].
    pub rejected: [Counter; RateLimitKind::ALL.len()],
}

impl RateLimitMetrics {
    /// Counts a rejection.
    pub fn reject(&self, kind: RateLimitKind) {
        self.rejected[kind as usize].inc();
    }
}

/// Push-notification instruments (`push/`): attempts by outcome.
#[derive(Debug, Clone)]
pub struct PushMetrics {
    /// Pushes the gateway accepted (2xx).
    pub sent: Counter,
    /// Attempts that failed (non-2xx or no answer) and were rescheduled.
    pub retried: Counter,
    /// Pushes dropped after the last failed attempt.
    pub dropped: Counter,
    /// Pushes not sent because the recipient had a connection by then.
    pub skipped: Counter,
}

/// Every instrument of one server. Cheap to clone (handles).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// HTTP requests.
    pub http: HttpMetrics,
    /// Messages committed (repeated sends not counted).
    pub messages: Counter,
    /// From a send being queued for the store to its commit, seconds.
    pub send_commit: Histogram,
    /// The store's writer.
    pub writer: WriterMetrics,
    /// WebSockets.
    pub ws: WsMetrics,
    /// Rate-limit rejections.
    pub rate_limits: RateLimitMetrics,
    /// Login codes handed to the code sender.
    pub login_codes_sent: Counter,
    /// Login codes the code sender failed to deliver.
    pub login_codes_failed: Counter,
    /// Push notifications by outcome.
    pub push: PushMetrics,
    families: Families,
}

impl Default for Metrics {
    fn default() -> Self {
        let families = Families::default();
        let f = &families;
        Metrics {
            http: HttpMetrics {
                requests: Family::new_with_constructor(latency_histogram),
                responses: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                    .map(|class| series(&f.classes, ClassLabel { class })),
            },
            messages: Counter::default(),
            send_commit: latency_histogram(),
            writer: WriterMetrics::default(),
            ws: WsMetrics {
                opened: Counter::default(),
                closed: CLOSE_CODES.map(|(code, _)| series(&f.closed, CodeLabel { code })),
                slow_consumers: Counter::default(),
                frames_in: series(&f.frames, DirectionLabel { direction: "in" }),
                frames_out: series(&f.frames, DirectionLabel { direction: "out" }),
            },
            rate_limits: RateLimitMetrics {
                rejected: RateLimitKind::ALL.map(|kind| {
                    series(
                        &f.rejected,
                        KindLabel {
                            kind: kind.as_str(),
                        },
                    )
                }),
            },
            login_codes_sent: series(&f.codes, OutcomeLabel { outcome: "sent" }),
            login_codes_failed: series(&f.codes, OutcomeLabel { outcome: "failed" }),
            push: PushMetrics {
                sent: series(&f.pushes, OutcomeLabel { outcome: "sent" }),
                retried: series(&f.pushes, OutcomeLabel { outcome: "retried" }),
                dropped: series(&f.pushes, OutcomeLabel { outcome: "dropped" }),
                skipped: series(&f.pushes, OutcomeLabel { outcome: "skipped" }),
            },
            families,
        }
    }
}

/// The build's version and git commit (from `build.rs`; `unknown` outside a git checkout).
pub fn build_commit() -> &'static str {
    env!("MISSIVE_GIT_COMMIT")
}

/// The registry of one server and its scrape-time collector; renders `/metrics`.
pub struct Exporter {
    registry: Registry,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporter {
    /// Registers every instrument of `metrics`, and reads the bus, the open
    /// connections and the process at each scrape.
    pub fn new(metrics: &Metrics, bus: DynBus, connections: Arc<Connections>) -> Self {
        let mut registry = Registry::default();
        let r = &mut registry;
        r.register(
            "missive_build",
            "Version and git commit of the running binary (value 1)",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", build_commit()),
            ]),
        );
        r.register(
            "missive_http_request_duration_seconds",
            "HTTP request durations by method, route template and status",
            metrics.http.requests.clone(),
        );
        let f = &metrics.families;
        r.register(
            "missive_http_responses",
            "HTTP responses by status class",
            f.classes.clone(),
        );
        r.register(
            "missive_messages",
            "Messages committed",
            metrics.messages.clone(),
        );
        r.register(
            "missive_send_commit_seconds",
            "From a send being queued for the store to its commit",
            metrics.send_commit.clone(),
        );
        let writer = &metrics.writer;
        r.register(
            "missive_writer_queue_depth",
            "Jobs waiting in the store writer's queue",
            writer.queue_depth.clone(),
        );
        r.register(
            "missive_writer_batch_size",
            "Jobs per write transaction of the store writer",
            writer.batch_size.clone(),
        );
        r.register(
            "missive_writer_commit_seconds",
            "Time to apply and commit one batch of the store writer (SQLite: with its fsync)",
            writer.commit_seconds.clone(),
        );
        r.register(
            "missive_writer_failed_batches",
            "Write batches whose transaction failed",
            writer.failed_batches.clone(),
        );
        let ws = &metrics.ws;
        r.register(
            "missive_websocket_opened",
            "WebSocket connections opened",
            ws.opened.clone(),
        );
        r.register(
            "missive_websocket_closed",
            "WebSocket connections closed, by close code (peer: closed by the client; dropped: TCP dropped)",
            f.closed.clone(),
        );
        r.register(
            "missive_websocket_slow_consumer_disconnects",
            "WebSocket connections closed because the client did not keep up with its queue",
            ws.slow_consumers.clone(),
        );
        r.register(
            "missive_websocket_frames",
            "WebSocket frames received (in) and sent (out)",
            f.frames.clone(),
        );
        r.register(
            "missive_rate_limit_rejections",
            "Requests refused by a rate limit, by kind",
            f.rejected.clone(),
        );
        r.register(
            "missive_login_codes",
            "Login codes handed to the code sender, by outcome",
            f.codes.clone(),
        );
        r.register(
            "missive_push",
            "Push notifications for offline recipients, by outcome (sent, retried, dropped, skipped)",
            f.pushes.clone(),
        );
        registry.register_collector(Box::new(ScrapeCollector { bus, connections }));
        Exporter { registry }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The series of `family` under `labels`, as a handle that stays valid
/// (a `Counter` is an `Arc` of its value): resolved once, so that counting
/// needs no lookup.
fn series<S>(family: &Family<S, Counter>, labels: S) -> Counter
where
    S: Clone + std::hash::Hash + Eq,
{
    family.get_or_create(&labels).clone()
}

/// The labelled counter families, registered as they are.
#[derive(Debug, Clone, Default)]
struct Families {
    classes: Family<ClassLabel, Counter>,
    closed: Family<CodeLabel, Counter>,
    frames: Family<DirectionLabel, Counter>,
    rejected: Family<KindLabel, Counter>,
    codes: Family<OutcomeLabel, Counter>,
    pushes: Family<OutcomeLabel, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What is read at scrape time: the bus, the open connections, the process.
struct ScrapeCollector {
    bus: DynBus,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for ScrapeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeCollector")
    }
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "missive_websocket_connections",
            "Open WebSocket connections on this node",
            self.connections.connections() as i64,
        )?;
        let health = self.bus.health();
        let stats = self.bus.stats();
        gauge(
            &mut encoder,
            "missive_bus_up",
            "1 while the bus works (the in-process bus always does)",
            i64::from(health != BusHealth::Down),
        )?;
        counters(
            &mut encoder,
            "missive_bus_events",
            "Events this node published on its bus (published) and events handed to its connections' registry (received: its own and, with Redis, other nodes')",
            "direction",
            &[
                ("published", stats.events_published),
                ("received", self.connections.delivered()),
            ],
        )?;
        counters(
            &mut encoder,
            "missive_bus_entries",
            "Entries of the shared Redis stream by outcome (all 0 without REDIS_URL)",
            "outcome",
            &[
                ("published", stats.published),
                ("failed", stats.failed),
                ("dropped", stats.dropped),
                ("received", stats.received),
            ],
        )?;
        let catch_ups = ConstCounter::new(stats.catch_ups);
        catch_ups.encode(encoder.encode_descriptor(
            "missive_bus_catch_ups",
            "Times every connection of this node was told to read the store",
            None,
            catch_ups.metric_type(),
        )?)?;
        process::encode(&mut encoder)
    }
}

/// One unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// A counter with one label.
fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The process's resources, read from `/proc/self` at scrape time (Linux;
/// elsewhere these metrics are absent). The names are those of the other
/// Prometheus clients' process collectors.
mod process {
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// Linux reports CPU times in USER_HZ ticks, 100 per second on every
    /// architecture the kernel exports to user space.
    const TICKS_PER_SECOND: f64 = 100.0;

    pub(super) fn encode(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = cpu_seconds() {
            let cpu = ConstCounter::new(seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process, seconds",
                None,
                cpu.metric_type(),
            )?)?;
        }
        if let Some(bytes) = resident_bytes() {
            super::gauge(
                encoder,
                "process_resident_memory_bytes",
                "Resident memory of the process, bytes",
                bytes,
            )?;
        }
        if let Some(fds) = open_fds() {
            super::gauge(
                encoder,
                "process_open_fds",
                "Open file descriptors of the process",
                fds,
            )?;
        }
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            let gauge = ConstGauge::new(i64::try_from(soft).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_max_fds",
                "Limit of open file descriptors of the process (soft)",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }

    /// utime + stime of `/proc/self/stat`, in seconds.
    fn cpu_seconds() -> Option<f64> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces: count after its closing parenthesis.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((utime + stime) as f64 / TICKS_PER_SECOND)
    }

    /// `VmRSS` of `/proc/self/status`, in bytes.
    fn resident_bytes() -> Option<i64> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Entries of `/proc/self/fd` (less the one this read opens).
    fn open_fds() -> Option<i64> {
        let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Some(i64::try_from(count).ok()?.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::LocalBus;

    fn exporter(metrics: &Metrics) -> Exporter {
        let connections = Arc::new(Connections::default());
        let bus: DynBus = Arc::new(LocalBus::new(connections.clone()));
        Exporter::new(metrics, bus, connections)
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let metrics = Metrics::default();
        for v in [0.0002, 0.003, 0.003, 20.0] {
            metrics.send_commit.observe(v);
        }
        let text = exporter(&metrics).render();
        assert!(
            text.contains("# TYPE missive_send_commit_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_bucket{le=\"0.00025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_bucket{le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_bucket{le=\"10\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_count 4\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_send_commit_seconds_sum 20.0062"),
            "{text}"
        );
    }

    #[test]
    fn pre_resolved_counters_are_the_series_of_their_family() {
        let metrics = Metrics::default();
        metrics.http.responses[1].inc();
        metrics.rate_limits.reject(RateLimitKind::LoginGuess);
        metrics.ws.close(WsClose::Code(1013));
        metrics.ws.close(WsClose::Peer);
        metrics.ws.close(WsClose::Code(1000));
        let text = exporter(&metrics).render();
        assert!(
            text.contains("missive_http_responses_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_http_responses_total{class=\"5xx\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_rate_limit_rejections_total{kind=\"login_guess\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_rate_limit_rejections_total{kind=\"send\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_websocket_closed_total{code=\"1013\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("missive_websocket_closed_total{code=\"peer\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn the_process_and_the_build_are_described() {
        let text = exporter(&Metrics::default()).render();
        assert!(
            text.contains(&format!(
                "missive_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION"),
                build_commit()
            )),
            "{text}"
        );
        if cfg!(target_os = "linux") {
            let rss = text
                .lines()
                .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                .and_then(|v| v.parse::<f64>().ok())
                .expect("rss");
            assert!(rss > 1e6, "{text}");
            assert!(text.contains("process_open_fds "), "{text}");
            assert!(text.contains("process_cpu_seconds_total "), "{text}");
        }
        assert!(text.contains("missive_bus_up 1\n"), "{text}");
        assert!(text.contains("missive_websocket_connections 0\n"), "{text}");
    }
}
