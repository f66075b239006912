//! Driver for the ST VL53L0X time-of-flight ranger, as a presence sensor.
//!
//! Written here rather than taken from crates.io: the published driver
//! carries an extra `nb` dependency, writes through `write_read` and has no
//! way to time out its polling loops. The init sequence follows ST's API
//! as distilled by Pololu's Arduino library: data init, static init with
//! SPAD set-up and ST's default tuning settings, timing budget, then the
//! VHV and phase reference calibrations. Every wait is a bounded poll with
//! a 1 ms `DelayNs` between tries, ending in [`SensorError::Timeout`].
//!
//! Presence is "a valid target closer than `max_mm`". No target (8190/8191
//! mm, or a range status saying the signal was too weak) is simply "not
//! present"; a status reporting a laser (VCSEL) failure is an error, so the
//! health tracker sees a broken chip.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use serde::{Deserialize, Serialize};

use super::{PollSensor, Reading, SensorError};

const SYSRANGE_START: u8 = 0x00;
const SYSTEM_SEQUENCE_CONFIG: u8 = 0x01;
const SYSTEM_INTERMEASUREMENT_PERIOD: u8 = 0x04;
const SYSTEM_INTERRUPT_CONFIG_GPIO: u8 = 0x0A;
const SYSTEM_INTERRUPT_CLEAR: u8 = 0x0B;
const RESULT_INTERRUPT_STATUS: u8 = 0x13;
const RESULT_RANGE_STATUS: u8 = 0x14;
const FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT: u8 = 0x44;
const MSRC_CONFIG_TIMEOUT_MACROP: u8 = 0x46;
const DYNAMIC_SPAD_NUM_REQUESTED_REF_SPAD: u8 = 0x4E;
const DYNAMIC_SPAD_REF_EN_START_OFFSET: u8 = 0x4F;
const PRE_RANGE_CONFIG_VCSEL_PERIOD: u8 = 0x50;
const PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI: u8 = 0x51;
const MSRC_CONFIG_CONTROL: u8 = 0x60;
const FINAL_RANGE_CONFIG_VCSEL_PERIOD: u8 = 0x70;
const FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI: u8 = 0x71;
const GPIO_HV_MUX_ACTIVE_HIGH: u8 = 0x84;
const VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV: u8 = 0x89;
const I2C_SLAVE_DEVICE_ADDRESS: u8 = 0x8A;
const GLOBAL_CONFIG_SPAD_ENABLES_REF_0: u8 = 0xB0;
const GLOBAL_CONFIG_REF_EN_START_SELECT: u8 = 0xB6;
const IDENTIFICATION_MODEL_ID: u8 = 0xC0;
const OSC_CALIBRATE_VAL: u8 = 0xF8;

pub const MODEL_ID: u8 = 0xEE;

/// ST's DefaultTuningSettings (vl53l0x_tuning.h), as Pololu writes them.
/// 0xFF selects the register page.
const TUNING: [(u8, u8); 80] = [
    (0xFF, 0x01),
    (0x00, 0x00),
    (0xFF, 0x00),
    (0x09, 0x00),
    (0x10, 0x00),
    (0x11, 0x00),
    (0x24, 0x01),
    (0x25, 0xFF),
    (0x75, 0x00),
    (0xFF, 0x01),
    (0x4E, 0x2C),
    (0x48, 0x00),
    (0x30, 0x20),
    (0xFF, 0x00),
    (0x30, 0x09),
    (0x54, 0x00),
    (0x31, 0x04),
    (0x32, 0x03),
    (0x40, 0x83),
    (0x46, 0x25),
    (0x60, 0x00),
    (0x27, 0x00),
    (0x50, 0x06),
    (0x51, 0x00),
    (0x52, 0x96),
    (0x56, 0x08),
    (0x57, 0x30),
    (0x61, 0x00),
    (0x62, 0x00),
    (0x64, 0x00),
    (0x65, 0x00),
    (0x66, 0xA0),
    (0xFF, 0x01),
    (0x22, 0x32),
    (0x47, 0x14),
    (0x49, 0xFF),
    (0x4A, 0x00),
    (0xFF, 0x00),
    (0x7A, 0x0A),
    (0x7B, 0x00),
    (0x78, 0x21),
    (0xFF, 0x01),
    (0x23, 0x34),
    (0x42, 0x00),
    (0x44, 0xFF),
    (0x45, 0x26),
    (0x46, 0x05),
    (0x40, 0x40),
    (0x0E, 0x06),
    (0x20, 0x1A),
    (0x43, 0x40),
    (0xFF, 0x00),
    (0x34, 0x03),
    (0x35, 0x44),
    (0xFF, 0x01),
    (0x31, 0x04),
    (0x4B, 0x09),
    (0x4C, 0x05),
    (0x4D, 0x04),
    (0xFF, 0x00),
    (0x44, 0x00),
    (0x45, 0x20),
    (0x47, 0x08),
    (0x48, 0x28),
    (0x67, 0x00),
    (0x70, 0x04),
    (0x71, 0x01),
    (0x72, 0xFE),
    (0x76, 0x00),
    (0x77, 0x00),
    (0xFF, 0x01),
    (0x0D, 0x01),
    (0xFF, 0x00),
    (0x80, 0x01),
    (0x01, 0xF8),
    (0xFF, 0x01),
    (0x8E, 0x01),
    (0x00, 0x01),
    (0xFF, 0x00),
    (0x80, 0x00),
];

/// Range values the chip uses for "no target".
const OUT_OF_RANGE_MM: u16 = 8190;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangingMode {
    /// The chip ranges on its own every `period_ms` (0: back to back);
    /// a read collects the latest sample.
    Continuous { period_ms: u32 },
    /// Each read triggers one measurement (lowest power, slower reads).
    SingleShot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vl53l0xConfig {
    /// 7-bit I2C address the chip answers at (after any re-addressing).
    pub address: u8,
    /// Presence threshold: a target nearer than this is somebody seated.
    pub max_mm: u16,
    pub mode: RangingMode,
    /// Switch the I/O pads to 2.8 V (the breakout boards the Pi uses).
    pub io_2v8: bool,
    /// Measurement timing budget; `None` keeps the chip's default (~33 ms).
    pub timing_budget_us: Option<u32>,
    /// Upper bound for each wait on the chip.
    pub timeout_ms: u32,
}

impl Default for Vl53l0xConfig {
    fn default() -> Self {
        Vl53l0xConfig {
            address: super::TOF_DEFAULT_ADDRESS,
            max_mm: 1000,
            mode: RangingMode::Continuous { period_ms: 100 },
            io_2v8: true,
            timing_budget_us: None,
            timeout_ms: 500,
        }
    }
}

/// Checks that a VL53L0X answers at `address`.
pub fn identify<I2C: I2c>(i2c: &mut I2C, address: u8) -> Result<(), SensorError> {
    let mut id = [0u8];
    i2c.write_read(address, &[IDENTIFICATION_MODEL_ID], &mut id)
        .map_err(|e| SensorError::from_i2c_probe(e, &expected(address)))?;
    let [id] = id;
    if id != MODEL_ID {
        return Err(SensorError::NotFound {
            expected: expected(address),
            found: format!("model id 0x{id:02x}"),
        });
    }
    Ok(())
}

fn expected(address: u8) -> String {
    format!("VL53L0X (model id 0x{MODEL_ID:02x}) at 0x{address:02x}")
}

/// Moves the chip at `from` to the 7-bit address `to` (until power-off or
/// XSHUT).
pub fn write_address<I2C: I2c>(i2c: &mut I2C, from: u8, to: u8) -> Result<(), SensorError> {
    i2c.write(from, &[I2C_SLAVE_DEVICE_ADDRESS, to & 0x7F])
        .map_err(SensorError::from_i2c)
}

struct SequenceSteps {
    tcc: bool,
    dss: bool,
    msrc: bool,
    pre_range: bool,
    final_range: bool,
}

struct StepTimeouts {
    final_range_vcsel_pclks: u32,
    msrc_dss_tcc_us: u32,
    pre_range_mclks: u32,
    pre_range_us: u32,
    final_range_us: u32,
}

pub struct Vl53l0x<I2C, D> {
    i2c: I2C,
    delay: D,
    cfg: Vl53l0xConfig,
    stop_variable: u8,
}

impl<I2C: I2c, D: DelayNs> Vl53l0x<I2C, D> {
    pub fn new(i2c: I2C, delay: D, cfg: Vl53l0xConfig) -> Self {
        Vl53l0x {
            i2c,
            delay,
            cfg,
            stop_variable: 0,
        }
    }

    pub fn address(&self) -> u8 {
        self.cfg.address
    }

    pub fn set_address(&mut self, address: u8) -> Result<(), SensorError> {
        write_address(&mut self.i2c, self.cfg.address, address)?;
        self.cfg.address = address & 0x7F;
        Ok(())
    }

    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    /// One range measurement: `Some(mm)` for a valid target, `None` when
    /// nothing is in range.
    pub fn measure(&mut self) -> Result<Option<u16>, SensorError> {
        if self.cfg.mode == RangingMode::SingleShot {
            self.with_stop_variable()?;
            self.write_reg(SYSRANGE_START, 0x01)?;
            // The start bit clears once the measurement has begun.
            self.wait_for(SYSRANGE_START, 0x01, false)?;
        }
        self.wait_for(RESULT_INTERRUPT_STATUS, 0x07, true)?;
        let mut result = [0u8; 12];
        self.read_into(RESULT_RANGE_STATUS, &mut result)?;
        self.write_reg(SYSTEM_INTERRUPT_CLEAR, 0x01)?;
        let [status, _, _, _, _, _, _, _, _, _, hi, lo] = result;
        interpret(status, u16::from_be_bytes([hi, lo]))
    }

    fn init_chip(&mut self) -> Result<(), SensorError> {
        identify(&mut self.i2c, self.cfg.address)?;
        self.data_init()?;
        self.static_init()?;
        self.reference_calibration()?;
        if let RangingMode::Continuous { period_ms } = self.cfg.mode {
            self.start_continuous(period_ms)?;
        }
        Ok(())
    }

    /// VL53L0X_DataInit().
    fn data_init(&mut self) -> Result<(), SensorError> {
        if self.cfg.io_2v8 {
            let pads = self.read_reg(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV)?;
            self.write_reg(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV, pads | 0x01)?;
        }
        // "Set I2C standard mode", then fetch the stop variable from page 1.
        self.write_reg(0x88, 0x00)?;
        self.write_reg(0x80, 0x01)?;
        self.write_reg(0xFF, 0x01)?;
        self.write_reg(0x00, 0x00)?;
        self.stop_variable = self.read_reg(0x91)?;
        self.write_reg(0x00, 0x01)?;
        self.write_reg(0xFF, 0x00)?;
        self.write_reg(0x80, 0x00)?;
        // Disable the MSRC and pre-range signal rate limit checks.
        let control = self.read_reg(MSRC_CONFIG_CONTROL)?;
        self.write_reg(MSRC_CONFIG_CONTROL, control | 0x12)?;
        // Final range signal rate limit 0.25 MCPS, in Q9.7.
        self.write16(FINAL_RANGE_CONFIG_MIN_COUNT_RATE_RTN_LIMIT, 0x0020)?;
        self.write_reg(SYSTEM_SEQUENCE_CONFIG, 0xFF)
    }

    /// VL53L0X_StaticInit(): reference SPADs, tuning, interrupt, budget.
    fn static_init(&mut self) -> Result<(), SensorError> {
        let (spad_count, aperture) = self.spad_info()?;
        let mut map = [0u8; 6];
        self.read_into(GLOBAL_CONFIG_SPAD_ENABLES_REF_0, &mut map)?;
        self.write_reg(0xFF, 0x01)?;
        self.write_reg(DYNAMIC_SPAD_REF_EN_START_OFFSET, 0x00)?;
        self.write_reg(DYNAMIC_SPAD_NUM_REQUESTED_REF_SPAD, 0x2C)?;
        self.write_reg(0xFF, 0x00)?;
        self.write_reg(GLOBAL_CONFIG_REF_EN_START_SELECT, 0xB4)?;
        let map = reference_spad_map(map, spad_count, aperture);
        let mut frame = [GLOBAL_CONFIG_SPAD_ENABLES_REF_0, 0, 0, 0, 0, 0, 0];
        for (slot, byte) in frame.iter_mut().skip(1).zip(map) {
            *slot = byte;
        }
        self.i2c
            .write(self.cfg.address, &frame)
            .map_err(SensorError::from_i2c)?;

        for (reg, value) in TUNING {
            self.write_reg(reg, value)?;
        }

        // Interrupt on "new sample ready", active low.
        self.write_reg(SYSTEM_INTERRUPT_CONFIG_GPIO, 0x04)?;
        let mux = self.read_reg(GPIO_HV_MUX_ACTIVE_HIGH)?;
        self.write_reg(GPIO_HV_MUX_ACTIVE_HIGH, mux & !0x10)?;
        self.write_reg(SYSTEM_INTERRUPT_CLEAR, 0x01)?;

        let default_budget = self.measurement_timing_budget()?;
        // Disable MSRC and TCC, which ST's API leaves off by default.
        self.write_reg(SYSTEM_SEQUENCE_CONFIG, 0xE8)?;
        let budget = self.cfg.timing_budget_us.unwrap_or(default_budget);
        self.set_measurement_timing_budget(budget)
    }

    /// VL53L0X_get_info_from_device(): reference SPAD count and type.
    fn spad_info(&mut self) -> Result<(u8, bool), SensorError> {
        self.write_reg(0x80, 0x01)?;
        self.write_reg(0xFF, 0x01)?;
        self.write_reg(0x00, 0x00)?;
        self.write_reg(0xFF, 0x06)?;
        let r83 = self.read_reg(0x83)?;
        self.write_reg(0x83, r83 | 0x04)?;
        self.write_reg(0xFF, 0x07)?;
        self.write_reg(0x81, 0x01)?;
        self.write_reg(0x80, 0x01)?;
        self.write_reg(0x94, 0x6B)?;
        self.write_reg(0x83, 0x00)?;
        self.wait_for(0x83, 0xFF, true)?;
        self.write_reg(0x83, 0x01)?;
        let info = self.read_reg(0x92)?;
        self.write_reg(0x81, 0x00)?;
        self.write_reg(0xFF, 0x06)?;
        let r83 = self.read_reg(0x83)?;
        self.write_reg(0x83, r83 & !0x04)?;
        self.write_reg(0xFF, 0x01)?;
        self.write_reg(0x00, 0x01)?;
        self.write_reg(0xFF, 0x00)?;
        self.write_reg(0x80, 0x00)?;
        Ok((info & 0x7F, info & 0x80 != 0))
    }

    /// VL53L0X_perform_ref_calibration(): VHV then phase.
    fn reference_calibration(&mut self) -> Result<(), SensorError> {
        self.write_reg(SYSTEM_SEQUENCE_CONFIG, 0x01)?;
        self.single_ref_calibration(0x40)?;
        self.write_reg(SYSTEM_SEQUENCE_CONFIG, 0x02)?;
        self.single_ref_calibration(0x00)?;
        self.write_reg(SYSTEM_SEQUENCE_CONFIG, 0xE8)
    }

    fn single_ref_calibration(&mut self, vhv_init: u8) -> Result<(), SensorError> {
        self.write_reg(SYSRANGE_START, 0x01 | vhv_init)?;
        self.wait_for(RESULT_INTERRUPT_STATUS, 0x07, true)?;
        self.write_reg(SYSTEM_INTERRUPT_CLEAR, 0x01)?;
        self.write_reg(SYSRANGE_START, 0x00)
    }

    fn with_stop_variable(&mut self) -> Result<(), SensorError> {
        self.write_reg(0x80, 0x01)?;
        self.write_reg(0xFF, 0x01)?;
        self.write_reg(0x00, 0x00)?;
        self.write_reg(0x91, self.stop_variable)?;
        self.write_reg(0x00, 0x01)?;
        self.write_reg(0xFF, 0x00)?;
        self.write_reg(0x80, 0x00)
    }

    fn start_continuous(&mut self, period_ms: u32) -> Result<(), SensorError> {
        self.with_stop_variable()?;
        if period_ms == 0 {
            return self.write_reg(SYSRANGE_START, 0x02);
        }
        // The period register counts oscillator ticks, not milliseconds.
        let osc = u32::from(self.read16(OSC_CALIBRATE_VAL)?);
        let period = if osc == 0 {
            period_ms
        } else {
            period_ms.saturating_mul(osc)
        };
        let [a, b, c, d] = period.to_be_bytes();
        self.i2c
            .write(
                self.cfg.address,
                &[SYSTEM_INTERMEASUREMENT_PERIOD, a, b, c, d],
            )
            .map_err(SensorError::from_i2c)?;
        self.write_reg(SYSRANGE_START, 0x04)
    }

    fn sequence_steps(&mut self) -> Result<SequenceSteps, SensorError> {
        let config = self.read_reg(SYSTEM_SEQUENCE_CONFIG)?;
        Ok(SequenceSteps {
            tcc: config & 0x10 != 0,
            dss: config & 0x08 != 0,
            msrc: config & 0x04 != 0,
            pre_range: config & 0x40 != 0,
            final_range: config & 0x80 != 0,
        })
    }

    fn step_timeouts(&mut self, steps: &SequenceSteps) -> Result<StepTimeouts, SensorError> {
        let pre_range_vcsel_pclks =
            decode_vcsel_period(self.read_reg(PRE_RANGE_CONFIG_VCSEL_PERIOD)?);
        let msrc_dss_tcc_mclks = u32::from(self.read_reg(MSRC_CONFIG_TIMEOUT_MACROP)?) + 1;
        let pre_range_mclks = decode_timeout(self.read16(PRE_RANGE_CONFIG_TIMEOUT_MACROP_HI)?);
        let final_range_vcsel_pclks =
            decode_vcsel_period(self.read_reg(FINAL_RANGE_CONFIG_VCSEL_PERIOD)?);
        let mut final_range_mclks =
            decode_timeout(self.read16(FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI)?);
        if steps.pre_range {
            // The final range timeout register includes the pre-range.
            final_range_mclks = final_range_mclks.saturating_sub(pre_range_mclks);
        }
        Ok(StepTimeouts {
            final_range_vcsel_pclks,
            msrc_dss_tcc_us: mclks_to_us(msrc_dss_tcc_mclks, pre_range_vcsel_pclks),
            pre_range_mclks,
            pre_range_us: mclks_to_us(pre_range_mclks, pre_range_vcsel_pclks),
            final_range_us: mclks_to_us(final_range_mclks, final_range_vcsel_pclks),
        })
    }

    /// VL53L0X_get_measurement_timing_budget_micro_seconds().
    fn measurement_timing_budget(&mut self) -> Result<u32, SensorError> {
        let steps = self.sequence_steps()?;
        let t = self.step_timeouts(&steps)?;
        let mut budget = 1910 + 960 + overheads(&steps, &t);
        if steps.final_range {
            budget += u64::from(t.final_range_us) + 550;
        }
        Ok(u32::try_from(budget).unwrap_or(u32::MAX))
    }

    /// VL53L0X_set_measurement_timing_budget_micro_seconds(): whatever the
    /// other enabled steps leave of the budget goes to the final range.
    fn set_measurement_timing_budget(&mut self, budget_us: u32) -> Result<(), SensorError> {
        if budget_us < 20_000 {
            return Err(SensorError::BadData(format!(
                "timing budget {budget_us} us is below the 20000 us minimum"
            )));
        }
        let steps = self.sequence_steps()?;
        if !steps.final_range {
            return Ok(());
        }
        let t = self.step_timeouts(&steps)?;
        // ST's API uses a smaller start overhead here than when reading.
        let used = 1320 + 960 + 550 + overheads(&steps, &t);
        let Some(final_us) = u64::from(budget_us).checked_sub(used) else {
            return Err(SensorError::BadData(format!(
                "timing budget {budget_us} us is below the {used} us the other steps need"
            )));
        };
        let final_us = u32::try_from(final_us).unwrap_or(u32::MAX);
        let mut final_mclks = us_to_mclks(final_us, t.final_range_vcsel_pclks);
        if steps.pre_range {
            final_mclks = final_mclks.saturating_add(t.pre_range_mclks);
        }
        self.write16(
            FINAL_RANGE_CONFIG_TIMEOUT_MACROP_HI,
            encode_timeout(final_mclks),
        )
    }

    fn wait_for(&mut self, reg: u8, mask: u8, set: bool) -> Result<(), SensorError> {
        for _ in 0..=self.cfg.timeout_ms {
            if (self.read_reg(reg)? & mask != 0) == set {
                return Ok(());
            }
            self.delay.delay_ms(1);
        }
        Err(SensorError::Timeout)
    }

    fn write_reg(&mut self, reg: u8, value: u8) -> Result<(), SensorError> {
        self.i2c
            .write(self.cfg.address, &[reg, value])
            .map_err(SensorError::from_i2c)
    }

    fn write16(&mut self, reg: u8, value: u16) -> Result<(), SensorError> {
        let [hi, lo] = value.to_be_bytes();
        self.i2c
            .write(self.cfg.address, &[reg, hi, lo])
            .map_err(SensorError::from_i2c)
    }

    fn read_reg(&mut self, reg: u8) -> Result<u8, SensorError> {
        let mut buf = [0u8];
        self.read_into(reg, &mut buf)?;
        let [value] = buf;
        Ok(value)
    }

    fn read16(&mut self, reg: u8) -> Result<u16, SensorError> {
        let mut buf = [0u8; 2];
        self.read_into(reg, &mut buf)?;
        Ok(u16::from_be_bytes(buf))
    }

    fn read_into(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), SensorError> {
        self.i2c
            .write_read(self.cfg.address, &[reg], buf)
            .map_err(SensorError::from_i2c)
    }
}

impl<I2C: I2c, D: DelayNs> PollSensor for Vl53l0x<I2C, D> {
    fn init(&mut self) -> Result<(), SensorError> {
        self.init_chip()
    }

    fn read(&mut self) -> Result<Reading, SensorError> {
        let range = self.measure()?;
        Ok(Reading::presence(
            range.is_some_and(|mm| mm < self.cfg.max_mm),
        ))
    }
}

/// Time the enabled steps other than the final range take, with their
/// overheads (the same in ST's get and set budget functions).
fn overheads(steps: &SequenceSteps, t: &StepTimeouts) -> u64 {
    let msrc = u64::from(t.msrc_dss_tcc_us);
    let mut total = 0;
    if steps.tcc {
        total += msrc + 590;
    }
    if steps.dss {
        total += 2 * (msrc + 690);
    } else if steps.msrc {
        total += msrc + 660;
    }
    if steps.pre_range {
        total += u64::from(t.pre_range_us) + 660;
    }
    total
}

/// Classifies a result per ST's VL53L0X_get_pal_range_status(): the device
/// status sits in bits 6..3 of RESULT_RANGE_STATUS.
fn interpret(status: u8, mm: u16) -> Result<Option<u16>, SensorError> {
    match (status >> 3) & 0x0F {
        1..=3 => Err(SensorError::BadData(format!(
            "VL53L0X laser failure (range status {status:#04x})"
        ))),
        // Signal, phase or minimum-range failures: no usable target.
        4 | 6 | 8 | 9 | 10 => Ok(None),
        _ if mm >= OUT_OF_RANGE_MM => Ok(None),
        _ => Ok(Some(mm)),
    }
}

/// Keeps the first `count` good reference SPADs from the NVM map, starting
/// at SPAD 12 for aperture SPADs (set_reference_spads()).
fn reference_spad_map(map: [u8; 6], count: u8, aperture: bool) -> [u8; 6] {
    let first = if aperture { 12 } else { 0 };
    let mut enabled = 0u8;
    let mut out = map;
    for (byte_index, byte) in out.iter_mut().enumerate() {
        for bit in 0..8 {
            let spad = byte_index * 8 + bit;
            let mask = 1u8 << bit;
            if spad < first || enabled == count {
                *byte &= !mask;
            } else if *byte & mask != 0 {
                enabled += 1;
            }
        }
    }
    out
}

fn decode_vcsel_period(reg: u8) -> u32 {
    (u32::from(reg) + 1) << 1
}

/// Timeout registers hold "(LSByte * 2^MSByte) + 1" macro periods.
fn decode_timeout(value: u16) -> u32 {
    let [ms, ls] = value.to_be_bytes();
    let mclks = u64::from(ls) << ms.min(32);
    u32::try_from(mclks).unwrap_or(u32::MAX).saturating_add(1)
}

fn encode_timeout(mclks: u32) -> u16 {
    if mclks == 0 {
        return 0;
    }
    let mut ls = mclks - 1;
    let mut ms = 0u16;
    while ls > 0xFF {
        ls >>= 1;
        ms += 1;
    }
    (ms << 8) | u16::try_from(ls).unwrap_or(0xFF)
}

fn macro_period_ns(vcsel_pclks: u32) -> u64 {
    (2304 * u64::from(vcsel_pclks) * 1655 + 500) / 1000
}

fn mclks_to_us(mclks: u32, vcsel_pclks: u32) -> u32 {
    let period = macro_period_ns(vcsel_pclks);
    u32::try_from((u64::from(mclks) * period + period / 2) / 1000).unwrap_or(u32::MAX)
}

fn us_to_mclks(us: u32, vcsel_pclks: u32) -> u32 {
    // vcsel_pclks >= 2 by construction, so the period is never zero.
    let period = macro_period_ns(vcsel_pclks).max(1);
    u32::try_from((u64::from(us) * 1000 + period / 2) / period).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDelay, FakeI2c};
    use super::*;

    fn sensor(bus: &FakeI2c, cfg: Vl53l0xConfig) -> Vl53l0x<FakeI2c, FakeDelay> {
        Vl53l0x::new(bus.clone(), FakeDelay::default(), cfg)
    }

    fn assert_in_order(haystack: &[(u16, u8)], needle: &[(u16, u8)]) {
        let mut rest = haystack.iter();
        for want in needle {
            assert!(
                rest.any(|got| got == want),
                "write {want:02x?} missing or out of order in {haystack:02x?}"
            );
        }
    }

    #[test]
    fn init_runs_the_st_sequence() {
        let bus = FakeI2c::new();
        bus.add_vl53l0x();
        let mut s = sensor(&bus, Vl53l0xConfig::default());
        s.init().unwrap();
        let writes = bus.reg_writes(0x29);
        assert_in_order(
            &writes,
            &[
                // Data init: 2V8 pads, standard I2C, limit checks, rate limit.
                (0x89, 0x01),
                (0x88, 0x00),
                (0x60, 0x12),
                (0x44, 0x00),
                (0x45, 0x20),
                (0x01, 0xFF),
                // SPAD set-up: 5 aperture SPADs from SPAD 12 on.
                (0x94, 0x6B),
                (0x4F, 0x00),
                (0x4E, 0x2C),
                (0xB6, 0xB4),
                (0xB0, 0x00),
                (0xB1, 0xF0),
                (0xB2, 0x01),
                (0xB3, 0x00),
                // Tuning, first and last entries.
                (0x09, 0x00),
                (0x8E, 0x01),
                // Interrupt config, sequence steps.
                (0x0A, 0x04),
                (0x01, 0xE8),
                // VHV then phase calibration.
                (0x01, 0x01),
                (0x00, 0x41),
                (0x01, 0x02),
                (0x00, 0x01),
                (0x01, 0xE8),
                // Continuous timed ranging with the stop variable restored.
                (0x91, 0x3C),
                (0x00, 0x04),
            ],
        );
        let tuning: Vec<(u16, u8)> = TUNING.iter().map(|(r, v)| (u16::from(*r), *v)).collect();
        assert_in_order(&writes, &tuning);
        assert!(
            writes.iter().any(|(r, _)| *r == 0x71),
            "final range timeout set"
        );
        assert!(
            writes.iter().any(|(r, _)| *r == 0x04),
            "inter-measurement period"
        );
    }

    #[test]
    fn identification() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l0x();
        let mut i2c = bus.clone();
        identify(&mut i2c, 0x29).unwrap();
        bus.pin(dev, 0xC0, 0xAA);
        match identify(&mut i2c, 0x29) {
            Err(SensorError::NotFound { found, .. }) => assert_eq!(found, "model id 0xaa"),
            other => panic!("{other:?}"),
        }
        let err = sensor(&bus, Vl53l0xConfig::default()).init().unwrap_err();
        assert!(matches!(err, SensorError::NotFound { .. }));
    }

    #[test]
    fn range_reads_give_presence() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l0x();
        let mut s = sensor(&bus, Vl53l0xConfig::default());
        s.init().unwrap();
        let valid = 11 << 3;
        let cases: [(u8, u16, Result<Reading, SensorError>); 7] = [
            (valid, 450, Ok(Reading::presence(true))),
            (valid, 999, Ok(Reading::presence(true))),
            (valid, 1000, Ok(Reading::presence(false))),
            (valid, 8190, Ok(Reading::presence(false))),
            (valid, 8191, Ok(Reading::presence(false))),
            (4 << 3, 300, Ok(Reading::presence(false))),
            (
                2 << 3,
                300,
                Err(SensorError::BadData(
                    "VL53L0X laser failure (range status 0x10)".into(),
                )),
            ),
        ];
        for (status, mm, expected) in cases {
            bus.set_regs(dev, 0x14, &[status]);
            bus.set_regs(dev, 0x1E, &mm.to_be_bytes());
            bus.clear_writes();
            assert_eq!(s.read(), expected, "status {status:#x}, {mm} mm");
            assert_eq!(
                bus.reg_writes(0x29),
                vec![(0x0B, 0x01)],
                "interrupt cleared"
            );
        }
    }

    #[test]
    fn single_shot_triggers_each_measurement() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l0x();
        let mut s = sensor(
            &bus,
            Vl53l0xConfig {
                mode: RangingMode::SingleShot,
                ..Vl53l0xConfig::default()
            },
        );
        s.init().unwrap();
        assert!(!bus.reg_writes(0x29).contains(&(0x00, 0x04)));
        bus.set_regs(dev, 0x14, &[11 << 3]);
        bus.set_regs(dev, 0x1E, &300u16.to_be_bytes());
        bus.clear_writes();
        assert_eq!(s.read(), Ok(Reading::presence(true)));
        assert_in_order(
            &bus.reg_writes(0x29),
            &[(0x91, 0x3C), (0x00, 0x01), (0x0B, 0x01)],
        );
    }

    #[test]
    fn waits_time_out() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l0x();
        let mut s = sensor(&bus, Vl53l0xConfig::default());
        s.init().unwrap();
        bus.unpin(dev, 0x13);
        assert_eq!(s.read(), Err(SensorError::Timeout));
        let (_, delay) = s.release();
        assert!(
            delay.total_ns >= 500_000_000,
            "waited {} ns",
            delay.total_ns
        );
    }

    #[test]
    fn readdressing_and_bus_errors() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l0x();
        let mut s = sensor(&bus, Vl53l0xConfig::default());
        s.set_address(0x31).unwrap();
        assert_eq!(bus.device_address(dev), 0x31);
        assert_eq!(s.address(), 0x31);
        s.init().unwrap();
        bus.set_regs(dev, 0x14, &[11 << 3]);
        bus.set_regs(dev, 0x1E, &200u16.to_be_bytes());
        assert_eq!(s.read(), Ok(Reading::presence(true)));
        bus.fail_next(1);
        assert!(matches!(s.read(), Err(SensorError::Bus(_))));
        bus.fail_next(1);
        assert!(matches!(s.init(), Err(SensorError::Bus(_))));
    }

    #[test]
    fn timeout_codec_round_trips_and_never_panics() {
        for mclks in [1u32, 2, 151, 256, 257, 1000, 65_535, 1 << 20] {
            let decoded = decode_timeout(encode_timeout(mclks));
            assert!(
                decoded <= mclks && decoded * 100 >= mclks * 99,
                "{mclks} → {decoded}"
            );
        }
        assert_eq!(decode_timeout(0xFFFF), u32::MAX);
        assert_eq!(encode_timeout(0), 0);
        assert!(us_to_mclks(u32::MAX, decode_vcsel_period(0xFF)) > 0);
        assert_eq!(
            reference_spad_map([0xFF; 6], 3, false),
            [0x07, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            reference_spad_map([0xAA; 6], 2, true),
            [0, 0xA0, 0, 0, 0, 0]
        );
    }
}
