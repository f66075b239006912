//! Driver for the ST VL53L1X time-of-flight ranger, as a presence sensor.
//!
//! Written here because the crates.io drivers target embedded-hal 0.2. The
//! sequence is ST's Ultra Lite Driver (ULD): wait for the firmware to boot,
//! check the model id, write ST's default configuration block to
//! 0x2D..=0x87, range once so the chip runs its VHV calibration, then set
//! the VHV loop bound and start continuous ranging with the ULD defaults.
//! Registers have 16-bit addresses, sent big endian. Waits are bounded
//! polls with a 1 ms `DelayNs` between tries.
//!
//! Presence is "a valid target closer than `max_mm`". Range statuses for a
//! weak or out-of-bounds signal mean "nothing there", not an error; only the
//! status for a laser (VCSEL) failure is an error.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use serde::{Deserialize, Serialize};

use super::{PollSensor, Reading, SensorError};

const I2C_SLAVE_DEVICE_ADDRESS: u16 = 0x0001;
const VHV_CONFIG_TIMEOUT_MACROP_LOOP_BOUND: u16 = 0x0008;
const VHV_CONFIG_INIT: u16 = 0x000B;
const DEFAULT_CONFIG_START: u16 = 0x002D;
const PAD_I2C_HV_EXTSUP_CONFIG: u16 = 0x002E;
const GPIO_HV_MUX_CTRL: u16 = 0x0030;
const GPIO_TIO_HV_STATUS: u16 = 0x0031;
const SYSTEM_INTERRUPT_CLEAR: u16 = 0x0086;
const SYSTEM_MODE_START: u16 = 0x0087;
const RESULT_RANGE_STATUS: u16 = 0x0089;
const FIRMWARE_SYSTEM_STATUS: u16 = 0x00E5;
const IDENTIFICATION_MODEL_ID: u16 = 0x010F;

pub const MODEL_ID: u16 = 0xEACC;

/// ST's VL51L1X_DEFAULT_CONFIGURATION, registers 0x2D..=0x87.
const DEFAULT_CONFIG: [u8; 91] = [
    0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x08, // 0x2D
    0x00, 0x08, 0x10, 0x01, 0x01, 0x00, 0x00, 0x00, // 0x35
    0x00, 0xFF, 0x00, 0x0F, 0x00, 0x00, 0x00, 0x00, // 0x3D
    0x00, 0x20, 0x0B, 0x00, 0x00, 0x02, 0x0A, 0x21, // 0x45
    0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0xC8, // 0x4D
    0x00, 0x00, 0x38, 0xFF, 0x01, 0x00, 0x08, 0x00, // 0x55
    0x00, 0x01, 0xCC, 0x0F, 0x01, 0xF1, 0x0D, 0x01, // 0x5D
    0x68, 0x00, 0x80, 0x08, 0xB8, 0x00, 0x00, 0x00, // 0x65
    0x00, 0x0F, 0x89, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x6D
    0x00, 0x00, 0x01, 0x0F, 0x0D, 0x0E, 0x0E, 0x00, // 0x75
    0x00, 0x02, 0xC7, 0xFF, 0x9B, 0x00, 0x00, 0x00, // 0x7D
    0x01, 0x00, 0x00, // 0x85..=0x87
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vl53l1xConfig {
    /// 7-bit I2C address the chip answers at (after any re-addressing).
    pub address: u8,
    /// Presence threshold: a target nearer than this is somebody seated.
    pub max_mm: u16,
    /// Pull-ups at 2.8 V/AVDD instead of 1.8 V (bit 0 of 0x2E and 0x2F).
    pub io_2v8: bool,
    /// Upper bound for each wait on the chip.
    pub timeout_ms: u32,
}

impl Default for Vl53l1xConfig {
    fn default() -> Self {
        Vl53l1xConfig {
            address: super::TOF_DEFAULT_ADDRESS,
            max_mm: 1000,
            io_2v8: true,
            timeout_ms: 500,
        }
    }
}

fn expected(address: u8) -> String {
    format!("VL53L1X (model id 0x{MODEL_ID:04x}) at 0x{address:02x}")
}

/// Checks that a VL53L1X answers at `address`.
pub fn identify<I2C: I2c>(i2c: &mut I2C, address: u8) -> Result<(), SensorError> {
    let mut id = [0u8; 2];
    i2c.write_read(address, &IDENTIFICATION_MODEL_ID.to_be_bytes(), &mut id)
        .map_err(|e| SensorError::from_i2c_probe(e, &expected(address)))?;
    let id = u16::from_be_bytes(id);
    if id != MODEL_ID {
        return Err(SensorError::NotFound {
            expected: expected(address),
            found: format!("model id 0x{id:04x}"),
        });
    }
    Ok(())
}

/// Waits for the firmware to report booted (ULD VL53L1X_BootState). An
/// address NACK here means the chip is still in reset: retried until the
/// timeout like any other not-yet answer.
pub fn wait_booted<I2C: I2c, D: DelayNs>(
    i2c: &mut I2C,
    address: u8,
    delay: &mut D,
) -> Result<(), SensorError> {
    let mut last_error = None;
    for _ in 0..=BOOT_TIMEOUT_MS {
        let mut status = [0u8];
        match i2c.write_read(address, &FIRMWARE_SYSTEM_STATUS.to_be_bytes(), &mut status) {
            Ok(()) if status == [0x01] => return Ok(()),
            Ok(()) => last_error = None,
            Err(e) => last_error = Some(SensorError::from_i2c_probe(e, &expected(address))),
        }
        delay.delay_ms(1);
    }
    Err(last_error.unwrap_or(SensorError::Timeout))
}

/// How long a VL53L1X may take to boot after XSHUT is released.
const BOOT_TIMEOUT_MS: u32 = 100;

/// Moves the chip at `from` to the 7-bit address `to` (until power-off or
/// XSHUT). ST's ULD takes 8-bit addresses and shifts; this takes 7-bit.
pub fn write_address<I2C: I2c>(i2c: &mut I2C, from: u8, to: u8) -> Result<(), SensorError> {
    let [hi, lo] = I2C_SLAVE_DEVICE_ADDRESS.to_be_bytes();
    i2c.write(from, &[hi, lo, to & 0x7F])
        .map_err(SensorError::from_i2c)
}

pub struct Vl53l1x<I2C, D> {
    i2c: I2C,
    delay: D,
    cfg: Vl53l1xConfig,
}

impl<I2C: I2c, D: DelayNs> Vl53l1x<I2C, D> {
    pub fn new(i2c: I2C, delay: D, cfg: Vl53l1xConfig) -> Self {
        Vl53l1x { i2c, delay, cfg }
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

    /// The latest measurement: `Some(mm)` for a valid target, `None` when
    /// nothing is in range.
    pub fn measure(&mut self) -> Result<Option<u16>, SensorError> {
        self.wait_data_ready()?;
        // ULD GetResult: status at 0x89, distance at 0x96, one transaction.
        let mut result = [0u8; 17];
        self.read_into(RESULT_RANGE_STATUS, &mut result)?;
        self.write_reg(SYSTEM_INTERRUPT_CLEAR, &[0x01])?;
        let [status, _, _, _, _, _, _, _, _, _, _, _, _, hi, lo, _, _] = result;
        interpret(status, u16::from_be_bytes([hi, lo]))
    }

    fn init_chip(&mut self) -> Result<(), SensorError> {
        wait_booted(&mut self.i2c, self.cfg.address, &mut self.delay)?;
        identify(&mut self.i2c, self.cfg.address)?;
        let mut block = DEFAULT_CONFIG;
        if self.cfg.io_2v8 {
            for reg in [PAD_I2C_HV_EXTSUP_CONFIG, PAD_I2C_HV_EXTSUP_CONFIG + 1] {
                if let Some(byte) = block.get_mut(usize::from(reg - DEFAULT_CONFIG_START)) {
                    *byte |= 0x01;
                }
            }
        }
        self.write_reg(DEFAULT_CONFIG_START, &block)?;
        // One measurement makes the chip run its VHV calibration.
        self.write_reg(SYSTEM_MODE_START, &[0x40])?;
        self.wait_data_ready()?;
        self.write_reg(SYSTEM_INTERRUPT_CLEAR, &[0x01])?;
        self.write_reg(SYSTEM_MODE_START, &[0x00])?;
        // Two VHV bounds; start VHV from the previous temperature.
        self.write_reg(VHV_CONFIG_TIMEOUT_MACROP_LOOP_BOUND, &[0x09])?;
        self.write_reg(VHV_CONFIG_INIT, &[0x00])?;
        self.write_reg(SYSTEM_MODE_START, &[0x40])
    }

    /// ULD CheckForDataReady: GPIO status bit 0 equals the interrupt
    /// polarity (bit 4 of GPIO_HV_MUX_CTRL clear means active high).
    fn wait_data_ready(&mut self) -> Result<(), SensorError> {
        let polarity = u8::from(self.read_reg(GPIO_HV_MUX_CTRL)? & 0x10 == 0);
        for _ in 0..=self.cfg.timeout_ms {
            if self.read_reg(GPIO_TIO_HV_STATUS)? & 0x01 == polarity {
                return Ok(());
            }
            self.delay.delay_ms(1);
        }
        Err(SensorError::Timeout)
    }

    fn write_reg(&mut self, reg: u16, data: &[u8]) -> Result<(), SensorError> {
        let mut frame = Vec::with_capacity(data.len() + 2);
        frame.extend_from_slice(&reg.to_be_bytes());
        frame.extend_from_slice(data);
        self.i2c
            .write(self.cfg.address, &frame)
            .map_err(SensorError::from_i2c)
    }

    fn read_reg(&mut self, reg: u16) -> Result<u8, SensorError> {
        let mut buf = [0u8];
        self.read_into(reg, &mut buf)?;
        let [value] = buf;
        Ok(value)
    }

    fn read_into(&mut self, reg: u16, buf: &mut [u8]) -> Result<(), SensorError> {
        self.i2c
            .write_read(self.cfg.address, &reg.to_be_bytes(), buf)
            .map_err(SensorError::from_i2c)
    }
}

impl<I2C: I2c, D: DelayNs> PollSensor for Vl53l1x<I2C, D> {
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

/// Classifies the raw RESULT__RANGE_STATUS per the ULD's status table:
/// raw 9 is a valid range, raw 22 a valid range from merged pulses, raw 3 a
/// VCSEL/hardware failure; everything else (sigma, signal, phase, wrap,
/// minimum range, first sample after start) is no usable target.
fn interpret(status: u8, mm: u16) -> Result<Option<u16>, SensorError> {
    match status & 0x1F {
        9 | 22 => Ok(Some(mm)),
        3 => Err(SensorError::BadData(format!(
            "VL53L1X laser failure (range status {status:#04x})"
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDelay, FakeI2c};
    use super::*;

    fn sensor(bus: &FakeI2c) -> Vl53l1x<FakeI2c, FakeDelay> {
        Vl53l1x::new(bus.clone(), FakeDelay::default(), Vl53l1xConfig::default())
    }

    #[test]
    fn init_follows_the_uld_sequence() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut s = sensor(&bus);
        s.init().unwrap();
        let writes = bus.writes();
        let summary: Vec<(u16, Vec<u8>)> = writes
            .iter()
            .filter(|w| !w.data.is_empty())
            .map(|w| (w.reg, w.data.clone()))
            .collect();
        let mut block = DEFAULT_CONFIG.to_vec();
        block[1] = 0x01;
        block[2] = 0x01;
        assert_eq!(
            summary,
            vec![
                (0x002D, block),
                (0x0087, vec![0x40]),
                (0x0086, vec![0x01]),
                (0x0087, vec![0x00]),
                (0x0008, vec![0x09]),
                (0x000B, vec![0x00]),
                (0x0087, vec![0x40]),
            ]
        );
        assert_eq!(bus.reg(dev, 0x0087), 0x40, "ranging");
        assert_eq!(
            bus.reg(dev, 0x0081),
            0x9B,
            "block landed at the right registers"
        );
    }

    #[test]
    fn identification_and_boot() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut i2c = bus.clone();
        identify(&mut i2c, 0x29).unwrap();
        bus.pin(dev, 0x0110, 0xCD);
        match identify(&mut i2c, 0x29) {
            Err(SensorError::NotFound { found, .. }) => assert_eq!(found, "model id 0xeacd"),
            other => panic!("{other:?}"),
        }
        bus.pin(dev, 0x00E5, 0x00);
        let mut delay = FakeDelay::default();
        assert_eq!(
            wait_booted(&mut i2c, 0x29, &mut delay),
            Err(SensorError::Timeout)
        );
        assert!(delay.total_ns >= 100_000_000);
        assert!(matches!(
            wait_booted(&mut i2c, 0x52, &mut delay),
            Err(SensorError::NotFound { .. })
        ));
    }

    #[test]
    fn range_reads_give_presence() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut s = sensor(&bus);
        s.init().unwrap();
        let cases = [
            (9u8, 600u16, Ok(Reading::presence(true))),
            (9, 1200, Ok(Reading::presence(false))),
            (22, 400, Ok(Reading::presence(true))),
            (4, 400, Ok(Reading::presence(false))),
            (5, 0, Ok(Reading::presence(false))),
            (0xE9, 300, Ok(Reading::presence(true))),
            (
                3,
                300,
                Err(SensorError::BadData(
                    "VL53L1X laser failure (range status 0x03)".into(),
                )),
            ),
        ];
        for (status, mm, expected) in cases {
            bus.set_regs(dev, 0x0089, &[status]);
            bus.set_regs(dev, 0x0096, &mm.to_be_bytes());
            bus.clear_writes();
            assert_eq!(s.read(), expected, "status {status}, {mm} mm");
            assert_eq!(
                bus.reg_writes(0x29),
                vec![(0x0086, 0x01)],
                "interrupt cleared"
            );
        }
    }

    #[test]
    fn data_ready_follows_polarity_and_times_out() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut s = sensor(&bus);
        s.init().unwrap();
        bus.pin(dev, 0x0031, 0x00);
        assert_eq!(s.read(), Err(SensorError::Timeout));
        // Active-low interrupt: ready when the GPIO bit reads 0.
        bus.set_regs(dev, 0x0030, &[0x11]);
        bus.set_regs(dev, 0x0089, &[9]);
        bus.set_regs(dev, 0x0096, &100u16.to_be_bytes());
        assert_eq!(s.read(), Ok(Reading::presence(true)));
    }

    #[test]
    fn readdressing_and_bus_errors() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut s = sensor(&bus);
        s.set_address(0x40).unwrap();
        assert_eq!(bus.device_address(dev), 0x40);
        assert_eq!(bus.writes()[0].data, vec![0x40]);
        s.init().unwrap();
        bus.fail_next(1);
        assert!(matches!(s.read(), Err(SensorError::Bus(_))));
        bus.fail_next(200);
        assert!(matches!(s.init(), Err(SensorError::Bus(_))));
    }
}
