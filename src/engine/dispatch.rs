//! The one place that decides what a sensor report means: [`Dispatcher`].
//!
//! Pure: no I/O, no clock, no async; time is injected. It owns the
//! occupancy [`Engine`] and each configured sensor's health as the daemon
//! sees it (waiting, ok, faulted: a fault is acted on once per episode,
//! whoever reported it), and the silence tracking of the sensors nobody
//! else watches (`mqtt`: the hardware workers judge their own chips). Each
//! report or timer wake-up gives a list of [`Effect`]s, in the order they
//! must be applied:
//! - the daemon's engine task ([`super::start`]) commits them: events and
//!   table changes through the store, health on the [`super::SensorBoard`];
//! - `mesero sensors watch` prints them and takes each transition as
//!   committed.
//!
//! The dispatcher assumes each [`Effect::Transition`] is committed; when the
//! store refuses one, the caller tells it the truth with
//! [`Dispatcher::sync_table`].

use crate::config::Config;
use crate::domain::{TableId, TableState};
use crate::occupancy::{Engine, EngineConfig, Transition};
use crate::sensors::Reading;
use crate::sensors::health::{Health, HealthChange, HealthConfig};
use crate::sensors::report::{ButtonEvent, Report};
use crate::sensors::spec::SensorKind;
use serde::Serialize;
use std::collections::HashMap;
use tokio::time::Instant;

/// A sensor's health as the daemon sees it (and `/api/v1/stats` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// No reading yet since start (or since it recovered).
    Waiting,
    Ok,
    Faulted,
}

/// What one report or timer wake-up asks of the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A reading of a sensor that is not faulted.
    Reading { sensor: String, reading: Reading },
    /// The sensor has just faulted: a `sensor.fault` event.
    Faulted {
        sensor: String,
        kind: &'static str,
        table: Option<TableId>,
        reason: String,
    },
    /// A fault reported again while the sensor is faulted: only its last
    /// error changes.
    StillFaulted { sensor: String, reason: String },
    /// The faulted sensor answers again: a `sensor.recovered` event.
    Recovered {
        sensor: String,
        kind: &'static str,
        table: Option<TableId>,
    },
    /// A call button was pressed: an `alert.raised` event.
    Alert {
        sensor: String,
        table: Option<TableId>,
        event: ButtonEvent,
    },
    /// An input with no reading to show it is set up (a call button).
    Ready { sensor: String },
    /// A table state change, to commit guarded by the state it expects.
    Transition(Transition),
    /// An implicit detector sensor was created (its first detection).
    Added {
        sensor: String,
        kind: &'static str,
        table: TableId,
    },
}

/// The kind an implicit detector sensor shows in `/api/v1/stats` and in
/// its `sensor.fault` events: it is an MQTT input like a declared one.
const IMPLICIT_KIND: &str = "mqtt";

struct SensorState {
    kind: &'static str,
    table: Option<TableId>,
    health: HealthState,
    /// Silence tracking, for `mqtt` sensors only.
    stale: Option<Health>,
}

pub struct Dispatcher {
    engine: Engine,
    sensors: HashMap<String, SensorState>,
    /// The health rules of implicit detector sensors: those of an `mqtt`
    /// sensor declared without `stale_after`.
    implicit_health: HealthConfig,
}

impl Dispatcher {
    /// The configured sensors, all waiting, and an engine that knows no
    /// table yet (the caller syncs them).
    pub fn new(config: &Config, now: Instant) -> Dispatcher {
        let mut engine = Engine::new(EngineConfig {
            occupy_after: config.occupancy.occupy_after,
            release_after: config.occupancy.release_after,
            bussing: config.occupancy.bussing,
        });
        let mut sensors = HashMap::new();
        for s in &config.sensors {
            engine.add_sensor(&s.id, s.kind.occupancy_table(s.table));
            let stale =
                matches!(s.kind, SensorKind::Mqtt).then(|| Health::new(s.health.clone(), now));
            sensors.insert(
                s.id.clone(),
                SensorState {
                    kind: s.kind.name(),
                    table: s.table,
                    health: HealthState::Waiting,
                    stale,
                },
            );
        }
        Dispatcher {
            engine,
            sensors,
            implicit_health: crate::config::mqtt_default_health(),
        }
    }

    /// The store's truth about a table (at start, after every committed
    /// change, after a refused transition).
    pub fn sync_table(
        &mut self,
        table: TableId,
        state: TableState,
        hold_until: Option<Instant>,
        now: Instant,
    ) {
        self.engine.sync_table(table, state, hold_until, now);
    }

    pub fn remove_table(&mut self, table: TableId) {
        self.engine.remove_table(table);
    }

    /// When [`Dispatcher::on_timer`] has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let stale = self
            .sensors
            .values()
            .filter_map(|s| s.stale.as_ref().and_then(Health::stale_deadline));
        stale.chain(self.engine.next_deadline()).min()
    }

    pub fn on_report(&mut self, report: Report, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match report {
            Report::Reading { sensor, reading } => {
                if let Some(health) = self.sensors.get_mut(&sensor).and_then(|s| s.stale.as_mut()) {
                    health.record_ok(now);
                }
                // A reading from a faulted sensor is its recovery, whoever
                // faulted it: its staleness, or its source (a fault the
                // health tracker never saw). A no-op for a healthy sensor.
                self.recovered(&sensor, now, &mut out);
                if let Some(state) = self.sensors.get_mut(&sensor) {
                    state.health = HealthState::Ok;
                    out.push(Effect::Reading {
                        sensor: sensor.clone(),
                        reading,
                    });
                }
                let transitions = self.engine.reading(&sensor, reading, now);
                out.extend(transitions.into_iter().map(Effect::Transition));
            }
            Report::Fault { sensor, reason } => self.faulted(&sensor, reason, now, &mut out),
            Report::Recovered { sensor } => self.recovered(&sensor, now, &mut out),
            Report::Button { sensor, event } => {
                if let Some(state) = self.sensors.get_mut(&sensor) {
                    state.health = HealthState::Ok;
                    out.push(Effect::Alert {
                        table: state.table,
                        sensor,
                        event,
                    });
                }
            }
            Report::Ready { sensor } => {
                if let Some(state) = self.sensors.get_mut(&sensor) {
                    if state.health == HealthState::Waiting {
                        state.health = HealthState::Ok;
                    }
                    out.push(Effect::Ready { sensor });
                }
            }
            Report::Detection {
                sensor,
                table,
                reading,
            } => {
                if !self.sensors.contains_key(&sensor) {
                    self.add_implicit(&sensor, table, now);
                    out.push(Effect::Added {
                        sensor: sensor.clone(),
                        kind: IMPLICIT_KIND,
                        table,
                    });
                }
                out.extend(self.on_report(Report::Reading { sensor, reading }, now));
            }
        }
        out
    }

    /// An implicit detector sensor: bound to `table`, silence-tracked like
    /// a declared `mqtt` sensor. How many there may be is bounded by
    /// [`super::SensorInput`], which creates their ids.
    fn add_implicit(&mut self, sensor: &str, table: TableId, now: Instant) {
        self.engine.add_sensor(sensor, Some(table));
        self.sensors.insert(
            sensor.to_string(),
            SensorState {
                kind: IMPLICIT_KIND,
                table: Some(table),
                health: HealthState::Waiting,
                stale: Some(Health::new(self.implicit_health.clone(), now)),
            },
        );
    }

    /// Silent `mqtt` sensors fault; the engine's hysteresis and holds run.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Effect> {
        let mut faults = Vec::new();
        for (id, state) in &mut self.sensors {
            if let Some(HealthChange::Faulted { reason }) =
                state.stale.as_mut().and_then(|h| h.check(now))
            {
                faults.push((id.clone(), reason));
            }
        }
        let mut out = Vec::new();
        for (id, reason) in faults {
            self.faulted(&id, reason, now, &mut out);
        }
        let transitions = self.engine.tick(now);
        out.extend(transitions.into_iter().map(Effect::Transition));
        out
    }

    fn faulted(&mut self, sensor: &str, reason: String, now: Instant, out: &mut Vec<Effect>) {
        let Some(state) = self.sensors.get_mut(sensor) else {
            return;
        };
        if state.health == HealthState::Faulted {
            out.push(Effect::StillFaulted {
                sensor: sensor.to_string(),
                reason,
            });
            return;
        }
        state.health = HealthState::Faulted;
        out.push(Effect::Faulted {
            sensor: sensor.to_string(),
            kind: state.kind,
            table: state.table,
            reason,
        });
        let transitions = self.engine.sensor_faulted(sensor, now);
        out.extend(transitions.into_iter().map(Effect::Transition));
    }

    fn recovered(&mut self, sensor: &str, now: Instant, out: &mut Vec<Effect>) {
        let Some(state) = self.sensors.get_mut(sensor) else {
            return;
        };
        if state.health != HealthState::Faulted {
            return;
        }
        state.health = HealthState::Waiting;
        out.push(Effect::Recovered {
            sensor: sensor.to_string(),
            kind: state.kind,
            table: state.table,
        });
        let transitions = self.engine.sensor_recovered(sensor, now);
        out.extend(transitions.into_iter().map(Effect::Transition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    const CONFIG: &str = r#"
[occupancy]
occupy_after = "10s"

[[tables]]
id = 1
[[tables]]
id = 2

[[sensors]]
id = "call-1"
kind = "button"
table = 1
pin = 27

[[sensors]]
id = "node-1"
kind = "mqtt"
table = 1
stale_after = "5s"

[[sensors]]
id = "pad-2"
kind = "gpio"
table = 2
pin = 17
"#;

    fn dispatcher(now: Instant) -> Dispatcher {
        let config =
            Config::from_toml(Path::new("t.toml"), CONFIG, std::iter::empty()).expect("config");
        let mut d = Dispatcher::new(&config, now);
        for t in &config.tables {
            d.sync_table(t.id, TableState::Free, None, now);
        }
        d
    }

    fn reading(sensor: &str, present: bool) -> Report {
        Report::Reading {
            sensor: sensor.into(),
            reading: Reading::presence(present),
        }
    }

    fn transitions(effects: &[Effect]) -> Vec<(TableId, TableState, TableState, &str)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Transition(t) => Some((t.table, t.from, t.to, t.sensor.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn presence_held_for_occupy_after_occupies_on_the_timer() {
        let t0 = Instant::now();
        let mut d = dispatcher(t0);
        assert_eq!(
            d.on_report(reading("pad-2", true), t0),
            vec![Effect::Reading {
                sensor: "pad-2".into(),
                reading: Reading::presence(true)
            }]
        );
        let wake = d.next_wake().expect("a deadline");
        assert_eq!(wake, t0 + Duration::from_secs(5), "node-1's silence first");
        let effects = d.on_timer(wake);
        assert!(
            matches!(&effects[..], [Effect::Faulted { sensor, kind: "mqtt", table: Some(1), reason }, Effect::Transition(_)]
                if sensor == "node-1" && reason.contains("no reading for 5 s")),
            "{effects:?}"
        );
        assert_eq!(
            transitions(&effects),
            vec![(1, TableState::Free, TableState::Unknown, "node-1")]
        );
        let wake = d.next_wake().expect("a deadline");
        assert_eq!(wake, t0 + Duration::from_secs(10));
        assert_eq!(
            transitions(&d.on_timer(wake)),
            vec![(2, TableState::Free, TableState::Occupied, "pad-2")]
        );
    }

    #[test]
    fn a_fault_is_acted_on_once_and_the_next_reading_recovers_it() {
        let t0 = Instant::now();
        let mut d = dispatcher(t0);
        d.on_report(reading("node-1", false), t0);
        let fault = |reason: &str| Report::Fault {
            sensor: "node-1".into(),
            reason: reason.into(),
        };
        let first = d.on_report(fault("offline"), t0);
        assert!(
            matches!(&first[0], Effect::Faulted { reason, .. } if reason == "offline"),
            "{first:?}"
        );
        assert_eq!(
            transitions(&first),
            vec![(1, TableState::Free, TableState::Unknown, "node-1")]
        );
        assert_eq!(
            d.on_report(fault("still offline"), t0),
            vec![Effect::StillFaulted {
                sensor: "node-1".into(),
                reason: "still offline".into()
            }]
        );
        let back = d.on_report(reading("node-1", false), t0 + Duration::from_secs(1));
        assert_eq!(
            back.first(),
            Some(&Effect::Recovered {
                sensor: "node-1".into(),
                kind: "mqtt",
                table: Some(1)
            })
        );
        assert!(back.contains(&Effect::Reading {
            sensor: "node-1".into(),
            reading: Reading::presence(false)
        }));
        assert_eq!(
            transitions(&back),
            vec![(1, TableState::Unknown, TableState::Free, "node-1")],
            "the state before the outage is restored"
        );
        assert!(
            d.on_report(
                Report::Recovered {
                    sensor: "node-1".into()
                },
                t0
            )
            .is_empty(),
            "a recovery of a healthy sensor is nothing"
        );
    }

    #[test]
    fn a_detection_creates_an_implicit_sensor_with_the_mqtt_stale_rule() {
        let t0 = Instant::now();
        let mut d = dispatcher(t0);
        let detection = |present: bool| Report::Detection {
            sensor: "detector:cam:2".into(),
            table: 2,
            reading: Reading::presence(present),
        };
        let first = d.on_report(detection(true), t0);
        assert_eq!(
            first,
            vec![
                Effect::Added {
                    sensor: "detector:cam:2".into(),
                    kind: "mqtt",
                    table: 2
                },
                Effect::Reading {
                    sensor: "detector:cam:2".into(),
                    reading: Reading::presence(true)
                }
            ]
        );
        assert!(
            transitions(&d.on_timer(t0 + Duration::from_secs(10))).contains(&(
                2,
                TableState::Free,
                TableState::Occupied,
                "detector:cam:2"
            )),
            "its presence occupies the table like any sensor's"
        );
        let again = d.on_report(detection(true), t0 + Duration::from_secs(20));
        assert!(!again.iter().any(|e| matches!(e, Effect::Added { .. })));
        let silent = d.on_timer(t0 + Duration::from_secs(320));
        assert!(
            silent.iter().any(|e| matches!(e,
                Effect::Faulted { sensor, kind: "mqtt", table: Some(2), .. } if sensor == "detector:cam:2")),
            "{silent:?}"
        );
    }

    #[test]
    fn buttons_alerts_readiness_and_unknown_sensors() {
        let t0 = Instant::now();
        let mut d = dispatcher(t0);
        assert_eq!(
            d.on_report(
                Report::Ready {
                    sensor: "call-1".into()
                },
                t0
            ),
            vec![Effect::Ready {
                sensor: "call-1".into()
            }]
        );
        assert_eq!(
            d.on_report(
                Report::Button {
                    sensor: "call-1".into(),
                    event: ButtonEvent::Call
                },
                t0
            ),
            vec![Effect::Alert {
                sensor: "call-1".into(),
                table: Some(1),
                event: ButtonEvent::Call
            }]
        );
        for report in [
            reading("ghost", true),
            Report::Fault {
                sensor: "ghost".into(),
                reason: "x".into(),
            },
            Report::Button {
                sensor: "ghost".into(),
                event: ButtonEvent::Bill,
            },
        ] {
            assert!(d.on_report(report, t0).is_empty());
        }
    }
}
