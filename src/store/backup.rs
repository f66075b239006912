//! `mesero db backup` and `mesero db restore`: whole-file copies of the
//! database, made through SQLite (never `cp`, which can catch a file
//! between a commit's pages or without its WAL).
//!
//! Invariants:
//! - A copy is one read transaction of the source (SQLite's backup API in a
//!   single step): a consistent snapshot, a gap-free prefix of the event
//!   log, taken beside a running daemon (WAL lets its writer go on).
//! - Nothing is written in place: a copy goes to a temporary file in the
//!   destination's directory, is fsynced, renamed over the destination,
//!   and the directory is fsynced. A failure leaves the destination as it
//!   was and removes the temporary file.
//! - A restore checks the file before it touches anything (SQLite
//!   `integrity_check`, a mesero schema, a version this binary can open),
//!   refuses while anything has the live database open, and keeps the old
//!   database aside as `<name>.before-restore-<UTC time>`.
//!
//! How a running daemon is detected: SQLite's own locks, not a pid or lock
//! file of ours. Every connection to a WAL database holds a shared lock on
//! the file for as long as it is open, and the daemon keeps its writer
//! connection open from start to stop; the kernel drops the lock when the
//! process dies, `kill -9` included, so nothing goes stale. The restore
//! opens the live file in `locking_mode = EXCLUSIVE` with no busy timeout
//! and switches it out of WAL mode, which needs every other connection
//! gone: if the daemon (or a backup) has the file open, that fails at once
//! with `SQLITE_BUSY`, and the restore refuses. If it succeeds, the WAL has
//! been checkpointed into the file and the exclusive lock is held until
//! the new file is in place, so no backup or second restore can read the
//! old file half moved. (A daemon must be stopped, not merely idle:
//! systemd does not restart a unit that was stopped.) A pid file would be
//! stale after a crash and could name a reused pid; `BEGIN EXCLUSIVE`
//! alone does not conflict with an idle WAL connection (tests/db.rs shows
//! both: a refusal while the daemon idles, a restore after `kill -9`).

use super::schema::VERSION;
use super::{BUSY_TIMEOUT, load_tables};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database to copy or the file to restore does not exist.
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    /// Another connection has the live database open.
    #[error(
        "{0} is in use: stop the daemon first (systemctl stop mesero), or wait for a running backup"
    )]
    InUse(PathBuf),
    /// `db restore` was given the live database itself.
    #[error("{0} is the live database itself")]
    SameFile(PathBuf),
    #[error("{path} is not a mesero database: {why}")]
    NotMesero { path: PathBuf, why: String },
    #[error("{path} is damaged (integrity_check: {report})")]
    Damaged { path: PathBuf, report: String },
    /// Written by a newer mesero: this binary cannot run on it.
    #[error(
        "{path} has database schema version {found}, newer than this mesero supports ({supported}); install the newer mesero to restore it"
    )]
    NewerSchema {
        path: PathBuf,
        found: usize,
        supported: usize,
    },
    #[error("{what}: {source}")]
    Sqlite {
        what: String,
        source: rusqlite::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl BackupError {
    /// Like [`super::StoreError::is_permanent`]: a file from a newer mesero
    /// (the command line exits with `EX_CONFIG`).
    pub fn is_permanent(&self) -> bool {
        matches!(self, BackupError::NewerSchema { .. })
    }
}

fn sqlite(what: impl std::fmt::Display) -> impl FnOnce(rusqlite::Error) -> BackupError {
    move |source| BackupError::Sqlite {
        what: what.to_string(),
        source,
    }
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BackupError {
    move |source| BackupError::Io {
        what: what.to_string(),
        source,
    }
}

/// `mesero db backup`: a consistent copy of the database at `source` in
/// `dest` (replaced atomically if it exists).
pub fn backup(source: &Path, dest: &Path) -> Result<(), BackupError> {
    if !source.exists() {
        return Err(BackupError::NoDatabase(source.to_path_buf()));
    }
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(format!("opening {}", source.display())))?;
    src.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("setting the busy timeout"))?;
    let temp = copy_to_temp(&src, source, dest)?;
    temp.install(dest)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the previous database was moved (`None`: there was none).
    pub kept: Option<PathBuf>,
}

/// `mesero db restore`: checks `file`, then replaces the database at
/// `live` with a copy of it, keeping the old one aside. Refuses while
/// anything has `live` open (see the module doc).
pub fn restore(file: &Path, live: &Path) -> Result<Restored, BackupError> {
    if !file.exists() {
        return Err(BackupError::NoDatabase(file.to_path_buf()));
    }
    let same = std::fs::canonicalize(file)
        .ok()
        .zip(std::fs::canonicalize(live).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        return Err(BackupError::SameFile(file.to_path_buf()));
    }
    let src = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(format!("opening {}", file.display())))?;
    check(&src, file)?;
    if let Some(dir) = parent(live) {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let temp = copy_to_temp(&src, file, live)?;
    drop(src);
    // Held (the connection kept open) until the new file is in place; it
    // locks the old file, which is renamed, never the restored one.
    let old = lock_live(live)?;
    let kept = match &old {
        Live::Missing => {
            // A first restore (nothing to keep): the file gets the owner
            // of the directory the daemon keeps its database in.
            let dir = parent(live).unwrap_or(Path::new("."));
            let meta = std::fs::metadata(dir).map_err(io(format!("reading {}", dir.display())))?;
            temp.take_owner_of(&meta, false)?;
            None
        }
        Live::Locked { .. } | Live::NotADatabase => {
            let meta =
                std::fs::metadata(live).map_err(io(format!("reading {}", live.display())))?;
            temp.take_owner_of(&meta, true)?;
            let aside = aside_name(live);
            std::fs::rename(live, &aside).map_err(io(format!(
                "moving {} aside to {}",
                live.display(),
                aside.display()
            )))?;
            // Only a file SQLite cannot read still has these (a locked one's
            // WAL was checkpointed, its index removed): they go with it.
            for suffix in ["-wal", "-shm"] {
                let side = sidecar(live, suffix);
                if side.exists() {
                    std::fs::rename(&side, sidecar(&aside, suffix))
                        .map_err(io(format!("moving {} aside", side.display())))?;
                }
            }
            Some(aside)
        }
    };
    temp.install(live)?;
    drop(old);
    Ok(Restored { kept })
}

/// The live database as the restore found it.
enum Live {
    Missing,
    /// Out of WAL mode and exclusively locked while the connection lives.
    Locked {
        _lock: Connection,
    },
    /// A file SQLite cannot read as a database: no daemon can be running
    /// on it (it would not have started), so it is moved aside as it is.
    NotADatabase,
}

/// Takes the live database for the restore (see the module doc).
fn lock_live(live: &Path) -> Result<Live, BackupError> {
    if !live.exists() {
        return Ok(Live::Missing);
    }
    let what = || format!("locking {}", live.display());
    let conn = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sqlite(what()))?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(sqlite(what()))?;
    let locked = conn
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        // MEMORY: out of WAL mode (checkpointing it into the file), with
        // no journal file next to the database that closing this
        // connection would delete by name after the rename.
        .and_then(|()| conn.query_row("PRAGMA journal_mode = MEMORY", [], |_| Ok(())))
        // A write transaction takes the exclusive lock now, whatever the
        // journal mode was.
        .and_then(|()| conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;"));
    match locked {
        Ok(()) => {
            // The daemon's last WAL index; with the WAL checkpointed and
            // gone it describes nothing.
            let shm = sidecar(live, "-shm");
            if shm.exists() {
                std::fs::remove_file(&shm).map_err(io(format!("removing {}", shm.display())))?;
            }
            Ok(Live::Locked { _lock: conn })
        }
        Err(e) => match code(&e) {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Err(BackupError::InUse(live.to_path_buf()))
            }
            Some(ErrorCode::NotADatabase) => Ok(Live::NotADatabase),
            _ => Err(sqlite(what())(e)),
        },
    }
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

/// Refuses a file that is damaged, not a mesero database, or from a newer
/// mesero. An older schema is fine: the daemon migrates it on start.
fn check(conn: &Connection, path: &Path) -> Result<(), BackupError> {
    let not_mesero = |why: String| BackupError::NotMesero {
        path: path.to_path_buf(),
        why,
    };
    let report: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| match code(&e) {
            Some(ErrorCode::NotADatabase) => not_mesero("not an SQLite database".into()),
            // Damaged beyond what the check can report.
            Some(ErrorCode::DatabaseCorrupt) => BackupError::Damaged {
                path: path.to_path_buf(),
                report: e.to_string(),
            },
            _ => sqlite(format!("checking {}", path.display()))(e),
        })?;
    if report != ["ok"] {
        // One line for the user: the first problem and how many more
        // (SQLite lists up to 100, some rows spanning several lines).
        let problems: Vec<&str> = report
            .iter()
            .flat_map(|row| row.lines())
            .filter(|line| !line.trim().is_empty() && !line.starts_with("***"))
            .collect();
        let first = problems.first().copied().unwrap_or("not ok");
        let more = match problems.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return Err(BackupError::Damaged {
            path: path.to_path_buf(),
            report: format!("{}{more}", crate::text::printable(first)),
        });
    }
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite(format!("reading {}", path.display())))?;
    if version == 0 {
        return Err(not_mesero("it has no schema version".into()));
    }
    if version > VERSION {
        return Err(BackupError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    load_tables(conn).map_err(|e| not_mesero(format!("its tables cannot be read ({e})")))?;
    // Preparing checks the log's columns; the daemon reads the rows.
    conn.prepare("SELECT seq, ts, type, table_id, actor, data FROM events")
        .map_err(|e| not_mesero(format!("its event log cannot be read ({e})")))?;
    if version >= 2 {
        super::pruned_through(conn)
            .map_err(|e| not_mesero(format!("its retention watermark cannot be read ({e})")))?;
    }
    Ok(())
}

/// A file being written next to its destination; removed unless installed.
struct Temp {
    path: PathBuf,
    installed: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(sidecar(&self.path, "-journal"));
        }
    }
}

impl Temp {
    /// Gives the file the owner of `old` (the database it replaces, or
    /// the directory it goes into) when run as root, so `sudo mesero db
    /// restore` leaves a file the daemon's user can write; with `mode`,
    /// also `old`'s permissions (a directory's are not a file's). Anyone
    /// else can only create files of their own, which is what they get.
    fn take_owner_of(&self, old: &std::fs::Metadata, mode: bool) -> Result<(), BackupError> {
        use std::os::unix::fs::MetadataExt as _;
        let what = || format!("giving {} the old database's owner", self.path.display());
        let ours = std::fs::metadata(&self.path).map_err(io(what()))?;
        if ours.uid() == 0 && (ours.uid(), ours.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::chown(&self.path, Some(old.uid()), Some(old.gid()))
                .map_err(io(what()))?;
        }
        if mode {
            std::fs::set_permissions(&self.path, old.permissions()).map_err(io(what()))?;
        }
        Ok(())
    }

    /// fsync, rename over `dest`, fsync the directory.
    fn install(mut self, dest: &Path) -> Result<(), BackupError> {
        let synced = std::fs::File::open(&self.path).and_then(|f| f.sync_all());
        synced.map_err(io(format!("syncing {}", self.path.display())))?;
        std::fs::rename(&self.path, dest).map_err(io(format!(
            "renaming {} to {}",
            self.path.display(),
            dest.display()
        )))?;
        self.installed = true;
        let dir = parent(dest).unwrap_or(Path::new("."));
        let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
        synced.map_err(io(format!("syncing {}", dir.display())))
    }
}

/// Copies everything `src` holds, in one read transaction, into a new
/// temporary file in `dest`'s directory.
fn copy_to_temp(src: &Connection, source: &Path, dest: &Path) -> Result<Temp, BackupError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mesero.db".into());
    let dir = parent(dest).unwrap_or(Path::new("."));
    let temp = Temp {
        path: dir.join(format!(".{name}.tmp-{}", std::process::id())),
        installed: false,
    };
    let _ = std::fs::remove_file(&temp.path);
    let what = || format!("copying {} to {}", source.display(), temp.path.display());
    let mut dst = Connection::open(&temp.path).map_err(sqlite(what()))?;
    {
        let copy = rusqlite::backup::Backup::new(src, &mut dst).map_err(sqlite(what()))?;
        // -1: every page in one step, so one read transaction: a
        // consistent snapshot however fast the daemon writes (a stepwise
        // copy starts over each time another process commits).
        match copy.step(-1).map_err(sqlite(what()))? {
            rusqlite::backup::StepResult::Done => {}
            other => {
                return Err(BackupError::Io {
                    what: what(),
                    source: std::io::Error::other(format!(
                        "the source stayed locked ({other:?}); try again"
                    )),
                });
            }
        }
    }
    dst.close().map_err(|(_, e)| sqlite(what())(e))?;
    Ok(temp)
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `<live>.before-restore-<UTC time>`, with `-2`, `-3`… if taken.
fn aside_name(live: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = sidecar(live, &format!(".before-restore-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() || sidecar(&candidate, "-wal").exists() {
        n += 1;
        candidate = sidecar(&base, &format!("-{n}"));
    }
    candidate
}
