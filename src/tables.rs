//! Floor-plan rules shared by the config seed and the HTTP API, so a table
//! that can be seeded can be created and vice versa, the manual hold
//! rules shared by HTTP and MQTT state changes, and combinations
//! ([`combinations`], [`seats_of`]): which tables can seat a party
//! together, shared by reservations and the waitlist.
//!
//! Combinations (SPEC §1): a table lists the tables it can be pushed
//! together with (`joins`); the relation is symmetric (declaring it on one
//! side is enough; the store keeps both sides). A combination is a set of
//! 2 to [`MAX_COMBINATION`] tables connected through joins; it seats the
//! sum of its tables' `combined_seats` (each table's own `seats` when it
//! has none), because tables pushed together lose the chairs at the sides
//! that touch.

use crate::domain::{Layout, Table, TableId};
use std::collections::{BTreeMap, BTreeSet};
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

/// Most tables one table can be joined with (`joins`).
pub const MAX_JOINS: usize = 8;

/// Most tables in one combination. Four pushed-together tables is a long
/// banquet row; more is a private event planned by hand, and the bound
/// keeps [`combinations`] cheap on any floor plan.
pub const MAX_COMBINATION: usize = 4;

/// Checks a table's `joins` on its own (the ids must also exist, which
/// the caller checks): no self-join, ids in range, at most [`MAX_JOINS`].
/// Returns them ascending without duplicates.
pub fn check_joins(id: TableId, joins: &[TableId]) -> Result<Vec<TableId>, String> {
    let set: BTreeSet<TableId> = joins.iter().copied().collect();
    if set.contains(&id) {
        return Err(format!("table {id} cannot be joined with itself"));
    }
    if set.len() > MAX_JOINS {
        return Err(format!("at most {MAX_JOINS} tables (got {})", set.len()));
    }
    for other in &set {
        check_id(*other)?;
    }
    Ok(set.into_iter().collect())
}

/// Checks `combined_seats`: 1 to [`MAX_SEATS`].
pub fn check_combined_seats(seats: u32) -> Result<(), String> {
    check_seats(seats)
}

/// Tables that can seat a party together, with their seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    /// Ascending; one id for a single table.
    pub tables: Vec<TableId>,
    pub seats: u32,
}

/// The symmetric join graph of `tables` (only edges between two of them).
fn graph(tables: &[Table]) -> BTreeMap<TableId, BTreeSet<TableId>> {
    let mut g: BTreeMap<TableId, BTreeSet<TableId>> =
        tables.iter().map(|t| (t.id, BTreeSet::new())).collect();
    for t in tables {
        for &other in &t.joins {
            if other != t.id && g.contains_key(&other) {
                g.entry(t.id).or_default().insert(other);
                g.entry(other).or_default().insert(t.id);
            }
        }
    }
    g
}

/// What `ids` seat together: a single table its `seats`; 2 to
/// [`MAX_COMBINATION`] tables connected through joins the sum of their
/// `combined_seats`. An error (for the `tables` field) when an id is
/// unknown, repeated, or the set is not one combination.
pub fn seats_of(tables: &[Table], ids: &[TableId]) -> Result<u32, String> {
    let by_id: BTreeMap<TableId, &Table> = tables.iter().map(|t| (t.id, t)).collect();
    let set: BTreeSet<TableId> = ids.iter().copied().collect();
    if set.len() != ids.len() {
        return Err("a table is listed twice".into());
    }
    if let Some(missing) = set.iter().find(|id| !by_id.contains_key(id)) {
        return Err(format!("table {missing} not found"));
    }
    match ids {
        [] => return Err("at least one table is needed".into()),
        [one] => return Ok(by_id.get(one).map_or(0, |t| t.seats)),
        _ => {}
    }
    if set.len() > MAX_COMBINATION {
        return Err(format!("at most {MAX_COMBINATION} tables can be combined"));
    }
    let g = graph(tables);
    let mut reached = BTreeSet::new();
    let mut todo: Vec<TableId> = set.iter().next().copied().into_iter().collect();
    while let Some(id) = todo.pop() {
        if reached.insert(id) {
            todo.extend(g.get(&id).into_iter().flatten().filter(|n| set.contains(n)));
        }
    }
    if reached != set {
        let ids: Vec<String> = set.iter().map(TableId::to_string).collect();
        return Err(format!(
            "tables {} are not joined (declare `joins` on the tables)",
            ids.join(", ")
        ));
    }
    Ok(set
        .iter()
        .filter_map(|id| by_id.get(id))
        .map(|t| t.combined_seats.unwrap_or(t.seats))
        .sum())
}

/// Every table, and every combination of up to [`MAX_COMBINATION`] of
/// `tables` connected through joins, that seats `party_size`, smallest fit
/// first: fewest seats, then fewest tables, then lowest ids. Only minimal
/// ones are listed (none that contains another that fits), so a party of
/// 2 is not offered 9+10. The caller passes the tables that are available (free ones for
/// a walk-in); joins to tables not passed are ignored.
pub fn combinations(tables: &[Table], party_size: u32) -> Vec<Combination> {
    let by_id: BTreeMap<TableId, &Table> = tables.iter().map(|t| (t.id, t)).collect();
    let g = graph(tables);
    let seats = |set: &BTreeSet<TableId>| -> u32 {
        if set.len() == 1 {
            set.iter()
                .filter_map(|id| by_id.get(id))
                .map(|t| t.seats)
                .sum()
        } else {
            set.iter()
                .filter_map(|id| by_id.get(id))
                .map(|t| t.combined_seats.unwrap_or(t.seats))
                .sum()
        }
    };
    let mut found: BTreeSet<(u32, usize, Vec<TableId>)> = BTreeSet::new();
    let mut seen: BTreeSet<Vec<TableId>> = BTreeSet::new();
    let mut frontier: Vec<BTreeSet<TableId>> = g.keys().map(|&id| BTreeSet::from([id])).collect();
    while let Some(set) = frontier.pop() {
        let key: Vec<TableId> = set.iter().copied().collect();
        if !seen.insert(key.clone()) {
            continue;
        }
        let n = seats(&set);
        if n >= party_size {
            found.insert((n, key.len(), key));
            continue;
        }
        if set.len() >= MAX_COMBINATION {
            continue;
        }
        for id in &set {
            for next in g.get(id).into_iter().flatten() {
                if !set.contains(next) {
                    let mut bigger = set.clone();
                    bigger.insert(*next);
                    frontier.push(bigger);
                }
            }
        }
    }
    let fits: Vec<BTreeSet<TableId>> = found
        .iter()
        .map(|(_, _, ids)| ids.iter().copied().collect())
        .collect();
    found
        .into_iter()
        .filter(|(_, _, ids)| {
            let set: BTreeSet<TableId> = ids.iter().copied().collect();
            !fits
                .iter()
                .any(|f| f.len() < set.len() && f.is_subset(&set))
        })
        .map(|(seats, _, tables)| Combination { tables, seats })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TableState;

    fn table(id: TableId, seats: u32, joins: &[TableId], combined: Option<u32>) -> Table {
        Table {
            id,
            number: id.to_string(),
            zone: String::new(),
            seats,
            layout: Layout::default(),
            state: TableState::Free,
            people: None,
            since: String::new(),
            hold_until: None,
            reservation: None,
            joins: joins.to_vec(),
            combined_seats: combined,
        }
    }

    fn plan() -> Vec<Table> {
        vec![
            table(8, 2, &[], None),
            table(9, 4, &[10], None),
            table(10, 4, &[], None),
            table(11, 4, &[10], Some(3)),
        ]
    }

    #[test]
    fn a_party_gets_the_smallest_fit_first_single_tables_before_combinations() {
        let names = |party| -> Vec<Vec<TableId>> {
            combinations(&plan(), party)
                .into_iter()
                .map(|c| c.tables)
                .collect()
        };
        assert_eq!(names(2), vec![vec![8], vec![9], vec![10], vec![11]]);
        // 10+11 seats 4 + 3 = 7; 9+10 seats 8; 9+10+11 is not minimal.
        assert_eq!(names(7), vec![vec![10, 11], vec![9, 10]]);
        assert_eq!(names(8), vec![vec![9, 10]]);
        assert_eq!(names(11), vec![vec![9, 10, 11]]);
        assert!(names(12).is_empty());
    }

    #[test]
    fn joins_are_symmetric_and_only_between_the_tables_passed() {
        // 11 declares the join to 10; asking from 10's side works.
        assert_eq!(seats_of(&plan(), &[11, 10]), Ok(7));
        assert_eq!(seats_of(&plan(), &[9]), Ok(4));
        assert!(seats_of(&plan(), &[8, 9]).is_err());
        assert!(seats_of(&plan(), &[9, 9]).is_err());
        assert!(seats_of(&plan(), &[99]).is_err());
        let without_10: Vec<Table> = plan().into_iter().filter(|t| t.id != 10).collect();
        assert!(combinations(&without_10, 7).is_empty());
    }

    #[test]
    fn joins_refuse_self_and_too_many() {
        assert_eq!(check_joins(9, &[11, 10, 10]), Ok(vec![10, 11]));
        assert!(check_joins(9, &[9]).is_err());
        let many: Vec<TableId> = (20..30).collect();
        assert!(check_joins(9, &many).is_err());
    }
}
