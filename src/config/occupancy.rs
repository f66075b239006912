//! `[occupancy]`: how much evidence turns a table occupied or free.

use super::error::ConfigError;
use super::value::duration_in;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[occupancy]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Occupancy {
    pub occupy_after: String,
    pub release_after: String,
    pub bussing: bool,
}

impl Default for Occupancy {
    fn default() -> Self {
        Occupancy {
            occupy_after: "10s".into(),
            release_after: "180s".into(),
            bussing: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OccupancyConfig {
    pub occupy_after: Duration,
    pub release_after: Duration,
    pub bussing: bool,
}

/// Longest occupancy delay (`occupancy.occupy_after`, `release_after`): a
/// table that needs a day of evidence is never changed by its sensors.
const MAX_OCCUPANCY_DELAY: Duration = Duration::from_secs(86_400);

/// Zero is allowed: the change then follows the first reading.
fn occupancy_delay(key: &str, value: &str) -> Result<Duration, ConfigError> {
    duration_in(key, value, Duration::ZERO, MAX_OCCUPANCY_DELAY)
}

pub(super) fn check(raw: Occupancy) -> Result<OccupancyConfig, ConfigError> {
    Ok(OccupancyConfig {
        occupy_after: occupancy_delay("occupancy.occupy_after", &raw.occupy_after)?,
        release_after: occupancy_delay("occupancy.release_after", &raw.release_after)?,
        bussing: raw.bussing,
    })
}
