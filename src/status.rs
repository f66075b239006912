//! The `STATUS=` line that `systemctl status mesero` shows, e.g.
//! `http 0.0.0.0:8080 · 12 tables: 8 free, 3 occupied, 1 dirty · 5 clients (1 SSE, 1 WS,
//! 3 MQTT) · 12 sensors, 1 faulted: pir-4`.
//!
//! [`Sources`] holds a handle to each subsystem and [`Sources::read`] takes
//! the counts. To show a new subsystem (sensor faults, MQTT clients), add
//! its handle to `Sources`, a field to [`Status`], and a part to its
//! `Display`.

use crate::domain::TableState;
use crate::engine::{HealthState, SensorBoard};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::systemd::Liveness;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Where the counts come from; cheap to clone.
#[derive(Clone)]
pub struct Sources {
    pub http: SocketAddr,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub sensors: SensorBoard,
    pub liveness: Liveness,
}

/// The counts behind one status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub http: SocketAddr,
    /// Tables per state, in [`TableState::ALL`] order, zeros included.
    pub tables: Vec<(TableState, usize)>,
    pub sse_clients: i64,
    pub ws_clients: i64,
    pub mqtt_clients: i64,
    pub sensors: usize,
    /// Ids of the sensors that are faulted now.
    pub faulted: Vec<String>,
    /// Loops that stopped checking in (the watchdog is being withheld).
    pub stale: Vec<String>,
    /// The upstream bridge's backlog while it has one: (events, seconds,
    /// connected).
    pub bridge_backlog: Option<(u64, u64, bool)>,
}

impl Sources {
    pub fn read(&self) -> Status {
        let tables = self.hub.tables();
        let sensors = self.sensors.snapshot();
        Status {
            http: self.http,
            tables: TableState::ALL
                .iter()
                .map(|s| (*s, tables.iter().filter(|t| t.state == *s).count()))
                .collect(),
            sse_clients: self.metrics.sse_clients.load(Relaxed),
            ws_clients: self.metrics.ws_clients.load(Relaxed),
            mqtt_clients: self.metrics.mqtt.clients.load(Relaxed),
            faulted: sensors
                .iter()
                .filter(|s| s.health == HealthState::Faulted)
                .map(|s| s.id.clone())
                .collect(),
            sensors: sensors.len(),
            stale: self.liveness.stale(),
            bridge_backlog: {
                let b = self.metrics.upstream_snapshot();
                (b.backlog_events > 0).then_some((b.backlog_events, b.backlog_seconds, b.connected))
            },
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.tables.iter().map(|(_, n)| n).sum();
        write!(f, "http {} · {total} tables", self.http)?;
        let by_state: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        if !by_state.is_empty() {
            write!(f, ": {}", by_state.join(", "))?;
        }
        let clients = self.sse_clients + self.ws_clients + self.mqtt_clients;
        write!(
            f,
            " · {clients} clients ({} SSE, {} WS, {} MQTT)",
            self.sse_clients, self.ws_clients, self.mqtt_clients
        )?;
        if self.sensors > 0 {
            write!(f, " · {} sensors", self.sensors)?;
            if !self.faulted.is_empty() {
                let n = self.faulted.len();
                write!(f, ", {n} faulted: {}", self.faulted.join(", "))?;
            }
        }
        if let Some((events, secs, connected)) = self.bridge_backlog {
            let link = if connected { "draining" } else { "link down" };
            write!(f, " · upstream backlog {events} events ({secs} s, {link})")?;
        }
        if !self.stale.is_empty() {
            write!(f, " · NOT RESPONDING: {}", self.stale.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_sentence() {
        let mut status = Status {
            http: "0.0.0.0:8080".parse().expect("addr"),
            tables: vec![
                (TableState::Free, 8),
                (TableState::Occupied, 3),
                (TableState::Reserved, 0),
                (TableState::Dirty, 1),
            ],
            sse_clients: 1,
            ws_clients: 1,
            mqtt_clients: 3,
            sensors: 0,
            faulted: vec![],
            stale: vec![],
            bridge_backlog: None,
        };
        assert_eq!(
            status.to_string(),
            "http 0.0.0.0:8080 · 12 tables: 8 free, 3 occupied, 1 dirty · 5 clients (1 SSE, 1 WS, 3 MQTT)"
        );
        status.tables.clear();
        status.sensors = 12;
        status.faulted = vec!["pir-4".into()];
        status.stale = vec!["writer".into()];
        assert_eq!(
            status.to_string(),
            "http 0.0.0.0:8080 · 0 tables · 5 clients (1 SSE, 1 WS, 3 MQTT) · 12 sensors, 1 faulted: pir-4 \
             · NOT RESPONDING: writer"
        );
        status.stale.clear();
        status.bridge_backlog = Some((42, 90, false));
        assert!(
            status
                .to_string()
                .ends_with(" · upstream backlog 42 events (90 s, link down)"),
            "{status}"
        );
    }
}
