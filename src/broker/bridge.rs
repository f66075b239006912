//! The daemon's own link into the broker: what mesero publishes.
//!
//! - At start, before any client can connect: every table's state
//!   (retained, from the store's tables as loaded from SQLite), then
//!   `online` (retained), then the Home Assistant configs. rumqttd keeps
//!   retained messages in memory only, so this is what makes a restart
//!   never leave stale or missing retained state.
//! - For every committed event, in seq order: `events/<type>` (not
//!   retained), and for table events the table's retained state (an empty
//!   retained message when a table is deleted, which clears it) and its
//!   discovery config.
//! - For every `waitlist.ready`, `waitlist/ready` (not retained): the
//!   party (name, size, phone) and the offered tables with their numbers,
//!   all an SMS or pager gateway needs to call the guest.
//! - Every beat period it pings the router through its link and checks in
//!   with the watchdog only when the answer comes back: a stuck broker
//!   thread or router stops the pings to systemd.
//! - At stop: `offline` (retained), and it waits until the router has
//!   handed that to subscribers (the link subscribes to the status topic and
//!   sees its own message come back) before the sessions are closed.
//!
//! rumqttd's local `publish` is QoS 0 and never retained, so messages go
//! in as raw PUBLISH packets with the retain flag set where needed.

use super::Shared;
use super::topics::state_payload;
use crate::domain::{EventData, Seq, Table};
use crate::hub::{ClientKind, Published, Subscription};
use crate::systemd::Heartbeat;
use bytes::Bytes;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, PingReq, Publish};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How long stop waits for the `offline` status to go through the router.
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Bridge {
    shared: Arc<Shared>,
    tx: LinkTx,
    rx: LinkRx,
    /// The hub subscription, taken before the first publish so that no
    /// committed event falls between the snapshot and the live feed.
    events: Subscription,
    heartbeat: Heartbeat,
}

#[derive(Debug, thiserror::Error)]
#[error("the MQTT router refused the daemon's link: {0}")]
pub struct LinkFailed(String);

impl Bridge {
    /// Opens the link and publishes the start-up state.
    pub async fn start(shared: Arc<Shared>, heartbeat: Heartbeat) -> Result<Bridge, LinkFailed> {
        let (mut tx, rx, _ack) = shared
            .open_link(&shared.daemon_client_id, true)
            .await
            .map_err(|e| LinkFailed(e.to_string()))?;
        tx.subscribe(shared.topics.status())
            .map_err(|e| LinkFailed(e.to_string()))?;
        let events = shared
            .hub
            .subscribe(ClientKind::Internal, CancellationToken::new());
        let mut bridge = Bridge {
            shared,
            tx,
            rx,
            events,
            heartbeat,
        };
        let (head, tables) = (bridge.events.head, Arc::clone(&bridge.events.tables));
        bridge.publish_all(head, &tables).await;
        let status = bridge.shared.topics.status();
        bridge.publish(status, "online", true).await;
        tracing::info!(
            tables = tables.len(),
            seq = head,
            "MQTT retained state published"
        );
        Ok(bridge)
    }

    /// Publishes events until `stop`, then `offline`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                received = self.events.rx.recv() => match received {
                    Ok(published) => self.on_event(&published).await,
                    Err(RecvError::Lagged(missed)) => {
                        // Events were lost for MQTT; retained state is
                        // brought back in line from the hub's tables.
                        tracing::warn!(missed, "MQTT publisher fell behind; re-publishing all table states");
                        let (head, tables) = self.shared.hub.snapshot();
                        self.publish_all(head, &tables).await;
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = self.shared.ha_online.notified() => {
                    if self.shared.homeassistant {
                        tracing::info!("Home Assistant is online; re-sending discovery configs");
                        for table in self.shared.hub.tables().iter() {
                            self.publish_discovery(table).await;
                        }
                    }
                }
                _ = self.heartbeat.tick() => {
                    if let Err(e) = self.tx.send(Packet::PingReq(PingReq)).await {
                        tracing::error!(error = %e, "cannot ping the MQTT router");
                    }
                }
                notification = self.rx.next() => match notification {
                    Ok(Some(Notification::Unschedule)) => {
                        if self.rx.wake().await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(Notification::DeviceAck(ack))) => {
                        if matches!(Packet::from(ack), Packet::PingResp(_)) {
                            self.heartbeat.beat();
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tracing::error!("the MQTT router stopped; nothing more is published");
                        break;
                    }
                },
            }
        }
        self.go_offline().await;
    }

    async fn go_offline(&mut self) {
        let status = self.shared.topics.status();
        self.publish(status.clone(), "offline", true).await;
        let echo = async {
            loop {
                match self.rx.next().await {
                    Ok(Some(Notification::Forward(f)))
                        if f.publish.topic == status.as_bytes()
                            && f.publish.payload == "offline" =>
                    {
                        return;
                    }
                    Ok(Some(Notification::Unschedule)) => {
                        if self.rx.wake().await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        };
        if tokio::time::timeout(OFFLINE_TIMEOUT, echo).await.is_err() {
            tracing::warn!("MQTT offline status not confirmed by the router in time");
        }
    }

    async fn on_event(&mut self, published: &Published) {
        let event = &published.event;
        let topic = self.shared.topics.event(event.kind());
        self.publish(topic, published.json.clone(), false).await;
        match &event.data {
            EventData::TableState { table, .. } => self.publish_state(table, event.seq).await,
            EventData::TableCreated { table } | EventData::TableUpdated { table } => {
                self.publish_state(table, event.seq).await;
                self.publish_discovery(table).await;
            }
            EventData::WaitlistReady { party } => {
                let tables: Vec<_> = self
                    .shared
                    .hub
                    .tables()
                    .iter()
                    .filter(|t| party.offered.contains(&t.id))
                    .map(|t| serde_json::json!({"id": t.id, "number": t.number, "zone": t.zone, "seats": t.seats}))
                    .collect();
                let payload = serde_json::json!({
                    "seq": event.seq,
                    "party": party,
                    "tables": tables,
                });
                let topic = self.shared.topics.waitlist_ready();
                self.publish(topic, payload.to_string(), false).await;
            }
            EventData::TableDeleted { table } => {
                let topic = self.shared.topics.table_state(table.id);
                self.publish(topic, Bytes::new(), true).await;
                if self.shared.homeassistant {
                    let topic = self.shared.topics.ha_config(table.id);
                    self.publish(topic, Bytes::new(), true).await;
                }
            }
            _ => {}
        }
    }

    async fn publish_all(&mut self, head: Seq, tables: &[Table]) {
        for table in tables {
            self.publish_state(table, head).await;
        }
        for table in tables {
            self.publish_discovery(table).await;
        }
    }

    async fn publish_state(&mut self, table: &Table, seq: Seq) {
        let topic = self.shared.topics.table_state(table.id);
        self.publish(topic, state_payload(table, seq), true).await;
    }

    async fn publish_discovery(&mut self, table: &Table) {
        if !self.shared.homeassistant {
            return;
        }
        let topic = self.shared.topics.ha_config(table.id);
        let config = self
            .shared
            .topics
            .ha_discovery(table, &self.shared.site_name, &self.shared.language)
            .to_string();
        self.publish(topic, config, true).await;
    }

    async fn publish(&mut self, topic: String, payload: impl Into<Bytes>, retain: bool) {
        let payload = payload.into();
        // Booked for its subscribers, never held back (see `flow`).
        self.shared
            .flows
            .route(&topic, super::flow::size(topic.as_bytes(), &payload));
        let publish = Publish::new(Bytes::from(topic), payload, retain);
        // See `Session::forward` on why this send may wait but never hangs.
        if let Err(e) = self.tx.send(Packet::Publish(publish, None)).await {
            tracing::error!(error = %e, "cannot publish to the MQTT router");
        }
    }
}
