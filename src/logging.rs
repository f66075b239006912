//! Log setup. Level from `RUST_LOG`, else the config's `log.level`.
//!
//! Started by systemd (stderr is the journal), events go to journald
//! natively: each field becomes a journal field (`table = 4` is `TABLE=4`,
//! so `journalctl -u mesero TABLE=4` works), and levels become priorities
//! (`journalctl -p warning`). Otherwise, or when the journal socket cannot
//! be reached, human-readable lines go to stderr.

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The journal's identifier (`journalctl -t mesero`), whatever the binary
/// is called.
const SYSLOG_IDENTIFIER: &str = "mesero";

pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(with_quiet_broker(level)))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_broker("info")));
    let (journal, unreachable) = if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => (
                Some(
                    layer
                        // Our field names are plain (table, sensor, client,
                        // error); none collides with journald's own.
                        .with_field_prefix(None)
                        .with_syslog_identifier(SYSLOG_IDENTIFIER.into()),
                ),
                None,
            ),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    // Fails only if a subscriber is already set (tests): keep that one.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .try_init();
    if let Some(e) = unreachable {
        tracing::warn!(error = %e, "journald is not reachable; logging to stderr");
    }
}

/// systemd sets `$JOURNAL_STREAM` to `<device>:<inode>` of the journal
/// stream it connected; it is ours only if stderr is still that stream
/// (not redirected by a wrapper script, and not inherited by a child whose
/// stderr goes elsewhere).
fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_journal_stream(&v))
    else {
        return false;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned();
    stderr
        .and_then(|fd| std::fs::File::from(fd).metadata())
        .is_ok_and(|m| (m.dev(), m.ino()) == expected)
}

fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// rumqttd logs every connect and subscription at info (and some routine
/// disconnects as errors); mesero logs its own line per client instead, so
/// rumqttd is held to warnings unless the filter names it.
fn with_quiet_broker(level: &str) -> String {
    if level.contains("rumqttd") {
        level.to_string()
    } else {
        format!("{level},rumqttd=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_journal_stream() {
        assert_eq!(parse_journal_stream("8:123456"), Some((8, 123456)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }
}
