//! The real binary under abuse: a client that never reads, and `kill -9`
//! in the middle of a burst of acknowledged changes.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

/// A stream client that sends its request and then never reads: a tablet
/// whose Wi-Fi froze. Its receive buffer is tiny, so the daemon's writes
/// to it block after a few kilobytes.
fn stalled_client(addr: std::net::SocketAddr) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(2048).expect("SO_RCVBUF");
    sock.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = sock.into();
    write!(
        stream,
        "GET /api/v1/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("request");
    stream
}

/// Runs `workers` concurrent staff clients, each flipping its own table,
/// until `total` changes were acknowledged; returns (seq, table, state) of
/// every 2xx answer.
async fn burst(base: &str, total: usize) -> Vec<(u64, i64, String)> {
    let workers = 4;
    let mut tasks = Vec::new();
    for table in 1..=workers as i64 {
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let snapshot = get_json(&base, &format!("/api/v1/tables/{table}")).await;
            let mut occupied = snapshot["state"] == "occupied";
            let mut acked = Vec::new();
            for _ in 0..total / workers {
                let state = if occupied { "free" } else { "occupied" };
                let (status, body) = put_state(
                    &base,
                    Some(STAFF),
                    table,
                    &format!(r#"{{"state":"{state}"}}"#),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                acked.push((body["seq"].as_u64().expect("seq"), table, state.to_string()));
                occupied = !occupied;
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_closed_and_slows_no_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = 64;
    let daemon = Process::start(
        dir.path(),
        &[("MESERO_HTTP_CLIENT_QUEUE", &queue.to_string())],
    );
    let mut healthy = Sse::connect(&daemon.base, "/api/v1/stream", &[]).await;
    let (_, snap) = healthy.next_json().await;
    let head = snap["seq"].as_u64().expect("seq");
    let mut stalled = stalled_client(daemon.addr);
    let rss_before = daemon.rss_kib();

    // Changes in rounds until the reaper has closed the stalled client;
    // the healthy one must get every event, in order, all along.
    let mut expected = Vec::new();
    let mut closed = 0;
    for _round in 0..40 {
        let acked = burst(&daemon.base, 200).await;
        for (seq, _, _) in &acked {
            let msg = healthy.next().await.expect("healthy stream open");
            assert_eq!(
                msg.id,
                Some(seq.to_string()),
                "healthy client got every event in order"
            );
        }
        expected.extend(acked.iter().map(|(seq, _, _)| *seq));
        let stats = get_json(&daemon.base, "/api/v1/stats").await;
        closed = stats["slow_clients_closed"].as_u64().expect("counter");
        if closed >= 1 {
            break;
        }
    }
    assert_eq!(closed, 1, "the stalled client was closed");
    let rss_after = daemon.rss_kib();
    eprintln!(
        "{} events; rss {rss_before} KiB -> {rss_after} KiB",
        expected.len()
    );
    // A coarse check only: everything sent here is about 3 MB, so this
    // bound cannot catch an unbounded queue. tests/hub.rs shows that the
    // stalled client holds at most the ring and slows no one (a ratio).
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory stays bounded while a client is stalled: {rss_before} KiB -> {rss_after} KiB"
    );

    // More changes after the close still reach the healthy client.
    let after = burst(&daemon.base, 8).await;
    for (seq, _, _) in &after {
        assert_eq!(
            healthy.next().await.expect("open").id,
            Some(seq.to_string())
        );
    }

    // The stalled client, when it finally reads, finds a gap-free prefix of
    // the log and then the end of the stream: never a silent skip.
    stalled
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut raw = Vec::new();
    stalled
        .read_to_end(&mut raw)
        .expect("read until the daemon closed it");
    let text = String::from_utf8_lossy(&raw);
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(ids.first(), Some(&head), "starts with the snapshot");
    let received = &ids[1..];
    assert!(!received.is_empty());
    assert_eq!(
        received,
        &expected[..received.len()],
        "a prefix of the log, no gap"
    );
    assert!(
        received.len() < expected.len(),
        "it was closed before the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(dir.path(), &[]);

    // Four staff clients hammer the daemon; it is killed while they are
    // mid-request. Every change answered 2xx before the kill must survive.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, i64, String)>::new()));
    let mut workers = Vec::new();
    for table in 1..=4i64 {
        let (base, acked) = (daemon.base.clone(), std::sync::Arc::clone(&acked));
        workers.push(tokio::spawn(async move {
            let mut occupied = false;
            loop {
                let state = if occupied { "free" } else { "occupied" };
                let res = http()
                    .put(format!("{base}/api/v1/tables/{table}/state"))
                    .bearer_auth(STAFF)
                    .body(format!(r#"{{"state":"{state}"}}"#))
                    .send()
                    .await;
                let Ok(res) = res else { return };
                if !res.status().is_success() {
                    return;
                }
                let Ok(body) = res.json::<Value>().await else {
                    return;
                };
                if let Some(seq) = body["seq"].as_u64() {
                    if let Ok(mut acked) = acked.lock() {
                        acked.push((seq, table, state.to_string()));
                    }
                }
                occupied = !occupied;
            }
        }));
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    while acked.lock().map(|a| a.len()).unwrap_or(0) < 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst did not get going"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut daemon = daemon;
    daemon.signal("KILL");
    daemon.wait();
    for worker in workers {
        worker.await.expect("worker");
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() >= 400);

    {
        let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
    }

    let restarted = TestDaemon::start(config(dir.path(), &[])).await;
    let events = all_events(&restarted.base, 0).await;
    let by_seq: HashMap<u64, &Value> = events
        .iter()
        .map(|e| (e["seq"].as_u64().expect("seq"), e))
        .collect();
    for (seq, table, state) in &acked {
        let event = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} is in /events"));
        assert_eq!(event["type"], "table.state");
        assert_eq!(event["table"], *table);
        assert_eq!(event["data"]["to"], state.as_str());
    }
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq strictly increasing"
    );

    // Each table's state is its last logged change (acknowledged or not).
    for table in 1..=4i64 {
        let last = events
            .iter()
            .rev()
            .find(|e| e["type"] == "table.state" && e["table"] == table)
            .expect("table changed");
        let now = get_json(&restarted.base, &format!("/api/v1/tables/{table}")).await;
        assert_eq!(now["state"], last["data"]["to"], "table {table}");
    }
    eprintln!(
        "{} acknowledged changes before kill -9, {} events after restart",
        acked.len(),
        events.len()
    );
    restarted.stop().await;
}
