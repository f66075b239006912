//! Several VL53L0X/VL53L1X chips on one bus, behind XSHUT pins.
//!
//! Both chips power up at [`TOF_DEFAULT_ADDRESS`], so a chain is woken one
//! chip at a time and each is moved to its configured address before the
//! next one wakes. [`super::bus::BusWorker`] brings a chain up at start and
//! again whenever one of its chips has to be initialised.

use super::{SensorError, TOF_DEFAULT_ADDRESS, TofKind, vl53l0x, vl53l1x};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;

/// One chip of an XSHUT chain: its shutdown pin and the address it gets.
pub struct ChainLink<P> {
    pub kind: TofKind,
    pub xshut: P,
    pub address: u8,
}

/// Brings up several VL53L0X/VL53L1X chips that share one bus: all are held
/// in reset, then each is released, given its new address and checked to
/// answer there, before the next one is released.
///
/// A link whose address is already 0x29 is simply released (it must be the
/// last one, otherwise the next chip to wake would collide with it).
pub fn bring_up_chain<I2C, P, D>(
    i2c: &mut I2C,
    chain: &mut [ChainLink<P>],
    delay: &mut D,
) -> Result<(), SensorError>
where
    I2C: I2c,
    P: OutputPin,
    D: DelayNs,
{
    for (index, link) in chain.iter().enumerate() {
        let clashes = chain
            .iter()
            .skip(index + 1)
            .any(|later| later.address == link.address);
        let parks_on_default = link.address == TOF_DEFAULT_ADDRESS && index + 1 != chain.len();
        if clashes || parks_on_default || !(0x08..=0x77).contains(&link.address) {
            return Err(SensorError::BadData(format!(
                "chain address 0x{:02x} is duplicated, reserved or blocks the default address",
                link.address
            )));
        }
    }
    for link in chain.iter_mut() {
        link.xshut
            .set_low()
            .map_err(|e| SensorError::Bus(format!("XSHUT low: {e:?}")))?;
    }
    // XSHUT low must be seen by every chip before any wakes.
    delay.delay_ms(10);
    for link in chain.iter_mut() {
        link.xshut
            .set_high()
            .map_err(|e| SensorError::Bus(format!("XSHUT high: {e:?}")))?;
        // Both datasheets give tBOOT as 1.2 ms max; leave margin.
        delay.delay_ms(2);
        match link.kind {
            TofKind::Vl53l0x => {
                vl53l0x::identify(i2c, TOF_DEFAULT_ADDRESS)?;
                if link.address != TOF_DEFAULT_ADDRESS {
                    vl53l0x::write_address(i2c, TOF_DEFAULT_ADDRESS, link.address)?;
                    vl53l0x::identify(i2c, link.address)?;
                }
            }
            TofKind::Vl53l1x => {
                vl53l1x::wait_booted(i2c, TOF_DEFAULT_ADDRESS, delay)?;
                vl53l1x::identify(i2c, TOF_DEFAULT_ADDRESS)?;
                if link.address != TOF_DEFAULT_ADDRESS {
                    vl53l1x::write_address(i2c, TOF_DEFAULT_ADDRESS, link.address)?;
                    vl53l1x::identify(i2c, link.address)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDelay, FakeI2c};
    use super::*;

    #[test]
    fn chain_readdresses_each_chip_in_turn() {
        let bus = FakeI2c::new();
        let a = bus.add_vl53l0x();
        let b = bus.add_vl53l1x();
        let c = bus.add_vl53l0x();
        let mut chain = [
            ChainLink {
                kind: TofKind::Vl53l0x,
                xshut: bus.xshut(a),
                address: 0x30,
            },
            ChainLink {
                kind: TofKind::Vl53l1x,
                xshut: bus.xshut(b),
                address: 0x31,
            },
            ChainLink {
                kind: TofKind::Vl53l0x,
                xshut: bus.xshut(c),
                address: 0x29,
            },
        ];
        let mut i2c = bus.clone();
        bring_up_chain(&mut i2c, &mut chain, &mut FakeDelay::default()).unwrap();
        assert_eq!(bus.device_address(a), 0x30);
        assert_eq!(bus.device_address(b), 0x31);
        assert_eq!(bus.device_address(c), 0x29);
        assert!(bus.reg_writes(0x29).contains(&(0x8A, 0x30)));
        assert!(bus.reg_writes(0x29).contains(&(0x0001, 0x31)));
    }

    #[test]
    fn chain_surfaces_bus_errors() {
        let bus = FakeI2c::new();
        let a = bus.add_vl53l0x();
        let mut chain = [ChainLink {
            kind: TofKind::Vl53l0x,
            xshut: bus.xshut(a),
            address: 0x30,
        }];
        bus.fail_next(1);
        let mut i2c = bus.clone();
        let err = bring_up_chain(&mut i2c, &mut chain, &mut FakeDelay::default()).unwrap_err();
        assert!(matches!(err, SensorError::Bus(_)), "{err:?}");
    }

    #[test]
    fn chain_rejects_colliding_addresses() {
        let bus = FakeI2c::new();
        let a = bus.add_vl53l0x();
        let b = bus.add_vl53l0x();
        let mut chain = [
            ChainLink {
                kind: TofKind::Vl53l0x,
                xshut: bus.xshut(a),
                address: 0x29,
            },
            ChainLink {
                kind: TofKind::Vl53l0x,
                xshut: bus.xshut(b),
                address: 0x30,
            },
        ];
        let mut i2c = bus.clone();
        let err = bring_up_chain(&mut i2c, &mut chain, &mut FakeDelay::default()).unwrap_err();
        assert!(matches!(err, SensorError::BadData(_)));
    }

    #[test]
    fn missing_chip_is_not_found() {
        let bus = FakeI2c::new();
        let mut i2c = bus.clone();
        let err = vl53l0x::identify(&mut i2c, 0x29).unwrap_err();
        assert!(matches!(err, SensorError::NotFound { .. }), "{err:?}");
    }
}
