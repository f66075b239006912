//! The hub on its own, through its public API: a subscriber that never
//! reads costs at most the ring, is told it lagged, is closed by the
//! reaper, and does not slow the others down.

use mesero::domain::Event;
use mesero::hub::{ClientKind, Hub};
use mesero::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;

/// The ring: how many events a client may fall behind (a power of two, so
/// that the ring holds exactly this many).
const CAPACITY: usize = 64;
const EVENTS: u64 = 10_000;

/// A committed event as the writer hands it over, built from its wire form.
fn event(seq: u64) -> Event {
    serde_json::from_value(serde_json::json!({
        "seq": seq,
        "ts": "2026-01-01T00:00:00.000Z",
        "type": "alert.raised",
        "table": null,
        "actor": "system",
        "data": { "n": seq },
    }))
    .expect("an event")
}

fn hub() -> (Hub, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(CAPACITY, Arc::clone(&metrics));
    hub.reset(0, Arc::new(Vec::new()));
    (hub, metrics)
}

/// Publishes `from..=to` in writer-sized batches of 10.
fn publish(hub: &Hub, from: u64, to: u64) {
    let mut seq = from;
    while seq <= to {
        let last = (seq + 9).min(to);
        hub.publish((seq..=last).map(event).collect(), Arc::new(Vec::new()));
        seq = last + 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_never_reads_lags_holds_at_most_the_ring_and_is_reaped() {
    let (hub, metrics) = hub();
    let kill = CancellationToken::new();
    let mut stalled = hub.subscribe(ClientKind::Sse, kill.clone());
    assert_eq!(stalled.head, 0);
    publish(&hub, 1, EVENTS);
    assert_eq!(hub.head(), EVENTS);

    // The reaper (on paused time: its ticks come as the runtime idles)
    // closes the client that fell a whole ring behind.
    let shutdown = CancellationToken::new();
    let reaper = tokio::spawn(hub.clone().reap_slow_clients(shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(60), kill.cancelled())
        .await
        .expect("the reaper closed the stalled client");
    assert_eq!(metrics.slow_clients_closed.load(Ordering::Relaxed), 1);
    shutdown.cancel();
    reaper.await.expect("reaper");

    // Told that it lagged, by exactly what the ring dropped, and then
    // only the ring is left: the newest CAPACITY events, in order.
    let dropped = EVENTS - CAPACITY as u64;
    match stalled.rx.try_recv() {
        Err(TryRecvError::Lagged(n)) => assert_eq!(n, dropped),
        other => panic!("expected Lagged({dropped}), got {other:?}"),
    }
    assert!(
        stalled.rx.len() <= CAPACITY,
        "queued for the stalled client: {} > {CAPACITY}",
        stalled.rx.len()
    );
    let mut left = Vec::new();
    while let Ok(p) = stalled.rx.try_recv() {
        left.push(p.event.seq);
    }
    assert_eq!(left, (dropped + 1..=EVENTS).collect::<Vec<_>>());
}

/// Time for a healthy subscriber to receive `EVENTS` events as they are
/// published, with or without a subscriber that never reads.
fn healthy_delivery(with_stalled: bool) -> Duration {
    let (hub, _) = hub();
    let _stalled = with_stalled.then(|| hub.subscribe(ClientKind::Sse, CancellationToken::new()));
    let mut healthy = hub.subscribe(ClientKind::Sse, CancellationToken::new());
    let started = Instant::now();
    let mut seq = 1;
    while seq <= EVENTS {
        let last = (seq + 9).min(EVENTS);
        publish(&hub, seq, last);
        for want in seq..=last {
            let p = healthy.rx.try_recv().expect("the healthy client keeps up");
            assert_eq!(p.event.seq, want);
            healthy.seen(want);
        }
        seq = last + 1;
    }
    started.elapsed()
}

#[test]
fn a_stalled_subscriber_slows_no_one() {
    // Best of several alternating runs each, so that the shared machine's
    // noise hits both sides alike; the bound is a ratio, not a time.
    let (mut without, mut with) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        without = without.min(healthy_delivery(false));
        with = with.min(healthy_delivery(true));
    }
    eprintln!(
        "{EVENTS} events to a healthy client: alone {without:?}, beside a stalled one {with:?}"
    );
    assert!(
        with < without * 3,
        "a stalled subscriber slowed the healthy one: {with:?} vs {without:?}"
    );
}
