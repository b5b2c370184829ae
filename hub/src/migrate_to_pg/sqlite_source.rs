//! The single node's SQLite files, read-only. The hub must be stopped, or the copy would miss
//! what it writes meanwhile: every SQLite connection to a WAL database holds a shared lock on
//! the "DMS" byte of its `-shm` file for as long as it is open (SQLite's own way to tell whether
//! it is the first), so a held lock there means a process — a running hub — has the file open,
//! and the migration is refused. Otherwise the file is read in one read transaction, its WAL
//! included (a hub that stopped leaves committed pages there).

use super::error::MigrateError;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One SQLite value as stored (SQLite's five storage classes).
pub type SqliteValue = Value;

/// A table's column names (schema order) and rows.
pub struct TableRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqliteValue>>,
}

/// One opened SQLite file.
pub struct SqliteSource {
    path: PathBuf,
    conn: Connection,
}

/// The `-shm` file next to `path`.
fn shm_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-shm");
    PathBuf::from(p)
}

/// The byte of the `-shm` file every open connection holds a shared lock on: SQLite's
/// `WALINDEX_LOCK_OFFSET` (120) + `SQLITE_SHM_NLOCK` (8), see `unixLockSharedMemory`.
const SHM_DMS_OFFSET: libc::off_t = 128;

/// Whether some process has the WAL database at `path` open (holds its `-shm` DMS lock).
/// Asks with `F_GETLK`, which takes no lock.
fn open_elsewhere(path: &Path) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let shm = shm_path(path);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shm)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // SAFETY: a zeroed `flock` is a valid value of this plain C struct; `fcntl(F_GETLK)`
    // only reads and writes it, on a descriptor `file` keeps open for the call.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = SHM_DMS_OFFSET;
    lock.l_len = 1;
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

impl SqliteSource {
    /// Opens `path` read-only; `None` when the file does not exist (that store was never
    /// used: nothing to copy).
    pub fn open(path: &Path) -> Result<Option<SqliteSource>, MigrateError> {
        if !path.exists() {
            return Ok(None);
        }
        match open_elsewhere(path) {
            Ok(false) => {}
            Ok(true) => {
                return Err(MigrateError::source(
                    path,
                    "open in another process: stop the hub (and any hub command) first",
                ))
            }
            Err(e) => {
                return Err(MigrateError::source(
                    path,
                    format!("cannot tell whether a hub has it open: {e}"),
                ))
            }
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| MigrateError::source(path, e))?;
        // One snapshot of the whole file: every table read in this transaction.
        conn.execute_batch("BEGIN")
            .map_err(|e| MigrateError::source(path, e))?;
        Ok(Some(SqliteSource {
            path: path.to_path_buf(),
            conn,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> MigrateError {
        MigrateError::source(&self.path, e)
    }

    /// The names of the file's own tables (not SQLite's internal ones).
    pub fn tables(&self) -> Result<Vec<String>, MigrateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(names)
    }

    /// The column names of `table`, in schema order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>, MigrateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(|e| self.err(e))?;
        let names = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(names)
    }

    /// Every row of `table` (whose name comes from [`super::plan`], never from input).
    pub fn rows(&self, table: &str) -> Result<TableRows, MigrateError> {
        let columns = self.columns(table)?;
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {list} FROM \"{table}\""))
            .map_err(|e| self.err(format!("read {table}: {e}")))?;
        let n = columns.len();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .and_then(|rows| rows.collect::<Result<Vec<Vec<Value>>, _>>())
            .map_err(|e| self.err(format!("read {table}: {e}")))?;
        Ok(TableRows { columns, rows })
    }

    /// The AUTOINCREMENT high-water marks (`sqlite_sequence`): ids SQLite will never hand out
    /// again, even when the rows that had them were deleted.
    pub fn sequences(&self) -> Result<BTreeMap<String, i64>, MigrateError> {
        let has: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !has {
            return Ok(BTreeMap::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .map_err(|e| self.err(e))?;
        let pairs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<Result<BTreeMap<_, _>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(pairs)
    }
}
