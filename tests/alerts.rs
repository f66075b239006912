//! Alerts end to end (issue 11, must-be-shown 5): a real daemon on a real
//! SQLite file and a manual clock, driven by a call button through the
//! engine's sensor input, by real HTTP, SSE, WebSocket and MQTT clients.

mod common;

use common::mqtt::{HOST, NODE, client};
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use mesero::clock::{self, Wall};
use mesero::config::Config;
use mesero::sensors::report::ButtonEvent;
use rumqttc::QoS;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A call button on table 1 (off a Pi its GPIO thread only retries:
/// fault_after is out of reach), on top of the fixture.
const BUTTON: &str = r#"
[[sensors]]
id = "call-1"
kind = "button"
table = 1
pin = 27
fault_after = 1000
"#;

/// 2026-12-01 21:00:00 UTC: an evening.
fn evening() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_158_800)
}

fn config_at(dir: &Path, env: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        (
            "MESERO_STORAGE_PATH".to_string(),
            db_path(dir).display().to_string(),
        ),
        // The clock is moved by hand: no heartbeat needed.
        ("MESERO_HTTP_HEARTBEAT".to_string(), "1h".to_string()),
    ];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_toml(
        Path::new("tests/fixtures/test.toml"),
        &format!("{FIXTURE}\n{BUTTON}"),
        vars,
    )
    .expect("config with a button")
}

/// `method path` as `token` with `body`; (status, JSON body).
async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post(base: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    call(base, reqwest::Method::POST, path, token, Some(body)).await
}

async fn open_alerts(base: &str) -> Vec<Value> {
    let (status, body) = call(base, reqwest::Method::GET, "/api/v1/alerts", STAFF, None).await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().expect("alerts")
}

/// The next SSE event of one of `types`, skipping the others.
async fn next_of(sse: &mut Sse, types: &[&str]) -> Value {
    loop {
        let (msg, event) = sse.next_json().await;
        if msg.event.as_deref().is_some_and(|t| types.contains(&t)) {
            return event;
        }
    }
}

fn alert_events_of(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_presses_in_ten_seconds_are_one_alert_and_a_staff_ack_records_who_and_when() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(evening());
    let d = TestDaemon::start_at(config_at(dir.path(), &[]), wall.clone()).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=alert",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let (first, snapshot) = sse.next_json().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    assert_eq!(snapshot["alerts"], json!([]));

    let input = d.daemon.sensor_input();
    let mut seen = Vec::new();
    for press in 0..5 {
        if press > 0 {
            wall.advance(Duration::from_millis(2_400));
        }
        input.button("call-1", ButtonEvent::Call).expect("press");
        seen.push(next_of(&mut sse, &["alert.raised", "alert.updated"]).await);
    }
    assert_eq!(seen[0]["type"], "alert.raised");
    assert_eq!(seen[0]["actor"], "sensor:call-1");
    assert!(seen[1..].iter().all(|e| e["type"] == "alert.updated"));
    let alert = &seen[4]["data"]["alert"];
    assert_eq!(alert["count"], 5, "{alert}");
    assert_eq!(alert["kind"], "call");
    assert_eq!(alert["table"], 1);
    assert_eq!(alert["target"], "floor");
    assert_eq!(alert["source"], "sensor:call-1");
    assert_eq!(alert["created_at"], clock::format(evening()));
    assert_eq!(
        alert["last_at"],
        clock::format(evening() + Duration::from_millis(9_600))
    );
    let id = alert["id"].as_i64().expect("id");

    // One open alert, in the list and in the snapshot at its seq.
    let open = open_alerts(&d.base).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["count"], 5);
    let snap = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(snap["alerts"], json!(open));
    assert_eq!(snap["seq"], seen[4]["seq"]);

    let ack = format!("/api/v1/alerts/{id}/ack");
    let (status, body) = post(&d.base, &ack, VIEWER, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(
        open_alerts(&d.base).await.len(),
        1,
        "a viewer's ack changes nothing"
    );

    wall.advance(Duration::from_secs(50));
    let (status, body) = post(&d.base, &ack, STAFF, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alert"]["acked_by"], "staff:staff");
    let acked_at = clock::format(evening() + Duration::from_millis(59_600));
    assert_eq!(body["alert"]["acked_at"], acked_at);
    let event = next_of(&mut sse, &["alert.acked"]).await;
    assert_eq!(event["actor"], "staff:staff");
    assert_eq!(event["seq"], body["seq"]);
    assert!(open_alerts(&d.base).await.is_empty());

    let (status, body) = post(&d.base, &ack, STAFF, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("staff:staff")
    );
    let (status, _) = post(&d.base, "/api/v1/alerts/999/ack", STAFF, "").await;
    assert_eq!(status, 404);

    // Pressed again within the cooldown (30 s) after the ack: merged into
    // the acked alert, which stays acked. After it: a new alert.
    wall.advance(Duration::from_secs(10));
    input.button("call-1", ButtonEvent::Call).expect("press");
    let again = next_of(&mut sse, &["alert.raised", "alert.updated"]).await;
    assert_eq!(again["type"], "alert.updated", "{again}");
    assert_eq!(again["data"]["alert"]["count"], 6);
    assert_eq!(again["data"]["alert"]["acked_at"], acked_at);
    assert!(open_alerts(&d.base).await.is_empty());
    wall.advance(Duration::from_secs(30));
    input.button("call-1", ButtonEvent::Call).expect("press");
    let fresh = next_of(&mut sse, &["alert.raised", "alert.updated"]).await;
    assert_eq!(fresh["type"], "alert.raised", "{fresh}");
    assert_ne!(fresh["data"]["alert"]["id"], id);
    assert_eq!(fresh["data"]["alert"]["count"], 1);

    // A long press is another request: its own alert.
    input.button("call-1", ButtonEvent::Bill).expect("press");
    let bill = next_of(&mut sse, &["alert.raised", "alert.updated"]).await;
    assert_eq!(bill["type"], "alert.raised");
    assert_eq!(bill["data"]["kind"], "bill");

    // The history has all three.
    let (_, history) = call(
        &d.base,
        reqwest::Method::GET,
        "/api/v1/alerts?all=true",
        STAFF,
        None,
    )
    .await;
    assert_eq!(history["alerts"].as_array().map(Vec::len), Some(3));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_urgent_alert_escalates_exactly_max_escalations_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(evening());
    let env = [
        ("MESERO_ALERTS_ESCALATE_AFTER", "1m"),
        ("MESERO_ALERTS_MAX_ESCALATIONS", "3"),
    ];
    let d = TestDaemon::start_at(config_at(dir.path(), &env), wall.clone()).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=alert.escalated",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let (status, raised) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "kitchen", "priority": "urgent", "message": "fire at the grill"}"#,
    )
    .await;
    assert_eq!(status, 201, "{raised}");
    assert_eq!(raised["alert"]["source"], "staff:staff");
    let id = raised["alert"]["id"].clone();

    wall.advance(Duration::from_secs(3600));
    for step in 1..=3 {
        let event = next_of(&mut sse, &["alert.escalated"]).await;
        assert_eq!(event["actor"], "system");
        assert_eq!(event["data"]["alert"]["id"], id);
        assert_eq!(event["data"]["alert"]["escalations"], step);
        assert_eq!(
            (event["data"]["from"].as_str(), event["data"]["to"].as_str()),
            (Some("urgent"), Some("urgent"))
        );
    }
    // Another hour, then a raise as a marker committed after anything the
    // escalation task could still have done: exactly three steps.
    wall.advance(Duration::from_secs(3600));
    let (status, _) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "refill", "table": 2}"#,
    )
    .await;
    assert_eq!(status, 201);
    let events = all_events(&d.base, 0).await;
    assert_eq!(alert_events_of(&events, "alert.escalated"), 3);
    let open = open_alerts(&d.base).await;
    let urgent = open.iter().find(|a| a["id"] == id).expect("still open");
    assert_eq!(
        (urgent["escalations"].as_u64(), urgent["priority"].as_str()),
        (Some(3), Some("urgent"))
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_deadlines_come_from_stored_times_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(evening());
    let env = [("MESERO_ALERTS_ESCALATE_AFTER", "2m")];
    let d = TestDaemon::start_at(config_at(dir.path(), &env), wall.clone()).await;
    let (status, raised) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "call", "table": 3}"#,
    )
    .await;
    assert_eq!(status, 201, "{raised}");
    d.stop().await;

    // Back 90 s after the raise: the first step is due 30 s later, not
    // two minutes after the start.
    wall.set(evening() + Duration::from_secs(90));
    let d = TestDaemon::start_at(config_at(dir.path(), &env), wall.clone()).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=alert",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let (_, snapshot) = sse.next_json().await;
    assert_eq!(
        snapshot["alerts"][0]["id"], raised["alert"]["id"],
        "open alerts survive"
    );
    wall.set(evening() + Duration::from_secs(121));
    let first = next_of(&mut sse, &["alert.escalated"]).await;
    assert_eq!(
        (first["data"]["from"].as_str(), first["data"]["to"].as_str()),
        (Some("normal"), Some("high"))
    );
    assert_eq!(
        first["ts"],
        clock::format(evening() + Duration::from_secs(121))
    );
    wall.set(evening() + Duration::from_secs(241));
    let second = next_of(&mut sse, &["alert.escalated"]).await;
    assert_eq!(second["data"]["to"], "urgent");
    assert_eq!(second["data"]["alert"]["escalations"], 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_staff_raise_alerts_and_others_are_refused_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_at(dir.path(), &[])).await;
    let topic = "mesero/test/alerts/raise";

    let mut host = client(d.mqtt, "kitchen-tablet", Some(HOST)).await;
    host.publish(
        topic,
        r#"{"kind": "kitchen", "target": "floor", "table": 2, "message": "mesa 2: listo"}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    // PUBACK came after the commit: the alert is there now.
    let open = open_alerts(&d.base).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["source"], "mqtt:kitchen-tablet");
    assert_eq!(open[0]["message"], "mesa 2: listo");
    assert_eq!(open[0]["priority"], "normal");

    let mut node = client(d.mqtt, "node-1", Some(NODE)).await;
    node.publish(topic, r#"{"kind": "call"}"#, QoS::AtLeastOnce, false)
        .await;
    stats_until(&d.base, "the viewer's alert refused", |s| {
        s["mqtt"]["publishes_refused"] == 1
    })
    .await;
    for garbage in [
        "fire!",
        r#"{"kind": "fire"}"#,
        r#"{"kind": "call", "table": 99}"#,
        r#"{"kind": "call", "message": "two\nlines"}"#,
    ] {
        host.publish(topic, garbage, QoS::AtLeastOnce, false).await;
    }
    stats_until(&d.base, "malformed alerts counted", |s| {
        s["mqtt"]["malformed"]["alerts"] == 4
    })
    .await;
    assert_eq!(open_alerts(&d.base).await.len(), 1, "nothing else raised");
    let metrics = http()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("mesero_mqtt_malformed_total{kind=\"alerts\"} 4"),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_alert_bodies_are_refused_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_at(dir.path(), &[])).await;
    let head = stats(&d.base).await["seq"].clone();
    for (body, status, field) in [
        (r#"{"kind": "fire"}"#, 400, "kind"),
        (r#"{"priority": "high"}"#, 400, "kind"),
        (r#"{"kind": "call", "priority": "low"}"#, 400, "priority"),
        (r#"{"kind": "call", "target": "moon"}"#, 400, "target"),
        (r#"{"kind": "call", "tabel": 1}"#, 400, "tabel"),
        (r#"{"kind": "call", "table": "1"}"#, 400, "table"),
        (r#"{"kind": "call", "table": 99}"#, 422, "table"),
        (
            r#"{"kind": "custom", "message": "a\u001b[2J"}"#,
            422,
            "message",
        ),
        ("not json", 400, ""),
    ] {
        let (got, answer) = post(&d.base, "/api/v1/alerts", STAFF, body).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{body}: {message}");
    }
    let long = format!(r#"{{"kind": "custom", "message": "{}"}}"#, "x".repeat(201));
    let (got, answer) = post(&d.base, "/api/v1/alerts", STAFF, &long).await;
    assert_eq!(got, 422, "{answer}");
    let (got, _) = post(&d.base, "/api/v1/alerts", VIEWER, r#"{"kind": "call"}"#).await;
    assert_eq!(got, 403);
    let (got, _) = call(
        &d.base,
        reqwest::Method::GET,
        "/api/v1/alerts?all=maybe",
        STAFF,
        None,
    )
    .await;
    assert_eq!(got, 400);
    let (got, _) = post(&d.base, "/api/v1/alerts/x/ack", STAFF, "").await;
    assert_eq!(got, 400);
    assert!(open_alerts(&d.base).await.is_empty());
    assert_eq!(stats(&d.base).await["seq"], head, "no event recorded");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_filter_alerts_by_target_and_all_matches_every_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_at(dir.path(), &[])).await;
    let raise = |target: &'static str, message: &'static str| {
        let base = d.base.clone();
        async move {
            let body =
                format!(r#"{{"kind": "custom", "target": "{target}", "message": "{message}"}}"#);
            let (status, _) = post(&base, "/api/v1/alerts", STAFF, &body).await;
            assert_eq!(status, 201);
        }
    };
    raise("kitchen", "k1").await;
    raise("floor", "f1").await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=alert&targets=kitchen",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let (_, snapshot) = sse.next_json().await;
    let targets: Vec<&str> = snapshot["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["target"].as_str())
        .collect();
    assert_eq!(targets, ["kitchen"]);

    let url = format!(
        "{}/api/v1/ws?token=viewer-token",
        d.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    // The snapshot at connect first; a subscribe sent before it arrived
    // would replace the connect feed, whose snapshot is then never sent.
    // Then the subscription's own snapshot: from there on its filter holds.
    let snapshot = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value["type"] == "snapshot" {
                return value;
            }
        }
    };
    snapshot(&mut ws).await;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"op": "subscribe", "types": ["alert"], "targets": ["bar"]})
            .to_string()
            .into(),
    ))
    .await
    .expect("subscribe");
    let subscribed = snapshot(&mut ws).await;
    assert_eq!(
        subscribed["data"]["alerts"],
        json!([]),
        "no alert is for the bar yet"
    );

    raise("floor", "f2").await;
    raise("all", "a1").await;
    raise("bar", "b1").await;
    let event = next_of(&mut sse, &["alert.raised"]).await;
    assert_eq!(
        event["data"]["alert"]["target"], "all",
        "the floor one is not for the kitchen"
    );

    let mut ws_targets = Vec::new();
    while ws_targets.len() < 2 {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("frame");
        let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        if value["type"] == "alert.raised" {
            ws_targets.push(
                value["data"]["alert"]["target"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    assert_eq!(ws_targets, ["all", "bar"]);
    let (got, body) = call(
        &d.base,
        reqwest::Method::GET,
        "/api/v1/stream?targets=moon",
        VIEWER,
        None,
    )
    .await;
    assert_eq!(got, 400, "{body}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_alerts_per_source_are_bounded_with_a_429_that_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_at(dir.path(), &[])).await;
    let max = mesero::alerts::MAX_OPEN_PER_SOURCE;
    for n in 0..max {
        let body = format!(r#"{{"kind": "custom", "message": "order {n}"}}"#);
        let (status, answer) = post(&d.base, "/api/v1/alerts", STAFF, &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "custom", "message": "one more"}"#,
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many");
    // A repeat of an open one is still merged, and another source may raise.
    let (status, _) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "custom", "message": "order 0"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&d.base, "/api/v1/alerts", ADMIN, r#"{"kind": "call"}"#).await;
    assert_eq!(status, 201);
    let s = stats(&d.base).await;
    assert_eq!(s["alerts"], json!({"open": max + 1, "refused": 1}));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_acked_alerts_and_keeps_open_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(evening());
    let d = TestDaemon::start_at(config_at(dir.path(), &[]), wall.clone()).await;
    let (_, answered) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "refill", "table": 1}"#,
    )
    .await;
    let (_, waiting) = post(
        &d.base,
        "/api/v1/alerts",
        STAFF,
        r#"{"kind": "call", "table": 2}"#,
    )
    .await;
    let ack = format!("/api/v1/alerts/{}/ack", answered["alert"]["id"]);
    assert_eq!(post(&d.base, &ack, STAFF, "").await.0, 200);
    d.stop().await;

    // Past storage.retention_days (30): the start-up prune runs.
    wall.set(evening() + Duration::from_secs(31 * 86_400));
    let d = TestDaemon::start_at(config_at(dir.path(), &[]), wall.clone()).await;
    let (_, history) = call(
        &d.base,
        reqwest::Method::GET,
        "/api/v1/alerts?all=true",
        STAFF,
        None,
    )
    .await;
    let ids: Vec<&Value> = history["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&waiting["alert"]["id"]], "{history}");
    d.stop().await;
}
