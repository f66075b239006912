//! The `pairings` rows (schema version 8, `crate::pairing`): reads for the
//! admin list and the in-memory token set. Only digests are stored.

use super::{Store, StoreError};
use crate::auth::{Credential, PairedToken, Role};
use crate::domain::Pairing;
use rusqlite::{Connection, Row};

/// The columns [`from_row`] reads, in its order.
pub(crate) const COLUMNS: &str =
    "id, name, role, token_sha256 IS NOT NULL, created_at, expires_at, paired_at, revoked_at";

/// A row (selected with [`COLUMNS`]) as clients see it, its status as of
/// `now` (a `clock::format` time: text order is time order).
pub(crate) fn from_row(row: &Row<'_>, now: &str) -> rusqlite::Result<Pairing> {
    let paired: bool = row.get(3)?;
    let expires_at: String = row.get(5)?;
    let revoked_at: Option<String> = row.get(7)?;
    let status = if revoked_at.is_some() {
        "revoked"
    } else if paired {
        "paired"
    } else if expires_at.as_str() <= now {
        "expired"
    } else {
        "pending"
    };
    Ok(Pairing {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        status: status.into(),
        created_at: row.get(4)?,
        expires_at,
        paired_at: row.get(6)?,
        revoked_at,
    })
}

/// The pairings that are not revoked (pending, expired, paired), oldest
/// first.
fn list(conn: &Connection, now: &str) -> Result<Vec<Pairing>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pairings WHERE revoked_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], |row| from_row(row, now))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The tokens of paired tablets that are not revoked. A row whose role or
/// digest does not read back (edited by hand) is skipped with a warning:
/// it must not authenticate anyone.
fn tokens(conn: &Connection) -> Result<Vec<PairedToken>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, role, token_sha256 FROM pairings
          WHERE token_sha256 IS NOT NULL AND revoked_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, role, digest) = row?;
        let role = role.parse::<Role>();
        let sha256 = <[u8; 32]>::try_from(digest.as_slice());
        match (role, sha256) {
            (Ok(role), Ok(sha256)) => out.push(PairedToken {
                id,
                credential: Credential { name, role, sha256 },
            }),
            _ => tracing::warn!(id, "skipping a pairing row this mesero cannot read"),
        }
    }
    Ok(out)
}

impl Store {
    /// Pairings that are not revoked, their status as of the store's clock.
    pub async fn pairings(&self) -> Result<Vec<Pairing>, StoreError> {
        let now = crate::clock::format(self.wall().now());
        self.read(move |conn| list(conn, &now)).await
    }

    /// The tokens of the paired tablets (see [`crate::pairing::Paired`]).
    pub async fn paired_tokens(&self) -> Result<Vec<PairedToken>, StoreError> {
        self.read(|conn| tokens(conn)).await
    }
}
