//! The embedded MQTT broker against a real client (rumqttc) over loopback:
//! sensor nodes and detectors driving tables through the occupancy engine,
//! retained table state and status, restart, authentication and roles,
//! garbage of every kind, Home Assistant discovery, and a port that cannot
//! be bound (the WebSocket listener is in tests/mqtt_ws.rs). Then the hostile peer:
//! topics that would panic rumqttd, silent sockets, floods of retained
//! messages and subscriptions, lost acknowledgements, forged log lines.

mod common;

use common::mqtt::raw::{self, Connect, Raw};
use common::mqtt::{self, ConnectReturnCode, HOST, NODE};
use common::*;
use mesero::systemd::Supervision;
use rumqttc::QoS;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SITE: &str = "mesero/test";

fn state_topic(table: i64) -> String {
    format!("{SITE}/tables/{table}/state")
}

async fn table(base: &str, id: i64) -> Value {
    get_json(base, &format!("/api/v1/tables/{id}")).await
}

/// The fixture plus `extra` TOML (sensors), with env overrides.
fn config_with(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> mesero::config::Config {
    let mut vars = vec![(
        "MESERO_STORAGE_PATH".to_string(),
        db_path(dir).display().to_string(),
    )];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    mesero::config::Config::from_toml(
        std::path::Path::new("tests/fixtures/test.toml"),
        &format!("{FIXTURE}\n{extra}"),
        vars,
    )
    .expect("config with sensors")
}

/// The next `table.state` event on an SSE stream (other events skipped).
async fn next_table_state(sse: &mut Sse) -> Value {
    loop {
        let (msg, event) = sse.next_json().await;
        if msg.event.as_deref() == Some("table.state") {
            return event;
        }
    }
}

/// The next event of type `kind` on an SSE stream.
async fn next_event(sse: &mut Sse, kind: &str) -> Value {
    loop {
        let (msg, event) = sse.next_json().await;
        if msg.event.as_deref() == Some(kind) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_s_presence_occupies_its_table_after_occupy_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sensors = r#"
[[sensors]]
id = "pir-1"
kind = "mqtt"
table = 1
"#;
    let d = TestDaemon::start(config_with(
        dir.path(),
        sensors,
        &[("MESERO_OCCUPANCY_OCCUPY_AFTER", "300ms")],
    ))
    .await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?tables=1",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let (snap, _) = sse.next_json().await;
    assert_eq!(snap.event.as_deref(), Some("snapshot"));
    let mut dashboard = mqtt::client(d.mqtt, "dashboard", Some(NODE)).await;
    dashboard.subscribe(&state_topic(1)).await;
    assert_eq!(dashboard.json_on(&state_topic(1)).await["state"], "free");

    let mut node = mqtt::client(d.mqtt, "esp32-pir-1", Some(NODE)).await;
    let sent = tokio::time::Instant::now();
    node.publish(
        &format!("{SITE}/sensors/pir-1"),
        "ON",
        QoS::AtLeastOnce,
        false,
    )
    .await;
    let event = next_table_state(&mut sse).await;
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "occupied only after occupancy.occupy_after ({:?})",
        sent.elapsed()
    );
    assert_eq!(event["table"], 1);
    assert_eq!(event["actor"], "sensor:pir-1");
    assert_eq!(
        (event["data"]["from"].as_str(), event["data"]["to"].as_str()),
        (Some("free"), Some("occupied"))
    );

    let state = dashboard.json_on(&state_topic(1)).await;
    assert_eq!(state["state"], "occupied");
    assert_eq!(
        state["seq"], event["seq"],
        "the same change as on the SSE stream"
    );
    let mut late = mqtt::client(d.mqtt, "late", Some(NODE)).await;
    late.subscribe(&state_topic(1)).await;
    let p = late.next_on(&state_topic(1)).await;
    assert!(p.retain, "a later subscriber gets it retained");
    let v: Value = serde_json::from_slice(&p.payload).expect("json");
    assert_eq!(
        (v["state"].clone(), v["seq"].clone()),
        (json!("occupied"), event["seq"].clone())
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_batches_in_every_accepted_form_change_the_right_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A camera per table for tables 1 to 3; table 4 has no mqtt sensor, so
    // the detector's implicit sensor for it takes its entries.
    let sensors: String = (1..=3)
        .map(|t| format!("[[sensors]]\nid = \"cam-{t}\"\nkind = \"mqtt\"\ntable = {t}\n"))
        .collect();
    let d = TestDaemon::start(config_with(
        dir.path(),
        &sensors,
        &[
            ("MESERO_OCCUPANCY_OCCUPY_AFTER", "200ms"),
            ("MESERO_OCCUPANCY_RELEASE_AFTER", "300ms"),
        ],
    ))
    .await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=table.state",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    sse.next_json().await;
    let mut detector = mqtt::client(d.mqtt, "camera-hall", Some(NODE)).await;
    let topic = format!("{SITE}/detections");
    for (payload, table, people) in [
        (r#"[{"table": 1, "people": 2}]"#, 1, 2),
        (r#"[{"mesa": 2, "personas": 3}]"#, 2, 3),
        (
            r#"{"detections": [{"table": 3, "people": 1}, {"mesa": 4, "personas": 2}]}"#,
            3,
            1,
        ),
    ] {
        detector
            .publish(&topic, payload, QoS::AtLeastOnce, false)
            .await;
        let event = next_table_state(&mut sse).await;
        assert_eq!(event["table"], table, "{payload}");
        assert_eq!(event["data"]["to"], "occupied", "{payload}");
        assert_eq!(event["data"]["table"]["people"], people, "{payload}");
        assert_eq!(event["actor"], format!("sensor:cam-{table}"));
    }
    let event = next_table_state(&mut sse).await;
    assert_eq!(
        (event["table"].clone(), event["data"]["to"].clone()),
        (json!(4), json!("occupied"))
    );
    assert_eq!(event["actor"], "sensor:detector:camera-hall:4");
    // people 0 is absence: released after release_after.
    detector
        .publish(
            &topic,
            r#"[{"table": 1, "people": 0}]"#,
            QoS::AtLeastOnce,
            false,
        )
        .await;
    let event = next_table_state(&mut sse).await;
    assert_eq!(
        (event["table"].clone(), event["data"]["to"].clone()),
        (json!(1), json!("free"))
    );

    // Every entry was for a table that exists: nothing counted as bad.
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["malformed"]["detections"], 0);
    assert_eq!(table(&d.base, 4).await["state"], "occupied");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_says_offline_dies_or_goes_silent_faults_its_sensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sensors = r#"
[[sensors]]
id = "pir-1"
kind = "mqtt"
table = 1

[[sensors]]
id = "pir-2"
kind = "mqtt"
table = 2
stale_after = "1s"

[[sensors]]
id = "pir-3"
kind = "mqtt"
table = 3
"#;
    let d = TestDaemon::start(config_with(
        dir.path(),
        sensors,
        &[("MESERO_OCCUPANCY_OCCUPY_AFTER", "200ms")],
    ))
    .await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=sensor,table",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    sse.next_json().await;
    let mut node = mqtt::client(d.mqtt, "esp-1", Some(NODE)).await;
    let will = rumqttc::LastWill::new(
        format!("{SITE}/sensors/pir-3"),
        "offline",
        QoS::AtLeastOnce,
        false,
    );
    let esp3 = mqtt::connect_with_will(d.mqtt, "esp-3", Some(NODE), Some(will))
        .await
        .expect("connects");
    let mut watcher = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    watcher.subscribe(&format!("{SITE}/tables/+/state")).await;
    for _ in 0..4 {
        watcher.next().await;
    }
    for sensor in ["pir-1", "pir-2", "pir-3"] {
        node.publish(
            &format!("{SITE}/sensors/{sensor}"),
            "1",
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    let mut occupied = BTreeSet::new();
    while occupied.len() < 3 {
        occupied.insert(
            next_table_state(&mut sse).await["table"]
                .as_i64()
                .expect("table"),
        );
    }

    // pir-1's node says it is going away; pir-3's node dies and its will
    // says so; pir-2 just goes silent past its stale_after.
    node.publish(
        &format!("{SITE}/sensors/pir-1"),
        "offline",
        QoS::AtLeastOnce,
        false,
    )
    .await;
    drop(esp3);
    let mut faulted = BTreeSet::new();
    while faulted.len() < 3 {
        let fault = next_event(&mut sse, "sensor.fault").await;
        faulted.insert(fault["actor"].as_str().expect("actor").to_string());
    }
    assert_eq!(
        faulted,
        ["sensor:pir-1", "sensor:pir-2", "sensor:pir-3"]
            .map(String::from)
            .into()
    );
    let mut unknown = BTreeSet::new();
    while unknown.len() < 3 {
        let p = watcher.next().await;
        let v: Value = serde_json::from_slice(&p.payload).expect("json");
        if v["state"] == "unknown" {
            unknown.insert(p.topic);
        }
    }
    assert_eq!(unknown, (1..=3).map(state_topic).collect());

    // A fresh reading recovers the sensor and restores the table.
    node.publish(
        &format!("{SITE}/sensors/pir-1"),
        "1",
        QoS::AtLeastOnce,
        false,
    )
    .await;
    let recovered = next_event(&mut sse, "sensor.recovered").await;
    assert_eq!(recovered["actor"], "sensor:pir-1");
    let p = watcher.next_on(&state_topic(1)).await;
    let v: Value = serde_json::from_slice(&p.payload).expect("json");
    assert_eq!(v["state"], "occupied", "the state from before the fault");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_state_and_status_greet_every_subscriber_and_follow_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let head = get_json(&d.base, "/api/v1/snapshot").await["seq"]
        .as_u64()
        .expect("seq");

    let mut sub = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    sub.subscribe(&format!("{SITE}/#")).await;
    let mut states = BTreeMap::new();
    let mut online = false;
    while states.len() < 4 || !online {
        let p = sub.next().await;
        assert!(p.retain, "{} arrives as a retained message", p.topic);
        if p.topic == format!("{SITE}/status") {
            assert_eq!(&p.payload[..], b"online");
            online = true;
        } else {
            let v: Value = serde_json::from_slice(&p.payload).expect("state JSON");
            states.insert(p.topic.clone(), v);
        }
    }
    for id in 1..=4 {
        let v = &states[&state_topic(id)];
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "exactly state, people, since, seq: {v}");
        assert_eq!(v["state"], "free");
        assert_eq!(v["people"], Value::Null);
        assert!(v["since"].is_string());
        assert!(v["seq"].as_u64().expect("seq") <= head);
    }

    // A staff change over HTTP: the event and the new retained state.
    let (status, body) = put_state(&d.base, Some(STAFF), 2, r#"{"state": "occupied"}"#).await;
    assert_eq!(status, 200, "{body}");
    let seq = body["seq"].as_u64().expect("seq");
    let event = sub.json_on(&format!("{SITE}/events/table.state")).await;
    assert_eq!(event["seq"], seq);
    assert_eq!(event["table"], 2);
    assert_eq!(event["data"]["to"], "occupied");
    let p = sub.next_on(&state_topic(2)).await;
    assert!(!p.retain, "live subscribers get it as a normal message");
    let v: Value = serde_json::from_slice(&p.payload).expect("json");
    assert_eq!(v["state"], "occupied");
    assert_eq!(v["seq"], seq);

    // Someone who connects afterwards still gets the new state, retained.
    let mut late = mqtt::client(d.mqtt, "late", Some(NODE)).await;
    late.subscribe(&state_topic(2)).await;
    let p = late.next_on(&state_topic(2)).await;
    assert!(p.retain);
    let v: Value = serde_json::from_slice(&p.payload).expect("json");
    assert_eq!(
        (v["state"].clone(), v["seq"].clone()),
        (json!("occupied"), json!(seq))
    );

    let s = stats(&d.base).await;
    assert_eq!(s["connections"]["mqtt"], 2);
    assert!(s["mqtt"]["messages_out"].as_u64().expect("out") >= 8);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_brings_back_retained_state_and_online_before_any_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut host = mqtt::client(d.mqtt, "tablet-1", Some(HOST)).await;
    host.publish(
        &format!("{SITE}/tables/3/set"),
        r#"{"state": "occupied"}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    assert_eq!(table(&d.base, 3).await["state"], "occupied");
    let last = get_json(&d.base, "/api/v1/snapshot").await["seq"]
        .as_u64()
        .expect("seq");
    let mut status = mqtt::client(d.mqtt, "status-watch", Some(NODE)).await;
    status.subscribe(&format!("{SITE}/status")).await;
    assert_eq!(&status.next().await.payload[..], b"online");
    d.stop().await;
    let p = status.next().await;
    assert_eq!(
        (&p.payload[..], p.topic.as_str()),
        (&b"offline"[..], "mesero/test/status"),
        "a stop publishes offline to connected subscribers"
    );
    drop((host, status));

    // A new process on the same database: the broker's memory is empty,
    // so everything retained comes from SQLite.
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut sub = mqtt::client(d.mqtt, "after-restart", Some(NODE)).await;
    sub.subscribe(&format!("{SITE}/#")).await;
    let mut seen = BTreeMap::new();
    while seen.len() < 5 {
        let p = sub.next().await;
        assert!(
            p.retain,
            "{} was not retained: something changed before the retained state was back",
            p.topic
        );
        seen.insert(p.topic.clone(), p.payload.clone());
    }
    assert_eq!(&seen["mesero/test/status"][..], b"online");
    let three: Value = serde_json::from_slice(&seen[&state_topic(3)]).expect("json");
    assert_eq!(three["state"], "occupied");
    let head = get_json(&d.base, "/api/v1/snapshot").await["seq"].clone();
    assert_eq!(
        three["seq"], head,
        "re-published at start, as of the head then (nothing changed since)"
    );
    assert_eq!(
        head.as_u64(),
        Some(last + 1),
        "the only event since the restart is system.started"
    );
    for id in [1, 2, 4] {
        let v: Value = serde_json::from_slice(&seen[&state_topic(id)]).expect("json");
        assert_eq!(v["state"], "free");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_unknown_user_and_anonymous_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    assert_eq!(
        mqtt::refused(d.mqtt, "a", Some(("host", "node-pw"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        mqtt::refused(d.mqtt, "b", Some(("ghost", "host-pw"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        mqtt::refused(d.mqtt, "c", None).await,
        ConnectReturnCode::NotAuthorized,
        "anonymous clients are refused unless mqtt.allow_anonymous"
    );
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["connections_refused"], 3);
    assert_eq!(s["connections"]["mqtt"], 0);
    let metrics = http()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("mesero_mqtt_connections_refused_total 3"),
        "{metrics}"
    );
    d.stop().await;

    // Allowed anonymous clients are viewers; a wrong password is still no.
    let d = TestDaemon::start(config(
        dir.path(),
        &[("MESERO_MQTT_ALLOW_ANONYMOUS", "true")],
    ))
    .await;
    let mut anon = mqtt::client(d.mqtt, "anon", None).await;
    anon.subscribe(&state_topic(1)).await;
    assert_eq!(anon.json_on(&state_topic(1)).await["state"], "free");
    assert_eq!(
        mqtt::refused(d.mqtt, "d", Some(("host", "wrong"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_staff_may_set_tables_and_nobody_may_write_the_daemons_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let before = get_json(&d.base, "/api/v1/snapshot").await;
    let mut watcher = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    watcher.subscribe(&format!("{SITE}/tables/+/state")).await;
    for _ in 0..4 {
        watcher.next().await;
    }

    // A viewer's set command is acknowledged (MQTT 3.1.1 has no "no") but
    // changes nothing; neither do spoofed daemon messages.
    let mut node = mqtt::client(d.mqtt, "node-7", Some(NODE)).await;
    node.publish(
        &format!("{SITE}/tables/1/set"),
        r#"{"state": "occupied"}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    node.publish(
        &format!("{SITE}/tables/1/set"),
        r#"{"state": "dirty"}"#,
        QoS::ExactlyOnce,
        false,
    )
    .await;
    node.publish(
        &state_topic(4),
        r#"{"state": "occupied", "people": 9, "since": "x", "seq": 1}"#,
        QoS::AtLeastOnce,
        true,
    )
    .await;
    node.publish(&format!("{SITE}/status"), "offline", QoS::AtLeastOnce, true)
        .await;
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["publishes_refused"], 4);
    let after = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(after["seq"], before["seq"], "no event was recorded");
    assert_eq!(after["tables"], before["tables"], "no table changed");

    // Staff can, acknowledged only once committed, recorded as mqtt:<client>.
    let mut host = mqtt::client(d.mqtt, "tablet-2", Some(HOST)).await;
    host.publish(
        &format!("{SITE}/tables/1/set"),
        r#"{"state": "occupied", "hold_minutes": 20}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    let t = table(&d.base, 1).await;
    assert_eq!(t["state"], "occupied", "the change is committed by PUBACK");
    assert!(t["hold_until"].is_string(), "hold_minutes pins the state");
    let events = all_events(&d.base, before["seq"].as_u64().expect("seq")).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], "mqtt:tablet-2");
    host.publish(
        &format!("{SITE}/tables/1/set"),
        r#"{"state": "free"}"#,
        QoS::ExactlyOnce,
        false,
    )
    .await;
    assert_eq!(table(&d.base, 1).await["state"], "free");

    // The watcher saw the staff changes and never the spoofed table 4.
    for want in ["occupied", "free"] {
        let p = watcher.next().await;
        assert_eq!(p.topic, state_topic(1), "only table 1 changed");
        let v: Value = serde_json::from_slice(&p.payload).expect("json");
        assert_eq!(v["state"], want);
    }
    let mut late = mqtt::client(d.mqtt, "late", Some(NODE)).await;
    late.subscribe(&state_topic(4)).await;
    assert_eq!(late.json_on(&state_topic(4)).await["state"], "free");
    late.subscribe(&format!("{SITE}/status")).await;
    assert_eq!(
        &late.next_on(&format!("{SITE}/status")).await.payload[..],
        b"online"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_client_s_will_is_published_unless_it_targets_the_daemon_s_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let mut watcher = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    watcher.subscribe("nodes/#").await;
    watcher.subscribe(&format!("{SITE}/status")).await;
    assert_eq!(
        &watcher.next_on(&format!("{SITE}/status")).await.payload[..],
        b"online"
    );

    let will = |topic: &str| {
        Some(rumqttc::LastWill::new(
            topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ))
    };
    let spoofer = mqtt::connect_with_will(
        d.mqtt,
        "spoofer",
        Some(NODE),
        will(&format!("{SITE}/status")),
    )
    .await
    .expect("connects; the will is dropped");
    let esp = mqtt::connect_with_will(d.mqtt, "esp-3", Some(NODE), will("nodes/esp-3/status"))
        .await
        .expect("connects");
    let clean = mqtt::connect_with_will(d.mqtt, "esp-4", Some(NODE), will("nodes/esp-4/status"))
        .await
        .expect("connects");
    clean.client.disconnect().await.expect("disconnect");
    // Dropping a client kills its connection without DISCONNECT.
    drop(spoofer);
    drop(esp);
    let p = watcher.next().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("nodes/esp-3/status", &b"offline"[..]),
        "only the lost client's will, on its own topic"
    );
    let s = stats_until(&d.base, "the refused will", |s| {
        s["connections"]["mqtt"] == 1
    })
    .await;
    assert_eq!(s["mqtt"]["publishes_refused"], 1);
    let mut late = mqtt::client(d.mqtt, "late", Some(NODE)).await;
    late.subscribe(&format!("{SITE}/status")).await;
    assert_eq!(&late.next().await.payload[..], b"online");
    late.subscribe("nodes/#").await;
    let p = late.next().await;
    assert_eq!((p.topic.as_str(), p.retain), ("nodes/esp-3/status", true));
    late.publish("nodes/barrier", "x", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(
        late.next().await.topic,
        "nodes/barrier",
        "no will from the client that disconnected cleanly"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_counted_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_MQTT_MAX_PAYLOAD", "1024")])).await;
    let before = get_json(&d.base, "/api/v1/snapshot").await;
    let mut node = mqtt::client(d.mqtt, "node-1", Some(NODE)).await;
    let mut host = mqtt::client(d.mqtt, "host-1", Some(HOST)).await;
    let random: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sensor = format!("{SITE}/sensors/pir-1");
    let unknown_sensor = format!("{SITE}/sensors/nobody");
    let sensors: Vec<(&str, Vec<u8>)> = vec![
        (&sensor, random.clone()),
        (&sensor, vec![0xff, 0xfe, 0xfd]),
        (&sensor, b"{\"present\": \"yes\"}".to_vec()),
        (&sensor, b"{\"people\": -2}".to_vec()),
        (&sensor, b"[1, 2]".to_vec()),
        (&unknown_sensor, b"1".to_vec()),
    ];
    for (topic, payload) in &sensors {
        node.publish(topic, payload.clone(), QoS::AtLeastOnce, false)
            .await;
    }
    let detections = format!("{SITE}/detections");
    for payload in [
        random.clone(),
        vec![b'[', 0xc3, 0x28, b']'],
        br#"[{"table": "1", "people": 2}]"#.to_vec(),
        br#"{"detections": {"table": 1}}"#.to_vec(),
        br#"[{"table": 99, "people": 2}]"#.to_vec(),
    ] {
        node.publish(&detections, payload, QoS::AtLeastOnce, false)
            .await;
    }
    for (topic, payload) in [
        (format!("{SITE}/tables/1/set"), random.clone()),
        (format!("{SITE}/tables/1/set"), br#"{"state": 3}"#.to_vec()),
        (
            format!("{SITE}/tables/1/set"),
            br#"{"state": "gone"}"#.to_vec(),
        ),
        (
            format!("{SITE}/tables/1/set"),
            br#"{"state": "free", "x": 1}"#.to_vec(),
        ),
        (
            format!("{SITE}/tables/99/set"),
            br#"{"state": "free"}"#.to_vec(),
        ),
        (
            format!("{SITE}/tables/abc/set"),
            br#"{"state": "free"}"#.to_vec(),
        ),
    ] {
        host.publish(&topic, payload, QoS::AtLeastOnce, false).await;
    }
    let s = stats_until(&d.base, "all malformed payloads counted", |s| {
        s["mqtt"]["malformed"] == json!({"sensors": 6, "detections": 5, "set": 6, "alerts": 0})
    })
    .await;
    assert_eq!(s["mqtt"]["messages_in"], 17);

    // A packet over mqtt.max_payload closes that connection only.
    let mut big = mqtt::client(d.mqtt, "big", Some(NODE)).await;
    big.client
        .publish(&sensor, QoS::AtMostOnce, false, vec![b'1'; 2048])
        .await
        .expect("queue publish");
    big.closed().await;
    // Bytes that are not MQTT at all (packet type 0 does not exist).
    let mut raw = tokio::net::TcpStream::connect(d.mqtt).await.expect("tcp");
    let junk = [&[0x00, 0x02, 0xde, 0xad][..], &random].concat();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &junk)
        .await
        .expect("write");
    let mut rest = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut rest).await;
    let s = stats_until(&d.base, "the bad connections", |s| {
        s["mqtt"]["too_large"] == 1 && s["mqtt"]["protocol_errors"] == 1
    })
    .await;
    assert_eq!(
        s["connections"]["mqtt"], 2,
        "the other clients stay connected"
    );

    // A flood of malformed readings.
    for i in 0..10_000u32 {
        node.client
            .publish(&sensor, QoS::AtMostOnce, false, format!("garbage {i}"))
            .await
            .expect("queue publish");
    }
    stats_until(&d.base, "the flood counted", |s| {
        s["mqtt"]["malformed"]["sensors"] == 10_006
    })
    .await;

    let after = get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(after["seq"], before["seq"], "no event was recorded");
    assert_eq!(after["tables"], before["tables"], "no table changed");
    let metrics = http()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "mesero_mqtt_malformed_total{kind=\"sensors\"} 10006",
        "mesero_mqtt_malformed_total{kind=\"detections\"} 5",
        "mesero_mqtt_malformed_total{kind=\"set\"} 6",
        "mesero_mqtt_too_large_total 1",
        "mesero_mqtt_protocol_errors_total 1",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }

    // Still serving: a valid command from the same clients works.
    host.publish(
        &format!("{SITE}/tables/2/set"),
        r#"{"state": "dirty"}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    assert_eq!(table(&d.base, 2).await["state"], "dirty");
    let mut fresh = mqtt::client(d.mqtt, "fresh", Some(NODE)).await;
    fresh.subscribe(&state_topic(2)).await;
    assert_eq!(fresh.json_on(&state_topic(2)).await["state"], "dirty");
    d.stop().await;
}

/// HA's MQTT discovery schema for a `binary_sensor` (voluptuous schemas in
/// homeassistant/components/mqtt: binary_sensor.py PLATFORM_SCHEMA_MODERN,
/// config.py MQTT_RO_SCHEMA, schemas.py MQTT_ENTITY_COMMON_SCHEMA): every
/// key HA accepts, with the JSON type it must have. HA drops unknown keys
/// silently (REMOVE_EXTRA), so an unknown key here is a bug.
fn ha_binary_sensor_keys() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        // MQTT_BASE / MQTT_RO_SCHEMA
        ("qos", "int"),
        ("encoding", "string"),
        ("state_topic", "string"),
        ("value_template", "string"),
        // binary_sensor
        ("device_class", "string"),
        ("expire_after", "int"),
        ("force_update", "bool"),
        ("name", "string"),
        ("off_delay", "int"),
        ("payload_off", "string"),
        ("payload_on", "string"),
        // MQTT_ENTITY_COMMON_SCHEMA and availability
        ("availability_topic", "string"),
        ("availability_template", "string"),
        ("payload_available", "string"),
        ("payload_not_available", "string"),
        ("availability_mode", "string"),
        ("availability", "list"),
        ("device", "object"),
        ("origin", "object"),
        ("enabled_by_default", "bool"),
        ("entity_category", "string"),
        ("icon", "string"),
        ("json_attributes_topic", "string"),
        ("json_attributes_template", "string"),
        ("object_id", "string"),
        ("unique_id", "string"),
    ])
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A topic HA can subscribe to: non-empty, no wildcards, no NUL.
fn valid_topic(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0'])
}

fn check_ha_config(topic: &str, c: &Value, id: i64) {
    let allowed = ha_binary_sensor_keys();
    let fields = c.as_object().expect("config is an object");
    for (key, value) in fields {
        let want = allowed
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{topic}: {key} is not in HA's binary_sensor schema"));
        assert_eq!(json_type(value), *want, "{topic}: {key} must be a {want}");
    }
    // Required, and what mesero means by it.
    assert_eq!(c["state_topic"], state_topic(id));
    assert!(valid_topic(c["state_topic"].as_str().expect("str")));
    assert_eq!(
        c["device_class"], "occupancy",
        "one of HA's binary_sensor device classes"
    );
    assert_eq!(
        (c["payload_on"].as_str(), c["payload_off"].as_str()),
        (Some("ON"), Some("OFF"))
    );
    assert_eq!(
        c["value_template"],
        "{{ 'ON' if value_json.state == 'occupied' else 'OFF' }}"
    );
    assert_eq!(c["unique_id"], format!("mesero_test_table_{id}_occupancy"));
    assert!((0..=2).contains(&c["qos"].as_i64().expect("qos")));
    assert_eq!(c["json_attributes_topic"], state_topic(id));
    // availability and availability_topic are exclusive in HA's schema.
    assert!(fields.get("availability_topic").is_none());
    assert!(["all", "any", "latest"].contains(&c["availability_mode"].as_str().expect("mode")));
    let availability = c["availability"].as_array().expect("list");
    let allowed_entry: BTreeSet<&str> = [
        "topic",
        "payload_available",
        "payload_not_available",
        "value_template",
    ]
    .into();
    for entry in availability {
        let entry = entry.as_object().expect("availability entry");
        for (key, value) in entry {
            assert!(allowed_entry.contains(key.as_str()), "availability.{key}");
            assert_eq!(json_type(value), "string", "availability.{key}");
        }
        assert!(valid_topic(
            entry["topic"].as_str().expect("topic is required")
        ));
    }
    assert_eq!(availability[0]["topic"], "mesero/test/status");
    assert_eq!(availability[0]["payload_available"], "online");
    assert_eq!(availability[0]["payload_not_available"], "offline");
    assert_eq!(availability[1]["topic"], state_topic(id));
    // Device: at least one identifier, only HA's keys, all strings.
    let device = c["device"].as_object().expect("device");
    let device_keys: BTreeSet<&str> = [
        "identifiers",
        "connections",
        "manufacturer",
        "model",
        "model_id",
        "name",
        "hw_version",
        "serial_number",
        "sw_version",
        "via_device",
        "suggested_area",
        "configuration_url",
    ]
    .into();
    for (key, value) in device {
        assert!(device_keys.contains(key.as_str()), "device.{key}");
        if key != "identifiers" && key != "connections" {
            assert_eq!(json_type(value), "string", "device.{key}");
        }
    }
    let ids = device["identifiers"].as_array().expect("identifiers list");
    assert_eq!(ids, &vec![json!("mesero_test")], "all tables on one device");
    let origin = c["origin"].as_object().expect("origin");
    assert_eq!(origin["name"], "mesero", "origin.name is required");
    for key in origin.keys() {
        assert!(
            ["name", "sw_version", "support_url"].contains(&key.as_str()),
            "origin.{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery_matches_the_binary_sensor_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_MQTT_HOMEASSISTANT", "true")])).await;
    let mut ha = mqtt::client(d.mqtt, "home-assistant", Some(NODE)).await;
    ha.subscribe("homeassistant/#").await;
    let mut configs = BTreeMap::new();
    while configs.len() < 4 {
        let p = ha.next().await;
        assert!(p.retain, "{} is retained", p.topic);
        let c: Value = serde_json::from_slice(&p.payload).expect("config JSON");
        configs.insert(p.topic.clone(), c);
    }
    let mut unique = BTreeSet::new();
    for id in 1..=4 {
        let topic = format!("homeassistant/binary_sensor/mesero_test_table_{id}/occupancy/config");
        let c = configs.get(&topic).unwrap_or_else(|| panic!("no {topic}"));
        // <prefix>/<component>/<node_id>/<object_id>/config with HA's
        // character classes for node and object ids.
        let parts: Vec<&str> = topic.split('/').collect();
        assert!(parts[2..4].iter().all(|p| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }));
        check_ha_config(&topic, c, id);
        assert_eq!(c["name"], format!("Mesa {id}"), "site.language is es");
        unique.insert(c["unique_id"].to_string());
    }
    assert_eq!(unique.len(), 4, "unique ids are unique");

    // HA restarts: its birth message brings every config again.
    let mut ha2 = mqtt::client(d.mqtt, "home-assistant-2", Some(NODE)).await;
    ha2.publish("homeassistant/status", "online", QoS::AtLeastOnce, false)
        .await;
    let mut again = BTreeSet::new();
    while again.len() < 4 {
        let p = ha.next().await;
        if p.topic.ends_with("/config") {
            again.insert(p.topic);
        }
    }

    // A deleted table's entity is removed (empty retained config), a new
    // table gets one.
    let res = http()
        .delete(format!("{}/api/v1/tables/4", d.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    let gone = ha
        .next_on("homeassistant/binary_sensor/mesero_test_table_4/occupancy/config")
        .await;
    assert!(
        gone.payload.is_empty(),
        "an empty config removes the entity"
    );
    let res = http()
        .post(format!("{}/api/v1/tables", d.base))
        .bearer_auth(ADMIN)
        .json(&json!({"id": 7, "number": "7", "zone": "bar"}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let topic = "homeassistant/binary_sensor/mesero_test_table_7/occupancy/config";
    let c = ha.json_on(topic).await;
    check_ha_config(topic, &c, 7);

    // A new subscriber gets what is retained now; its own message after
    // the subscription marks the end of that.
    let mut late = mqtt::client(d.mqtt, "late", Some(NODE)).await;
    late.subscribe("homeassistant/#").await;
    late.publish("homeassistant/status", "offline", QoS::AtLeastOnce, false)
        .await;
    let mut seen = BTreeSet::new();
    loop {
        let p = late.next().await;
        if p.topic == "homeassistant/status" {
            break;
        }
        seen.insert(p.topic);
    }
    assert_eq!(
        seen,
        [1, 2, 3, 7]
            .iter()
            .map(|id| format!(
                "homeassistant/binary_sensor/mesero_test_table_{id}/occupancy/config"
            ))
            .collect(),
        "table 4's config is no longer retained"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_other_mqtt_versions_are_told_so() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let v31: &[u8] = &[
        0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 1, b'x',
    ];
    let v5: &[u8] = &[
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 1, b'y',
    ];
    for connect in [v31, v5] {
        let mut tcp = tokio::net::TcpStream::connect(d.mqtt).await.expect("tcp");
        tcp.write_all(connect).await.expect("write");
        let mut reply = Vec::new();
        tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut reply))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(
            reply,
            [0x20, 2, 0, 1],
            "CONNACK 'unacceptable protocol version', then close"
        );
    }
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["protocol_errors"], 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_mqtt_port_stops_start_up_with_the_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = match mesero::daemon::Daemon::start(
        config(dir.path(), &[("MESERO_MQTT_LISTEN", &addr)]),
        Some(listener),
        Supervision::none(),
    )
    .await
    {
        Ok(_) => panic!("started on a taken port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("mqtt.listen") && err.contains(&addr),
        "the error names the key and address: {err}"
    );
    drop(taken);

    // Off means off: nothing listens, not even on the port the config
    // names (the one just freed).
    let d = mesero::daemon::Daemon::start(
        config(
            dir.path(),
            &[
                ("MESERO_MQTT_ENABLED", "false"),
                ("MESERO_MQTT_LISTEN", &addr),
            ],
        ),
        Some(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        ),
        Supervision::none(),
    )
    .await
    .expect("starts without MQTT");
    assert_eq!(d.mqtt_addr(), None);
    let connect = tokio::net::TcpStream::connect(&addr).await;
    assert_eq!(
        connect.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "a connect to mqtt.listen {addr} with MQTT off is refused: {connect:?}"
    );
    d.stop().await;
}

/// Topic names a hostile peer sends, and whether each breaks the protocol
/// (the connection is closed) or is valid MQTT the broker does not route
/// (acknowledged and dropped).
fn hostile_topics() -> Vec<(Vec<u8>, bool)> {
    vec![
        ("é/x".into(), false),
        ("ñ".into(), false),
        ("€uro".into(), false),
        (b"$SYS/broker/load".to_vec(), false),
        (b"a\nINFO forged".to_vec(), false),
        (vec![b'a'; 65_535], false),
        (vec![0xff, b'/', b'x'], true),
        (vec![b'a', 0xc3], true),
        (b"a/+/b".to_vec(), true),
        (b"a/#".to_vec(), true),
        (b"+".to_vec(), true),
        (b"#".to_vec(), true),
        (Vec::new(), true),
        (b"a\0b".to_vec(), true),
    ]
}

/// Filters a hostile peer subscribes to (the codec itself refuses the ones
/// that are not UTF-8).
fn hostile_filters() -> Vec<Vec<u8>> {
    let mut filters: Vec<Vec<u8>> = [
        "é/x",
        "ñ",
        "€/#",
        "$SYS/#",
        "$share/g/a",
        "a/#/b",
        "a+",
        "a/b#",
        "",
        "a\0b",
        "a\nb",
    ]
    .iter()
    .map(|f| f.as_bytes().to_vec())
    .collect();
    filters.push(vec![b'a'; 65_000]);
    filters
}

/// Subscribes, publishes and receives one message, so the router is shown
/// to be alive (with the test profile a router panic unwinds its thread
/// instead of aborting, and routing just stops).
async fn round_trip(addr: std::net::SocketAddr, tag: &str) {
    let mut sub = mqtt::client(addr, &format!("{tag}-sub"), Some(HOST)).await;
    sub.subscribe("nodes/alive").await;
    let mut publisher = mqtt::client(addr, &format!("{tag}-pub"), Some(NODE)).await;
    publisher
        .publish("nodes/alive", tag, QoS::AtLeastOnce, false)
        .await;
    assert_eq!(
        &sub.next_on("nodes/alive").await.payload[..],
        tag.as_bytes()
    );
    sub.subscribe(&state_topic(1)).await;
    assert!(
        sub.next_on(&state_topic(1)).await.retain,
        "retained state still served"
    );
}

async fn metrics_text(base: &str) -> String {
    http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

async fn healthz(base: &str) -> u16 {
    http()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_topics_filters_and_wills_are_refused_counted_and_routing_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Packets up to 1 MiB, so 64 KiB topics reach the session's screen.
    let d = TestDaemon::start(config(
        dir.path(),
        &[("MESERO_MQTT_MAX_PAYLOAD", "1048576")],
    ))
    .await;
    let mut watcher = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    watcher.subscribe("#").await;
    let topics = hostile_topics();
    let malformed = topics.iter().filter(|(_, m)| *m).count() as u64;
    for (i, (topic, is_malformed)) in topics.iter().enumerate() {
        let (mut c, code) =
            Raw::connect(d.mqtt, &Connect::new(&format!("pub-{i}"), Some(NODE))).await;
        assert_eq!(code, Some(0));
        c.send(&raw::publish(topic, b"1", 1, 1, true, false)).await;
        c.send(&raw::publish(topic, b"1", 0, 0, false, false)).await;
        match c.ping().await {
            None => assert!(is_malformed, "topic {i} closed the connection"),
            Some(before) => {
                assert!(!is_malformed, "topic {i} was let through");
                assert_eq!(before, vec![(0x40, vec![0, 1])], "topic {i}: acknowledged");
            }
        }
    }
    for (i, (topic, is_malformed)) in topics.iter().enumerate() {
        let id = format!("will-{i}");
        let mut connect = Connect::new(&id, Some(NODE));
        connect.will = Some((topic, b"offline", true));
        let (c, code) = Raw::connect(d.mqtt, &connect).await;
        assert_eq!(code, (!is_malformed).then_some(0), "will {i}");
        // Lost without DISCONNECT: a kept will would be published now.
        drop(c);
    }
    let filters = hostile_filters();
    let mut all: Vec<&[u8]> = filters.iter().map(Vec::as_slice).collect();
    all.push(b"ok/#");
    let (mut c, _) = Raw::connect(d.mqtt, &Connect::new("subscriber", Some(NODE))).await;
    c.send(&raw::subscribe(7, &all)).await;
    let mut codes = vec![0x80; filters.len()];
    codes.push(1);
    assert_eq!(c.recv().await, Some((0x90, [vec![0, 7], codes].concat())));
    c.send(&raw::unsubscribe(8, &all)).await;
    assert_eq!(c.recv().await, Some((0xb0, vec![0, 8])), "one UNSUBACK");
    c.send(&raw::unsubscribe(9, &[b"never/subscribed"])).await;
    assert_eq!(
        c.recv().await,
        Some((0xb0, vec![0, 9])),
        "answered all the same"
    );
    c.send(&raw::unsubscribe(10, &[])).await;
    assert_eq!(
        c.until_closed().await,
        vec![],
        "an empty UNSUBSCRIBE is a protocol error"
    );

    // Per topic: its PUBLISHes (two unless the first closed the connection)
    // and its will; per filter: SUBSCRIBE and UNSUBSCRIBE.
    let n = topics.len() as u64;
    let refused = n + (n - malformed) + n + 2 * filters.len() as u64;
    let s = stats_until(&d.base, "every refusal counted", |s| {
        s["mqtt"]["topics_refused"] == refused
    })
    .await;
    assert_eq!(s["mqtt"]["protocol_errors"], 2 * malformed + 1, "{s}");
    let metrics = metrics_text(&d.base).await;
    for line in [
        format!("mesero_mqtt_topics_refused_total {refused}"),
        format!("mesero_mqtt_protocol_errors_total {}", 2 * malformed + 1),
    ] {
        assert!(metrics.contains(&line), "missing {line}:\n{metrics}");
    }
    assert_eq!(healthz(&d.base).await, 200);
    round_trip(d.mqtt, "after-battery").await;
    // The watcher saw only the daemon's topics and the round trip: no
    // hostile publish and no will got through.
    watcher
        .publish("nodes/end", "end", QoS::AtLeastOnce, false)
        .await;
    loop {
        let p = watcher.next().await;
        if p.topic == "nodes/end" {
            break;
        }
        assert!(
            p.topic.starts_with(SITE) || p.topic.starts_with("nodes/alive"),
            "{} got through",
            p.topic
        );
    }
    d.stop().await;
}

/// The release binary aborts on a panic; the test build of the binary
/// unwinds, which kills the router thread: either way, without the screen
/// the daemon stops routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_daemon_survives_a_multibyte_first_character_in_a_topic_and_a_will() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Process::start(dir.path(), &[]);
    let addr = p.mqtt.expect("MQTT address in the log");
    let mut connect = Connect::new("abort-me", Some(NODE));
    connect.will = Some(("ñ".as_bytes(), b"offline", true));
    let (mut c, code) = Raw::connect(addr, &connect).await;
    assert_eq!(code, Some(0));
    c.send(&raw::publish("é/x".as_bytes(), b"1", 0, 0, false, false))
        .await;
    c.send(&raw::publish("ñ".as_bytes(), b"1", 1, 1, true, false))
        .await;
    assert!(c.ping().await.is_some(), "still connected");
    drop(c);
    let mut sub = raw::Connect::new("sub-ñ", Some(NODE));
    sub.clean = true;
    let (mut s, _) = Raw::connect(addr, &sub).await;
    s.send(&raw::subscribe(1, &["é/#".as_bytes(), b"#"])).await;
    assert_eq!(s.recv().await.map(|p| p.0), Some(0x90));
    round_trip(addr, "after-abort").await;
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "the daemon is up"
    );
    assert_eq!(healthz(&p.base).await, 200);
    let stats = stats(&p.base).await;
    assert_eq!(stats["mqtt"]["topics_refused"], 4, "{stats}");
    p.signal("TERM");
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_whose_commit_fails_is_not_acknowledged_and_applies_once_when_resent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let seq = get_json(&d.base, "/api/v1/snapshot").await["seq"]
        .as_u64()
        .expect("seq");
    // Another process holds the database's write lock: the writer's
    // BEGIN IMMEDIATE fails with SQLITE_BUSY after its busy timeout.
    let lock = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let tablet = Connect {
        client_id: b"tablet",
        user: Some(HOST),
        will: None,
        clean: false,
    };
    let set = |dup| {
        raw::publish(
            format!("{SITE}/tables/1/set").as_bytes(),
            br#"{"state": "occupied"}"#,
            1,
            5,
            false,
            dup,
        )
    };
    let (mut c, code) = Raw::connect(d.mqtt, &tablet).await;
    assert_eq!(code, Some(0));
    c.send(&set(false)).await;
    let seen = c.until_closed().await;
    assert!(
        seen.iter().all(|(byte1, _)| *byte1 != 0x40),
        "no PUBACK for a command that was not committed: {seen:?}"
    );
    let s = stats_until(&d.base, "the failed set", |s| s["mqtt"]["set_failed"] == 1).await;
    assert_eq!(s["mqtt"]["malformed"]["set"], 0, "not the client's fault");
    assert!(
        metrics_text(&d.base)
            .await
            .contains("mesero_mqtt_set_failed_total 1")
    );
    assert_eq!(table(&d.base, 1).await["state"], "free");

    // The fault clears; the client reconnects and resends (DUP).
    lock.execute_batch("ROLLBACK").expect("unlock");
    let (mut c, code) = Raw::connect(d.mqtt, &tablet).await;
    assert_eq!(code, Some(0));
    c.send(&set(true)).await;
    let before = c.ping().await.expect("connected");
    assert_eq!(
        before,
        vec![(0x40, vec![0, 5])],
        "acknowledged after the commit"
    );
    assert_eq!(table(&d.base, 1).await["state"], "occupied");
    let changes: Vec<_> = all_events(&d.base, seq)
        .await
        .into_iter()
        .filter(|e| e["type"] == "table.state" && e["table"] == 1)
        .collect();
    assert_eq!(changes.len(), 1, "applied once: {changes:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_set_resent_after_a_reconnect_is_not_applied_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let tablet = Connect {
        client_id: b"tablet-2",
        user: Some(HOST),
        will: None,
        clean: false,
    };
    let set = |dup| {
        raw::publish(
            format!("{SITE}/tables/2/set").as_bytes(),
            br#"{"state": "dirty"}"#,
            2,
            9,
            false,
            dup,
        )
    };
    let (mut c, _) = Raw::connect(d.mqtt, &tablet).await;
    c.send(&set(false)).await;
    assert_eq!(c.recv().await, Some((0x50, vec![0, 9])), "PUBREC");
    // The connection drops before the client saw the PUBREC.
    drop(c);
    assert_eq!(table(&d.base, 2).await["state"], "dirty");
    // Meanwhile the host frees the table.
    let (status, _) = put_state(&d.base, Some(STAFF), 2, r#"{"state": "free"}"#).await;
    assert_eq!(status, 200);
    let (mut c, code) = Raw::connect(d.mqtt, &tablet).await;
    assert_eq!(code, Some(0));
    c.send(&set(true)).await;
    assert_eq!(c.recv().await, Some((0x50, vec![0, 9])), "PUBREC again");
    c.send(&raw::pubrel(9)).await;
    assert_eq!(c.recv().await, Some((0x70, vec![0, 9])), "PUBCOMP");
    assert_eq!(
        table(&d.base, 2).await["state"],
        "free",
        "the resend did not apply the command a second time"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_qos2_in_flight_limit_a_set_is_refused_not_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let (mut c, _) = Raw::connect(d.mqtt, &Connect::new("hoarder", Some(HOST))).await;
    let topic = format!("{SITE}/tables/3/set");
    for pkid in 1..=100u16 {
        c.send(&raw::publish(
            topic.as_bytes(),
            br#"{"state": "occupied"}"#,
            2,
            pkid,
            false,
            false,
        ))
        .await;
        assert_eq!(c.recv().await, Some((0x50, pkid.to_be_bytes().to_vec())));
    }
    c.send(&raw::publish(
        topic.as_bytes(),
        br#"{"state": "dirty"}"#,
        2,
        101,
        false,
        false,
    ))
    .await;
    assert_eq!(c.until_closed().await, vec![], "closed, no PUBREC");
    assert_eq!(table(&d.base, 3).await["state"], "occupied", "not applied");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_never_lock_out_a_login_and_are_closed_after_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_MQTT_CONNECT_TIMEOUT", "3s")])).await;
    let mut silent = Vec::new();
    for _ in 0..80 {
        silent.push(tokio::net::TcpStream::connect(d.mqtt).await.expect("tcp"));
    }
    // 8 per IP may wait for their CONNECT; each newer one closed the oldest.
    stats_until(&d.base, "the silent sockets accepted", |s| {
        s["mqtt"]["pending_evicted"] == 72
    })
    .await;
    let started = std::time::Instant::now();
    let host = mqtt::client(d.mqtt, "dev-staff-like", Some(HOST)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the login waited {:?}",
        started.elapsed()
    );
    for mut s in silent {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest),
        )
        .await;
        assert!(read.is_ok(), "a silent socket stayed open");
    }
    let s = stats_until(&d.base, "the timeouts", |s| {
        s["mqtt"]["connect_timeouts"] == 7
    })
    .await;
    assert_eq!(s["mqtt"]["pending_evicted"], 73, "{s}");
    assert_eq!(s["connections"]["mqtt"], 1, "the host is still connected");
    let metrics = metrics_text(&d.base).await;
    assert!(
        metrics.contains("mesero_mqtt_connect_timeouts_total 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mesero_mqtt_pending_evicted_total 73"),
        "{metrics}"
    );
    drop(host);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_floods_and_subscription_floods_leave_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Process::start(dir.path(), &[]);
    let addr = p.mqtt.expect("MQTT address in the log");
    let start = p.rss_kib();
    let mut host = mqtt::client(addr, "flooder", Some(HOST)).await;
    for i in 0..2000 {
        host.publish(
            &format!("junk/{i}"),
            vec![b'x'; 60_000],
            QoS::AtLeastOnce,
            true,
        )
        .await;
    }
    let after_retained = p.rss_kib();
    let mut accepted = 0;
    let mut attempts = 0;
    for conn in 0..30 {
        let (mut c, _) =
            Raw::connect(addr, &Connect::new(&format!("subs-{conn}"), Some(NODE))).await;
        for batch in 0..10u16 {
            let filters: Vec<Vec<u8>> = (0..100)
                .map(|i| format!("subs/{conn}/{batch}/{i}/#").into_bytes())
                .collect();
            let refs: Vec<&[u8]> = filters.iter().map(Vec::as_slice).collect();
            c.send(&raw::subscribe(batch + 1, &refs)).await;
            let (byte1, body) = c.recv().await.expect("SUBACK");
            assert_eq!(byte1, 0x90);
            accepted += body[2..].iter().filter(|&&code| code != 0x80).count();
            attempts += 100;
        }
    }
    let after_subscriptions = p.rss_kib();
    eprintln!(
        "VmRSS: start {start} KiB, after 2,000 x 60 kB retained {after_retained} KiB, after {attempts} subscriptions ({accepted} accepted) {after_subscriptions} KiB"
    );
    assert_eq!(
        accepted, 100,
        "mqtt.max_subscriptions new filters for the user"
    );
    let s = stats(&p.base).await;
    assert!(s["mqtt"]["retained_refused"].as_u64() >= Some(1900), "{s}");
    assert_eq!(s["mqtt"]["subscriptions_refused"], 30_000 - accepted as u64);
    assert!(
        after_retained < start + 40 * 1024,
        "retained: {start} -> {after_retained} KiB"
    );
    assert!(
        after_subscriptions < after_retained + 40 * 1024,
        "subscriptions: {after_retained} -> {after_subscriptions} KiB"
    );
    round_trip(addr, "after-floods").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_strings_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Process::start(dir.path(), &[]);
    let addr = p.mqtt.expect("MQTT address in the log");
    let (_c, code) =
        Raw::connect(addr, &Connect::new("evil\nFORGED-CLIENT line", Some(NODE))).await;
    assert_eq!(code, Some(2), "identifier rejected");
    let (_c, code) = Raw::connect(
        addr,
        &Connect::new("c\nFORGED-AUTH line", Some(("u\nFORGED-USER line", "bad"))),
    )
    .await;
    assert_eq!(code, Some(4), "bad user name or password");
    let (mut c, _) = Raw::connect(addr, &Connect::new("ok-client", Some(NODE))).await;
    c.send(&raw::publish(
        b"x\nFORGED-TOPIC line",
        b"1",
        1,
        1,
        false,
        false,
    ))
    .await;
    assert!(c.ping().await.is_some());
    let deadline = std::time::Instant::now() + PATIENCE;
    for needle in [
        "FORGED-CLIENT",
        "FORGED-AUTH",
        "FORGED-USER",
        "FORGED-TOPIC",
    ] {
        loop {
            let lines = p.log_lines(needle);
            if !lines.is_empty() {
                for line in lines {
                    assert!(
                        line.contains(&format!("\\n{needle}")),
                        "{needle} logged unescaped: {line:?}"
                    );
                }
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{needle} never logged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The retained state of tables 1..=4 as a new subscriber gets it, as
/// topic → [state, people, since], and the highest seq among them.
async fn retained_states(addr: std::net::SocketAddr, id: &str) -> (BTreeMap<String, Value>, u64) {
    let mut sub = mqtt::client(addr, id, Some(NODE)).await;
    sub.subscribe(&format!("{SITE}/tables/+/state")).await;
    let (mut states, mut seq) = (BTreeMap::new(), 0);
    while states.len() < 4 {
        let p = sub.next().await;
        assert!(p.retain, "{} arrives retained", p.topic);
        let v: Value = serde_json::from_slice(&p.payload).expect("state JSON");
        seq = seq.max(v["seq"].as_u64().expect("seq"));
        states.insert(
            p.topic.clone(),
            json!([v["state"], v["people"], v["since"]]),
        );
    }
    (states, seq)
}

/// `/api/v1/snapshot` in the same form, and its seq.
async fn snapshot_states(base: &str) -> (BTreeMap<String, Value>, u64) {
    let snap = get_json(base, "/api/v1/snapshot").await;
    let states = snap["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let id = t["id"].as_i64().expect("id");
            (
                state_topic(id),
                json!([t["state"], t["people"], t["since"]]),
            )
        })
        .collect();
    (states, snap["seq"].as_u64().expect("seq"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_bridge_that_falls_behind_republishes_the_states_of_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The smallest ring: a writer batch of more than 16 events puts the
    // bridge a ring behind at once (the hub publishes a batch in one go).
    // Hundreds of requests at once from one address fill writer batches.
    let daemon = Process::start(
        dir.path(),
        &[
            ("MESERO_HTTP_CLIENT_QUEUE", "16"),
            ("MESERO_HTTP_MAX_CONNECTIONS_PER_IP", "400"),
        ],
    );
    let addr = daemon.mqtt.expect("MQTT listens");
    let states = ["occupied", "dirty", "free"];
    let mut round = 0;
    while daemon.log_lines("MQTT publisher fell behind").is_empty() {
        assert!(round < 20, "the bridge never fell behind in {round} bursts");
        // Hundreds of changes at once, table 4's one among the first: it is
        // early in a large batch, among the events the bridge misses (the
        // ring keeps the last ones, of tables 1..=3).
        let table4 = states[round % 3];
        let others = |n: usize| (1 + (n % 3) as i64, states[(n / 3) % 3]);
        let burst = (0..60)
            .map(others)
            .chain(std::iter::once((4, table4)))
            .chain((60..300).map(others))
            .map(|(table, state)| {
                let base = daemon.base.clone();
                async move {
                    let body = format!(r#"{{"state":"{state}"}}"#);
                    put_state(&base, Some(STAFF), table, &body).await
                }
            });
        futures_util::future::join_all(burst).await;
        round += 1;
    }
    // The bridge re-published from the hub's tables: a new subscriber's
    // retained states are the snapshot's, once it has caught up.
    let (want, head) = snapshot_states(&daemon.base).await;
    let deadline = std::time::Instant::now() + PATIENCE;
    for attempt in 0.. {
        let (got, seq) = retained_states(addr, &format!("check-{attempt}")).await;
        if got == want {
            // Each retained state holds as of its seq (a table's change, or
            // the hub's head when re-published), never beyond the snapshot.
            assert!(
                seq <= head,
                "retained seq {seq} beyond the snapshot's {head}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retained states {got:?} are not the snapshot's {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_mqtt_max_connections_a_login_is_refused_and_a_freed_slot_admits_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[("MESERO_MQTT_MAX_CONNECTIONS", "2")])).await;
    let first = mqtt::client(d.mqtt, "first", Some(NODE)).await;
    let _second = mqtt::client(d.mqtt, "second", Some(HOST)).await;
    stats_until(&d.base, "two MQTT clients", |s| {
        s["connections"]["mqtt"] == 2
    })
    .await;

    // One over the limit: CONNACK 3 (server unavailable), counted.
    assert_eq!(
        mqtt::refused(d.mqtt, "third", Some(NODE)).await,
        ConnectReturnCode::ServiceUnavailable
    );
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["connections_refused"], 1, "{s}");
    assert_eq!(s["connections"]["mqtt"], 2, "{s}");

    // A client leaves; its slot admits the next one, which works.
    drop(first);
    stats_until(&d.base, "the slot freed", |s| s["connections"]["mqtt"] == 1).await;
    let mut next = mqtt::client(d.mqtt, "next", Some(NODE)).await;
    next.subscribe(&state_topic(1)).await;
    assert!(next.next_on(&state_topic(1)).await.retain);
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["connections_refused"], 1, "{s}");
    d.stop().await;
}
