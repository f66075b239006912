//! One connection to the upstream broker: CONNECT, then `online` and the
//! retained table states, then the log from the watermark in seq order
//! (rate-limited), then live events, until the link drops or the daemon
//! stops (`offline`, DISCONNECT).

use super::Upstream;
use super::outbox::Outbox;
use crate::broker::topics::state_payload;
use crate::config::BridgeConfig;
use crate::domain::{Event, EventData, Seq};
use crate::store::EventQuery;
use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, LastWill, MqttOptions, Outgoing,
    Packet, QoS, TlsConfiguration, Transport,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Events read from SQLite per page while a backlog drains.
const PAGE: usize = 256;

/// Largest PUBLISH sent upstream; an event over it (none is near it: HTTP
/// bodies are capped far below) is skipped with a warning rather than
/// breaking every session on it.
pub const MAX_PUBLISH_BYTES: usize = 1 << 20;

/// The upstream sends us only acks: anything larger is refused.
const MAX_INCOMING_BYTES: usize = 64 * 1024;

/// How long stop waits for `offline` and the last events to be
/// acknowledged before it disconnects anyway.
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) enum Ended {
    /// The daemon is stopping.
    Stopped,
    /// The connection failed or was lost; `connected_for` is `None` when
    /// it never got a CONNACK.
    Lost {
        error: String,
        connected_for: Option<Duration>,
    },
}

/// What is next in the log for the upstream.
enum Item {
    /// Boxed: a gap is two numbers, an event a whole table.
    Event(Box<Event>),
    /// Retention deleted these before they were forwarded.
    Gap { from: Seq, to: Seq },
}

/// A publish outside the log, sent before the next event.
struct Extra {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

struct Session<'a> {
    up: &'a mut Upstream,
    client: AsyncClient,
    out: Outbox,
    /// Read from the log (or the hub) but not yet handed over, in seq order.
    items: VecDeque<Item>,
    /// The highest seq in `items` or already handled.
    read_through: Seq,
    extras: VecDeque<Extra>,
    /// Table events up to this seq are already in the retained state sent
    /// at CONNACK; only later ones re-publish it.
    state_through: Seq,
}

pub(super) async fn run(up: &mut Upstream, shutdown: &CancellationToken) -> Ended {
    let bridge = &up.deps.bridge;
    let window = usize::from(bridge.max_inflight);
    let (client, mut eventloop) = AsyncClient::new(options(bridge), window + 8);
    // One poll future for the whole connect: dropping it would drop a
    // half-made connection, and the heartbeat fires more often than a
    // slow link may take to connect.
    let connack = {
        let connecting = eventloop.poll();
        tokio::pin!(connecting);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Stopped,
                _ = up.heartbeat.tick() => up.heartbeat.beat(),
                polled = &mut connecting => break polled,
            }
        }
    };
    match connack {
        Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {}
        Ok(other) => {
            return lost(format!("expected CONNACK, got {other:?}"), None);
        }
        Err(e) => return lost(describe(&e), None),
    }
    let connected_at = Instant::now();
    up.set_connected(true);
    tracing::info!(
        url = %up.deps.bridge.url,
        acked = up.acked,
        backlog = up.deps.hub.head().saturating_sub(up.acked),
        "upstream bridge connected"
    );
    let acked = up.acked;
    let mut session = Session {
        up,
        client,
        out: Outbox::new(acked, window),
        items: VecDeque::new(),
        read_through: acked,
        extras: VecDeque::new(),
        state_through: 0,
    };
    session.greet();
    let mut rate =
        tokio::time::interval(Duration::from_secs(1) / session.up.deps.bridge.backlog_rate.max(1));
    rate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut save = tokio::time::interval(super::SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let since = |e: String| lost(e, Some(connected_at.elapsed()));
    loop {
        if let Err(e) = session.send_extras() {
            return since(e);
        }
        if session.items.is_empty() && session.up.deps.hub.head() > session.read_through {
            session.read_page().await;
        }
        let ready =
            session.out.has_room() && session.extras.is_empty() && !session.items.is_empty();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                session.go_offline(&mut eventloop).await;
                return Ended::Stopped;
            }
            polled = eventloop.poll() => match polled {
                Ok(event) => session.on_mqtt(&event),
                Err(e) => return since(describe(&e)),
            },
            _ = rate.tick(), if ready => {
                if let Err(e) = session.send_next() {
                    return since(e);
                }
            }
            received = session.up.events.rx.recv() => match received {
                Ok(p) => session.on_live(&p.event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ended::Stopped,
            },
            _ = save.tick() => session.up.save().await,
            _ = session.up.heartbeat.tick() => session.up.heartbeat.beat(),
        }
    }
}

fn lost(error: String, connected_for: Option<Duration>) -> Ended {
    Ended::Lost {
        error,
        connected_for,
    }
}

/// The client options: one clean session per connection (the watermark,
/// not the broker, remembers what is delivered), the will, TLS.
fn options(bridge: &BridgeConfig) -> MqttOptions {
    let mut o = MqttOptions::new(&bridge.client_id, &bridge.host, bridge.port);
    o.set_keep_alive(bridge.keep_alive)
        .set_clean_session(true)
        .set_inflight(bridge.max_inflight)
        .set_max_packet_size(MAX_INCOMING_BYTES, MAX_PUBLISH_BYTES)
        .set_last_will(LastWill::new(
            status_topic(bridge),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((user, password)) = &bridge.credentials {
        o.set_credentials(user, password);
    }
    if let Some(tls) = &bridge.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::clone(tls),
        )));
    }
    o
}

fn status_topic(bridge: &BridgeConfig) -> String {
    format!("{}/status", bridge.topic_prefix)
}

/// Why a connection failed, in words for the log and `/api/v1/stats`.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the upstream broker refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}

/// The event JSON with `"site"` first (the rest as the local broker has it).
fn with_site(json: &str, site: &str) -> Vec<u8> {
    let site = serde_json::to_string(site).unwrap_or_else(|_| "\"\"".into());
    match json.strip_prefix('{') {
        Some(rest) if rest.trim_start() != "}" => format!("{{\"site\":{site},{rest}").into_bytes(),
        _ => json.as_bytes().to_vec(),
    }
}

impl Session<'_> {
    fn bridge(&self) -> &BridgeConfig {
        &self.up.deps.bridge
    }

    /// `online`, then every table's retained state as of now.
    fn greet(&mut self) {
        let status = status_topic(self.bridge());
        self.extras.push_back(Extra {
            topic: status,
            payload: b"online".to_vec(),
            retain: true,
        });
        if !self.bridge().state {
            return;
        }
        let (head, tables) = self.up.deps.hub.snapshot();
        self.state_through = head;
        for table in tables.iter() {
            self.extras.push_back(Extra {
                topic: format!("{}/tables/{}/state", self.bridge().topic_prefix, table.id),
                payload: state_payload(table, head).into_bytes(),
                retain: true,
            });
        }
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> Result<(), String> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| format!("cannot hand a publish to the MQTT client: {e}"))
    }

    fn send_extras(&mut self) -> Result<(), String> {
        while self.out.has_room() {
            let Some(extra) = self.extras.pop_front() else {
                break;
            };
            self.publish(extra.topic, extra.payload, extra.retain)?;
            self.out.other();
        }
        Ok(())
    }

    /// Reads the next page of the log; a hole left by retention becomes a
    /// gap item.
    async fn read_page(&mut self) {
        let query = EventQuery {
            after: self.read_through,
            limit: PAGE,
            ..EventQuery::default()
        };
        let page = match self.up.deps.store.events(query).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "upstream bridge: cannot read the event log");
                return;
            }
        };
        if !page.continuous {
            match self.up.deps.store.pruned_through().await {
                Ok(pruned) if pruned > self.read_through => {
                    let from = self.read_through + 1;
                    let missing = pruned - self.read_through;
                    let u = &self.up.deps.metrics.upstream;
                    u.gap_events
                        .fetch_add(missing, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        from_seq = from,
                        to_seq = pruned,
                        "upstream bridge: events were deleted before they were forwarded; sending a gap"
                    );
                    self.items.push_back(Item::Gap { from, to: pruned });
                    self.read_through = pruned;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "upstream bridge: cannot read the retention watermark");
                    return;
                }
            }
        }
        for event in page.events {
            if event.seq > self.read_through {
                self.read_through = event.seq;
                self.items.push_back(Item::Event(Box::new(event)));
            }
        }
    }

    /// A committed event from the hub: taken directly when it is the next
    /// one, else the log catches up by reading.
    fn on_live(&mut self, event: &Event) {
        if event.seq == self.read_through + 1 {
            self.read_through = event.seq;
            self.items.push_back(Item::Event(Box::new(event.clone())));
        }
    }

    fn on_mqtt(&mut self, event: &MqttEvent) {
        match event {
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => self.out.sent(*pkid),
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                let before = self.out.acked();
                if let Some(acked) = self.out.puback(ack.pkid) {
                    self.acked(before, acked);
                }
            }
            _ => {}
        }
    }

    fn acked(&mut self, before: Seq, acked: Seq) {
        self.up.advance(acked, acked - before);
        let oldest = self
            .out
            .oldest_unacked_ms()
            .or_else(|| match self.items.front() {
                Some(Item::Event(e)) => Some(super::ts_ms(&e.ts)),
                _ => None,
            })
            .unwrap_or(0);
        self.up
            .deps
            .metrics
            .upstream
            .oldest_unacked_ms
            .store(oldest, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands the next item over (events of types not forwarded are passed
    /// over, counted as delivered in their turn).
    fn send_next(&mut self) -> Result<(), String> {
        while let Some(item) = self.items.pop_front() {
            match item {
                Item::Gap { from, to } => {
                    let topic = format!("{}/gap", self.bridge().topic_prefix);
                    let payload = serde_json::json!({ "from_seq": from, "to_seq": to });
                    self.publish(topic, payload.to_string().into_bytes(), false)?;
                    self.out.track(to, 0);
                    return Ok(());
                }
                Item::Event(event) => {
                    if self.send_event(&event)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes `event` if it is forwarded; false when it was passed over.
    fn send_event(&mut self, event: &Event) -> Result<bool, String> {
        let before = self.out.acked();
        if !self.bridge().forwards(event.kind()) {
            self.out.skip(event.seq);
            if self.out.acked() > before {
                self.up.advance(self.out.acked(), 0);
            }
            return Ok(false);
        }
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        let payload = with_site(&json, &self.up.deps.site);
        if payload.len() > MAX_PUBLISH_BYTES - 1024 {
            tracing::warn!(
                seq = event.seq,
                bytes = payload.len(),
                "upstream bridge: event too large to forward; passed over"
            );
            self.out.skip(event.seq);
            return Ok(false);
        }
        let topic = format!("{}/events/{}", self.bridge().topic_prefix, event.kind());
        self.publish(topic, payload, false)?;
        self.out.track(event.seq, super::ts_ms(&event.ts));
        if self.bridge().state && event.seq > self.state_through {
            self.queue_state(event);
        }
        Ok(true)
    }

    /// The retained state a table event changes, as on the local broker.
    fn queue_state(&mut self, event: &Event) {
        let prefix = &self.up.deps.bridge.topic_prefix;
        let extra = match &event.data {
            EventData::TableState { table, .. }
            | EventData::TableCreated { table }
            | EventData::TableUpdated { table } => Extra {
                topic: format!("{prefix}/tables/{}/state", table.id),
                payload: state_payload(table, event.seq).into_bytes(),
                retain: true,
            },
            EventData::TableDeleted { table } => Extra {
                topic: format!("{prefix}/tables/{}/state", table.id),
                payload: Vec::new(),
                retain: true,
            },
            _ => return,
        };
        self.extras.push_back(extra);
    }

    /// `offline` (retained), a short wait for the PUBACKs still due, then
    /// DISCONNECT, so the will is not needed.
    async fn go_offline(&mut self, eventloop: &mut EventLoop) {
        let status = status_topic(self.bridge());
        if self.publish(status, b"offline".to_vec(), true).is_err() {
            return;
        }
        self.out.other();
        let drained = async {
            while !self.out.is_idle() {
                match eventloop.poll().await {
                    Ok(event) => self.on_mqtt(&event),
                    Err(_) => return,
                }
            }
            if self.client.try_disconnect().is_ok() {
                while let Ok(event) = eventloop.poll().await {
                    if matches!(event, MqttEvent::Outgoing(Outgoing::Disconnect)) {
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(OFFLINE_TIMEOUT, drained)
            .await
            .is_err()
        {
            tracing::warn!("upstream bridge: offline status not acknowledged in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_goes_first_in_the_event_json() {
        let got = with_site(r#"{"seq":3,"type":"table.state"}"#, "cafe-2");
        assert_eq!(
            got,
            br#"{"site":"cafe-2","seq":3,"type":"table.state"}"#.to_vec()
        );
        assert_eq!(with_site("{}", "x"), b"{}".to_vec());
    }
}
