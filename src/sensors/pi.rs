//! The Raspberry Pi side, through rppal: the GPIO thread (presence inputs
//! and call buttons on edge interrupts) and one thread per I2C bus (rppal's
//! embedded-hal `I2c`, driving [`super::bus::BusWorker`]).
//!
//! Off a Pi (or with GPIO/I2C disabled) opening the peripheral fails; that
//! is an ordinary sensor error: the sensors fault (one `sensor.fault`
//! each, logged once) and are retried with backoff, and the daemon runs on.
//! Peripherals are opened lazily, on the thread that uses them, and
//! reopened on the next retry.

use super::SensorError;
use super::bus::BusWorker;
use super::gpio::{Button, ButtonConfig, PresenceConfig, PresenceInput};
use super::health::{Health, HealthChange};
use super::tasks::{Report, Reporter, STOP_CHECK};
use crate::sensors::spec::{GpioInput, Pull, RETRY_INITIAL, SensorConfig, SensorKind};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{self, OutputPin};
use embedded_hal::i2c::{self, ErrorKind, ErrorType, I2c, Operation};
use rppal::gpio::{Gpio, InputPin, Trigger};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Starts the GPIO thread (if any input is configured) and one thread per
/// I2C bus in use.
pub fn spawn(
    sensors: &[SensorConfig],
    reporter: &Reporter,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    let inputs: Vec<SensorConfig> = sensors
        .iter()
        .filter(|s| matches!(s.kind, SensorKind::Gpio(_) | SensorKind::Button(_)))
        .cloned()
        .collect();
    if !inputs.is_empty() {
        let (reporter, shutdown) = (reporter.clone(), shutdown.clone());
        tasks.spawn_blocking(move || run_gpio(&inputs, &reporter, &shutdown));
    }
    let mut buses: BTreeMap<u8, Vec<SensorConfig>> = BTreeMap::new();
    for s in sensors {
        let bus = match &s.kind {
            SensorKind::Amg8833(a) => a.bus,
            SensorKind::Tof(t) => t.bus,
            _ => continue,
        };
        buses.entry(bus).or_default().push(s.clone());
    }
    for (bus, sensors) in buses {
        let (reporter, shutdown) = (reporter.clone(), shutdown.clone());
        tasks.spawn_blocking(move || run_bus(bus, &sensors, &reporter, &shutdown));
    }
}

/// A delay that sleeps the thread (rppal's spins, which would burn a core
/// through the drivers' 1 ms polls).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadDelay;

impl DelayNs for ThreadDelay {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(u64::from(ns)));
    }
}

/// An error of the Pi's I2C bus, or of opening it.
pub enum PiI2cError {
    Open(String),
    Io(rppal::i2c::Error),
}

impl fmt::Debug for PiI2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PiI2cError::Open(message) => f.write_str(message),
            PiI2cError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl i2c::Error for PiI2cError {
    fn kind(&self) -> ErrorKind {
        match self {
            PiI2cError::Open(_) => ErrorKind::Other,
            PiI2cError::Io(e) => e.kind(),
        }
    }
}

/// `/dev/i2c-<bus>`, opened on first use and again after it failed to open.
pub struct PiI2c {
    bus: u8,
    device: Option<rppal::i2c::I2c>,
}

impl PiI2c {
    pub fn new(bus: u8) -> PiI2c {
        PiI2c { bus, device: None }
    }

    fn device(&mut self) -> Result<&mut rppal::i2c::I2c, PiI2cError> {
        if self.device.is_none() {
            let device = rppal::i2c::I2c::with_bus(self.bus).map_err(|e| {
                PiI2cError::Open(format!(
                    "cannot open /dev/i2c-{}: {e} (is I2C enabled? raspi-config → Interface Options → I2C)",
                    self.bus
                ))
            })?;
            self.device = Some(device);
        }
        self.device
            .as_mut()
            .ok_or_else(|| PiI2cError::Open("I2C bus not open".into()))
    }
}

impl ErrorType for PiI2c {
    type Error = PiI2cError;
}

impl I2c for PiI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.device()?
            .transaction(address, operations)
            .map_err(PiI2cError::Io)
    }
}

/// A GPIO error, as text (rppal's own error is not `Clone`).
pub struct PinError(String);

impl fmt::Debug for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl digital::Error for PinError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

fn gpio_error(e: &rppal::gpio::Error) -> String {
    match e {
        rppal::gpio::Error::UnknownModel => {
            "GPIO unavailable: this is not a Raspberry Pi (or its model is unknown)".into()
        }
        other => format!("GPIO: {other}"),
    }
}

/// An XSHUT output, claimed on first use.
pub struct PiOutput {
    pin: u8,
    output: Option<rppal::gpio::OutputPin>,
}

impl PiOutput {
    pub fn new(pin: u8) -> PiOutput {
        PiOutput { pin, output: None }
    }

    fn output(&mut self) -> Result<&mut rppal::gpio::OutputPin, PinError> {
        if self.output.is_none() {
            let pin = Gpio::new()
                .and_then(|gpio| gpio.get(self.pin))
                .map_err(|e| PinError(format!("XSHUT GPIO {}: {}", self.pin, gpio_error(&e))))?;
            self.output = Some(pin.into_output_high());
        }
        self.output
            .as_mut()
            .ok_or_else(|| PinError("XSHUT pin not claimed".into()))
    }
}

impl digital::ErrorType for PiOutput {
    type Error = PinError;
}

impl OutputPin for PiOutput {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.output()?.set_low();
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        self.output()?.set_high();
        Ok(())
    }
}

fn run_bus(bus: u8, sensors: &[SensorConfig], reporter: &Reporter, shutdown: &CancellationToken) {
    let refs: Vec<&SensorConfig> = sensors.iter().collect();
    let mut worker = BusWorker::new(
        PiI2c::new(bus),
        &refs,
        PiOutput::new,
        || ThreadDelay,
        Instant::now(),
    );
    tracing::info!(bus, sensors = refs.len(), "I2C bus thread started");
    while !shutdown.is_cancelled() && !reporter.is_closed() {
        for report in worker.step(Instant::now()) {
            if !reporter.blocking_send(report) {
                return;
            }
        }
        let wait = worker
            .next_wake()
            .map_or(STOP_CHECK, |at| {
                at.saturating_duration_since(Instant::now())
            })
            .min(STOP_CHECK);
        std::thread::sleep(wait);
    }
}

enum Role {
    Presence(PresenceInput),
    Button(Button),
}

/// One configured GPIO input and its pin once claimed.
struct Input {
    id: String,
    cfg: GpioInput,
    role: Role,
    health: Health,
    pin: Option<InputPin>,
    retry_at: Instant,
}

impl Input {
    fn new(s: &SensorConfig, now: Instant) -> Option<Input> {
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
        match &mut self.role {
            Role::Presence(p) => {
                if let Some(reading) = p.on_level(high, now) {
                    out.push(Report::Reading {
                        sensor: self.id.clone(),
                        reading,
                    });
                }
            }
            Role::Button(b) => {
                if let Some(event) = b.on_level(high, now) {
                    out.push(Report::Button {
                        sensor: self.id.clone(),
                        event,
                    });
                }
            }
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Report>) {
        match &mut self.role {
            Role::Presence(p) => {
                if let Some(reading) = p.poll(now) {
                    out.push(Report::Reading {
                        sensor: self.id.clone(),
                        reading,
                    });
                }
            }
            Role::Button(b) => {
                if let Some(event) = b.poll(now) {
                    out.push(Report::Button {
                        sensor: self.id.clone(),
                        event,
                    });
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

    /// Claims the pin as an input with its pull and edge interrupts on
    /// both edges (debouncing is ours, with the edge times we see).
    fn claim(&mut self, gpio: &Gpio, now: Instant, out: &mut Vec<Report>) {
        let pin = match gpio.get(self.cfg.pin) {
            Ok(pin) => pin,
            Err(e) => {
                return self.failed(
                    format!("GPIO {}: {}", self.cfg.pin, gpio_error(&e)),
                    now,
                    out,
                );
            }
        };
        let mut pin = match self.cfg.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        if let Err(e) = pin.set_interrupt(Trigger::Both, None) {
            return self.failed(
                format!("GPIO {} interrupt: {}", self.cfg.pin, gpio_error(&e)),
                now,
                out,
            );
        }
        let high = pin.is_high();
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

/// The GPIO thread: claims the pins, then blocks in rppal's interrupt poll
/// (no busy polling) until an edge, a debounce or long-press deadline, a
/// retry, or [`STOP_CHECK`].
fn run_gpio(sensors: &[SensorConfig], reporter: &Reporter, shutdown: &CancellationToken) {
    let now = Instant::now();
    let mut inputs: Vec<Input> = sensors.iter().filter_map(|s| Input::new(s, now)).collect();
    let mut gpio: Option<Gpio> = None;
    let mut out = Vec::new();
    while !shutdown.is_cancelled() && !reporter.is_closed() {
        let now = Instant::now();
        if inputs.iter().any(|i| i.pin.is_none() && i.retry_at <= now) {
            if gpio.is_none() {
                match Gpio::new() {
                    Ok(g) => gpio = Some(g),
                    Err(e) => {
                        let reason = gpio_error(&e);
                        for input in inputs.iter_mut().filter(|i| i.retry_at <= now) {
                            input.failed(reason.clone(), now, &mut out);
                        }
                    }
                }
            }
            if let Some(gpio) = &gpio {
                for input in inputs
                    .iter_mut()
                    .filter(|i| i.pin.is_none() && i.retry_at <= now)
                {
                    input.claim(gpio, now, &mut out);
                }
            }
        }

        let wake = inputs
            .iter()
            .filter_map(|i| match i.pin {
                Some(_) => i.deadline(),
                None => Some(i.retry_at),
            })
            .min();
        let timeout = wake
            .map_or(STOP_CHECK, |at| {
                at.saturating_duration_since(Instant::now())
            })
            .min(STOP_CHECK);
        let pins: Vec<&InputPin> = inputs.iter().filter_map(|i| i.pin.as_ref()).collect();
        let edge = match (&gpio, pins.is_empty()) {
            (Some(gpio), false) => match gpio.poll_interrupts(&pins, false, Some(timeout)) {
                Ok(event) => {
                    event.map(|(pin, event)| (pin.pin(), event.trigger == Trigger::RisingEdge))
                }
                Err(e) => {
                    let reason = format!("GPIO interrupt poll: {}", gpio_error(&e));
                    drop(pins);
                    let now = Instant::now();
                    for input in inputs.iter_mut() {
                        input.failed(reason.clone(), now, &mut out);
                    }
                    None
                }
            },
            _ => {
                drop(pins);
                std::thread::sleep(timeout);
                None
            }
        };
        let now = Instant::now();
        if let Some((number, high)) = edge {
            if let Some(input) = inputs.iter_mut().find(|i| i.cfg.pin == number) {
                input.on_level(high, now, &mut out);
            }
        }
        for input in inputs.iter_mut().filter(|i| i.pin.is_some()) {
            input.poll(now, &mut out);
        }
        for report in out.drain(..) {
            if !reporter.blocking_send(report) {
                return;
            }
        }
    }
}
