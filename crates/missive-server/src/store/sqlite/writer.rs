//! The single writer: one thread owns the write connection and applies jobs in
//! batches, one transaction (one fsync) per batch — group commit. Each job runs
//! inside its own savepoint, so a failing job does not spoil its batch; every
//! job's caller hears back only after the batch has committed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// Most jobs applied in one transaction.
pub const MAX_BATCH: usize = 512;
/// Capacity of the writer's inbox; senders wait when it is full (backpressure).
pub const INBOX: usize = 4096;

/// A unit of work for the writer.
pub trait Job: Send {
    /// Applies the job; `false` when it failed and its savepoint must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Reports the outcome once the batch has committed (or failed to).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

/// A job made of a closure and the channel its result goes back on.
struct ClosureJob<T, F> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for ClosureJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a write job panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let outcome = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(StoreError::Unavailable(e)),
            (None, Ok(())) => Err(StoreError::Internal("write job was not run".into())),
        };
        // The caller may have gone away (client disconnected): nothing to do.
        let _ = self.reply.send(outcome);
    }
}

/// The handle through which tasks submit work to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    inbox: mpsc::Sender<Box<dyn Job>>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped,
    /// after applying what it had received.
    pub fn spawn(conn: Connection) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(INBOX);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok((WriterHandle { inbox: tx }, thread))
    }

    /// Runs `work` in the next batch and returns its result after the commit.
    pub async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work).await?.await
    }

    /// Queues `work` (waiting only for room in the inbox) and returns a future
    /// of its result after the commit. Jobs run in the order they are queued.
    pub async fn submit<T, F>(&self, work: F) -> StoreResult<Committed<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = ClosureJob {
            work: Some(work),
            result: None,
            reply,
        };
        self.inbox
            .send(Box::new(job))
            .await
            .map_err(|_| StoreError::Unavailable("the database is closed".into()))?;
        Ok(Committed(answer))
    }
}

/// The result of a queued job, available once its batch has committed.
pub struct Committed<T>(oneshot::Receiver<StoreResult<T>>);

impl<T> Future for Committed<T> {
    type Output = StoreResult<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the database writer stopped".into(),
                ))
            })
        })
    }
}

fn run(conn: Connection, mut inbox: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = inbox.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = apply(&conn, &mut batch);
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
        } else {
            tracing::trace!(jobs = batch.len(), "write batch committed");
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Applies a batch in one transaction.
fn apply(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    // The fixed statements are prepared once and reused from the cache.
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
    };
    run("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let result = (|| {
        for job in batch.iter_mut() {
            run("SAVEPOINT job")?;
            if job.run(conn) {
                run("RELEASE job")?;
            } else {
                run("ROLLBACK TO job")?;
                run("RELEASE job")?;
            }
        }
        run("COMMIT")
    })()
    .map_err(|e| e.to_string());
    if result.is_err() {
        // Best effort: the transaction may already be gone.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
