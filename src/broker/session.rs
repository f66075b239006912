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
//!
//! This file has the connection's life: CONNECT and authentication, the
//! relay loop, the end. [`publish`] handles inbound PUBLISH (roles, `set`,
//! readings, retained quotas, the will), [`subscribe`] SUBSCRIBE and
//! UNSUBSCRIBE, [`outbound`] the router link both ways (batched writes,
//! batched wake-ups, the books of [`super::flow`]), and [`wire`] turns
//! bytes into packets and back.

mod outbound;
mod publish;
mod subscribe;
mod wire;

use wire::{Invalid, outgoing, read_packet, write_now};

use super::Shared;
use super::flow::Flow;
use super::limits::{PendingSlot, Qos2Ids};
use super::screen::{self, Refusal};
use super::transport::Transport;
use crate::auth::{Credentials, Role};
use crate::config::MqttConfig;
use bytes::BytesMut;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill, Login, Packet, PubComp,
    PubCompReason,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most QoS 2 publishes of one connection that may await their PUBREL at
/// once (answered here, or held by the router, which keeps each whole
/// until then). MQTT 3.1.1 has no way to say "not now": a client that
/// goes past it is closed, and the publish is neither applied nor routed.
pub const MAX_QOS2_INFLIGHT: usize = 100;

/// The retained-message quota all anonymous clients share.
const ANONYMOUS: &str = "(anonymous)";

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
    Credentials(&mqtt.users)
        .find(Some(&login.username), &login.password)
        .map(|user| Identity {
            user: Some(user.name.clone()),
            role: user.role,
        })
        .ok_or(ConnectReturnCode::BadUserNamePassword)
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
    let mut buf = BytesMut::new();
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
    let flow = shared.flows.open();
    let mut session = Session {
        shared: Arc::clone(&shared),
        flow,
        stop: stop.clone(),
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
        subscribing: HashMap::new(),
        unsent: None,
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

struct Session {
    shared: Arc<Shared>,
    /// What this client has yet to receive ([`super::flow`]).
    flow: Arc<Flow>,
    /// The daemon is stopping (also ends a publish waiting for room).
    stop: CancellationToken,
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
    /// SUBSCRIBEs relayed to the router: per packet id, the filters it was
    /// given, booked in [`Session::flow`] once its SUBACK says granted.
    subscribing: HashMap<u16, Vec<String>>,
    /// The last packet relayed to the router, not yet woken for
    /// ([`Session::forward`]).
    unsent: Option<Packet>,
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
            if let Err(end) = self.send_unsent().await {
                return end;
            }
            if self.buf.is_empty() {
                // A quiet client keeps no read buffer (see `Transport::read`).
                self.buf = BytesMut::new();
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
                    Ok(false) => return End::Lost,
                    Err(e) => {
                        self.shared.read_failed(&e);
                        return End::Lost;
                    }
                },
                _ = self.flow.kicked() => {
                    tracing::info!(client = ?self.client_id, "MQTT subscriber too slow for a publisher; closed");
                    return End::Lost;
                }
                _ = expired => {
                    tracing::info!(client = ?self.client_id, "MQTT keep-alive expired");
                    return End::Lost;
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Result<(), End> {
        match packet {
            Packet::Publish(publish, _) => self.on_publish(publish).await,
            Packet::PubRel(rel, _) => {
                if self.routed_qos2.remove(&rel.pkid) {
                    self.forward(Packet::PubRel(rel, None));
                    return Ok(());
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
                ));
                Err(End::Clean)
            }
            // Packets only a server sends, or a second CONNECT.
            Packet::Connect(..)
            | Packet::ConnAck(..)
            | Packet::SubAck(..)
            | Packet::UnsubAck(..)
            | Packet::PingResp(..) => Err(self.protocol_error("MQTT client sent a server packet")),
            other => {
                self.forward(other);
                Ok(())
            }
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

    /// Tells the router the connection is gone (unless it already knows),
    /// sending the client's will first if the connection was lost.
    async fn finish(mut self, end: End) {
        // What was decoded before the end still goes (a DISCONNECT, too).
        let _ = self.send_unsent().await;
        if end == End::Lost {
            if let Some(will) = self.will.take() {
                self.send_will(will).await;
            }
        }
        self.shared.qos2.close(&self.client_id, &self.own_qos2);
        self.shared.flows.close(&self.flow);
        if matches!(end, End::Lost | End::Shutdown | End::Failed) {
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
    use sha2::{Digest, Sha256};

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
            detection_topics: vec!["mesero/test/detections".into()],
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
}
