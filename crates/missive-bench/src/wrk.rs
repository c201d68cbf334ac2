//! `wrk`: durable sends through `POST /messages`, driven by `wrk` (Debian
//! package `wrk`) instead of the bench's own reqwest client, which costs
//! about a quarter of a core by itself.
//!
//! `pairs` sender/receiver pairs are registered and their chats created;
//! then `wrk -t<threads> -c<connections> -d<duration>s --latency` runs the
//! committed Lua script `crates/missive-bench/wrk/post_messages.lua`, which
//! sends `{"chatId","content"}` with the sender's bearer token, rotating over
//! the pairs, and counts every answer that is not a 201. The bench parses
//! wrk's report (requests per second, latency distribution, errors) and the
//! script's own summary line, and measures the server's CPU per thread and
//! wrk's own CPU.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use crate::report::{emit, round3};
use crate::server::{CpuMeter, Server, WriterBatches, clock_ticks_per_second, cpu_ticks};
use crate::setup;

/// The committed wrk script.
const SCRIPT: &str = include_str!("../wrk/post_messages.lua");

/// Options of `wrk`.
#[derive(Debug, Clone, Args)]
pub struct WrkArgs {
    /// Sender/receiver pairs, one chat each.
    #[arg(long, default_value_t = 64)]
    pub pairs: usize,
    /// wrk's open connections (`-c`).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// wrk's threads (`-t`).
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: usize,
    /// Seconds of load (`-d`).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// The wrk binary (`apt-get install -y wrk`; `scripts/bench/ensure-wrk.sh` does it).
    #[arg(long, default_value = "wrk")]
    pub wrk_bin: PathBuf,
}

/// What wrk's text report says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WrkReport {
    /// `Requests/sec:`.
    pub requests_per_second: f64,
    /// `<n> requests in <t>s`.
    pub requests: u64,
    /// The `<t>` of that line, in seconds.
    pub seconds: f64,
    /// `Latency Distribution` lines: (percentile, milliseconds).
    pub percentiles: Vec<(f64, f64)>,
    /// `Non-2xx or 3xx responses:` (0 when absent).
    pub non_2xx_3xx: u64,
    /// `Socket errors:` connect + read + write + timeout (0 when absent).
    pub socket_errors: u64,
    /// The script's `missive-wrk …` line.
    pub script: Option<ScriptSummary>,
}

/// The script's `missive-wrk` line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScriptSummary {
    /// Requests completed.
    pub requests: u64,
    /// Answers other than 201.
    pub non_201: u64,
    /// Latency percentiles and maximum, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest latency.
    pub max_ms: f64,
    /// Status and body start of the first non-201 (empty when none).
    pub first_problem: String,
}

impl WrkReport {
    /// The latency at `percentile` (e.g. 99.0) of the distribution, in ms.
    pub fn percentile(&self, percentile: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(p, _)| (p - percentile).abs() < 1e-9)
            .map(|(_, ms)| *ms)
    }
}

/// A wrk duration (`812.00us`, `6.51ms`, `1.02s`, `1.50m`) in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600e3)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// Parses wrk's `--latency` report and the script's summary line.
pub fn parse_wrk_output(text: &str) -> anyhow::Result<WrkReport> {
    let mut report = WrkReport::default();
    let mut rate = None;
    let mut in_distribution = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            let mut parts = trimmed.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(p), Some(value)) if p.ends_with('%') => {
                    let percentile: f64 = p.trim_end_matches('%').parse()?;
                    let ms = duration_ms(value)
                        .with_context(|| format!("unreadable latency {value:?}"))?;
                    report.percentiles.push((percentile, ms));
                    continue;
                }
                _ => in_distribution = false,
            }
        }
        if let Some(value) = trimmed.strip_prefix("Requests/sec:") {
            rate = Some(value.trim().parse::<f64>()?);
        } else if let Some(value) = trimmed.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx_3xx = value.trim().parse()?;
        } else if let Some(value) = trimmed.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            report.socket_errors = value
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .map(|n| n.parse::<u64>())
                .sum::<Result<u64, _>>()?;
        } else if let Some(rest) = trimmed.strip_prefix("missive-wrk ") {
            report.script = Some(parse_script_line(rest)?);
        } else if let Some((count, rest)) = trimmed.split_once(" requests in ")
            && let Ok(count) = count.parse::<u64>()
        {
            report.requests = count;
            let seconds = rest.split(',').next().unwrap_or_default();
            report.seconds = duration_ms(seconds)
                .with_context(|| format!("unreadable duration {seconds:?}"))?
                / 1e3;
        }
    }
    report.requests_per_second = rate.context("no `Requests/sec:` line in wrk's output")?;
    Ok(report)
}

/// `requests=… non201=… p50_us=… p99_us=… p999_us=… max_us=… first=…`.
fn parse_script_line(rest: &str) -> anyhow::Result<ScriptSummary> {
    let (fields, first) = rest.split_once("first=").unwrap_or((rest, ""));
    let mut summary = ScriptSummary {
        first_problem: first.trim().to_owned(),
        ..ScriptSummary::default()
    };
    for field in fields.split_whitespace() {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("unexpected field {field:?} in the script's line"))?;
        let number: u64 = value
            .parse()
            .with_context(|| format!("unexpected value in {field:?}"))?;
        let ms = number as f64 / 1e3;
        match key {
            "requests" => summary.requests = number,
            "non201" => summary.non_201 = number,
            "p50_us" => summary.p50_ms = ms,
            "p99_us" => summary.p99_ms = ms,
            "p999_us" => summary.p999_ms = ms,
            "max_us" => summary.max_ms = ms,
            _ => {}
        }
    }
    Ok(summary)
}

/// State (`R`, `S`, `Z`, …) of process `pid` from `/proc/<pid>/stat`.
fn process_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rfind(')')
        .and_then(|at| text[at + 1..].split_whitespace().next())
        .and_then(|state| state.chars().next())
}

/// Runs the scenario; `Ok(false)` when any answer was not a 201 or a socket failed.
pub async fn run(server: &Server, args: &WrkArgs, deadline: Instant) -> anyhow::Result<bool> {
    let pairs = args.pairs.max(1);
    let threads = args.wrk_threads.max(1);
    let connections = args.connections.max(threads);
    match Command::new(&args.wrk_bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => bail!(
            "cannot run {} ({e}): install wrk with `apt-get install -y wrk` \
             (scripts/bench/ensure-wrk.sh) or pass --wrk-bin",
            args.wrk_bin.display()
        ),
    }
    let client = setup::client(&server.base)?;
    eprintln!("registering {pairs} pairs and creating their chats");
    let lines = tokio::time::timeout_at(deadline.into(), async {
        let senders = setup::register_users(&client, 6, pairs).await?;
        let receivers = setup::register_users(&client, 7, pairs).await?;
        let mut lines = String::new();
        for (sender, receiver) in senders.iter().zip(&receivers) {
            let chat = setup::create_chat(&client, sender, receiver).await?;
            writeln!(lines, "{} {chat}", sender.token)?;
        }
        anyhow::Ok(lines)
    })
    .await
    .context("setting up the users and chats took too long")??;

    let dir = tempfile::Builder::new()
        .prefix("missive-bench-wrk")
        .tempdir()?;
    let script = dir.path().join("post_messages.lua");
    let pairs_file = dir.path().join("pairs.txt");
    let output_file = dir.path().join("wrk.out");
    std::fs::write(&script, SCRIPT)?;
    std::fs::write(&pairs_file, lines)?;

    let mut command = Command::new(&args.wrk_bin);
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", args.duration.max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(&server.base)
        .arg("--")
        .arg(&pairs_file)
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output_file)?)
        .stderr(Stdio::piped());
    let described = format!(
        "wrk -t{threads} -c{connections} -d{}s --latency -s post_messages.lua {} -- pairs.txt {threads}",
        args.duration.max(1),
        server.base
    );
    eprintln!("running {described}");
    let batches = WriterBatches::scrape(std::slice::from_ref(server)).await;
    let cpu = CpuMeter::start(std::slice::from_ref(server))?;
    let started = Instant::now();
    // wrk stops itself after `--duration`; the deadline only guards a hung wrk.
    let wrk_deadline = deadline.max(started + Duration::from_secs(args.duration.max(1) + 30));
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {}", args.wrk_bin.display()))?;
    let pid = child.id();
    let stat = format!("/proc/{pid}/stat");
    // wrk's CPU time: read while it runs and once more as a zombie (its final
    // times), before it is reaped.
    let mut wrk_ticks = 0;
    loop {
        if let Ok(ticks) = cpu_ticks(&stat) {
            wrk_ticks = ticks;
        }
        match process_state(pid) {
            Some('Z') | None => break,
            Some(_) => {}
        }
        if Instant::now() >= wrk_deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wrk was still running 30 s after its --duration");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.read(std::slice::from_ref(server))?;
    let batches = batches.until(WriterBatches::scrape(std::slice::from_ref(server)).await);
    let rss = server.rss_kib()?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let output = std::fs::read_to_string(&output_file)?;
    if !status.success() {
        bail!("wrk failed ({status}): {stderr}{output}");
    }
    let report = parse_wrk_output(&output)
        .with_context(|| format!("reading wrk's output:\n{output}{stderr}"))?;
    let wrk_percent = wrk_ticks as f64 / clock_ticks_per_second() / seconds.max(1e-9) * 100.0;
    // wrk is another process: the meter counted it as "other".
    let other_percent = (cpu.other_percent - wrk_percent).max(0.0);

    let script_summary = report.script.clone().unwrap_or_default();
    let non_201 = script_summary.non_201;
    let ok = report.script.is_some()
        && non_201 == 0
        && report.non_2xx_3xx == 0
        && report.socket_errors == 0
        && report.requests > 0;
    let (p50, p75, p90, p99) = (
        report.percentile(50.0).unwrap_or(f64::NAN),
        report.percentile(75.0).unwrap_or(f64::NAN),
        report.percentile(90.0).unwrap_or(f64::NAN),
        report.percentile(99.0).unwrap_or(f64::NAN),
    );
    let mut cpu_json = cpu.json();
    cpu_json["wrk_percent"] = json!((wrk_percent * 10.0).round() / 10.0);
    cpu_json["other_percent"] = json!((other_percent * 10.0).round() / 10.0);
    let record = json!({
        "scenario": "wrk",
        "pairs": pairs,
        "connections": connections,
        "wrk_threads": threads,
        "duration_s": args.duration.max(1),
        "requests": report.requests,
        "seconds": round3(report.seconds),
        "requests_per_second": round3(report.requests_per_second),
        "non_201": non_201,
        "non_2xx_3xx": report.non_2xx_3xx,
        "socket_errors": report.socket_errors,
        "latency": {
            "p50_ms": round3(p50),
            "p75_ms": round3(p75),
            "p90_ms": round3(p90),
            "p99_ms": round3(p99),
            "p999_ms": round3(script_summary.p999_ms),
            "max_ms": round3(script_summary.max_ms),
        },
        "cpu": cpu_json,
        "writer_batches": batches.json(),
        "server_rss_kib": rss,
        "first_problem": (!script_summary.first_problem.is_empty()).then_some(&script_summary.first_problem),
        "ok": ok,
    });
    let threads_text: Vec<String> = cpu
        .server_threads
        .iter()
        .take(3)
        .map(|(name, used)| format!("{name} {used:.0}%"))
        .collect();
    let mut rows = vec![
        (
            "load",
            format!(
                "{pairs} pairs, wrk {threads} threads x {connections} connections, {} s",
                args.duration.max(1)
            ),
        ),
        (
            "answered",
            format!(
                "{} in {:.2} s = {:.0} req/s",
                report.requests, report.seconds, report.requests_per_second
            ),
        ),
        (
            "non-201 / socket errors",
            format!("{non_201} / {}", report.socket_errors),
        ),
        (
            "latency",
            format!(
                "p50 {p50:.3} / p99 {p99:.3} / p99.9 {:.3} / max {:.3} ms",
                script_summary.p999_ms, script_summary.max_ms
            ),
        ),
        (
            "CPU (100% = 1 core)",
            format!(
                "server {:.0}% ({}), wrk {wrk_percent:.0}%, bench {:.0}%, other {other_percent:.0}%",
                cpu.server_percent,
                threads_text.join(", "),
                cpu.bench_percent
            ),
        ),
        ("writer group commits", batches.text()),
        ("server RSS", format!("{rss} KiB")),
    ];
    if report.script.is_none() {
        rows.push((
            "script",
            "no `missive-wrk` line: the 201 check did not run".to_owned(),
        ));
    }
    if !script_summary.first_problem.is_empty() {
        rows.push(("first problem", script_summary.first_problem.clone()));
    }
    emit("HTTP POST /messages (wrk)", &rows, &record);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 20s test @ http://127.0.0.1:41234
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.51ms    2.10ms  40.00ms   80.00%
    Req/Sec     4.95k   300.00     5.50k    70.00%
  Latency Distribution
     50%  812.00us
     75%    7.10ms
     90%    8.50ms
     99%    1.02s
  198000 requests in 20.01s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
missive-wrk requests=198000 non201=12 p50_us=812 p99_us=1020000 p999_us=1500000 max_us=2000000 first=429 {\"error\":{\"code\":\"rate_limited\"}}
Requests/sec:   9895.05
Transfer/sec:      3.00MB
";

    #[test]
    fn parses_rate_requests_and_errors() {
        let report = parse_wrk_output(OUTPUT).expect("parses");
        assert!((report.requests_per_second - 9895.05).abs() < 1e-9);
        assert_eq!(report.requests, 198_000);
        assert!((report.seconds - 20.01).abs() < 1e-9);
        assert_eq!(report.non_2xx_3xx, 12);
        assert_eq!(report.socket_errors, 5);
    }

    #[test]
    fn latency_units_come_out_in_milliseconds() {
        let report = parse_wrk_output(OUTPUT).expect("parses");
        assert_eq!(report.percentiles.len(), 4);
        assert!((report.percentile(50.0).expect("p50") - 0.812).abs() < 1e-9);
        assert!((report.percentile(75.0).expect("p75") - 7.1).abs() < 1e-9);
        assert!((report.percentile(99.0).expect("p99") - 1020.0).abs() < 1e-9);
        assert_eq!(duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(duration_ms("fast"), None);
    }

    #[test]
    fn the_script_line_carries_the_non_201_count_and_first_problem() {
        let script = parse_wrk_output(OUTPUT)
            .expect("parses")
            .script
            .expect("script line");
        assert_eq!(script.requests, 198_000);
        assert_eq!(script.non_201, 12);
        assert!((script.p999_ms - 1500.0).abs() < 1e-9);
        assert!((script.max_ms - 2000.0).abs() < 1e-9);
        assert_eq!(
            script.first_problem,
            r#"429 {"error":{"code":"rate_limited"}}"#
        );
    }

    #[test]
    fn a_clean_run_has_no_errors_and_no_problem() {
        let clean = "  Latency Distribution\n     50%    1.00ms\n  10 requests in 1.00s, 1.00KB read\nmissive-wrk requests=10 non201=0 p50_us=1000 p99_us=2000 p999_us=2000 max_us=3000 first=\nRequests/sec:     10.00\n";
        let report = parse_wrk_output(clean).expect("parses");
        assert_eq!(report.non_2xx_3xx, 0);
        assert_eq!(report.socket_errors, 0);
        let script = report.script.expect("script line");
        assert_eq!(script.non_201, 0);
        assert_eq!(script.first_problem, "");
    }

    #[test]
    fn output_without_a_rate_is_an_error() {
        assert!(parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn the_committed_script_has_the_hooks_the_bench_relies_on() {
        for hook in [
            "function setup(",
            "function init(",
            "function request(",
            "function response(",
            "function done(",
            "missive-wrk requests=",
        ] {
            assert!(SCRIPT.contains(hook), "{hook} missing from the script");
        }
    }
}
