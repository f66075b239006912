//! `mesero db import-visits`, `db rebuild-visits`, `db purge-guests` and
//! `mesero report`: each opens the database through the store (its one
//! writer, so the rules and the schema are the daemon's) and leaves it
//! closed.
//!
//! With the daemon running on the same file: SQLite's locks serialize the
//! two writers (each commit waits for the other's). An import and a purge
//! write no event and touch only finished rows, so they are safe beside a
//! running daemon. A rebuild is too: derived visits are keyed by the seq of
//! the event that opened them, so the daemon's next update of an open
//! visit lands on the rebuilt row; it is simplest on a stopped daemon.

use super::say;
use crate::config::Config;
use crate::domain::Actor;
use crate::store::{Change, Store};
use anyhow::{Context as _, bail};
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

fn open(config: &Config) -> anyhow::Result<Store> {
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let hub = crate::hub::Hub::new(16, Arc::clone(&metrics));
    Store::open(config, hub, metrics)
        .with_context(|| format!("opening {}", config.storage.path.display()))
}

/// Runs `f` on a fresh store and closes it whatever `f` answered.
fn with_store<T>(
    config: &Config,
    f: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = open(config)?;
        let result = f(&store).await;
        store.shutdown().await;
        result
    })
}

pub fn import(config: &Config, file: &Path, skip_bad: bool) -> anyhow::Result<()> {
    use crate::visits::import::{MAX_IMPORT_BYTES, parse};
    let mut text = String::new();
    std::fs::File::open(file)
        .with_context(|| format!("opening {}", file.display()))?
        .take(MAX_IMPORT_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {} (UTF-8 text)", file.display()))?;
    if text.len() as u64 > MAX_IMPORT_BYTES {
        bail!(
            "{} is larger than {} MiB; split it",
            file.display(),
            MAX_IMPORT_BYTES / (1024 * 1024)
        );
    }
    with_store(config, async |store| {
        let tables = store.tables().await?;
        let parsed = parse(&text, &tables, &config.site.zone)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for bad in &parsed.bad {
            super::note(format_args!("{}: {bad}", file.display()));
        }
        if !parsed.bad.is_empty() && !skip_bad {
            bail!(
                "{} bad rows in {}; nothing was imported (fix them, or pass --skip-bad to import the {} good ones)",
                parsed.bad.len(),
                file.display(),
                parsed.visits.len()
            );
        }
        let count = parsed.visits.len();
        store
            .apply(Change::ImportVisits(parsed.visits), Actor::System)
            .await
            .context("storing the visits")?;
        say!(
            "imported {count} visits from {}{}",
            file.display(),
            if parsed.bad.is_empty() {
                String::new()
            } else {
                format!(" ({} bad rows skipped)", parsed.bad.len())
            }
        )?;
        Ok(())
    })
}

pub fn rebuild(config: &Config) -> anyhow::Result<()> {
    with_store(config, async |store| {
        let applied = store
            .apply(Change::RebuildVisits, Actor::System)
            .await
            .context("deriving the visits")?;
        say!(
            "{} visits derived from the event log (imported visits kept)",
            applied.rows
        )?;
        Ok(())
    })
}

pub fn purge(config: &Config, before: &str) -> anyhow::Result<()> {
    let date =
        crate::localtime::parse_date(before).map_err(|e| anyhow::anyhow!("--before: {e}"))?;
    let (cutoff, _) = crate::localtime::day_range(date, &config.site.zone);
    with_store(config, async |store| {
        let applied = store
            .apply(Change::PurgeGuests { before: cutoff }, Actor::System)
            .await
            .context("purging guest details")?;
        say!(
            "guest names, phones and notes removed from {} reservations and waitlist parties before {date}",
            applied.rows
        )?;
        Ok(())
    })
}

pub fn report(
    config: &Config,
    from: Option<&str>,
    to: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    with_store(config, async |store| {
        let today = crate::localtime::date_of(store.wall().now(), store.zone());
        let (from, to) = crate::visits::analytics::range(from, to, today)
            .map_err(|(field, m)| anyhow::anyhow!("--{field}: {m}"))?;
        let sensors = config.sensors.iter().map(|s| s.id.clone()).collect();
        let analytics = store.analytics(from, to, sensors).await?;
        let html =
            crate::visits::report::render(&analytics, &config.site.name, &config.site.language);
        std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
        say!("wrote the report for {from} to {to} to {}", out.display())?;
        Ok(())
    })
}
