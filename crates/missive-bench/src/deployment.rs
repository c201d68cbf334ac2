//! What a run measures: one node on SQLite (the default), one node on
//! PostgreSQL (`--store postgres`), or two nodes sharing PostgreSQL and Redis
//! (`--cluster`). PostgreSQL runs get a fresh database `missive_bench_<uuid>`
//! made through the admin URL and dropped afterwards; cluster runs get a
//! unique `REDIS_PREFIX` whose keys are deleted afterwards, so runs never see
//! each other's data and leave nothing behind in the shared services.

use std::path::Path;

use anyhow::Context;
use clap::{Args, ValueEnum};
use reqwest::Url;
use uuid::Uuid;

use crate::server::{NodeOptions, Server, Stopped};

/// The store of the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// A fresh SQLite file per run.
    Sqlite,
    /// A fresh PostgreSQL database per run.
    Postgres,
}

/// Global options choosing the deployment.
#[derive(Debug, Clone, Args)]
pub struct DeploymentArgs {
    /// The nodes' store.
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    /// Two nodes sharing one PostgreSQL database and Redis (implies `--store
    /// postgres`); `ws` connects the senders to node A and the recipients to
    /// node B, so every message crosses the Redis bus.
    #[arg(long, global = true)]
    pub cluster: bool,
    /// Admin connection used to create and drop the run's database.
    #[arg(
        long,
        global = true,
        env = "MISSIVE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Redis of `--cluster` runs.
    #[arg(
        long,
        global = true,
        env = "MISSIVE_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Seconds the server gets to answer `/healthz` after it starts and to
    /// exit after SIGTERM (default 15 and 20); raise it for a server run
    /// under valgrind (`--server-bin` may be a wrapper script that `exec`s it).
    #[arg(long, global = true)]
    pub server_timeout: Option<f64>,
}

impl DeploymentArgs {
    /// `sqlite`, `postgres` or `postgres+redis, 2 nodes`.
    pub fn describe(&self) -> &'static str {
        match (self.cluster, self.store) {
            (true, _) => "postgres+redis, 2 nodes",
            (false, StoreKind::Postgres) => "postgres",
            (false, StoreKind::Sqlite) => "sqlite",
        }
    }
}

/// The running nodes and what was made for them.
pub struct Deployment {
    /// The nodes: one, or two with `--cluster` (A first).
    pub servers: Vec<Server>,
    admin_url: Option<String>,
    database: Option<String>,
    redis: Option<(String, String)>,
}

impl Deployment {
    /// Creates the database (if any) and starts the nodes, each waited for.
    pub async fn start(bin: &Path, args: &DeploymentArgs) -> anyhow::Result<Deployment> {
        let postgres = args.cluster || args.store == StoreKind::Postgres;
        let mut deployment = Deployment {
            servers: Vec::new(),
            admin_url: None,
            database: None,
            redis: None,
        };
        let mut options = NodeOptions {
            timeout: args
                .server_timeout
                .map(|seconds| std::time::Duration::from_secs_f64(seconds.max(1.0))),
            ..NodeOptions::default()
        };
        if postgres {
            let name = format!("missive_bench_{}", Uuid::now_v7().simple());
            admin_execute(&args.postgres_url, &format!("CREATE DATABASE \"{name}\""))
                .await
                .with_context(|| format!("creating database {name} through --postgres-url"))?;
            let mut url = Url::parse(&args.postgres_url).context("parsing --postgres-url")?;
            url.set_path(&format!("/{name}"));
            options.database_url = Some(url.to_string());
            deployment.admin_url = Some(args.postgres_url.clone());
            deployment.database = Some(name);
        }
        if args.cluster {
            let prefix = format!("missive-bench-{}", Uuid::now_v7().simple());
            options.redis = Some((args.redis_url.clone(), prefix.clone()));
            deployment.redis = Some((args.redis_url.clone(), prefix));
        }
        let nodes = if args.cluster { 2 } else { 1 };
        for _ in 0..nodes {
            // On failure `deployment` is dropped with the nodes started so
            // far (killed by `Server`'s Drop); the caller's cleanup drops the database.
            match Server::start(bin, &options).await {
                Ok(server) => deployment.servers.push(server),
                Err(e) => {
                    deployment.cleanup().await;
                    return Err(e);
                }
            }
        }
        Ok(deployment)
    }

    /// Stops every node with SIGTERM (in order), then drops the database and
    /// the Redis keys.
    pub async fn stop(mut self) -> anyhow::Result<Vec<Stopped>> {
        let mut stopped = Vec::new();
        let mut first_error = None;
        for server in std::mem::take(&mut self.servers) {
            match server.stop().await {
                Ok(s) => stopped.push(s),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.cleanup().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(stopped),
        }
    }

    /// Drops what the run made in PostgreSQL and Redis (warnings only: the
    /// measurement is already taken).
    async fn cleanup(&mut self) {
        // Nodes still running hold connections: stop them first (Drop kills them).
        self.servers.clear();
        if let (Some(admin), Some(name)) = (&self.admin_url, self.database.take()) {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = admin_execute(admin, &drop).await {
                eprintln!("warning: could not drop database {name}: {e:#}");
            }
        }
        if let Some((url, prefix)) = self.redis.take()
            && let Err(e) = delete_keys(&url, &format!("{prefix}:*")).await
        {
            eprintln!("warning: could not delete the Redis keys {prefix}:*: {e:#}");
        }
    }
}

/// Runs one statement on the admin connection.
pub async fn admin_execute(admin_url: &str, statement: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    let outcome = client.batch_execute(statement).await;
    drop(client);
    let _ = driver.await;
    outcome.with_context(|| format!("running {statement}"))
}

/// Deletes the keys matching `pattern` (SCAN, never KEYS: Redis is shared).
pub async fn delete_keys(url: &str, pattern: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
