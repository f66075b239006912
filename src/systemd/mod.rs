//! systemd integration without extra crates: the `sd_notify` datagram
//! protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) in
//! [`notify`], and in [`liveness`] a registry of the daemon's loops that
//! decides whether the watchdog may be fed.
//!
//! Design:
//! - [`Notifier`] holds where notifications go. [`Notifier::from_env`] reads
//!   `$NOTIFY_SOCKET` once; tests build one for a socket they bound, so they
//!   never touch the (process-global) environment. The daemon gets its
//!   notifier passed in ([`Supervision`]); nothing here is global.
//! - The environment is left as is (no `unset_environment` like C's
//!   `sd_notify(1, ...)`): mutating the environment of a multi-threaded
//!   process is unsound, and `NotifyAccess=main` already ignores children.
//! - The watchdog is fed only while every registered long-lived loop has
//!   checked in recently. A hung loop (deadlock, blocked I/O, a task that
//!   panicked) therefore stops the pings and systemd restarts the daemon,
//!   instead of a half-dead process answering `/healthz` forever.
//!
//! Why not the `sd-notify` crate (0.5.0, the newest release; its
//! repository's head sends the same way). Each point was checked against
//! its source and, for the first three, by running it:
//! - It reads `NOTIFY_SOCKET` from the environment inside every
//!   `notify` call and cannot be given a target. So a test can only point
//!   it at a socket with `std::env::set_var` (`unsafe` in edition 2024,
//!   and racy with every other test thread: the crate's own tests keep one
//!   test per file for this reason), and the only way it offers to keep
//!   children from inheriting the variable is the `unsafe`
//!   `notify_and_unset_env`, sound only before any thread starts.
//! - It has no abstract sockets: the value goes to
//!   `UnixDatagram::connect` as a path, so `NOTIFY_SOCKET=@name` (an
//!   abstract socket per `sd_notify(3)`) looks for a file called `@name`
//!   in the working directory and fails with `ENOENT`. Here the `@`
//!   becomes the leading NUL byte.
//! - It blocks: the socket is in blocking mode, and a unix datagram send
//!   waits while the receiver's queue (`net.unix.max_dgram_qlen`) is full.
//!   Against a socket nobody reads, its twelfth `notify` never returned.
//!   Here the watchdog ping is sent from a tokio task, so a manager that
//!   stops reading would stall a runtime worker; the send is non-blocking
//!   and a full queue is an error ([`Notifier::notify`]).
//! - `NotifyState::Status` is written as given, so a newline in the text
//!   starts another assignment (`STATUS=a\nREADY=1` also sends `READY=1`);
//!   here status text is put on one line.
//! - `watchdog_enabled()` returns `Some(0s)` for `WATCHDOG_USEC=0` (a zero
//!   tokio interval panics) and takes an unparsable `WATCHDOG_PID` as
//!   ours; libsystemd, and [`watchdog_timeout`] here, treat both as "no
//!   watchdog".
//!
//! The part the crate would replace is [`notify`], under 200 lines.

mod liveness;
mod notify;

pub use liveness::{DEFAULT_BEAT, Heartbeat, Liveness, run_watchdog};
pub use notify::{Notifier, watchdog_timeout};

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Supervision {
    pub notifier: Notifier,
    /// `WatchdogSec=`; `None` means no watchdog pings.
    pub watchdog: Option<Duration>,
}

impl Supervision {
    /// As systemd asked: `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env();
        let watchdog = watchdog_timeout().filter(|_| notifier.is_enabled());
        Self { notifier, watchdog }
    }

    /// Not supervised (in-process tests).
    pub fn none() -> Self {
        Self {
            notifier: Notifier::disabled(),
            watchdog: None,
        }
    }

    /// How often loops check in: four beats per watchdog timeout. A loop
    /// is stale after missing two beats (half the timeout), so one slow
    /// iteration is forgiven and a hang is still caught in time (see
    /// [`run_watchdog`]).
    pub fn beat_every(&self) -> Duration {
        self.watchdog.map_or(DEFAULT_BEAT, |t| t / 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_period_follows_the_watchdog() {
        let mut s = Supervision::none();
        assert_eq!(s.beat_every(), DEFAULT_BEAT);
        s.watchdog = Some(Duration::from_secs(30));
        assert_eq!(s.beat_every(), Duration::from_millis(7500));
    }
}
