//! Reservation rows: the changes the writer applies to them
//! ([`ReservationChange`], applied in `writer/apply/reservations.rs`) and
//! the queries readers run.

use super::{Store, StoreError};
use crate::clock;
use crate::domain::{ReservationId, ReservationStatus, TableId};
use crate::reservations::Booking;
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use std::time::{Duration, SystemTime};

/// A new reservation from the API; the writer checks it against the
/// committed tables and reservations and draws its code.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub name: String,
    pub party_size: u32,
    pub tables: Vec<TableId>,
    pub at: SystemTime,
    pub duration: Duration,
    pub phone: Option<String>,
    pub notes: Option<String>,
}

/// Fields of a reservation that may be edited; `None` keeps the value.
/// `phone`/`notes` `Some(None)` clears them.
#[derive(Debug, Clone, Default)]
pub struct ReservationPatch {
    pub name: Option<String>,
    pub party_size: Option<u32>,
    pub tables: Option<Vec<TableId>>,
    pub at: Option<SystemTime>,
    pub duration: Option<Duration>,
    pub phone: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

/// What happens to a reservation, or to one of its tables. The table
/// parts go in the same [`super::Change::All`] as the reservation part, so
/// a combination changes as one batch; each is a no-op when the table is
/// no longer in the state it applies to, so a race with a sensor or a
/// host never fails the whole batch.
#[derive(Debug, Clone)]
pub enum ReservationChange {
    /// `reservation.created`.
    Create(NewReservation),
    /// `reservation.updated`; re-checked like a new one.
    Update {
        id: ReservationId,
        patch: ReservationPatch,
    },
    /// Booked → cancelled, `reservation.cancelled`.
    Cancel { id: ReservationId },
    /// Booked → seated, `reservation.checked_in`; refused before the
    /// check-in window opens (`opens`).
    CheckIn {
        id: ReservationId,
        opens: SystemTime,
    },
    /// Booked → no_show, `reservation.no_show`.
    NoShow { id: ReservationId },
    /// A free table becomes `reserved` for the reservation.
    HoldTable {
        table: TableId,
        reservation: ReservationId,
    },
    /// The table becomes `occupied` by the reservation's party.
    SeatTable {
        table: TableId,
        reservation: ReservationId,
    },
    /// A table still reserved for the reservation becomes `free`; one
    /// that is only linked to it (walk-ins took it) is unlinked.
    ReleaseTable {
        table: TableId,
        reservation: ReservationId,
    },
}

/// Which reservations a list shows.
#[derive(Debug, Clone, Default)]
pub struct ReservationFilter {
    /// `at` in `[from, to)`.
    pub from: Option<SystemTime>,
    pub to: Option<SystemTime>,
    /// Empty: all.
    pub statuses: Vec<ReservationStatus>,
    pub limit: usize,
}

const COLUMNS: &str = "id, code, name, party_size, tables, at, duration_s, status, phone, notes, created_at, seated_at";

fn booking(row: &Row<'_>) -> rusqlite::Result<Booking> {
    let time = |text: String| clock::parse(&text).unwrap_or(SystemTime::UNIX_EPOCH);
    let status: String = row.get(7)?;
    Ok(Booking {
        id: row.get(0)?,
        code: row.get(1)?,
        name: row.get(2)?,
        party_size: row.get(3)?,
        // Only the writer fills these, from checked values; a row edited
        // by hand reads as no tables / cancelled rather than failing.
        tables: serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or_default(),
        at: time(row.get(5)?),
        duration: Duration::from_secs(row.get::<_, i64>(6)?.try_into().unwrap_or(0)),
        status: status.parse().unwrap_or(ReservationStatus::Cancelled),
        phone: row.get(8)?,
        notes: row.get(9)?,
        created_at: time(row.get(10)?),
        seated_at: row.get::<_, Option<String>>(11)?.map(time),
    })
}

pub(super) fn by_id(conn: &Connection, id: ReservationId) -> Result<Option<Booking>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM reservations WHERE id = ?1"))?
        .query_row(params![id], booking)
        .optional()?)
}

pub(super) fn booked_by_code(conn: &Connection, code: &str) -> Result<Option<Booking>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM reservations WHERE code = ?1 AND status = 'booked'"
        ))?
        .query_row(params![code], booking)
        .optional()?)
}

/// Every reservation with one of `statuses`, by time.
pub(super) fn with_status(
    conn: &Connection,
    statuses: &[ReservationStatus],
) -> Result<Vec<Booking>, StoreError> {
    list(
        conn,
        &ReservationFilter {
            statuses: statuses.to_vec(),
            limit: usize::MAX,
            ..ReservationFilter::default()
        },
    )
}

pub(super) fn list(conn: &Connection, f: &ReservationFilter) -> Result<Vec<Booking>, StoreError> {
    use rusqlite::types::Value;
    let mut sql = format!("SELECT {COLUMNS} FROM reservations WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(from) = f.from {
        sql.push_str(" AND at >= ?");
        args.push(Value::Text(clock::format(from)));
    }
    if let Some(to) = f.to {
        sql.push_str(" AND at < ?");
        args.push(Value::Text(clock::format(to)));
    }
    if !f.statuses.is_empty() {
        let marks = vec!["?"; f.statuses.len()].join(",");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(f.statuses.iter().map(|s| Value::Text(s.as_str().into())));
    }
    sql.push_str(" ORDER BY at, id LIMIT ?");
    args.push(Value::Integer(i64::try_from(f.limit).unwrap_or(i64::MAX)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), booking)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn write(conn: &Connection, b: &Booking) -> Result<(), StoreError> {
    let tables = serde_json::to_string(&b.tables)
        .map_err(|e| StoreError::Invalid(format!("tables: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO reservations (id, code, name, party_size, tables, at, duration_s, status, phone, notes, created_at, seated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(id) DO UPDATE SET code = excluded.code, name = excluded.name,
           party_size = excluded.party_size, tables = excluded.tables, at = excluded.at,
           duration_s = excluded.duration_s, status = excluded.status, phone = excluded.phone,
           notes = excluded.notes, seated_at = excluded.seated_at",
    )?
    .execute(params![
        b.id,
        b.code,
        b.name,
        b.party_size,
        tables,
        clock::format(b.at),
        i64::try_from(b.duration.as_secs()).unwrap_or(i64::MAX),
        b.status.as_str(),
        b.phone,
        b.notes,
        clock::format(b.created_at),
        b.seated_at.map(clock::format),
    ])?;
    Ok(())
}

impl Store {
    pub async fn reservation(&self, id: ReservationId) -> Result<Option<Booking>, StoreError> {
        self.read(move |conn| by_id(conn, id)).await
    }

    /// The booked reservation with this (normalized) check-in code.
    pub async fn booked_by_code(&self, code: String) -> Result<Option<Booking>, StoreError> {
        self.read(move |conn| booked_by_code(conn, &code)).await
    }

    pub async fn reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<Booking>, StoreError> {
        self.read(move |conn| list(conn, &filter)).await
    }

    /// Today's reservations (the local day of `site.timezone`, every
    /// status), as clients see them: the snapshot's `reservations`.
    pub async fn reservations_today(&self) -> Result<Vec<crate::domain::Reservation>, StoreError> {
        let zone = self.inner.zone.clone();
        let today = crate::localtime::date_of(self.wall().now(), &zone);
        let (from, to) = crate::localtime::day_range(today, &zone);
        let list = self
            .reservations(ReservationFilter {
                from: Some(from),
                to: Some(to),
                statuses: Vec::new(),
                limit: crate::reservations::MAX_LIVE_RESERVATIONS,
            })
            .await?;
        Ok(list.iter().map(|b| b.view(&zone)).collect())
    }

    /// Every booked reservation (at most
    /// [`crate::reservations::MAX_LIVE_RESERVATIONS`]), for the scheduler.
    pub async fn booked(&self) -> Result<Vec<Booking>, StoreError> {
        self.read(|conn| with_status(conn, &[ReservationStatus::Booked]))
            .await
    }
}
