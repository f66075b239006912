//! GPIO inputs: presence contacts (seat pads, PIR modules) and call buttons.
//!
//! The Pi side reports pin levels on edge interrupts; everything here is a
//! pure state machine fed with `(level, instant)` so it can be tested with
//! injected time. A level counts only once it has been stable for the
//! debounce time, which needs a wake-up with no edge at all: callers sleep
//! until [`Debouncer::deadline`] and then call `poll`.

use embedded_hal::digital::InputPin;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::{Reading, SensorError};

/// A debounced level change; `at` is when the new level began (the edge),
/// not when it was confirmed, so press durations are measured edge to edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub level: bool,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce: Duration,
    stable: Option<bool>,
    pending: Option<(bool, Instant)>,
}

impl Debouncer {
    /// Starts with no known level: the first level counts once stable.
    pub fn new(debounce: Duration) -> Self {
        Debouncer {
            debounce,
            stable: None,
            pending: None,
        }
    }

    /// Starts from a level known to be settled (e.g. a released button).
    pub fn with_level(debounce: Duration, level: bool) -> Self {
        Debouncer {
            debounce,
            stable: Some(level),
            pending: None,
        }
    }

    pub fn stable(&self) -> Option<bool> {
        self.stable
    }

    /// When `poll` could confirm the pending level.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, since)| since + self.debounce)
    }

    /// Feeds a sampled level. A pending level that held until this sample
    /// is confirmed first (the caller may have woken late).
    pub fn feed(&mut self, level: bool, now: Instant) -> Option<Edge> {
        let matured = self.poll(now);
        if self.stable == Some(level) {
            self.pending = None;
            return matured;
        }
        match self.pending {
            Some((pending, _)) if pending == level => {}
            _ => self.pending = Some((level, now)),
        }
        matured.or_else(|| self.poll(now))
    }

    pub fn poll(&mut self, now: Instant) -> Option<Edge> {
        let (level, since) = self.pending?;
        if now < since + self.debounce {
            return None;
        }
        self.pending = None;
        self.stable = Some(level);
        Some(Edge { level, at: since })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceConfig {
    /// The pin reads low when somebody is there (open-collector PIRs,
    /// pads switching to ground with the Pi's pull-up).
    pub active_low: bool,
    pub debounce_ms: u64,
}

/// A presence contact: debounced pin level → [`Reading`].
#[derive(Debug, Clone)]
pub struct PresenceInput {
    active_low: bool,
    debouncer: Debouncer,
}

impl PresenceInput {
    pub fn new(cfg: &PresenceConfig) -> Self {
        PresenceInput {
            active_low: cfg.active_low,
            debouncer: Debouncer::new(Duration::from_millis(cfg.debounce_ms)),
        }
    }

    /// Feeds the electrical level; returns a reading when the debounced
    /// presence changes (including the first time it becomes known).
    pub fn on_level(&mut self, high: bool, now: Instant) -> Option<Reading> {
        let edge = self.debouncer.feed(high, now)?;
        Some(self.to_reading(edge.level))
    }

    pub fn poll(&mut self, now: Instant) -> Option<Reading> {
        let edge = self.debouncer.poll(now)?;
        Some(self.to_reading(edge.level))
    }

    pub fn sample<P: InputPin>(
        &mut self,
        pin: &mut P,
        now: Instant,
    ) -> Result<Option<Reading>, SensorError> {
        let high = pin
            .is_high()
            .map_err(|e| SensorError::Bus(format!("GPIO read: {e:?}")))?;
        Ok(self.on_level(high, now))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.debouncer.deadline()
    }

    pub fn current(&self) -> Option<Reading> {
        self.debouncer.stable().map(|level| self.to_reading(level))
    }

    fn to_reading(&self, high: bool) -> Reading {
        Reading::presence(high != self.active_low)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonEvent {
    /// Short press: the guests want a waiter.
    Call,
    /// Long press: the guests want the bill.
    Bill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonConfig {
    pub active_low: bool,
    pub debounce_ms: u64,
    pub long_press: Duration,
}

impl Default for ButtonConfig {
    fn default() -> Self {
        ButtonConfig {
            active_low: true,
            debounce_ms: 30,
            long_press: Duration::from_millis(1500),
        }
    }
}

/// A table's call button. `Bill` fires as soon as the press has lasted
/// `long_press` (so a guest holding the button gets feedback without having
/// to let go); a release before that fires `Call`. Either way one press
/// gives exactly one event.
#[derive(Debug, Clone)]
pub struct Button {
    active_low: bool,
    long_press: Duration,
    debouncer: Debouncer,
    pressed_at: Option<Instant>,
    bill_sent: bool,
}

impl Button {
    /// Assumes the button is released at start: a button found held at boot
    /// must be released once before it can fire.
    pub fn new(cfg: &ButtonConfig) -> Self {
        let released_level = cfg.active_low;
        Button {
            active_low: cfg.active_low,
            long_press: cfg.long_press,
            debouncer: Debouncer::with_level(
                Duration::from_millis(cfg.debounce_ms),
                released_level,
            ),
            pressed_at: None,
            bill_sent: false,
        }
    }

    pub fn on_level(&mut self, high: bool, now: Instant) -> Option<ButtonEvent> {
        let edge = self.debouncer.feed(high, now);
        self.advance(edge, now)
    }

    pub fn poll(&mut self, now: Instant) -> Option<ButtonEvent> {
        let edge = self.debouncer.poll(now);
        self.advance(edge, now)
    }

    /// The next instant `poll` has something to decide: a pending debounce
    /// or the long-press threshold of a held button.
    pub fn deadline(&self) -> Option<Instant> {
        let long = match (self.pressed_at, self.bill_sent) {
            (Some(at), false) => Some(at + self.long_press),
            _ => None,
        };
        match (self.debouncer.deadline(), long) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, edge: Option<Edge>, now: Instant) -> Option<ButtonEvent> {
        if let Some(edge) = edge {
            let pressed = edge.level != self.active_low;
            if pressed {
                self.pressed_at = Some(edge.at);
                self.bill_sent = false;
            } else if let Some(at) = self.pressed_at.take() {
                if !self.bill_sent {
                    // Reached when nobody polled during the hold.
                    return Some(
                        if edge.at.saturating_duration_since(at) >= self.long_press {
                            ButtonEvent::Bill
                        } else {
                            ButtonEvent::Call
                        },
                    );
                }
            }
        }
        match self.pressed_at {
            Some(at) if !self.bill_sent && now >= at + self.long_press => {
                self.bill_sent = true;
                Some(ButtonEvent::Bill)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn debouncer_ignores_bounces_and_reports_the_edge_time() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50));
        assert_eq!(d.feed(true, t0), None);
        assert_eq!(d.deadline(), Some(t0 + ms(50)));
        assert_eq!(d.poll(t0 + ms(49)), None);
        assert_eq!(
            d.poll(t0 + ms(50)),
            Some(Edge {
                level: true,
                at: t0
            })
        );
        // Bounce: low for 10 ms, back high. Nothing changes.
        assert_eq!(d.feed(false, t0 + ms(100)), None);
        assert_eq!(d.feed(true, t0 + ms(110)), None);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.poll(t0 + ms(1000)), None);
        assert_eq!(d.stable(), Some(true));
        // A new level that restarts before maturing keeps its first edge time.
        assert_eq!(d.feed(false, t0 + ms(200)), None);
        assert_eq!(d.feed(false, t0 + ms(220)), None);
        assert_eq!(
            d.poll(t0 + ms(250)),
            Some(Edge {
                level: false,
                at: t0 + ms(200)
            })
        );
    }

    #[test]
    fn debouncer_confirms_a_matured_level_on_a_late_edge() {
        let t0 = Instant::now();
        let mut d = Debouncer::with_level(ms(50), false);
        assert_eq!(d.feed(true, t0), None);
        let edge = d.feed(false, t0 + ms(500));
        assert_eq!(
            edge,
            Some(Edge {
                level: true,
                at: t0
            })
        );
        assert_eq!(d.deadline(), Some(t0 + ms(550)));
    }

    #[test]
    fn zero_debounce_passes_levels_straight_through() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO);
        assert_eq!(
            d.feed(true, t0),
            Some(Edge {
                level: true,
                at: t0
            })
        );
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn presence_input_respects_polarity() {
        let t0 = Instant::now();
        let cases = [
            (false, true, true),
            (false, false, false),
            (true, false, true),
            (true, true, false),
        ];
        for (active_low, high, present) in cases {
            let mut p = PresenceInput::new(&PresenceConfig {
                active_low,
                debounce_ms: 20,
            });
            assert_eq!(p.on_level(high, t0), None);
            assert_eq!(p.current(), None);
            assert_eq!(p.poll(t0 + ms(20)), Some(Reading::presence(present)));
            assert_eq!(p.current(), Some(Reading::presence(present)));
        }
    }

    struct Pin(bool);
    impl embedded_hal::digital::ErrorType for Pin {
        type Error = Infallible;
    }
    impl InputPin for Pin {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            Ok(self.0)
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            Ok(!self.0)
        }
    }

    #[test]
    fn presence_input_samples_a_real_pin() {
        let t0 = Instant::now();
        let mut p = PresenceInput::new(&PresenceConfig {
            active_low: true,
            debounce_ms: 0,
        });
        assert_eq!(
            p.sample(&mut Pin(false), t0).unwrap(),
            Some(Reading::presence(true))
        );
        assert_eq!(p.sample(&mut Pin(false), t0 + ms(5)).unwrap(), None);
        assert_eq!(
            p.sample(&mut Pin(true), t0 + ms(10)).unwrap(),
            Some(Reading::presence(false))
        );
        assert_eq!(p.deadline(), None);
    }

    /// Drives an active-low button: `script` is (ms, pressed) edges; polls
    /// every 10 ms like a caller honouring `deadline` would, and returns the
    /// events with the time they fired.
    fn run_button(script: &[(u64, bool)], until: u64) -> Vec<(u64, ButtonEvent)> {
        let t0 = Instant::now();
        let mut b = Button::new(&ButtonConfig::default());
        let mut out = Vec::new();
        let mut edges = script.iter().peekable();
        for t in 0..=until {
            let now = t0 + ms(t);
            while let Some(&&(at, pressed)) = edges.peek() {
                if at != t {
                    break;
                }
                edges.next();
                if let Some(ev) = b.on_level(!pressed, now) {
                    out.push((t, ev));
                }
            }
            if b.deadline().is_some_and(|d| d <= now) {
                if let Some(ev) = b.poll(now) {
                    out.push((t, ev));
                }
            }
        }
        out
    }

    /// (name, edges as (ms, pressed), expected events as (ms, event))
    type ButtonCase = (
        &'static str,
        &'static [(u64, bool)],
        Vec<(u64, ButtonEvent)>,
    );

    #[test]
    fn button_classifies_presses() {
        use ButtonEvent::*;
        let cases: &[ButtonCase] = &[
            (
                "short press",
                &[(100, true), (400, false)],
                vec![(430, Call)],
            ),
            (
                "long press fires while held",
                &[(100, true), (2500, false)],
                vec![(1600, Bill)],
            ),
            (
                "exactly long_press",
                &[(100, true), (1600, false)],
                vec![(1600, Bill)],
            ),
            (
                "glitch shorter than debounce",
                &[(100, true), (110, false)],
                vec![],
            ),
            (
                "bouncy press is one call",
                &[
                    (100, true),
                    (105, false),
                    (108, true),
                    (500, false),
                    (503, true),
                    (506, false),
                ],
                vec![(536, Call)],
            ),
            (
                "two presses",
                &[(100, true), (300, false), (600, true), (900, false)],
                vec![(330, Call), (930, Call)],
            ),
        ];
        for (name, script, expected) in cases {
            assert_eq!(&run_button(script, 4000), expected, "{name}");
        }
    }

    #[test]
    fn button_long_press_without_polling_is_still_a_bill() {
        let t0 = Instant::now();
        let mut b = Button::new(&ButtonConfig::default());
        assert_eq!(b.on_level(false, t0), None);
        assert_eq!(b.on_level(false, t0 + ms(40)), None, "press confirmed");
        assert_eq!(b.deadline(), Some(t0 + ms(1500)));
        assert_eq!(b.on_level(true, t0 + ms(1400)), None);
        assert_eq!(b.poll(t0 + ms(1430)), Some(ButtonEvent::Call));
        assert_eq!(b.on_level(false, t0 + ms(2000)), None);
        assert_eq!(b.on_level(true, t0 + ms(3600)), Some(ButtonEvent::Bill));
        assert_eq!(b.poll(t0 + ms(3700)), None, "released, nothing more");
    }
}
