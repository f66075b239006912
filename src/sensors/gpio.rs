//! GPIO inputs: presence contacts (seat pads, PIR modules) and call buttons.
//!
//! The Pi side reports pin levels on edge interrupts; everything here is a
//! pure state machine fed with `(level, instant)` so it can be tested with
//! injected time. A level counts only once it has been stable for the
//! debounce time, which needs a wake-up with no edge at all: callers sleep
//! until [`Debouncer::deadline`] and then call `poll`.
//!
//! [`GpioWorker`] is the hardware-independent core of the GPIO thread, the
//! counterpart of [`super::bus::BusWorker`]: it claims every configured
//! input's pin (through a claim function, so any embedded-hal
//! [`InputPin`] will do), feeds the edges the caller waited for to the
//! debouncers, and turns claim failures into [`Health`] errors, retried
//! with backoff and reported as one fault per episode. The thread in
//! [`super::pi`] calls [`GpioWorker::step`] after each wait and waits for
//! an edge on [`GpioWorker::pins`] until [`GpioWorker::next_wake`].

use embedded_hal::digital::InputPin;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::health::{Health, HealthChange};
use super::report::{ButtonEvent, Report};
use super::{Reading, SensorError};
use crate::sensors::spec::{GpioInput, RETRY_INITIAL, SensorConfig, SensorKind};

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

/// A level change on a claimed pin, as the caller's wait saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinEdge {
    /// BCM number.
    pub pin: u8,
    pub high: bool,
}

/// Claims one input's pin: pull set, edge interrupts on both edges
/// (debouncing is ours, with the edge times the caller sees); the reason
/// when it cannot.
pub type Claim<P> = Box<dyn FnMut(&GpioInput) -> Result<P, String>>;

enum Role {
    Presence(PresenceInput),
    Button(Button),
}

/// One configured GPIO input and its pin once claimed.
struct Input<P> {
    id: String,
    cfg: GpioInput,
    role: Role,
    health: Health,
    pin: Option<P>,
    retry_at: Instant,
}

impl<P: InputPin> Input<P> {
    fn new(s: &SensorConfig, now: Instant) -> Option<Input<P>> {
        let (cfg, role) = match &s.kind {
            SensorKind::Gpio(g) => (
                g.clone(),
                Role::Presence(PresenceInput::new(&PresenceConfig {
                    active_low: g.active_low,
                    debounce_ms: millis(g.debounce),
                })),
            ),
            SensorKind::Button(b) => (
                b.input.clone(),
                Role::Button(Button::new(&ButtonConfig {
                    active_low: b.input.active_low,
                    debounce_ms: millis(b.input.debounce),
                    long_press: b.long_press,
                })),
            ),
            _ => return None,
        };
        Some(Input {
            id: s.id.clone(),
            cfg,
            role,
            health: Health::new(s.health.clone(), now),
            pin: None,
            retry_at: now,
        })
    }

    fn on_level(&mut self, high: bool, now: Instant, out: &mut Vec<Report>) {
        let sensor = self.id.clone();
        match &mut self.role {
            Role::Presence(p) => {
                if let Some(reading) = p.on_level(high, now) {
                    out.push(Report::Reading { sensor, reading });
                }
            }
            Role::Button(b) => {
                if let Some(event) = b.on_level(high, now) {
                    out.push(Report::Button { sensor, event });
                }
            }
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Report>) {
        let sensor = self.id.clone();
        match &mut self.role {
            Role::Presence(p) => {
                if let Some(reading) = p.poll(now) {
                    out.push(Report::Reading { sensor, reading });
                }
            }
            Role::Button(b) => {
                if let Some(event) = b.poll(now) {
                    out.push(Report::Button { sensor, event });
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.role {
            Role::Presence(p) => p.deadline(),
            Role::Button(b) => b.deadline(),
        }
    }

    fn failed(&mut self, reason: String, now: Instant, out: &mut Vec<Report>) {
        self.pin = None;
        let error = SensorError::Bus(reason);
        if let Some(HealthChange::Faulted { reason }) = self.health.record_error(&error, now) {
            out.push(Report::Fault {
                sensor: self.id.clone(),
                reason,
            });
        }
        self.retry_at = self.health.next_retry(now).unwrap_or(now + RETRY_INITIAL);
    }

    /// Claims the pin and takes its level as the first sample.
    fn claim(&mut self, claim: &mut Claim<P>, now: Instant, out: &mut Vec<Report>) {
        let mut pin = match claim(&self.cfg) {
            Ok(pin) => pin,
            Err(reason) => return self.failed(reason, now, out),
        };
        let high = match pin.is_high() {
            Ok(high) => high,
            Err(e) => return self.failed(format!("GPIO {} read: {e:?}", self.cfg.pin), now, out),
        };
        self.pin = Some(pin);
        if self.health.record_ok(now) == Some(HealthChange::Recovered) {
            out.push(Report::Recovered {
                sensor: self.id.clone(),
            });
        }
        if matches!(self.role, Role::Button(_)) {
            out.push(Report::Ready {
                sensor: self.id.clone(),
            });
        }
        self.on_level(high, now, out);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Every configured GPIO input (presence contacts and call buttons), driven
/// from one thread.
pub struct GpioWorker<P> {
    inputs: Vec<Input<P>>,
    claim: Claim<P>,
}

impl<P: InputPin> GpioWorker<P> {
    /// The inputs among `sensors` (other kinds are skipped); `claim` gets
    /// each one's pin, at the first step and on every retry.
    pub fn new(
        sensors: &[&SensorConfig],
        claim: impl FnMut(&GpioInput) -> Result<P, String> + 'static,
        now: Instant,
    ) -> GpioWorker<P> {
        GpioWorker {
            inputs: sensors.iter().filter_map(|s| Input::new(s, now)).collect(),
            claim: Box::new(claim),
        }
    }

    /// Takes the edge the caller's wait returned (if any), confirms what
    /// has been stable long enough, claims the pins whose retry is due, and
    /// returns what to report.
    pub fn step(&mut self, now: Instant, edge: Option<PinEdge>) -> Vec<Report> {
        let mut out = Vec::new();
        if let Some(edge) = edge {
            if let Some(input) = self
                .inputs
                .iter_mut()
                .find(|i| i.pin.is_some() && i.cfg.pin == edge.pin)
            {
                input.on_level(edge.high, now, &mut out);
            }
        }
        for input in self.inputs.iter_mut().filter(|i| i.pin.is_some()) {
            input.poll(now, &mut out);
        }
        let claim = &mut self.claim;
        for input in self
            .inputs
            .iter_mut()
            .filter(|i| i.pin.is_none() && i.retry_at <= now)
        {
            input.claim(claim, now, &mut out);
        }
        out
    }

    /// When [`GpioWorker::step`] has something to do without an edge: a
    /// debounce or long-press deadline, or a retry.
    pub fn next_wake(&self) -> Option<Instant> {
        self.inputs
            .iter()
            .filter_map(|i| match i.pin {
                Some(_) => i.deadline(),
                None => Some(i.retry_at),
            })
            .min()
    }

    /// The claimed pins, to wait for an edge on.
    pub fn pins(&self) -> impl Iterator<Item = &P> {
        self.inputs.iter().filter_map(|i| i.pin.as_ref())
    }

    /// Waiting for an edge failed: every pin is released, each input counts
    /// the error, and it is claimed again at its retry.
    pub fn lost(&mut self, reason: &str, now: Instant) -> Vec<Report> {
        let mut out = Vec::new();
        for input in self.inputs.iter_mut() {
            input.failed(reason.to_string(), now, &mut out);
        }
        out
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

    mod worker {
        use super::super::*;
        use crate::config::Config;
        use crate::sensors::fake::{FakeGpio, FakeInput};
        use std::path::Path;

        fn ms(n: u64) -> Duration {
            Duration::from_millis(n)
        }

        fn sensors(toml: &str) -> Vec<SensorConfig> {
            let text = format!("[[tables]]\nid = 1\n[[tables]]\nid = 2\n{toml}");
            Config::from_toml(Path::new("test.toml"), &text, std::iter::empty())
                .expect("config")
                .sensors
        }

        fn worker(
            gpio: &FakeGpio,
            sensors: &[SensorConfig],
            now: Instant,
        ) -> GpioWorker<FakeInput> {
            let refs: Vec<&SensorConfig> = sensors.iter().collect();
            let gpio = gpio.clone();
            GpioWorker::new(&refs, move |cfg: &GpioInput| gpio.claim(cfg.pin), now)
        }

        fn edge(pin: u8, high: bool) -> Option<PinEdge> {
            Some(PinEdge { pin, high })
        }

        fn reading(sensor: &str, present: bool) -> Report {
            Report::Reading {
                sensor: sensor.into(),
                reading: Reading::presence(present),
            }
        }

        #[test]
        fn presence_edges_are_debounced_and_the_worker_wakes_to_confirm_them() {
            let gpio = FakeGpio::new();
            gpio.set(17, false);
            let config = sensors(
                "[[sensors]]\nid = \"pad\"\nkind = \"gpio\"\ntable = 1\npin = 17\ndebounce_ms = 50\n",
            );
            let t0 = Instant::now();
            let mut w = worker(&gpio, &config, t0);
            assert_eq!(w.next_wake(), Some(t0), "the pin is claimed at once");
            assert!(w.step(t0, None).is_empty(), "the first level must settle");
            assert_eq!(w.pins().map(|p| p.pin).collect::<Vec<_>>(), vec![17]);
            assert_eq!(w.next_wake(), Some(t0 + ms(50)));
            assert_eq!(w.step(t0 + ms(50), None), vec![reading("pad", false)]);
            assert_eq!(w.next_wake(), None, "nothing to do until an edge");
            // Somebody sits down; a bounce back and forth changes nothing.
            assert!(w.step(t0 + ms(100), edge(17, true)).is_empty());
            assert_eq!(w.next_wake(), Some(t0 + ms(150)));
            assert_eq!(w.step(t0 + ms(150), None), vec![reading("pad", true)]);
            assert!(w.step(t0 + ms(200), edge(17, false)).is_empty());
            assert!(w.step(t0 + ms(210), edge(17, true)).is_empty());
            assert!(w.step(t0 + ms(1000), None).is_empty());
            // An edge on a pin nobody configured is ignored.
            assert!(w.step(t0 + ms(1100), edge(5, false)).is_empty());
            assert_eq!(gpio.claims(), 1);
        }

        #[test]
        fn a_button_is_ready_once_claimed_and_a_long_press_is_a_bill() {
            let gpio = FakeGpio::new();
            let config =
                sensors("[[sensors]]\nid = \"call\"\nkind = \"button\"\ntable = 1\npin = 27\n");
            let t0 = Instant::now();
            let mut w = worker(&gpio, &config, t0);
            // Released (active low, pulled up): ready, no event.
            assert_eq!(
                w.step(t0, None),
                vec![Report::Ready {
                    sensor: "call".into()
                }]
            );
            assert!(w.step(t0 + ms(100), edge(27, false)).is_empty());
            assert_eq!(w.next_wake(), Some(t0 + ms(130)), "debounce (30 ms)");
            assert!(w.step(t0 + ms(130), None).is_empty(), "press confirmed");
            assert_eq!(w.next_wake(), Some(t0 + ms(1600)), "long press (1.5 s)");
            assert_eq!(
                w.step(t0 + ms(1600), None),
                vec![Report::Button {
                    sensor: "call".into(),
                    event: ButtonEvent::Bill
                }]
            );
            assert!(w.step(t0 + ms(2000), edge(27, true)).is_empty());
            assert!(w.step(t0 + ms(2030), None).is_empty(), "one event a press");
        }

        #[test]
        fn a_pin_that_cannot_be_claimed_faults_once_backs_off_and_recovers() {
            let gpio = FakeGpio::new();
            gpio.refuse("GPIO unavailable");
            let config = sensors(
                "[[sensors]]\nid = \"pad\"\nkind = \"gpio\"\ntable = 1\npin = 17\ndebounce_ms = 0\nfault_after = 2\n",
            );
            let t0 = Instant::now();
            let secs = Duration::from_secs;
            let mut w = worker(&gpio, &config, t0);
            assert!(w.step(t0, None).is_empty(), "one error is not a fault");
            assert_eq!(w.next_wake(), Some(t0 + secs(1)));
            assert!(w.step(t0 + ms(500), None).is_empty(), "not due yet");
            assert_eq!(gpio.claims(), 1);
            let reports = w.step(t0 + secs(1), None);
            match reports.as_slice() {
                [Report::Fault { sensor, reason }] => {
                    assert_eq!(sensor, "pad");
                    assert!(reason.contains("2 consecutive"), "{reason}");
                    assert!(reason.contains("GPIO unavailable"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(w.next_wake(), Some(t0 + secs(2)));
            assert!(w.step(t0 + secs(2), None).is_empty(), "faults only once");
            assert_eq!(w.next_wake(), Some(t0 + secs(4)), "backoff doubled");
            assert_eq!(w.pins().count(), 0);
            gpio.allow();
            gpio.set(17, true);
            assert_eq!(
                w.step(t0 + secs(4), None),
                vec![
                    Report::Recovered {
                        sensor: "pad".into()
                    },
                    reading("pad", true)
                ]
            );
            assert_eq!(gpio.claims(), 4);
        }

        #[test]
        fn a_failed_edge_wait_releases_every_pin_and_claims_them_again() {
            let gpio = FakeGpio::new();
            let config = sensors(
                "[[sensors]]\nid = \"pad\"\nkind = \"gpio\"\ntable = 1\npin = 17\ndebounce_ms = 0\nfault_after = 1\n\
                 [[sensors]]\nid = \"call\"\nkind = \"button\"\ntable = 2\npin = 27\nfault_after = 1\n",
            );
            let t0 = Instant::now();
            let mut w = worker(&gpio, &config, t0);
            assert_eq!(
                w.step(t0, None),
                vec![
                    reading("pad", true),
                    Report::Ready {
                        sensor: "call".into()
                    }
                ]
            );
            let reports = w.lost("GPIO interrupt poll: gone", t0 + ms(10));
            let faulted: Vec<&str> = reports
                .iter()
                .filter_map(|r| match r {
                    Report::Fault { sensor, reason } if reason.contains("gone") => {
                        Some(sensor.as_str())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(faulted, vec!["pad", "call"]);
            assert_eq!(w.pins().count(), 0, "every pin released");
            assert!(
                w.step(t0 + ms(20), edge(17, false)).is_empty(),
                "a released pin's edge is ignored"
            );
            let again = w.step(t0 + ms(1010), None);
            assert_eq!(
                again,
                vec![
                    Report::Recovered {
                        sensor: "pad".into()
                    },
                    Report::Recovered {
                        sensor: "call".into()
                    },
                    Report::Ready {
                        sensor: "call".into()
                    }
                ]
            );
            assert_eq!(w.pins().count(), 2);
        }
    }
}
