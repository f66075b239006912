//! `mesero db backup` and `mesero db restore`: what they print. The file
//! work, its checks and how a running daemon is detected are in
//! `store::backup`.

use super::say;
use crate::config::Config;
use anyhow::Context as _;
use std::path::Path;

pub fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    let live = &config.storage.path;
    crate::store::backup(live, file)
        .with_context(|| format!("backing up {} to {}", live.display(), file.display()))?;
    say!("backed up {} to {}", live.display(), file.display())?;
    Ok(())
}

pub fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let live = &config.storage.path;
    let restored = crate::store::restore(file, live)
        .with_context(|| format!("restoring {} to {}", file.display(), live.display()))?;
    say!("restored {} to {}", file.display(), live.display())?;
    match restored.kept {
        Some(kept) => say!("the previous database is kept as {}", kept.display())?,
        None => say!("there was no previous database")?,
    }
    Ok(())
}
