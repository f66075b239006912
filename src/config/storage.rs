//! `[storage]`: where the SQLite database lives and what it keeps.

use super::error::{ConfigError, key_error};
use super::value::int_in;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[storage]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub path: String,
    pub retention_days: i64,
    pub batch_max: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: "/var/lib/mesero/mesero.db".into(),
            retention_days: 30,
            batch_max: 256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub retention_days: u32,
    /// Most commands the writer commits in one transaction.
    pub batch_max: usize,
}

pub(super) fn check(raw: Storage) -> Result<StorageConfig, ConfigError> {
    if raw.path.trim().is_empty() {
        return Err(key_error("storage.path", "must not be empty"));
    }
    let retention_days: u32 = int_in("storage.retention_days", raw.retention_days, 1, 3650)?;
    Ok(StorageConfig {
        path: PathBuf::from(raw.path),
        retention: Duration::from_secs(u64::from(retention_days) * 86_400),
        retention_days,
        batch_max: int_in("storage.batch_max", raw.batch_max, 1, 10_000)?,
    })
}
