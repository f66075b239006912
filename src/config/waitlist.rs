//! `[waitlist]`: what the walk-in wait quote assumes.

use super::error::ConfigError;
use super::value::duration_in;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[waitlist]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Waitlist {
    pub turn_time: String,
}

impl Default for Waitlist {
    fn default() -> Self {
        Waitlist {
            turn_time: "75m".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WaitlistConfig {
    /// How long a seated party is expected to stay (the quote's basis
    /// until turn times are learned).
    pub turn_time: Duration,
}

pub(super) fn check(raw: Waitlist) -> Result<WaitlistConfig, ConfigError> {
    Ok(WaitlistConfig {
        turn_time: duration_in(
            "waitlist.turn_time",
            &raw.turn_time,
            Duration::from_secs(5 * 60),
            Duration::from_secs(12 * 3600),
        )?,
    })
}
