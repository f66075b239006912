//! The walk-in waitlist (SPEC §1 Waitlist party): what a party is, the
//! checks on what a host types, the wait quote, and which party a free
//! table is offered to. Pure rules on plain values; the rows and events
//! are written by the store writer (`store/writer/waitlist.rs`), the
//! offers are made by [`task`] and the routes are `http/waitlist.rs`.
//!
//! A party's life: `waiting` (added) → `notified` (a table is ready:
//! `waitlist.ready` offers it) → `seated` (its tables become `occupied` in
//! the same batch) or `left` (the host removed it, from either state). If
//! an offered table is taken before the party is seated (a walk-in sat
//! down, staff changed it), the offer is withdrawn and the party waits
//! again in its place in line (`waitlist.updated`), to be offered the next
//! table that fits.
//!
//! Every party keeps what it was told and what it got: `quoted_minutes`
//! (typed by the host, else the daemon's `quote_p50_minutes`) and
//! `waited_minutes` (from `added_at` to `seated_at`, or to `left_at`),
//! the data a learned quote is trained on. With them it keeps
//! `quote_source` (model, baseline or host) and `baseline_minutes` (what
//! the fixed turn-time rule quoted at the same moment), so
//! [`score`] compares the two honestly on the same parties. The quote is
//! made when the party is added and again only if its size changes (then
//! for the new size, at its place in line).

pub mod score;
pub mod simulate;
pub mod task;

pub use crate::domain::{Party, PartyId, PartyStatus, QuoteSource};
use crate::domain::{Table, TableId, TableState};
pub use simulate::{Booked, Line};
use std::time::{Duration, SystemTime};

/// Most parties waiting or notified at once; one more is refused (409).
/// A real evening has a few dozen; the bound keeps a runaway client from
/// filling the Pi's disk and every tablet's list.
pub const MAX_WAITING: usize = 200;
/// Longest `name` (characters).
pub const MAX_NAME_LEN: usize = 80;
/// Longest `phone` (characters).
pub const MAX_PHONE_LEN: usize = 32;
/// Longest `notes` (characters).
pub const MAX_NOTES_LEN: usize = 500;
/// Largest party (as many as the largest table: [`crate::tables::MAX_SEATS`]).
pub const MAX_PARTY_SIZE: u32 = crate::tables::MAX_SEATS;
/// Longest wait a host may quote, in minutes (10 hours).
pub const MAX_QUOTED_MINUTES: u32 = 600;

/// How long a table that needs bussing is expected to take to turn.
const BUSSING: Duration = Duration::from_secs(5 * 60);
/// The shortest wait quoted for a table that is still occupied: a table
/// past its turn time is about to free, not free.
const MIN_REMAINING: Duration = Duration::from_secs(5 * 60);

/// A new party as the host typed it (checked by [`check_new`]).
#[derive(Debug, Clone)]
pub struct NewParty {
    pub name: String,
    pub party_size: u32,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub quoted_minutes: Option<u32>,
    pub quote: Quoted,
}

/// Fields a host may edit; `None` keeps the value. `phone`, `notes` and
/// `quoted_minutes` take `Some(None)` to clear.
#[derive(Debug, Clone, Default)]
pub struct PartyEdit {
    pub name: Option<String>,
    pub party_size: Option<u32>,
    pub phone: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub quoted_minutes: Option<Option<u32>>,
    /// The daemon's quote again, when `party_size` changes (made by the
    /// route for the new size at the party's place in line).
    pub quote: Option<Quoted>,
}

/// A refused value: the field and why.
pub type Invalid = (&'static str, String);

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), Invalid> {
    let len = text.chars().count();
    if len > max {
        return Err((field, format!("at most {max} characters (got {len})")));
    }
    if text.chars().any(char::is_control) {
        return Err((field, "must not contain control characters".into()));
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() {
        return Err(("name", "must not be empty".into()));
    }
    check_text("name", name, MAX_NAME_LEN)
}

pub fn check_party_size(size: u32) -> Result<(), Invalid> {
    if !(1..=MAX_PARTY_SIZE).contains(&size) {
        return Err((
            "party_size",
            format!("must be 1 to {MAX_PARTY_SIZE} (got {size})"),
        ));
    }
    Ok(())
}

fn check_optional(field: &'static str, text: Option<&String>, max: usize) -> Result<(), Invalid> {
    text.map_or(Ok(()), |t| check_text(field, t, max))
}

fn check_quoted(minutes: Option<u32>) -> Result<(), Invalid> {
    match minutes {
        Some(m) if m > MAX_QUOTED_MINUTES => Err((
            "quoted_minutes",
            format!("at most {MAX_QUOTED_MINUTES} (got {m})"),
        )),
        _ => Ok(()),
    }
}

pub fn check_new(new: &NewParty) -> Result<(), Invalid> {
    check_name(&new.name)?;
    check_party_size(new.party_size)?;
    check_optional("phone", new.phone.as_ref(), MAX_PHONE_LEN)?;
    check_optional("notes", new.notes.as_ref(), MAX_NOTES_LEN)?;
    check_quoted(new.quoted_minutes)
}

pub fn check_edit(edit: &PartyEdit) -> Result<(), Invalid> {
    if let Some(name) = &edit.name {
        check_name(name)?;
    }
    if let Some(size) = edit.party_size {
        check_party_size(size)?;
    }
    check_optional(
        "phone",
        edit.phone.as_ref().and_then(Option::as_ref),
        MAX_PHONE_LEN,
    )?;
    check_optional(
        "notes",
        edit.notes.as_ref().and_then(Option::as_ref),
        MAX_NOTES_LEN,
    )?;
    check_quoted(edit.quoted_minutes.flatten())
}

/// A proposed wait, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub p50: u32,
    pub p80: u32,
}

/// A quote with what it came from, and what the fixed rule would have said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub quote: Quote,
    /// `Model` or `Baseline` (the host's override is the party's).
    pub source: QuoteSource,
    /// Visits the model was fitted on (0 for the baseline).
    pub predicted_from: usize,
    /// [`baseline`]'s median: the fixed-turn-time quote, for scoring.
    pub baseline: u32,
}

/// The one place a walk-in's wait is estimated: the line simulated
/// against the turn-time model ([`simulate`]), or the fixed turn-time
/// rule ([`baseline`]) while the model has too little history or no
/// table or combination seats the party.
pub fn quote(
    now: SystemTime,
    line: &Line<'_>,
    size: u32,
    model: Option<&crate::turns::model::Model>,
) -> Quoted {
    let fixed = baseline(now, line.tables, line.ahead, size, line.turn);
    let learned = model.and_then(|m| simulate::quote(now, line, size, m).map(|q| (q, m.visits())));
    match learned {
        Some((quote, visits)) => Quoted {
            quote,
            source: QuoteSource::Model,
            predicted_from: visits,
            baseline: fixed.p50,
        },
        None => Quoted {
            quote: fixed,
            source: QuoteSource::Baseline,
            predicted_from: 0,
            baseline: fixed.p50,
        },
    }
}

/// The tables (one, or a combination joined in the floor plan) a party of
/// `size` can sit at among `tables`: fewest tables first (nobody pushes
/// tables together while one table will do), then fewest seats.
pub fn fits(tables: &[Table], size: u32) -> Vec<Vec<TableId>> {
    let mut fits = crate::tables::combinations(tables, size);
    fits.sort_by_key(|c| (c.tables.len(), c.seats));
    fits.into_iter().map(|c| c.tables).collect()
}

/// The fixed turn-time rule (the quote before turn times were learned,
/// and the baseline it is scored against): from the tables that fit
/// the party, how soon each is expected to be free (an occupied table at
/// `turn` after it was seated, at least a few minutes away; a table to
/// bus in a few minutes; a free one now), and how many parties ahead of
/// it could take those tables first. With `n` fitting tables, the k-th
/// party in line (0-based) gets the k-th soonest table, one turn later
/// for every round of `n`. The 80th percentile adds a third. Rounded up
/// to 5 minutes.
pub fn baseline(
    now: SystemTime,
    tables: &[Table],
    ahead: &[u32],
    size: u32,
    turn: Duration,
) -> Quote {
    let fitting = fits(tables, size);
    let free_in = |t: &Table| match t.state {
        TableState::Free => Duration::ZERO,
        TableState::Dirty => BUSSING,
        TableState::Occupied => {
            let seated = crate::clock::parse(&t.since).unwrap_or(now);
            let sat = now.duration_since(seated).unwrap_or_default();
            turn.saturating_sub(sat).max(MIN_REMAINING)
        }
        TableState::Reserved | TableState::Unknown => turn,
    };
    // A combination is free when its last table is.
    let mut soon: Vec<Duration> = fitting
        .iter()
        .map(|ids| {
            tables
                .iter()
                .filter(|t| ids.contains(&t.id))
                .map(free_in)
                .max()
                .unwrap_or(turn)
        })
        .collect();
    soon.sort();
    let wait = if soon.is_empty() {
        // Nothing seats the party alone: tables will have to be joined.
        turn
    } else {
        let competing = ahead
            .iter()
            .filter(|&&s| {
                fitting
                    .iter()
                    .any(|ids| crate::tables::seats_of(tables, ids).is_ok_and(|n| n >= s))
            })
            .count();
        let round = u32::try_from(competing / soon.len()).unwrap_or(u32::MAX);
        soon[competing % soon.len()] + turn.saturating_mul(round)
    };
    let p50 = round_up_5(wait);
    let p80 = round_up_5(wait + wait / 3);
    Quote { p50, p80 }
}

fn round_up_5(d: Duration) -> u32 {
    let minutes = d.as_secs().div_ceil(60);
    u32::try_from(minutes.div_ceil(5) * 5)
        .unwrap_or(MAX_QUOTED_MINUTES)
        .min(MAX_QUOTED_MINUTES)
}

/// The offers to make now: each waiting party, in the order it was added,
/// gets the smallest free fit that is not already offered to another
/// party. Order is kept among parties the table fits: a party that fits
/// nothing free keeps its place, and one behind it that fits a free
/// table is offered that table (a two behind a six gets the free
/// two-top, as a host would do).
pub fn offers(tables: &[Table], parties: &[Party]) -> Vec<(PartyId, Vec<TableId>)> {
    let mut taken: Vec<TableId> = parties
        .iter()
        .filter(|p| p.status == PartyStatus::Notified)
        .flat_map(|p| p.offered.iter().copied())
        .collect();
    let mut line: Vec<&Party> = parties
        .iter()
        .filter(|p| p.status == PartyStatus::Waiting)
        .collect();
    line.sort_by_key(|p| p.id);
    let mut out = Vec::new();
    for party in line {
        let free: Vec<Table> = tables
            .iter()
            .filter(|t| t.state == TableState::Free && !taken.contains(&t.id))
            .cloned()
            .collect();
        if let Some(ids) = fits(&free, party.party_size).into_iter().next() {
            taken.extend(ids.iter().copied());
            out.push((party.id, ids));
        }
    }
    out
}

/// Notified parties whose offer no longer stands: an offered table is no
/// longer free (someone else sat down, staff changed it) or is gone.
pub fn stale_offers(tables: &[Table], parties: &[Party]) -> Vec<PartyId> {
    parties
        .iter()
        .filter(|p| p.status == PartyStatus::Notified)
        .filter(|p| {
            p.offered.iter().any(|id| {
                !tables
                    .iter()
                    .any(|t| t.id == *id && t.state == TableState::Free)
            })
        })
        .map(|p| p.id)
        .collect()
}

/// Each party in line with its 1-based position (by order added).
pub fn positions(parties: &[Party]) -> Vec<(PartyId, usize)> {
    let mut line: Vec<PartyId> = parties
        .iter()
        .filter(|p| p.status.in_line())
        .map(|p| p.id)
        .collect();
    line.sort_unstable();
    line.into_iter().zip(1..).collect()
}

#[cfg(test)]
mod tests;
