//! Test-only fault injection: makes one loop hang, to show that the
//! systemd watchdog then stops being fed (tests/systemd_notify.rs).
//!
//! `MESERO_DEBUG_HANG=<loop>` (a name given to
//! [`Liveness::register`](crate::systemd::Liveness::register), e.g.
//! `writer` or `http`) arms it; SIGUSR1 fires it, so a test picks the
//! moment (after READY and a few pings). The loop then hangs at its next
//! heartbeat tick while the rest of the daemon keeps running.
//!
//! Why not a config key: the hook exists only in debug builds (what
//! `cargo test` runs). Release builds, i.e. the .deb and
//! `scripts/cross-build.sh`, do not contain it, so nothing in a production
//! config or environment can hang the daemon; there they only log that the
//! variable is ignored.

use crate::systemd::Liveness;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The variable that arms the hook.
pub const HANG_ENV: &str = "MESERO_DEBUG_HANG";

/// Installs the SIGUSR1 handler when [`HANG_ENV`] is set; the task ends
/// with `shutdown`.
#[cfg(debug_assertions)]
pub fn arm(
    liveness: &Liveness,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let Some(name) = std::env::var(HANG_ENV).ok().filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tracing::warn!(name = ?name, "fault injection armed: SIGUSR1 hangs this loop");
    let liveness = liveness.clone();
    tasks.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = usr1.recv() => {
                let matched = liveness.hang(&name);
                tracing::warn!(name = ?name, matched, "fault injection: loop hung");
            }
        }
    });
    Ok(())
}

/// Release builds: the hook does not exist.
#[cfg(not(debug_assertions))]
pub fn arm(
    _liveness: &Liveness,
    _tasks: &TaskTracker,
    _shutdown: CancellationToken,
) -> std::io::Result<()> {
    if std::env::var_os(HANG_ENV).is_some() {
        tracing::warn!("{HANG_ENV} is ignored: fault injection exists in debug builds only");
    }
    Ok(())
}
