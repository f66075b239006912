//! A database from a newer mesero (its `PRAGMA user_version` above the
//! schema this binary writes), as after a rollback (docs/INSTALL-PI.md
//! section 9): the real binary refuses it with one line and exit 78
//! (EX_CONFIG: systemd does not restart it in a loop), and leaves the file
//! exactly as it was: not migrated down, not switched to WAL, not written.

mod common;

use common::*;
use mesero::hub::Hub;
use mesero::metrics::Metrics;
use mesero::store::Store;
use std::path::Path;
use std::sync::Arc;

/// The schema version this binary writes: that of a database it created.
async fn current_version(dir: &Path) -> i64 {
    let config = config(dir, &[]);
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = Store::open(&config, hub, metrics).expect("open store");
    store.shutdown().await;
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

/// The database files in `dir` (main file, `-wal`, `-shm`) and their bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().contains("mesero.db"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read file");
            (p.display().to_string(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs `mesero run` on `dir` and returns its exit code and stderr lines.
fn run_daemon(dir: &Path) -> (Option<i32>, Vec<String>) {
    let (mut child, lines) = spawn_daemon(dir, &[]);
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mesero kept running on a newer database: {lines:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // The error is the last line mesero writes; once it is in, all is.
    loop {
        let lines = lines.lock().expect("log lines").clone();
        if lines.iter().any(|l| l.starts_with("mesero: ")) {
            return (status.code(), lines);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error line: {lines:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_mesero_is_refused_untouched_with_exit_78() {
    let fresh = tempfile::tempdir().expect("tempdir");
    let version = current_version(fresh.path()).await;
    let newer = version + 1;

    // Two shapes a newer mesero leaves: a file in rollback-journal mode
    // (switching it to WAL would write its header), and a WAL file whose
    // last commits are still in `-wal` (killed before a checkpoint: closing
    // a writable connection would checkpoint them into the main file).
    for mode in ["DELETE", "WAL"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = tempfile::tempdir().expect("tempdir");
        let conn = rusqlite::Connection::open(db_path(scratch.path())).expect("create db");
        conn.pragma_update(None, "journal_mode", mode)
            .expect("journal mode");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no checkpoints");
        conn.execute_batch(&format!(
            "CREATE TABLE from_the_future (x INTEGER NOT NULL);
             INSERT INTO from_the_future VALUES (1);
             PRAGMA user_version = {newer};"
        ))
        .expect("write a newer database");
        // Copied while the connection is open: the WAL is not checkpointed.
        for suffix in ["", "-wal"] {
            let from = scratch.path().join(format!("mesero.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, dir.path().join(format!("mesero.db{suffix}")))
                    .expect("copy db");
            }
        }
        drop(conn);
        let before = files(dir.path());
        assert_eq!(
            before.iter().any(|(p, _)| p.ends_with("-wal")),
            mode == "WAL",
            "{mode}: {:?}",
            before.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );

        let (code, lines) = run_daemon(dir.path());
        assert_eq!(code, Some(78), "{mode}: {lines:#?}");
        assert_eq!(lines.len(), 1, "{mode}: one line: {lines:#?}");
        let line = &lines[0];
        let path = db_path(dir.path()).display().to_string();
        for needle in [
            path.as_str(),
            &format!("schema version {newer} is newer than this mesero supports ({version})"),
            "install the newer mesero or restore a backup",
        ] {
            assert!(line.contains(needle), "{mode}: {needle:?} in {line}");
        }

        // Byte for byte as it was (a `-shm` index a reader made aside).
        let after: Vec<_> = files(dir.path())
            .into_iter()
            .filter(|(p, _)| !p.ends_with("-shm"))
            .collect();
        assert!(after == before, "{mode}: the database files changed");
        let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
        let (found, rows): (i64, i64) = (
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("user_version"),
            conn.query_row("SELECT count(*) FROM from_the_future", [], |r| r.get(0))
                .expect("the newer table is there"),
        );
        assert_eq!((found, rows), (newer, 1), "{mode}");
    }
}
