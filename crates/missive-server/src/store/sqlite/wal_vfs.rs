//! A thin layer over SQLite's default VFS that hands a commit's WAL writes to
//! the kernel in one call.
//!
//! SQLite writes each WAL frame with two `pwrite` calls, the frame's 24-byte
//! header and then the page, so a commit of 150 frames makes 300 system calls
//! before its `fsync`. On this project's ext4 VMs, those calls plus the
//! `fsync` after them took two to three times as long as one write of the
//! same bytes plus the `fsync` (`docs/benchmarks.md`).
//!
//! The layer ("missive-wal") changes nothing but that:
//! - every file other than a WAL is the default VFS's own file, untouched;
//! - a write to the WAL that continues the previous one is appended to a
//!   buffer (up to [`BUFFER_LIMIT`]), and the buffer is written with one call
//!   before anything that must see the file as SQLite wrote it: a sync, a
//!   read, a size query, a truncation, a file control, a write elsewhere in
//!   the file, and closing it.
//!
//! **Why it is safe.** Other connections find WAL frames through the
//! wal-index, and SQLite publishes a commit there only after it has synced
//! the WAL — when the connection runs with `synchronous=FULL` (the writer's
//! setting, `configure_writer`) and the file has powersafe overwrite
//! (SQLite's default), so no padding frame is written after the sync. A WAL
//! that does not report powersafe overwrite when it opens is therefore not
//! buffered at all. The sync writes the buffer first, so
//! what was synced is what SQLite wrote, byte for byte, in the same order. A
//! crash before the sync loses frames of a transaction that never committed,
//! which WAL recovery ignores exactly as it ignores a torn write.
//!
//! This module is the only unsafe code in the server: it implements SQLite's
//! C interfaces (`sqlite3_vfs`, `sqlite3_io_methods`).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the layer is registered under.
pub(crate) const NAME: &CStr = c"missive-wal";

/// Most bytes kept before they are written out, whatever comes next. The
/// largest commits write a few MiB of frames, so even they make a few dozen
/// calls instead of thousands.
const BUFFER_LIMIT: usize = 1 << 20;

/// Most bytes handed to the default VFS in one write: its `unixWrite` takes
/// fewer than 128 KiB per call (it masks the length to 17 bits).
const WRITE_LIMIT: usize = 96 * 1024;

/// Registers the layer once per process, over the default VFS, and returns
/// its name for `Connection::open_with_flags_and_vfs`.
pub(crate) fn name() -> anyhow::Result<&'static CStr> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    match REGISTERED.get_or_init(register) {
        Ok(()) => Ok(NAME),
        Err(e) => anyhow::bail!("cannot register the SQLite VFS {NAME:?}: {e}"),
    }
}

fn register() -> Result<(), String> {
    // SAFETY: `sqlite3_vfs_find` initializes SQLite and returns the default
    // VFS, which lives as long as the process. The copy keeps every method
    // of the default VFS (none of them but `xOpen` reads its `sqlite3_vfs`
    // argument) and is leaked, because SQLite keeps a registered VFS's
    // pointer for ever.
    unsafe {
        let default = ffi::sqlite3_vfs_find(ptr::null());
        if default.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let mut layer = ptr::read(default);
        layer.szOsFile = c_int::try_from(HEADER)
            .ok()
            .and_then(|h| h.checked_add((*default).szOsFile))
            .ok_or("file object too large")?;
        layer.pNext = ptr::null_mut();
        layer.zName = NAME.as_ptr();
        layer.pAppData = default.cast::<c_void>();
        layer.xOpen = Some(open);
        let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(layer)), 0);
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_vfs_register answered {rc}"));
        }
    }
    Ok(())
}

/// What SQLite holds for an open WAL: the `sqlite3_file` it calls through,
/// followed (at [`HEADER`]) by the default VFS's own file object.
#[repr(C)]
struct WalFile {
    /// Must come first: SQLite sees a `*mut sqlite3_file`.
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the same allocation.
    inner: *mut ffi::sqlite3_file,
    /// Writes not yet handed to `inner`; null when the file is not buffered.
    pending: *mut Pending,
}

/// Size of [`WalFile`], rounded up so that the inner file object is aligned.
const HEADER: usize = size_of::<WalFile>().next_multiple_of(16);

/// Contiguous bytes that belong at `start` in the file.
struct Pending {
    start: i64,
    bytes: Vec<u8>,
}

/// The WAL's methods: version 1 is all a WAL uses (no locks of its own, no
/// shared memory, no memory mapping).
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The default VFS, kept in the layer's `pAppData`.
unsafe fn default_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: `register` stored the default VFS there.
    unsafe { (*vfs).pAppData.cast() }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes `file` with `szOsFile` bytes: room for a
    // `WalFile` and the default VFS's file after it. Files other than the
    // WAL are opened by the default VFS in place, so SQLite calls their own
    // methods.
    unsafe {
        let default = default_vfs(vfs);
        let Some(default_open) = (*default).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return default_open(default, name, file, flags, out_flags);
        }
        let wal = file.cast::<WalFile>();
        let inner = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
        (*wal).base.pMethods = ptr::null();
        (*wal).inner = inner;
        (*wal).pending = ptr::null_mut();
        (*inner).pMethods = ptr::null();
        let rc = default_open(default, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite closes a file whose open failed only if it has methods.
            if let Some(close) = methods(inner).and_then(|m| m.xClose) {
                close(inner);
            }
            return rc;
        }
        let powersafe = methods(inner)
            .and_then(|m| m.xDeviceCharacteristics)
            .is_some_and(|f| f(inner) & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0);
        if powersafe {
            (*wal).pending = Box::into_raw(Box::new(Pending {
                start: 0,
                bytes: Vec::new(),
            }));
        }
        (*wal).base.pMethods = &WAL_METHODS;
        ffi::SQLITE_OK
    }
}

/// The methods of an open file, if it has any.
unsafe fn methods<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a ffi::sqlite3_io_methods> {
    // SAFETY: a file's `pMethods` is null or points at a static table.
    unsafe { (*file).pMethods.as_ref() }
}

/// The default VFS's file behind `file` and its methods.
unsafe fn inner<'a>(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    // SAFETY: SQLite calls these methods only on a file that `open` set up,
    // whose inner file opened successfully.
    unsafe {
        let inner = (*file.cast::<WalFile>()).inner;
        (inner, &*(*inner).pMethods)
    }
}

/// Hands the buffered bytes to the default VFS, in pieces of at most
/// [`WRITE_LIMIT`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `pending` is null or the `Pending` that `open` boxed, used only
    // by the connection that owns the file.
    unsafe {
        let Some(pending) = (*file.cast::<WalFile>()).pending.as_mut() else {
            return ffi::SQLITE_OK;
        };
        if pending.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let (inner, m) = inner(file);
        let Some(write) = m.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = pending.start;
        for chunk in pending.bytes.chunks(WRITE_LIMIT) {
            // WRITE_LIMIT is far below c_int::MAX.
            rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        // On failure the bytes are dropped: SQLite fails the transaction,
        // and frames it never committed are never read.
        pending.bytes.clear();
        rc
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    unsafe {
        let pending = (*file.cast::<WalFile>()).pending;
        let (inner, m) = inner(file);
        let Some(inner_write) = m.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        if pending.is_null() {
            return inner_write(inner, data, amount, offset);
        }
        let len = usize::try_from(amount).unwrap_or(0);
        let continues = {
            let p = &*pending;
            !p.bytes.is_empty()
                && p.start + p.bytes.len() as i64 == offset
                && p.bytes.len() + len <= BUFFER_LIMIT
        };
        if !continues {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            if len > BUFFER_LIMIT {
                return inner_write(inner, data, amount, offset);
            }
            (*pending).start = offset;
        }
        (*pending)
            .bytes
            .extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; the box is freed here and the
    // pointer cleared.
    unsafe {
        let flushed = flush(file);
        let wal = file.cast::<WalFile>();
        if !(*wal).pending.is_null() {
            drop(Box::from_raw((*wal).pending));
            (*wal).pending = ptr::null_mut();
        }
        let (inner, m) = inner(file);
        let closed = m.xClose.map_or(ffi::SQLITE_OK, |f| f(inner));
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// Defines a method that writes the buffer out and then forwards the call to
/// the default VFS's file.
macro_rules! flush_then_forward {
    ($name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `flush` and `inner`.
            unsafe {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (inner, m) = inner(file);
                m.$method.map_or($missing, |f| f(inner $(, $arg)*))
            }
        }
    };
}

flush_then_forward!(read, xRead, ffi::SQLITE_IOERR_READ, (data: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64));
flush_then_forward!(truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: ffi::sqlite3_int64));
flush_then_forward!(sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int));
flush_then_forward!(file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut ffi::sqlite3_int64));
flush_then_forward!(file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void));

/// Defines a method that forwards the call to the default VFS's file as it is.
macro_rules! forward {
    ($name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `inner`.
            unsafe {
                let (inner, m) = inner(file);
                m.$method.map_or($missing, |f| f(inner $(, $arg)*))
            }
        }
    };
}

forward!(lock, xLock, ffi::SQLITE_OK, (level: c_int));
forward!(unlock, xUnlock, ffi::SQLITE_OK, (level: c_int));
forward!(check_reserved_lock, xCheckReservedLock, ffi::SQLITE_OK, (out: *mut c_int));
forward!(sector_size, xSectorSize, 4096, ());
forward!(device_characteristics, xDeviceCharacteristics, 0, ());

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags};

    use super::super::{configure_writer, open_file};

    /// A connection opened and configured as the store's writer is.
    fn open_with_layer(path: &std::path::Path) -> Connection {
        open_writer(path, true)
    }

    /// The store's writer with `DATABASE_WAL_BATCHING` set to `wal_batching`.
    fn open_writer(path: &std::path::Path, wal_batching: bool) -> Connection {
        let conn = open_file(path, wal_batching).expect("open");
        configure_writer(&conn).expect("configure");
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB);")
            .expect("create");
        conn
    }

    fn insert_batch(conn: &Connection, from: i64, count: i64) {
        let tx = conn.unchecked_transaction().expect("begin");
        for id in from..from + count {
            tx.execute(
                "INSERT INTO t (id, body) VALUES (?1, randomblob(3000))",
                [id],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }

    #[test]
    fn another_connection_reads_every_commit_of_a_buffered_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let writer = open_with_layer(&path);
        let reader =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
        // Commits of a few frames and of more than the buffer holds.
        for (round, count) in [1, 40, 700, 3].into_iter().enumerate() {
            let from = round as i64 * 1000;
            insert_batch(&writer, from, count);
            let (rows, bytes): (i64, i64) = reader
                .query_row(
                    "SELECT count(*), sum(length(body)) FROM t WHERE id >= ?1",
                    [from],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("read");
            assert_eq!((rows, bytes), (count, count * 3000), "round {round}");
        }
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
    }

    /// Write system calls made by the calling thread so far.
    fn writes_of_this_thread() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("syscw")
    }

    #[test]
    fn a_commit_reaches_the_kernel_in_a_few_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = Connection::open(dir.path().join("plain.db")).expect("open");
        plain
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB);",
            )
            .expect("configure");
        let layered = open_with_layer(&dir.path().join("layered.db"));
        let count = |conn: &Connection| {
            let before = writes_of_this_thread();
            insert_batch(conn, 0, 200);
            writes_of_this_thread() - before
        };
        // 200 rows of 3,000 bytes: about 200 frames of SQLite's default
        // 4 KiB pages alone, about 400 of the writer's 2 KiB pages here.
        let (without, with) = (count(&plain), count(&layered));
        assert!(without >= 400, "SQLite alone: {without} writes");
        assert!(with <= 20, "through the layer: {with} writes");
    }

    #[test]
    fn switched_off_the_writer_makes_sqlites_own_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = open_writer(&dir.path().join("plain.db"), false);
        let before = writes_of_this_thread();
        insert_batch(&plain, 0, 200);
        let writes = writes_of_this_thread() - before;
        // Two writes per frame, as SQLite alone makes them (the layer makes
        // at most 20 for this commit: above).
        assert!(
            writes >= 400,
            "DATABASE_WAL_BATCHING=false: {writes} writes"
        );
    }

    /// `count` rows more through a writer opened `wal_batching`, on a copy of
    /// `from` (database and WAL, as a crash leaves them) made at `to`.
    fn crash_copy_and_write(
        from: &std::path::Path,
        to: &std::path::Path,
        wal_batching: bool,
        count: i64,
    ) -> Connection {
        std::fs::copy(from, to).expect("copy the database");
        std::fs::copy(from.with_extension("db-wal"), to.with_extension("db-wal"))
            .expect("copy the WAL");
        let conn = open_writer(to, wal_batching);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        insert_batch(&conn, rows, count);
        conn
    }

    #[test]
    fn a_wal_written_with_the_layer_on_is_recovered_and_continued_with_it_off_and_back() {
        for first in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("a.db");
            let writer = open_writer(&path, first);
            insert_batch(&writer, 0, 300);
            // Each hop recovers the other setting's un-checkpointed WAL
            // (the writers stay open, so nothing is checkpointed).
            let flipped = dir.path().join("b.db");
            let _second = crash_copy_and_write(&path, &flipped, !first, 300);
            let back = dir.path().join("c.db");
            let third = crash_copy_and_write(&flipped, &back, first, 5);
            let ids = ids(&third);
            assert_eq!(ids, (0..605).collect::<Vec<_>>(), "first {first}");
            let check: String = third
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("check");
            assert_eq!(check, "ok", "first {first}");
        }
    }

    #[test]
    fn what_a_commit_left_on_disk_is_recovered_without_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let writer = open_with_layer(&path);
        insert_batch(&writer, 0, 300);
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        // After the checkpoint the WAL starts over from its header.
        insert_batch(&writer, 300, 300);
        // The files as a crash would leave them, the writer still open: the
        // second batch is only in the WAL, which the copy must recover.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).expect("copy the database");
        std::fs::copy(dir.path().join("t.db-wal"), dir.path().join("copy.db-wal"))
            .expect("copy the WAL");
        let conn = Connection::open(&copy).expect("open the copy");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 600);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
    }

    #[test]
    fn a_rolled_back_transaction_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let writer = open_with_layer(&path);
        // A small cache makes the transaction spill frames into the WAL
        // before it rolls back.
        writer
            .execute_batch("PRAGMA cache_size = 10;")
            .expect("cache");
        insert_batch(&writer, 0, 10);
        {
            let tx = writer.unchecked_transaction().expect("begin");
            for id in 10..500 {
                tx.execute(
                    "INSERT INTO t (id, body) VALUES (?1, randomblob(3000))",
                    [id],
                )
                .expect("insert");
            }
            tx.rollback().expect("rollback");
        }
        insert_batch(&writer, 500, 5);
        let reader = Connection::open(&path).expect("reader");
        let ids = ids(&reader);
        assert_eq!(ids, (0..10).chain(500..505).collect::<Vec<_>>());
    }

    /// The ids of table `t`, in order.
    fn ids(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT id FROM t ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}
