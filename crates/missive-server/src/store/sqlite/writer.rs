//! The single writer: one thread owns the write connection and applies jobs in
//! batches, one transaction (one fsync) per batch — group commit. Every job's
//! caller hears back only after the batch has committed.
//!
//! Jobs refuse domain errors (unknown chat, taken phone number, …) before
//! they write anything, so such a refusal needs no rollback and the batch goes
//! on. Any other failure (an SQLite error, a damaged file, a panic) may have left a job half
//! written: the whole batch is rolled back and every job in it fails with
//! `Unavailable` — nothing of it was acknowledged, and clients retry (sends
//! idempotently, with their `clientMessageId`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use crate::metrics::WriterMetrics;
use crate::store::{StoreError, StoreResult};

/// Most jobs applied in one transaction.
pub const MAX_BATCH: usize = 512;
/// Capacity of the writer's inbox; senders wait when it is full (backpressure).
pub const INBOX: usize = 4096;

/// A unit of work for the writer.
pub trait Job: Send {
    /// Applies the job; `Err` when it failed in a way that may have left partial
    /// writes, so that the batch must be rolled back.
    fn run(&mut self, conn: &Connection, cache: &mut Cache) -> Result<(), String>;
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
    F: FnOnce(&Connection, &mut Cache) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, cache: &mut Cache) -> Result<(), String> {
        let Some(work) = self.work.take() else {
            return Err("a write job ran twice".into());
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn, cache)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a write job panicked".into())));
        let abort = match &result {
            Err(
                e @ (StoreError::Unavailable(_) | StoreError::Internal(_) | StoreError::Corrupt(_)),
            ) => Err(e.to_string()),
            _ => Ok(()),
        };
        self.result = Some(result);
        abort
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
    pub fn spawn(
        conn: Connection,
        metrics: WriterMetrics,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(INBOX);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, metrics))?;
        Ok((WriterHandle { inbox: tx }, thread))
    }

    /// Runs `work` in the next batch and returns its result after the commit.
    pub async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Cache) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work).await?.await
    }

    /// Queues `work` (waiting only for room in the inbox) and returns a future
    /// of its result after the commit. Jobs run in the order they are queued.
    pub async fn submit<T, F>(&self, work: F) -> StoreResult<Committed<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Cache) -> StoreResult<T> + Send + 'static,
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

fn run(conn: Connection, mut inbox: mpsc::Receiver<Box<dyn Job>>, metrics: WriterMetrics) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut cache = Cache::default();
    while let Some(first) = inbox.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics.queue_depth.set(inbox.len() as i64);
        metrics.batch_size.observe(batch.len() as f64);
        let started = Instant::now();
        let commit = apply(&conn, &mut cache, &mut batch);
        metrics.commit_seconds.observe_duration(started.elapsed());
        if let Err(e) = &commit {
            metrics.failed_batches.inc();
            tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
        } else {
            tracing::trace!(jobs = batch.len(), "write batch committed");
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
        metrics.queue_depth.set(inbox.len() as i64);
    }
    tracing::debug!("sqlite writer stopped");
}

/// Applies a batch in one transaction; the cache's counters are written back
/// just before `COMMIT`, and a failed batch drops the cache with the rollback.
fn apply(conn: &Connection, cache: &mut Cache, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    // The fixed statements are prepared once and reused from the cache.
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    run("BEGIN IMMEDIATE")?;
    let result = cache
        .begin(conn)
        .map_err(|e| e.to_string())
        .and_then(|()| batch.iter_mut().try_for_each(|job| job.run(conn, cache)))
        .and_then(|()| cache.flush(conn).map_err(|e| e.to_string()))
        .and_then(|()| run("COMMIT"));
    if result.is_err() {
        // Best effort: the transaction may already be gone.
        let _ = conn.execute_batch("ROLLBACK");
        cache.clear();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: Send + 'static>(
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<StoreResult<T>>) {
        let (reply, answer) = oneshot::channel();
        let job = ClosureJob {
            work: Some(move |conn: &Connection, _: &mut Cache| work(conn)),
            result: None,
            reply,
        };
        (Box::new(job), answer)
    }

    fn insert(x: i64) -> impl FnOnce(&Connection) -> StoreResult<()> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            Ok(())
        }
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT x FROM t ORDER BY x")
            .expect("prepares");
        stmt.query_map([], |r| r.get(0))
            .expect("queries")
            .map(|r| r.expect("row"))
            .collect()
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("creates");
        conn
    }

    #[test]
    fn a_refused_job_does_not_spoil_its_batch() {
        let conn = table();
        let (a, a_answer) = job(insert(1));
        let (b, mut b_answer) = job(|_| -> StoreResult<()> { Err(StoreError::ChatNotFound) });
        let (c, c_answer) = job(insert(3));
        let mut batch = vec![a, b, c];

        let commit = apply(&conn, &mut Cache::default(), &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }

        assert_eq!(commit, Ok(()));
        assert_eq!(rows(&conn), vec![1, 3]);
        assert!(a_answer.blocking_recv().expect("answered").is_ok());
        assert!(matches!(
            b_answer.try_recv(),
            Ok(Err(StoreError::ChatNotFound))
        ));
        assert!(c_answer.blocking_recv().expect("answered").is_ok());
    }

    /// A batch whose middle job wrote, then failed with `failure`: nothing
    /// of it is stored, the others hear `Unavailable`, the failing job its
    /// own error, and the connection serves the next batch.
    fn assert_failure_rolls_back_the_batch(failure: StoreError) {
        let conn = table();
        let expected = std::mem::discriminant(&failure);
        let (a, a_answer) = job(insert(1));
        let (b, b_answer) = job(move |conn: &Connection| -> StoreResult<()> {
            conn.execute("INSERT INTO t (x) VALUES (2)", [])?;
            Err(failure)
        });
        let (c, c_answer) = job(insert(3));
        let mut batch = vec![a, b, c];

        let commit = apply(&conn, &mut Cache::default(), &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }

        assert!(commit.is_err());
        assert!(rows(&conn).is_empty(), "nothing of the batch is stored");
        assert!(matches!(
            a_answer.blocking_recv(),
            Ok(Err(StoreError::Unavailable(_)))
        ));
        match b_answer.blocking_recv() {
            Ok(Err(e)) => assert_eq!(std::mem::discriminant(&e), expected, "{e}"),
            other => panic!("the failing job's own error, got {other:?}"),
        }
        assert!(matches!(
            c_answer.blocking_recv(),
            Ok(Err(StoreError::Unavailable(_)))
        ));
        // The connection is usable again afterwards.
        let (d, _) = job(insert(4));
        let mut next = vec![d];
        assert_eq!(apply(&conn, &mut Cache::default(), &mut next), Ok(()));
        assert_eq!(rows(&conn), vec![4]);
    }

    #[test]
    fn a_failing_job_rolls_back_the_whole_batch_and_nobody_is_acknowledged() {
        assert_failure_rolls_back_the_batch(StoreError::Internal("disk on fire".into()));
    }

    #[test]
    fn a_job_that_finds_the_file_damaged_rolls_back_its_batch() {
        assert_failure_rolls_back_the_batch(StoreError::Corrupt(
            "database disk image is malformed".into(),
        ));
    }

    #[test]
    fn a_panicking_job_is_a_failure_not_a_dead_writer() {
        let conn = table();
        let (a, a_answer) = job(|_: &Connection| -> StoreResult<()> { panic!("bug") });
        let mut batch = vec![a];
        let commit = apply(&conn, &mut Cache::default(), &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }
        assert!(commit.is_err());
        assert!(matches!(
            a_answer.blocking_recv(),
            Ok(Err(StoreError::Internal(_)))
        ));
    }
}
