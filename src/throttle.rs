//! Rate limits for log lines about what peers do wrong: whatever a hostile
//! client repeats, the log gets one line per kind per [`LOG_EVERY`], which
//! says how many were suppressed since the last. Shared by the broker and
//! the HTTP server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bad input of one kind is logged at most this often (SPEC §3).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Rate limit for log lines about bad input: one line per kind per
/// period, which says how many were suppressed before it.
pub struct Throttle {
    every: Duration,
    /// Per kind: when it was last logged and how many were dropped since.
    /// A std mutex: held for a map lookup, never across an await.
    kinds: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` if a line of `kind` may be logged at `now`.
    pub fn allow(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        match kinds.get_mut(kind) {
            Some((last, suppressed)) if now.saturating_duration_since(*last) < self.every => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_logs_once_per_period_per_kind() {
        let t = Throttle::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(t.allow("sensors", start), Some(0));
        for i in 1..=10_000u64 {
            assert_eq!(t.allow("sensors", start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow("set", start), Some(0), "kinds are independent");
        assert_eq!(
            t.allow("sensors", start + Duration::from_secs(60)),
            Some(10_000),
            "the next line says how many were suppressed"
        );
        assert_eq!(t.allow("sensors", start + Duration::from_secs(61)), None);
    }
}
