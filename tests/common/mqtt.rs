//! A real MQTT client for the tests (rumqttc), driven in a background task:
//! incoming packets arrive on a channel, and helpers wait for the packet a
//! test needs, keeping any PUBLISH that arrives meanwhile.

use super::PATIENCE;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

pub use rumqttc::ConnectReturnCode;

/// The fixture's MQTT users (tests/fixtures/test.toml).
pub const NODE: (&str, &str) = ("node", "node-pw");
pub const HOST: (&str, &str) = ("host", "host-pw");

pub struct Client {
    pub client: AsyncClient,
    pub id: String,
    incoming: mpsc::UnboundedReceiver<Result<Packet, String>>,
    /// PUBLISHes that arrived while waiting for something else.
    pending: VecDeque<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects as `user` (`None`: anonymous); `Err` if the broker refused.
/// The client does not reconnect: a closed connection ends it.
pub async fn connect(
    addr: SocketAddr,
    id: &str,
    user: Option<(&str, &str)>,
) -> Result<Client, ConnectionError> {
    connect_with_will(addr, id, user, None).await
}

/// [`connect`] with a last will.
pub async fn connect_with_will(
    addr: SocketAddr,
    id: &str,
    user: Option<(&str, &str)>,
    will: Option<rumqttc::LastWill>,
) -> Result<Client, ConnectionError> {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if let Some(will) = will {
        options.set_last_will(will);
    }
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((name, password)) = user {
        options.set_credentials(name, password);
    }
    let (client, mut events) = AsyncClient::new(options, 100);
    loop {
        match tokio::time::timeout(PATIENCE, events.poll())
            .await
            .expect("timed out connecting")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => continue,
            Err(e) => return Err(e),
        }
    }
    let (tx, incoming) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if tx.send(Ok(packet)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(Client {
        client,
        id: id.to_string(),
        incoming,
        pending: VecDeque::new(),
        task,
    })
}

/// Connects and expects success.
pub async fn client(addr: SocketAddr, id: &str, user: Option<(&str, &str)>) -> Client {
    connect(addr, id, user)
        .await
        .unwrap_or_else(|e| panic!("{id} could not connect: {e}"))
}

/// The return code of a refused connection.
pub async fn refused(addr: SocketAddr, id: &str, user: Option<(&str, &str)>) -> ConnectReturnCode {
    match connect(addr, id, user).await {
        Ok(_) => panic!("{id} was let in"),
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("{id} failed otherwise: {e}"),
    }
}

impl Client {
    /// The next packet; panics on timeout or a closed connection.
    async fn packet(&mut self) -> Packet {
        match tokio::time::timeout(PATIENCE, self.incoming.recv()).await {
            Ok(Some(Ok(packet))) => packet,
            Ok(Some(Err(e))) => panic!("{}: connection ended: {e}", self.id),
            Ok(None) => panic!("{}: connection ended", self.id),
            Err(_) => panic!("{}: timed out waiting for a packet", self.id),
        }
    }

    /// Waits until `wanted` matches a packet; PUBLISHes are kept.
    async fn until(&mut self, what: &str, wanted: impl Fn(&Packet) -> bool) {
        loop {
            let packet = self.packet().await;
            if wanted(&packet) {
                return;
            }
            match packet {
                Packet::Publish(p) => self.pending.push_back(p),
                // Acks of the QoS 2 flow (rumqttc answers them itself) and
                // keep-alive.
                Packet::PubRec(_) | Packet::PingResp => {}
                other => panic!("{}: waiting for {what}, got {other:?}", self.id),
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        self.until("SUBACK", |p| matches!(p, Packet::SubAck(_)))
            .await;
    }

    /// Publishes and, for QoS 1 and 2, waits for the broker's final ack.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
        retain: bool,
    ) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .expect("publish");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.until("PUBACK", |p| matches!(p, Packet::PubAck(_)))
                    .await
            }
            QoS::ExactlyOnce => {
                self.until("PUBCOMP", |p| matches!(p, Packet::PubComp(_)))
                    .await
            }
        }
    }

    /// The next PUBLISH received.
    pub async fn next(&mut self) -> Publish {
        if let Some(p) = self.pending.pop_front() {
            return p;
        }
        loop {
            match self.packet().await {
                Packet::Publish(p) => return p,
                Packet::PingResp
                | Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubComp(_)
                | Packet::SubAck(_) => {}
                other => panic!("{}: unexpected {other:?}", self.id),
            }
        }
    }

    /// The next PUBLISH on `topic`, skipping others.
    pub async fn next_on(&mut self, topic: &str) -> Publish {
        loop {
            let p = self.next().await;
            if p.topic == topic {
                return p;
            }
        }
    }

    /// The next PUBLISH on `topic` as JSON.
    pub async fn json_on(&mut self, topic: &str) -> serde_json::Value {
        let p = self.next_on(topic).await;
        serde_json::from_slice(&p.payload)
            .unwrap_or_else(|e| panic!("{topic}: payload is not JSON ({e}): {:?}", p.payload))
    }

    /// Waits until the broker closes the connection; returns the error.
    pub async fn closed(&mut self) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, self.incoming.recv()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return e,
                Ok(None) => return "ended".into(),
                Err(_) => panic!("{}: the broker did not close the connection", self.id),
            }
        }
    }
}
