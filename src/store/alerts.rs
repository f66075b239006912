//! The `alerts` table (schema version 3): reading rows back as
//! [`Alert`]s, for the writer (open alerts on open, the flood-control
//! lookup) and for `GET /api/v1/alerts`.

use super::{Store, StoreError};
use crate::domain::{Alert, AlertId, Priority, Target};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

const COLUMNS: &str = "id, table_id, kind, priority, target, message, count, created_at, \
                       last_at, escalations, acked_by, acked_at, source";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Alert> {
    let kind: String = row.get(2)?;
    let priority: String = row.get(3)?;
    let target: String = row.get(4)?;
    Ok(Alert {
        id: row.get(0)?,
        table: row.get(1)?,
        // Only the writer fills these columns, from the typed values; a
        // value this binary does not know (a newer mesero wrote it) is
        // read as the most attention-getting one rather than failing.
        kind: kind.parse().unwrap_or(crate::domain::AlertKind::Custom),
        priority: priority.parse().unwrap_or(Priority::Urgent),
        target: target.parse().unwrap_or(Target::All),
        message: row.get(5)?,
        count: row.get(6)?,
        created_at: row.get(7)?,
        last_at: row.get(8)?,
        escalations: row.get(9)?,
        acked_by: row.get(10)?,
        acked_at: row.get(11)?,
        source: row.get(12)?,
    })
}

/// Every open alert, oldest first.
pub(crate) fn load_open(conn: &Connection) -> Result<Vec<Alert>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE acked_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One alert, open or not.
pub(crate) fn load(conn: &Connection, id: AlertId) -> Result<Option<Alert>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row(params![id], from_row)
        .optional()?)
}

/// The newest alert `like` repeats (same source, kind, table, target and
/// message; see [`crate::alerts`]), open or not.
pub(crate) fn latest_like(conn: &Connection, like: &Alert) -> Result<Option<Alert>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM alerts
             WHERE source = ?1 AND kind = ?2 AND table_id IS ?3 AND target = ?4 AND message = ?5
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row(
            params![
                like.source,
                like.kind.as_str(),
                like.table,
                like.target.as_str(),
                like.message
            ],
            from_row,
        )
        .optional()?)
}

/// Inserts a new alert (its `id` is ignored) and returns its id.
pub(crate) fn insert(conn: &Connection, a: &Alert) -> Result<AlertId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO alerts (table_id, kind, priority, target, message, count, created_at,
                             last_at, escalations, acked_by, acked_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        a.table,
        a.kind.as_str(),
        a.priority.as_str(),
        a.target.as_str(),
        a.message,
        a.count,
        a.created_at,
        a.last_at,
        a.escalations,
        a.acked_by,
        a.acked_at,
        a.source,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes what may change on an alert: priority, count, times, ack.
pub(crate) fn update(conn: &Connection, a: &Alert) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE alerts SET priority = ?2, count = ?3, last_at = ?4, escalations = ?5,
                           acked_by = ?6, acked_at = ?7
         WHERE id = ?1",
    )?
    .execute(params![
        a.id,
        a.priority.as_str(),
        a.count,
        a.last_at,
        a.escalations,
        a.acked_by,
        a.acked_at,
    ])?;
    Ok(())
}

/// Deletes acked alerts acked before `cutoff` (RFC 3339, as stored):
/// retention, with the events that tell their story.
pub(crate) fn prune(conn: &Connection, cutoff: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM alerts WHERE acked_at IS NOT NULL AND acked_at < ?1",
        params![cutoff],
    )?)
}

impl Store {
    /// The newest `limit` alerts, open or acked, newest first (history;
    /// the open ones consistent with a seq are [`crate::hub::Hub::alerts`]).
    pub async fn alert_history(&self, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![limit], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
