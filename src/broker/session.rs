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
//! Every topic, filter and client id passes [`super::screen`] first, and
//! retained messages and subscriptions are booked against the limits in
//! [`super::limits`].
//!
//! A refused PUBLISH (role, unsupported topic, retained limit, malformed
//! payload) is still acknowledged per its QoS: MQTT 3.1.1 (§3.3.5) gives a
//! server no way to say no, and dropping the connection would just make
//! the client resend it forever. Three exceptions close the connection
//! instead: a malformed topic (a protocol violation), a QoS 2 publish past
//! [`MAX_QOS2_INFLIGHT`], and a `set` whose commit failed on the daemon's
//! side (no acknowledgement, so the client resends it;
//! `StoreError::is_client_fault` is the rule HTTP's 4xx/5xx follow too).

use super::Shared;
use super::limits::{PendingSlot, Qos2Ids};
use super::screen::{self, Refusal};
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
    SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most QoS 2 publishes of one connection that may await their PUBREL at
/// once (answered here, or held by the router, which keeps each whole
/// until then). MQTT 3.1.1 has no way to say "not now": a client that
/// goes past it is closed, and the publish is neither applied nor routed.
pub const MAX_QOS2_INFLIGHT: usize = 100;

/// The retained-message quota all anonymous clients share.
const ANONYMOUS: &str = "(anonymous)";

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
    /// Closed for the daemon's own failure (a commit failed): the router
    /// is told, no will (the client did not go away), no acknowledgement,
    /// so the client resends.
    Failed,
}

/// Runs one connection to its end. Errors are counted and logged here.
/// `pending` is the socket's place until its CONNECT is read; `deadline`
/// is when that must have happened (`mqtt.connect_timeout`).
pub(super) async fn run(
    shared: Arc<Shared>,
    mut io: Transport,
    peer: SocketAddr,
    pending: PendingSlot,
    deadline: Instant,
    stop: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let first = tokio::select! {
        _ = pending.evicted() => return,
        first = tokio::time::timeout_at(deadline, read_packet(&shared, &mut io, &mut buf)) => first,
    };
    // Past CONNECT (or gone): no longer a pending socket.
    drop(pending);
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
        Err(_) => {
            shared.metrics.mqtt.connect_timeouts.fetch_add(1, Relaxed);
            shared.noise("connect_timeout", |suppressed| {
                tracing::warn!(%peer, timeout = ?shared.mqtt.connect_timeout, suppressed, "MQTT socket sent no CONNECT in time (mqtt.connect_timeout); closed");
            });
            return;
        }
        // Closed, or invalid bytes (counted by `decode`).
        Ok(_) => return,
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
            let user = login.as_ref().map(|l| l.username.as_str());
            shared.noise("auth", |suppressed| {
                tracing::warn!(%peer, ?user, client = ?connect.client_id, suppressed, "MQTT connection refused: bad credentials or anonymous not allowed");
            });
            write_now(&mut io, Packet::ConnAck(refuse(code), None)).await;
            return;
        }
    };
    let client_id = match shared.client_id(&connect.client_id, connect.clean_session) {
        Ok(id) => id,
        Err(why) => {
            shared
                .metrics
                .mqtt
                .connections_refused
                .fetch_add(1, Relaxed);
            shared.noise("client_id", |suppressed| {
                tracing::warn!(%peer, client = ?connect.client_id, suppressed, "MQTT connection refused: {why}");
            });
            write_now(
                &mut io,
                Packet::ConnAck(refuse(ConnectReturnCode::ClientIdentifierNotValid), None),
            )
            .await;
            return;
        }
    };
    let will = match will
        .map(|w| screen_will(&shared, w, &client_id))
        .transpose()
    {
        Ok(will) => will.flatten(),
        Err(()) => {
            // A malformed will topic is a protocol violation (§3.1.2.9).
            shared.metrics.mqtt.protocol_errors.fetch_add(1, Relaxed);
            io.close().await;
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
    let (tx, rx, ack) = match shared.open_link(&client_id, connect.clean_session).await {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(client = ?client_id, error = %e, "the MQTT router refused the connection");
            write_now(
                &mut io,
                Packet::ConnAck(refuse(ConnectReturnCode::ServiceUnavailable), None),
            )
            .await;
            return;
        }
    };
    let own_qos2 = shared.qos2.open(&client_id, connect.clean_session);
    let owner = identity
        .user
        .clone()
        .unwrap_or_else(|| ANONYMOUS.to_string());
    let mut session = Session {
        shared: Arc::clone(&shared),
        io,
        buf,
        out: BytesMut::new(),
        tx,
        rx,
        client_id,
        identity,
        owner,
        will,
        own_qos2,
        routed_qos2: HashSet::new(),
        subscriptions: HashSet::new(),
        subacks: HashMap::new(),
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
        client = ?session.client_id,
        user = ?session.identity.user.as_deref().unwrap_or(ANONYMOUS),
        role = session.identity.role.as_str(),
        %peer,
        "MQTT client connected"
    );
    let end = session.serve(connect.keep_alive, &stop).await;
    shared.metrics.mqtt.clients.fetch_sub(1, Relaxed);
    tracing::info!(client = ?session.client_id, reason = ?end, "MQTT client disconnected");
    session.finish(end).await;
}

/// Screens a CONNECT's will: `Err` for a malformed topic (the connection
/// is closed), `Ok(None)` for one that is dropped (unsupported, or on a
/// topic the client may not write).
fn screen_will(shared: &Shared, will: LastWill, client_id: &str) -> Result<Option<LastWill>, ()> {
    match screen::topic_name(&will.topic) {
        Ok(topic) => Ok(shared.will_allowed(topic, client_id).then_some(will)),
        Err(refusal) => {
            shared.refused_topic(client_id, "will", &will.topic, refusal);
            match refusal {
                Refusal::Malformed(_) => Err(()),
                Refusal::Unsupported(_) => Ok(None),
            }
        }
    }
}

impl Shared {
    /// Counts and logs (rate-limited, escaped) a name the screen refused.
    fn refused_topic(&self, client_id: &str, what: &'static str, name: &[u8], refusal: Refusal) {
        self.metrics.mqtt.topics_refused.fetch_add(1, Relaxed);
        // At most this much of the name is logged.
        const SHOWN: usize = 80;
        let shown = String::from_utf8_lossy(name.get(..SHOWN).unwrap_or(name));
        self.noise("topic", |suppressed| {
            tracing::warn!(client = ?client_id, what, name = ?shown, bytes = name.len(), suppressed, "MQTT topic refused: {}", refusal.reason());
        });
    }
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
    /// Whose retained quota this client's retained messages use.
    owner: String,
    /// Screened at CONNECT.
    will: Option<LastWill>,
    /// QoS 2 packet ids this session answered itself (set commands and
    /// refused publishes), whose PUBREL must not reach the router; shared
    /// with later sessions of a persistent client.
    own_qos2: Qos2Ids,
    /// QoS 2 packet ids routed and not yet released: the router holds each
    /// publish until its PUBREL.
    routed_qos2: HashSet<u16>,
    /// Filters this connection subscribed, against
    /// `mqtt.max_subscriptions`.
    subscriptions: HashSet<String>,
    /// SUBSCRIBEs of which some filters were refused here: per packet id,
    /// which positions get 0x80 when the router's SUBACK for the rest
    /// comes back.
    subacks: HashMap<u16, Vec<bool>>,
}

fn lock(ids: &Qos2Ids) -> std::sync::MutexGuard<'_, HashSet<u16>> {
    ids.lock().unwrap_or_else(|p| p.into_inner())
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
                    tracing::info!(client = ?self.client_id, "MQTT keep-alive expired");
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
                other => match outgoing(other) {
                    // Answered by `on_unsubscribe` (the router answers
                    // only filters that were subscribed, once each).
                    Some(Packet::UnsubAck(..)) | None => {}
                    Some(Packet::SubAck(ack, _)) => {
                        let ack = self.merge_suback(ack);
                        self.queue(Packet::SubAck(ack, None));
                    }
                    Some(packet) => self.queue(packet),
                },
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
            tracing::warn!(client = ?self.client_id, error = ?e, "cannot encode an MQTT packet; dropped");
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
            Packet::PubRel(rel, _) => {
                if self.routed_qos2.remove(&rel.pkid) {
                    return self.forward(Packet::PubRel(rel, None)).await;
                }
                // Ours, or unknown (§4.3.3: answered all the same; the
                // router would release some other held publish, or drop
                // the connection).
                lock(&self.own_qos2).remove(&rel.pkid);
                self.queue(Packet::PubComp(
                    PubComp {
                        pkid: rel.pkid,
                        reason: PubCompReason::Success,
                    },
                    None,
                ));
                Ok(())
            }
            Packet::Subscribe(subscribe, _) => self.on_subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe, _) => self.on_unsubscribe(unsubscribe).await,
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
            tracing::warn!(client = ?self.client_id, suppressed, "{what}; connection closed");
        });
        End::Lost
    }

    /// Screens a SUBSCRIBE: refused filters get 0x80, the rest go to the
    /// router, whose SUBACK is merged back in order ([`Self::merge_suback`]).
    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), End> {
        let pkid = subscribe.pkid;
        let mut refused = Vec::with_capacity(subscribe.filters.len());
        let mut kept = Vec::new();
        for f in subscribe.filters {
            let ok = match screen::filter(&f.path) {
                Err(refusal) => {
                    self.shared.refused_topic(
                        &self.client_id,
                        "subscribe",
                        f.path.as_bytes(),
                        refusal,
                    );
                    false
                }
                Ok(()) => self.subscription_room(&f.path),
            };
            refused.push(!ok);
            if ok {
                kept.push(f);
            }
        }
        if kept.is_empty() {
            let return_codes = vec![SubscribeReasonCode::Failure; refused.len()];
            self.queue(Packet::SubAck(SubAck { pkid, return_codes }, None));
            return Ok(());
        }
        if refused.contains(&true) {
            self.subacks.insert(pkid, refused);
        }
        let filters = kept;
        self.forward(Packet::Subscribe(Subscribe { pkid, filters }, None))
            .await
    }

    /// Whether this connection may add `filter` (`mqtt.max_subscriptions`
    /// per connection, and [`super::limits::Filters`]); counts it if so.
    fn subscription_room(&mut self, filter: &str) -> bool {
        if self.subscriptions.contains(filter) {
            return true;
        }
        let limit = if self.subscriptions.len() >= self.shared.mqtt.max_subscriptions {
            Some("mqtt.max_subscriptions")
        } else {
            self.shared.filters.admit(&self.owner, filter).err()
        };
        if let Some(limit) = limit {
            self.shared
                .metrics
                .mqtt
                .subscriptions_refused
                .fetch_add(1, Relaxed);
            self.shared.noise("subscriptions", |suppressed| {
                tracing::warn!(client = ?self.client_id, suppressed, "MQTT subscription refused: {limit} reached");
            });
            return false;
        }
        self.subscriptions.insert(filter.to_string());
        true
    }

    /// The router's SUBACK with 0x80 put back where filters were refused.
    fn merge_suback(&mut self, ack: SubAck) -> SubAck {
        let Some(refused) = self.subacks.remove(&ack.pkid) else {
            return ack;
        };
        let mut routed = ack.return_codes.into_iter();
        let return_codes = refused
            .into_iter()
            .map(|refused| match refused {
                true => SubscribeReasonCode::Failure,
                false => routed.next().unwrap_or(SubscribeReasonCode::Failure),
            })
            .collect();
        SubAck {
            pkid: ack.pkid,
            return_codes,
        }
    }

    /// Screens an UNSUBSCRIBE and answers it here: the router acknowledges
    /// only filters that were subscribed, once per filter, so a client
    /// unsubscribing anything else would wait forever.
    async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Result<(), End> {
        if unsubscribe.filters.is_empty() {
            return Err(self.protocol_error("MQTT UNSUBSCRIBE without filters (§3.10.3)"));
        }
        let pkid = unsubscribe.pkid;
        let mut filters = Vec::new();
        for f in unsubscribe.filters {
            match screen::filter(&f) {
                Ok(()) => {
                    self.subscriptions.remove(&f);
                    filters.push(f);
                }
                Err(refusal) => {
                    self.shared
                        .refused_topic(&self.client_id, "unsubscribe", f.as_bytes(), refusal)
                }
            }
        }
        if !filters.is_empty() {
            self.forward(Packet::Unsubscribe(Unsubscribe { pkid, filters }, None))
                .await?;
        }
        self.queue(Packet::UnsubAck(
            UnsubAck {
                pkid,
                reasons: Vec::new(),
            },
            None,
        ));
        Ok(())
    }

    async fn on_publish(&mut self, publish: Publish) -> Result<(), End> {
        self.shared.metrics.mqtt.messages_in.fetch_add(1, Relaxed);
        let topic = match screen::topic_name(&publish.topic) {
            Ok(t) => t.to_string(),
            Err(refusal) => {
                self.shared
                    .refused_topic(&self.client_id, "publish", &publish.topic, refusal);
                return match refusal {
                    Refusal::Malformed(why) => Err(self.protocol_error(why)),
                    Refusal::Unsupported(_) => self.ack_own(&publish),
                };
            }
        };
        let (qos, pkid) = qos_and_pkid(&publish);
        if qos == 2 {
            // A resend (its PUBREC was lost): answered, never applied or
            // routed twice.
            if lock(&self.own_qos2).contains(&pkid) {
                return self.ack_own(&publish);
            }
            if self.routed_qos2.contains(&pkid) {
                self.queue(pubrec(pkid));
                return Ok(());
            }
            if lock(&self.own_qos2).len() + self.routed_qos2.len() >= MAX_QOS2_INFLIGHT {
                return Err(self.protocol_error(
                    "MQTT client over MAX_QOS2_INFLIGHT QoS 2 publishes awaiting PUBREL; not applied",
                ));
            }
        }
        let inbound = self.shared.topics.inbound(&topic);
        match inbound {
            Inbound::Set(raw_id) => return self.on_set(raw_id, &topic, &publish).await,
            Inbound::DaemonOwned => {
                self.refuse(&topic, "only the daemon publishes on this topic");
                return self.ack_own(&publish);
            }
            _ => {}
        }
        // The router drops a topic's retained message on any empty
        // payload; a non-empty retained one needs room.
        if publish.payload.is_empty() {
            self.shared.retained.clear(&topic);
        } else if publish.retain {
            if let Err(why) = self.retain(&inbound, &topic, publish.payload.len()) {
                self.shared
                    .metrics
                    .mqtt
                    .retained_refused
                    .fetch_add(1, Relaxed);
                self.shared.noise("retained", |suppressed| {
                    tracing::warn!(client = ?self.client_id, user = ?self.owner, topic, suppressed, "MQTT retained publish dropped: {why}");
                });
                return self.ack_own(&publish);
            }
        }
        // An empty retained message only clears what the broker keeps; it
        // is not a reading.
        let clearing = publish.retain && publish.payload.is_empty();
        match inbound {
            Inbound::Sensor(sensor) if !clearing => {
                self.on_sensor(sensor, &topic, &publish.payload)
            }
            Inbound::Detections if !clearing => self.on_detections(&topic, &publish.payload),
            Inbound::HomeAssistantStatus if publish.payload.trim_ascii() == b"online" => {
                self.shared.ha_online.notify_one();
            }
            _ => {}
        }
        if qos == 2 {
            self.routed_qos2.insert(pkid);
        }
        self.forward(Packet::Publish(publish, None)).await
    }

    /// Whether this client may leave a retained message of `size` payload
    /// bytes on `topic`; records it if so. Staff and admin may retain on
    /// any routed topic, viewers (sensor nodes, integrations) on any but
    /// detections (a head count is a moment, not a state), anonymous
    /// clients only on sensor topics (a node's last reading or `offline`)
    /// and under `homeassistant/` (a device's discovery config), all
    /// within the quotas of [`super::limits::Retained`].
    fn retain(&self, inbound: &Inbound<'_>, topic: &str, size: usize) -> Result<(), &'static str> {
        let place_ok = match (self.identity.user.is_some(), self.identity.role) {
            (_, Role::Staff | Role::Admin) => true,
            (true, Role::Viewer) => !matches!(inbound, Inbound::Detections),
            (false, _) => {
                matches!(inbound, Inbound::Sensor(_))
                    || topic.starts_with(&format!("{}/", super::topics::HA_PREFIX))
            }
        };
        if !place_ok {
            return Err("this client's role may not retain on this topic");
        }
        self.shared
            .retained
            .keep(&self.owner, topic, topic.len() + size)
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
            tracing::warn!(client = ?self.client_id, topic, error = ?error.to_string(), suppressed, "MQTT reading dropped");
        });
    }

    /// A `set` command: applied, then acknowledged. The QoS 2 resend and
    /// in-flight checks of [`Self::on_publish`] ran before.
    async fn on_set(&mut self, raw_id: &str, topic: &str, publish: &Publish) -> Result<(), End> {
        if self.identity.role < Role::Staff {
            self.refuse(topic, "set commands need an MQTT user with role staff");
            return self.ack_own(publish);
        }
        let parsed = parse_set(raw_id, &publish.payload).map(|(id, command)| {
            let hold = Hold::from_minutes(command.hold_minutes, SystemTime::now());
            (id, command, hold)
        });
        match parsed {
            Err(e) => self.malformed(PayloadKind::Set, topic, &e.to_string()),
            Ok((_, _, Err(e))) => self.malformed(PayloadKind::Set, topic, &e),
            Ok((id, command, Ok(hold))) => {
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
                        tracing::info!(client = ?self.client_id, table = id, state = %command.state, "table set over MQTT");
                    }
                    // The same rule as HTTP's 4xx: resending cannot help,
                    // so it is acknowledged.
                    Err(e) if e.is_client_fault() => {
                        self.malformed(PayloadKind::Set, topic, &e.to_string());
                    }
                    // Not acknowledged: the client sends it again later.
                    Err(StoreError::Closed) => return Err(End::Shutdown),
                    // HTTP's 5xx: no acknowledgement, and the connection is
                    // closed so the client resends it (QoS 1 and 2).
                    Err(e) => {
                        self.shared.metrics.mqtt.set_failed.fetch_add(1, Relaxed);
                        self.shared.noise("set_failed", |suppressed| {
                            tracing::warn!(client = ?self.client_id, table = id, error = ?e.to_string(), suppressed, "MQTT set command failed; not acknowledged, connection closed");
                        });
                        return Err(End::Failed);
                    }
                }
            }
        }
        // Acknowledged only now, after the commit (SPEC §4).
        self.ack_own(publish)
    }

    /// Acknowledges a PUBLISH the router never sees, per its QoS. Room
    /// for a QoS 2 id was checked by [`Self::on_publish`].
    fn ack_own(&mut self, publish: &Publish) -> Result<(), End> {
        match qos_and_pkid(publish) {
            (1, pkid) => self.queue(Packet::PubAck(
                PubAck {
                    pkid,
                    reason: PubAckReason::Success,
                },
                None,
            )),
            (2, pkid) => {
                lock(&self.own_qos2).insert(pkid);
                self.queue(pubrec(pkid));
            }
            _ => {}
        }
        Ok(())
    }

    fn refuse(&self, topic: &str, why: &str) {
        self.shared
            .metrics
            .mqtt
            .publishes_refused
            .fetch_add(1, Relaxed);
        self.shared.noise("refused", |suppressed| {
            tracing::warn!(client = ?self.client_id, user = ?self.owner, topic, suppressed, "MQTT publish refused: {why}");
        });
    }

    fn malformed(&self, kind: PayloadKind, topic: &str, error: &str) {
        self.shared.metrics.mqtt.malformed(kind);
        self.shared.noise(kind.as_str(), |suppressed| {
            tracing::warn!(kind = kind.as_str(), client = ?self.client_id, topic, error, suppressed, "malformed MQTT payload ignored");
        });
    }

    /// Tells the router the connection is gone (unless it already knows),
    /// sending the client's will first if the connection was lost.
    async fn finish(mut self, end: End) {
        if end == End::Lost {
            if let Some(will) = self.will.take() {
                self.send_will(will).await;
            }
        }
        self.shared.qos2.close(&self.client_id, &self.own_qos2);
        if matches!(end, End::Lost | End::Shutdown | End::Failed) {
            let disconnect = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = self.tx.send(Packet::Disconnect(disconnect, None)).await;
        }
        let _ = self.flush().await;
        self.io.close().await;
    }

    /// Publishes a lost client's will (screened at CONNECT) as if the
    /// client had sent it, retained limits included.
    async fn send_will(&mut self, will: LastWill) {
        let Ok(topic) = screen::topic_name(&will.topic).map(str::to_string) else {
            return;
        };
        let inbound = self.shared.topics.inbound(&topic);
        if will.message.is_empty() {
            self.shared.retained.clear(&topic);
        } else if will.retain {
            if let Err(why) = self.retain(&inbound, &topic, will.message.len()) {
                self.shared
                    .metrics
                    .mqtt
                    .retained_refused
                    .fetch_add(1, Relaxed);
                self.shared.noise("retained", |suppressed| {
                    tracing::warn!(client = ?self.client_id, topic, suppressed, "MQTT retained will dropped: {why}");
                });
                return;
            }
        }
        // A will on the node's own sensor topic (`offline`, or a last
        // reading) counts as if the node had sent it.
        if let Inbound::Sensor(sensor) = inbound {
            self.on_sensor(sensor, &topic, &will.message);
        }
        let publish = Publish::new(will.topic, will.message, will.retain);
        let _ = self.tx.send(Packet::Publish(publish, None)).await;
    }
}

fn pubrec(pkid: u16) -> Packet {
    Packet::PubRec(
        PubRec {
            pkid,
            reason: PubRecReason::Success,
        },
        None,
    )
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
            connect_timeout: Duration::from_secs(5),
            max_pending: 4,
            max_pending_per_ip: 2,
            max_subscriptions: 4,
            max_filters: 4,
            max_retained: 4,
            max_retained_bytes: 4096,
            max_retained_per_user: 2,
            max_retained_bytes_per_user: 1024,
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
