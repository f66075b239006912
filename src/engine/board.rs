//! [`SensorBoard`]: each sensor's health as `/api/v1/stats` and the
//! `STATUS=` line show it.
//!
//! A copy, not a decision: the [`Dispatcher`](super::dispatch::Dispatcher)
//! decides, the engine task applies each [`Effect`] here (with the wall
//! clock time of the change), and readers take snapshots.

use super::dispatch::{Effect, HealthState};
use crate::config::Config;
use crate::domain::TableId;
use crate::sensors::Reading;
use serde::Serialize;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Serialize)]
pub struct SensorView {
    pub id: String,
    pub kind: &'static str,
    pub table: Option<TableId>,
    pub health: HealthState,
    /// The latest reading (`null` before the first and while faulted).
    pub reading: Option<Reading>,
    /// When the reading last changed.
    pub reading_since: Option<String>,
    /// Fault episodes since start.
    pub faults: u64,
    pub last_error: Option<String>,
    /// When the current fault began.
    pub faulted_since: Option<String>,
}

/// Per-sensor health, written by the engine task, read by the HTTP API.
#[derive(Clone, Default)]
pub struct SensorBoard {
    /// A std mutex: held only to copy or update one entry, never across an
    /// await.
    views: Arc<Mutex<Vec<SensorView>>>,
}

impl SensorBoard {
    pub fn new(config: &Config) -> SensorBoard {
        let views = config
            .sensors
            .iter()
            .map(|s| SensorView {
                id: s.id.clone(),
                kind: s.kind.name(),
                table: s.table,
                health: HealthState::Waiting,
                reading: None,
                reading_since: None,
                faults: 0,
                last_error: None,
                faulted_since: None,
            })
            .collect();
        SensorBoard {
            views: Arc::new(Mutex::new(views)),
        }
    }

    /// Every sensor, in config order, then the implicit detector sensors
    /// in the order they appeared.
    pub fn snapshot(&self) -> Vec<SensorView> {
        self.lock().clone()
    }

    /// Shows what `effect` changed about its sensor.
    pub fn apply(&self, effect: &Effect) {
        match effect {
            Effect::Reading { sensor, reading } => self.update(sensor, |v| {
                v.health = HealthState::Ok;
                if v.reading != Some(*reading) {
                    v.reading = Some(*reading);
                    v.reading_since = Some(crate::clock::now());
                }
            }),
            Effect::Faulted { sensor, reason, .. } => self.update(sensor, |v| {
                v.health = HealthState::Faulted;
                v.faults += 1;
                v.reading = None;
                v.faulted_since = Some(crate::clock::now());
                v.last_error = Some(reason.clone());
            }),
            Effect::StillFaulted { sensor, reason } => {
                self.update(sensor, |v| v.last_error = Some(reason.clone()))
            }
            Effect::Recovered { sensor, .. } => self.update(sensor, |v| {
                v.health = HealthState::Waiting;
                v.faulted_since = None;
            }),
            Effect::Alert { sensor, .. } => self.update(sensor, |v| {
                v.health = HealthState::Ok;
                v.reading_since = Some(crate::clock::now());
            }),
            Effect::Ready { sensor } => self.update(sensor, |v| {
                if v.health == HealthState::Waiting {
                    v.health = HealthState::Ok;
                }
            }),
            Effect::Added {
                sensor,
                kind,
                table,
            } => {
                let mut views = self.lock();
                if !views.iter().any(|v| v.id == *sensor) {
                    views.push(SensorView {
                        id: sensor.clone(),
                        kind,
                        table: Some(*table),
                        health: HealthState::Waiting,
                        reading: None,
                        reading_since: None,
                        faults: 0,
                        last_error: None,
                        faulted_since: None,
                    });
                }
            }
            Effect::Transition(_) => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SensorView>> {
        // Entries are replaced field by field with plain assignments, so a
        // poisoned lock still holds consistent data.
        self.views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SensorView)) {
        if let Some(view) = self.lock().iter_mut().find(|v| v.id == id) {
            f(view);
        }
    }
}
