//! Floor-plan rules shared by the config seed and the HTTP API, so a table
//! that can be seeded can be created and vice versa.

use crate::domain::{Layout, TableId};

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
