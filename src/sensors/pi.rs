//! The Raspberry Pi side, through rppal: embedded-hal adapters for the
//! I2C bus ([`PiI2c`]), XSHUT outputs ([`PiOutput`]), GPIO inputs
//! ([`PiInput`]) and a sleeping delay, and the blocking threads that step
//! the hardware-independent workers with them: [`run_gpio`] (every GPIO
//! input, [`super::gpio::GpioWorker`], waiting in rppal's interrupt poll)
//! and [`run_bus`] (one I2C bus, [`super::bus::BusWorker`]).
//!
//! Off a Pi (or with GPIO/I2C disabled) opening the peripheral fails; that
//! is an ordinary sensor error: the sensors fault (one `sensor.fault`
//! each, logged once) and are retried with backoff, and the daemon runs on.
//! Peripherals are opened lazily, on the thread that uses them, and
//! reopened on the next retry.

use super::bus::BusWorker;
use super::gpio::{GpioWorker, PinEdge};
use super::report::{Report, Reporter, STOP_CHECK};
use crate::sensors::spec::{GpioInput, Pull, SensorConfig};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{self, OutputPin};
use embedded_hal::i2c::{self, ErrorKind, ErrorType, I2c, Operation};
use rppal::gpio::{Gpio, InputPin, Trigger};
use std::convert::Infallible;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// A claimed GPIO input with the handle its interrupts are polled on.
pub struct PiInput {
    gpio: Gpio,
    pin: InputPin,
}

impl digital::ErrorType for PiInput {
    type Error = Infallible;
}

impl digital::InputPin for PiInput {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.pin.is_high())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(self.pin.is_low())
    }
}

/// The claim function of the GPIO worker: opens the GPIO peripheral on
/// first use (and again after it failed to open), then takes the pin as an
/// input with its pull and edge interrupts on both edges.
fn claim_input() -> impl FnMut(&GpioInput) -> Result<PiInput, String> {
    let mut opened: Option<Gpio> = None;
    move |cfg| {
        let gpio = match &opened {
            Some(gpio) => gpio.clone(),
            None => {
                let gpio = Gpio::new().map_err(|e| gpio_error(&e))?;
                opened = Some(gpio.clone());
                gpio
            }
        };
        let pin = gpio
            .get(cfg.pin)
            .map_err(|e| format!("GPIO {}: {}", cfg.pin, gpio_error(&e)))?;
        let mut pin = match cfg.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        pin.set_interrupt(Trigger::Both, None)
            .map_err(|e| format!("GPIO {} interrupt: {}", cfg.pin, gpio_error(&e)))?;
        Ok(PiInput { gpio, pin })
    }
}

/// How long a thread may block before its worker's next wake (at most
/// [`STOP_CHECK`]).
fn wait_for(wake: Option<Instant>) -> Duration {
    wake.map_or(STOP_CHECK, |at| {
        at.saturating_duration_since(Instant::now())
    })
    .min(STOP_CHECK)
}

/// Sends every report; false once the engine has stopped.
fn send_all(reporter: &Reporter, reports: Vec<Report>) -> bool {
    reports
        .into_iter()
        .all(|report| reporter.blocking_send(report))
}

/// The thread of one I2C bus and the chips on it.
pub fn run_bus(
    bus: u8,
    sensors: &[SensorConfig],
    reporter: &Reporter,
    shutdown: &CancellationToken,
) {
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
        if !send_all(reporter, worker.step(Instant::now())) {
            return;
        }
        std::thread::sleep(wait_for(worker.next_wake()));
    }
}

/// The GPIO thread: claims the pins, then blocks in rppal's interrupt poll
/// (no busy polling) until an edge, a debounce or long-press deadline, a
/// retry, or [`STOP_CHECK`].
pub fn run_gpio(sensors: &[SensorConfig], reporter: &Reporter, shutdown: &CancellationToken) {
    let refs: Vec<&SensorConfig> = sensors.iter().collect();
    let mut worker = GpioWorker::new(&refs, claim_input(), Instant::now());
    let mut edge = None;
    while !shutdown.is_cancelled() && !reporter.is_closed() {
        if !send_all(reporter, worker.step(Instant::now(), edge.take())) {
            return;
        }
        let timeout = wait_for(worker.next_wake());
        let polled = {
            let pins: Vec<&PiInput> = worker.pins().collect();
            pins.first().map(|first| {
                let raw: Vec<&InputPin> = pins.iter().map(|p| &p.pin).collect();
                first
                    .gpio
                    .poll_interrupts(&raw, false, Some(timeout))
                    .map(|event| {
                        event.map(|(pin, event)| PinEdge {
                            pin: pin.pin(),
                            high: event.trigger == Trigger::RisingEdge,
                        })
                    })
            })
        };
        match polled {
            None => std::thread::sleep(timeout),
            Some(Ok(event)) => edge = event,
            Some(Err(e)) => {
                let reason = format!("GPIO interrupt poll: {}", gpio_error(&e));
                if !send_all(reporter, worker.lost(&reason, Instant::now())) {
                    return;
                }
            }
        }
    }
}
