//! Inbound PUBLISH: where roles are enforced (see the [parent
//! module](super)), `set` commands applied and `alerts/raise` alerts
//! raised (staff only; acknowledged after the commit, like `set`), readings and detections handed
//! to the occupancy input, retained messages booked, and the will of a
//! lost client sent.

use super::wire::{pubrec, qos_and_pkid};
use super::{End, MAX_QOS2_INFLIGHT, Session, lock};
use crate::auth::Role;
use crate::broker::screen::{self, Refusal};
use crate::broker::topics::{
    Inbound, SensorMessage, parse_detections, parse_raise, parse_sensor, parse_set,
};
use crate::domain::Actor;
use crate::engine::InputError;
use crate::metrics::PayloadKind;
use crate::sensors::Reading;
use crate::store::{Change, Guard, Hold, NewAlert, StoreError};
use rumqttd::protocol::{LastWill, Packet, PubAck, PubAckReason, Publish};
use std::sync::atomic::Ordering::Relaxed;

impl Session {
    pub(super) async fn on_publish(&mut self, publish: Publish) -> Result<(), End> {
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
            Inbound::AlertRaise => return self.on_raise(&topic, &publish).await,
            Inbound::DaemonOwned => {
                self.refuse(&topic, "only the daemon publishes on this topic");
                return self.ack_own(&publish);
            }
            _ => {}
        }
        if !self.book_retained(
            &inbound,
            &topic,
            &publish.payload,
            publish.retain,
            "publish",
        ) {
            return self.ack_own(&publish);
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
        self.route(publish).await
    }

    /// Whether this client may leave a retained message of `size` payload
    /// bytes on `topic`; records it if so. Staff and admin may retain on
    /// any routed topic, viewers (sensor nodes, integrations) on any but
    /// detections (a head count is a moment, not a state), anonymous
    /// clients only on sensor topics (a node's last reading or `offline`)
    /// and under `homeassistant/` (a device's discovery config), all
    /// within the quotas of [`crate::broker::limits::Retained`].
    /// The retained books for a message about to be routed (a publish or a
    /// will): the router drops a topic's retained message on any empty
    /// payload, so that frees the entry; a non-empty retained one needs
    /// room. `false`: over a limit, counted and logged, not to be routed.
    fn book_retained(
        &self,
        inbound: &Inbound<'_>,
        topic: &str,
        payload: &[u8],
        retain: bool,
        what: &'static str,
    ) -> bool {
        if payload.is_empty() {
            self.shared.retained.clear(topic);
            return true;
        }
        if !retain {
            return true;
        }
        let Err(why) = self.retain(inbound, topic, payload.len()) else {
            return true;
        };
        self.shared
            .metrics
            .mqtt
            .retained_refused
            .fetch_add(1, Relaxed);
        self.shared.noise("retained", |suppressed| {
            tracing::warn!(client = ?self.client_id, user = ?self.owner, topic, what, suppressed, "MQTT retained message dropped: {why}");
        });
        false
    }

    fn retain(&self, inbound: &Inbound<'_>, topic: &str, size: usize) -> Result<(), &'static str> {
        let place_ok = match (self.identity.user.is_some(), self.identity.role) {
            (_, Role::Staff | Role::Admin) => true,
            (true, Role::Viewer) => !matches!(inbound, Inbound::Detections),
            (false, _) => {
                matches!(inbound, Inbound::Sensor(_))
                    || topic.starts_with(&format!("{}/", crate::broker::topics::HA_PREFIX))
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

    /// Each entry is a reading for every `mqtt` sensor of its table, or
    /// for this client's implicit sensor of the table if it has none (see
    /// [`crate::engine::SensorInput::detection`]): present when people > 0,
    /// so the occupy and release delays apply as for any sensor. Entries
    /// for tables that do not exist are counted as malformed, entries over
    /// the implicit sensor limit as refused; the others still apply.
    fn on_detections(&self, topic: &str, payload: &[u8]) {
        let batch = match parse_detections(payload) {
            Ok(batch) => batch,
            Err(e) => return self.malformed(PayloadKind::Detections, topic, &e.to_string()),
        };
        let mut unknown = Vec::new();
        let mut over_limit = Vec::new();
        for (table, people) in batch {
            let reading = Reading {
                present: people > 0,
                people: Some(people),
            };
            match self.shared.input.detection(&self.client_id, table, reading) {
                Ok(()) => {}
                Err(InputError::NoSuchTable(_)) => unknown.push(table),
                Err(InputError::TooManyImplicit) => over_limit.push(table),
                Err(e) => self.dropped(topic, &e),
            }
        }
        if !unknown.is_empty() {
            self.malformed(
                PayloadKind::Detections,
                topic,
                &format!("no tables {unknown:?} (the other entries were applied)"),
            );
        }
        if !over_limit.is_empty() {
            self.shared
                .metrics
                .mqtt
                .implicit_sensors_refused
                .fetch_add(over_limit.len() as u64, Relaxed);
            self.shared.noise("implicit_sensors", |suppressed| {
                tracing::warn!(client = ?self.client_id, topic, tables = ?over_limit, suppressed, "detections dropped: {}", InputError::TooManyImplicit);
            });
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
            let hold = Hold::from_minutes(command.hold_minutes, self.shared.store.wall().now());
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

    /// An `alerts/raise` command: committed, then acknowledged; the store
    /// merges repeats (the source is `mqtt:<client id>`). Like `on_set`
    /// for the role, the QoS 2 checks and the acknowledgement rules.
    async fn on_raise(&mut self, topic: &str, publish: &Publish) -> Result<(), End> {
        if self.identity.role < Role::Staff {
            self.refuse(topic, "alerts need an MQTT user with role staff");
            return self.ack_own(publish);
        }
        let command = match parse_raise(&publish.payload) {
            Ok(command) => command,
            Err(e) => {
                self.malformed(PayloadKind::Alerts, topic, &e.to_string());
                return self.ack_own(publish);
            }
        };
        let change = Change::RaiseAlert(NewAlert {
            table: command.table,
            kind: command.kind,
            priority: command.priority.unwrap_or(crate::domain::Priority::Normal),
            target: command.target.unwrap_or_default(),
            message: command.message,
        });
        match self
            .shared
            .store
            .apply(change, Actor::Mqtt(self.client_id.clone()))
            .await
        {
            Ok(_) => {
                tracing::info!(client = ?self.client_id, kind = command.kind.as_str(), "alert raised over MQTT");
            }
            // Over the open-alert limits: counted by the store; logged here.
            Err(e @ StoreError::Limit(_)) => {
                self.shared.noise("alerts_refused", |suppressed| {
                    tracing::warn!(client = ?self.client_id, topic, error = ?e.to_string(), suppressed, "MQTT alert refused");
                });
            }
            Err(e) if e.is_client_fault() => {
                self.malformed(PayloadKind::Alerts, topic, &e.to_string());
            }
            Err(StoreError::Closed) => return Err(End::Shutdown),
            Err(e) => {
                self.shared.metrics.mqtt.set_failed.fetch_add(1, Relaxed);
                self.shared.noise("set_failed", |suppressed| {
                    tracing::warn!(client = ?self.client_id, error = ?e.to_string(), suppressed, "MQTT alert failed; not acknowledged, connection closed");
                });
                return Err(End::Failed);
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

    /// Publishes a lost client's will (screened at CONNECT) as if the
    /// client had sent it, retained limits included.
    pub(super) async fn send_will(&mut self, will: LastWill) {
        let Ok(topic) = screen::topic_name(&will.topic).map(str::to_string) else {
            return;
        };
        let inbound = self.shared.topics.inbound(&topic);
        if !self.book_retained(&inbound, &topic, &will.message, will.retain, "will") {
            return;
        }
        // A will on the node's own sensor topic (`offline`, or a last
        // reading) counts as if the node had sent it.
        if let Inbound::Sensor(sensor) = inbound {
            self.on_sensor(sensor, &topic, &will.message);
        }
        let size = crate::broker::flow::size(topic.as_bytes(), &will.message);
        self.shared.flows.route(&topic, size);
        let publish = Publish::new(will.topic, will.message, will.retain);
        let _ = self.tx.send(Packet::Publish(publish, None)).await;
    }
}
