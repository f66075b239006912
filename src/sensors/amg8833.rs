//! Driver for the Panasonic AMG8833 (Grid-EYE) 8×8 thermal array, and the
//! people counter that turns its frames into a head count.
//!
//! Reading: the 64 pixels come in ONE 128-byte `write_read` from 0x80 (the
//! chip auto-increments; an SMBus block read would stop at 32 bytes).
//! Pixels are 12-bit two's complement at 0.25 °C/LSB, little endian; the
//! thermistor (0x0E/0x0F) is 12-bit sign-magnitude at 0.0625 °C/LSB.
//! Values outside what the chip can physically report are rejected as
//! [`SensorError::BadData`]: they come from a bus returning garbage.
//!
//! Counting ([`PeopleCounter`]):
//! - A per-pixel background is initialised from the first frame, with every
//!   pixel warmer than the frame's median + `delta_c` replaced by the median,
//!   so guests already seated at start-up are counted rather than learned.
//! - The background then learns with a small rate (faster for the first
//!   `warmup_frames`) only from pixels that are not part of a counted blob,
//!   so a guest who sits still for an hour is not absorbed. A pixel colder
//!   than its background by more than `delta_c` is learned at once: the
//!   background was wrong (e.g. somebody was there at start-up).
//! - A pixel is warm when it exceeds its background by `delta_c` and is at
//!   most `max_c`; above `max_c` it is hot (a dish, a teapot, a candle).
//! - Blobs are 4-connected. At 8×8 resolution a seated person is a compact
//!   patch, while two neighbours often touch only at a corner: 8-connectivity
//!   would merge them.
//! - Hot dishes: a small hot region (at most `max_dish_px` pixels) counts as
//!   part of whatever warm pixels touch it, so a person split in two by the
//!   plate in front of them is one blob. A larger hot region (heater, sun
//!   patch) neither counts nor joins anything. A blob counts as a person if
//!   it has at least `min_blob` warm pixels and at least one of them is not
//!   next to a hot pixel, since warmth found only around a hot spot is the
//!   dish's own glow. Known limit: two guests who both touch the same small
//!   dish are counted as one.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use serde::{Deserialize, Serialize};

use super::{PollSensor, Reading, SensorError};

const PCTL: u8 = 0x00;
const RST: u8 = 0x01;
const FPSC: u8 = 0x02;
const INTC: u8 = 0x03;
const TTHL: u8 = 0x0E;
const T01L: u8 = 0x80;

const WIDTH: usize = 8;
pub const PIXELS: usize = WIDTH * WIDTH;

/// Row-major °C, pixel 1 (top left as seen by the sensor) first.
pub type Frame = [f32; PIXELS];

/// Beyond the chip's −20…100 °C pixel range with margin: anything outside
/// is a corrupted transfer, not a scene.
const PIXEL_RANGE: std::ops::RangeInclusive<f32> = -30.0..=130.0;
/// The chip's operating range, with margin.
const THERMISTOR_RANGE: std::ops::RangeInclusive<f32> = -20.0..=85.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameRate {
    Fps10,
    Fps1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Amg8833Config {
    /// 0x68 (AD_SELECT low) or 0x69.
    pub address: u8,
    pub frame_rate: FrameRate,
    pub counting: CountingConfig,
}

impl Default for Amg8833Config {
    fn default() -> Self {
        Amg8833Config {
            address: 0x68,
            frame_rate: FrameRate::Fps10,
            counting: CountingConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountingConfig {
    /// How much warmer than the background a pixel must be to be warm.
    pub delta_c: f32,
    /// Warm pixels a blob needs to be a person.
    pub min_blob: usize,
    /// Above this a pixel is too hot to be a person.
    pub max_c: f32,
    /// Largest hot region treated as a dish (bridging) rather than ignored.
    pub max_dish_px: usize,
    /// Background learning rate per frame.
    pub learn_rate: f32,
    pub warmup_frames: u32,
    pub warmup_rate: f32,
}

impl Default for CountingConfig {
    fn default() -> Self {
        CountingConfig {
            delta_c: 1.5,
            min_blob: 3,
            max_c: 45.0,
            max_dish_px: 6,
            learn_rate: 0.01,
            warmup_frames: 8,
            warmup_rate: 0.2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Background,
    Warm,
    Hot,
}

/// The background model and blob counter (pure, see the module docs).
#[derive(Debug, Clone)]
pub struct PeopleCounter {
    cfg: CountingConfig,
    background: Option<Frame>,
    frames: u32,
    /// Pixels this counter looks at (one table's part of a shared array).
    mask: [bool; PIXELS],
}

impl PeopleCounter {
    pub fn new(cfg: CountingConfig) -> Self {
        Self::masked(cfg, [true; PIXELS])
    }

    /// A counter that only sees the pixels where `mask` is true, for an
    /// array watching several tables; a person straddling two windows is
    /// counted in both.
    pub fn masked(cfg: CountingConfig, mask: [bool; PIXELS]) -> Self {
        PeopleCounter {
            cfg,
            background: None,
            frames: 0,
            mask,
        }
    }

    /// Forgets the background (after a re-init the scene may have changed).
    pub fn reset(&mut self) {
        self.background = None;
        self.frames = 0;
    }

    pub fn background(&self) -> Option<&Frame> {
        self.background.as_ref()
    }

    /// Counts the people in a frame and updates the background.
    pub fn update(&mut self, frame: &Frame) -> u32 {
        let delta = self.cfg.delta_c;
        let background = *self
            .background
            .get_or_insert_with(|| initial_background(frame, delta));

        let mut class = [Class::Background; PIXELS];
        for (((c, t), b), seen) in class.iter_mut().zip(frame).zip(&background).zip(&self.mask) {
            *c = if !seen {
                Class::Background
            } else if *t > self.cfg.max_c {
                Class::Hot
            } else if t - b > delta {
                Class::Warm
            } else {
                Class::Background
            };
        }
        // Large hot regions are not dishes: drop them entirely.
        let hot_regions = label(&class, |c| c == Class::Hot);
        for region in &hot_regions {
            if region.len() > self.cfg.max_dish_px {
                for &i in region {
                    set(&mut class, i, Class::Background);
                }
            }
        }
        let near_hot = near(&class, Class::Hot);

        let mut in_person = [false; PIXELS];
        let mut people = 0u32;
        for blob in label(&class, |c| c != Class::Background) {
            let warm: Vec<usize> = blob
                .iter()
                .copied()
                .filter(|&i| get(&class, i) == Some(Class::Warm))
                .collect();
            let has_core = warm
                .iter()
                .any(|&i| !near_hot.get(i).copied().unwrap_or(false));
            if warm.len() >= self.cfg.min_blob && has_core {
                people += 1;
                for &i in &blob {
                    if let Some(flag) = in_person.get_mut(i) {
                        *flag = true;
                    }
                }
            }
        }

        self.learn(frame, &class, &in_person);
        people
    }

    fn learn(&mut self, frame: &Frame, class: &[Class; PIXELS], in_person: &[bool; PIXELS]) {
        let rate = if self.frames < self.cfg.warmup_frames {
            self.cfg.warmup_rate
        } else {
            self.cfg.learn_rate
        };
        self.frames = self.frames.saturating_add(1);
        let Some(background) = self.background.as_mut() else {
            return;
        };
        for (((b, t), c), person) in background.iter_mut().zip(frame).zip(class).zip(in_person) {
            if *person || *c == Class::Hot {
                continue;
            }
            let diff = t - *b;
            if diff < -self.cfg.delta_c {
                *b = *t;
            } else {
                *b += rate * diff;
            }
        }
    }
}

fn initial_background(frame: &Frame, delta: f32) -> Frame {
    let mut sorted = *frame;
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[PIXELS / 2 - 1] + sorted[PIXELS / 2]) / 2.0;
    let mut background = *frame;
    for b in background.iter_mut() {
        if *b > median + delta {
            *b = median;
        }
    }
    background
}

fn get<T: Copy>(cells: &[T; PIXELS], i: usize) -> Option<T> {
    cells.get(i).copied()
}

fn set<T>(cells: &mut [T; PIXELS], i: usize, value: T) {
    if let Some(cell) = cells.get_mut(i) {
        *cell = value;
    }
}

/// Indices of the 4-neighbours of pixel `i`.
fn neighbours4(i: usize) -> impl Iterator<Item = usize> {
    let (row, col) = (i / WIDTH, i % WIDTH);
    let up = row.checked_sub(1).map(|r| r * WIDTH + col);
    let down = (row + 1 < WIDTH).then(|| (row + 1) * WIDTH + col);
    let left = col.checked_sub(1).map(|c| row * WIDTH + c);
    let right = (col + 1 < WIDTH).then(|| row * WIDTH + col + 1);
    [up, down, left, right].into_iter().flatten()
}

/// For each pixel: is it, or any of its 8 neighbours, of class `target`?
fn near(class: &[Class; PIXELS], target: Class) -> [bool; PIXELS] {
    let mut out = [false; PIXELS];
    for (i, flag) in out.iter_mut().enumerate() {
        let (row, col) = (i / WIDTH, i % WIDTH);
        *flag = (row.saturating_sub(1)..=(row + 1).min(WIDTH - 1)).any(|r| {
            (col.saturating_sub(1)..=(col + 1).min(WIDTH - 1))
                .any(|c| get(class, r * WIDTH + c) == Some(target))
        });
    }
    out
}

/// 4-connected components of the pixels whose class passes `member`.
fn label(class: &[Class; PIXELS], member: impl Fn(Class) -> bool) -> Vec<Vec<usize>> {
    let mut seen = [false; PIXELS];
    let mut regions = Vec::new();
    for start in 0..PIXELS {
        if get(&seen, start) != Some(false) || !get(class, start).is_some_and(&member) {
            continue;
        }
        set(&mut seen, start, true);
        let mut region = Vec::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            region.push(i);
            for n in neighbours4(i) {
                if get(&seen, n) == Some(false) && get(class, n).is_some_and(&member) {
                    set(&mut seen, n, true);
                    stack.push(n);
                }
            }
        }
        regions.push(region);
    }
    regions
}

/// 12-bit two's complement, 0.25 °C/LSB.
fn pixel_c(lo: u8, hi: u8) -> f32 {
    let raw = i16::try_from(u16::from_le_bytes([lo, hi]) & 0x0FFF).unwrap_or(0);
    let signed = if raw & 0x0800 != 0 { raw - 0x1000 } else { raw };
    f32::from(signed) * 0.25
}

/// 12-bit sign-magnitude, 0.0625 °C/LSB.
fn thermistor_c(lo: u8, hi: u8) -> f32 {
    let raw = u16::from_le_bytes([lo, hi]);
    let magnitude = f32::from(raw & 0x07FF) * 0.0625;
    if raw & 0x0800 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Identifies an AMG8833 at `address` (0x68 or 0x69) for `mesero sensors
/// scan`: the chip has no id register, so a thermistor reading inside the
/// operating range, with the register's unused top bits clear, is the
/// evidence. Returns the thermistor's °C.
pub fn identify<I: I2c>(i2c: &mut I, address: u8) -> Result<f32, SensorError> {
    let mut buf = [0u8; 2];
    i2c.write_read(address, &[TTHL], &mut buf)
        .map_err(SensorError::from_i2c)?;
    let [lo, hi] = buf;
    let celsius = thermistor_c(lo, hi);
    if hi & 0xF0 != 0 || !THERMISTOR_RANGE.contains(&celsius) {
        return Err(SensorError::NotFound {
            expected: format!("AMG8833 at 0x{address:02x}"),
            found: format!("thermistor register reads 0x{hi:02x}{lo:02x}"),
        });
    }
    Ok(celsius)
}

pub struct Amg8833<I2C, D> {
    i2c: I2C,
    delay: D,
    cfg: Amg8833Config,
    counter: PeopleCounter,
}

impl<I2C: I2c, D: DelayNs> Amg8833<I2C, D> {
    pub fn new(i2c: I2C, delay: D, cfg: Amg8833Config) -> Self {
        let counter = PeopleCounter::new(cfg.counting.clone());
        Amg8833 {
            i2c,
            delay,
            cfg,
            counter,
        }
    }

    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    pub fn counter(&self) -> &PeopleCounter {
        &self.counter
    }

    /// The chip's own temperature, °C.
    pub fn thermistor(&mut self) -> Result<f32, SensorError> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(self.cfg.address, &[TTHL], &mut buf)
            .map_err(SensorError::from_i2c)?;
        let [lo, hi] = buf;
        let celsius = thermistor_c(lo, hi);
        if !THERMISTOR_RANGE.contains(&celsius) {
            return Err(SensorError::BadData(format!(
                "thermistor reads {celsius} °C"
            )));
        }
        Ok(celsius)
    }

    /// All 64 pixels in one transaction.
    pub fn frame(&mut self) -> Result<Frame, SensorError> {
        let mut buf = [0u8; 2 * PIXELS];
        self.i2c
            .write_read(self.cfg.address, &[T01L], &mut buf)
            .map_err(SensorError::from_i2c)?;
        let mut frame = [0f32; PIXELS];
        for (pixel, bytes) in frame.iter_mut().zip(buf.chunks_exact(2)) {
            if let [lo, hi] = bytes {
                *pixel = pixel_c(*lo, *hi);
            }
        }
        if let Some(bad) = frame.iter().find(|t| !PIXEL_RANGE.contains(*t)) {
            return Err(SensorError::BadData(format!("pixel reads {bad} °C")));
        }
        Ok(frame)
    }

    fn write_reg(&mut self, reg: u8, value: u8) -> Result<(), SensorError> {
        self.i2c
            .write(self.cfg.address, &[reg, value])
            .map_err(SensorError::from_i2c)
    }
}

impl<I2C: I2c, D: DelayNs> PollSensor for Amg8833<I2C, D> {
    /// Normal mode, initial reset, frame rate, interrupts off. The chip has
    /// no id register: an address NACK on the first write means it is not
    /// there, and the frame rate register must read back what was written.
    fn init(&mut self) -> Result<(), SensorError> {
        let expected = format!("AMG8833 at 0x{:02x}", self.cfg.address);
        self.i2c
            .write(self.cfg.address, &[PCTL, 0x00])
            .map_err(|e| SensorError::from_i2c_probe(e, &expected))?;
        // Datasheet: 50 ms after entering normal mode, 2 ms after a reset.
        self.delay.delay_ms(50);
        self.write_reg(RST, 0x3F)?;
        self.delay.delay_ms(2);
        let (fpsc, frame_ms) = match self.cfg.frame_rate {
            FrameRate::Fps10 => (0x00, 100),
            FrameRate::Fps1 => (0x01, 1000),
        };
        self.write_reg(FPSC, fpsc)?;
        self.write_reg(INTC, 0x00)?;
        let mut readback = [0u8];
        self.i2c
            .write_read(self.cfg.address, &[FPSC], &mut readback)
            .map_err(SensorError::from_i2c)?;
        let [readback] = readback;
        if readback & 0x01 != fpsc {
            return Err(SensorError::NotFound {
                expected,
                found: format!("frame rate register reads 0x{readback:02x}"),
            });
        }
        self.thermistor()?;
        // The first frame after a reset is only valid one period later.
        self.delay.delay_ms(frame_ms);
        self.counter.reset();
        Ok(())
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        self.thermistor()?;
        let frame = self.frame()?;
        let people = self.counter.update(&frame);
        Ok(Reading {
            present: people > 0,
            people: Some(people),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDelay, FakeI2c};
    use super::*;

    /// A frame from an ASCII map: '.' room (22 °C with a little fixed
    /// texture so it is not perfectly flat), '#' a person (31 °C),
    /// '+' a person's cooler edge (25 °C), 'H' a hot dish (70 °C).
    fn frame(rows: [&str; 8]) -> Frame {
        let mut f = [0f32; PIXELS];
        for (r, row) in rows.iter().enumerate() {
            for (c, ch) in row.chars().enumerate() {
                let texture = ((r * 3 + c * 5) % 4) as f32 * 0.25 - 0.25;
                f[r * WIDTH + c] = match ch {
                    '#' => 31.0,
                    '+' => 25.0,
                    'H' => 70.0,
                    _ => 22.0 + texture,
                };
            }
        }
        f
    }

    const EMPTY: [&str; 8] = ["........"; 8];

    fn to_registers(f: &Frame) -> Vec<u8> {
        f.iter()
            .flat_map(|t| {
                let raw = ((t / 0.25).round() as i16) & 0x0FFF;
                (raw as u16).to_le_bytes()
            })
            .collect()
    }

    fn sensor(bus: &FakeI2c) -> Amg8833<FakeI2c, FakeDelay> {
        Amg8833::new(bus.clone(), FakeDelay::default(), Amg8833Config::default())
    }

    #[test]
    fn counts_blobs_through_the_fake_bus() {
        let cases: [(&str, [&str; 8], u32); 10] = [
            ("nobody", EMPTY, 0),
            (
                "one",
                [
                    "........", "........", "..###...", "..###...", "..+#+...", "........",
                    "........", "........",
                ],
                1,
            ),
            (
                "two",
                [
                    "##......", "##......", "#.......", "........", "........", ".....###",
                    ".....###", "........",
                ],
                2,
            ),
            (
                "three, touching edges and corners",
                [
                    "###....#", "##.....#", ".......#", "........", "........", "........",
                    ".......#", "......##",
                ],
                3,
            ),
            (
                "diagonal neighbours stay two",
                [
                    "........", ".##.....", ".##.....", "...##...", "...##...", "........",
                    "........", "........",
                ],
                2,
            ),
            (
                "one person split by a hot dish",
                [
                    "........", ".##H##..", ".##H##..", ".##H##..", ".##H##..", "........",
                    "........", "........",
                ],
                1,
            ),
            (
                "a dish alone, with its glow, is nobody",
                [
                    "........", "........", "...+++..", "...+H+..", "...+++..", "........",
                    "........", "........",
                ],
                0,
            ),
            (
                "a large hot area is not a bridge",
                [
                    "........", "#HHHHH#.", "#HHHHH#.", "#HHHHH#.", "........", "........",
                    "........", "........",
                ],
                2,
            ),
            (
                "blob below min_blob",
                [
                    "........", "........", "....##..", "........", "........", "........",
                    "........", "........",
                ],
                0,
            ),
            (
                "seated from the start, plus one dish each",
                [
                    "###.....", "###H....", "###.....", "........", ".....###", "....H###",
                    ".....###", "........",
                ],
                2,
            ),
        ];
        for (name, rows, expected) in cases {
            let bus = FakeI2c::new();
            let dev = bus.add_amg8833(0x68);
            let mut s = sensor(&bus);
            s.init().unwrap();
            bus.set_regs(dev, 0x80, &to_registers(&frame(rows)));
            let reading = s.read().unwrap();
            assert_eq!(reading.people, Some(expected), "{name} (first frame)");
            assert_eq!(reading.present, expected > 0, "{name}");
            // Learned against an empty room first, the count is the same.
            let mut counter = PeopleCounter::new(CountingConfig::default());
            for _ in 0..20 {
                assert_eq!(counter.update(&frame(EMPTY)), 0);
            }
            assert_eq!(
                counter.update(&frame(rows)),
                expected,
                "{name} (after background)"
            );
        }
    }

    #[test]
    fn a_masked_counter_sees_only_its_window() {
        let two = frame([
            "##......", "##......", "#.......", "........", "........", ".....###", ".....###",
            "........",
        ]);
        let mut top = [false; PIXELS];
        top.iter_mut().take(32).for_each(|p| *p = true);
        let bottom = top.map(|p| !p);
        let mut top = PeopleCounter::masked(CountingConfig::default(), top);
        let mut bottom = PeopleCounter::masked(CountingConfig::default(), bottom);
        assert_eq!(top.update(&frame(EMPTY)), 0);
        assert_eq!(bottom.update(&frame(EMPTY)), 0);
        assert_eq!((top.update(&two), bottom.update(&two)), (1, 1));
    }

    #[test]
    fn background_adapts_but_keeps_still_guests() {
        let mut counter = PeopleCounter::new(CountingConfig::default());
        let guest = frame([
            "........", "..###...", "..###...", "..###...", "........", "........", "........",
            "........",
        ]);
        assert_eq!(counter.update(&guest), 1);
        for _ in 0..5000 {
            assert_eq!(
                counter.update(&guest),
                1,
                "a guest who sits still is not absorbed"
            );
        }
        assert_eq!(counter.update(&frame(EMPTY)), 0, "leaving is seen at once");
        // The room warms by 3 °C slowly: nobody appears.
        for step in 0..3000 {
            let mut warmer = frame(EMPTY);
            for t in warmer.iter_mut() {
                *t += step as f32 * 0.001;
            }
            assert_eq!(counter.update(&warmer), 0, "step {step}");
        }
    }

    #[test]
    fn background_learns_slow_room_changes() {
        let mut counter = PeopleCounter::new(CountingConfig::default());
        let room = frame(EMPTY);
        // The window side (lower half) warms by 1.2 °C: below delta_c.
        let mut warmed = room;
        for t in warmed.iter_mut().skip(32) {
            *t += 1.2;
        }
        for _ in 0..30 {
            assert_eq!(counter.update(&warmed), 0);
        }
        let learned = counter.background().unwrap()[40];
        assert!(
            learned > room[40] + 0.9,
            "learned {learned}, room {}",
            room[40]
        );
        // 2 °C above the original room would be a blob against the old
        // background, but not against the learned one.
        let mut patch = warmed;
        for i in [40, 41, 48, 49] {
            patch[i] = room[i] + 2.0;
        }
        assert_eq!(counter.update(&patch), 0);
    }

    #[test]
    fn init_writes_the_control_registers() {
        let bus = FakeI2c::new();
        bus.add_amg8833(0x69);
        let cfg = Amg8833Config {
            address: 0x69,
            frame_rate: FrameRate::Fps1,
            ..Amg8833Config::default()
        };
        let mut s = Amg8833::new(bus.clone(), FakeDelay::default(), cfg);
        s.init().unwrap();
        assert_eq!(
            bus.reg_writes(0x69),
            vec![(0x00, 0x00), (0x01, 0x3F), (0x02, 0x01), (0x03, 0x00)]
        );
        assert_eq!(s.thermistor().unwrap(), 25.0);
        let (_, delay) = s.release();
        assert!(
            delay.total_ns >= 1_000_000_000,
            "waited for the first 1 fps frame"
        );
    }

    #[test]
    fn pixels_are_read_in_one_128_byte_transaction() {
        let bus = FakeI2c::new();
        let dev = bus.add_amg8833(0x68);
        let mut s = sensor(&bus);
        s.init().unwrap();
        let mut regs = vec![0u8; 128];
        // Pixel 1: +25.25 °C = 101 LSB; pixel 2: −0.25 °C = 0xFFF;
        // pixel 64: −20 °C = −80 = 0xFB0.
        regs[0] = 101;
        regs[2] = 0xFF;
        regs[3] = 0x0F;
        regs[126] = 0xB0;
        regs[127] = 0x0F;
        bus.set_regs(dev, 0x80, &regs);
        let before = bus.transactions();
        let f = s.frame().unwrap();
        assert_eq!(bus.transactions() - before, 1);
        assert_eq!((f[0], f[1], f[2], f[63]), (25.25, -0.25, 0.0, -20.0));
    }

    #[test]
    fn thermistor_is_sign_magnitude() {
        assert_eq!(thermistor_c(0x90, 0x01), 25.0);
        assert_eq!(thermistor_c(0x10, 0x08), -1.0);
        assert_eq!(thermistor_c(0xFF, 0x07), 127.9375);
        assert_eq!(pixel_c(0x00, 0x08), -512.0);
        assert_eq!(pixel_c(0xFF, 0x07), 511.75);
    }

    #[test]
    fn absurd_values_and_bus_errors() {
        let bus = FakeI2c::new();
        let dev = bus.add_amg8833(0x68);
        let mut s = sensor(&bus);
        s.init().unwrap();
        // A bus stuck high: thermistor reads −127.9 °C.
        bus.set_regs(dev, 0x0E, &[0xFF, 0xFF]);
        assert!(matches!(s.read(), Err(SensorError::BadData(_))));
        bus.set_regs(dev, 0x0E, &[0x90, 0x01]);
        bus.set_regs(dev, 0x80, &[0xFF, 0x07]);
        assert!(
            matches!(s.read(), Err(SensorError::BadData(_))),
            "511 °C pixel"
        );
        bus.set_regs(dev, 0x80, &[0x58, 0x00]);
        assert!(s.read().is_ok());
        bus.fail_next(1);
        assert!(matches!(s.read(), Err(SensorError::Bus(_))));
        let missing = FakeI2c::new();
        let err = sensor(&missing).init().unwrap_err();
        assert!(matches!(err, SensorError::NotFound { .. }), "{err:?}");
        // Something at the address that does not keep the frame rate.
        let other = FakeI2c::new();
        let dev = other.add_amg8833(0x68);
        other.pin(dev, 0x02, 0x01);
        let err = sensor(&other).init().unwrap_err();
        assert!(matches!(err, SensorError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn identify_wants_a_plausible_thermistor() {
        let bus = FakeI2c::new();
        let dev = bus.add_amg8833(0x69);
        let mut i2c = bus.clone();
        assert_eq!(identify(&mut i2c, 0x69).unwrap(), 25.0);
        bus.set_regs(dev, 0x0E, &[0x90, 0x11]);
        let err = identify(&mut i2c, 0x69).unwrap_err();
        assert!(
            matches!(err, SensorError::NotFound { .. }),
            "top bits set: {err:?}"
        );
        bus.set_regs(dev, 0x0E, &[0xFF, 0x07]);
        let err = identify(&mut i2c, 0x69).unwrap_err();
        assert!(
            matches!(err, SensorError::NotFound { .. }),
            "127.9 °C: {err:?}"
        );
        let err = identify(&mut i2c, 0x68).unwrap_err();
        assert!(matches!(err, SensorError::Bus(_)), "nothing there: {err:?}");
    }
}
