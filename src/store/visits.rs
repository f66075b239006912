//! Visits (schema version 7, SPEC §1 Visit): one row per seating, the
//! turn-time model's and the owner analytics' input. Rows are written by
//! the writer only; this module is the row format both sides share.
//! Derived rows carry `opened_seq` (see [`crate::visits::derive`]);
//! imported ones have none. [`rebuild`] derives them again from the log.

use super::StoreError;
use crate::domain::{PartySizeSource, TableId, Visit, VisitId, VisitOrigin};
use crate::visits::{Derived, Deriver};
use rusqlite::{Connection, Row, params};
use std::collections::BTreeMap;

/// Writes a derived visit: inserts it, or updates the row its key opened.
pub(crate) fn upsert_derived(conn: &Connection, derived: &Derived) -> Result<(), StoreError> {
    let visit = &derived.visit;
    let tables = serde_json::to_string(&visit.tables)
        .map_err(|e| StoreError::Invalid(format!("visit tables: {e}")))?;
    let key = i64::try_from(derived.key)
        .map_err(|_| StoreError::Invalid("visit key out of range".into()))?;
    conn.prepare_cached(
        "INSERT INTO visits (tables, party_size, party_size_source, seated_at, left_at, origin, opened_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (opened_seq) DO UPDATE SET tables = ?1, party_size = ?2,
             party_size_source = ?3, seated_at = ?4, left_at = ?5, origin = ?6",
    )?
    .execute(params![
        tables,
        visit.party_size,
        visit.party_size_source.map(PartySizeSource::as_str),
        visit.seated_at,
        visit.left_at,
        visit.origin.as_str(),
        key,
    ])?;
    Ok(())
}

/// The derived visits still open whose opening event is above `after`
/// (`None`: all), with their keys: where the writer's deriver goes on
/// from.
pub(crate) fn load_open_derived(
    conn: &Connection,
    after: Option<u64>,
) -> Result<Vec<Derived>, StoreError> {
    let after = after.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(
        "SELECT id, tables, party_size, party_size_source, seated_at, left_at, origin, opened_seq
           FROM visits WHERE opened_seq IS NOT NULL AND opened_seq > ?1 AND left_at IS NULL
          ORDER BY opened_seq",
    )?;
    let mut open = Vec::new();
    for row in stmt.query_map(params![after], |row| {
        Ok((read_row(row)?, row.get::<_, i64>(7)?))
    })? {
        let (visit, key) = row?;
        if let (Ok(visit), Ok(key)) = (visit, u64::try_from(key)) {
            open.push(Derived { key, visit });
        }
    }
    Ok(open)
}

/// Derives every visit again from the event log and replaces the derived
/// rows with them, in the caller's transaction. Imported visits stay, and
/// so do derived visits whose opening event retention has already deleted
/// (the log cannot say them again); one of those still open goes on.
/// Returns the deriver as of the log's head and how many rows were written.
pub(crate) fn rebuild(conn: &Connection) -> Result<(Deriver, usize), StoreError> {
    let pruned = super::pruned_through(conn)?;
    let kept_open = load_open_derived(conn, None)?
        .into_iter()
        .filter(|d| d.key <= pruned)
        .collect();
    let pruned_sql = i64::try_from(pruned).unwrap_or(i64::MAX);
    conn.execute(
        "DELETE FROM visits WHERE opened_seq IS NOT NULL AND opened_seq > ?1",
        params![pruned_sql],
    )?;
    let mut deriver = Deriver::resume(kept_open, |_| true);
    let mut rows: BTreeMap<u64, Derived> = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT seq, ts, type, table_id, actor, data FROM events WHERE seq > ?1 ORDER BY seq",
    )?;
    let mut events = stmt.query(params![pruned_sql])?;
    while let Some(row) = events.next()? {
        let event = super::event_from_row(row)?;
        for derived in deriver.on_event(&event) {
            rows.insert(derived.key, derived);
        }
    }
    for derived in rows.values() {
        upsert_derived(conn, derived)?;
    }
    Ok((deriver, rows.len()))
}

/// Deletes finished visits seated before `before` (RFC 3339 UTC):
/// `analytics.keep_days`. Returns how many went.
pub(crate) fn prune(conn: &Connection, before: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM visits WHERE left_at IS NOT NULL AND seated_at < ?1",
        params![before],
    )?)
}

/// Inserts `visit` (its `id` is ignored) and returns the new row's id.
pub(crate) fn insert(conn: &Connection, visit: &Visit) -> Result<VisitId, StoreError> {
    let tables = serde_json::to_string(&visit.tables)
        .map_err(|e| StoreError::Invalid(format!("visit tables: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO visits (tables, party_size, party_size_source, seated_at, left_at, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        tables,
        visit.party_size,
        visit.party_size_source.map(PartySizeSource::as_str),
        visit.seated_at,
        visit.left_at,
        visit.origin.as_str(),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Visits seated in `[from, to)` (RFC 3339 UTC, either bound optional), in
/// the order they were seated. A row this binary cannot read (a newer
/// mesero's) is skipped with a warning rather than failing the list.
pub(crate) fn load(
    conn: &Connection,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<Visit>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tables, party_size, party_size_source, seated_at, left_at, origin
           FROM visits
          WHERE (?1 IS NULL OR seated_at >= ?1) AND (?2 IS NULL OR seated_at < ?2)
          ORDER BY seated_at, id",
    )?;
    let mut visits = Vec::new();
    for row in stmt.query_map(params![from, to], read_row)? {
        match row? {
            Ok(visit) => visits.push(visit),
            Err((id, why)) => {
                tracing::warn!(id, why, "skipping a visit row this mesero cannot read")
            }
        }
    }
    Ok(visits)
}

type Decoded = Result<Visit, (VisitId, &'static str)>;

fn read_row(row: &Row<'_>) -> rusqlite::Result<Decoded> {
    let id: VisitId = row.get(0)?;
    let tables: String = row.get(1)?;
    let source: Option<String> = row.get(3)?;
    let origin: String = row.get(6)?;
    let Ok(tables) = serde_json::from_str::<Vec<TableId>>(&tables) else {
        return Ok(Err((id, "tables")));
    };
    let party_size_source = match source.as_deref().map(PartySizeSource::parse) {
        None => None,
        Some(Some(source)) => Some(source),
        Some(None) => return Ok(Err((id, "party_size_source"))),
    };
    let Some(origin) = VisitOrigin::parse(&origin) else {
        return Ok(Err((id, "origin")));
    };
    Ok(Ok(Visit {
        id,
        tables,
        party_size: row.get(2)?,
        party_size_source,
        seated_at: row.get(4)?,
        left_at: row.get(5)?,
        origin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(seated_at: &str, left_at: Option<&str>) -> Visit {
        Visit {
            id: 0,
            tables: vec![3, 4],
            party_size: Some(5),
            party_size_source: Some(PartySizeSource::Reservation),
            seated_at: seated_at.into(),
            left_at: left_at.map(Into::into),
            origin: VisitOrigin::Reservation,
        }
    }

    #[test]
    fn rows_round_trip_and_load_by_seated_time() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        super::super::schema::migrate(&mut conn).expect("migrate");
        let a = visit("2026-11-30T19:00:00.000Z", Some("2026-11-30T20:10:00.000Z"));
        let b = visit("2026-11-30T21:00:00.000Z", None);
        let id_a = insert(&conn, &a).expect("insert a");
        let id_b = insert(&conn, &b).expect("insert b");
        assert!(id_b > id_a);
        let all = load(&conn, None, None).expect("load");
        assert_eq!(
            all,
            [
                Visit {
                    id: id_a,
                    ..a.clone()
                },
                Visit { id: id_b, ..b }
            ]
        );
        let early = load(&conn, None, Some("2026-11-30T20:00:00.000Z")).expect("load");
        assert_eq!(early, [Visit { id: id_a, ..a }]);
    }

    #[test]
    fn an_unreadable_row_is_skipped() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        super::super::schema::migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO visits (tables, seated_at, origin) VALUES ('[1]', '2026-11-30T19:00:00.000Z', 'teleport')",
            [],
        )
        .expect("insert");
        insert(&conn, &visit("2026-11-30T20:00:00.000Z", None)).expect("insert");
        assert_eq!(load(&conn, None, None).expect("load").len(), 1);
    }
}
