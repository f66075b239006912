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
    connect_with(options, id, user).await
}

/// [`connect`] over MQTT-over-WebSocket (`ws://<addr>/mqtt`, subprotocol
/// `mqtt`, as browsers' MQTT clients connect) to `mqtt.ws_listen`.
pub async fn connect_ws(
    addr: SocketAddr,
    id: &str,
    user: Option<(&str, &str)>,
) -> Result<Client, ConnectionError> {
    let mut options = MqttOptions::new(id, format!("ws://{addr}/mqtt"), addr.port());
    options.set_transport(rumqttc::Transport::Ws);
    connect_with(options, id, user).await
}

async fn connect_with(
    mut options: MqttOptions,
    id: &str,
    user: Option<(&str, &str)>,
) -> Result<Client, ConnectionError> {
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
    refusal(connect(addr, id, user).await, id)
}

/// [`refused`] over WebSocket ([`connect_ws`]).
pub async fn refused_ws(
    addr: SocketAddr,
    id: &str,
    user: Option<(&str, &str)>,
) -> ConnectReturnCode {
    refusal(connect_ws(addr, id, user).await, id)
}

fn refusal(connected: Result<Client, ConnectionError>, id: &str) -> ConnectReturnCode {
    match connected {
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

/// Hand-built MQTT 3.1.1 packets over a raw TCP stream, for what no
/// client library would send (hostile topics, lost acks, silence).
pub mod raw {
    use super::PATIENCE;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// A length-prefixed MQTT string (any bytes).
    pub fn string(bytes: &[u8]) -> Vec<u8> {
        let len = u16::try_from(bytes.len()).expect("at most 65,535 bytes");
        [&len.to_be_bytes()[..], bytes].concat()
    }

    /// A packet: first byte, remaining length, body.
    pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![byte1];
        let mut len = body.len();
        loop {
            let mut b = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                b |= 0x80;
            }
            out.push(b);
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }

    /// A CONNECT's fields.
    #[derive(Clone, Copy)]
    pub struct Connect<'a> {
        pub client_id: &'a [u8],
        pub user: Option<(&'a str, &'a str)>,
        /// Topic, message, retain (QoS 0).
        pub will: Option<(&'a [u8], &'a [u8], bool)>,
        pub clean: bool,
    }

    impl<'a> Connect<'a> {
        pub fn new(client_id: &'a str, user: Option<(&'a str, &'a str)>) -> Connect<'a> {
            Connect {
                client_id: client_id.as_bytes(),
                user,
                will: None,
                clean: true,
            }
        }

        pub fn encode(&self) -> Vec<u8> {
            let mut flags = 0u8;
            if self.clean {
                flags |= 0x02;
            }
            let mut tail = string(self.client_id);
            if let Some((topic, message, retain)) = self.will {
                flags |= 0x04 | if retain { 0x20 } else { 0 };
                tail.extend(string(topic));
                tail.extend(string(message));
            }
            if let Some((name, password)) = self.user {
                flags |= 0xc0;
                tail.extend(string(name.as_bytes()));
                tail.extend(string(password.as_bytes()));
            }
            let body = [string(b"MQTT"), vec![4, flags, 0, 60], tail].concat();
            packet(0x10, &body)
        }
    }

    pub fn publish(
        topic: &[u8],
        payload: &[u8],
        qos: u8,
        pkid: u16,
        retain: bool,
        dup: bool,
    ) -> Vec<u8> {
        let byte1 = 0x30 | (qos << 1) | u8::from(retain) | if dup { 0x08 } else { 0 };
        let mut body = string(topic);
        if qos > 0 {
            body.extend(pkid.to_be_bytes());
        }
        body.extend_from_slice(payload);
        packet(byte1, &body)
    }

    /// SUBSCRIBE at QoS 1 for each filter.
    pub fn subscribe(pkid: u16, filters: &[&[u8]]) -> Vec<u8> {
        let mut body = pkid.to_be_bytes().to_vec();
        for f in filters {
            body.extend(string(f));
            body.push(1);
        }
        packet(0x82, &body)
    }

    pub fn unsubscribe(pkid: u16, filters: &[&[u8]]) -> Vec<u8> {
        let mut body = pkid.to_be_bytes().to_vec();
        for f in filters {
            body.extend(string(f));
        }
        packet(0xa2, &body)
    }

    pub fn pubrel(pkid: u16) -> Vec<u8> {
        packet(0x62, &pkid.to_be_bytes())
    }

    pub const PINGREQ: [u8; 2] = [0xc0, 0];

    /// The first whole packet in `buf` as (first byte, body), removed from
    /// it; `None` while more bytes are needed.
    pub fn take_packet(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
        let mut len = 0usize;
        let mut at = 1;
        loop {
            let b = *buf.get(at)?;
            len |= usize::from(b & 0x7f) << (7 * (at - 1));
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if buf.len() < at + len {
            return None;
        }
        let byte1 = buf[0];
        let body = buf[at..at + len].to_vec();
        buf.drain(..at + len);
        Some((byte1, body))
    }

    /// One raw MQTT-over-WebSocket connection: the test decides how the
    /// bytes are cut into binary frames.
    pub struct Ws {
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        buf: Vec<u8>,
    }

    impl Ws {
        /// Connects to `ws://<addr>/mqtt` asking for the `mqtt` subprotocol.
        pub async fn open(addr: SocketAddr) -> Ws {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
            let mut request = format!("ws://{addr}/mqtt")
                .into_client_request()
                .expect("request");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
            let (ws, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("ws connect");
            Ws {
                ws,
                buf: Vec::new(),
            }
        }

        /// Sends each slice as one binary frame; a closed connection is not
        /// an error here.
        pub async fn send_frames(&mut self, frames: &[&[u8]]) {
            use futures_util::SinkExt as _;
            use tokio_tungstenite::tungstenite::Message;
            for frame in frames {
                let bytes = bytes::Bytes::copy_from_slice(frame);
                if self.ws.send(Message::Binary(bytes)).await.is_err() {
                    return;
                }
            }
        }

        /// Sends a text frame (MQTT over WebSocket is binary only).
        pub async fn send_text(&mut self, text: &str) {
            use futures_util::SinkExt as _;
            use tokio_tungstenite::tungstenite::Message;
            let _ = self.ws.send(Message::text(text)).await;
        }

        /// The next packet as (first byte, body), however the frames cut
        /// it, or `None` once the connection is closed.
        pub async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
            use futures_util::StreamExt as _;
            use tokio_tungstenite::tungstenite::Message;
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                if let Some(packet) = take_packet(&mut self.buf) {
                    return Some(packet);
                }
                let next = tokio::time::timeout_at(deadline, self.ws.next())
                    .await
                    .expect("timed out waiting for the broker");
                match next {
                    Some(Ok(Message::Binary(bytes))) => self.buf.extend_from_slice(&bytes),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                    Some(Ok(_)) => {}
                }
            }
        }
    }

    /// One raw connection.
    pub struct Raw {
        pub stream: TcpStream,
        buf: Vec<u8>,
    }

    impl Raw {
        pub async fn open(addr: SocketAddr) -> Raw {
            Raw {
                stream: TcpStream::connect(addr).await.expect("tcp connect"),
                buf: Vec::new(),
            }
        }

        /// Opens, sends `connect`, and returns the CONNACK's return code
        /// (`None`: closed without one).
        pub async fn connect(addr: SocketAddr, connect: &Connect<'_>) -> (Raw, Option<u8>) {
            let mut raw = Raw::open(addr).await;
            raw.send(&connect.encode()).await;
            let code = match raw.recv().await {
                Some((0x20, body)) => Some(body[1]),
                Some(other) => panic!("expected CONNACK, got {other:?}"),
                None => None,
            };
            (raw, code)
        }

        /// Sends bytes; a closed connection is not an error here (the
        /// broker may close it for a hostile packet).
        pub async fn send(&mut self, bytes: &[u8]) {
            let _ = self.stream.write_all(bytes).await;
        }

        /// The next packet as (first byte, body), or `None` once closed.
        pub async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                if let Some(packet) = self.frame() {
                    return Some(packet);
                }
                let mut chunk = [0u8; 65536];
                let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                    .await
                    .expect("timed out waiting for the broker");
                match read {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }

        fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
            take_packet(&mut self.buf)
        }

        /// Every packet until the broker closes the connection.
        pub async fn until_closed(&mut self) -> Vec<(u8, Vec<u8>)> {
            let mut seen = Vec::new();
            while let Some(p) = self.recv().await {
                seen.push(p);
            }
            seen
        }

        /// Sends PINGREQ and waits for PINGRESP, keeping what came before;
        /// `None` if the connection closed first.
        pub async fn ping(&mut self) -> Option<Vec<(u8, Vec<u8>)>> {
            self.send(&PINGREQ).await;
            let mut before = Vec::new();
            loop {
                match self.recv().await? {
                    (0xd0, _) => return Some(before),
                    other => before.push(other),
                }
            }
        }
    }
}
