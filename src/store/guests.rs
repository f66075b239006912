//! `mesero db purge-guests --before DATE` ([`super::Change::PurgeGuests`]):
//! blanks what a host typed about guests — reservation and waitlist
//! names, phones and notes — once they are over. Rows stay (party size,
//! times and status feed the analytics); the name becomes empty, phone and
//! notes null. The copies in the stored events of those reservations and
//! parties are blanked the same way, so `GET /api/v1/events` and a
//! backup made afterwards no longer hold them either.
//!
//! "Over and before the cutoff": a reservation whose time is before it and
//! that is not `booked` any more (seated, no-show or cancelled); a party
//! added before it that was seated or left. Upcoming reservations and
//! parties still in line keep their details: the host still needs them.

use super::StoreError;
use rusqlite::{Connection, params};

/// Blanks the guests' details (see the module doc) in the caller's
/// transaction; returns how many reservations and parties were purged.
pub(crate) fn purge(conn: &Connection, before: &str) -> Result<usize, StoreError> {
    let reservations = "SELECT id FROM reservations WHERE at < ?1 AND status != 'booked'";
    let parties = "SELECT id FROM waitlist WHERE added_at < ?1 AND status IN ('seated', 'left')";
    conn.execute(
        &format!(
            "UPDATE events SET data = json_set(data, '$.reservation.name', '',
                 '$.reservation.phone', NULL, '$.reservation.notes', NULL)
              WHERE type LIKE 'reservation.%'
                AND json_valid(data)
                AND json_extract(data, '$.reservation.id') IN ({reservations})"
        ),
        params![before],
    )?;
    conn.execute(
        &format!(
            "UPDATE events SET data = json_set(data, '$.party.name', '',
                 '$.party.phone', NULL, '$.party.notes', NULL)
              WHERE type LIKE 'waitlist.%'
                AND json_valid(data)
                AND json_extract(data, '$.party.id') IN ({parties})"
        ),
        params![before],
    )?;
    let purged_reservations = conn.execute(
        &format!(
            "UPDATE reservations SET name = '', phone = NULL, notes = NULL
              WHERE id IN ({reservations})
                AND (name != '' OR phone IS NOT NULL OR notes IS NOT NULL)"
        ),
        params![before],
    )?;
    let purged_parties = conn.execute(
        &format!(
            "UPDATE waitlist SET data = json_set(data, '$.name', '', '$.phone', NULL, '$.notes', NULL)
              WHERE id IN ({parties})
                AND json_valid(data)
                AND (json_extract(data, '$.name') != ''
                     OR json_extract(data, '$.phone') IS NOT NULL
                     OR json_extract(data, '$.notes') IS NOT NULL)"
        ),
        params![before],
    )?;
    Ok(purged_reservations + purged_parties)
}
