//! Simulated sensors for demos and tests, with no hardware.
//!
//! A simulated sensor is a timeline of steps. It is either scripted, or
//! generated from a seed by a tiny deterministic PRNG (splitmix64) that acts
//! like a restaurant table: empty gaps of minutes, parties of one to six
//! staying for tens of minutes, a guest now and then leaving for the
//! restroom for a few minutes (so demos exercise the release hysteresis),
//! and nothing ever changing faster than `min_step`. Because the timeline
//! is known ahead, the caller can sleep until [`SimSensor::next_change_after`]
//! instead of polling.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::Reading;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Time since the simulation started.
    pub at: Duration,
    pub present: bool,
    pub people: Option<u32>,
}

impl Step {
    fn reading(&self) -> Reading {
        Reading {
            present: self.present,
            people: self.people,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomConfig {
    pub gap_min: Duration,
    pub gap_max: Duration,
    pub stay_min: Duration,
    pub stay_max: Duration,
    pub max_party: u32,
    /// Whether the sensor reports head counts (a thermal array) or only
    /// presence (a time-of-flight or contact sensor).
    pub counts: bool,
    /// No two changes are closer than this.
    pub min_step: Duration,
}

impl Default for RandomConfig {
    fn default() -> Self {
        RandomConfig {
            gap_min: Duration::from_secs(2 * 60),
            gap_max: Duration::from_secs(30 * 60),
            stay_min: Duration::from_secs(20 * 60),
            stay_max: Duration::from_secs(100 * 60),
            max_party: 6,
            counts: true,
            min_step: Duration::from_secs(5),
        }
    }
}

/// splitmix64: tiny, fast, and good enough to make demos look unscripted.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`, in whole seconds (so a caller sampling once a
    /// second sees each change exactly when it happens).
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo = lo.as_secs();
        let hi = hi.as_secs().max(lo);
        let offset = match (hi - lo).checked_add(1) {
            Some(span) => self.next_u64() % span,
            None => self.next_u64(),
        };
        Duration::from_secs(lo.saturating_add(offset))
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Generates the random timeline one step at a time. Cloneable so that
/// `next_change_after(&self)` can look ahead without consuming it.
#[derive(Debug, Clone)]
struct Generator {
    cfg: RandomConfig,
    rng: SplitMix,
    /// Steps decided but not handed out yet (a stay is planned whole).
    queue: VecDeque<Step>,
    cursor: Duration,
}

impl Generator {
    fn next_step(&mut self) -> Step {
        loop {
            if let Some(step) = self.queue.pop_front() {
                self.cursor = step.at;
                return step;
            }
            self.plan_visit();
        }
    }

    /// Plans one gap followed by one party's stay, in time order.
    fn plan_visit(&mut self) {
        let cfg = self.cfg.clone();
        let min_step = cfg.min_step;
        let arrive = self.cursor + self.rng.between(cfg.gap_min.max(min_step), cfg.gap_max);
        let stay = self
            .rng
            .between(cfg.stay_min.max(min_step * 3), cfg.stay_max);
        let leave = arrive + stay;
        // Parties of two are the most common; the rest spread to max_party.
        let party = if self.rng.chance(45) {
            2
        } else {
            1 + u32::try_from(self.rng.next_u64() % u64::from(cfg.max_party.max(1))).unwrap_or(0)
        }
        .min(cfg.max_party.max(1));
        let count = |n: u32| if cfg.counts { Some(n) } else { None };
        self.queue.push_back(Step {
            at: arrive,
            present: true,
            people: count(party),
        });
        if self.rng.chance(40) {
            // Somebody visits the restroom in the middle of the meal.
            let away = self
                .rng
                .between(Duration::from_secs(60), Duration::from_secs(5 * 60));
            let latest = stay.saturating_sub(away + min_step);
            let out_at = arrive + self.rng.between(min_step, latest.max(min_step));
            let back_at = out_at + away.max(min_step);
            if back_at + min_step <= leave {
                let remaining = party.saturating_sub(1);
                self.queue.push_back(Step {
                    at: out_at,
                    present: remaining > 0,
                    people: count(remaining),
                });
                self.queue.push_back(Step {
                    at: back_at,
                    present: true,
                    people: count(party),
                });
            }
        }
        self.queue.push_back(Step {
            at: leave,
            present: false,
            people: count(0),
        });
    }
}

#[derive(Debug, Clone)]
pub struct SimSensor {
    /// Steps in time order; for a random sensor, those generated so far.
    steps: Vec<Step>,
    generator: Option<Generator>,
}

impl SimSensor {
    /// Before the first step the table reads empty, without a count.
    pub fn scripted(mut steps: Vec<Step>) -> Self {
        steps.sort_by_key(|s| s.at);
        SimSensor {
            steps,
            generator: None,
        }
    }

    pub fn random(seed: u64, cfg: RandomConfig) -> Self {
        SimSensor {
            steps: Vec::new(),
            generator: Some(Generator {
                cfg,
                rng: SplitMix(seed),
                queue: VecDeque::new(),
                cursor: Duration::ZERO,
            }),
        }
    }

    pub fn reading_at(&mut self, elapsed: Duration) -> Reading {
        if let Some(generator) = self.generator.as_mut() {
            while self.steps.last().is_none_or(|s| s.at <= elapsed) {
                self.steps.push(generator.next_step());
            }
        }
        self.steps
            .iter()
            .take_while(|s| s.at <= elapsed)
            .last()
            .map(Step::reading)
            .unwrap_or_default()
    }

    /// The first instant after `elapsed` at which the reading differs from
    /// the one at `elapsed`; `None` if a script has no further change.
    pub fn next_change_after(&self, elapsed: Duration) -> Option<Duration> {
        let current = self
            .steps
            .iter()
            .take_while(|s| s.at <= elapsed)
            .last()
            .map(Step::reading)
            .unwrap_or_default();
        let mut previous = current;
        for step in self.steps.iter().filter(|s| s.at > elapsed) {
            if step.reading() != previous {
                return Some(step.at);
            }
            previous = step.reading();
        }
        // Look further ahead on a copy of the generator. A generated visit
        // always changes the reading, so this ends within a few steps.
        let mut generator = self.generator.clone()?;
        let mut previous = self.steps.last().map(Step::reading).unwrap_or_default();
        loop {
            let step = generator.next_step();
            if step.at > elapsed && step.reading() != previous {
                return Some(step.at);
            }
            previous = step.reading();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn step(at: u64, present: bool, people: Option<u32>) -> Step {
        Step {
            at: s(at),
            present,
            people,
        }
    }

    #[test]
    fn scripted_readings_and_changes() {
        let mut sim = SimSensor::scripted(vec![
            step(30, true, Some(2)),
            step(10, false, Some(0)),
            step(60, true, Some(2)),
            step(90, false, Some(0)),
        ]);
        let cases = [
            (0, Reading::default(), Some(10)),
            (
                10,
                Reading {
                    present: false,
                    people: Some(0),
                },
                Some(30),
            ),
            (
                29,
                Reading {
                    present: false,
                    people: Some(0),
                },
                Some(30),
            ),
            (
                30,
                Reading {
                    present: true,
                    people: Some(2),
                },
                Some(90),
            ),
            (
                75,
                Reading {
                    present: true,
                    people: Some(2),
                },
                Some(90),
            ),
            (
                90,
                Reading {
                    present: false,
                    people: Some(0),
                },
                None,
            ),
            (
                500,
                Reading {
                    present: false,
                    people: Some(0),
                },
                None,
            ),
        ];
        for (at, reading, next) in cases {
            assert_eq!(sim.reading_at(s(at)), reading, "reading at {at}");
            assert_eq!(sim.next_change_after(s(at)), next.map(s), "next after {at}");
        }
    }

    /// Samples a random sensor every second for `hours` and returns the
    /// (time, reading) of each change.
    fn changes(seed: u64, cfg: RandomConfig, hours: u64) -> Vec<(Duration, Reading)> {
        let mut sim = SimSensor::random(seed, cfg);
        let mut out = Vec::new();
        let mut last = Reading::default();
        for t in 0..hours * 3600 {
            let r = sim.reading_at(s(t));
            if r != last {
                out.push((s(t), r));
                last = r;
            }
        }
        out
    }

    #[test]
    fn random_is_deterministic_per_seed() {
        let a = changes(7, RandomConfig::default(), 6);
        let b = changes(7, RandomConfig::default(), 6);
        let c = changes(8, RandomConfig::default(), 6);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn random_behaves_like_a_restaurant() {
        let cfg = RandomConfig::default();
        for seed in 0..20 {
            let log = changes(seed, cfg.clone(), 12);
            assert!(log.len() >= 6, "seed {seed}: too quiet: {log:?}");
            for pair in log.windows(2) {
                assert!(
                    pair[1].0 - pair[0].0 >= cfg.min_step,
                    "seed {seed}: flicker {pair:?}"
                );
            }
            for (_, r) in &log {
                let people = r.people.unwrap_or(0);
                assert!(people <= cfg.max_party);
                assert_eq!(r.present, people > 0, "seed {seed}: {r:?}");
            }
            let occupied: u64 = log
                .windows(2)
                .filter(|w| w[0].1.present)
                .map(|w| (w[1].0 - w[0].0).as_secs())
                .sum();
            assert!(
                occupied > 3600,
                "seed {seed}: tables should be busy: {occupied} s"
            );
        }
    }

    #[test]
    fn next_change_matches_sampling() {
        let cfg = RandomConfig {
            counts: false,
            ..RandomConfig::default()
        };
        let log = changes(42, cfg.clone(), 4);
        let mut sim = SimSensor::random(42, cfg);
        // Ask before the generator has produced anything, and mid-way.
        assert_eq!(sim.next_change_after(Duration::ZERO), Some(log[0].0));
        let mut t = Duration::ZERO;
        for (at, reading) in &log {
            assert_eq!(sim.next_change_after(t), Some(*at));
            assert_eq!(sim.reading_at(*at), *reading);
            assert_eq!(reading.people, None);
            t = *at;
        }
    }
}
