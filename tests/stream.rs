//! SSE and WebSocket streams over loopback against a real SQLite file:
//! fan-out with one seq, auth, resume without gaps (also across a restart),
//! and the reset snapshot for ids older than what is kept.

mod common;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(base: &str, query: &str) -> Ws {
    let url = format!("{}/api/v1/ws{query}", base.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    ws
}

/// The next JSON text frame (pings and pongs are skipped).
async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("timed out waiting for a WebSocket frame")
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).expect("json frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_change_reaches_sse_and_ws_with_the_same_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;

    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    assert_eq!(sse.status, 200);
    let (snap_msg, snap) = sse.next_json().await;
    assert_eq!(snap_msg.event.as_deref(), Some("snapshot"));
    assert_eq!(snap["tables"].as_array().map(Vec::len), Some(4));
    assert_eq!(snap["reset"], false);
    assert_eq!(
        snap_msg.id.as_deref(),
        Some(snap["seq"].to_string().as_str())
    );

    let mut ws = ws_connect(&d.base, "?token=viewer-token").await;
    let first = ws_next(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["seq"], snap["seq"]);

    let (status, body) = put_state(&d.base, Some(STAFF), 2, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 200, "{body}");
    let seq = body["seq"].as_u64().expect("seq in answer");

    let (msg, event) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.state"));
    assert_eq!(msg.id, Some(seq.to_string()));
    assert_eq!(event["seq"], seq);
    assert_eq!(event["table"], 2);
    assert_eq!(event["actor"], "staff:staff");
    assert_eq!(event["data"]["from"], "free");
    assert_eq!(event["data"]["to"], "occupied");
    assert_eq!(event["data"]["table"]["state"], "occupied");

    let ws_event = ws_next(&mut ws).await;
    assert_eq!(ws_event, event, "WS carries the same event object as SSE");

    // WebSocket ops.
    ws.send(Message::Text(r#"{"op":"ping"}"#.into()))
        .await
        .expect("send");
    assert_eq!(ws_next(&mut ws).await, json!({"type": "pong"}));
    ws.send(Message::Text(r#"{"op":"dance"}"#.into()))
        .await
        .expect("send");
    assert_eq!(ws_next(&mut ws).await["type"], "error");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let (status, body) = put_state(&d.base, Some(VIEWER), 1, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = put_state(&d.base, None, 1, r#"{"state": "occupied"}"#).await;
    assert_eq!(
        status, 401,
        "anonymous viewers must authenticate to change state"
    );
    let (status, _) = put_state(&d.base, Some("nope"), 1, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 401);
    let res = http()
        .delete(format!("{}/api/v1/tables/1", d.base))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 403, "floor-plan edits are for admins");
    let snapshot = get_json(&d.base, "/api/v1/snapshot").await;
    assert!(
        snapshot["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .all(|t| t["state"] == "free")
    );
    d.stop().await;

    let locked = TestDaemon::start(config(dir.path(), &[("MESERO_AUTH_ANONYMOUS", "none")])).await;
    for path in [
        "/api/v1/snapshot",
        "/api/v1/tables",
        "/api/v1/events",
        "/api/v1/stream",
    ] {
        let res = http()
            .get(format!("{}{path}", locked.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 401, "{path} without a token");
        let body: Value = res.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = put_state(&locked.base, None, 1, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 401);
    let res = http()
        .get(format!(
            "{}/api/v1/snapshot?token=viewer-token",
            locked.base
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200, "?token= works too");
    locked.stop().await;
}

/// Makes `n` real state changes, round-robin over tables 1..=4, and
/// returns their seqs (each PUT picks a state the table is not in).
async fn changes(base: &str, n: usize) -> Vec<u64> {
    let snapshot = get_json(base, "/api/v1/snapshot").await;
    let mut states: Vec<String> = (0..4)
        .map(|i| {
            snapshot["tables"][i]["state"]
                .as_str()
                .unwrap_or("free")
                .to_string()
        })
        .collect();
    let mut seqs = Vec::new();
    for i in 0..n {
        let state = if states[i % 4] == "occupied" {
            "dirty"
        } else {
            "occupied"
        };
        let table = (i % 4) as i64 + 1;
        let (status, body) = put_state(
            base,
            Some(STAFF),
            table,
            &format!(r#"{{"state":"{state}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        seqs.push(body["seq"].as_u64().expect("a change makes an event"));
        states[i % 4] = state.to_string();
    }
    seqs
}

/// Reads SSE messages until `count` events arrived; returns their seqs.
async fn seqs_of(sse: &mut Sse, count: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < count {
        let msg = sse.next().await.expect("stream open");
        assert_ne!(
            msg.event.as_deref(),
            Some("snapshot"),
            "a resume must not start with a snapshot"
        );
        out.push(msg.id.expect("id").parse().expect("numeric id"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_has_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut sse = Sse::connect(&d.base, "/api/v1/stream", &[]).await;
    let (_, snap) = sse.next_json().await;
    let first = changes(&d.base, 3).await;
    assert_eq!(seqs_of(&mut sse, 3).await, first);
    let last_seen = *first.last().expect("seq");
    drop(sse);

    let missed = changes(&d.base, 25).await;
    let mut sse = Sse::connect(
        &d.base,
        // An old `since` in the URL (as EventSource keeps it) loses to the header.
        &format!("/api/v1/stream?since={}", snap["seq"]),
        &[("last-event-id", &last_seen.to_string())],
    )
    .await;
    assert_eq!(
        seqs_of(&mut sse, 25).await,
        missed,
        "exactly the missed events, in order"
    );
    let live = changes(&d.base, 1).await;
    assert_eq!(
        seqs_of(&mut sse, 1).await,
        live,
        "then live, with nothing repeated"
    );

    // The same through ?since= and through the WebSocket's subscribe op.
    let mut by_query =
        Sse::connect(&d.base, &format!("/api/v1/stream?since={last_seen}"), &[]).await;
    let mut expected = missed.clone();
    expected.extend(&live);
    assert_eq!(seqs_of(&mut by_query, 26).await, expected);

    let mut ws = ws_connect(&d.base, "").await;
    assert_eq!(ws_next(&mut ws).await["type"], "snapshot");
    ws.send(Message::Text(
        json!({"op": "subscribe", "since": last_seen, "tables": [2]})
            .to_string()
            .into(),
    ))
    .await
    .expect("subscribe");
    let only_table_2: Vec<u64> = all_events(&d.base, last_seen)
        .await
        .iter()
        .filter(|e| e["table"] == 2)
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(!only_table_2.is_empty());
    for want in &only_table_2 {
        assert_eq!(ws_next(&mut ws).await["seq"], *want);
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_works_across_a_daemon_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut sse = Sse::connect(&d.base, "/api/v1/stream", &[]).await;
    sse.next_json().await;
    let seen = changes(&d.base, 2).await;
    assert_eq!(seqs_of(&mut sse, 2).await, seen);
    let last_seen = seen[1];
    let missed_before = changes(&d.base, 5).await;
    drop(sse);
    d.stop().await;

    // Same database file, new process state, new port.
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let missed_after = changes(&d.base, 5).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream",
        &[("last-event-id", &last_seen.to_string())],
    )
    .await;

    let mut expected: Vec<u64> = all_events(&d.base, last_seen)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    // The log holds the missed changes plus the restart's system.started.
    let restart_seq = missed_before.last().expect("seq") + 1;
    let mut changes_and_start = missed_before.clone();
    changes_and_start.push(restart_seq);
    changes_and_start.extend(&missed_after);
    assert_eq!(expected, changes_and_start);
    assert_eq!(seqs_of(&mut sse, expected.len()).await, expected);
    let live = changes(&d.base, 1).await;
    assert_eq!(seqs_of(&mut sse, 1).await, live);
    expected.extend(live);

    // Only table changes, filtered on the server, across the restart too.
    let mut filtered = Sse::connect(
        &d.base,
        &format!("/api/v1/stream?since={last_seen}&types=table.state"),
        &[],
    )
    .await;
    let mut table_changes = missed_before;
    table_changes.extend(missed_after);
    table_changes.extend(&expected[expected.len() - 1..]);
    assert_eq!(
        seqs_of(&mut filtered, table_changes.len()).await,
        table_changes
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_older_than_retention_gets_a_reset_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let old = changes(&d.base, 6).await;
    d.stop().await;

    // Age the first changes past storage.retention_days (30): the next
    // start deletes them.
    {
        let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
        conn.execute(
            "UPDATE events SET ts = '2000-01-01T00:00:00.000Z' WHERE seq <= ?1",
            [old[3] as i64],
        )
        .expect("age events");
    }
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let kept = get_json(&d.base, "/api/v1/events?since=0").await;
    assert_eq!(
        kept["events"][0]["seq"], old[4],
        "retention deleted the aged events"
    );
    assert_eq!(kept["complete"], false);

    for headers in [vec![("last-event-id", old[0].to_string())], vec![]] {
        let path = if headers.is_empty() {
            format!("/api/v1/stream?since={}", old[1])
        } else {
            "/api/v1/stream".to_string()
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut sse = Sse::connect(&d.base, &path, &headers).await;
        let (msg, snap) = sse.next_json().await;
        assert_eq!(msg.event.as_deref(), Some("snapshot"));
        assert_eq!(snap["reset"], true);
        assert_eq!(snap["tables"].as_array().map(Vec::len), Some(4));
        let seq = changes(&d.base, 1).await;
        assert_eq!(
            seqs_of(&mut sse, 1).await,
            seq,
            "live after the reset snapshot"
        );
    }

    // A still-kept id replays normally.
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream",
        &[("last-event-id", &old[4].to_string())],
    )
    .await;
    assert_eq!(seqs_of(&mut sse, 1).await, vec![old[5]]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_peer_that_stops_answering_pings_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_HTTP_WS_PING", "100ms")])).await;
    let ws_clients =
        || async { get_json(&d.base, "/api/v1/stats").await["connections"]["ws"].clone() };

    // A live peer answers pings (tungstenite does while it is read).
    let mut alive = ws_connect(&d.base, "").await;
    assert_eq!(ws_next(&mut alive).await["type"], "snapshot");
    // A dead one: connected, read up to its snapshot, then never read
    // again, so it never pongs. The gauge goes up in the upgraded task,
    // after the handshake the client saw, so it is waited on; the dead
    // peer is dropped only after two silent ping periods.
    let mut dead = ws_connect(&d.base, "").await;
    assert_eq!(ws_next(&mut dead).await["type"], "snapshot");
    stats_until(&d.base, "both peers counted", |s| {
        s["connections"]["ws"] == 2
    })
    .await;

    // The live peer keeps reading (and so answering pings); it reports
    // each ping it gets.
    let (pings_tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = alive.next().await {
            if frame.is_ping() && pings_tx.send(()).is_err() {
                return;
            }
        }
    });
    stats_until(&d.base, "the dead peer dropped", |s| {
        s["connections"]["ws"] == 1
    })
    .await;
    // Several ping rounds later the answering peer is still connected.
    for _ in 0..5 {
        tokio::time::timeout(PATIENCE, pings.recv())
            .await
            .expect("pings keep coming");
    }
    assert_eq!(ws_clients().await, 1, "the answering peer is kept");
    reader.abort();
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_sends_retry_hint_and_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_HTTP_HEARTBEAT", "100ms")])).await;
    let mut res = http()
        .get(format!("{}/api/v1/stream", d.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut text = String::new();
    while text.matches(": heartbeat").count() < 2 {
        let chunk = tokio::time::timeout(PATIENCE, res.chunk())
            .await
            .expect("a heartbeat in time")
            .expect("read")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("retry: 100\n\n"), "{text}");
    assert!(text.contains("event: snapshot"), "{text}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_plan_edits_are_events_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut sse = Sse::connect(&d.base, "/api/v1/stream?types=table", &[]).await;
    sse.next_json().await;

    let res = http()
        .post(format!("{}/api/v1/tables", d.base))
        .bearer_auth(ADMIN)
        .body(r#"{"number": "T9", "zone": "bar", "seats": 2, "shape": "round"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let id = created["id"].as_i64().expect("new id");
    assert_eq!(created["state"], "free");
    let (msg, event) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.created"));
    assert_eq!(event["table"], id);

    let res = http()
        .patch(format!("{}/api/v1/tables/{id}", d.base))
        .bearer_auth(ADMIN)
        .body(r#"{"seats": 6}"#)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 200);
    let (msg, _) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.updated"));
    assert_eq!(
        get_json(&d.base, &format!("/api/v1/tables/{id}")).await["seats"],
        6
    );

    let (status, _) = put_state(
        &d.base,
        Some(STAFF),
        id,
        r#"{"state": "occupied", "hold_minutes": 20}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (_, event) = sse.next_json().await;
    assert_eq!(event["type"], "table.state");
    assert!(event["data"]["table"]["hold_until"].is_string(), "{event}");

    let res = http()
        .delete(format!("{}/api/v1/tables/{id}", d.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204);
    let (msg, _) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.deleted"));
    let res = http()
        .get(format!("{}/api/v1/tables/{id}", d.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stamped_by_a_wrong_clock_leave_no_hole_in_a_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let old = changes(&d.base, 6).await;
    d.stop().await;

    // The middle of the log was written while the clock said 2000 (a Pi
    // without an RTC before NTP); the next start's retention runs.
    {
        let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
        conn.execute(
            "UPDATE events SET ts = '2000-01-01T00:00:00.000Z' WHERE seq BETWEEN ?1 AND ?2",
            [old[1] as i64, old[3] as i64],
        )
        .expect("age events");
    }
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let kept = get_json(&d.base, "/api/v1/events?since=0").await;
    assert_eq!(kept["complete"], true, "{kept}");
    let after_first: Vec<u64> = all_events(&d.base, old[0])
        .await
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        after_first.iter().take(5).copied().collect::<Vec<_>>(),
        old[1..],
        "nothing deleted from the middle"
    );

    // A resume across the old stretch replays it, over SSE and WS alike.
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream",
        &[("last-event-id", &old[0].to_string())],
    )
    .await;
    assert_eq!(seqs_of(&mut sse, after_first.len()).await, after_first);
    let mut ws = ws_connect(&d.base, &format!("?since={}", old[0])).await;
    for want in &after_first {
        assert_eq!(ws_next(&mut ws).await["seq"], *want);
    }

    // Once the stretch really is old (the clock is right and a prefix has
    // aged), a resume into it gets a reset and /events says incomplete.
    d.stop().await;
    {
        let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
        conn.execute(
            "UPDATE events SET ts = '2000-01-01T00:00:00.000Z' WHERE seq <= ?1",
            [old[0] as i64],
        )
        .expect("age the prefix");
    }
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let kept = get_json(&d.base, &format!("/api/v1/events?since={}", old[0])).await;
    assert_eq!(kept["complete"], false, "{kept}");
    assert_eq!(kept["events"][0]["seq"], old[4]);
    let mut ws = ws_connect(&d.base, &format!("?since={}", old[2])).await;
    let first = ws_next(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["data"]["reset"], true, "{first}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_a_ring_behind_is_closed_4008_and_resumes_by_seq_without_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The smallest ring, and room for hundreds of requests from one
    // address: a writer batch of more than 16 events puts the socket's
    // feed a ring behind at once, while its client reads all along.
    let d = TestDaemon::start(config(
        dir.path(),
        &[
            ("MESERO_HTTP_CLIENT_QUEUE", "16"),
            ("MESERO_HTTP_MAX_CONNECTIONS_PER_IP", "400"),
        ],
    ))
    .await;
    let mut ws = ws_connect(&d.base, "").await;
    let snapshot = ws_next(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    let mut last = snapshot["seq"].as_u64().expect("seq");
    let (frames_tx, mut frames) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(frame) = ws.next().await {
            let end = !matches!(
                frame,
                Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))
            );
            if frames_tx.send(frame).is_err() || end {
                return;
            }
        }
    });

    let states = ["occupied", "dirty", "free"];
    let mut close = None;
    for _round in 0..20 {
        let burst = (0..300).map(|n| {
            let base = d.base.clone();
            let body = format!(r#"{{"state":"{}"}}"#, states[(n / 4) % 3]);
            async move { put_state(&base, Some(STAFF), 1 + (n % 4) as i64, &body).await }
        });
        futures_util::future::join_all(burst).await;
        while let Ok(frame) = frames.try_recv() {
            match frame {
                Ok(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(&text).expect("json");
                    let seq = event["seq"].as_u64().expect("seq");
                    assert_eq!(seq, last + 1, "in order, no gap before the close");
                    last = seq;
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => close = Some(other),
            }
        }
        if close.is_some() {
            break;
        }
    }
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4008, "{frame:?}");
        }
        other => panic!("expected Close(4008) after falling a ring behind, got {other:?}"),
    }
    reader.await.expect("reader");

    // Resuming from the last seq it got replays the rest, gap-free, with
    // no snapshot first, and then goes on live.
    let head = get_json(&d.base, "/api/v1/snapshot").await["seq"]
        .as_u64()
        .expect("seq");
    assert!(head > last, "the close came before the end");
    let mut ws = ws_connect(&d.base, &format!("?since={last}")).await;
    for want in last + 1..=head {
        let event = ws_next(&mut ws).await;
        assert_ne!(
            event["type"], "snapshot",
            "a resume starts with no snapshot"
        );
        assert_eq!(event["seq"], want, "gap-free replay");
    }
    let now = get_json(&d.base, "/api/v1/tables/1").await;
    let other = if now["state"] == "free" {
        "occupied"
    } else {
        "free"
    };
    let (status, body) = put_state(
        &d.base,
        Some(STAFF),
        1,
        &format!(r#"{{"state":"{other}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = ws_next(&mut ws).await;
    assert_eq!(event["seq"], head + 1, "live after the replay: {event}");
    d.stop().await;
}

/// Event times and holds come from the daemon's one clock: on a manual
/// clock, a staff change is stamped with its time and a hold ends by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_times_and_holds_follow_the_daemons_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = mesero::clock::parse("2030-03-31T00:59:00Z").expect("time");
    let wall = mesero::clock::Wall::manual(start);
    let d = TestDaemon::start_at(config(dir.path(), &[]), wall.clone()).await;

    let body = r#"{"state": "occupied", "hold_minutes": 10}"#;
    let (status, answer) = put_state(&d.base, Some(STAFF), 2, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["table"]["hold_until"], "2030-03-31T01:09:00.000Z");
    let events = all_events(&d.base, 0).await;
    let last = events.last().expect("an event");
    assert_eq!(last["ts"], "2030-03-31T00:59:00.000Z");

    wall.advance(std::time::Duration::from_secs(11 * 60));
    let (status, answer) = put_state(&d.base, Some(STAFF), 3, r#"{"state": "dirty"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["table"]["since"], "2030-03-31T01:10:00.000Z");
    d.stop().await;
}

/// A burst of concurrent changes is committed in a few writer batches, so
/// each stream finds several events ready at once and sends them together
/// (one SSE chunk, one WebSocket flush): every event still arrives, in
/// order, once, with its own SSE `id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_together_arrive_in_order_each_with_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(
        dir.path(),
        &[("MESERO_HTTP_MAX_CONNECTIONS_PER_IP", "400")],
    ))
    .await;
    let mut sse = Sse::connect(&d.base, "/api/v1/stream", &[]).await;
    let (_, snap) = sse.next_json().await;
    let head = snap["seq"].as_u64().expect("seq");
    let mut ws = ws_connect(&d.base, "").await;
    assert_eq!(ws_next(&mut ws).await["seq"], head);

    // Each table (free at the start) toggles between two other states, one
    // PUT per table and round, so every PUT is a change.
    let states = ["occupied", "dirty"];
    let mut seqs = Vec::new();
    for round in 0..25 {
        let burst = (1..=4).map(|table| {
            let base = d.base.clone();
            let body = format!(r#"{{"state":"{}"}}"#, states[round % 2]);
            async move { put_state(&base, Some(STAFF), table, &body).await }
        });
        for (status, body) in futures_util::future::join_all(burst).await {
            assert_eq!(status, 200, "{body}");
            seqs.push(body["seq"].as_u64().expect("a change makes an event"));
        }
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (head + 1..=head + 100).collect::<Vec<_>>(),
        "100 changes, 100 events"
    );

    for want in head + 1..=head + 100 {
        let (msg, event) = sse.next_json().await;
        assert_eq!(msg.event.as_deref(), Some("table.state"));
        assert_eq!(
            msg.id,
            Some(want.to_string()),
            "SSE ids in order, none missing"
        );
        assert_eq!(event["seq"], want, "each frame's data is its own event");
        let ws_event = ws_next(&mut ws).await;
        assert_eq!(
            ws_event, event,
            "the WebSocket got the same event, in order"
        );
    }
    d.stop().await;
}
