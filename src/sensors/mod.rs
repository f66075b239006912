//! Sensor drivers and the vocabulary they share with the occupancy engine.
//!
//! Every driver turns its hardware into a [`Reading`] (is somebody at the
//! table, and how many if the sensor can tell). Polled I2C sensors implement
//! [`PollSensor`]; edge-driven GPIO inputs and the simulator have their own
//! push-style APIs. Failures are [`SensorError`]s, which the caller feeds to a
//! [`health::Health`] tracker to decide when a sensor counts as faulted.
//!
//! Layers, lowest first (no file imports from a file above it):
//! - this file (the shared vocabulary), [`report`] (what a sensor tells the
//!   engine), [`health`], [`sim`];
//! - the chip drivers [`amg8833`], [`vl53l0x`], [`vl53l1x`], the XSHUT
//!   [`chain`] and the GPIO state machines of [`gpio`];
//! - the hardware-independent workers: [`bus::BusWorker`] (one I2C bus) and
//!   [`gpio::GpioWorker`] (every GPIO input), stepped with injected time;
//! - [`pi`]: the rppal adapters and the blocking threads that step the
//!   workers on a Raspberry Pi;
//! - [`tasks`]: starts one thread or task per worker or simulated sensor.

pub mod amg8833;
pub mod bus;
pub mod chain;
#[cfg(test)]
pub mod fake;
pub mod gpio;
pub mod health;
pub mod pi;
pub mod report;
pub mod sim;
pub mod spec;
pub mod tasks;
pub mod vl53l0x;
pub mod vl53l1x;

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use serde::{Deserialize, Serialize};

/// What one sensor says about its table at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reading {
    pub present: bool,
    /// Head count, for sensors that can count (thermal array); `None` for
    /// sensors that only see "something is there".
    pub people: Option<u32>,
}

impl Reading {
    pub fn presence(present: bool) -> Self {
        Reading {
            present,
            people: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensorError {
    #[error("bus error: {0}")]
    Bus(String),
    #[error("sensor not found: expected {expected}, found {found}")]
    NotFound { expected: String, found: String },
    #[error("bad data: {0}")]
    BadData(String),
    #[error("timed out waiting for the sensor")]
    Timeout,
}

impl SensorError {
    /// Maps an I2C error. The bus error type is generic, so only its kind
    /// and debug text survive; that is all the health tracker reports anyway.
    pub fn from_i2c<E: embedded_hal::i2c::Error>(err: E) -> Self {
        SensorError::Bus(format!("{:?} ({:?})", err.kind(), err))
    }

    /// Maps an I2C error during the first contact with a device: an
    /// address NACK there means nothing is wired at that address.
    pub fn from_i2c_probe<E: embedded_hal::i2c::Error>(err: E, expected: &str) -> Self {
        match err.kind() {
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
            | ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown) => SensorError::NotFound {
                expected: expected.to_string(),
                found: "no device acknowledging".to_string(),
            },
            _ => SensorError::from_i2c(err),
        }
    }
}

/// A sensor the daemon polls at its own pace (the I2C chips).
pub trait PollSensor {
    /// Configures the chip; called at start and again after a fault.
    fn init(&mut self) -> Result<(), SensorError>;
    fn read(&mut self) -> Result<Reading, SensorError>;
}

/// The time-of-flight chip families that can share a bus behind XSHUT pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TofKind {
    Vl53l0x,
    Vl53l1x,
}

/// Both ST chips power up at 0x29, so several on one bus must be woken one
/// at a time and moved away before the next one wakes.
pub const TOF_DEFAULT_ADDRESS: u8 = 0x29;
