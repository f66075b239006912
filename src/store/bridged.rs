//! The upstream bridge's watermark (schema version 3): the highest seq the
//! upstream broker has acknowledged (`bridge.bridged_through`).
//!
//! The event log itself is the bridge's queue: nothing is copied. What the
//! store owes the bridge is that retention ([`Change::Prune`] with
//! `unforwarded_before`) never deletes an event above the watermark unless
//! it is older than `bridge.max_backlog_days`; such a deletion is logged
//! here, and the bridge sends the hole upstream as a `gap` (it sees
//! `pruned_through` above its watermark).
//!
//! [`Change::Prune`]: super::Change::Prune

use super::StoreError;
use crate::clock;
use crate::domain::Seq;
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::SystemTime;

/// The watermark; `None` until the bridge first ran.
pub(crate) fn watermark(conn: &Connection) -> Result<Option<Seq>, StoreError> {
    let through: Option<i64> =
        conn.query_row("SELECT bridged_through FROM bridge", [], |r| r.get(0))?;
    Ok(through.map(|t| Seq::try_from(t).unwrap_or_default()))
}

/// Raises the watermark to `through` (never lowers it).
pub(super) fn advance(conn: &Connection, through: Seq) -> Result<(), StoreError> {
    let through = i64::try_from(through).unwrap_or(i64::MAX);
    conn.execute(
        "UPDATE bridge SET bridged_through = MAX(COALESCE(bridged_through, 0), ?1)",
        params![through],
    )?;
    Ok(())
}

/// How far retention may delete when it wanted to go to `through`: not
/// past the watermark, except for events recorded before `cutoff` (now
/// minus `bridge.max_backlog_days`), which go and leave a logged gap.
pub(super) fn hold(conn: &Connection, through: Seq, cutoff: SystemTime) -> Result<Seq, StoreError> {
    let Some(bridged) = watermark(conn)? else {
        return Ok(through);
    };
    if through <= bridged {
        return Ok(through);
    }
    // `+ts`: walk the seqs above the watermark, not the time index.
    let first_young: Option<i64> = conn
        .query_row(
            "SELECT seq FROM events WHERE seq > ?1 AND +ts >= ?2 ORDER BY seq LIMIT 1",
            params![
                i64::try_from(bridged).unwrap_or(i64::MAX),
                clock::format(cutoff)
            ],
            |r| r.get(0),
        )
        .optional()?;
    let aged_through = first_young
        .map(|seq| Seq::try_from(seq.saturating_sub(1)).unwrap_or_default())
        .unwrap_or(through);
    let held = through.min(aged_through.max(bridged));
    if held > bridged {
        tracing::warn!(
            from_seq = bridged + 1,
            to_seq = held,
            "deleting events the upstream bridge never delivered: older than bridge.max_backlog_days (HQ gets a gap message)"
        );
    }
    Ok(held)
}
