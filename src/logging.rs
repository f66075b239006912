//! Log setup: human-readable lines on stderr, level from `RUST_LOG` or
//! the config's `log.level`.

use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(with_quiet_broker(level)))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_broker("info")));
    // Fails only if a subscriber is already set (tests): keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
