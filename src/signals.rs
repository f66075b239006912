//! Waits for the signals that mean "stop": SIGTERM (systemd) and SIGINT
//! (Ctrl-C in a terminal).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop signals' handlers, installed when this is made: a SIGTERM that
/// arrives before anything awaits [`Stop::requested`] is kept, not the
/// default action that kills the process (tokio installs a handler only
/// when `signal` is called, and a future does nothing until polled).
pub struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    /// Installs the handlers; must be called inside the tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the first stop signal received since [`Stop::install`].
    pub async fn requested(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
