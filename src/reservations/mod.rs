//! Reservations (SPEC §1 Reservation): the rules every path shares, and
//! the [`schedule`] task that holds tables and records no-shows.
//!
//! The rules a host expects (also in the README's host-stand section):
//! - **Hold**: from `reservations.hold_before` before its time until
//!   `reservations.grace` after it, each *free* table of a booked
//!   reservation is `reserved` for it (the table's `reservation` is its
//!   id). A table that is occupied (walk-ins), dirty or unknown then is left
//!   as it is; it is reserved as soon as it is free again within the
//!   window. So a host who frees a reserved table by hand sees it reserved
//!   again: to give the table away, move or cancel the reservation.
//! - **Check-in** (`POST /api/v1/reservations/check-in {"code"}`) is
//!   accepted from `reservations.early_checkin` before the time until the
//!   reservation is marked a no-show: early, on time or late, its tables
//!   become `occupied` and it becomes `seated`, in one batch of events.
//!   It also works when walk-ins sit at the table (the table is then
//!   already occupied; the host sorts out who sits where).
//! - **No-show**: not checked in `grace` after its time → status
//!   `no_show`, `reservation.no_show`, and each of its tables still
//!   reserved for it becomes `free`; the occupancy engine then re-derives
//!   it from its sensors (presence for `occupancy.occupy_after` → occupied).
//! - **Moved** (PATCH `at` or `table(s)`): checked again like a new one
//!   (excluding itself); tables reserved for it are released and the
//!   scheduler reserves the new ones if the new time is within its window.
//! - **Cancelled** (DELETE): status `cancelled` (the row is kept), its
//!   reserved tables released.
//! - Conflicts are refused and change nothing: a party larger than the
//!   seats (422 `party_size`), a time in the past or too far ahead (422
//!   `at`), an unknown table or tables that are not one combination (422
//!   `tables`), an overlap with another live (booked or seated)
//!   reservation on a shared table (409 `tables`), a check-in code no
//!   booked reservation has (404 `code`).
//! - Times are instants; see [`crate::localtime`] for local input and DST.

pub mod schedule;

use crate::domain::{Reservation, ReservationId, ReservationStatus, TableId};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::time::{Duration, SystemTime};

/// Largest party one reservation takes.
pub const MAX_PARTY: u32 = 100;

/// Most booked reservations at once (all dates); beyond it a create is
/// refused (409). Every scheduling pass reads the booked ones.
pub const MAX_LIVE_RESERVATIONS: usize = 5000;

/// Shortest and longest booking (`reservations.duration`,
/// `duration_by_size`, and a reservation's own `duration`).
pub const MIN_BOOKING: Duration = Duration::from_secs(15 * 60);
pub const MAX_BOOKING: Duration = Duration::from_secs(12 * 3600);

/// Longest `name`, `phone` and `notes`, in characters.
pub const MAX_NAME_LEN: usize = 80;
pub const MAX_PHONE_LEN: usize = 32;
pub const MAX_NOTES_LEN: usize = 500;

/// Furthest ahead a reservation may be made: beyond a year a typo in the
/// year is likelier than a booking.
pub const MAX_AHEAD: Duration = Duration::from_secs(366 * 86_400);

/// Letters of a check-in code: digits and capitals without 0/O and 1/I,
/// which are misread on a printed slip. 32 symbols: 5 bits each.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// Length of a check-in code: 32^6 ≈ 10^9 codes, so among
/// [`MAX_LIVE_RESERVATIONS`] booked ones a fresh code collides with
/// probability below 10^-5 (and is then drawn again), and guessing one is
/// hopeless for a guest; only staff can check in anyway.
pub const CODE_LEN: usize = 6;

/// A new check-in code, from the process's random hasher keys and a
/// counter (no new dependency: the code is not a secret, only unique and
/// hard to guess by chance).
pub fn new_code(salt: u64) -> String {
    let hasher = RandomState::new();
    let mut bits = hasher.hash_one((salt, SystemTime::now()));
    (0..CODE_LEN)
        .map(|_| {
            let c = CODE_ALPHABET[(bits % 32) as usize];
            bits /= 32;
            char::from(c)
        })
        .collect()
}

/// A typed or scanned code as stored: upper case, without spaces or
/// dashes (a host may type `abc-234`). `None` if it cannot be a code.
pub fn normalize_code(text: &str) -> Option<String> {
    let code: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ok = code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b));
    ok.then_some(code)
}

/// Checks a free-text field: trimmed, 1 to `max` printable characters
/// (no control characters: it is shown on tablets and printed on slips).
pub fn check_text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be blank".into());
    }
    if value.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_string())
}

/// An optional free-text field: blank means none.
pub fn check_optional(value: Option<&str>, max: usize) -> Result<Option<String>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => check_text(v, max).map(Some),
    }
}

pub fn check_party(size: u32) -> Result<(), String> {
    if !(1..=MAX_PARTY).contains(&size) {
        return Err(format!("{size} is out of range (1..={MAX_PARTY})"));
    }
    Ok(())
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` overlap.
pub fn overlaps(a: SystemTime, a_len: Duration, b: SystemTime, b_len: Duration) -> bool {
    a < b + b_len && b < a + a_len
}

/// A reservation as the store keeps it: times as instants.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub id: ReservationId,
    pub code: String,
    pub name: String,
    pub party_size: u32,
    pub tables: Vec<TableId>,
    pub at: SystemTime,
    pub duration: Duration,
    pub status: ReservationStatus,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub created_at: SystemTime,
    pub seated_at: Option<SystemTime>,
}

impl Booking {
    /// Whether it still takes its tables (booked or seated).
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            ReservationStatus::Booked | ReservationStatus::Seated
        )
    }

    /// What clients see, with `at` in the site's zone.
    pub fn view(&self, zone: &jiff::tz::TimeZone) -> Reservation {
        Reservation {
            id: self.id,
            code: self.code.clone(),
            name: self.name.clone(),
            party_size: self.party_size,
            table: match self.tables.as_slice() {
                [one] => Some(*one),
                _ => None,
            },
            tables: self.tables.clone(),
            at: crate::localtime::format_local(self.at, zone),
            duration: format!("{}m", self.duration.as_secs() / 60),
            status: self.status,
            phone: self.phone.clone(),
            notes: self.notes.clone(),
            created_at: crate::clock::format(self.created_at),
            seated_at: self.seated_at.map(crate::clock::format),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_look_alike_characters_and_normalize_what_a_host_types() {
        for salt in 0..200 {
            let code = new_code(salt);
            assert_eq!(code.len(), CODE_LEN);
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
            assert_eq!(normalize_code(&code).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalize_code(" abc-234 ").as_deref(), Some("ABC234"));
        assert_eq!(normalize_code("ABC10O"), None);
        assert_eq!(normalize_code("ABC23"), None);
    }

    #[test]
    fn ranges_that_only_touch_do_not_overlap() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = Duration::from_secs(3600);
        assert!(!overlaps(t, h, t + h, h));
        assert!(overlaps(t, h, t + h / 2, h));
        assert!(overlaps(t + h / 2, h, t, h));
    }

    #[test]
    fn text_fields_are_bounded_and_printable() {
        assert_eq!(check_text("  Ana ", MAX_NAME_LEN), Ok("Ana".into()));
        assert!(check_text(" ", MAX_NAME_LEN).is_err());
        assert!(check_text("a\nb", MAX_NAME_LEN).is_err());
        assert!(check_text(&"x".repeat(81), MAX_NAME_LEN).is_err());
        assert_eq!(check_optional(Some(""), MAX_PHONE_LEN), Ok(None));
    }
}
