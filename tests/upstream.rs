//! The upstream bridge (SPEC §7) against a real Mosquitto started by the
//! test: delivery in order with site and seq, store-and-forward across an
//! outage and a daemon restart, wrong credentials, TLS, and the per-site
//! ACL of docs/MULTI-SITE.md. Skipped with a note without `mosquitto`
//! (tests/common/mosquitto.rs).

mod common;

use common::mosquitto::{self, HQ, Mosquitto, OTHER_SITE, SITE_USER, TestCa};
use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

const SUITE: &str = "tests/upstream.rs";

fn have_mosquitto() -> bool {
    mosquitto::available(SUITE, mosquitto::MOSQUITTO, "mosquitto")
        && mosquitto::available(SUITE, "mosquitto_passwd", "mosquitto")
}

/// The `[bridge]` keys of a test: this site's upstream user, short
/// backoff steps, a fast drain, and no hourly rollups (tests/rollups.rs
/// has them on a manual clock; here an hour turning mid-test would add an
/// event).
fn bridge_env(url: &str, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MESERO_BRIDGE_URL", url.to_string()),
        ("MESERO_BRIDGE_USERNAME", SITE_USER.0.to_string()),
        ("MESERO_BRIDGE_PASSWORD", SITE_USER.1.to_string()),
        ("MESERO_BRIDGE_RECONNECT_MIN", "50ms".to_string()),
        ("MESERO_BRIDGE_RECONNECT_MAX", "400ms".to_string()),
        ("MESERO_BRIDGE_BACKLOG_RATE", "2000".to_string()),
        ("MESERO_BRIDGE_ANALYTICS", "false".to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v.clone()));
    }
    env
}

fn plain(addr: SocketAddr) -> String {
    format!("mqtt://{addr}")
}

fn daemon_config(dir: &std::path::Path, env: &[(&'static str, String)]) -> mesero::config::Config {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config(dir, &pairs)
}

/// One message HQ received.
#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).expect("JSON payload")
    }
}

/// HQ's subscriber (rumqttc), polled in a task that retries while the
/// broker is down; `persistent` keeps its session (and its queued QoS 1
/// messages) in the broker across its restarts.
struct Hq {
    rx: mpsc::UnboundedReceiver<Msg>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hq {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hq {
    async fn subscribe(
        addr: SocketAddr,
        id: &str,
        user: (&str, &str),
        filter: &str,
        persistent: bool,
    ) -> Hq {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options
            .set_credentials(user.0, user.1)
            .set_clean_session(!persistent)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
        let filter = filter.to_string();
        let task = tokio::spawn(async move {
            let mut subscribed = Some(subscribed);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        client
                            .try_subscribe(filter.clone(), QoS::AtLeastOnce)
                            .expect("subscribe");
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(s) = subscribed.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let msg = Msg {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker is down (the test stopped it): rumqttc
                    // reconnects on the next poll; this is its retry pace.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(PATIENCE, is_subscribed)
            .await
            .expect("HQ subscribed in time")
            .expect("subscriber task");
        Hq { rx, task }
    }

    /// Messages until `done` holds for what arrived so far.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&[Msg]) -> bool) -> Vec<Msg> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        while !done(&got) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => got.push(msg),
                Ok(None) => panic!("HQ subscriber ended"),
                Err(_) => panic!("HQ never got {what}; got {} messages", got.len()),
            }
        }
        got
    }
}

fn events_of(msgs: &[Msg], kind: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic == format!("mesero/test/events/{kind}"))
        .map(Msg::json)
        .collect()
}

/// `n` staff changes: tables 1–4 in turn, each toggling occupied/free.
async fn changes(base: &str, n: usize, offset: usize) {
    for i in offset..offset + n {
        let table = (i % 4) as i64 + 1;
        let state = if (i / 4) % 2 == 0 { "occupied" } else { "free" };
        let (status, body) = put_state(
            base,
            Some(STAFF),
            table,
            &format!(r#"{{"state":"{state}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn bridge_until(base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    stats_until(base, what, |s| done(&s["bridge"])).await["bridge"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_changes_reach_hq_in_order_with_site_and_seq() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let mut hq = Hq::subscribe(m.addr, "hq", HQ, "mesero/test/#", false).await;
    let d = TestDaemon::start(daemon_config(dir.path(), &bridge_env(&plain(m.addr), &[]))).await;
    bridge_until(&d.base, "connected", |b| b["connected"] == true).await;
    changes(&d.base, 100, 0).await;

    let got = hq
        .until("100 table.state events", |m| {
            events_of(m, "table.state").len() >= 100
        })
        .await;
    let forwarded = events_of(&got, "table.state");
    let local: Vec<Value> = all_events(&d.base, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "table.state")
        .collect();
    assert_eq!(forwarded.len(), 100);
    assert_eq!(local.len(), 100);
    for (up, here) in forwarded.iter().zip(&local) {
        assert_eq!(up["site"], "test", "{up}");
        let mut without_site = up.clone();
        without_site.as_object_mut().expect("object").remove("site");
        assert_eq!(&without_site, here, "the event JSON as the site has it");
    }
    let seqs: Vec<u64> = forwarded
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );

    // Status and retained state, as on the local broker.
    assert!(
        got.iter()
            .any(|m| m.topic == "mesero/test/status" && m.payload == b"online")
    );
    let last = local[99]["seq"].as_u64();
    let state_of_4 =
        |m: &Msg| m.topic == "mesero/test/tables/4/state" && m.json()["seq"].as_u64() == last;
    let more = if got.iter().any(state_of_4) {
        got.clone()
    } else {
        hq.until("table 4's retained state", |m| m.iter().any(state_of_4))
            .await
    };
    let last_state = more.iter().find(|m| state_of_4(m)).expect("state").json();
    assert_eq!(last_state["state"], local[99]["data"]["to"]);
    let b = bridge_until(&d.base, "everything acknowledged", |b| {
        b["backlog_events"] == 0
    })
    .await;
    assert!(b["acked_seq"].as_u64() >= Some(seqs[99]), "{b}");
    assert!(b["since"].is_string(), "{b}");
    let metrics = http()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("mesero_bridge_connected 1"), "{metrics}");
    assert!(
        metrics.contains("mesero_bridge_backlog_events 0"),
        "{metrics}"
    );
    d.stop().await;
    let got = hq
        .until("offline at stop", |m| {
            m.iter()
                .any(|m| m.topic == "mesero/test/status" && m.payload == b"offline")
        })
        .await;
    assert!(!got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_a_daemon_restart_loses_nothing_and_the_backlog_drains_in_order() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let mut hq = Hq::subscribe(m.addr, "hq-persistent", HQ, "mesero/test/events/#", true).await;
    let env = bridge_env(&plain(m.addr), &[]);
    let d = TestDaemon::start(daemon_config(dir.path(), &env)).await;
    bridge_until(&d.base, "connected", |b| b["connected"] == true).await;
    m.stop();
    bridge_until(&d.base, "the link down", |b| b["connected"] == false).await;
    changes(&d.base, 250, 0).await;
    let b = bridge_until(&d.base, "a backlog", |b| {
        b["backlog_events"].as_u64() >= Some(250)
    })
    .await;
    assert_eq!(b["connected"], false, "{b}");
    d.stop().await;

    // Restarted while the link is still down: the backlog is in SQLite.
    let d = TestDaemon::start(daemon_config(dir.path(), &env)).await;
    let b = bridge_until(&d.base, "the backlog after a restart", |b| {
        b["backlog_events"].as_u64() >= Some(251)
    })
    .await;
    assert_eq!(b["connected"], false, "{b}");
    changes(&d.base, 250, 250).await;
    let b = bridge_until(&d.base, "500 changes waiting", |b| {
        b["backlog_events"].as_u64() >= Some(501) && b["backlog_seconds"].is_u64()
    })
    .await;
    assert_eq!(b["connected"], false, "{b}");

    m.restart();
    let got = hq
        .until("all 500 changes", |m| {
            let seqs: BTreeSet<u64> = events_of(m, "table.state")
                .iter()
                .filter_map(|e| e["seq"].as_u64())
                .collect();
            seqs.len() >= 500
        })
        .await;
    let b = bridge_until(&d.base, "the backlog drained", |b| {
        b["backlog_events"] == 0 && b["connected"] == true
    })
    .await;
    assert_eq!(b["backlog_seconds"], 0, "{b}");

    let local: Vec<u64> = all_events(&d.base, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "table.state")
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(local.len(), 500);
    let received: Vec<u64> = events_of(&got, "table.state")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    let unique: BTreeSet<u64> = received.iter().copied().collect();
    assert_eq!(unique, local.iter().copied().collect(), "no change missing");
    // In seq order; a repeat only where delivery started over after a
    // reconnect (each such boundary is one step back in seq).
    let steps_back = received.windows(2).filter(|w| w[1] <= w[0]).count();
    let reconnects = b["reconnects"].as_u64().expect("reconnects");
    assert!(
        steps_back as u64 <= reconnects,
        "{steps_back} restarts of the sequence for {reconnects} reconnects: {received:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_keep_the_site_serving_and_are_logged_once_per_backoff_step() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let env = bridge_env(
        &plain(m.addr),
        &[("MESERO_BRIDGE_PASSWORD", "not-the-password".to_string())],
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Process::start(dir.path(), &pairs);

    let b = bridge_until(&p.base, "a few failed attempts", |b| {
        b["failures"].as_u64() >= Some(4)
    })
    .await;
    assert_eq!(b["connected"], false, "{b}");
    let why = b["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("refused"), "stats say why: {b}");
    // The site keeps serving.
    let (status, body) = put_state(&p.base, Some(STAFF), 1, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200, "{body}");

    // One log line per failed attempt, each naming the wait that follows.
    let failures = stats(&p.base).await["bridge"]["failures"]
        .as_u64()
        .expect("failures");
    let deadline = std::time::Instant::now() + PATIENCE;
    let lines = loop {
        let lines = p.log_lines("upstream bridge down");
        if lines.len() as u64 >= failures {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "log lines: {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = stats(&p.base).await["bridge"]["failures"]
        .as_u64()
        .expect("failures");
    assert!(
        lines.len() as u64 <= after,
        "{} lines for {after} failures",
        lines.len()
    );
    assert!(lines.iter().all(|l| l.contains("refused")), "{lines:?}");
    let waits: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.split("retry_in_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(waits.len() >= 4, "{lines:?}");
    assert!(
        waits.iter().all(|w| *w <= 400),
        "capped by reconnect_max: {waits:?}"
    );
    assert!(
        waits[..3].windows(2).all(|w| w[0] <= w[1]),
        "the waits grow (exponential backoff): {waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_connects_with_the_test_ca_and_refuses_a_certificate_for_another_name() {
    if !have_mosquitto() || !mosquitto::available(SUITE, "openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::make(&dir.path().join("ca"));
    let good = Mosquitto::start(
        &dir.path().join("good"),
        mosquitto::free_port(),
        &ca.listener("server"),
    );
    let ca_file = ca.ca.display().to_string();
    let env = bridge_env(
        &format!("mqtts://{}", good.addr),
        &[("MESERO_BRIDGE_CA_FILE", ca_file.clone())],
    );
    let d = TestDaemon::start(daemon_config(&dir.path().join("site"), &env)).await;
    bridge_until(&d.base, "connected over TLS", |b| b["connected"] == true).await;
    changes(&d.base, 1, 0).await;
    bridge_until(&d.base, "the change acknowledged", |b| {
        b["backlog_events"] == 0
    })
    .await;
    d.stop().await;

    let wrong = Mosquitto::start(
        &dir.path().join("wrong"),
        mosquitto::free_port(),
        &ca.listener("wrong"),
    );
    let env = bridge_env(
        &format!("mqtts://{}", wrong.addr),
        &[("MESERO_BRIDGE_CA_FILE", ca_file)],
    );
    let d = TestDaemon::start(daemon_config(&dir.path().join("site2"), &env)).await;
    let b = bridge_until(&d.base, "a refused certificate", |b| {
        b["failures"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(b["connected"], false, "{b}");
    let why = b["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(why.contains("certificate"), "{b}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_stops_a_site_from_writing_under_another_sites_prefix() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let mut hq = Hq::subscribe(m.addr, "hq", HQ, "mesero/#", false).await;
    let publish = |user: (&str, &str), topic: &str, payload: &str| {
        let out = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &m.addr.port().to_string()])
            .args([
                "-u", user.0, "-P", user.1, "-q", "1", "-t", topic, "-m", payload,
            ])
            .output()
            .expect("mosquitto_pub");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The other site forges an event under this site's prefix, then
    // writes under its own; this site writes a marker under its own.
    publish(OTHER_SITE, "mesero/test/events/table.state", "forged");
    publish(OTHER_SITE, "mesero/other/status", "online");
    publish(SITE_USER, "mesero/test/status", "online");
    let got = hq
        .until("both sites' own messages", |m| {
            m.iter().any(|m| m.topic == "mesero/other/status")
                && m.iter().any(|m| m.topic == "mesero/test/status")
        })
        .await;
    assert!(
        got.iter().all(|m| m.payload != b"forged"),
        "the forged message was delivered: {got:?}"
    );
    // And a site cannot read HQ's view of the others.
    let mut snoop = Hq::subscribe(m.addr, "snoop", OTHER_SITE, "mesero/test/#", false).await;
    publish(SITE_USER, "mesero/test/status", "online-again");
    hq.until("the second marker", |m| {
        m.iter().any(|m| m.payload == b"online-again")
    })
    .await;
    assert!(
        snoop.rx.try_recv().is_err(),
        "a site read another site's topics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesero_watch_mqtt_follows_a_site_from_the_upstream_broker() {
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let d = TestDaemon::start(daemon_config(dir.path(), &bridge_env(&plain(m.addr), &[]))).await;
    bridge_until(&d.base, "connected", |b| b["connected"] == true).await;
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args(["watch", "--mqtt", &plain(m.addr), "--site", "test"])
        .args(["--username", HQ.0, "--password", HQ.1])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mesero watch --mqtt");
    let (tx, rx) = std::sync::mpsc::channel();
    let (stdout, stderr) = (
        watch.stdout.take().expect("stdout"),
        watch.stderr.take().expect("stderr"),
    );
    for pipe in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let wait_for = |needle: &str| loop {
        let line = rx.recv_timeout(PATIENCE).expect("watch printed a line");
        if line.contains(needle) {
            return line;
        }
    };
    // Subscribed once it says so; the retained status comes first.
    wait_for("following mesero/test/#");
    wait_for("test status online");
    changes(&d.base, 1, 0).await;
    let line = wait_for("table.state");
    assert!(line.starts_with("test #"), "{line}");
    assert!(
        line.contains("table 1 free -> occupied by staff:staff"),
        "{line}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    d.stop().await;
}

/// An alert event recorded straight into the store (no daemon running).
async fn record(store: &mesero::store::Store, n: usize) -> u64 {
    use mesero::domain::{Actor, AlertKind, EventData, Priority};
    let change = mesero::store::Change::Record {
        table: None,
        data: EventData::AlertRaised {
            table: None,
            kind: AlertKind::Custom,
            priority: Priority::Normal,
            message: format!("n = {n}"),
            sensor: Some("upstream".into()),
            alert: None,
        },
    };
    let applied = store.apply(change, Actor::System).await.expect("apply");
    applied.event.expect("an event").seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_unforwarded_events_until_max_backlog_days_then_hq_gets_a_gap() {
    use mesero::domain::Actor;
    use mesero::store::{Change, Store};
    use std::time::SystemTime;
    if !have_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Mosquitto::start(&dir.path().join("mq"), mosquitto::free_port(), "");
    let env = bridge_env(&plain(m.addr), &[]);
    let cfg = daemon_config(dir.path(), &env);

    // Ten events; the upstream acknowledged the first four.
    let metrics = std::sync::Arc::new(mesero::metrics::Metrics::default());
    let hub = mesero::hub::Hub::new(cfg.http.client_queue, std::sync::Arc::clone(&metrics));
    let store = Store::open(&cfg, hub, metrics).expect("open store");
    for n in 1..=10 {
        record(&store, n).await;
    }
    let forwarded = Change::Forwarded { through: 4 };
    store
        .apply(forwarded, Actor::System)
        .await
        .expect("watermark");
    assert_eq!(store.bridged_through().await.expect("read"), Some(4));
    let day = Duration::from_secs(86_400);
    let everything = SystemTime::now() + day;
    let prune = |unforwarded_before| Change::Prune {
        before: everything,
        unforwarded_before: Some(unforwarded_before),
    };

    // Past storage.retention_days but younger than max_backlog_days:
    // only what the upstream acknowledged goes.
    store
        .apply(prune(SystemTime::now() - 7 * day), Actor::System)
        .await
        .expect("prune");
    assert_eq!(store.pruned_through().await.expect("read"), 4);

    // Events 5–7 outlived max_backlog_days: deleted, a gap.
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    conn.execute(
        "UPDATE events SET ts = '2000-01-01T00:00:00.000Z' WHERE seq <= 7",
        [],
    )
    .expect("age events");
    store
        .apply(prune(SystemTime::now() - 7 * day), Actor::System)
        .await
        .expect("prune");
    assert_eq!(store.pruned_through().await.expect("read"), 7);
    store.shutdown().await;

    // The daemon's bridge sends the gap, then 8–10 and on.
    let mut hq = Hq::subscribe(m.addr, "hq", HQ, "mesero/test/#", false).await;
    let d = TestDaemon::start(cfg).await;
    let got = hq
        .until("the gap and event 10", |m| {
            m.iter()
                .any(|m| m.topic.ends_with("/events/alert.raised") && m.json()["seq"] == 10)
        })
        .await;
    let gap = got
        .iter()
        .find(|m| m.topic == "mesero/test/gap")
        .expect("a gap message")
        .json();
    assert_eq!(gap, serde_json::json!({"from_seq": 5, "to_seq": 7}));
    let seqs: Vec<u64> = events_of(&got, "alert.raised")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [8, 9, 10]);
    let b = bridge_until(&d.base, "drained", |b| b["backlog_events"] == 0).await;
    assert_eq!(b["gap_events"], 3, "{b}");
    d.stop().await;
}
