//! `mesero sensors scan` and `mesero sensors watch`: the installer's tools
//! for checking the wiring before (or instead of) running the daemon.
//!
//! Both need the Pi's peripherals when hardware sensors are involved; off a
//! Pi they fail with one line saying so ([`require_pi`]). `watch` with only
//! `sim`/`mqtt` sensors runs anywhere.

use super::say;
use crate::config::Config;
use crate::domain::TableState;
use crate::engine::dispatch::{Dispatcher, Effect};
use crate::sensors::report::{Report, Reporter};
use crate::sensors::spec::{Pull, SensorKind};
use crate::sensors::{TOF_DEFAULT_ADDRESS, amg8833, vl53l0x, vl53l1x};
use crate::text::printable;
use anyhow::{Context as _, bail};
use embedded_hal::i2c::I2c;
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Fails with a one-line explanation unless this is a Raspberry Pi.
pub fn require_pi(what: &str) -> anyhow::Result<()> {
    if rppal::system::DeviceInfo::new().is_err() {
        bail!(
            "{what} needs a Raspberry Pi's GPIO and I2C, and this machine is not one (or its model is unknown); use sim sensors for development"
        );
    }
    Ok(())
}

/// What answered at an I2C address.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Vl53l0x,
    Vl53l1x,
    /// The AMG8833 has no id register; a plausible thermistor reading at
    /// 0x68/0x69 is the best evidence.
    Amg8833 {
        thermistor_c: f32,
    },
    Unknown,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Vl53l0x => f.write_str("VL53L0X (model id 0xEE)"),
            Found::Vl53l1x => f.write_str("VL53L1X (model id 0xEACC)"),
            Found::Amg8833 { thermistor_c } => {
                write!(f, "AMG8833, likely (thermistor {thermistor_c:.1} °C)")
            }
            Found::Unknown => f.write_str("unknown device"),
        }
    }
}

/// Probes one address: `None` if nothing acknowledges. Id registers are
/// only read where the chips can be (`tof` lists the addresses where a
/// VL53L0X/L1X may sit), since reading a 16-bit register index is a write
/// to an 8-bit chip.
pub fn probe<I: I2c>(i2c: &mut I, address: u8, tof: &BTreeSet<u8>) -> Option<Found> {
    let mut byte = [0u8];
    i2c.read(address, &mut byte).ok()?;
    if tof.contains(&address) {
        if vl53l0x::identify(i2c, address).is_ok() {
            return Some(Found::Vl53l0x);
        }
        if vl53l1x::identify(i2c, address).is_ok() {
            return Some(Found::Vl53l1x);
        }
    }
    if matches!(address, 0x68 | 0x69) {
        if let Ok(thermistor_c) = amg8833::identify(i2c, address) {
            return Some(Found::Amg8833 { thermistor_c });
        }
    }
    Some(Found::Unknown)
}

/// `mesero sensors scan`: probes every address of the configured I2C
/// buses (bus 1 always), names the chips, and checks the configured pins.
pub fn scan(config: Option<&Config>) -> anyhow::Result<()> {
    let sensors = config.map_or(&[][..], |c| c.sensors.as_slice());
    let mut buses: BTreeSet<u8> = BTreeSet::from([1]);
    let mut tof = BTreeSet::from([TOF_DEFAULT_ADDRESS]);
    let mut expected: Vec<(u8, u8, &str, &'static str)> = Vec::new();
    for s in sensors {
        match &s.kind {
            SensorKind::Amg8833(a) => {
                buses.insert(a.bus);
                expected.push((a.bus, a.address, &s.id, "amg8833"));
            }
            SensorKind::Tof(t) => {
                buses.insert(t.bus);
                tof.insert(t.address);
                expected.push((t.bus, t.address, &s.id, s.kind.name()));
            }
            _ => {}
        }
    }
    let mut missing = 0;
    for bus in buses {
        let mut i2c = match rppal::i2c::I2c::with_bus(bus) {
            Ok(i2c) => i2c,
            Err(e) => {
                say!("I2C bus {bus}: cannot open /dev/i2c-{bus}: {e}")?;
                missing += expected.iter().filter(|(b, ..)| *b == bus).count();
                continue;
            }
        };
        say!("I2C bus {bus}:")?;
        let mut seen = BTreeSet::new();
        for address in 0x08..=0x77u8 {
            if let Some(found) = probe(&mut i2c, address, &tof) {
                seen.insert(address);
                let users: Vec<&str> = expected
                    .iter()
                    .filter(|(b, a, ..)| *b == bus && *a == address)
                    .map(|(_, _, id, _)| *id)
                    .collect();
                let configured = if users.is_empty() {
                    String::new()
                } else {
                    format!(" — configured: {}", users.join(", "))
                };
                say!("  0x{address:02x}: {found}{configured}")?;
            }
        }
        if seen.is_empty() {
            say!("  no device answered")?;
        }
        for (_, address, id, kind) in expected.iter().filter(|(b, ..)| *b == bus) {
            if !seen.contains(address) {
                missing += 1;
                say!("  MISSING: {id} ({kind}) expected at 0x{address:02x}")?;
            }
        }
    }
    check_pins(sensors)?;
    if missing > 0 {
        bail!("{missing} configured I2C sensor(s) did not answer");
    }
    Ok(())
}

fn check_pins(sensors: &[crate::sensors::spec::SensorConfig]) -> std::io::Result<()> {
    let inputs: Vec<_> = sensors
        .iter()
        .filter_map(|s| match &s.kind {
            SensorKind::Gpio(g) => Some((s, g)),
            SensorKind::Button(b) => Some((s, &b.input)),
            _ => None,
        })
        .collect();
    if inputs.is_empty() {
        return Ok(());
    }
    let gpio = match rppal::gpio::Gpio::new() {
        Ok(gpio) => gpio,
        Err(e) => {
            say!("GPIO: cannot open: {e}")?;
            return Ok(());
        }
    };
    say!("GPIO inputs:")?;
    for (s, g) in inputs {
        let level = match gpio.get(g.pin) {
            Ok(pin) => {
                let pin = match g.pull {
                    Pull::Up => pin.into_input_pullup(),
                    Pull::Down => pin.into_input_pulldown(),
                    Pull::Off => pin.into_input(),
                };
                let high = pin.is_high();
                let active = high != g.active_low;
                format!(
                    "level {} → {}",
                    if high { "high" } else { "low" },
                    match (&s.kind, active) {
                        (SensorKind::Button(_), true) => "pressed",
                        (SensorKind::Button(_), false) => "released",
                        (_, true) => "present",
                        (_, false) => "nobody",
                    }
                )
            }
            Err(e) => format!("cannot read: {e} (is the daemon running?)"),
        };
        say!(
            "  GPIO {:>2} ({} {}, pull {}): {level}",
            g.pin,
            s.kind.name(),
            s.id,
            g.pull.as_str()
        )?;
    }
    Ok(())
}

/// `mesero sensors watch`: runs the configured sensors and a local
/// occupancy engine (tables start free, nothing is stored) and prints every
/// reading, fault and state change until Ctrl-C.
pub async fn watch(config: &Config) -> anyhow::Result<()> {
    if config.sensors.is_empty() {
        bail!("the config has no [[sensors]] to watch");
    }
    if config.sensors.iter().any(|s| s.kind.is_hardware()) {
        require_pi("sensors watch")?;
    }
    let (tx, rx) = mpsc::channel(crate::engine::REPORT_QUEUE);
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    crate::sensors::tasks::spawn_all(&config.sensors, &Reporter::new(tx), &shutdown, &tasks);
    // However the loop ends (Ctrl-C, a closed stdout, an error), the
    // sensors are stopped and their pins released before returning.
    let result = print_until_stopped(config, rx).await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn print_until_stopped(
    config: &Config,
    mut rx: mpsc::Receiver<Report>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut dispatcher = Dispatcher::new(config, start);
    for t in &config.tables {
        dispatcher.sync_table(t.id, TableState::Free, None, start);
    }
    // Before the first line, so whoever reads it may already stop us.
    let stop = crate::signals::Stop::install()
        .context("installing the Ctrl-C handler")?
        .requested();
    say!(
        "watching {} sensor(s); tables start free; Ctrl-C to stop",
        config.sensors.len()
    )?;
    tokio::pin!(stop);
    loop {
        let wake = dispatcher.next_wake();
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let effects = tokio::select! {
            _ = &mut stop => return Ok(()),
            report = rx.recv() => {
                let Some(report) = report else { return Ok(()) };
                dispatcher.on_report(report, Instant::now())
            }
            _ = timer => dispatcher.on_timer(Instant::now()),
        };
        for effect in effects {
            if let Effect::Transition(t) = &effect {
                // Nothing is stored: every transition counts as committed.
                dispatcher.sync_table(t.table, t.to, None, Instant::now());
            }
            say!("{:>8.1}s {}", start.elapsed().as_secs_f64(), line(&effect))?;
        }
    }
}

/// How `sensors watch` prints one effect (after the time since start).
fn line(effect: &Effect) -> String {
    let people = |n: Option<u32>| n.map_or(String::new(), |n| format!(", {n} people"));
    match effect {
        Effect::Reading { sensor, reading } => format!(
            "{sensor}: {}{}",
            if reading.present { "present" } else { "nobody" },
            people(reading.people)
        ),
        // The reason may quote what a device sent.
        Effect::Faulted { sensor, reason, .. } | Effect::StillFaulted { sensor, reason } => {
            format!("{sensor}: FAULT: {}", printable(reason))
        }
        Effect::Recovered { sensor, .. } => format!("{sensor}: recovered"),
        Effect::Alert { sensor, event, .. } => format!("{sensor}: button {event:?}"),
        Effect::Ready { sensor } => format!("{sensor}: ready"),
        Effect::Added { sensor, table, .. } => {
            format!(
                "{}: detector sensor added for table {table}",
                printable(sensor)
            )
        }
        Effect::Transition(t) => format!(
            "table {}: {} → {} ({}{})",
            t.table,
            t.from,
            t.to,
            t.actor(),
            people(t.people)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::fake::FakeI2c;

    #[test]
    fn probe_names_the_chips() {
        let bus = FakeI2c::new();
        let mut i2c = bus.clone();
        // The L1X was moved to 0x31 (by the daemon) before the L0X woke.
        bus.add_vl53l1x();
        vl53l1x::write_address(&mut i2c, 0x29, 0x31).expect("re-address");
        bus.add_vl53l0x();
        bus.add_device(0x30, false, None);
        bus.add_amg8833(0x69);
        let tof = BTreeSet::from([0x29, 0x31]);
        let found: Vec<(u8, Found)> = (0x08..=0x77u8)
            .filter_map(|a| probe(&mut i2c, a, &tof).map(|f| (a, f)))
            .collect();
        assert_eq!(
            found,
            vec![
                (0x29, Found::Vl53l0x),
                (0x30, Found::Unknown),
                (0x31, Found::Vl53l1x),
                (0x69, Found::Amg8833 { thermistor_c: 25.0 }),
            ]
        );
    }

    #[test]
    fn watch_prints_each_effect_on_one_line() {
        use crate::domain::TableState;
        use crate::occupancy::Transition;
        use crate::sensors::Reading;
        use crate::sensors::report::ButtonEvent;
        let cases = [
            (
                Effect::Reading {
                    sensor: "t".into(),
                    reading: Reading {
                        present: true,
                        people: Some(2),
                    },
                },
                "t: present, 2 people",
            ),
            (
                Effect::Reading {
                    sensor: "pad".into(),
                    reading: Reading::presence(false),
                },
                "pad: nobody",
            ),
            (
                Effect::Faulted {
                    sensor: "t".into(),
                    kind: "amg8833",
                    table: Some(1),
                    reason: "bus\nerror".into(),
                },
                "t: FAULT: bus\\nerror",
            ),
            (
                Effect::StillFaulted {
                    sensor: "t".into(),
                    reason: "again".into(),
                },
                "t: FAULT: again",
            ),
            (
                Effect::Recovered {
                    sensor: "t".into(),
                    kind: "amg8833",
                    table: Some(1),
                },
                "t: recovered",
            ),
            (
                Effect::Alert {
                    sensor: "call".into(),
                    table: Some(1),
                    event: ButtonEvent::Bill,
                },
                "call: button Bill",
            ),
            (
                Effect::Ready {
                    sensor: "call".into(),
                },
                "call: ready",
            ),
            (
                Effect::Transition(Transition {
                    table: 3,
                    from: TableState::Free,
                    to: TableState::Occupied,
                    people: Some(2),
                    sensor: "t".into(),
                }),
                "table 3: free → occupied (sensor:t, 2 people)",
            ),
        ];
        for (effect, expected) in cases {
            assert_eq!(line(&effect), expected);
        }
    }
}
