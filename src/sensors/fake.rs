//! Register-level fakes of the I2C bus, XSHUT pins and delays, for tests.
//!
//! [`FakeI2c`] models chips the way the drivers see them: each device has a
//! register file (256 bytes for 8-bit register addresses, 64 KiB for 16-bit
//! ones) and a register pointer that a write sets and that auto-increments
//! on every byte read or written, as on the AMG8833 and the VL53L0X/L1X.
//! Registers can be pinned to a value (status and id registers the real chip
//! drives itself), a write to a device's address register moves it, and an
//! XSHUT pin takes a device off the bus and back to its power-on address.
//! Handles are cheap clones sharing one state so a test can hand the bus to
//! a driver and still inspect it.
//!
//! [`FakeGpio`] hands out input pins whose level a test sets, and can refuse
//! to hand them out (no GPIO peripheral, a pin another process holds).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::rc::Rc;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeI2cError(pub ErrorKind);

impl embedded_hal::i2c::Error for FakeI2cError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub address: u8,
    pub reg: u16,
    pub data: Vec<u8>,
}

struct Device {
    default_address: u8,
    address: u8,
    wide: bool,
    address_reg: Option<u16>,
    enabled: bool,
    regs: Vec<u8>,
    pinned: HashMap<u16, u8>,
    pointer: usize,
}

impl Device {
    fn read_byte(&mut self) -> u8 {
        let reg = self.pointer;
        self.pointer = (self.pointer + 1) % self.regs.len();
        let pinned = u16::try_from(reg).ok().and_then(|r| self.pinned.get(&r));
        pinned.copied().unwrap_or_else(|| self.regs[reg])
    }

    fn write_byte(&mut self, value: u8) {
        let reg = self.pointer;
        self.pointer = (self.pointer + 1) % self.regs.len();
        self.regs[reg] = value;
        if self.address_reg.map(usize::from) == Some(reg) {
            self.address = value & 0x7F;
        }
    }
}

#[derive(Default)]
struct State {
    devices: Vec<Device>,
    fail_next: u32,
    writes: Vec<WriteRecord>,
    transactions: u32,
}

#[derive(Clone, Default)]
pub struct FakeI2c {
    state: Rc<RefCell<State>>,
}

impl FakeI2c {
    pub fn new() -> Self {
        FakeI2c::default()
    }

    /// Adds a device, on the bus at once, and returns its index.
    pub fn add_device(&self, address: u8, wide: bool, address_reg: Option<u16>) -> usize {
        let mut state = self.state.borrow_mut();
        state.devices.push(Device {
            default_address: address,
            address,
            wide,
            address_reg,
            enabled: true,
            regs: vec![0; if wide { 1 << 16 } else { 1 << 8 }],
            pinned: HashMap::new(),
            pointer: 0,
        });
        state.devices.len() - 1
    }

    /// A VL53L0X that answers like a healthy chip: model id, SPAD info
    /// ready (5 aperture SPADs), ranging finished and a sample ready.
    pub fn add_vl53l0x(&self) -> usize {
        let dev = self.add_device(0x29, false, Some(0x8A));
        self.pin(dev, 0xC0, 0xEE);
        self.pin(dev, 0x83, 0x01);
        self.set_regs(dev, 0x92, &[0x85]);
        self.set_regs(dev, 0x91, &[0x3C]);
        self.set_regs(dev, 0xB0, &[0xFF; 6]);
        self.pin(dev, 0x00, 0x00);
        self.pin(dev, 0x13, 0x07);
        dev
    }

    /// A VL53L1X that has booted and always has a sample ready.
    pub fn add_vl53l1x(&self) -> usize {
        let dev = self.add_device(0x29, true, Some(0x0001));
        self.pin(dev, 0x010F, 0xEA);
        self.pin(dev, 0x0110, 0xCC);
        self.pin(dev, 0x00E5, 0x01);
        self.pin(dev, 0x0031, 0x01);
        dev
    }

    /// An AMG8833 whose thermistor reads 25 °C.
    pub fn add_amg8833(&self, address: u8) -> usize {
        let dev = self.add_device(address, false, None);
        self.set_regs(dev, 0x0E, &[0x90, 0x01]);
        dev
    }

    pub fn set_regs(&self, dev: usize, start: u16, bytes: &[u8]) {
        let mut state = self.state.borrow_mut();
        let device = &mut state.devices[dev];
        for (offset, byte) in bytes.iter().enumerate() {
            device.regs[usize::from(start) + offset] = *byte;
        }
    }

    pub fn pin(&self, dev: usize, reg: u16, value: u8) {
        self.state.borrow_mut().devices[dev]
            .pinned
            .insert(reg, value);
    }

    pub fn unpin(&self, dev: usize, reg: u16) {
        self.state.borrow_mut().devices[dev].pinned.remove(&reg);
    }

    pub fn reg(&self, dev: usize, reg: u16) -> u8 {
        self.state.borrow().devices[dev].regs[usize::from(reg)]
    }

    pub fn device_address(&self, dev: usize) -> u8 {
        self.state.borrow().devices[dev].address
    }

    /// Makes the next `n` transactions fail with a bus error.
    pub fn fail_next(&self, n: u32) {
        self.state.borrow_mut().fail_next = n;
    }

    pub fn writes(&self) -> Vec<WriteRecord> {
        self.state.borrow().writes.clone()
    }

    pub fn clear_writes(&self) {
        self.state.borrow_mut().writes.clear();
    }

    pub fn transactions(&self) -> u32 {
        self.state.borrow().transactions
    }

    /// Every register byte written to `address`, in order, as (register, value).
    pub fn reg_writes(&self, address: u8) -> Vec<(u16, u8)> {
        let state = self.state.borrow();
        let mut out = Vec::new();
        for record in state.writes.iter().filter(|w| w.address == address) {
            for (offset, byte) in record.data.iter().enumerate() {
                let offset = u16::try_from(offset).unwrap_or(u16::MAX);
                out.push((record.reg.wrapping_add(offset), *byte));
            }
        }
        out
    }

    pub fn xshut(&self, dev: usize) -> FakeXshut {
        FakeXshut {
            state: Rc::clone(&self.state),
            dev,
        }
    }
}

impl ErrorType for FakeI2c {
    type Error = FakeI2cError;
}

impl I2c for FakeI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut state = self.state.borrow_mut();
        state.transactions += 1;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(FakeI2cError(ErrorKind::Bus));
        }
        let Some(index) = state
            .devices
            .iter()
            .position(|d| d.enabled && d.address == address)
        else {
            return Err(FakeI2cError(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        };
        let mut records = Vec::new();
        let device = &mut state.devices[index];
        for op in operations.iter_mut() {
            match op {
                Operation::Write(bytes) => {
                    let width = if device.wide { 2 } else { 1 };
                    if bytes.len() < width {
                        return Err(FakeI2cError(ErrorKind::NoAcknowledge(
                            NoAcknowledgeSource::Data,
                        )));
                    }
                    let reg = if device.wide {
                        u16::from_be_bytes([bytes[0], bytes[1]])
                    } else {
                        u16::from(bytes[0])
                    };
                    device.pointer = usize::from(reg) % device.regs.len();
                    records.push(WriteRecord {
                        address,
                        reg,
                        data: bytes[width..].to_vec(),
                    });
                    for byte in &bytes[width..] {
                        device.write_byte(*byte);
                    }
                }
                Operation::Read(buffer) => {
                    for byte in buffer.iter_mut() {
                        *byte = device.read_byte();
                    }
                }
            }
        }
        state.writes.extend(records);
        Ok(())
    }
}

/// XSHUT pin of one fake device: low takes the chip off the bus and back to
/// its power-on address, as a hardware standby does on the real chips.
pub struct FakeXshut {
    state: Rc<RefCell<State>>,
    dev: usize,
}

impl PinErrorType for FakeXshut {
    type Error = Infallible;
}

impl OutputPin for FakeXshut {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        let mut state = self.state.borrow_mut();
        let device = &mut state.devices[self.dev];
        device.enabled = false;
        device.address = device.default_address;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.state.borrow_mut().devices[self.dev].enabled = true;
        Ok(())
    }
}

/// A delay that only adds up how long the driver asked to wait.
#[derive(Debug, Default)]
pub struct FakeDelay {
    pub total_ns: u64,
}

impl DelayNs for FakeDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.total_ns = self.total_ns.saturating_add(u64::from(ns));
    }
}

/// GPIO inputs for tests: the pins' levels, and whether claiming works.
#[derive(Clone, Default)]
pub struct FakeGpio {
    levels: Rc<RefCell<HashMap<u8, Rc<Cell<bool>>>>>,
    refusal: Rc<RefCell<Option<String>>>,
    claims: Rc<Cell<u32>>,
}

impl FakeGpio {
    /// Every pin reads `high` until a test sets it.
    pub fn new() -> FakeGpio {
        FakeGpio::default()
    }

    fn level(&self, pin: u8) -> Rc<Cell<bool>> {
        Rc::clone(
            self.levels
                .borrow_mut()
                .entry(pin)
                .or_insert_with(|| Rc::new(Cell::new(true))),
        )
    }

    pub fn set(&self, pin: u8, high: bool) {
        self.level(pin).set(high);
    }

    /// Claims fail with `reason` until [`FakeGpio::allow`].
    pub fn refuse(&self, reason: &str) {
        *self.refusal.borrow_mut() = Some(reason.to_string());
    }

    pub fn allow(&self) {
        *self.refusal.borrow_mut() = None;
    }

    /// How many claims were attempted.
    pub fn claims(&self) -> u32 {
        self.claims.get()
    }

    pub fn claim(&self, pin: u8) -> Result<FakeInput, String> {
        self.claims.set(self.claims.get() + 1);
        match self.refusal.borrow().as_ref() {
            Some(reason) => Err(reason.clone()),
            None => Ok(FakeInput {
                pin,
                level: self.level(pin),
            }),
        }
    }
}

/// A claimed fake input pin.
pub struct FakeInput {
    pub pin: u8,
    level: Rc<Cell<bool>>,
}

impl PinErrorType for FakeInput {
    type Error = Infallible;
}

impl InputPin for FakeInput {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level.get())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_follows_the_register_pointer() {
        let bus = FakeI2c::new();
        let dev = bus.add_device(0x68, false, None);
        bus.set_regs(dev, 0x80, &[1, 2, 3]);
        let mut i2c = bus.clone();
        let mut buf = [0u8; 3];
        i2c.write_read(0x68, &[0x80], &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3]);
        i2c.write(0x68, &[0x02, 0x01]).unwrap();
        assert_eq!(bus.reg(dev, 0x02), 0x01);
        assert_eq!(bus.reg_writes(0x68), vec![(0x02, 0x01)]);
    }

    #[test]
    fn injected_failures_and_absent_devices() {
        let bus = FakeI2c::new();
        bus.add_device(0x68, false, None);
        let mut i2c = bus.clone();
        bus.fail_next(2);
        assert!(i2c.write(0x68, &[0, 0]).is_err());
        assert!(i2c.write(0x68, &[0, 0]).is_err());
        assert!(i2c.write(0x68, &[0, 0]).is_ok());
        let err = i2c.write(0x69, &[0, 0]).unwrap_err();
        assert_eq!(
            err.0,
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
        );
    }

    #[test]
    fn pinned_registers_ignore_writes_and_address_register_moves_device() {
        let bus = FakeI2c::new();
        let dev = bus.add_vl53l1x();
        let mut i2c = bus.clone();
        i2c.write(0x29, &[0x01, 0x0F, 0x00]).unwrap();
        let mut id = [0u8; 2];
        i2c.write_read(0x29, &[0x01, 0x0F], &mut id).unwrap();
        assert_eq!(id, [0xEA, 0xCC]);
        i2c.write(0x29, &[0x00, 0x01, 0x33]).unwrap();
        assert_eq!(bus.device_address(dev), 0x33);
        let mut xshut = bus.xshut(dev);
        xshut.set_low().unwrap();
        assert!(i2c.write_read(0x29, &[0x01, 0x0F], &mut id).is_err());
        xshut.set_high().unwrap();
        assert!(i2c.write_read(0x29, &[0x01, 0x0F], &mut id).is_ok());
    }
}
