//! `mesero db backup` and `mesero db restore` as a user runs them, against
//! the real daemon and real SQLite files: a backup taken during a write
//! burst is whole, a gap-free prefix of the log, and a daemon starts on it;
//! a missing database is one clear line; a restore refuses while the
//! daemon runs and any file it should not take, and keeps the old
//! database aside.

mod common;

use common::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `mesero db <args>` on the fixture config in `dir`, its database
/// `db` (MESERO_STORAGE_PATH).
fn db(dir: &Path, db: &Path, args: &[&Path]) -> std::process::Output {
    let config = dir.join("mesero.toml");
    if !config.exists() {
        std::fs::write(&config, FIXTURE).expect("write config");
    }
    Command::new(env!("CARGO_BIN_EXE_mesero"))
        .arg("db")
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("MESERO_CONFIG")
        .env("MESERO_STORAGE_PATH", db)
        .output()
        .expect("run mesero db")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// A failure with `code` and exactly one stderr line containing `what`.
fn assert_refused(out: &std::process::Output, code: i32, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("mesero: ") && lines[0].contains(what),
        "{what:?} in {err}"
    );
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

fn seqs(conn: &Connection) -> Vec<u64> {
    let mut stmt = conn
        .prepare("SELECT seq FROM events ORDER BY seq")
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, i64>(0))
        .expect("query")
        .map(|s| u64::try_from(s.expect("seq")).expect("positive"))
        .collect()
}

/// Each table's state in the `tables` rows, and as the last `table.state`
/// event of the log says.
fn states(conn: &Connection) -> (BTreeMap<i64, String>, BTreeMap<i64, String>) {
    let mut rows = conn
        .prepare("SELECT id, state FROM tables")
        .expect("prepare");
    let rows = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let mut log = conn
        .prepare("SELECT table_id, data FROM events WHERE type = 'table.state' ORDER BY seq")
        .expect("prepare");
    let mut last = BTreeMap::new();
    for row in log
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
    {
        let (table, data) = row.expect("row");
        let data: serde_json::Value = serde_json::from_str(&data).expect("json");
        last.insert(table, data["to"].as_str().expect("to").to_string());
    }
    (rows, last)
}

fn sidecars(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("before-restore") || n.contains(".tmp-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_write_burst_is_whole_gap_free_and_starts_a_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(dir.path(), &[]);
    let base = daemon.base.clone();
    // The highest seq acknowledged so far, and whether to go on.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let burst = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        tokio::spawn(async move {
            let states = ["occupied", "dirty", "free"];
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let table = (n % 4) as i64 + 1;
                let body = format!(r#"{{"state":"{}"}}"#, states[(n / 4) % 3]);
                let (status, json) = put_state(&base, Some(STAFF), table, &body).await;
                assert_eq!(status, 200, "{json}");
                if let Some(seq) = json["seq"].as_u64() {
                    acked.fetch_max(seq, Ordering::Relaxed);
                }
                n += 1;
            }
        })
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while acked.load(Ordering::Relaxed) < 50 {
        assert!(std::time::Instant::now() < deadline, "the burst is running");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let mut copies = Vec::new();
    for i in 0..3 {
        let before = acked.load(Ordering::Relaxed);
        let copy = dir.path().join(format!("copy-{i}.db"));
        let out = tokio::task::spawn_blocking({
            let (dir, live, copy) = (dir.path().to_path_buf(), db_path(dir.path()), copy.clone());
            move || db(&dir, &live, &[Path::new("backup"), &copy])
        })
        .await
        .expect("backup task");
        assert_ok(&out);
        copies.push((copy, before));
    }
    stop.store(true, Ordering::Relaxed);
    burst.await.expect("burst");
    let written = acked.load(Ordering::Relaxed);

    for (copy, before) in &copies {
        let conn = Connection::open(copy).expect("open copy");
        assert_eq!(integrity(&conn), "ok", "{}", copy.display());
        let seqs = seqs(&conn);
        let head = *seqs.last().expect("events");
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<_>>(),
            "a gap-free prefix of the log"
        );
        assert!(
            head >= *before,
            "everything acknowledged before the backup ({before}) is in it ({head})"
        );
        let (rows, last) = states(&conn);
        for (table, state) in &last {
            assert_eq!(
                rows.get(table),
                Some(state),
                "table {table}'s row agrees with its last event: one snapshot"
            );
        }
    }
    assert!(
        written > copies[0].1,
        "the burst went on while the backups ran"
    );
    drop(daemon);

    // A daemon starts on the last copy and continues its log.
    let (copy, _) = copies.last().expect("a copy");
    let (head, rows) = {
        let conn = Connection::open(copy).expect("open copy");
        (*seqs(&conn).last().expect("events"), states(&conn).0)
    };
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::copy(copy, db_path(other.path())).expect("copy the backup in place");
    let restarted = Process::start(other.path(), &[]);
    let events = all_events(&restarted.base, head).await;
    assert_eq!(events[0]["seq"], head + 1, "{events:?}");
    assert_eq!(events[0]["type"], "system.started");
    let tables = get_json(&restarted.base, "/api/v1/tables").await;
    for t in tables.as_array().expect("tables") {
        let id = t["id"].as_i64().expect("id");
        assert_eq!(
            Some(t["state"].as_str().expect("state")),
            rows.get(&id).map(String::as_str)
        );
    }
}

#[test]
fn backup_and_restore_of_a_missing_database_say_so_in_one_line_and_create_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("none.db");
    let copy = dir.path().join("copy.db");
    let out = db(dir.path(), &live, &[Path::new("backup"), &copy]);
    assert_refused(&out, 1, &format!("no database at {}", live.display()));
    assert!(!live.exists(), "no empty database was created");
    assert!(!copy.exists(), "no copy was created");

    let out = db(dir.path(), &live, &[Path::new("restore"), &copy]);
    assert_refused(&out, 1, &format!("no database at {}", copy.display()));
    assert!(!live.exists());
    assert_eq!(sidecars(dir.path()), Vec::<String>::new());
}

/// The state of `table` as stored in the file at `path`.
fn stored_state(path: &Path, table: i64) -> String {
    Connection::open(path)
        .expect("open")
        .query_row("SELECT state FROM tables WHERE id = ?1", [table], |r| {
            r.get(0)
        })
        .expect("state")
}

/// The one `<live>.before-restore-*` file in `dir`.
fn kept(dir: &Path) -> PathBuf {
    let kept: Vec<String> = sidecars(dir)
        .into_iter()
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    dir.join(&kept[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_while_the_daemon_runs_then_replaces_the_database_and_keeps_the_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = db_path(dir.path());
    let backup = dir.path().join("backup.db");
    let mut daemon = Process::start(dir.path(), &[]);
    let (status, _) = put_state(&daemon.base, Some(STAFF), 2, r#"{"state":"dirty"}"#).await;
    assert_eq!(status, 200);
    assert_ok(&db(dir.path(), &live, &[Path::new("backup"), &backup]));
    let (status, after) = put_state(&daemon.base, Some(STAFF), 2, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200);
    let after = after["seq"].as_u64().expect("seq");

    let out = db(dir.path(), &live, &[Path::new("restore"), &backup]);
    assert_refused(
        &out,
        1,
        "is in use: stop the daemon first (systemctl stop mesero)",
    );
    assert_eq!(sidecars(dir.path()), Vec::<String>::new(), "nothing moved");
    let table = get_json(&daemon.base, "/api/v1/tables/2").await;
    assert_eq!(table["state"], "occupied", "the daemon goes on undisturbed");
    let (status, _) = put_state(&daemon.base, Some(STAFF), 3, r#"{"state":"dirty"}"#).await;
    assert_eq!(status, 200, "and can still write");

    daemon.signal("TERM");
    assert!(daemon.wait().success());
    let out = db(dir.path(), &live, &[Path::new("restore"), &backup]);
    assert_ok(&out);
    let kept = kept(dir.path());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&kept.display().to_string()), "{printed}");
    assert_eq!(stored_state(&live, 2), "dirty", "the backup's state");
    assert_eq!(
        stored_state(&kept, 2),
        "occupied",
        "the old database, whole"
    );
    assert_eq!(stored_state(&kept, 3), "dirty");
    assert!(seqs(&Connection::open(&kept).expect("open")).contains(&after));

    let restarted = Process::start(dir.path(), &[]);
    let table = get_json(&restarted.base, "/api/v1/tables/2").await;
    assert_eq!(
        table["state"], "dirty",
        "the daemon runs on the restored file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_after_a_kill_9_keeps_what_only_the_old_wal_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = db_path(dir.path());
    let backup = dir.path().join("backup.db");
    let mut daemon = Process::start(dir.path(), &[]);
    assert_ok(&db(dir.path(), &live, &[Path::new("backup"), &backup]));
    let (status, json) = put_state(&daemon.base, Some(STAFF), 4, r#"{"state":"dirty"}"#).await;
    assert_eq!(status, 200);
    let seq = json["seq"].as_u64().expect("seq");
    daemon.signal("KILL");
    daemon.wait();
    assert!(
        dir.path().join("mesero.db-wal").exists(),
        "a killed daemon leaves its WAL"
    );

    assert_ok(&db(dir.path(), &live, &[Path::new("restore"), &backup]));
    let kept = kept(dir.path());
    assert_eq!(
        sidecars(dir.path()),
        vec![
            kept.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        ],
        "the WAL was folded into the kept file, nothing else is left"
    );
    assert!(!dir.path().join("mesero.db-wal").exists());
    assert!(!dir.path().join("mesero.db-shm").exists());
    let old = Connection::open(&kept).expect("open kept");
    assert_eq!(integrity(&old), "ok");
    assert!(seqs(&old).contains(&seq), "the acknowledged change is kept");
    assert_eq!(stored_state(&live, 4), "free");
}

#[test]
fn restore_checks_the_file_before_it_touches_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = db_path(dir.path());
    let good = dir.path().join("good.db");
    // A real mesero database, made by a daemon and backed up.
    {
        let mut daemon = Process::start(dir.path(), &[]);
        daemon.signal("TERM");
        assert!(daemon.wait().success());
    }
    assert_ok(&db(dir.path(), &live, &[Path::new("backup"), &good]));
    let original = std::fs::read(&live).expect("read live");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).expect("write");
    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hi');")
        .expect("foreign");
    let newer = dir.path().join("newer.db");
    std::fs::copy(&good, &newer).expect("copy");
    Connection::open(&newer)
        .expect("open")
        .pragma_update(None, "user_version", mesero::store::VERSION + 1)
        .expect("user_version");
    let damaged = dir.path().join("damaged.db");
    {
        let mut bytes = std::fs::read(&good).expect("read");
        let page = 4096;
        assert!(bytes.len() >= 3 * page, "several pages");
        // Page 2 onwards: the tables' b-trees, not the header.
        for b in &mut bytes[page + 8..2 * page] {
            *b = 0xa5;
        }
        std::fs::write(&damaged, bytes).expect("write");
    }

    let cases = [
        (&garbage, 1, "not a mesero database: not an SQLite database"),
        (
            &foreign,
            1,
            "not a mesero database: it has no schema version",
        ),
        (&newer, 78, "newer than this mesero supports"),
        (&damaged, 1, "is damaged"),
        (&live, 1, "is the live database itself"),
    ];
    for (file, code, what) in cases {
        let out = db(dir.path(), &live, &[Path::new("restore"), file]);
        assert_refused(&out, code, what);
        assert_eq!(
            std::fs::read(&live).expect("read live"),
            original,
            "{what}: untouched"
        );
        assert_eq!(
            sidecars(dir.path()),
            Vec::<String>::new(),
            "{what}: nothing moved"
        );
    }
    assert_ok(&db(dir.path(), &live, &[Path::new("restore"), &good]));
}
