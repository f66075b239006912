//! MQTT over WebSocket (`mqtt.ws_listen`, as browsers' MQTT clients
//! connect): a real client (rumqttc's `websocket` transport) subscribing,
//! setting a table as staff and being refused a bad login; then raw
//! frames for what no client library sends: packets cut across frames and
//! coalesced into one, frames over `mqtt.max_payload` and text frames,
//! which are counted and close only their own connection.

mod common;

use common::mqtt::raw::{self, Connect};
use common::mqtt::{self, ConnectReturnCode, HOST, NODE};
use common::*;
use rumqttc::QoS;

const SITE: &str = "mesero/test";

async fn ws_daemon(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (TestDaemon, std::net::SocketAddr) {
    let mut vars = vec![("MESERO_MQTT_WS_LISTEN", "127.0.0.1:0")];
    vars.extend_from_slice(env);
    let d = TestDaemon::start(config(dir, &vars)).await;
    let ws = d.daemon.mqtt_ws_addr().expect("ws listener");
    (d, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_subscribes_sets_a_table_as_staff_and_is_refused_a_bad_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, ws) = ws_daemon(dir.path(), &[]).await;

    let mut viewer = mqtt::connect_ws(ws, "browser", Some(NODE))
        .await
        .expect("a viewer connects over WebSocket");
    viewer.subscribe(&format!("{SITE}/status")).await;
    let status = viewer.next_on(&format!("{SITE}/status")).await;
    assert_eq!((&status.payload[..], status.retain), (&b"online"[..], true));
    let state = format!("{SITE}/tables/2/state");
    viewer.subscribe(&state).await;
    assert_eq!(viewer.json_on(&state).await["state"], "free");

    let mut host = mqtt::connect_ws(ws, "tablet", Some(HOST))
        .await
        .expect("staff connects over WebSocket");
    host.publish(
        &format!("{SITE}/tables/2/set"),
        r#"{"state":"dirty"}"#,
        QoS::AtLeastOnce,
        false,
    )
    .await;
    assert_eq!(viewer.json_on(&state).await["state"], "dirty");
    let table = get_json(&d.base, "/api/v1/tables/2").await;
    assert_eq!(table["state"], "dirty", "the set is committed: {table}");

    assert_eq!(
        mqtt::refused_ws(ws, "intruder", Some(("host", "node-pw"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        mqtt::refused_ws(ws, "anonymous", None).await,
        ConnectReturnCode::NotAuthorized
    );
    stats_until(&d.base, "two refused, two connected", |s| {
        s["mqtt"]["connections_refused"] == 2 && s["connections"]["mqtt"] == 2
    })
    .await;
    d.stop().await;
}

/// A PUBLISH's topic and payload from its first byte and body.
fn publish_of(byte1: u8, body: &[u8]) -> (&str, &[u8]) {
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = std::str::from_utf8(&body[2..2 + len]).expect("topic");
    let id = if byte1 & 0x06 == 0 { 0 } else { 2 };
    (topic, &body[2 + len + id..])
}

/// The fixture's `max_payload` for these tests (the smallest allowed is
/// 256), and the frame cap the WebSocket listener derives from it.
const MAX_PAYLOAD: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_cut_across_frames_arrive_whole_and_frames_over_max_payload_close_only_their_connection()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let max = MAX_PAYLOAD.to_string();
    let (d, ws) = ws_daemon(dir.path(), &[("MESERO_MQTT_MAX_PAYLOAD", &max)]).await;

    // CONNECT cut inside its fixed header, then SUBSCRIBE cut inside its
    // topic with a PINGREQ in the same frame as its second half.
    let mut split = raw::Ws::open(ws).await;
    let connect = Connect::new("split", Some(NODE)).encode();
    split.send_frames(&[&connect[..1], &connect[1..]]).await;
    let connack = split.recv().await.expect("CONNACK");
    assert_eq!(connack, (0x20, vec![0, 0]), "accepted");
    let status = format!("{SITE}/status");
    let subscribe = raw::subscribe(1, &[status.as_bytes()]);
    let tail = [&subscribe[6..], &raw::PINGREQ[..]].concat();
    split.send_frames(&[&subscribe[..6], &tail]).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(split.recv().await.expect("SUBACK, status, PINGRESP"));
    }
    assert_eq!(seen[0], (0x90, vec![0, 1, 1]), "SUBACK first: {seen:?}");
    assert!(seen.contains(&(0xd0, vec![])), "PINGRESP: {seen:?}");
    assert!(
        seen.iter()
            .any(|(b, body)| *b & 0xf0 == 0x30
                && publish_of(*b, body) == (&status[..], &b"online"[..])),
        "the retained status: {seen:?}"
    );

    // A frame over the WebSocket cap (max_payload plus a packet header):
    // the frame is refused before it is buffered whole.
    let mut huge = raw::Ws::open(ws).await;
    huge.send_frames(&[&Connect::new("huge", Some(NODE)).encode()])
        .await;
    assert_eq!(huge.recv().await.map(|p| p.0), Some(0x20));
    let publish = raw::publish(
        b"nodes/big",
        &vec![b'x'; 4 * MAX_PAYLOAD],
        0,
        0,
        false,
        false,
    );
    huge.send_frames(&[&publish]).await;
    assert_eq!(huge.recv().await, None, "closed");
    stats_until(&d.base, "the oversized frame counted", |s| {
        s["mqtt"]["too_large"] == 1
    })
    .await;

    // A frame under the cap whose MQTT packet is over max_payload.
    let mut over = raw::Ws::open(ws).await;
    over.send_frames(&[&Connect::new("over", Some(NODE)).encode()])
        .await;
    assert_eq!(over.recv().await.map(|p| p.0), Some(0x20));
    let publish = raw::publish(b"n", &vec![b'x'; MAX_PAYLOAD + 2], 0, 0, false, false);
    assert!(publish.len() <= MAX_PAYLOAD + 16, "inside the frame cap");
    over.send_frames(&[&publish]).await;
    assert_eq!(over.recv().await, None, "closed");
    let s = stats_until(&d.base, "the oversized packet counted", |s| {
        s["mqtt"]["too_large"] == 2
    })
    .await;
    assert_eq!(s["mqtt"]["protocol_errors"], 0, "{s}");

    // A text frame is not MQTT over WebSocket.
    let mut text = raw::Ws::open(ws).await;
    text.send_frames(&[&Connect::new("text", Some(NODE)).encode()])
        .await;
    assert_eq!(text.recv().await.map(|p| p.0), Some(0x20));
    text.send_text("hello").await;
    assert_eq!(text.recv().await, None, "closed");
    stats_until(&d.base, "the text frame counted", |s| {
        s["mqtt"]["protocol_errors"] == 1
    })
    .await;

    // Only their own connections: the first one and new clients go on.
    split.send_frames(&[&raw::PINGREQ]).await;
    assert_eq!(split.recv().await, Some((0xd0, vec![])));
    let mut after = mqtt::connect_ws(ws, "after", Some(HOST))
        .await
        .expect("a new client connects");
    after.subscribe(&status).await;
    assert_eq!(&after.next_on(&status).await.payload[..], b"online");
    d.stop().await;
}
