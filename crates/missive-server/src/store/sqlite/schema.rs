//! The SQLite schema: the ordered list of migrations and their runner.
//!
//! `PRAGMA user_version` records how many migrations a file has applied;
//! each runs in a transaction of its own together with the bump of that
//! number, so a crash leaves the file at one version or the next.
//!
//! Why not `rusqlite_migration` (the maintained crate of this field, which
//! keeps its version in `user_version` too): no release of it supports the
//! rusqlite this workspace uses (0.43; its latest, 2.6, is built on 0.40),
//! and two rusqlite versions cannot link into one binary (both bundle
//! `sqlite3`). The runner below does what it would (ordered scripts, one
//! transaction each, refusal of a newer file) in a few lines; swapping it in
//! later keeps existing files compatible, as both count in `user_version`.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::store::SchemaStatus;

/// Migrations, applied in order: the N-th sets `user_version` to N.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_login_codes.sql"),
    include_str!("../../../migrations/sqlite/0003_health.sql"),
    include_str!("../../../migrations/sqlite/0004_sessions.sql"),
    include_str!("../../../migrations/sqlite/0005_event_retention.sql"),
    include_str!("../../../migrations/sqlite/0006_push_outbox.sql"),
    include_str!("../../../migrations/sqlite/0007_compact_events.sql"),
];

/// Versions whose migration rewrites a table rather than adding to the
/// schema (7: the event log's ids become blobs). A server of an older build
/// must not run while one of them is applied: it would keep writing the old
/// form. `missive migrate` refuses to apply them while the file is in use.
pub const REWRITES: &[i64] = &[7];

/// Whether a database at version `applied` has a rewriting migration ahead.
pub fn rewrite_pending(applied: i64) -> bool {
    REWRITES
        .iter()
        .any(|&version| applied < version && version <= MIGRATIONS.len() as i64)
}

/// The schema version of `conn`'s database against [`MIGRATIONS`].
pub fn status(conn: &Connection) -> anyhow::Result<SchemaStatus> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(SchemaStatus {
        applied,
        known: MIGRATIONS.len() as i64,
    })
}

/// Applies the pending migrations; refuses a database written by a newer build.
pub fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let SchemaStatus { applied, known } = status(conn)?;
    if applied > known {
        anyhow::bail!(
            "its schema version is {applied}, newer than this build of missive knows ({known}); \
             run the newer missive that wrote it, or point DATABASE_URL at another file"
        );
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let version = index + 1;
        conn.execute_batch(&format!(
            "BEGIN; {script}; PRAGMA user_version = {version}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            anyhow::anyhow!("migration {version} failed: {e}")
        })?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// The schema version of the file at `path`, opened read-only; a missing
/// file is at version 0 (everything pending).
pub fn file_status(path: &Path) -> anyhow::Result<SchemaStatus> {
    if !path.exists() {
        return Ok(SchemaStatus {
            applied: 0,
            known: MIGRATIONS.len() as i64,
        });
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    status(&conn).map_err(|e| anyhow::anyhow!("database {}: {e}", path.display()))
}
