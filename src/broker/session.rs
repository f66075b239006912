//! One MQTT client connection, from CONNECT to close.
//!
//! The session authenticates the client itself, then opens a link into
//! rumqttd's router for it and relays packets both ways. Every PUBLISH
//! from the client passes [`Session::on_publish`] first, which is where
//! roles are enforced (rumqttd has no per-topic access control, and the
//! messages its router hands out do not say who published them):
//! - `tables/<id>/set` is applied here, with the client's identity, only
//!   for staff and admin users, and acknowledged after the commit; it is
//!   not routed to subscribers.
//! - Topics only the daemon writes (status, table state, events, its Home
//!   Assistant configs) are refused for every client.
//! - Sensor readings and detections are handed to the occupancy input and
//!   also routed, so `mosquitto_sub` can watch what the nodes send.
//!
//! A refused or malformed PUBLISH is still acknowledged per its QoS:
//! MQTT 3.1.1 (§3.3.5) gives a server no way to say no, and dropping the
//! connection would just make the client resend it forever.

use super::Shared;
use super::topics::{Inbound, SensorMessage, parse_detections, parse_sensor, parse_set};
use super::transport::Transport;
use crate::auth::Role;
use crate::config::MqttConfig;
use crate::domain::Actor;
use crate::engine::InputError;
use crate::metrics::PayloadKind;
use crate::sensors::Reading;
use crate::store::{Change, Guard, Hold, StoreError};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill, Login, Packet,
    Protocol as _, PubAck, PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, Publish,
};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A new connection must send CONNECT within this time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most QoS 2 publishes the session answers itself that may await their
/// PUBREL at once; a client exceeding it is broken or hostile.
const MAX_OWN_INFLIGHT: usize = 100;

/// Outgoing packets are written in batches of at most this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

/// A client that takes no bytes for this long is disconnected (its socket
/// buffer is full: it stopped reading). Meanwhile the router holds at most
/// a bounded queue for it, and nobody else waits.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// At shutdown, pending outgoing messages (the `offline` status) are
/// written until none has arrived for this long...
const FLUSH_QUIET: Duration = Duration::from_millis(50);
/// ...or this much time has passed.
const FLUSH_MAX: Duration = Duration::from_millis(500);

/// Who a connected client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The MQTT username, `None` for an anonymous client.
    pub user: Option<String>,
    pub role: Role,
}

/// Checks a CONNECT's credentials against `mqtt.users`. Anonymous clients
/// (no username) get the viewer role when `mqtt.allow_anonymous`; a wrong
/// password is refused even then.
pub fn authenticate(
    mqtt: &MqttConfig,
    login: Option<&Login>,
) -> Result<Identity, ConnectReturnCode> {
    let Some(login) = login else {
        return if mqtt.allow_anonymous {
            Ok(Identity {
                user: None,
                role: Role::Viewer,
            })
        } else {
            Err(ConnectReturnCode::NotAuthorized)
        };
    };
    let digest: [u8; 32] = Sha256::digest(login.password.as_bytes()).into();
    // Every user is compared, so the time taken does not tell which part
    // (name or password) or which user matched.
    let mut found = None;
    for user in &mqtt.users {
        let name = user.name.as_bytes().ct_eq(login.username.as_bytes());
        if bool::from(name & user.sha256.ct_eq(&digest)) {
            found = Some(Identity {
                user: Some(user.name.clone()),
                role: user.role,
            });
        }
    }
    found.ok_or(ConnectReturnCode::BadUserNamePassword)
}

/// Why a session ended; decides what the router is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT (already relayed; no will).
    Clean,
    /// The router dropped the link (session taken over, or it closed the
    /// connection itself): it already forgot this connection.
    Router,
    /// The daemon is stopping: the router is told, no will.
    Shutdown,
    /// Network error, keep-alive expired, bad packet: the will is sent.
    Lost,
}

/// Runs one connection to its end. Errors are counted and logged here.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut io: Transport,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let first =
        tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&shared, &mut io, &mut buf)).await;
    let (connect, will, login) = match first {
        Ok(Ok(Some(Packet::Connect(connect, _, will, _, login)))) => (connect, will, login),
        Ok(Err(Invalid::Version)) => {
            let refuse = ConnAck {
                session_present: false,
                code: ConnectReturnCode::RefusedProtocolVersion,
            };
            write_now(&mut io, Packet::ConnAck(refuse, None)).await;
            return;
        }
        Ok(Ok(Some(_))) => {
            shared.metrics.mqtt.protocol_errors.fetch_add(1, Relaxed);
            shared.noise("protocol", |suppressed| {
                tracing::warn!(%peer, suppressed, "MQTT connection did not start with CONNECT");
            });
            return;
        }
        // Closed, timed out, or invalid bytes (counted by `decode`).
        _ => return,
    };
    let refuse = |code| ConnAck {
        session_present: false,
        code,
    };
    let identity = match authenticate(&shared.mqtt, login.as_ref()) {
        Ok(identity) => identity,
        Err(code) => {
            shared
                .metrics
                .mqtt
                .connections_refused
                .fetch_add(1, Relaxed);
            let user = login.as_ref().map(|l| l.username.clone());
            shared.noise("auth", |suppressed| {
                tracing::warn!(%peer, ?user, client = %connect.client_id, suppressed, "MQTT connection refused: bad credentials or anonymous not allowed");
            });
            write_now(&mut io, Packet::ConnAck(refuse(code), None)).await;
            return;
        }
    };
    let client_id = match shared.client_id(&connect.client_id, connect.clean_session) {
        Some(id) => id,
        None => {
            shared
                .metrics
                .mqtt
                .connections_refused
                .fetch_add(1, Relaxed);
            write_now(
                &mut io,
                Packet::ConnAck(refuse(ConnectReturnCode::ClientIdentifierNotValid), None),
            )
            .await;
            return;
        }
    };
    let Some(_slot) = shared.connected_slot() else {
        shared
            .metrics
            .mqtt
            .connections_refused
            .fetch_add(1, Relaxed);
        shared.noise("full", |suppressed| {
            tracing::warn!(%peer, max = shared.mqtt.max_connections, suppressed, "MQTT connection refused: mqtt.max_connections reached");
        });
        write_now(
            &mut io,
            Packet::ConnAck(refuse(ConnectReturnCode::ServiceUnavailable), None),
        )
        .await;
        return;
    };
    let will = will.filter(|w| shared.will_allowed(w, &client_id));
    let (tx, rx, ack) = match shared.open_link(&client_id, connect.clean_session).await {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(client = %client_id, error = %e, "the MQTT router refused the connection");
            write_now(
                &mut io,
                Packet::ConnAck(refuse(ConnectReturnCode::ServiceUnavailable), None),
            )
            .await;
            return;
        }
    };
    let mut session = Session {
        shared: Arc::clone(&shared),
        io,
        buf,
        out: BytesMut::new(),
        tx,
        rx,
        client_id,
        identity,
        will,
        own_qos2: HashSet::new(),
    };
    if let Some(packet) = outgoing(ack) {
        session.queue(packet);
    }
    if session.flush().await.is_err() {
        session.finish(End::Lost).await;
        return;
    }
    shared.metrics.mqtt.clients.fetch_add(1, Relaxed);
    tracing::info!(
        client = %session.client_id,
        user = session.identity.user.as_deref().unwrap_or("(anonymous)"),
        role = session.identity.role.as_str(),
        %peer,
        "MQTT client connected"
    );
    let end = session.serve(connect.keep_alive, &stop).await;
    shared.metrics.mqtt.clients.fetch_sub(1, Relaxed);
    tracing::info!(client = %session.client_id, reason = ?end, "MQTT client disconnected");
    session.finish(end).await;
}

/// Reads one whole packet (for CONNECT); `Ok(None)` when the peer closed.
async fn read_packet(
    shared: &Shared,
    io: &mut Transport,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, Invalid> {
    loop {
        if let Some(packet) = shared.decode(buf)? {
            return Ok(Some(packet));
        }
        match io.read(buf).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ok(None),
        }
    }
}

/// Writes a single packet outside a session (refusals), best effort.
async fn write_now(io: &mut Transport, packet: Packet) {
    let mut out = BytesMut::new();
    if V4.write(packet, &mut out).is_ok() {
        let _ = io.write(out.freeze()).await;
    }
    io.close().await;
}

/// Bytes that are not MQTT 3.1.1, or a packet over `mqtt.max_payload`
/// (already counted and logged): the connection is closed.
pub(super) enum Invalid {
    /// A CONNECT for another MQTT version (3.1, 5): answered with
    /// "unacceptable protocol version", which clients understand (many
    /// then retry with 3.1.1).
    Version,
    Other,
}

impl Shared {
    /// The next whole packet in `buf`, `None` if more bytes are needed.
    pub(super) fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, Invalid> {
        use rumqttd::protocol::Error;
        match V4.read_mut(buf, self.mqtt.max_payload) {
            Ok(packet) => Ok(Some(packet)),
            Err(Error::InsufficientBytes(_)) => Ok(None),
            Err(Error::PayloadSizeLimitExceeded(size)) => {
                self.metrics.mqtt.too_large.fetch_add(1, Relaxed);
                self.noise("too_large", |suppressed| {
                    tracing::warn!(
                        size,
                        max = self.mqtt.max_payload,
                        suppressed,
                        "MQTT packet over mqtt.max_payload; connection closed"
                    );
                });
                Err(Invalid::Other)
            }
            Err(e) => {
                self.metrics.mqtt.protocol_errors.fetch_add(1, Relaxed);
                self.noise("protocol", |suppressed| {
                    tracing::warn!(error = ?e, suppressed, "invalid MQTT packet (only MQTT 3.1.1 is spoken); connection closed");
                });
                match e {
                    Error::InvalidProtocol | Error::InvalidProtocolLevel(_) => {
                        Err(Invalid::Version)
                    }
                    _ => Err(Invalid::Other),
                }
            }
        }
    }
}

/// The packet a router notification becomes on the wire, if any. Every
/// packet is rebuilt without MQTT 5 properties: this is a 3.1.1 listener,
/// and rumqttd's v4 encoder refuses (panics on) properties.
fn outgoing(notification: Notification) -> Option<Packet> {
    let packet = match notification {
        Notification::Forward(forward) => Packet::Publish(forward.publish, None),
        Notification::DeviceAck(ack) => ack.into(),
        _ => return None,
    };
    Some(match packet {
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(p, _) => Packet::PubAck(p, None),
        Packet::PubRec(p, _) => Packet::PubRec(p, None),
        Packet::PubRel(p, _) => Packet::PubRel(p, None),
        Packet::PubComp(p, _) => Packet::PubComp(p, None),
        Packet::SubAck(p, _) => Packet::SubAck(p, None),
        Packet::UnsubAck(p, _) => Packet::UnsubAck(p, None),
        Packet::ConnAck(p, _) => Packet::ConnAck(p, None),
        Packet::PingResp(p) => Packet::PingResp(p),
        _ => return None,
    })
}

/// QoS and packet id of a PUBLISH (rumqttd keeps these fields private;
/// its own serialisation has them in the first three bytes).
fn qos_and_pkid(publish: &Publish) -> (u8, u16) {
    let mut head = publish.clone();
    head.payload = Bytes::new();
    let head = head.serialize();
    match head.get(..3) {
        Some(&[byte1, hi, lo]) => ((byte1 >> 1) & 0b11, u16::from_be_bytes([hi, lo])),
        _ => (0, 0),
    }
}

struct Session {
    shared: Arc<Shared>,
    io: Transport,
    /// Bytes read from the client, not yet a whole packet.
    buf: BytesMut,
    /// Encoded packets waiting to be written.
    out: BytesMut,
    tx: LinkTx,
    rx: LinkRx,
    client_id: String,
    identity: Identity,
    will: Option<LastWill>,
    /// QoS 2 packet ids this session answered itself (set commands and
    /// refused publishes), whose PUBREL must not reach the router.
    own_qos2: HashSet<u16>,
}

impl Session {
    async fn serve(&mut self, keep_alive: u16, stop: &CancellationToken) -> End {
        // MQTT §3.1.2.10: one and a half keep-alive periods of silence end
        // the connection; 0 means the client opted out.
        let idle = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)) * 3 / 2);
        let mut deadline = idle.map(|d| Instant::now() + d);
        loop {
            loop {
                match self.shared.decode(&mut self.buf) {
                    Ok(Some(packet)) => {
                        if let Err(end) = self.on_packet(packet).await {
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return End::Lost,
                }
            }
            if self.flush().await.is_err() {
                return End::Lost;
            }
            let expired = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {
                    self.drain_for_shutdown().await;
                    return End::Shutdown;
                }
                notification = self.rx.next() => match notification {
                    Ok(Some(n)) => {
                        if let Err(end) = self.on_notification(n).await {
                            return end;
                        }
                    }
                    Ok(None) => {}
                    Err(_) => return End::Router,
                },
                read = self.io.read(&mut self.buf) => match read {
                    Ok(true) => deadline = idle.map(|d| Instant::now() + d),
                    Ok(false) | Err(_) => return End::Lost,
                },
                _ = expired => {
                    tracing::info!(client = %self.client_id, "MQTT keep-alive expired");
                    return End::Lost;
                }
            }
        }
    }

    /// Queues a router notification and whatever else is already waiting,
    /// so a burst goes out in few writes.
    async fn on_notification(&mut self, first: Notification) -> Result<(), End> {
        let mut next = Some(first);
        while let Some(n) = next.take() {
            match n {
                // The router paused this link because its buffer filled up;
                // it resumes only when asked (everything before this is
                // already queued here).
                Notification::Unschedule => {
                    if self.rx.wake().await.is_err() {
                        return Err(End::Router);
                    }
                }
                Notification::Disconnect(..) => return Err(End::Router),
                other => {
                    if let Some(packet) = outgoing(other) {
                        self.queue(packet);
                    }
                }
            }
            if self.out.len() < WRITE_BATCH {
                next = match self.rx.next().now_or_never() {
                    Some(Ok(n)) => n,
                    Some(Err(_)) => return Err(End::Router),
                    None => None,
                };
            }
        }
        self.flush().await.map_err(|_| End::Lost)
    }

    /// At shutdown: writes what the router still sends (the daemon's
    /// `offline` status, published just before) until it goes quiet.
    async fn drain_for_shutdown(&mut self) {
        let until = Instant::now() + FLUSH_MAX;
        while let Ok(Ok(Some(n))) =
            tokio::time::timeout_at(until.min(Instant::now() + FLUSH_QUIET), self.rx.next()).await
        {
            if self.on_notification(n).await.is_err() {
                return;
            }
        }
    }

    fn queue(&mut self, packet: Packet) {
        if matches!(packet, Packet::Publish(..)) {
            self.shared.metrics.mqtt.messages_out.fetch_add(1, Relaxed);
        }
        if let Err(e) = V4.write(packet, &mut self.out) {
            tracing::warn!(client = %self.client_id, error = ?e, "cannot encode an MQTT packet; dropped");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let bytes = self.out.split().freeze();
        tokio::time::timeout(WRITE_TIMEOUT, self.io.write(bytes))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Relays a packet to the router.
    async fn forward(&mut self, packet: Packet) -> Result<(), End> {
        // The send waits only while the router's queue is full; the router
        // never waits for a link, so this always resumes. It runs on the
        // broker's own thread, never on the daemon's runtime.
        self.tx
            .send(packet)
            .await
            .map(|_| ())
            .map_err(|_| End::Router)
    }

    async fn on_packet(&mut self, packet: Packet) -> Result<(), End> {
        match packet {
            Packet::Publish(publish, _) => self.on_publish(publish).await,
            Packet::PubRel(rel, _) if self.own_qos2.remove(&rel.pkid) => {
                self.queue(Packet::PubComp(
                    PubComp {
                        pkid: rel.pkid,
                        reason: PubCompReason::Success,
                    },
                    None,
                ));
                Ok(())
            }
            Packet::Disconnect(..) => {
                self.forward(Packet::Disconnect(
                    Disconnect {
                        reason_code: DisconnectReasonCode::NormalDisconnection,
                    },
                    None,
                ))
                .await?;
                Err(End::Clean)
            }
            // Packets only a server sends, or a second CONNECT.
            Packet::Connect(..)
            | Packet::ConnAck(..)
            | Packet::SubAck(..)
            | Packet::UnsubAck(..)
            | Packet::PingResp(..) => Err(self.protocol_error("MQTT client sent a server packet")),
            other => self.forward(other).await,
        }
    }

    /// Counts a protocol violation, logs it (rate-limited), and ends the
    /// connection.
    fn protocol_error(&self, what: &'static str) -> End {
        self.shared
            .metrics
            .mqtt
            .protocol_errors
            .fetch_add(1, Relaxed);
        self.shared.noise("protocol", |suppressed| {
            tracing::warn!(client = %self.client_id, suppressed, "{what}; connection closed");
        });
        End::Lost
    }

    async fn on_publish(&mut self, publish: Publish) -> Result<(), End> {
        self.shared.metrics.mqtt.messages_in.fetch_add(1, Relaxed);
        // MQTT §4.7: a topic name is UTF-8, not empty, without wildcards.
        let topic = match std::str::from_utf8(&publish.topic) {
            Ok(t) if !t.is_empty() && !t.contains(['+', '#', '\0']) => t.to_string(),
            _ => return Err(self.protocol_error("MQTT publish to an invalid topic name")),
        };
        // An empty retained message only clears what the broker keeps; it
        // is not a reading.
        let clearing = publish.retain && publish.payload.is_empty();
        match self.shared.topics.inbound(&topic) {
            Inbound::Set(raw_id) => return self.on_set(raw_id, &topic, &publish).await,
            Inbound::DaemonOwned => {
                self.refuse(&topic, "only the daemon publishes on this topic");
                self.ack_own(&publish);
                return Ok(());
            }
            Inbound::Sensor(sensor) if !clearing => {
                self.on_sensor(sensor, &topic, &publish.payload)
            }
            Inbound::Detections if !clearing => self.on_detections(&topic, &publish.payload),
            Inbound::HomeAssistantStatus if publish.payload.trim_ascii() == b"online" => {
                self.shared.ha_online.notify_one();
            }
            _ => {}
        }
        self.forward(Packet::Publish(publish, None)).await
    }

    fn on_sensor(&self, sensor: &str, topic: &str, payload: &[u8]) {
        let input = &self.shared.input;
        let result = match parse_sensor(payload) {
            Ok(SensorMessage::Reading(reading)) => input.reading(sensor, reading),
            Ok(SensorMessage::Offline) => input.fault(sensor, "the node reported offline"),
            Err(e) => return self.malformed(PayloadKind::Sensors, topic, &e.to_string()),
        };
        match result {
            Ok(()) => {}
            Err(InputError::UnknownSensor(_)) => self.malformed(
                PayloadKind::Sensors,
                topic,
                &format!("no sensor {sensor:?} of kind mqtt in the config"),
            ),
            Err(e) => self.dropped(topic, &e),
        }
    }

    /// Each entry is a reading for every `mqtt` sensor of its table (see
    /// [`crate::engine::SensorInput::table_reading`]): present when
    /// people > 0, so the occupy and release delays apply as for any
    /// sensor. Entries for tables without such a sensor are counted as
    /// malformed; the others still apply.
    fn on_detections(&self, topic: &str, payload: &[u8]) {
        let batch = match parse_detections(payload) {
            Ok(batch) => batch,
            Err(e) => return self.malformed(PayloadKind::Detections, topic, &e.to_string()),
        };
        let mut unknown = Vec::new();
        for (table, people) in batch {
            let reading = Reading {
                present: people > 0,
                people: Some(people),
            };
            match self.shared.input.table_reading(table, reading) {
                Ok(()) => {}
                Err(InputError::UnknownTable(_)) => unknown.push(table),
                Err(e) => self.dropped(topic, &e),
            }
        }
        if !unknown.is_empty() {
            self.malformed(
                PayloadKind::Detections,
                topic,
                &format!("no sensor of kind mqtt on tables {unknown:?} (the others were applied)"),
            );
        }
    }

    /// A well-formed reading the engine could not take (its queue is full,
    /// or it stopped): logged, not counted as the node's fault.
    fn dropped(&self, topic: &str, error: &InputError) {
        self.shared.noise("input", |suppressed| {
            tracing::warn!(client = %self.client_id, topic, %error, suppressed, "MQTT reading dropped");
        });
    }

    async fn on_set(&mut self, raw_id: &str, topic: &str, publish: &Publish) -> Result<(), End> {
        let (qos, pkid) = qos_and_pkid(publish);
        if self.identity.role < Role::Staff {
            self.refuse(topic, "set commands need an MQTT user with role staff");
            self.ack_own(publish);
            return Ok(());
        }
        // A QoS 2 resend (its PUBREC was lost) must not apply twice.
        if qos == 2 && self.own_qos2.contains(&pkid) {
            self.ack_own(publish);
            return Ok(());
        }
        match parse_set(raw_id, &publish.payload) {
            Err(e) => self.malformed(PayloadKind::Set, topic, &e.to_string()),
            Ok((id, command)) => {
                let hold = match command.hold_minutes {
                    None | Some(0) => Hold::Clear,
                    Some(m) => Hold::Until(
                        SystemTime::now() + Duration::from_secs(u64::try_from(m).unwrap_or(0) * 60),
                    ),
                };
                let change = Change::SetState {
                    id,
                    state: command.state,
                    hold,
                    people: None,
                    guard: Guard::Staff,
                };
                match self
                    .shared
                    .store
                    .apply(change, Actor::Mqtt(self.client_id.clone()))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(client = %self.client_id, table = id, state = %command.state, "table set over MQTT");
                    }
                    Err(StoreError::TableNotFound(_)) => {
                        self.malformed(PayloadKind::Set, topic, &format!("no table {id}"));
                    }
                    // Not acknowledged: the client sends it again later.
                    Err(StoreError::Closed) => return Err(End::Shutdown),
                    Err(e) => {
                        tracing::warn!(client = %self.client_id, table = id, error = %e, "MQTT set command failed");
                    }
                }
            }
        }
        // Acknowledged only now, after the commit (SPEC §4).
        self.ack_own(publish);
        Ok(())
    }

    /// Acknowledges a PUBLISH the router never sees, per its QoS.
    fn ack_own(&mut self, publish: &Publish) {
        match qos_and_pkid(publish) {
            (1, pkid) => self.queue(Packet::PubAck(
                PubAck {
                    pkid,
                    reason: PubAckReason::Success,
                },
                None,
            )),
            (2, pkid)
                if self.own_qos2.len() < MAX_OWN_INFLIGHT || self.own_qos2.contains(&pkid) =>
            {
                self.own_qos2.insert(pkid);
                self.queue(Packet::PubRec(
                    PubRec {
                        pkid,
                        reason: PubRecReason::Success,
                    },
                    None,
                ));
            }
            _ => {}
        }
    }

    fn refuse(&self, topic: &str, why: &str) {
        self.shared
            .metrics
            .mqtt
            .publishes_refused
            .fetch_add(1, Relaxed);
        let user = self.identity.user.as_deref().unwrap_or("(anonymous)");
        self.shared.noise("refused", |suppressed| {
            tracing::warn!(client = %self.client_id, user, topic, suppressed, "MQTT publish refused: {why}");
        });
    }

    fn malformed(&self, kind: PayloadKind, topic: &str, error: &str) {
        self.shared.metrics.mqtt.malformed(kind);
        self.shared.noise(kind.as_str(), |suppressed| {
            tracing::warn!(kind = kind.as_str(), client = %self.client_id, topic, error, suppressed, "malformed MQTT payload ignored");
        });
    }

    /// Tells the router the connection is gone (unless it already knows),
    /// sending the client's will first if the connection was lost.
    async fn finish(mut self, end: End) {
        if end == End::Lost {
            if let Some(will) = self.will.take() {
                // A will on the node's own sensor topic (`offline`, or a
                // last reading) counts as if the node had sent it.
                let topic = String::from_utf8_lossy(&will.topic).into_owned();
                if let Inbound::Sensor(sensor) = self.shared.topics.inbound(&topic) {
                    self.on_sensor(sensor, &topic, &will.message);
                }
                let publish = Publish::new(will.topic, will.message, will.retain);
                let _ = self.tx.send(Packet::Publish(publish, None)).await;
            }
        }
        if matches!(end, End::Lost | End::Shutdown) {
            let disconnect = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = self.tx.send(Packet::Disconnect(disconnect, None)).await;
        }
        let _ = self.flush().await;
        self.io.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MqttUser;

    fn mqtt(allow_anonymous: bool) -> MqttConfig {
        let user = |name: &str, role, password: &str| MqttUser {
            name: name.into(),
            role,
            sha256: Sha256::digest(password.as_bytes()).into(),
        };
        MqttConfig {
            enabled: true,
            listen: "127.0.0.1:0".parse().expect("addr"),
            ws_listen: None,
            allow_anonymous,
            homeassistant: false,
            max_payload: 1024,
            max_connections: 4,
            segment_bytes: 4096,
            segments: 1,
            users: vec![
                user("node", Role::Viewer, "node-pw"),
                user("host", Role::Staff, "host-pw"),
            ],
        }
    }

    fn login(username: &str, password: &str) -> Login {
        Login {
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn users_authenticate_with_their_role() {
        let cfg = mqtt(false);
        assert_eq!(
            authenticate(&cfg, Some(&login("host", "host-pw"))),
            Ok(Identity {
                user: Some("host".into()),
                role: Role::Staff
            })
        );
        assert_eq!(
            authenticate(&cfg, Some(&login("node", "node-pw"))).map(|i| i.role),
            Ok(Role::Viewer)
        );
    }

    #[test]
    fn wrong_credentials_are_refused_even_when_anonymous_is_allowed() {
        for cfg in [mqtt(false), mqtt(true)] {
            for (u, p) in [
                ("host", "node-pw"),
                ("host", ""),
                ("nobody", "host-pw"),
                ("", "x"),
            ] {
                assert_eq!(
                    authenticate(&cfg, Some(&login(u, p))),
                    Err(ConnectReturnCode::BadUserNamePassword),
                    "{u}/{p}"
                );
            }
        }
    }

    #[test]
    fn anonymous_is_a_viewer_only_when_allowed() {
        assert_eq!(
            authenticate(&mqtt(false), None),
            Err(ConnectReturnCode::NotAuthorized)
        );
        assert_eq!(
            authenticate(&mqtt(true), None),
            Ok(Identity {
                user: None,
                role: Role::Viewer
            })
        );
    }

    #[test]
    fn qos_and_pkid_are_read_from_the_wire_form() {
        let mut buf = BytesMut::new();
        // PUBLISH QoS 1, pkid 0x0102, topic "t", payload "x".
        buf.extend_from_slice(&[0x32, 6, 0, 1, b't', 1, 2, b'x']);
        let Ok(Packet::Publish(p, _)) = V4.read_mut(&mut buf, 100) else {
            panic!("not a publish");
        };
        assert_eq!(qos_and_pkid(&p), (1, 0x0102));
        assert_eq!(qos_and_pkid(&Publish::new("t", "x", false)), (0, 0));
    }
}
