//! The store on a real SQLite file: group commit under load, one commit
//! per change when idle, a bad change in a batch sinks nothing else, and
//! the migrations on a fresh and a reopened file.

mod common;

use common::*;
use mesero::domain::{Actor, AlertKind, EventData, Priority, TableState};
use mesero::hub::Hub;
use mesero::metrics::Metrics;
use mesero::store::{Change, Guard, Hold, Store, StoreError};
use std::sync::Arc;

fn open(dir: &std::path::Path) -> (Store, Arc<Metrics>) {
    let config = config(dir, &[]);
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = Store::open(&config, hub, Arc::clone(&metrics)).expect("open store");
    (store, metrics)
}

fn record(n: usize) -> Change {
    Change::Record {
        table: None,
        data: EventData::AlertRaised {
            table: None,
            kind: AlertKind::Custom,
            priority: Priority::Normal,
            message: format!("n = {n}"),
            sensor: Some("load".into()),
            alert: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_changes_share_a_commit_under_load_and_each_commits_alone_when_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, metrics) = open(dir.path());

    // Idle: each change is awaited before the next, so each is one commit.
    let commits = metrics.snapshot().commits;
    for n in 0..10 {
        store.apply(record(n), Actor::System).await.expect("apply");
    }
    assert_eq!(metrics.snapshot().commits - commits, 10);

    // Load: 500 changes queued at once share far fewer commits.
    let commits = metrics.snapshot().commits;
    let burst = (0..500).map(|n| store.apply(record(n), Actor::System));
    let applied = futures_util::future::join_all(burst).await;
    let mut seqs: Vec<u64> = applied
        .into_iter()
        .map(|a| a.expect("applied").event.expect("event").seq)
        .collect();
    seqs.sort_unstable();
    assert!(
        seqs.windows(2).all(|w| w[0] + 1 == w[1]),
        "one seq each, none skipped"
    );
    let used = metrics.snapshot().commits - commits;
    eprintln!("500 queued changes in {used} commits");
    assert!(used <= 250, "group commit: {used} commits for 500 changes");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_change_in_a_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, metrics) = open(dir.path());
    let set = |id, state| Change::SetState {
        id,
        state,
        hold: Hold::Clear,
        people: None,
        guard: Guard::Staff,
    };
    // The three are queued in one poll, but the writer thread may wake
    // between two of them and take a shorter batch: then the attempt
    // proves nothing about batches, so it is made again with the tables
    // flipped back. A writer that never batches fails every attempt.
    let states = [
        (TableState::Occupied, TableState::Dirty),
        (TableState::Free, TableState::Free),
    ];
    let mut shared = None;
    for attempt in 0..10 {
        let (one, two) = states[attempt % 2];
        let commits = metrics.snapshot().commits;
        let (a, bad, b) = tokio::join!(
            store.apply(set(1, one), Actor::System),
            store.apply(set(99, TableState::Occupied), Actor::System),
            store.apply(set(2, two), Actor::System),
        );
        let used = metrics.snapshot().commits - commits;
        assert!(matches!(bad, Err(StoreError::TableNotFound(99))), "{bad:?}");
        let (a, b) = (a.expect("table 1"), b.expect("table 2"));
        assert_eq!(
            b.event.expect("event").seq,
            a.event.expect("event").seq + 1,
            "no seq burnt"
        );
        if used == 1 {
            shared = Some((one, two));
            break;
        }
        eprintln!("attempt {attempt}: the three took {used} commits");
    }
    let (one, two) = shared.expect("the three changes shared one commit");
    store.shutdown().await;

    // Reopening the file (migrations already applied) keeps the state.
    let (store, _) = open(dir.path());
    let tables = store.tables().await.expect("tables");
    assert_eq!(tables[0].state, one);
    assert_eq!(tables[1].state, two);
    let version: i64 = rusqlite::Connection::open(db_path(dir.path()))
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, mesero::store::VERSION as i64);
    let mode: String = rusqlite::Connection::open(db_path(dir.path()))
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    store.shutdown().await;
}

/// A trigger, created by another connection on the same file, that makes
/// every event insert fail as a real storage fault would: `ROLLBACK`
/// throws the whole transaction away (as SQLite does itself on a full disk
/// or an I/O error), `ABORT` fails only the statement.
fn break_event_inserts(dir: &std::path::Path, how: &str) {
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.execute_batch(&format!(
        "CREATE TRIGGER wreck BEFORE INSERT ON events BEGIN SELECT RAISE({how}, 'injected fault'); END;"
    ))
    .expect("create trigger");
}

fn repair_event_inserts(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.execute_batch("DROP TRIGGER wreck")
        .expect("drop trigger");
}

fn occupy(id: i64) -> Change {
    Change::SetState {
        id,
        state: TableState::Occupied,
        hold: Hold::Clear,
        people: None,
        guard: Guard::Staff,
    }
}

fn is_storage_error(result: &Result<mesero::store::Applied, StoreError>) -> bool {
    matches!(result, Err(StoreError::Sqlite(e)) if e.to_string().contains("injected fault"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_transaction_is_lost_answers_every_waiter_with_a_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let head = store.apply(record(0), Actor::System).await.expect("apply");
    let head = head.event.expect("event").seq;

    break_event_inserts(dir.path(), "ROLLBACK");
    let (a, b, c) = tokio::join!(
        store.apply(occupy(1), Actor::System),
        store.apply(occupy(2), Actor::System),
        store.apply(record(1), Actor::System),
    );
    for (what, result) in [("a", &a), ("b", &b), ("c", &c)] {
        assert!(
            is_storage_error(result),
            "waiter {what} gets the storage error, not Closed: {result:?}"
        );
    }

    // The fault clears: the writer is not stuck in a transaction, no seq
    // was burnt, and nothing of the failed batch took effect.
    repair_event_inserts(dir.path());
    let next = store
        .apply(occupy(3), Actor::System)
        .await
        .expect("next batch commits");
    assert_eq!(next.event.expect("event").seq, head + 1);
    let tables = store.tables().await.expect("tables");
    let state = |id: i64| tables.iter().find(|t| t.id == id).map(|t| t.state);
    assert_eq!(state(1), Some(TableState::Free));
    assert_eq!(state(2), Some(TableState::Free));
    assert_eq!(state(3), Some(TableState::Occupied));
    store.ping().await.expect("healthy again");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_commits_keep_failing_fails_its_liveness_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, metrics) = open(dir.path());
    store.ping().await.expect("healthy at start");

    for how in ["ABORT", "ROLLBACK"] {
        break_event_inserts(dir.path(), how);
        for n in 0..10 {
            let result = store.apply(record(n), Actor::System).await;
            assert!(is_storage_error(&result), "{how}: {result:?}");
        }
        assert!(
            store.ping().await.is_err(),
            "{how}: a writer that cannot commit must not pass the watchdog probe"
        );
        assert!(
            metrics.snapshot().failed_batches >= 10,
            "failures are counted"
        );
        repair_event_inserts(dir.path());
        store
            .apply(record(99), Actor::System)
            .await
            .expect("commits again");
        store
            .ping()
            .await
            .expect("one good commit makes it healthy again");
    }
    store.shutdown().await;
}

/// The same through the real daemon and its systemd watchdog: while every
/// commit fails the `STATUS=` line names the writer as not responding (and
/// `WATCHDOG=1` is withheld); after the fault clears it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_names_a_writer_whose_commits_keep_failing() {
    use mesero::systemd::{Notifier, Supervision};
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&socket).expect("bind notify socket");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let supervision = Supervision {
        notifier: Notifier::with_path(&socket),
        watchdog: Some(std::time::Duration::from_millis(400)),
    };
    let daemon =
        mesero::daemon::Daemon::start(config(dir.path(), &[]), Some(listener), supervision)
            .await
            .expect("daemon starts");
    let base = format!("http://{}", daemon.http_addr());
    let wait_status = |wanted: fn(&str) -> bool, what: &'static str| {
        let notify = &notify;
        async move {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let mut buf = [0u8; 4096];
            loop {
                let n = tokio::time::timeout_at(deadline, notify.recv(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("no STATUS= showing {what}"))
                    .expect("recv");
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                if msg.starts_with("STATUS=") && wanted(&msg) {
                    return msg;
                }
            }
        }
    };

    break_event_inserts(dir.path(), "ABORT");
    for table in 1..=4 {
        let (status, body) = put_state(&base, Some(STAFF), table, r#"{"state": "occupied"}"#).await;
        assert_eq!(status, 500, "{body}");
    }
    wait_status(|m| m.contains("NOT RESPONDING: writer"), "a stale writer").await;

    repair_event_inserts(dir.path());
    let (status, body) = put_state(&base, Some(STAFF), 1, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 200, "{body}");
    wait_status(|m| !m.contains("NOT RESPONDING"), "recovery").await;
    daemon.stop().await;
}

fn set_ts(dir: &std::path::Path, seqs: &[u64], ts: &str) {
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    for &seq in seqs {
        conn.execute(
            "UPDATE events SET ts = ?1 WHERE seq = ?2",
            rusqlite::params![ts, seq as i64],
        )
        .expect("set ts");
    }
}

fn prune_older_than_a_day() -> Change {
    Change::Prune {
        before: std::time::SystemTime::now() - std::time::Duration::from_secs(86_400),
        unforwarded_before: None,
    }
}

async fn seqs_after(store: &Store, after: u64) -> (Vec<u64>, bool) {
    let page = store
        .events(mesero::store::EventQuery {
            after,
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    (page.events.iter().map(|e| e.seq).collect(), page.continuous)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_only_a_prefix_of_the_log_and_remembers_how_far() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let mut seqs = Vec::new();
    for n in 0..8 {
        let applied = store.apply(record(n), Actor::System).await.expect("apply");
        seqs.push(applied.event.expect("event").seq);
    }
    store.shutdown().await;
    let (all, _) = {
        let (store, _) = open(dir.path());
        let all = seqs_after(&store, 0).await;
        store.shutdown().await;
        all
    };

    // Events written while the clock was wrong (a Pi without an RTC booted
    // in 2000) sit in the middle of the log.
    set_ts(dir.path(), &seqs[2..5], "2000-01-01T00:00:00.000Z");
    let (store, _) = open(dir.path());
    store
        .apply(prune_older_than_a_day(), Actor::System)
        .await
        .expect("prune");
    let (kept, continuous) = seqs_after(&store, 0).await;
    assert_eq!(
        kept, all,
        "no hole: an event newer than the cutoff comes first"
    );
    assert!(continuous);
    store.shutdown().await;

    // Now the log's prefix is old too: it goes up to (not past) the first
    // event that is still new, even though older ones come after that.
    let mut old: Vec<u64> = all.iter().copied().filter(|&s| s <= seqs[4]).collect();
    old.push(seqs[6]);
    set_ts(dir.path(), &old, "2000-01-01T00:00:00.000Z");
    let (store, _) = open(dir.path());
    store
        .apply(prune_older_than_a_day(), Actor::System)
        .await
        .expect("prune");
    let (kept, continuous) = seqs_after(&store, 0).await;
    assert_eq!(kept, seqs[5..], "only the prefix up to the first new event");
    assert!(!continuous, "a read from 0 reaches into pruned seqs");
    assert!(!seqs_after(&store, seqs[3]).await.1, "below the watermark");
    assert_eq!(
        seqs_after(&store, seqs[4]).await,
        (seqs[5..].to_vec(), true)
    );
    store.shutdown().await;

    // The watermark survives a restart even once every event is gone.
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    conn.execute("UPDATE events SET ts = '2000-01-01T00:00:00.000Z'", [])
        .expect("age all");
    drop(conn);
    let (store, _) = open(dir.path());
    store
        .apply(prune_older_than_a_day(), Actor::System)
        .await
        .expect("prune");
    assert_eq!(seqs_after(&store, seqs[5]).await, (vec![], false));
    assert_eq!(seqs_after(&store, seqs[7]).await, (vec![], true));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_hole_from_old_retention_is_migrated_to_a_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let mut seqs = Vec::new();
    for n in 0..6 {
        let applied = store.apply(record(n), Actor::System).await.expect("apply");
        seqs.push(applied.event.expect("event").seq);
    }
    store.shutdown().await;

    // What the old `ts < cutoff` retention left behind, in a version 1 file.
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    conn.execute_batch(&format!(
        "DELETE FROM events WHERE seq IN ({}, {});
         DROP TABLE IF EXISTS retention;
         DROP TABLE IF EXISTS alerts;
         CREATE INDEX events_by_ts ON events (ts);
         DROP TABLE reservations;
         ALTER TABLE tables DROP COLUMN joins;
         ALTER TABLE tables DROP COLUMN combined_seats;
         DROP TABLE waitlist;
         DROP TABLE visits;
         PRAGMA user_version = 1;",
        seqs[1], seqs[2]
    ))
    .expect("make a version 1 file with a hole");
    drop(conn);
    let (store, _) = open(dir.path());
    assert!(
        !seqs_after(&store, seqs[0]).await.1,
        "resume across the hole"
    );
    assert_eq!(
        seqs_after(&store, seqs[2]).await,
        (seqs[3..].to_vec(), true)
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_never_goes_backwards_when_the_clock_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let last = store.apply(record(0), Actor::System).await.expect("apply");
    let last = last.event.expect("event").seq;
    store.shutdown().await;

    // The last event was stamped while the clock ran a year ahead; it has
    // been set back since.
    let ahead = mesero::clock::format(
        std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400),
    );
    set_ts(dir.path(), &[last], &ahead);
    let (store, _) = open(dir.path());
    let mut stamps = vec![ahead.clone()];
    for n in 1..4 {
        let applied = store.apply(record(n), Actor::System).await.expect("apply");
        let event = applied.event.expect("event");
        assert!(event.seq > last);
        stamps.push(event.ts);
    }
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "stored time is non-decreasing: {stamps:?}"
    );
    let stored: Vec<String> = store
        .events(mesero::store::EventQuery {
            after: 0,
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events")
        .events
        .into_iter()
        .map(|e| e.ts)
        .collect();
    assert!(stored.windows(2).all(|w| w[0] <= w[1]), "{stored:?}");
    store.shutdown().await;
}

async fn post_table(base: &str, body: &str) -> (u16, serde_json::Value) {
    let res = http()
        .post(format!("{base}/api/v1/tables"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_ids_stay_in_range_and_the_next_free_id_never_wraps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let before = get_json(&d.base, "/api/v1/snapshot").await["tables"].clone();
    let max = mesero::tables::MAX_TABLE_ID;

    for (id, number) in [
        (i64::MAX, "huge"),
        (max + 1, "over"),
        (-5, "neg"),
        (0, "zero"),
    ] {
        let (status, body) =
            post_table(&d.base, &format!(r#"{{"id": {id}, "number": "{number}"}}"#)).await;
        assert_eq!(status, 422, "id {id}: {body}");
        assert_eq!(body["error"]["code"], "invalid_value");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("id:"), "names the field: {message}");
    }
    assert_eq!(
        get_json(&d.base, "/api/v1/snapshot").await["tables"],
        before
    );

    // The highest id is allowed; after it there is no next one to pick.
    let (status, body) =
        post_table(&d.base, &format!(r#"{{"id": {max}, "number": "last"}}"#)).await;
    assert_eq!(status, 201, "{body}");
    let after_last = get_json(&d.base, "/api/v1/snapshot").await;
    let (status, body) = post_table(&d.base, r#"{"number": "next"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("id:"), "names the field: {message}");
    let now = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(now["tables"], after_last["tables"], "nothing changed");
    assert_eq!(now["seq"], after_last["seq"], "no event recorded");
    assert!(
        now["tables"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["id"].as_i64().is_some_and(|id| id > 0))),
        "no negative id: {now}"
    );

    // An explicit id still works, and the store is alive.
    let (status, body) = post_table(&d.base, r#"{"id": 7, "number": "7"}"#).await;
    assert_eq!(status, 201, "{body}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_cannot_begin_gets_the_busy_error_and_the_next_one_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let head = store.apply(record(0), Actor::System).await.expect("apply");
    let head = head.event.expect("event").seq;

    // Another process holds the write lock past the writer's busy timeout.
    let other = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let (a, b) = tokio::join!(
        store.apply(occupy(1), Actor::System),
        store.apply(record(1), Actor::System),
    );
    for result in [&a, &b] {
        assert!(
            matches!(result, Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)),
            "a storage error naming the lock: {result:?}"
        );
    }
    other.execute_batch("COMMIT").expect("unlock");
    drop(other);

    let next = store
        .apply(occupy(2), Actor::System)
        .await
        .expect("commits");
    assert_eq!(
        next.event.expect("event").seq,
        head + 1,
        "nothing of the failed batch stands"
    );
    store.shutdown().await;
}

/// `Change::All`: consecutive seqs, each part sees the parts before it,
/// and one refused part leaves nothing of the others behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_change_commits_all_its_parts_or_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let head = store.tables().await.expect("tables");
    let seq_before = store
        .apply(record(0), Actor::System)
        .await
        .expect("record")
        .event
        .expect("event")
        .seq;

    let after_first = Change::SetState {
        id: 1,
        state: TableState::Dirty,
        hold: Hold::Clear,
        people: None,
        // Only true once the first part has run.
        guard: Guard::Sensor {
            expected: TableState::Occupied,
        },
    };
    let applied = store
        .apply(
            Change::All(vec![occupy(1), occupy(2), after_first]),
            Actor::System,
        )
        .await
        .expect("applied");
    let seqs: Vec<u64> = applied
        .parts
        .iter()
        .map(|p| p.event.as_ref().expect("event").seq)
        .collect();
    assert_eq!(seqs, [seq_before + 1, seq_before + 2, seq_before + 3]);

    let refused = store
        .apply(Change::All(vec![occupy(3), occupy(99)]), Actor::System)
        .await;
    assert!(
        matches!(refused, Err(StoreError::TableNotFound(99))),
        "{refused:?}"
    );
    let next = store.apply(record(1), Actor::System).await.expect("record");
    assert_eq!(
        next.event.expect("event").seq,
        seq_before + 4,
        "no seq burnt"
    );
    let tables = store.tables().await.expect("tables");
    assert_eq!(tables[0].state, TableState::Dirty);
    assert_eq!(tables[1].state, TableState::Occupied);
    assert_eq!(tables[2].state, head[2].state, "table 3 untouched");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bounds_select_by_ts_and_say_when_retention_cut_into_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let mut seqs = Vec::new();
    for n in 0..8 {
        let applied = store.apply(record(n), Actor::System).await.expect("apply");
        seqs.push(applied.event.expect("event").seq);
    }
    store.shutdown().await;
    // The seeded tables and two records old, then one a second (ts never
    // decreases with seq).
    let old: Vec<u64> = (1..=seqs[1]).collect();
    set_ts(dir.path(), &old, "2000-01-01T00:00:00.000Z");
    for (i, seq) in seqs.iter().enumerate().skip(2) {
        set_ts(dir.path(), &[*seq], &format!("2030-01-01T00:00:0{i}.000Z"));
    }
    let at = |s: &str| mesero::clock::parse(s).expect("time");
    let (store, _) = open(dir.path());
    let page = |from: Option<&str>, until: Option<&str>| {
        let store = store.clone();
        let query = mesero::store::EventQuery {
            limit: 1000,
            from_time: from.map(at),
            until_time: until.map(at),
            ..Default::default()
        };
        async move {
            let page = store.events(query).await.expect("events");
            (
                page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                page.continuous,
            )
        }
    };
    assert_eq!(
        page(Some("2030-01-01T00:00:04Z"), None).await,
        (seqs[4..].to_vec(), true),
        "at or after"
    );
    assert_eq!(
        page(
            Some("2030-01-01T00:00:04.500Z"),
            Some("2030-01-01T00:00:06Z")
        )
        .await,
        (seqs[5..7].to_vec(), true),
        "a window; until is inclusive"
    );
    assert_eq!(
        page(None, Some("1999-01-01T00:00:00Z")).await.0,
        Vec::<u64>::new()
    );
    assert_eq!(
        page(Some("2031-01-01T00:00:00Z"), None).await.0,
        Vec::<u64>::new()
    );

    store
        .apply(prune_older_than_a_day(), Actor::System)
        .await
        .expect("prune");
    assert_eq!(
        page(Some("1999-01-01T00:00:00Z"), None).await,
        (seqs[2..].to_vec(), false),
        "deleted events may have been in the window"
    );
    assert_eq!(
        page(Some("2030-01-01T00:00:03Z"), None).await,
        (seqs[3..].to_vec(), true),
        "a kept event older than the bound proves nothing deleted was in it"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn imported_visits_are_stored_all_or_none_and_read_back_by_seated_time() {
    use mesero::domain::{PartySizeSource, Visit, VisitOrigin};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open(dir.path());
    let visit = |seated_at: &str, left_at: &str| Visit {
        id: 0,
        tables: vec![2],
        party_size: Some(4),
        party_size_source: Some(PartySizeSource::Import),
        seated_at: seated_at.into(),
        left_at: Some(left_at.into()),
        origin: VisitOrigin::Import,
    };
    let a = visit("2026-11-30T19:00:00.000Z", "2026-11-30T20:00:00.000Z");
    let b = visit("2026-11-29T19:00:00.000Z", "2026-11-29T20:30:00.000Z");
    let before = store
        .events(mesero::store::EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    let applied = store
        .apply(
            Change::ImportVisits(vec![a.clone(), b.clone()]),
            Actor::System,
        )
        .await
        .expect("import");
    assert!(applied.event.is_none(), "an import records no event");
    let after = store
        .events(mesero::store::EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    assert_eq!(before.events.len(), after.events.len());
    let stored = store.visits(None, None).await.expect("visits");
    let strip = |v: &Visit| Visit { id: 0, ..v.clone() };
    assert_eq!(stored.iter().map(strip).collect::<Vec<_>>(), [b, a]);
    // Reopened from the file: they were committed.
    store.shutdown().await;
    let (store, _) = open(dir.path());
    assert_eq!(store.visits(None, None).await.expect("visits").len(), 2);
}
