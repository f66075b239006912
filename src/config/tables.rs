//! `[[tables]]`: the floor plan that seeds an empty database.

use super::error::{ConfigError, key_error};
use crate::domain::{Layout, TableId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One `[[tables]]` entry exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub id: i64,
    pub number: Option<String>,
    #[serde(default)]
    pub zone: String,
    #[serde(default = "default_seats")]
    pub seats: u32,
    #[serde(default)]
    pub x: f64,
    #[serde(default)]
    pub y: f64,
    #[serde(default = "one")]
    pub w: f64,
    #[serde(default = "one")]
    pub h: f64,
    #[serde(default = "rect")]
    pub shape: String,
    /// Ids of tables this one can be pushed together with; declaring a
    /// join on one of the two tables is enough.
    #[serde(default)]
    pub joins: Vec<i64>,
    /// Seats this table gives a combination (default: its `seats`).
    pub combined_seats: Option<u32>,
}

fn default_seats() -> u32 {
    4
}
fn one() -> f64 {
    1.0
}
fn rect() -> String {
    "rect".into()
}

/// A checked `[[tables]]` entry.
#[derive(Debug, Clone)]
pub struct TableSeed {
    pub id: TableId,
    pub number: String,
    pub zone: String,
    pub seats: u32,
    pub layout: Layout,
    /// Both sides of every declared join, ascending.
    pub joins: Vec<TableId>,
    pub combined_seats: Option<u32>,
}

/// Checks the entries against each other and the rules of
/// [`crate::tables`] (the same the API applies).
pub(super) fn check(raw: Vec<Table>) -> Result<Vec<TableSeed>, ConfigError> {
    let mut ids = HashSet::new();
    let mut numbers = HashSet::new();
    let mut tables = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let key = format!("tables[{i}]");
        if let Err(message) = crate::tables::check_id(t.id) {
            return Err(key_error(format!("{key}.id"), message));
        }
        if !ids.insert(t.id) {
            return Err(key_error(
                format!("{key}.id"),
                format!("duplicate id {}", t.id),
            ));
        }
        let number = t.number.unwrap_or_else(|| t.id.to_string());
        // The same rule the writer applies when it seeds the table: a
        // number it would refuse must not pass `mesero check`.
        crate::tables::check_number(&number).map_err(|m| key_error(format!("{key}.number"), m))?;
        if !numbers.insert(number.clone()) {
            return Err(key_error(
                format!("{key}.number"),
                format!("duplicate number {number:?}"),
            ));
        }
        let layout = Layout {
            x: t.x,
            y: t.y,
            w: t.w,
            h: t.h,
            shape: t
                .shape
                .parse()
                .map_err(|e: String| key_error(format!("{key}.shape"), e))?,
        };
        crate::tables::check_layout(&layout)
            .map_err(|(field, msg)| key_error(format!("{key}.{field}"), msg))?;
        crate::tables::check_seats(t.seats)
            .map_err(|msg| key_error(format!("{key}.seats"), msg))?;
        let joins = crate::tables::check_joins(t.id, &t.joins)
            .map_err(|msg| key_error(format!("{key}.joins"), msg))?;
        if let Some(seats) = t.combined_seats {
            crate::tables::check_combined_seats(seats)
                .map_err(|msg| key_error(format!("{key}.combined_seats"), msg))?;
        }
        tables.push(TableSeed {
            id: t.id,
            number,
            zone: t.zone,
            seats: t.seats,
            layout,
            joins,
            combined_seats: t.combined_seats,
        });
    }
    symmetric_joins(&mut tables)?;
    Ok(tables)
}

/// Checks that every join names a declared table and adds the other side
/// of each, so the seeded rows agree whichever side declared it.
fn symmetric_joins(tables: &mut [TableSeed]) -> Result<(), ConfigError> {
    let ids: HashSet<TableId> = tables.iter().map(|t| t.id).collect();
    let mut pairs = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for other in &t.joins {
            if !ids.contains(other) {
                return Err(key_error(
                    format!("tables[{i}].joins"),
                    format!("no table with id {other} is declared"),
                ));
            }
            pairs.push((*other, t.id));
        }
    }
    for (at, other) in pairs {
        if let Some(t) = tables.iter_mut().find(|t| t.id == at) {
            if !t.joins.contains(&other) {
                t.joins.push(other);
                t.joins.sort_unstable();
            }
        }
    }
    for (i, t) in tables.iter().enumerate() {
        if t.joins.len() > crate::tables::MAX_JOINS {
            return Err(key_error(
                format!("tables[{i}].joins"),
                format!(
                    "table {} is joined with {} tables (counting joins declared on the others); at most {}",
                    t.id,
                    t.joins.len(),
                    crate::tables::MAX_JOINS
                ),
            ));
        }
    }
    Ok(())
}
