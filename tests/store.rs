//! The store on a real SQLite file: group commit under load, one commit
//! per change when idle, a bad change in a batch sinks nothing else, and
//! the migrations on a fresh and a reopened file.

mod common;

use common::*;
use mesero::domain::{Actor, EventType, TableState};
use mesero::hub::Hub;
use mesero::metrics::Metrics;
use mesero::store::{Change, Guard, Hold, Store, StoreError};
use serde_json::json;
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
        kind: EventType::AlertRaised,
        table: None,
        data: json!({ "n": n }),
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
    let (store, _) = open(dir.path());
    let set = |id, state| Change::SetState {
        id,
        state,
        hold: Hold::Clear,
        people: None,
        guard: Guard::Staff,
    };
    let (a, bad, b) = tokio::join!(
        store.apply(set(1, TableState::Occupied), Actor::System),
        store.apply(set(99, TableState::Occupied), Actor::System),
        store.apply(set(2, TableState::Dirty), Actor::System),
    );
    assert!(matches!(bad, Err(StoreError::TableNotFound(99))), "{bad:?}");
    let (a, b) = (a.expect("table 1"), b.expect("table 2"));
    assert_eq!(
        b.event.expect("event").seq,
        a.event.expect("event").seq + 1,
        "no seq burnt"
    );
    store.shutdown().await;

    // Reopening the file (migrations already applied) keeps the state.
    let (store, _) = open(dir.path());
    let tables = store.tables().await.expect("tables");
    assert_eq!(tables[0].state, TableState::Occupied);
    assert_eq!(tables[1].state, TableState::Dirty);
    let version: i64 = rusqlite::Connection::open(db_path(dir.path()))
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert!(version >= 1);
    let mode: String = rusqlite::Connection::open(db_path(dir.path()))
        .expect("open")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    store.shutdown().await;
}
