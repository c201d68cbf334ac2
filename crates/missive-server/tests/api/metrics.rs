//! `GET /metrics` (docs/operations.md, "Watch"): after real traffic, the
//! exposition parses as Prometheus text and its series count that traffic;
//! the Grafana dashboard in deploy/grafana only queries metrics that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use missive_client::protocol::{ClientFrame, ServerFrame};
use serde_json::json;

use crate::helpers::{ALICE, BOB, TestApp, spawn_app, spawn_app_with};
use crate::ws_helpers::open_as;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: its samples and the `# TYPE` of each family.
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Exposition {
    /// The value of the one series `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Like [`Self::value`], failing the test (with the exposition) when absent.
    fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{}", self.text))
    }

    /// Every name a query may use: sample names and family names.
    fn names(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| s.name.clone())
            .chain(self.types.keys().cloned())
            .collect()
    }
}

/// Parses the Prometheus text format (0.0.4), failing on any malformed line.
fn parse(text: &str) -> Exposition {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(name_ok(name), "bad family name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample and its value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                (name, parse_labels(body, line))
            }
        };
        assert!(name_ok(name), "bad metric name in {line:?}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Every sample belongs to a declared family.
    for sample in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.name.strip_suffix(suffix))
            .find(|base| types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(&sample.name);
        assert!(
            types.contains_key(family),
            "{} has no # TYPE line",
            sample.name
        );
    }
    Exposition {
        samples,
        types,
        text: text.to_owned(),
    }
}

/// `k="v",k2="v\"2"` into a map.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels in {line:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// Scrapes and parses `/metrics`.
async fn scrape(app: &TestApp) -> Exposition {
    let raw = app.get("/metrics").await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    let content_type = raw.header("content-type").unwrap_or_default().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&raw.body)
}

/// Scrapes until `check` holds (some counters are bumped just after the
/// response the test saw), for at most five seconds.
async fn eventually(app: &TestApp, check: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exposition = scrape(app).await;
        if check(&exposition) || Instant::now() > deadline {
            return exposition;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_the_requests_just_made_by_route_template_and_status() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let message = alice.send_to(BOB, "hello metrics").await;
    alice.messages(message.chat_id, 10).await;
    alice.messages(message.chat_id, 10).await;
    assert_eq!(app.get("/no/such/route").await.status, 404);

    // Recorded before each response left the server.
    let m = scrape(&app).await;

    let route = [
        ("method", "GET"),
        ("route", "/chats/{chat_id}/messages"),
        ("status", "200"),
    ];
    assert_eq!(
        m.expect("missive_http_request_duration_seconds_count", &route),
        2.0
    );
    let mut inf = route.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        m.expect("missive_http_request_duration_seconds_bucket", &inf),
        2.0
    );
    assert!(m.expect("missive_http_request_duration_seconds_sum", &route) > 0.0);
    assert_eq!(
        m.expect(
            "missive_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/messages"),
                ("status", "201")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.expect(
            "missive_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    // No raw path (with the chat's id) ever becomes a label value.
    assert!(!m.text.contains(&message.chat_id.to_string()), "{}", m.text);
    // The older counters still work.
    assert!(m.expect("missive_http_responses_total", &[("class", "2xx")]) >= 5.0);
    assert_eq!(
        m.expect("missive_http_responses_total", &[("class", "4xx")]),
        1.0
    );
}

#[tokio::test]
async fn a_send_is_observed_from_queue_to_commit_with_its_writer_batch() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let before = scrape(&app).await;
    let batches_before = before.expect("missive_writer_batch_size_count", &[]);

    for i in 0..3 {
        alice.send_to(BOB, &format!("message {i}")).await;
    }

    let m = scrape(&app).await;
    assert_eq!(m.expect("missive_send_commit_seconds_count", &[]), 3.0);
    assert!(m.expect("missive_send_commit_seconds_sum", &[]) > 0.0);
    assert_eq!(
        m.expect("missive_send_commit_seconds_bucket", &[("le", "+Inf")]),
        3.0
    );
    assert_eq!(m.expect("missive_messages_total", &[]), 3.0);
    // Each send was committed in some batch of the writer (on either store).
    let batches = m.expect("missive_writer_batch_size_count", &[]);
    assert!(batches >= batches_before + 1.0, "{}", m.text);
    assert!(m.expect("missive_writer_batch_size_sum", &[]) >= 3.0);
    assert_eq!(
        m.expect("missive_writer_commit_seconds_count", &[]),
        batches
    );
    assert_eq!(m.expect("missive_writer_queue_depth", &[]), 0.0);
    assert_eq!(m.expect("missive_writer_failed_batches_total", &[]), 0.0);
    // Each committed message was published on the bus and reached this node's registry.
    assert!(m.expect("missive_bus_events_total", &[("direction", "published")]) >= 3.0);
    assert!(m.expect("missive_bus_events_total", &[("direction", "received")]) >= 3.0);
    assert_eq!(m.expect("missive_bus_up", &[]), 1.0);
}

#[tokio::test]
async fn the_websocket_gauge_goes_up_and_back_down_and_frames_and_closes_are_counted() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let before = scrape(&app).await;
    assert_eq!(before.expect("missive_websocket_connections", &[]), 0.0);

    // `open_as` has read the `ready` frame.
    let mut socket = open_as(&alice).await;
    socket.send(&ClientFrame::Ping).await;
    assert!(matches!(socket.next().await, ServerFrame::Pong));

    let open = scrape(&app).await;
    assert_eq!(open.expect("missive_websocket_connections", &[]), 1.0);
    assert_eq!(open.expect("missive_websocket_opened_total", &[]), 1.0);
    assert_eq!(
        open.expect("missive_websocket_frames_total", &[("direction", "in")]),
        1.0
    );
    assert_eq!(
        open.expect("missive_websocket_frames_total", &[("direction", "out")]),
        2.0
    );

    drop(socket);
    let closed = eventually(&app, |m| {
        m.value("missive_websocket_connections", &[]) == Some(0.0)
            && m.value("missive_websocket_closed_total", &[("code", "peer")]) == Some(1.0)
    })
    .await;
    assert_eq!(closed.expect("missive_websocket_connections", &[]), 0.0);
    assert_eq!(
        closed.expect("missive_websocket_closed_total", &[("code", "peer")]),
        1.0
    );
    assert_eq!(
        closed.expect("missive_websocket_closed_total", &[("code", "1013")]),
        0.0
    );
    assert_eq!(
        closed.expect("missive_websocket_slow_consumer_disconnects_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn rate_limit_rejections_are_counted_by_kind() {
    let app = spawn_app_with(|config| {
        config.send_rate_limit = 1;
        config.auth_rate_limit = 3;
    })
    .await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let body = json!({ "receiver": BOB, "content": "fast" }).to_string();
    let mut refused = 0;
    for _ in 0..30 {
        let raw = alice
            .client
            .raw(
                missive_client::Method::POST,
                "/messages",
                Some(body.clone()),
                Some("application/json"),
            )
            .await
            .expect("the server answers");
        if raw.status == 429 {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "30 sends at once exceed 1/s with a burst of 10"
    );

    let m = scrape(&app).await;
    assert_eq!(
        m.expect("missive_rate_limit_rejections_total", &[("kind", "send")]),
        f64::from(refused)
    );
    assert_eq!(
        m.expect("missive_rate_limit_rejections_total", &[("kind", "auth")]),
        0.0
    );
    assert_eq!(
        m.expect(
            "missive_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/messages"),
                ("status", "429")
            ]
        ),
        f64::from(refused)
    );
}

#[tokio::test]
async fn build_info_and_process_metrics_are_served() {
    let app = spawn_app().await;

    let m = scrape(&app).await;

    let build = m
        .samples
        .iter()
        .find(|s| s.name == "missive_build_info")
        .unwrap_or_else(|| panic!("no build info in\n{}", m.text));
    assert_eq!(build.value, 1.0);
    assert_eq!(build.labels["version"], env!("CARGO_PKG_VERSION"));
    let commit = &build.labels["commit"];
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    if cfg!(target_os = "linux") {
        // The test process is the server's process.
        assert!(m.expect("process_resident_memory_bytes", &[]) > 1e6);
        assert!(m.expect("process_open_fds", &[]) >= 3.0);
        assert!(m.expect("process_max_fds", &[]) >= m.expect("process_open_fds", &[]));
        assert!(m.expect("process_cpu_seconds_total", &[]) >= 0.0);
    }
}

/// The metric names a PromQL expression uses (ours and the process's).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("missive_") || current.starts_with("process_") {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

#[tokio::test]
async fn every_metric_of_the_grafana_dashboard_is_served() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/missive-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    // A current dashboard with a Prometheus data source variable that every panel uses.
    assert!(dashboard["schemaVersion"].as_u64().expect("schemaVersion") >= 36);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(variables.iter().any(|v| v["type"] == "datasource"
        && v["query"] == "prometheus"
        && v["name"] == "datasource"));
    // Traffic, so that every labelled family has series.
    let app = spawn_app_with(|config| config.send_rate_limit = 1).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    alice.send_to(BOB, "for the dashboard").await;
    let _socket = open_as(&alice).await;
    let m = scrape(&app).await;
    let served = m.names();

    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            exprs += 1;
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            for name in names {
                assert!(
                    served.contains(&name),
                    "the dashboard's panel {} queries {name}, which /metrics does not serve",
                    panel["title"]
                );
            }
        }
    }
    assert!(exprs >= 10, "the dashboard has its panels");
}
