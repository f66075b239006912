//! Schema migrations, numbered in code and tracked by `PRAGMA user_version`.
//!
//! Migrations only ever get appended: migration N brings a database from
//! version N-1 to N, inside one transaction.

use super::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    // 1: tables and the append-only event log.
    "CREATE TABLE tables (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        zone TEXT NOT NULL,
        seats INTEGER NOT NULL,
        x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
        shape TEXT NOT NULL,
        state TEXT NOT NULL,
        people INTEGER,
        since TEXT NOT NULL,
        hold_until TEXT,
        reservation INTEGER
    );
    -- AUTOINCREMENT keeps the highest seq in sqlite_sequence even after
    -- retention deletes every row, so seq never goes backwards.
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        type TEXT NOT NULL,
        table_id INTEGER,
        actor TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_by_table ON events (table_id, seq);
    CREATE INDEX events_by_ts ON events (ts);",
    // 2: the retention watermark. Retention now removes only a prefix of
    // seqs and records how far; a file from version 1 may have holes in the
    // middle (it deleted by time), so the watermark starts at the highest
    // missing seq, and everything above it is known to be there. Nothing
    // reads events by time any more, so its index goes.
    "CREATE TABLE retention (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through INTEGER NOT NULL
    );
    INSERT INTO retention (id, pruned_through)
    SELECT 1, COALESCE(MAX(missing), 0) FROM (
        SELECT seq AS missing FROM sqlite_sequence
         WHERE name = 'events' AND seq > 0 AND seq NOT IN (SELECT seq FROM events)
        UNION ALL
        SELECT e.seq - 1 FROM events e
         WHERE e.seq > 1 AND NOT EXISTS (SELECT 1 FROM events p WHERE p.seq = e.seq - 1)
    );
    DROP INDEX events_by_ts;",
    // 3: alerts (SPEC §1 Alert), open until acked. `source` is the actor
    // that raised it (flood control merges its repeats, see
    // `crate::alerts`); AUTOINCREMENT so an id is never reused once
    // retention deleted old acked alerts.
    "CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_id INTEGER,
        kind TEXT NOT NULL,
        priority TEXT NOT NULL,
        target TEXT NOT NULL,
        message TEXT NOT NULL,
        count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        escalations INTEGER NOT NULL,
        acked_by TEXT,
        acked_at TEXT,
        source TEXT NOT NULL
    );
    CREATE INDEX alerts_by_source ON alerts (source, id);
    CREATE INDEX alerts_open ON alerts (id) WHERE acked_at IS NULL;",
    // 4: combinable tables and reservations. `joins` is a JSON
    // array of table ids, `combined_seats` NULL means the table's own
    // seats. A reservation's `at` is an instant in the fixed-width UTC
    // form of `clock::format` (text order is time order), `tables` a JSON
    // array of ids. Codes are unique among booked reservations only: a
    // code may come back once its reservation is over.
    "ALTER TABLE tables ADD COLUMN joins TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE tables ADD COLUMN combined_seats INTEGER;
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL,
        name TEXT NOT NULL,
        party_size INTEGER NOT NULL,
        tables TEXT NOT NULL,
        at TEXT NOT NULL,
        duration_s INTEGER NOT NULL,
        status TEXT NOT NULL,
        phone TEXT,
        notes TEXT,
        created_at TEXT NOT NULL,
        seated_at TEXT
    );
    CREATE UNIQUE INDEX reservations_booked_code ON reservations (code) WHERE status = 'booked';
    CREATE INDEX reservations_by_status ON reservations (status, at);
    CREATE INDEX reservations_by_at ON reservations (at);",
    // 5: the walk-in waitlist. A party is one JSON document (as in its
    // events); `status` and `added_at` are columns for the queries.
    // AUTOINCREMENT: a party id is never reused, so an old event never
    // names a newer party.
    "CREATE TABLE waitlist (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        status TEXT NOT NULL,
        added_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX waitlist_in_line ON waitlist (status, id);",
    // 6: the upstream bridge's watermark (`store::bridged`): the highest
    // seq the upstream broker has acknowledged, NULL until the bridge first
    // runs (it then starts from the head: history from before it was
    // switched on is not sent).
    // `IF NOT EXISTS`/`OR IGNORE`: a file rewound to an older version by
    // hand (tests/store.rs does) may still hold the table.
    "CREATE TABLE IF NOT EXISTS bridge (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        bridged_through INTEGER
    );
    INSERT OR IGNORE INTO bridge (id, bridged_through) VALUES (1, NULL);",
    // 7: visits (`store::visits`, SPEC §1 Visit): one row per seating, kept
    // `analytics.keep_days` independently of event retention. `tables` is a
    // JSON array of ids; times are RFC 3339 UTC as in events, `left_at`
    // NULL while the party is still seated. `opened_seq` is the seq of the
    // event that opened a derived visit (`visits::derive`), NULL for an
    // imported one: the writer updates the row by it, a rebuild replaces
    // derived rows and keeps imported ones.
    "CREATE TABLE visits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tables TEXT NOT NULL,
        party_size INTEGER,
        party_size_source TEXT,
        seated_at TEXT NOT NULL,
        left_at TEXT,
        origin TEXT NOT NULL,
        opened_seq INTEGER UNIQUE
    );
    CREATE INDEX visits_by_seated_at ON visits (seated_at);",
    // 8: tablet pairings (`crate::pairing`): SHA-256 digests only. A code
    // is usable while `code_sha256` is set, `expires_at` (the fixed-width
    // UTC form of `clock::format`) is ahead and `revoked_at` is NULL; a
    // tablet is paired while `token_sha256` is set and `revoked_at` NULL.
    // AUTOINCREMENT: an id is never reused, so an old event or a stale
    // admin page never names a newer tablet.
    "CREATE TABLE IF NOT EXISTS pairings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        code_sha256 BLOB UNIQUE,
        token_sha256 BLOB UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        paired_at TEXT,
        revoked_at TEXT
    );",
];

/// The schema version this binary writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Brings `conn` up to [`VERSION`]; refuses a database from a newer mesero
/// (again: [`refuse_newer`] ran before, but another process may have
/// upgraded the file since).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current = version(conn)?;
    not_newer(current)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}

/// Refuses a database from a newer mesero before anything opens it for
/// writing: a writable connection alone can change such a file (switching
/// it to WAL rewrites its header; closing the last one checkpoints the
/// WAL), and a file this binary does not understand must stay as the newer
/// mesero left it, for that mesero or a restore. A missing file is a new
/// database.
pub fn refuse_newer(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    not_newer(version(&conn)?)
}

fn version(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

fn not_newer(found: usize) -> Result<(), StoreError> {
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: VERSION,
        });
    }
    Ok(())
}
