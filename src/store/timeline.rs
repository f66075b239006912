//! Time bounds on the event log, turned into seq bounds.
//!
//! The writer stamps each event `max(now, previous ts)` (see
//! [`super::writer`]), so `ts` never decreases as `seq` grows, and every
//! `ts` is the fixed-width text of [`crate::clock::format`], whose text
//! order is time order. "Events at or after T" is therefore "events from
//! some seq on": that seq is found by a binary search over the primary
//! key (a few dozen point lookups), not by scanning the log, and needs no
//! index on `ts` (schema version 2 dropped it).

use super::StoreError;
use crate::domain::Seq;
use rusqlite::{Connection, OptionalExtension as _};

/// Where a time falls in the log: the seq bounds of the events at or
/// after it, or at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Events with `ts >= t`.
    From,
    /// Events with `ts <= t`.
    Until,
}

/// The smallest seq `s` such that every kept event with `seq >= s` is on
/// the far side of `ts` (`From`: `ts >= t`; `Until`: `ts > t`), and every
/// one below it is not. With `Side::From`, the events at or after `ts` are
/// `seq > s - 1`; with `Side::Until`, those at or before it are
/// `seq <= s - 1`.
pub(super) fn first_seq_past(conn: &Connection, ts: &str, side: Side) -> Result<Seq, StoreError> {
    let head: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let mut stmt =
        conn.prepare_cached("SELECT ts FROM events WHERE seq >= ? ORDER BY seq LIMIT 1")?;
    // past(s): the first kept event at or after s is past `ts`, or there is
    // none. Monotone in s, because ts never decreases with seq.
    let mut past = |s: i64| -> Result<bool, StoreError> {
        let found: Option<String> = stmt.query_row([s], |r| r.get(0)).optional()?;
        Ok(match found {
            None => true,
            Some(at) => match side {
                Side::From => at.as_str() >= ts,
                Side::Until => at.as_str() > ts,
            },
        })
    };
    let (mut lo, mut hi) = (0i64, head.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if past(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Seq::try_from(lo).unwrap_or_default())
}
