//! The operator's subcommands of the `missive` binary (docs/operations.md):
//!
//! - `missive backup <path>`: a consistent copy of the SQLite database,
//!   taken online (the server may keep writing), verified, then moved into
//!   place — never a half-written file at `<path>`.
//! - `missive restore <backup>`: puts a verified backup in place of the
//!   SQLite database, refusing while a server has the file open.
//! - `missive migrate [--check]`: applies the pending migrations (both
//!   stores), or only reports whether any are pending.
//!
//! Each reads `DATABASE_URL` like the server. PostgreSQL is backed up with
//! its own tools (`pg_dump` / `pg_restore`), which the errors point at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use rusqlite::{Connection, OpenFlags};

use crate::store::sqlite::{Location, schema};
use crate::store::{self, Backend, SchemaStatus};

/// Event numbers skipped by a restore (see [`restore`]): more than any user
/// can have been given between a backup and its restore, so that every
/// cursor a client holds is below the restored database's numbers. Kept far
/// below 2^53, so cursors stay exact in JavaScript.
pub const RESTORE_EVENT_GAP: i64 = 1_000_000_000;

/// The subcommands (without one, `missive` serves).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write a consistent, verified copy of the SQLite database (DATABASE_URL)
    /// to PATH while the server runs. PostgreSQL: use pg_dump.
    Backup {
        /// Where to write the copy (a single file).
        path: PathBuf,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Replace the SQLite database (DATABASE_URL) with BACKUP, after checking
    /// it; refused while a server has the database open. PostgreSQL: use pg_restore.
    Restore {
        /// A file written by `missive backup`.
        backup: PathBuf,
        /// Replace an existing database (it is kept beside it, renamed
        /// `<file>.before-restore-<unix time>`).
        #[arg(long)]
        force: bool,
    },
    /// Apply the pending database migrations (SQLite or PostgreSQL) and exit.
    Migrate {
        /// Apply nothing: exit 0 when the schema is current, 1 (saying why)
        /// when migrations are pending or the database is newer than this build.
        #[arg(long)]
        check: bool,
    },
}

/// Runs `command` against `database_url`; `Ok` is what to print, `Err`
/// means a non-zero exit. `wal_batching` (`DATABASE_WAL_BATCHING`) is how
/// `migrate` writes an SQLite file.
pub async fn run(
    command: Command,
    database_url: &str,
    wal_batching: bool,
) -> anyhow::Result<String> {
    match command {
        Command::Migrate { check: true } => {
            let status = store::schema_status(database_url).await?;
            if status.applied == status.known {
                Ok(status.to_string())
            } else if status.is_newer() {
                anyhow::bail!(
                    "{status}: run the newer missive, or this one against another database"
                )
            } else {
                anyhow::bail!("{status}: run `missive migrate`")
            }
        }
        Command::Migrate { check: false } => {
            // A migration that rewrites a table must not run under a server
            // of the previous build, which would go on writing the old form.
            if let Backend::Sqlite(Location::File(path)) = Backend::of(database_url)?
                && path.exists()
            {
                let applied = schema::file_status(&path)?.applied;
                if schema::rewrite_pending(applied) {
                    ensure_unused(&path, "migrate (a pending migration rewrites a table)")?;
                }
            }
            let (before, after) = store::migrate(database_url, wal_batching).await?;
            Ok(if before.applied == after.applied {
                format!("nothing to do: {after}")
            } else {
                format!(
                    "applied {} migration(s): schema version {} -> {}",
                    after.applied - before.applied,
                    before.applied,
                    after.applied
                )
            })
        }
        Command::Backup { path, force } => {
            let source = sqlite_file(database_url, "backup")?;
            let report =
                tokio::task::spawn_blocking(move || backup(&source, &path, force)).await??;
            Ok(report.to_string())
        }
        Command::Restore { backup, force } => {
            let target = sqlite_file(database_url, "restore")?;
            let report =
                tokio::task::spawn_blocking(move || restore(&backup, &target, force)).await??;
            Ok(report.to_string())
        }
    }
}

/// The SQLite file of `database_url`, or why `what` cannot work on it.
fn sqlite_file(database_url: &str, what: &str) -> anyhow::Result<PathBuf> {
    match Backend::of(database_url)? {
        Backend::Sqlite(Location::File(path)) => Ok(path),
        Backend::Sqlite(Location::Memory) => {
            anyhow::bail!("DATABASE_URL is sqlite::memory:, which has nothing to {what}")
        }
        Backend::Postgres => match what {
            "backup" => anyhow::bail!(
                "DATABASE_URL is PostgreSQL: `missive backup` copies SQLite files only. \
                 Back PostgreSQL up with its own tool, online: \
                 pg_dump --format=custom --file=missive.dump \"$DATABASE_URL\" \
                 (see docs/operations.md, \"Back up and restore\")"
            ),
            _ => anyhow::bail!(
                "DATABASE_URL is PostgreSQL: `missive restore` restores SQLite files only. \
                 Restore a pg_dump with pg_restore: \
                 pg_restore --clean --if-exists --dbname=\"$DATABASE_URL\" missive.dump \
                 (see docs/operations.md, \"Back up and restore\")"
            ),
        },
    }
}

/// What `missive backup` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// Users in it.
    pub users: i64,
    /// Messages in it.
    pub messages: i64,
}

impl std::fmt::Display for BackupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} ({} bytes, schema version {}, {} users, {} messages; integrity_check ok)",
            self.path.display(),
            self.bytes,
            self.schema_version,
            self.users,
            self.messages
        )
    }
}

/// Copies the live database at `source` to `dest` (see the module docs).
///
/// SQLite's online backup API copies every page in one step, inside one
/// read transaction: a consistent snapshot of what was committed when it
/// started, while the server's writer goes on (WAL readers never block the
/// writer, and a one-step copy never restarts because of its writes).
pub fn backup(source: &Path, dest: &Path, force: bool) -> anyhow::Result<BackupReport> {
    if !source.exists() {
        anyhow::bail!("there is no database at {} to back up", source.display());
    }
    if dest.is_dir() {
        anyhow::bail!(
            "{} is a directory: give the path of the backup file to write (e.g. {})",
            dest.display(),
            dest.join("missive-backup.db").display()
        );
    }
    if dest.exists() && !force {
        anyhow::bail!("{} exists: pass --force to replace it", dest.display());
    }
    if same_file(source, dest) {
        anyhow::bail!("{} is the database itself", dest.display());
    }
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", source.display()))?;
    from.busy_timeout(Duration::from_secs(5))?;
    let partial = sibling(dest, ".partial");
    remove_if_exists(&partial)?;
    copy(&from, &partial).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        anyhow::anyhow!("cannot write {}: {e}", partial.display())
    })?;
    drop(from);
    let verified = verify(&partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, dest)
        .map_err(|e| anyhow::anyhow!("cannot move the copy to {}: {e}", dest.display()))?;
    sync_dir(dest);
    Ok(BackupReport {
        path: dest.to_owned(),
        bytes: std::fs::metadata(dest)?.len(),
        schema_version: verified.schema.applied,
        users: verified.users,
        messages: verified.messages,
    })
}

/// What a verified copy holds.
struct Verified {
    /// Its schema version against this build's.
    schema: SchemaStatus,
    users: i64,
    messages: i64,
}

/// Copies every page of `from` into a new file at `to` (one step, one
/// snapshot), then makes it a self-contained single file (rollback journal,
/// no `-wal` beside it) and fsyncs it.
fn copy(from: &Connection, to: &Path) -> anyhow::Result<()> {
    let mut dest = Connection::open(to)?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(from, &mut dest)?;
        // -1: every page in one step (see `backup`); a busy source is
        // retried for up to 10 s.
        let mut tries = 0;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => anyhow::bail!("the database stayed busy ({other:?})"),
            }
        }
    }
    let mode: String = dest.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    anyhow::ensure!(mode == "delete", "journal_mode is {mode}");
    dest.close().map_err(|(_, e)| e)?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

/// Opens the copy at `path` read-only and checks it: `PRAGMA
/// integrity_check` must answer `ok`, and the schema must be one this
/// build knows.
fn verify(path: &Path) -> anyhow::Result<Verified> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not a readable database: {e}", path.display()))?;
    drop(stmt);
    if problems != ["ok"] {
        anyhow::bail!(
            "{} fails PRAGMA integrity_check: {}",
            path.display(),
            problems.join("; ")
        );
    }
    let schema = schema::status(&conn)?;
    if schema.is_newer() {
        anyhow::bail!("{}: {schema}", path.display());
    }
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(0)
    };
    Ok(Verified {
        schema,
        users: count("users"),
        messages: count("messages"),
    })
}

/// What `missive restore` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The database file now holding the backup.
    pub database: PathBuf,
    /// Where the replaced database was kept, if there was one.
    pub kept: Option<PathBuf>,
    /// The schema version of the restored database (after migrations).
    pub schema_version: i64,
    /// Users in it.
    pub users: i64,
    /// Messages in it.
    pub messages: i64,
}

impl std::fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "restored {} ({} users, {} messages, schema version {}); clients resync on their next connection",
            self.database.display(),
            self.users,
            self.messages,
            self.schema_version
        )?;
        if let Some(kept) = &self.kept {
            write!(f, "; the replaced database is kept as {}", kept.display())?;
        }
        Ok(())
    }
}

/// Puts the backup at `backup` in place of the database at `target`.
///
/// The backup is checked (`integrity_check`, a schema this build knows),
/// copied beside the target, migrated to this build's schema, and its event
/// numbers are moved past every cursor a client may hold
/// ([`RESTORE_EVENT_GAP`]): events committed after the backup was taken are
/// gone, and a client resuming from such a cursor must not mistake the new
/// events reusing those numbers for ones it has seen — it gets a `resync`
/// instead. Refused while any process (a server) has the target open: the
/// check takes SQLite's exclusive lock, which a server's open connections
/// prevent. The replaced file (with its `-wal`) is kept beside it.
pub fn restore(backup: &Path, target: &Path, force: bool) -> anyhow::Result<RestoreReport> {
    if !backup.exists() {
        anyhow::bail!("there is no backup at {}", backup.display());
    }
    if backup.is_dir() {
        anyhow::bail!(
            "{} is a directory, not a backup file: give the path of a file written by `missive backup`",
            backup.display()
        );
    }
    if same_file(backup, target) {
        anyhow::bail!("{} is the database itself", backup.display());
    }
    verify(backup).map_err(|e| anyhow::anyhow!("refusing to restore: {e:#}"))?;
    let exists = target.exists();
    if exists && !force {
        anyhow::bail!(
            "{} exists: stop every missive using it, then pass --force to replace it \
             (it is kept beside it as {}.before-restore-<unix time>)",
            target.display(),
            target.display()
        );
    }
    if exists {
        ensure_unused(target, "restore")?;
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let staged = sibling(target, ".restoring");
    remove_if_exists(&staged)?;
    let prepared = stage(backup, &staged).inspect_err(|_| {
        let _ = std::fs::remove_file(&staged);
    })?;
    let kept = if exists {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = sibling(target, &format!(".before-restore-{stamp}"));
        std::fs::rename(target, &aside)?;
        // The WAL holds committed pages of the replaced file: it goes with
        // it (a stale WAL beside the restored file would corrupt it).
        let wal = sibling(target, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, sibling(&aside, "-wal"))?;
        }
        remove_if_exists(&sibling(target, "-shm"))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staged, target)?;
    sync_dir(target);
    Ok(RestoreReport {
        database: target.to_owned(),
        kept,
        schema_version: prepared.schema.applied,
        users: prepared.users,
        messages: prepared.messages,
    })
}

/// Copies `backup` to `staged`, migrates it, moves its event numbers past
/// [`RESTORE_EVENT_GAP`], and verifies the result.
fn stage(backup: &Path, staged: &Path) -> anyhow::Result<Verified> {
    let from = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    copy(&from, staged)?;
    drop(from);
    let conn = Connection::open(staged)?;
    schema::migrate(&conn)?;
    // Each user's last number (the row, or the log when it went further;
    // see `EVENT_CURSOR`) moves past the gap, and everything below is pruned.
    conn.execute(
        "UPDATE users SET event_seq = last.n + ?1, events_pruned_seq = last.n + ?1
         FROM (SELECT u.id, MAX(u.event_seq, IFNULL((SELECT MAX(e.seq) FROM events e
                   WHERE e.user_id = unhex(replace(u.id, '-', ''))), 0)) AS n
               FROM users u) AS last
         WHERE users.id = last.id",
        [RESTORE_EVENT_GAP],
    )?;
    conn.close().map_err(|(_, e)| e)?;
    std::fs::File::open(staged)?.sync_all()?;
    verify(staged)
}

/// Fails when another process has the database at `path` open: SQLite's
/// exclusive lock cannot be taken while a server's connections hold theirs
/// (in WAL mode every open connection does). A file SQLite cannot read at
/// all (corrupt) cannot be served either, so it passes.
fn ensure_unused(path: &Path, what: &str) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(Duration::ZERO)?;
    let locked = conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; ROLLBACK;");
    match locked {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            anyhow::bail!(
                "{} is in use (is a missive server running on it?): stop it, then {what}",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Makes a rename in `path`'s directory durable (best effort).
fn sync_dir(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("opens");
        crate::store::sqlite::configure_writer(&conn).expect("WAL");
        schema::migrate(&conn).expect("migrates");
        conn.execute_batch(
            "INSERT INTO users (id, phone_number, created_at, event_seq) VALUES ('u1', '+15550000001', 0, 7);
             -- A user whose log went further than the row (the writer does not
             -- rewrite the row for every batch).
             INSERT INTO users (id, phone_number, created_at, event_seq)
                 VALUES ('0190f0a0-0000-7000-8000-000000000002', '+15550000002', 0, 3);
             INSERT INTO events (user_id, seq, kind, chat_id, message_id, created_at) VALUES
                 (unhex('0190f0a0000070008000000000000002'), 4, 'message', zeroblob(16), zeroblob(16), 0),
                 (unhex('0190f0a0000070008000000000000002'), 5, 'message', zeroblob(16), zeroblob(16), 0);",
        )
        .expect("two users");
        conn
    }

    #[test]
    fn a_backup_is_verified_and_never_overwrites_without_force() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("m.db");
        let _open = database(&db);
        let copy = dir.path().join("copy.db");
        let report = backup(&db, &copy, false).expect("backs up");
        assert_eq!(report.users, 2);
        assert_eq!(report.schema_version, schema::MIGRATIONS.len() as i64);
        assert!(report.bytes > 0);
        assert!(!sibling(&copy, ".partial").exists());
        let again = backup(&db, &copy, false).expect_err("refused");
        assert!(again.to_string().contains("--force"), "{again}");
        backup(&db, &copy, true).expect("replaced with --force");
        assert!(backup(&db, &db, true).is_err(), "not onto itself");
    }

    #[test]
    fn a_restore_is_refused_while_the_database_is_open_elsewhere() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("m.db");
        let open = database(&db);
        let copy = dir.path().join("copy.db");
        backup(&db, &copy, false).expect("backs up");
        let refused = restore(&copy, &db, true).expect_err("in use");
        assert!(refused.to_string().contains("in use"), "{refused}");
        drop(open);
        let report = restore(&copy, &db, true).expect("restores once closed");
        let kept = report.kept.expect("the old file is kept");
        assert!(kept.exists());
        let conn = Connection::open(&db).expect("opens");
        let numbers = |phone: &str| -> (i64, i64) {
            conn.query_row(
                "SELECT event_seq, events_pruned_seq FROM users WHERE phone_number = ?1",
                [phone],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the user")
        };
        assert_eq!(
            numbers("+15550000001"),
            (7 + RESTORE_EVENT_GAP, 7 + RESTORE_EVENT_GAP)
        );
        assert_eq!(
            numbers("+15550000002"),
            (5 + RESTORE_EVENT_GAP, 5 + RESTORE_EVENT_GAP),
            "past the log's newest number, not the row's"
        );
    }

    #[test]
    fn a_damaged_backup_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let bad = dir.path().join("bad.db");
        std::fs::write(&bad, vec![0x5a; 8192]).expect("writes");
        let target = dir.path().join("m.db");
        let refused = restore(&bad, &target, false).expect_err("refused");
        assert!(refused.to_string().contains("refusing"), "{refused}");
        assert!(!target.exists());
    }
}
