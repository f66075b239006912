//! `[analytics]`: how long visits (the turn-time model's and the owner
//! report's history) are kept, independently of `storage.retention_days`.

use super::error::ConfigError;
use super::value::int_in;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[analytics]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analytics {
    pub keep_days: i64,
}

impl Default for Analytics {
    fn default() -> Self {
        // Over a year: this month can be compared with the same month
        // last year.
        Analytics { keep_days: 400 }
    }
}

#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// Finished visits seated longer ago than this are deleted by the
    /// retention task.
    pub keep: Duration,
    pub keep_days: u32,
}

pub(super) fn check(raw: Analytics) -> Result<AnalyticsConfig, ConfigError> {
    let keep_days: u32 = int_in("analytics.keep_days", raw.keep_days, 1, 3650)?;
    Ok(AnalyticsConfig {
        keep: Duration::from_secs(u64::from(keep_days) * 86_400),
        keep_days,
    })
}
