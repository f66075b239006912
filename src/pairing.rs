//! Tablet pairing: one-time codes that turn into long-lived tokens.
//!
//! An admin creates a pairing (`POST /api/v1/pairings`: a name, a role, a
//! lifetime) and shows its code as a QR of
//! `https://<host>:<tls port>/pair?code=CODE`; the tablet exchanges the
//! code once (`POST /api/v1/pair`) for a token it keeps. SQLite holds only
//! SHA-256 digests of codes and tokens (`pairings`, schema version 8), so
//! neither a backup nor a stolen SD card gives a working token.
//!
//! Secrets: a code is [`CODE_LEN`] characters of a 32-letter alphabet
//! (60 bits) from the crypto provider's random source, valid at most
//! `auth.pairing_lifetime`; with `auth.pairing_attempts_per_minute`
//! guesses a minute from everyone together, finding one of the at most
//! `auth.max_paired` open codes is hopeless (2^60 / (64 · 10 a minute) is
//! beyond 10^12 years). A token is 32 random bytes (hex). Codes are looked
//! up by their digest (an index, not constant time: timing can only tell
//! something about a digest, which gives nothing about a code).
//!
//! [`Paired`] is the in-memory side, one per daemon: the paired tablets'
//! tokens that [`crate::auth::authorize`] checks (held as a snapshot, so a
//! request never waits on SQLite), reloaded after every pairing change
//! before that change is answered, so a revoked token is refused from the
//! moment `DELETE` returns. It also remembers which connections a paired
//! token authenticated (the last [`TRACKED_PER_TABLET`] per tablet), so a
//! revocation closes them, open SSE and WebSocket streams included.

use crate::auth::PairedToken;
use crate::store::{Store, StoreError};
use crate::throttle::{LOG_EVERY, Throttle};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Letters of a pairing code: digits and capitals without 0/O and 1/I,
/// so a code read aloud or typed from the screen is not mistyped.
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// Characters in a pairing code: 12 × 5 bits = 60 bits.
pub const CODE_LEN: usize = 12;

/// The window of `auth.pairing_attempts_per_minute`.
const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);

/// Connections remembered per paired tablet, newest kept: a page holds
/// one stream and a few keep-alive connections, so a revocation closes
/// everything a tablet has open unless it opened more than this many
/// connections since its oldest open one (then that one ends at its next
/// reconnect, which is refused).
pub const TRACKED_PER_TABLET: usize = 32;

/// Random bytes in a tablet token.
const TOKEN_BYTES: usize = 32;

/// Fills `buf` from the crypto provider's random source (ring's, the one
/// the TLS listener uses).
fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    tokio_rustls::rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| StoreError::Invalid("the system's random source failed".into()))
}

/// A fresh pairing code ([`CODE_LEN`] characters of [`CODE_ALPHABET`]).
pub fn new_code() -> Result<String, StoreError> {
    let mut bytes = [0u8; CODE_LEN];
    fill_random(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
        .collect())
}

/// A fresh tablet token (hex).
pub fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill_random(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A code as typed or scanned, in its stored form: upper case, without
/// spaces or dashes; `None` if it cannot be a code.
pub fn normalize_code(text: &str) -> Option<String> {
    let code: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ok = code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b));
    ok.then_some(code)
}

/// The SHA-256 of a code or token, as stored.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The paired tablets' tokens in memory, and the connections each has
/// authenticated. One per daemon, shared by the HTTP handlers.
pub struct Paired {
    /// The tokens [`crate::auth::authorize`] checks; replaced whole by
    /// [`Paired::refresh`]. A std lock: held to clone or swap an `Arc`.
    tokens: RwLock<Arc<[PairedToken]>>,
    /// Serialises reloads, so the snapshot last swapped in was read after
    /// every change answered before it (module doc).
    reload: tokio::sync::Mutex<()>,
    /// Per pairing id, the kill switches of the last
    /// [`TRACKED_PER_TABLET`] connections its token authenticated (a
    /// switch outlives its connection: an upgraded WebSocket keeps it, so
    /// the connection's end cannot drop it; the oldest goes instead, and
    /// cancelled ones). A std mutex: never held across an await.
    connections: Mutex<HashMap<i64, Vec<(u64, CancellationToken)>>>,
    /// Code exchanges in the current window (start, count), from everyone.
    /// A std mutex: held for a counter update.
    attempts: Mutex<Option<(Instant, u32)>>,
    /// Refused exchanges are logged at most once per [`LOG_EVERY`].
    pub refusals: Throttle,
}

impl Paired {
    /// Loads the paired tokens from `store`.
    pub async fn load(store: &Store) -> Result<Arc<Paired>, StoreError> {
        let tokens = store.paired_tokens().await?;
        Ok(Arc::new(Paired {
            tokens: RwLock::new(tokens.into()),
            reload: tokio::sync::Mutex::new(()),
            connections: Mutex::new(HashMap::new()),
            attempts: Mutex::new(None),
            refusals: Throttle::new(LOG_EVERY),
        }))
    }

    /// The current snapshot, for one request's check.
    pub fn tokens(&self) -> Arc<[PairedToken]> {
        Arc::clone(&self.tokens.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reloads the tokens after a pairing change committed, and closes the
    /// connections of tokens that are gone. Returns once the new snapshot
    /// is in force.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reload.lock().await;
        let fresh: Arc<[PairedToken]> = store.paired_tokens().await?.into();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&fresh);
        let gone: Vec<(u64, CancellationToken)> = {
            let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<i64> = connections
                .keys()
                .copied()
                .filter(|id| !fresh.iter().any(|t| t.id == *id))
                .collect();
            ids.iter()
                .filter_map(|id| connections.remove(id))
                .flatten()
                .collect()
        };
        for (_, kill) in gone {
            kill.cancel();
        }
        Ok(())
    }

    /// Counts one code exchange against the window; `Err(seconds)` to
    /// wait once `per_minute` were made in it.
    pub fn admit(&self, per_minute: u32, now: Instant) -> Result<(), u64> {
        admit(&self.attempts, per_minute, now)
    }

    /// Remembers that the paired token `id` authenticated the connection
    /// `conn` (whose kill switch is `kill`), so revoking it closes that
    /// connection.
    pub fn track(&self, id: i64, conn: u64, kill: &CancellationToken) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let list = connections.entry(id).or_default();
        list.retain(|(_, k)| !k.is_cancelled());
        if !list.iter().any(|(c, _)| *c == conn) {
            if list.len() >= TRACKED_PER_TABLET {
                list.remove(0);
            }
            list.push((conn, kill.clone()));
        }
    }
}

fn admit(window: &Mutex<Option<(Instant, u32)>>, per_minute: u32, now: Instant) -> Result<(), u64> {
    let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
    let (start, count) = match *window {
        Some((start, count)) if now.saturating_duration_since(start) < ATTEMPT_WINDOW => {
            (start, count)
        }
        _ => (now, 0),
    };
    if count >= per_minute {
        let left = ATTEMPT_WINDOW.saturating_sub(now.saturating_duration_since(start));
        return Err(left.as_secs().max(1));
    }
    *window = Some((start, count + 1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_its_quota_then_says_how_long_to_wait() {
        let window = Mutex::new(None);
        let start = Instant::now();
        assert!(admit(&window, 2, start).is_ok());
        assert!(admit(&window, 2, start).is_ok());
        let wait = admit(&window, 2, start + Duration::from_secs(10)).expect_err("over");
        assert_eq!(wait, 50);
        assert!(
            admit(&window, 2, start + ATTEMPT_WINDOW).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn codes_are_long_random_and_normalized_like_they_are_typed() {
        let a = new_code().expect("code");
        let b = new_code().expect("code");
        assert_eq!(a.len(), CODE_LEN);
        assert_ne!(a, b);
        assert_eq!(normalize_code(&a), Some(a.clone()));
        let typed = format!("{}-{} {}", &a[..4], &a[4..8], &a[8..]).to_lowercase();
        assert_eq!(normalize_code(&typed), Some(a));
        assert_eq!(normalize_code("ABCD"), None);
        assert_eq!(
            normalize_code("0OOOIIII1111"),
            None,
            "look-alikes are not letters"
        );
        assert_eq!(new_token().expect("token").len(), 2 * TOKEN_BYTES);
    }
}
