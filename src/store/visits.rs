//! Visits (schema version 7, SPEC §1 Visit): one row per seating, the
//! turn-time model's and the owner analytics' input. Rows are written by
//! the writer only; this module is the row format both sides share.

use super::StoreError;
use crate::domain::{PartySizeSource, TableId, Visit, VisitId, VisitOrigin};
use rusqlite::{Connection, Row, params};

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
