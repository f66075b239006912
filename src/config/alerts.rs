//! `[alerts]`: when an unanswered alert escalates, and how repeats merge
//! (the rules themselves are in [`crate::alerts`]).

use super::error::ConfigError;
use super::value::{duration_in, int_in};
use crate::alerts::AlertRules;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[alerts]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    pub escalate_after: String,
    pub cooldown: String,
    pub max_escalations: i64,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            escalate_after: "2m".into(),
            cooldown: "30s".into(),
            max_escalations: 2,
        }
    }
}

/// Shortest `alerts.escalate_after`: below this a tablet would ring before
/// anyone could walk to the table.
const MIN_ESCALATE_AFTER: Duration = Duration::from_secs(5);

/// Longest `alerts.escalate_after` and `alerts.cooldown`.
const MAX_ALERT_DELAY: Duration = Duration::from_secs(86_400);

/// Most `alerts.max_escalations`: beyond a few steps nobody is listening.
const MAX_ESCALATIONS: i64 = 10;

pub(super) fn check(raw: Alerts) -> Result<AlertRules, ConfigError> {
    Ok(AlertRules {
        escalate_after: duration_in(
            "alerts.escalate_after",
            &raw.escalate_after,
            MIN_ESCALATE_AFTER,
            MAX_ALERT_DELAY,
        )?,
        cooldown: duration_in(
            "alerts.cooldown",
            &raw.cooldown,
            Duration::ZERO,
            MAX_ALERT_DELAY,
        )?,
        max_escalations: int_in(
            "alerts.max_escalations",
            raw.max_escalations,
            0,
            MAX_ESCALATIONS,
        )?,
    })
}
