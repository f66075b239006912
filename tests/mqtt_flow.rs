//! Backpressure in the embedded broker (src/broker/flow.rs), over real
//! sockets: a QoS 0 publisher as fast as rumqttc goes, against a
//! subscriber that stops reading. rumqttd's router alone would free the
//! oldest part of its log and the subscriber would miss messages; here
//! the publisher is held back (its socket is not read) until the
//! subscriber catches up, and a subscriber that takes nothing for
//! `MAX_HOLD` is closed so publishers go on.

mod common;

use common::mqtt::raw::{self, Connect};
use common::mqtt::{self, NODE};
use common::*;
use rumqttc::QoS;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Far more than every buffer on the way (sockets, the router's log).
const MESSAGES: u64 = 20_000;
const PAYLOAD: usize = 1024;

fn payload(seq: u64) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.resize(PAYLOAD, b'.');
    p
}

/// A subscriber on a raw socket (with a small receive buffer), so the
/// test decides when it reads.
async fn raw_subscriber(d: &TestDaemon, id: &str, filter: &str) -> (TcpStream, Vec<u8>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(8 * 1024).expect("rcvbuf");
    let mut s = socket.connect(d.mqtt).await.expect("connect");
    s.write_all(&Connect::new(id, Some(NODE)).encode())
        .await
        .expect("connect packet");
    // SUBSCRIBE pkid 1 at QoS 0 (`raw::subscribe` asks for QoS 1).
    let mut subscribe = vec![0, 1];
    subscribe.extend(raw::string(filter.as_bytes()));
    subscribe.push(0);
    s.write_all(&raw::packet(0x82, &subscribe))
        .await
        .expect("subscribe");
    let mut buf = Vec::new();
    for wanted in [0x20, 0x90] {
        let (kind, _) = next_packet(&mut s, &mut buf).await.expect("an answer");
        assert_eq!(kind, wanted, "CONNACK, then SUBACK");
    }
    (s, buf)
}

async fn next_packet(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    loop {
        if let Some(packet) = raw::take_packet(buf) {
            return Some(packet);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk))
            .await
            .expect("the broker went quiet")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The sequence number in a raw PUBLISH body (QoS 0: topic, payload).
fn seq_of(body: &[u8]) -> u64 {
    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let p = &body[2 + topic_len..];
    u64::from_be_bytes(p[..8].try_into().expect("8 bytes"))
}

fn spawn_publisher(client: mqtt::Client) -> tokio::task::JoinHandle<mqtt::Client> {
    tokio::spawn(async move {
        for seq in 0..MESSAGES {
            client
                .client
                .publish("load/1", QoS::AtMostOnce, false, payload(seq))
                .await
                .expect("publish");
        }
        client
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_gets_every_qos0_message_in_order_and_holds_the_publisher_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let (mut sub, mut buf) = raw_subscriber(&d, "slow", "load/#").await;
    let publisher = spawn_publisher(mqtt::client(d.mqtt, "fast", Some(NODE)).await);

    // Not reading until the broker says it held the publisher back.
    stats_until(&d.base, "a publish held back", |s| {
        s["mqtt"]["publishes_held"].as_u64() > Some(0)
    })
    .await;
    assert!(
        !publisher.is_finished(),
        "the publisher cannot have sent everything while the subscriber reads nothing"
    );

    let mut expected = 0;
    while expected < MESSAGES {
        let (kind, body) = next_packet(&mut sub, &mut buf)
            .await
            .unwrap_or_else(|| panic!("closed after {expected} messages"));
        if kind & 0xf0 != 0x30 {
            continue;
        }
        assert_eq!(seq_of(&body), expected, "in order, none missing");
        expected += 1;
    }
    let mut client = publisher.await.expect("publisher");
    // Everything sent went through: a QoS 1 barrier comes back acknowledged.
    client
        .publish("load/done", "x", QoS::AtLeastOnce, false)
        .await;
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["slow_subscribers_closed"], 0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_takes_nothing_is_closed_and_publishers_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let (mut stalled, mut buf) = raw_subscriber(&d, "stalled", "load/#").await;
    let mut watcher = mqtt::client(d.mqtt, "watcher", Some(NODE)).await;
    watcher.subscribe("load/done").await;
    let publisher = spawn_publisher(mqtt::client(d.mqtt, "fast", Some(NODE)).await);
    let mut client = publisher.await.expect("every publish went out");
    client
        .publish("load/done", "x", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&watcher.next_on("load/done").await.payload[..], b"x");
    let s = stats(&d.base).await;
    assert_eq!(s["mqtt"]["slow_subscribers_closed"], 1);
    assert!(s["mqtt"]["publishes_held"].as_u64() > Some(0));
    // What was already on its way is readable, then the connection ends.
    while next_packet(&mut stalled, &mut buf).await.is_some() {}
    d.stop().await;
}
