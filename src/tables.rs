//! Floor-plan rules shared by the config seed and the HTTP API, so a table
//! that can be seeded can be created and vice versa, and the manual hold
//! rules shared by HTTP and MQTT state changes.

use crate::domain::{Layout, TableId};
use std::time::{Duration, SystemTime};

/// Highest table id (2^53 - 1): ids travel as JSON numbers to the browser
/// UI, which cannot tell larger integers apart, and an auto-assigned id
/// (highest + 1) must always fit.
pub const MAX_TABLE_ID: TableId = 9_007_199_254_740_991;

/// Largest coordinate or size accepted in plan units; beyond it a typo
/// (e.g. pixels instead of units) is more likely than a real floor plan.
pub const MAX_PLAN_UNITS: f64 = 10_000.0;

/// Most seats at one table.
pub const MAX_SEATS: u32 = 100;

/// Longest table number label.
pub const MAX_NUMBER_LEN: usize = 16;

/// Longest manual hold (`hold_minutes` of a state change, HTTP or MQTT):
/// a day. A longer one is more likely a typo than a decision, and would
/// silently disable the sensors of that table.
pub const MAX_HOLD_MINUTES: i64 = 24 * 60;

/// What happens to a table's manual hold on a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Staff change without `hold_minutes`: any earlier hold ends.
    Clear,
    /// Pin the state until this time; sensors cannot change it before.
    Until(SystemTime),
}

impl Hold {
    /// The hold a staff change asks for with `hold_minutes`: none or 0
    /// clears it, 1 to [`MAX_HOLD_MINUTES`] pins the state until `now`
    /// plus that; anything else is refused, naming the field.
    pub fn from_minutes(minutes: Option<i64>, now: SystemTime) -> Result<Hold, String> {
        match minutes {
            None | Some(0) => Ok(Hold::Clear),
            Some(m) => {
                check_hold_minutes(m)?;
                let secs = u64::try_from(m).unwrap_or(0) * 60;
                Ok(Hold::Until(now + Duration::from_secs(secs)))
            }
        }
    }
}

/// Checks `hold_minutes`: 0 (no hold) to [`MAX_HOLD_MINUTES`].
pub fn check_hold_minutes(minutes: i64) -> Result<(), String> {
    if !(0..=MAX_HOLD_MINUTES).contains(&minutes) {
        return Err(format!(
            "hold_minutes: {minutes} is out of range (0..={MAX_HOLD_MINUTES})"
        ));
    }
    Ok(())
}

/// Checks a table id: 1 to [`MAX_TABLE_ID`].
pub fn check_id(id: TableId) -> Result<(), String> {
    if !(1..=MAX_TABLE_ID).contains(&id) {
        return Err(format!("{id} is out of range (1..={MAX_TABLE_ID})"));
    }
    Ok(())
}

/// Checks a layout; on error returns the offending field and why.
pub fn check_layout(layout: &Layout) -> Result<(), (&'static str, String)> {
    for (field, value, positive) in [
        ("x", layout.x, false),
        ("y", layout.y, false),
        ("w", layout.w, true),
        ("h", layout.h, true),
    ] {
        if !value.is_finite() || value.abs() > MAX_PLAN_UNITS {
            return Err((field, format!("{value} is not a plan coordinate")));
        }
        if positive && value <= 0.0 {
            return Err((field, "must be greater than zero".into()));
        }
    }
    Ok(())
}

pub fn check_seats(seats: u32) -> Result<(), String> {
    if seats == 0 || seats > MAX_SEATS {
        return Err(format!("{seats} is out of range (1..={MAX_SEATS})"));
    }
    Ok(())
}

pub fn check_number(number: &str) -> Result<(), String> {
    if number.trim().is_empty() || number.chars().count() > MAX_NUMBER_LEN {
        return Err(format!(
            "must be 1 to {MAX_NUMBER_LEN} characters, not blank"
        ));
    }
    Ok(())
}
