//! What a sensor tells the occupancy engine, and the channel it uses.
//!
//! A leaf module: the drivers' workers ([`super::bus`], [`super::gpio`]),
//! the threads and tasks that run them ([`super::pi`], [`super::tasks`])
//! and the engine all speak [`Report`], and none of them is needed to name
//! it.

use super::Reading;
use crate::domain::TableId;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest a sensor thread blocks before looking at the shutdown token.
pub const STOP_CHECK: Duration = Duration::from_millis(250);

/// What a call button was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonEvent {
    /// Short press: the guests want a waiter.
    Call,
    /// Long press: the guests want the bill.
    Bill,
}

/// What a sensor tells the engine task.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Reading {
        sensor: String,
        reading: Reading,
    },
    Fault {
        sensor: String,
        reason: String,
    },
    Recovered {
        sensor: String,
    },
    Button {
        sensor: String,
        event: ButtonEvent,
    },
    /// Set up and working, for inputs that have no reading to show it
    /// (a call button nobody pressed yet).
    Ready {
        sensor: String,
    },
    /// A detector's reading about `table` for the implicit sensor
    /// `sensor` (`detector:<client id>:<table>`), which the engine creates
    /// with the default `mqtt` health rules on its first reading.
    Detection {
        sensor: String,
        table: TableId,
        reading: Reading,
    },
}

/// The sending side of the engine task's queue, for sensor tasks and
/// threads. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
}

impl Reporter {
    pub fn new(tx: mpsc::Sender<Report>) -> Reporter {
        Reporter { tx }
    }

    /// From async code; waits while the queue is full. False once the
    /// engine has stopped.
    pub async fn send(&self, report: Report) -> bool {
        self.tx.send(report).await.is_ok()
    }

    /// True once the engine task is gone (its runtime is shutting down):
    /// sensor threads end then even if nobody cancelled them.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// From a sensor thread; blocks that thread (never the runtime) while
    /// the queue is full. False once the engine has stopped.
    pub fn blocking_send(&self, report: Report) -> bool {
        self.tx.blocking_send(report).is_ok()
    }
}
