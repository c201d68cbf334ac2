//! The server under test: spawned from its binary on a free loopback port
//! with a fresh SQLite file in a temporary directory (or the PostgreSQL
//! database and Redis it is given, see `deployment.rs`), watched through
//! `/proc/<pid>` (resident memory, CPU time) and stopped with SIGTERM.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long the server gets to answer `/healthz` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a node keeps its data and how it reaches the other nodes.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// `postgres://…` of a database made for this run; `None`: a fresh SQLite file.
    pub database_url: Option<String>,
    /// `(REDIS_URL, REDIS_PREFIX)`; `None`: one node, in-process fan-out.
    pub redis: Option<(String, String)>,
    /// Replaces both [`START_TIMEOUT`] and [`STOP_TIMEOUT`] (a server run
    /// under valgrind starts and stops slowly; killing it loses the profile).
    pub timeout: Option<Duration>,
}

/// A running server process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log_path: PathBuf,
    /// Length of the log once the server was healthy: later lines come from the run.
    startup_log_len: u64,
    /// Holds the database and the log; removed when the server is dropped.
    _dir: tempfile::TempDir,
    /// `/healthz` wait after spawning.
    start_timeout: Duration,
    /// Wait for the exit after SIGTERM.
    stop_timeout: Duration,
}

/// How the server ended.
#[derive(Debug)]
pub struct Stopped {
    /// The exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Seconds from SIGTERM to exit.
    pub seconds: f64,
    /// Log lines at WARN or ERROR, past the expected startup warning.
    pub log_warnings: Vec<String>,
}

impl Server {
    /// Spawns `bin` on a free port of 127.0.0.1 and waits until `/healthz` answers 200.
    pub async fn start(bin: &Path, options: &NodeOptions) -> anyhow::Result<Server> {
        if !bin.is_file() {
            bail!(
                "server binary {} not found: build it with `cargo build --release -p missive-server` \
                 or pass --server-bin",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("missive-bench")
            .tempdir()
            .context("creating the temporary directory")?;
        let port = free_port()?;
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).context("creating the server log")?;
        // An absolute path: `sqlite://` + `/tmp/…/bench.db`.
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
        let mut command = Command::new(bin);
        command
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            .env("SEND_RATE_LIMIT", "0")
            .env("AUTH_RATE_LIMIT", "0")
            .env("LOOKUP_RATE_LIMIT", "0")
            // Every simulated client connects from 127.0.0.1.
            .env("MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("MAX_SOCKETS_PER_USER", "0")
            .env("LOG_LEVEL", "WARN")
            .env("AUTH_MODE", "open");
        match &options.redis {
            Some((url, prefix)) => command.env("REDIS_URL", url).env("REDIS_PREFIX", prefix),
            None => command.env_remove("REDIS_URL"),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log_path,
            startup_log_len: 0,
            _dir: dir,
            start_timeout: options.timeout.unwrap_or(START_TIMEOUT),
            stop_timeout: options.timeout.unwrap_or(STOP_TIMEOUT),
        };
        server.wait_healthy().await?;
        server.startup_log_len = std::fs::metadata(&server.log_path).map_or(0, |m| m.len());
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        let url = format!("{}/healthz", self.base);
        let started = Instant::now();
        while started.elapsed() < self.start_timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during startup ({status}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            if let Ok(answer) = http.get(&url).send().await
                && answer.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the server did not answer /healthz within {:?}; its log:\n{}",
            self.start_timeout,
            self.log_tail(30)
        )
    }

    /// Resident memory (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        status_field(self.pid(), "VmHWM:")
    }

    /// User + system CPU time consumed so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        cpu_ticks(&format!("/proc/{}/stat", self.pid()))
    }

    /// Sends SIGTERM, waits for the exit (killing the process after
    /// the stop timeout), and reports how it went.
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !signalled.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if started.elapsed() > self.stop_timeout {
                eprintln!(
                    "the server did not exit within {:?} of SIGTERM: killing it",
                    self.stop_timeout
                );
                self.child.kill()?;
                break self.child.wait()?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Stopped {
            exit_code: status.code(),
            seconds: started.elapsed().as_secs_f64(),
            log_warnings: self.log_warnings(),
        })
    }

    /// WARN/ERROR lines logged after startup (the startup warnings about
    /// `AUTH_MODE=open` and the log code sender are expected).
    fn log_warnings(&self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.log_path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.startup_log_len)).is_err() {
            return Vec::new();
        }
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached with the process still running when a scenario failed early.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// utime + stime of a `/proc/.../stat` file, in clock ticks.
pub(crate) fn cpu_ticks(path: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = text
        .rfind(')')
        .map(|at| &text[at + 1..])
        .with_context(|| format!("unexpected format of {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file are the 12th and 13th after the name.
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

/// CPU time of the load generator itself, in clock ticks.
pub fn own_cpu_ticks() -> anyhow::Result<u64> {
    cpu_ticks("/proc/self/stat")
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that fails).
pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Busy (not idle, not waiting for I/O) CPU time of the whole machine, in clock ticks.
fn machine_busy_ticks() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let fields: Vec<u64> = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .context("unexpected format of /proc/stat")?
        .split_whitespace()
        .filter_map(|value| value.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok(total.saturating_sub(idle))
}

/// CPU ticks of each thread of process `pid`, summed by thread name.
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if let Ok(ticks) = cpu_ticks(&path.join("stat").to_string_lossy()) {
            *by_name.entry(name.trim().to_owned()).or_insert(0) += ticks;
        }
    }
    by_name
}

/// CPU ticks of all `servers` together.
fn servers_cpu_ticks(servers: &[Server]) -> anyhow::Result<u64> {
    servers.iter().map(Server::cpu_ticks).sum()
}

/// Thread ticks of all `servers`, summed by thread name.
fn servers_thread_ticks(servers: &[Server]) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    for server in servers {
        for (name, ticks) in thread_ticks(server.pid()) {
            *total.entry(name).or_insert(0) += ticks;
        }
    }
    total
}

/// CPU use of the server(s), of the load generator and of the whole machine over a measured phase.
pub struct CpuMeter {
    server_start: u64,
    own_start: u64,
    machine_start: u64,
    threads_start: BTreeMap<String, u64>,
    started: Instant,
    hz: f64,
}

/// Average CPU use over a phase, in percent of one core (200 % = both cores of this box).
#[derive(Debug, Clone)]
pub struct CpuUse {
    /// The server process(es).
    pub server_percent: f64,
    /// The load generator.
    pub bench_percent: f64,
    /// Everything else running on the machine meanwhile (other processes, the
    /// kernel's own threads; PostgreSQL and Redis when the run uses them).
    pub other_percent: f64,
    /// The server's threads, summed by thread name, busiest first.
    pub server_threads: Vec<(String, f64)>,
}

impl CpuMeter {
    /// Starts measuring the server processes `servers` (their threads summed by name).
    pub fn start(servers: &[Server]) -> anyhow::Result<CpuMeter> {
        Ok(CpuMeter {
            server_start: servers_cpu_ticks(servers)?,
            own_start: own_cpu_ticks()?,
            machine_start: machine_busy_ticks()?,
            threads_start: servers_thread_ticks(servers),
            started: Instant::now(),
            hz: clock_ticks_per_second(),
        })
    }

    /// The average since [`CpuMeter::start`].
    pub fn read(&self, servers: &[Server]) -> anyhow::Result<CpuUse> {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let percent = |ticks: u64| ticks as f64 / self.hz / seconds * 100.0;
        let server_ticks = servers_cpu_ticks(servers)?.saturating_sub(self.server_start);
        let own_ticks = own_cpu_ticks()?.saturating_sub(self.own_start);
        let machine_ticks = machine_busy_ticks()?.saturating_sub(self.machine_start);
        let mut server_threads: Vec<(String, f64)> = servers_thread_ticks(servers)
            .into_iter()
            .map(|(name, ticks)| {
                let before = self.threads_start.get(&name).copied().unwrap_or(0);
                (name, percent(ticks.saturating_sub(before)))
            })
            .filter(|(_, used)| *used > 0.0)
            .collect();
        server_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(CpuUse {
            server_percent: percent(server_ticks),
            bench_percent: percent(own_ticks),
            other_percent: percent(machine_ticks.saturating_sub(server_ticks + own_ticks)),
            server_threads,
        })
    }
}

impl CpuUse {
    /// `server 105% (sqlite-writer 70%, tokio-rt-worker 35%), bench 6%, other 3%`.
    pub fn text(&self) -> String {
        let threads: Vec<String> = self
            .server_threads
            .iter()
            .take(3)
            .map(|(name, used)| format!("{name} {used:.0}%"))
            .collect();
        format!(
            "server {:.0}% ({}), bench {:.0}%, other {:.0}%",
            self.server_percent,
            threads.join(", "),
            self.bench_percent,
            self.other_percent
        )
    }

    /// The JSON object of these numbers.
    pub fn json(&self) -> serde_json::Value {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let threads: serde_json::Map<String, serde_json::Value> = self
            .server_threads
            .iter()
            .map(|(name, used)| (name.clone(), serde_json::json!(round(*used))))
            .collect();
        serde_json::json!({
            "server_percent": round(self.server_percent),
            "server_threads": threads,
            "bench_percent": round(self.bench_percent),
            "other_percent": round(self.other_percent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_memory() {
        assert!(own_cpu_ticks().is_ok());
        assert!(status_field(std::process::id(), "VmRSS:").expect("VmRSS") > 0);
        assert!(machine_busy_ticks().is_ok());
        assert!(!thread_ticks(std::process::id()).is_empty());
    }
}

/// The writers' group commits over a phase, from the servers' `/metrics`
/// (`missive_writer_batch_size` and `missive_writer_commit_seconds`, summed
/// over the nodes): how many sends share a commit, and how long one takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterBatches {
    /// Batches committed.
    pub commits: f64,
    /// Jobs (sends, receipts, …) in them.
    pub jobs: f64,
    /// Seconds spent applying and committing them.
    pub seconds: f64,
    /// Cumulative `missive_writer_commit_seconds` buckets: (upper bound, count).
    pub buckets: Vec<(f64, f64)>,
}

impl WriterBatches {
    /// The totals so far of every server (zero for a server without them).
    pub async fn scrape(servers: &[Server]) -> WriterBatches {
        let client = reqwest::Client::new();
        let mut total = WriterBatches::default();
        for server in servers {
            let text = match client.get(format!("{}/metrics", server.base)).send().await {
                Ok(answer) => answer.text().await.unwrap_or_default(),
                Err(_) => continue,
            };
            total.commits += metric_value(&text, "missive_writer_batch_size_count");
            total.jobs += metric_value(&text, "missive_writer_batch_size_sum");
            total.seconds += metric_value(&text, "missive_writer_commit_seconds_sum");
            for (bound, count) in buckets(&text, "missive_writer_commit_seconds_bucket") {
                match total.buckets.iter_mut().find(|(b, _)| *b == bound) {
                    Some((_, sum)) => *sum += count,
                    None => total.buckets.push((bound, count)),
                }
            }
        }
        total
    }

    /// What happened between `self` (earlier) and `later`.
    pub fn until(self, later: WriterBatches) -> WriterBatches {
        let buckets = later
            .buckets
            .iter()
            .map(|(bound, count)| {
                let before = self
                    .buckets
                    .iter()
                    .find(|(b, _)| b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (*bound, count - before)
            })
            .collect();
        WriterBatches {
            commits: later.commits - self.commits,
            jobs: later.jobs - self.jobs,
            seconds: later.seconds - self.seconds,
            buckets,
        }
    }

    /// The upper bound of the bucket of the slowest commit (`+Inf` past the
    /// last bound); `None` without commits.
    pub fn slowest(&self) -> Option<f64> {
        let mut sorted = self.buckets.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all = sorted.last()?.1;
        if all <= 0.0 {
            return None;
        }
        sorted
            .iter()
            .find(|(_, count)| *count >= all)
            .map(|(bound, _)| *bound)
    }

    /// For the JSON record.
    pub fn json(&self) -> serde_json::Value {
        let (jobs_per_commit, ms_per_commit) = self.means();
        serde_json::json!({
            "commits": self.commits,
            "jobs_per_commit": (jobs_per_commit * 10.0).round() / 10.0,
            "ms_per_commit": (ms_per_commit * 1000.0).round() / 1000.0,
            "slowest_commit_at_most_ms": self.slowest().filter(|s| s.is_finite()).map(|s| s * 1000.0),
        })
    }

    /// For the table.
    pub fn text(&self) -> String {
        let (jobs_per_commit, ms_per_commit) = self.means();
        let slowest = match self.slowest() {
            Some(s) if s.is_finite() => format!(", slowest ≤ {} ms", s * 1000.0),
            Some(_) => ", slowest over the last bucket".to_owned(),
            None => String::new(),
        };
        format!(
            "{} commits, {jobs_per_commit:.1} jobs each, {ms_per_commit:.3} ms each{slowest}",
            self.commits
        )
    }

    fn means(&self) -> (f64, f64) {
        if self.commits <= 0.0 {
            return (0.0, 0.0);
        }
        (
            self.jobs / self.commits,
            self.seconds * 1000.0 / self.commits,
        )
    }
}

/// The `le` buckets of the histogram sample `name` (no other labels):
/// (upper bound, cumulative count), `+Inf` as infinity.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix("{le=\""))
        .filter_map(|rest| {
            let (bound, value) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of the sample `name` (no labels) in a Prometheus text page; 0 if absent.
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod writer_batches_tests {
    use super::*;

    #[test]
    fn samples_are_read_by_exact_name() {
        let page = "# TYPE missive_writer_batch_size histogram\n\
                    missive_writer_batch_size_sum 120.0\n\
                    missive_writer_batch_size_count 4\n\
                    missive_writer_batch_size_bucket{le=\"1.0\"} 0\n";
        assert_eq!(metric_value(page, "missive_writer_batch_size_sum"), 120.0);
        assert_eq!(metric_value(page, "missive_writer_batch_size_count"), 4.0);
        assert_eq!(metric_value(page, "missive_writer_commit_seconds_sum"), 0.0);
        let run = WriterBatches::default().until(WriterBatches {
            commits: 4.0,
            jobs: 120.0,
            seconds: 0.01,
            buckets: Vec::new(),
        });
        assert_eq!(run.text(), "4 commits, 30.0 jobs each, 2.500 ms each");
    }

    #[test]
    fn the_slowest_commit_is_the_first_bucket_holding_every_commit_of_the_run() {
        let page = |fast: u32, slow: u32| {
            format!(
                "missive_writer_commit_seconds_bucket{{le=\"0.001\"}} {fast}\n\
                 missive_writer_commit_seconds_bucket{{le=\"0.05\"}} {}\n\
                 missive_writer_commit_seconds_bucket{{le=\"+Inf\"}} {}\n",
                fast + slow,
                fast + slow
            )
        };
        let scrape = |text: &str| WriterBatches {
            buckets: buckets(text, "missive_writer_commit_seconds_bucket"),
            ..WriterBatches::default()
        };
        // Before the run: one slow commit (setup). During it: only fast ones.
        let run = scrape(&page(10, 1)).until(scrape(&page(30, 1)));
        assert_eq!(run.slowest(), Some(0.001));
        let run = scrape(&page(10, 1)).until(scrape(&page(30, 3)));
        assert_eq!(run.slowest(), Some(0.05));
        assert_eq!(WriterBatches::default().slowest(), None);
    }
}
