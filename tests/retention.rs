//! Retention (`storage.retention_days`) as the daemon runs it: the hourly
//! loop on a paused clock, and a log pruned down to nothing, after which
//! seq goes on from the old maximum + 1 (never reused), also across a
//! restart with the log empty.
//! Which prefix a prune removes is in tests/store.rs.

mod common;

use common::*;
use mesero::daemon::{RETENTION_EVERY, retention_loop};
use mesero::domain::{Actor, AlertKind, EventData, Priority};
use mesero::hub::Hub;
use mesero::metrics::Metrics;
use mesero::store::{Change, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Stamps every event in the file with a date far outside any retention.
fn age_all(dir: &Path) {
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.execute("UPDATE events SET ts = '2000-01-01T00:00:00.000Z'", [])
        .expect("age events");
}

/// How many events the file holds, read on this thread.
fn count(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count events")
}

/// Runs `f` on a runtime of its own in another thread, blocking this one.
/// The test's clock is paused: awaiting the writer thread on the test's
/// runtime would let tokio auto-advance that clock to the loop's next tick.
fn block<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        })
        .join()
        .expect("no panic")
    })
}

fn record(store: &Store, n: usize) -> u64 {
    let change = Change::Record {
        table: None,
        data: EventData::AlertRaised {
            table: None,
            kind: AlertKind::Custom,
            priority: Priority::Normal,
            message: format!("n = {n}"),
            sensor: Some("retention".into()),
            alert: None,
        },
    };
    let applied = block(store.apply(change, Actor::System)).expect("apply");
    applied.event.expect("an event").seq
}

/// Lets the loop run whatever a clock change woke, then waits until the
/// writer has committed everything it was sent.
async fn settle(store: &Store) {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    block(store.ping()).expect("writer answers");
}

#[tokio::test(start_paused = true)]
async fn the_retention_loop_prunes_every_hour_and_not_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(config(dir.path(), &[]));
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = Store::open(&config, hub, metrics).expect("open store");
    let head = (0..5).map(|n| record(&store, n)).max().expect("seqs");
    age_all(dir.path());
    let old = count(dir.path());
    assert!(old >= 5);

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(retention_loop(
        store.clone(),
        Arc::clone(&config),
        shutdown.clone(),
    ));
    // The loop starts (and its hour begins) before the clock moves.
    tokio::task::yield_now().await;
    let second = Duration::from_secs(1);
    let mut waiting = old;
    for round in 0..2 {
        tokio::time::advance(RETENTION_EVERY - second).await;
        settle(&store).await;
        assert_eq!(
            count(dir.path()),
            waiting,
            "round {round}: pruned before the hour"
        );
        tokio::time::advance(second).await;
        settle(&store).await;
        assert_eq!(count(dir.path()), 0, "round {round}: every row pruned");

        // The log is empty; seq still goes on from its old maximum. The
        // next round prunes this one event.
        let next = record(&store, 100 + round);
        assert_eq!(next, head + 1 + round as u64, "round {round}");
        age_all(dir.path());
        waiting = 1;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop ends on shutdown")
        .expect("no panic");

    // Stopped with an empty log (the loop pruned everything, nothing
    // happened since): the next start still knows the old maximum.
    let prune = Change::Prune {
        before: std::time::SystemTime::now(),
        unforwarded_before: None,
    };
    block(store.apply(prune, Actor::System)).expect("prune");
    assert_eq!(count(dir.path()), 0);
    block(store.shutdown());
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = Store::open(&config, hub, metrics).expect("reopen store");
    assert_eq!(record(&store, 200), head + 3, "seq after a restart");
    block(store.shutdown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_event_is_pruned_seq_goes_on_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    for (table, state) in [(1, "occupied"), (2, "occupied"), (1, "dirty")] {
        let (status, body) = put_state(
            &d.base,
            Some(STAFF),
            table,
            &format!(r#"{{"state":"{state}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let max = get_json(&d.base, "/api/v1/snapshot").await["seq"]
        .as_u64()
        .expect("seq");
    d.stop().await;

    // Everything is past retention: the start-up prune deletes every row,
    // then records system.started.
    age_all(dir.path());
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    assert_eq!(count(dir.path()), 1, "only system.started is left");
    let snapshot = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(snapshot["seq"], max + 1, "{snapshot}");
    let page = get_json(&d.base, &format!("/api/v1/events?since={max}")).await;
    assert_eq!(page["complete"], true, "{page}");
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["seq"], max + 1);
    assert_eq!(events[0]["type"], "system.started");
    let page = get_json(&d.base, "/api/v1/events?since=0").await;
    assert_eq!(page["complete"], false, "seqs up to {max} are gone: {page}");

    let (status, body) = put_state(&d.base, Some(STAFF), 3, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], max + 2, "{body}");
    d.stop().await;
}
