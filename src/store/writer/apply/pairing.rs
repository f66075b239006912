//! What a pairing change does to its row and the log (`crate::pairing`):
//! one `pairing.*` event each. Codes and tokens arrive as digests.

use super::{Effect, invalid, record_event};
use crate::clock;
use crate::domain::{Actor, EventData, Pairing};
use crate::store::pairings::{COLUMNS, from_row};
use crate::store::writer::Committed;
use crate::store::{Applied, PairingChange, StoreError};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::SystemTime;

/// Longest tablet name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

pub(super) fn apply(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    change: PairingChange,
    actor: &Actor,
) -> Result<Effect, StoreError> {
    let now = clock::format(stamp);
    let (data, actor) = match change {
        PairingChange::Create {
            name,
            role,
            code_sha256,
            expires_at,
            max,
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                return Err(invalid(
                    "name",
                    format!("must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(invalid("name", "must not contain control characters"));
            }
            // Codes that expired unused are forgotten (their events stay).
            conn.execute(
                "DELETE FROM pairings WHERE token_sha256 IS NULL AND revoked_at IS NULL AND expires_at <= ?1",
                params![now],
            )?;
            let live: i64 = conn.query_row(
                "SELECT COUNT(*) FROM pairings WHERE revoked_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            if usize::try_from(live).unwrap_or(usize::MAX) >= max {
                return Err(StoreError::Limit(format!(
                    "{max} tablets are paired or being paired (auth.max_paired); revoke one first"
                )));
            }
            let taken: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM pairings WHERE name = ?1 AND revoked_at IS NULL)",
                params![name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(StoreError::Conflict(format!(
                    "name: a tablet named {name:?} is already paired or being paired"
                )));
            }
            conn.prepare_cached(
                "INSERT INTO pairings (name, role, code_sha256, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                name,
                role.as_str(),
                code_sha256.as_slice(),
                now,
                clock::format(expires_at)
            ])?;
            let pairing = read(conn, conn.last_insert_rowid(), &now)?;
            (EventData::PairingCreated { pairing }, actor.clone())
        }
        PairingChange::Complete {
            code_sha256,
            token_sha256,
        } => {
            let id: Option<i64> = conn
                .query_row(
                    "SELECT id FROM pairings WHERE code_sha256 = ?1 AND revoked_at IS NULL
                      AND token_sha256 IS NULL AND expires_at > ?2",
                    params![code_sha256.as_slice(), now],
                    |r| r.get(0),
                )
                .optional()?;
            let id = id.ok_or_else(|| {
                StoreError::NotFound(
                    "code: no such pairing code (it may have expired or been used)".into(),
                )
            })?;
            conn.execute(
                "UPDATE pairings SET code_sha256 = NULL, token_sha256 = ?1, paired_at = ?2 WHERE id = ?3",
                params![token_sha256.as_slice(), now, id],
            )?;
            let pairing = read(conn, id, &now)?;
            let tablet = Actor::Staff(pairing.name.clone());
            (EventData::PairingCompleted { pairing }, tablet)
        }
        PairingChange::Revoke { id } => {
            let current = conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM pairings WHERE id = ?1"),
                    params![id],
                    |row| from_row(row, &now),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("pairing {id} not found")))?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "pairing {id} is already revoked"
                )));
            }
            conn.execute(
                "UPDATE pairings SET code_sha256 = NULL, revoked_at = ?1 WHERE id = ?2",
                params![now, id],
            )?;
            let pairing = read(conn, id, &now)?;
            (EventData::PairingRevoked { pairing }, actor.clone())
        }
    };
    let event = record_event(conn, state.head + 1, &now, None, &actor, data)?;
    Ok(Effect {
        applied: Applied {
            event: Some(event),
            ..Applied::default()
        },
        ..Effect::default()
    })
}

fn read(conn: &Connection, id: i64, now: &str) -> Result<Pairing, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT {COLUMNS} FROM pairings WHERE id = ?1"),
        params![id],
        |row| from_row(row, now),
    )?)
}
