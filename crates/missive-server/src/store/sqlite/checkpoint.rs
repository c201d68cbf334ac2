//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the commit that crosses the threshold, so the messages of that
//! batch wait for it; here a thread of its own copies the WAL into the
//! database every second instead (PASSIVE: it never blocks the writer or the
//! readers), and truncates the WAL once at shutdown. The writer keeps SQLite's
//! automatic checkpoint only as a backstop, at 10,000 pages (≈ 40 MiB), in
//! case this thread falls behind.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_secs(1);

/// The running checkpointer; dropping `stop` (via [`Checkpointer::stop`]) ends it.
pub struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub fn spawn(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops after a final checkpoint that truncates the WAL.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => checkpoint(conn, "PASSIVE"),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                checkpoint(conn, "TRUNCATE");
                return;
            }
        }
    }
}

fn checkpoint(conn: &Connection, mode: &str) {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    if let Err(e) = conn.query_row(&sql, [], |_| Ok(())) {
        tracing::warn!(error = %e, mode, "WAL checkpoint failed");
    }
}
