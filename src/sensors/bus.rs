//! One I2C bus and the chips on it, driven from one thread.
//!
//! [`BusWorker`] is the hardware-independent core: the thread in
//! [`super::pi`] calls [`BusWorker::step`] with the current time and
//! sleeps until [`BusWorker::next_wake`]. Each device is read every
//! `interval`; errors go to its [`Health`], which decides when it is
//! faulted (reported once) and when to retry (with backoff); a faulted
//! device is initialised again before its next read. Readings are reported
//! when they change. The drivers share the bus through `embedded-hal-bus`'s
//! `RcDevice` (one thread, so an `Rc<RefCell<_>>` is all the sharing needed).
//!
//! Several sensors can be one device: an AMG8833 split into windows, one
//! per table, is read once per frame and counted per window.
//! Time-of-flight chips behind XSHUT pins form a chain that is brought up
//! (and re-addressed) again whenever one of them has to be initialised.

use super::amg8833::{Amg8833, Amg8833Config, PIXELS, PeopleCounter};
use super::chain::{ChainLink, bring_up_chain};
use super::health::{Health, HealthChange};
use super::report::Report;
use super::vl53l0x::{Vl53l0x, Vl53l0xConfig};
use super::vl53l1x::{Vl53l1x, Vl53l1xConfig};
use super::{PollSensor, Reading, SensorError, TofKind};
use crate::sensors::spec::{SensorConfig, SensorKind};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;
use embedded_hal_bus::i2c::RcDevice;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// A chip read as a unit: one reading per sensor id it serves.
pub trait BusDevice {
    fn init(&mut self) -> Result<(), SensorError>;
    fn read(&mut self) -> Result<Vec<Reading>, SensorError>;
}

struct Single<S>(S);

impl<S: PollSensor> BusDevice for Single<S> {
    fn init(&mut self) -> Result<(), SensorError> {
        self.0.init()
    }
    fn read(&mut self) -> Result<Vec<Reading>, SensorError> {
        Ok(vec![self.0.read()?])
    }
}

/// An AMG8833 whose frame is counted per window (one per table).
struct Windows<I, D> {
    chip: Amg8833<I, D>,
    counters: Vec<PeopleCounter>,
}

impl<I: I2c, D: DelayNs> BusDevice for Windows<I, D> {
    fn init(&mut self) -> Result<(), SensorError> {
        self.chip.init()?;
        self.counters.iter_mut().for_each(PeopleCounter::reset);
        Ok(())
    }

    fn read(&mut self) -> Result<Vec<Reading>, SensorError> {
        self.chip.thermistor()?;
        let frame = self.chip.frame()?;
        Ok(self
            .counters
            .iter_mut()
            .map(|c| {
                let people = c.update(&frame);
                Reading {
                    present: people > 0,
                    people: Some(people),
                }
            })
            .collect())
    }
}

struct Slot {
    /// The sensors this device serves, in the order of its readings.
    ids: Vec<String>,
    device: Box<dyn BusDevice>,
    health: Health,
    interval: Duration,
    due: Instant,
    needs_init: bool,
    /// Behind an XSHUT pin: initialising it needs the chain brought up.
    chained: bool,
    last: Vec<Option<Reading>>,
}

/// Brings up the XSHUT chain of a bus (all chips reset and re-addressed).
pub type ChainBringUp = Box<dyn FnMut() -> Result<(), SensorError>>;

pub struct BusWorker {
    slots: Vec<Slot>,
    chain: Option<ChainBringUp>,
    /// The chain must be brought up before a chained chip is initialised.
    chain_pending: bool,
}

impl BusWorker {
    /// The devices for `sensors` (all on one bus) on `bus`; `xshut` gives
    /// the output pin for a BCM number, `delay` a delay for each driver.
    pub fn new<I, D, P>(
        bus: I,
        sensors: &[&SensorConfig],
        mut xshut: impl FnMut(u8) -> P,
        mut delay: impl FnMut() -> D,
        now: Instant,
    ) -> BusWorker
    where
        I: I2c + 'static,
        D: DelayNs + 'static,
        P: OutputPin + 'static,
    {
        // One bus shared by every driver here (each owns an `I2c`; these
        // devices all lead to the one bus). Only one driver runs at a time
        // on this thread, so the RefCell's borrow is never contended.
        let bus = Rc::new(RefCell::new(bus));
        let device = || RcDevice::new(Rc::clone(&bus));
        let mut slots: Vec<Slot> = Vec::new();
        let mut links = Vec::new();
        // Windows of one AMG8833 (same address) become one device.
        let mut arrays: Vec<(u8, Vec<&SensorConfig>)> = Vec::new();
        for s in sensors {
            let slot = |device: Box<dyn BusDevice>, interval: Duration, chained: bool| Slot {
                ids: vec![s.id.clone()],
                device,
                health: Health::new(s.health.clone(), now),
                interval,
                due: now,
                needs_init: true,
                chained,
                last: vec![None],
            };
            match &s.kind {
                SensorKind::Amg8833(a) => {
                    match arrays.iter_mut().find(|(addr, _)| *addr == a.address) {
                        Some((_, group)) => group.push(s),
                        None => arrays.push((a.address, vec![s])),
                    }
                }
                SensorKind::Tof(t) => {
                    let device: Box<dyn BusDevice> = match t.chip {
                        TofKind::Vl53l0x => Box::new(Single(Vl53l0x::new(
                            device(),
                            delay(),
                            Vl53l0xConfig {
                                address: t.address,
                                max_mm: t.max_mm,
                                ..Vl53l0xConfig::default()
                            },
                        ))),
                        TofKind::Vl53l1x => Box::new(Single(Vl53l1x::new(
                            device(),
                            delay(),
                            Vl53l1xConfig {
                                address: t.address,
                                max_mm: t.max_mm,
                                ..Vl53l1xConfig::default()
                            },
                        ))),
                    };
                    if let Some(pin) = t.xshut_pin {
                        links.push(ChainLink {
                            kind: t.chip,
                            xshut: xshut(pin),
                            address: t.address,
                        });
                    }
                    slots.push(slot(device, t.interval, t.xshut_pin.is_some()));
                }
                _ => {}
            }
        }
        for (address, group) in arrays {
            let Some((first, a)) = group.first().and_then(|s| match &s.kind {
                SensorKind::Amg8833(a) => Some((*s, a)),
                _ => None,
            }) else {
                continue;
            };
            let counters = group
                .iter()
                .filter_map(|s| match &s.kind {
                    SensorKind::Amg8833(w) => {
                        let mut mask = [false; PIXELS];
                        for (i, m) in mask.iter_mut().enumerate() {
                            *m = w.window.contains(i);
                        }
                        Some(PeopleCounter::masked(w.counting.clone(), mask))
                    }
                    _ => None,
                })
                .collect();
            let chip = Amg8833::new(
                device(),
                delay(),
                Amg8833Config {
                    address,
                    frame_rate: a.frame_rate,
                    counting: a.counting.clone(),
                },
            );
            slots.push(Slot {
                ids: group.iter().map(|s| s.id.clone()).collect(),
                device: Box::new(Windows { chip, counters }),
                health: Health::new(first.health.clone(), now),
                interval: a.interval,
                due: now,
                needs_init: true,
                chained: false,
                last: vec![None; group.len()],
            });
        }
        // A chip left at the power-on address must wake last, or the next
        // one to wake would collide with it.
        links.sort_by_key(|l| l.address == super::TOF_DEFAULT_ADDRESS);
        let chain = (!links.is_empty()).then(|| {
            let mut i2c = device();
            let mut delay = delay();
            let bring_up: ChainBringUp =
                Box::new(move || bring_up_chain(&mut i2c, &mut links, &mut delay));
            bring_up
        });
        BusWorker {
            slots,
            chain_pending: chain.is_some(),
            chain,
        }
    }

    /// Does what is due at `now` and returns what to report.
    pub fn step(&mut self, now: Instant) -> Vec<Report> {
        let mut reports = Vec::new();
        for index in 0..self.slots.len() {
            let due = self.slots.get(index).is_some_and(|s| s.due <= now);
            if due {
                self.service(index, now, &mut reports);
            }
            if let Some(slot) = self.slots.get_mut(index) {
                if let Some(HealthChange::Faulted { reason }) = slot.health.check(now) {
                    fault(slot, &reason, now, &mut reports);
                }
            }
        }
        reports
    }

    /// When [`BusWorker::step`] has something to do next.
    pub fn next_wake(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flat_map(|s| [Some(s.due), s.health.stale_deadline()])
            .flatten()
            .min()
    }

    fn service(&mut self, index: usize, now: Instant, reports: &mut Vec<Report>) {
        let chained = self.slots.get(index).is_some_and(|s| s.chained);
        let needs_init = self.slots.get(index).is_some_and(|s| s.needs_init);
        if needs_init && chained && self.chain_pending {
            if let Some(bring_up) = self.chain.as_mut() {
                match bring_up() {
                    Ok(()) => {
                        self.chain_pending = false;
                        // Every chip of the chain was reset.
                        for s in self.slots.iter_mut().filter(|s| s.chained) {
                            s.needs_init = true;
                        }
                    }
                    Err(e) => {
                        if let Some(slot) = self.slots.get_mut(index) {
                            failed(slot, &e, now, reports);
                        }
                        return;
                    }
                }
            }
        }
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.needs_init {
            if let Err(e) = slot.device.init() {
                if chained && matches!(e, SensorError::NotFound { .. }) {
                    // Back at its power-on address (a brown-out?): the
                    // whole chain has to be brought up again.
                    self.chain_pending = true;
                }
                failed(slot, &e, now, reports);
                return;
            }
            slot.needs_init = false;
        }
        match slot.device.read() {
            Ok(readings) => {
                if slot.health.record_ok(now) == Some(HealthChange::Recovered) {
                    for id in &slot.ids {
                        reports.push(Report::Recovered { sensor: id.clone() });
                    }
                }
                for ((id, last), reading) in slot.ids.iter().zip(&mut slot.last).zip(readings) {
                    if *last != Some(reading) {
                        *last = Some(reading);
                        reports.push(Report::Reading {
                            sensor: id.clone(),
                            reading,
                        });
                    }
                }
                slot.due = now + slot.interval;
            }
            Err(e) => {
                if chained && matches!(e, SensorError::NotFound { .. }) {
                    self.chain_pending = true;
                }
                failed(slot, &e, now, reports);
            }
        }
    }
}

/// A read or init error: counts towards a fault, schedules the retry.
fn failed(slot: &mut Slot, error: &SensorError, now: Instant, reports: &mut Vec<Report>) {
    tracing::debug!(sensors = ?slot.ids, error = ?error, "sensor read failed");
    if let Some(HealthChange::Faulted { reason }) = slot.health.record_error(error, now) {
        fault(slot, &reason, now, reports);
    }
    slot.due = slot.health.next_retry(now).unwrap_or(now + slot.interval);
}

fn fault(slot: &mut Slot, reason: &str, now: Instant, reports: &mut Vec<Report>) {
    for (id, last) in slot.ids.iter().zip(&mut slot.last) {
        *last = None;
        reports.push(Report::Fault {
            sensor: id.clone(),
            reason: reason.to_string(),
        });
    }
    slot.needs_init = true;
    if let Some(retry) = slot.health.next_retry(now) {
        slot.due = retry;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDelay, FakeI2c, FakeXshut};
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn sensors(toml: &str) -> Vec<SensorConfig> {
        let text = format!("[[tables]]\nid = 1\n[[tables]]\nid = 2\n{toml}");
        Config::from_toml(Path::new("test.toml"), &text, std::iter::empty())
            .expect("config")
            .sensors
    }

    fn worker(
        bus: &FakeI2c,
        sensors: &[SensorConfig],
        xshut: &[(u8, usize)],
        now: Instant,
    ) -> BusWorker {
        let refs: Vec<&SensorConfig> = sensors.iter().collect();
        let pins: Vec<(u8, usize)> = xshut.to_vec();
        let fake = bus.clone();
        BusWorker::new(
            bus.clone(),
            &refs,
            move |pin| -> FakeXshut {
                let dev = pins
                    .iter()
                    .find(|(p, _)| *p == pin)
                    .map_or(usize::MAX, |(_, d)| *d);
                fake.xshut(dev)
            },
            FakeDelay::default,
            now,
        )
    }

    /// An 8×8 frame at 22 °C with 31 °C pixels where `warm` says so, as
    /// the AMG8833's registers (0.25 °C/LSB, little endian).
    fn frame_regs(warm: impl Fn(usize) -> bool) -> Vec<u8> {
        (0..PIXELS)
            .flat_map(|i| {
                let lsb: u16 = if warm(i) { 124 } else { 88 };
                lsb.to_le_bytes()
            })
            .collect()
    }

    fn readings(reports: &[Report]) -> Vec<(String, bool, Option<u32>)> {
        reports
            .iter()
            .filter_map(|r| match r {
                Report::Reading { sensor, reading } => {
                    Some((sensor.clone(), reading.present, reading.people))
                }
                _ => None,
            })
            .collect()
    }

    fn kinds(reports: &[Report]) -> Vec<&'static str> {
        reports
            .iter()
            .map(|r| match r {
                Report::Reading { .. } => "reading",
                Report::Fault { .. } => "fault",
                Report::Recovered { .. } => "recovered",
                Report::Button { .. } => "button",
                Report::Ready { .. } => "ready",
                Report::Detection { .. } => "detection",
            })
            .collect()
    }

    #[test]
    fn bus_errors_fault_after_fault_after_and_the_chip_recovers() {
        let bus = FakeI2c::new();
        let dev = bus.add_amg8833(0x68);
        bus.set_regs(dev, 0x80, &frame_regs(|_| false));
        let config = sensors(
            "[[sensors]]\nid = \"t\"\nkind = \"amg8833\"\ntable = 1\nfault_after = 3\ninterval = \"100ms\"\n",
        );
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = worker(&bus, &config, &[], t0);
        assert_eq!(readings(&w.step(t0)), vec![("t".into(), false, Some(0))]);
        assert_eq!(w.next_wake(), Some(t0 + ms(100)));
        // Two failed reads: not yet a fault, reads go on at the interval.
        for n in 1..=2u64 {
            bus.fail_next(1);
            assert!(w.step(t0 + ms(100 * n)).is_empty(), "error {n}");
        }
        bus.fail_next(1);
        let reports = w.step(t0 + ms(300));
        assert_eq!(kinds(&reports), vec!["fault"]);
        match &reports[0] {
            Report::Fault { sensor, reason } => {
                assert_eq!(sensor, "t");
                assert!(reason.contains("3 consecutive"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Retried with backoff, re-initialised, then recovered.
        assert_eq!(w.next_wake(), Some(t0 + ms(1300)));
        assert!(w.step(t0 + ms(1000)).is_empty(), "not due yet");
        bus.fail_next(1);
        assert!(w.step(t0 + ms(1300)).is_empty(), "retry fails quietly");
        assert_eq!(w.next_wake(), Some(t0 + ms(3300)), "backoff doubled");
        bus.clear_writes();
        bus.set_regs(dev, 0x80, &frame_regs(|i| [9, 10, 17, 18].contains(&i)));
        let reports = w.step(t0 + ms(3300));
        assert_eq!(kinds(&reports), vec!["recovered", "reading"]);
        assert_eq!(readings(&reports), vec![("t".into(), true, Some(1))]);
        assert!(
            bus.reg_writes(0x68).contains(&(0x01, 0x3F)),
            "the chip was reset and set up again"
        );
        assert!(
            w.step(t0 + ms(3400)).is_empty(),
            "unchanged readings are not repeated"
        );
    }

    #[test]
    fn a_silent_chip_goes_stale() {
        let bus = FakeI2c::new();
        bus.add_amg8833(0x68);
        let config = sensors(
            "[[sensors]]\nid = \"t\"\nkind = \"amg8833\"\ntable = 1\nfault_after = 1000\nstale_after = \"5s\"\n",
        );
        let t0 = Instant::now();
        let mut w = worker(&bus, &config, &[], t0);
        bus.fail_next(u32::MAX);
        let mut at = t0;
        let mut reports = Vec::new();
        while at < t0 + Duration::from_secs(6) {
            reports.extend(w.step(at));
            at = w.next_wake().expect("wake");
        }
        assert_eq!(kinds(&reports), vec!["fault"]);
        match &reports[0] {
            Report::Fault { reason, .. } => {
                assert!(reason.contains("no reading for 5 s"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_array_split_between_two_tables() {
        let bus = FakeI2c::new();
        let dev = bus.add_amg8833(0x69);
        let config = sensors(
            "[[sensors]]\nid = \"top\"\nkind = \"amg8833\"\ntable = 1\naddress = 0x69\nwindow = [0, 0, 4, 8]\n\
             [[sensors]]\nid = \"bottom\"\nkind = \"amg8833\"\ntable = 2\naddress = 0x69\nwindow = [4, 0, 4, 8]\n",
        );
        let t0 = Instant::now();
        let mut w = worker(&bus, &config, &[], t0);
        bus.set_regs(dev, 0x80, &frame_regs(|_| false));
        assert_eq!(
            readings(&w.step(t0)),
            vec![
                ("top".into(), false, Some(0)),
                ("bottom".into(), false, Some(0))
            ]
        );
        let before = bus.transactions();
        // Two guests in the top half, one in the bottom half.
        bus.set_regs(
            dev,
            0x80,
            &frame_regs(|i| [0, 1, 8, 9, 5, 6, 13, 14, 50, 51, 58, 59].contains(&i)),
        );
        let reports = w.step(t0 + Duration::from_millis(100));
        assert_eq!(
            readings(&reports),
            vec![
                ("top".into(), true, Some(2)),
                ("bottom".into(), true, Some(1))
            ]
        );
        assert_eq!(
            bus.transactions() - before,
            2,
            "thermistor + one 128-byte frame"
        );
    }

    #[test]
    fn tof_chain_is_brought_up_and_read() {
        let bus = FakeI2c::new();
        let a = bus.add_vl53l0x();
        let b = bus.add_vl53l1x();
        let config = sensors(
            "[[sensors]]\nid = \"tof-b\"\nkind = \"vl53l1x\"\ntable = 2\nxshut_pin = 6\n\
             [[sensors]]\nid = \"tof-a\"\nkind = \"vl53l0x\"\ntable = 1\naddress = 0x30\nxshut_pin = 5\nmax_mm = 600\n",
        );
        // tof-a: 400 mm, valid; tof-b: 2 m, valid.
        bus.set_regs(a, 0x14, &[0x58]);
        bus.set_regs(a, 0x1E, &400u16.to_be_bytes());
        bus.set_regs(b, 0x0089, &[9]);
        bus.set_regs(b, 0x0096, &2000u16.to_be_bytes());
        let t0 = Instant::now();
        let mut w = worker(&bus, &config, &[(5, a), (6, b)], t0);
        let reports = w.step(t0);
        assert_eq!(bus.device_address(a), 0x30, "re-addressed at bring-up");
        assert_eq!(bus.device_address(b), 0x29, "the last one keeps 0x29");
        assert_eq!(
            readings(&reports),
            vec![("tof-b".into(), false, None), ("tof-a".into(), true, None)]
        );
        // A read error on one chip alone does not fault it (fault_after 3).
        bus.fail_next(1);
        assert!(w.step(t0 + Duration::from_millis(200)).is_empty());
    }
}
