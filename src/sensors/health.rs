//! Per-sensor health: decides when a sensor counts as faulted or recovered,
//! and how long to wait between retries while it is faulted.
//!
//! One failed read is normal on a shared I2C bus next to a kitchen, so a
//! sensor faults only after `fault_after` consecutive errors, or when it has
//! not produced a good reading for `stale_after`. While faulted, retries
//! back off exponentially so a dead chip does not hog the bus. Pure logic:
//! the caller injects time and turns each [`HealthChange`] into
//! `Engine::sensor_faulted` / `sensor_recovered` calls and events.

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::SensorError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// Consecutive failed reads before the sensor is faulted.
    pub fault_after: u32,
    /// Longest silence tolerated; `None` for edge-driven inputs (a presence
    /// pin that never changes is healthy, not silent).
    pub stale_after: Option<Duration>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            fault_after: 3,
            stale_after: Some(Duration::from_secs(30)),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Faulted { reason: String },
    Recovered,
}

#[derive(Debug, Clone)]
pub struct Health {
    cfg: HealthConfig,
    consecutive_errors: u32,
    last_ok: Instant,
    faulted: bool,
    backoff: Duration,
    last_attempt: Instant,
}

impl Health {
    /// `now` starts the staleness clock: a sensor that never answers is
    /// faulted `stale_after` after it was set up.
    pub fn new(cfg: HealthConfig, now: Instant) -> Self {
        let backoff = cfg.retry_initial;
        Health {
            cfg,
            consecutive_errors: 0,
            last_ok: now,
            faulted: false,
            backoff,
            last_attempt: now,
        }
    }

    pub fn is_faulted(&self) -> bool {
        self.faulted
    }

    pub fn record_ok(&mut self, now: Instant) -> Option<HealthChange> {
        self.consecutive_errors = 0;
        self.last_ok = now;
        self.last_attempt = now;
        self.backoff = self.cfg.retry_initial;
        if self.faulted {
            self.faulted = false;
            Some(HealthChange::Recovered)
        } else {
            None
        }
    }

    pub fn record_error(&mut self, error: &SensorError, now: Instant) -> Option<HealthChange> {
        self.consecutive_errors = self.consecutive_errors.saturating_add(1);
        self.last_attempt = now;
        if self.faulted {
            // Each failed retry while faulted doubles the wait.
            self.backoff = self.backoff.saturating_mul(2).min(self.cfg.retry_max);
            return None;
        }
        if self.consecutive_errors >= self.cfg.fault_after.max(1) {
            return Some(self.fault(format!(
                "{} consecutive read errors, last: {error}",
                self.consecutive_errors
            )));
        }
        None
    }

    /// Checks for silence; call it whenever the caller wakes up.
    pub fn check(&mut self, now: Instant) -> Option<HealthChange> {
        let limit = self.cfg.stale_after?;
        if self.faulted || now.saturating_duration_since(self.last_ok) < limit {
            return None;
        }
        self.last_attempt = now;
        Some(self.fault(format!("no reading for {} s", limit.as_secs())))
    }

    /// When the caller should try the sensor again; `None` while healthy
    /// (it is then read on its normal schedule).
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        if !self.faulted {
            return None;
        }
        Some((self.last_attempt + self.backoff).max(now))
    }

    /// When [`Health::check`] could next fault the sensor for silence.
    pub fn stale_deadline(&self) -> Option<Instant> {
        if self.faulted {
            return None;
        }
        self.cfg.stale_after.map(|limit| self.last_ok + limit)
    }

    fn fault(&mut self, reason: String) -> HealthChange {
        self.faulted = true;
        self.backoff = self.cfg.retry_initial;
        HealthChange::Faulted { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn err() -> SensorError {
        SensorError::Bus("nack".into())
    }

    #[test]
    fn faults_after_consecutive_errors_only() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthConfig::default(), t0);
        assert_eq!(h.record_error(&err(), t0), None);
        assert_eq!(h.record_error(&err(), t0 + secs(1)), None);
        assert_eq!(h.record_ok(t0 + secs(2)), None);
        assert_eq!(h.record_error(&err(), t0 + secs(3)), None);
        assert_eq!(h.record_error(&err(), t0 + secs(4)), None);
        match h.record_error(&err(), t0 + secs(5)) {
            Some(HealthChange::Faulted { reason }) => {
                assert!(reason.contains("3 consecutive"), "{reason}");
                assert!(reason.contains("nack"), "{reason}");
            }
            other => panic!("expected fault, got {other:?}"),
        }
        assert!(h.is_faulted());
        assert_eq!(h.record_error(&err(), t0 + secs(6)), None);
        assert_eq!(h.record_ok(t0 + secs(7)), Some(HealthChange::Recovered));
        assert!(!h.is_faulted());
        assert_eq!(h.record_ok(t0 + secs(8)), None);
    }

    #[test]
    fn silence_faults_and_a_reading_recovers() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthConfig::default(), t0);
        assert_eq!(h.stale_deadline(), Some(t0 + secs(30)));
        assert_eq!(h.check(t0 + secs(29)), None);
        assert!(matches!(
            h.check(t0 + secs(30)),
            Some(HealthChange::Faulted { .. })
        ));
        assert_eq!(h.check(t0 + secs(40)), None, "faults only once");
        assert_eq!(h.stale_deadline(), None);
        assert_eq!(h.record_ok(t0 + secs(41)), Some(HealthChange::Recovered));
        assert_eq!(h.stale_deadline(), Some(t0 + secs(71)));
    }

    #[test]
    fn edge_driven_sensors_never_go_stale() {
        let t0 = Instant::now();
        let cfg = HealthConfig {
            stale_after: None,
            ..HealthConfig::default()
        };
        let mut h = Health::new(cfg, t0);
        assert_eq!(h.check(t0 + secs(86_400)), None);
        assert_eq!(h.stale_deadline(), None);
    }

    #[test]
    fn retry_backoff_doubles_up_to_the_cap_and_resets() {
        let t0 = Instant::now();
        let cfg = HealthConfig {
            fault_after: 1,
            ..HealthConfig::default()
        };
        let mut h = Health::new(cfg, t0);
        assert_eq!(h.next_retry(t0), None);
        assert!(h.record_error(&err(), t0).is_some());
        assert_eq!(h.next_retry(t0), Some(t0 + secs(1)));
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            t = h.next_retry(t).unwrap();
            h.record_error(&err(), t);
            waits.push(h.next_retry(t).unwrap() - t);
        }
        let expected: Vec<Duration> = [2, 4, 8, 16, 32, 60, 60, 60].map(secs).to_vec();
        assert_eq!(waits, expected);
        assert_eq!(
            h.next_retry(t + secs(600)),
            Some(t + secs(600)),
            "overdue → now"
        );
        h.record_ok(t);
        assert_eq!(h.next_retry(t), None);
        h.record_error(&err(), t);
        assert_eq!(h.next_retry(t), Some(t + secs(1)), "backoff starts over");
    }
}
