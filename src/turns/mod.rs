//! Turn-time intelligence (SPEC §1 Visit and predictions): when each
//! occupied table is expected to free up, learned from past visits.
//!
//! - [`km`]: the Kaplan–Meier estimator (still-seated parties censored).
//! - [`model`]: one curve per party-size bucket × day part × weekday or
//!   weekend, shrunk toward broader groups when sparse, and what is read
//!   off it: the median and 80th percentile of the remaining time of a
//!   table occupied `e` minutes, from S(t)/S(e).
//! - [`task`]: refits the model off the async runtime — at start, when a
//!   table stops being occupied (a visit just ended), and every
//!   [`task::REFIT_EVERY`] on the wall clock (an import, open visits aging).
//!
//! Where the predictions live: nowhere on disk. A table row and the
//! `data.table` of an event in SQLite are what happened; the prediction is
//! computed when a table is serialised for a client, from its `since`
//! (the time it was seated), its people (the party size, else its seats)
//! and the current model, by [`Predictor`]. The snapshot, `GET /tables`
//! and `GET /predictions` predict as of now; a table inside an event
//! predicts as of the event's `ts` (the hub renders live events once, the
//! feed renders replayed ones the same way), so a replayed event says what
//! was expected then. Between events a tablet recomputes nothing and gets
//! no event per minute: it re-reads `GET /predictions` when it wants a
//! fresher, conditional estimate.

pub mod km;
pub mod model;
pub mod task;

use crate::domain::{Event, Table, TableState};
use model::{Forecast, Model};
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// The prediction fields every table object carries (CONTRACT:
/// `expected_free_at`, `expected_free_p80`, `predicted_from`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prediction {
    pub expected_free_at: Option<String>,
    pub expected_free_p80: Option<String>,
    pub predicted_from: usize,
}

impl From<Option<&Forecast>> for Prediction {
    fn from(f: Option<&Forecast>) -> Prediction {
        f.map_or_else(Prediction::default, |f| Prediction {
            expected_free_at: Some(crate::clock::format(f.p50)),
            expected_free_p80: Some(crate::clock::format(f.p80)),
            predicted_from: f.from,
        })
    }
}

/// A table as clients see it: its row and its prediction.
#[derive(Debug, Serialize)]
pub struct Predicted<'a> {
    #[serde(flatten)]
    pub table: &'a Table,
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// The current model, shared by the hub (which renders tables for
/// clients), the waitlist quote and the refit task; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Predictor {
    /// Replaced whole by the refit task; readers clone the `Arc` and let
    /// go (std lock: never held across an await).
    model: Arc<RwLock<Option<Arc<Model>>>>,
}

impl Predictor {
    /// The model, if there is enough history for one.
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Installs a newly fitted model (or `None`: too little history).
    pub fn replace(&self, model: Option<Model>) {
        *self
            .model
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = model.map(Arc::new);
    }

    /// The forecast for `table` as of `at`: only an occupied table with a
    /// readable `since` has one.
    pub fn forecast(
        &self,
        model: Option<&Model>,
        table: &Table,
        at: SystemTime,
    ) -> Option<Forecast> {
        if table.state != TableState::Occupied {
            return None;
        }
        let seated = crate::clock::parse(&table.since)?;
        let size = table.people.unwrap_or(table.seats).max(1);
        model.map(|m| m.forecast(size, seated, at))
    }

    /// `tables` with their predictions as of `at`.
    pub fn tables<'a>(&self, tables: &'a [Table], at: SystemTime) -> Vec<Predicted<'a>> {
        let model = self.model();
        tables
            .iter()
            .map(|table| Predicted {
                table,
                prediction: Prediction::from(self.forecast(model.as_deref(), table, at).as_ref()),
            })
            .collect()
    }

    /// `table` with its prediction as of `at`.
    pub fn table<'a>(&self, table: &'a Table, at: SystemTime) -> Predicted<'a> {
        let model = self.model();
        Predicted {
            table,
            prediction: Prediction::from(self.forecast(model.as_deref(), table, at).as_ref()),
        }
    }

    /// The event's JSON (as [`Event`] serialises it, in the same field
    /// order) with its table, if it carries one, predicted as of the
    /// event's `ts`; other events exactly as stored.
    pub fn event_json(&self, event: &Event) -> String {
        let plain = || serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        let Some(table) = event.data.table() else {
            return plain();
        };
        let at = crate::clock::parse(&event.ts).unwrap_or(SystemTime::UNIX_EPOCH);
        let (Ok(mut data), Ok(predicted)) = (
            event.data.to_json(),
            serde_json::to_value(self.table(table, at)),
        ) else {
            return plain();
        };
        match data.get_mut("table") {
            Some(slot) => *slot = predicted,
            None => return plain(),
        }
        let wire = Wire {
            seq: event.seq,
            ts: &event.ts,
            kind: event.kind(),
            table: event.table,
            actor: &event.actor,
            data,
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| plain())
    }
}

/// [`Event`]'s wire shape with its `data` already built.
#[derive(Serialize)]
struct Wire<'a> {
    seq: crate::domain::Seq,
    ts: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    table: Option<crate::domain::TableId>,
    actor: &'a crate::domain::Actor,
    data: serde_json::Value,
}
