//! `http`: durable sends through `POST /messages`.
//!
//! `pairs` sender/receiver pairs are registered and their chats created;
//! then `concurrency` workers keep one request each in flight over
//! keep-alive connections, request `k` going from the sender of pair
//! `k % pairs` (its bearer token) to that pair's chat (`{"chatId","content"}`),
//! until `requests` were sent or the deadline passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::future::join_all;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::json;

use crate::report::{Latencies, emit, round3};
use crate::server::{CpuMeter, Server};
use crate::setup;

/// Options of `http`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Sender/receiver pairs, one chat each.
    #[arg(long, default_value_t = 64)]
    pub pairs: usize,
    /// Requests to send in total.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u64,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// What one worker saw.
#[derive(Default)]
struct WorkerStats {
    created: u64,
    other_status: u64,
    failures: u64,
    first_problem: Option<String>,
    latency: Latencies,
}

/// One pair's prepared request parts.
struct Target {
    authorization: HeaderValue,
    chat: String,
}

/// Runs the scenario; `Ok(false)` when any answer was not a 201.
pub async fn run(
    server: &Server,
    args: &HttpArgs,
    threads: usize,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let pairs = args.pairs.max(1);
    let concurrency = args.concurrency.max(1);
    let client = setup::client(&server.base)?;
    eprintln!("registering {pairs} pairs and creating their chats");
    let targets = tokio::time::timeout_at(deadline.into(), async {
        let senders = setup::register_users(&client, 4, pairs).await?;
        let receivers = setup::register_users(&client, 5, pairs).await?;
        let mut targets = Vec::with_capacity(pairs);
        for (sender, receiver) in senders.iter().zip(&receivers) {
            let chat = setup::create_chat(&client, sender, receiver).await?;
            targets.push(Target {
                authorization: HeaderValue::from_str(&format!("Bearer {}", sender.token))?,
                chat: chat.to_string(),
            });
        }
        anyhow::Ok(targets)
    })
    .await
    .context("setting up the users and chats took too long")??;

    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = Arc::new(format!("{}/messages", server.base));
    let targets = Arc::new(targets);
    let counter = Arc::new(AtomicU64::new(0));
    eprintln!(
        "sending {} requests, {concurrency} in flight",
        args.requests
    );
    let cpu = CpuMeter::start(std::slice::from_ref(server))?;
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (http, url, targets, counter) =
            (http.clone(), url.clone(), targets.clone(), counter.clone());
        let total = args.requests;
        tokio::spawn(async move {
            let mut stats = WorkerStats::default();
            loop {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                if k >= total || Instant::now() >= deadline {
                    break;
                }
                let target = &targets[(k % targets.len() as u64) as usize];
                let body = format!(r#"{{"chatId":"{}","content":"bench {k}"}}"#, target.chat);
                let sent_at = Instant::now();
                let answer = http
                    .post(url.as_str())
                    .header(AUTHORIZATION, target.authorization.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        // Read the body so the connection goes back to the pool.
                        let body = answer.bytes().await;
                        let elapsed = sent_at.elapsed();
                        stats
                            .latency
                            .record_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
                        match body {
                            Ok(_) if status == 201 => stats.created += 1,
                            Ok(body) => {
                                stats.other_status += 1;
                                stats.first_problem.get_or_insert_with(|| {
                                    format!("{status}: {}", String::from_utf8_lossy(&body))
                                });
                            }
                            Err(e) => {
                                stats.failures += 1;
                                stats.first_problem.get_or_insert_with(|| format!("{e}"));
                            }
                        }
                    }
                    Err(e) => {
                        stats.failures += 1;
                        stats.first_problem.get_or_insert_with(|| format!("{e}"));
                    }
                }
            }
            stats
        })
    });
    let mut latency = Latencies::new();
    let (mut created, mut other_status, mut failures) = (0u64, 0u64, 0u64);
    let mut first_problem = None;
    for stats in join_all(workers).await {
        let stats = stats.context("a worker task failed")?;
        created += stats.created;
        other_status += stats.other_status;
        failures += stats.failures;
        latency.merge(&stats.latency);
        if first_problem.is_none() {
            first_problem = stats.first_problem;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.read(std::slice::from_ref(server))?;
    let rss = server.rss_kib()?;
    let answered = created + other_status;
    let throughput = answered as f64 / seconds.max(1e-9);
    let created_rate = created as f64 / seconds.max(1e-9);
    let complete = created + other_status + failures >= args.requests;
    let ok = other_status == 0 && failures == 0 && complete;
    let summary = latency.summary();
    let record = json!({
        "scenario": "http",
        "pairs": pairs,
        "concurrency": concurrency,
        "threads": threads,
        "requests": args.requests,
        "created_201": created,
        "non_201": other_status,
        "transport_failures": failures,
        "complete": complete,
        "seconds": round3(seconds),
        "requests_per_second": round3(throughput),
        "created_per_second": round3(created_rate),
        "latency": summary.json(),
        "cpu": cpu.json(),
        "server_rss_kib": rss,
        "first_problem": first_problem,
        "ok": ok,
    });
    let mut rows = vec![
        (
            "load",
            format!(
                "{pairs} pairs, {concurrency} in flight, {} requests",
                args.requests
            ),
        ),
        (
            "answered",
            format!("{answered} in {seconds:.2} s = {throughput:.0} req/s"),
        ),
        (
            "201 / other / failed",
            format!("{created} / {other_status} / {failures}"),
        ),
        ("latency", summary.text()),
        ("CPU (100% = 1 core)", cpu.text()),
        ("server RSS", format!("{rss} KiB")),
    ];
    if let Some(problem) = &first_problem {
        rows.push(("first problem", problem.clone()));
    }
    emit("HTTP POST /messages", &rows, &record);
    Ok(ok)
}
