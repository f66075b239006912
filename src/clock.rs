//! Wall-clock timestamps as they appear in events and tables: RFC 3339,
//! UTC, millisecond precision, fixed width (so text order is time order,
//! which the retention query relies on), and the daemon's [`Wall`] clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now() -> String {
    format(SystemTime::now())
}

pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// Seconds since the Unix epoch (the `/mesas` API's `timestamp`).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// How long a real [`Wall::sleep_until`] sleeps at most before it looks at
/// the clock again. A Pi has no battery-backed clock: it boots with a stale
/// time and NTP then steps it, perhaps by months, and an operator may set it
/// by hand. A deadline on the wall clock ("20:00 local") is met within this
/// much of the clock reaching it, however the clock got there.
pub const REWAKE: Duration = Duration::from_secs(15);

/// The daemon's wall clock: the one source of "now" for event times, holds,
/// reservations and alerts. [`Wall::system`] in the daemon; tests use
/// [`Wall::manual`] and move it, and every [`Wall::sleep_until`] waiting on
/// it wakes when it passes the deadline, so a test can walk an evening
/// (or a DST change) without waiting for it.
#[derive(Debug, Clone, Default)]
pub struct Wall {
    manual: Option<Arc<watch::Sender<SystemTime>>>,
}

impl Wall {
    pub fn system() -> Wall {
        Wall { manual: None }
    }

    /// A clock that stands at `start` until [`Wall::set`] or
    /// [`Wall::advance`] moves it.
    pub fn manual(start: SystemTime) -> Wall {
        Wall {
            manual: Some(Arc::new(watch::Sender::new(start))),
        }
    }

    pub fn now(&self) -> SystemTime {
        match &self.manual {
            Some(time) => *time.borrow(),
            None => SystemTime::now(),
        }
    }

    /// Sets a manual clock (forwards or back, like an operator or NTP
    /// would); a system clock is not ours to set, so this does nothing.
    pub fn set(&self, to: SystemTime) {
        if let Some(time) = &self.manual {
            time.send_replace(to);
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Some(time) = &self.manual {
            time.send_modify(|t| *t = t.checked_add(by).unwrap_or(*t));
        }
    }

    /// Returns once the clock reads `deadline` or later. On the system
    /// clock it re-reads the time at least every [`REWAKE`], so a clock
    /// stepped forward (or back) is noticed.
    pub async fn sleep_until(&self, deadline: SystemTime) {
        match &self.manual {
            Some(time) => {
                let mut changes = time.subscribe();
                // The sender lives as long as `self`, so `changed` only ends
                // with a new value.
                while *changes.borrow_and_update() < deadline {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
            }
            None => loop {
                let Ok(left) = deadline.duration_since(SystemTime::now()) else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(REWAKE)).await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_wakes_when_the_clock_passes_its_deadline() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let wall = Wall::manual(start);
        let deadline = start + Duration::from_secs(60);
        let sleeper = tokio::spawn({
            let wall = wall.clone();
            async move { wall.sleep_until(deadline).await }
        });
        wall.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        wall.set(deadline + Duration::from_secs(3600));
        sleeper.await.unwrap();
        assert_eq!(wall.now(), deadline + Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_returns_at_once() {
        Wall::system().sleep_until(SystemTime::UNIX_EPOCH).await;
        let wall = Wall::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(5));
        wall.sleep_until(SystemTime::UNIX_EPOCH).await;
    }
}
