//! Where readings that arrive over MQTT go.
//!
//! The broker does not know the occupancy engine: it hands readings to a
//! [`SensorInput`], and the daemon decides what implements it. Calls run
//! on the broker's thread for every message, so they must not block.

use crate::domain::TableId;

pub trait SensorInput: Send + Sync + 'static {
    /// A reading for the sensor `sensor`, which must be of kind `mqtt`.
    fn sensor_reading(
        &self,
        sensor: &str,
        present: bool,
        people: Option<u32>,
    ) -> Result<(), InputError>;

    /// A detector's head count for `table` (the broker has checked that the
    /// table exists). Presence is `people > 0`; it goes through the same
    /// hysteresis as any sensor, so one frame cannot flip a table.
    fn detection(&self, table: TableId, people: u32) -> Result<(), InputError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Counted as a malformed payload: the node is misconfigured.
    #[error("no sensor {0:?} of kind mqtt is configured")]
    UnknownSensor(String),
    /// Nothing consumes readings (no occupancy engine running).
    #[error("readings are not consumed: no occupancy engine is running")]
    Unavailable,
}

/// The input of a daemon without an occupancy engine: no sensor is known
/// and detections have nowhere to go.
pub struct NoEngine;

impl SensorInput for NoEngine {
    fn sensor_reading(&self, sensor: &str, _: bool, _: Option<u32>) -> Result<(), InputError> {
        Err(InputError::UnknownSensor(sensor.to_string()))
    }

    fn detection(&self, _: TableId, _: u32) -> Result<(), InputError> {
        Err(InputError::Unavailable)
    }
}
