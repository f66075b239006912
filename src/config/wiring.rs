//! `[[sensors]]` as a whole: checks across entries, on the checked
//! [`SensorConfig`]s (what is wired where on the Pi).

use super::error::{ConfigError, key_error};
use crate::sensors::spec::{SensorConfig, SensorKind, TofSensor, Window};
use std::collections::{BTreeMap, HashMap};

/// GPIO 2 and 3 are SDA and SCL of I2C bus 1 on every 40-pin Pi.
const I2C1_PINS: [u8; 2] = [2, 3];

/// Cross-entry checks: each GPIO pin used once, each I2C address used once
/// per bus (windows of one AMG8833 excepted), ToF chips sharing a bus all
/// behind XSHUT with distinct addresses.
pub(super) fn check(sensors: &[SensorConfig]) -> Result<(), ConfigError> {
    let uses_i2c1 = sensors.iter().any(|s| match &s.kind {
        SensorKind::Amg8833(a) => a.bus == 1,
        SensorKind::Tof(t) => t.bus == 1,
        _ => false,
    });
    let mut pins: HashMap<u8, usize> = HashMap::new();
    let mut claim_pin = |i: usize, field: &str, pin: u8| -> Result<(), ConfigError> {
        let key = format!("sensors[{i}].{field}");
        if uses_i2c1 && I2C1_PINS.contains(&pin) {
            return Err(key_error(
                key,
                format!("GPIO {pin} is SDA/SCL of I2C bus 1, which other sensors use"),
            ));
        }
        if let Some(first) = pins.insert(pin, i) {
            return Err(key_error(
                key,
                format!("GPIO {pin} is already used by sensors[{first}]"),
            ));
        }
        Ok(())
    };
    // Chip identity on a bus: (bus, address) → first entry using it.
    let mut chips: BTreeMap<(u8, u8), usize> = BTreeMap::new();
    let mut tofs_per_bus: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, s) in sensors.iter().enumerate() {
        match &s.kind {
            SensorKind::Gpio(g) => claim_pin(i, "pin", g.pin)?,
            SensorKind::Button(b) => claim_pin(i, "pin", b.input.pin)?,
            SensorKind::Tof(t) => {
                if let Some(x) = t.xshut_pin {
                    claim_pin(i, "xshut_pin", x)?;
                }
                if let Some(first) = chips.insert((t.bus, t.address), i) {
                    return Err(address_taken(i, t.bus, t.address, first));
                }
                tofs_per_bus.entry(t.bus).or_default().push(i);
            }
            SensorKind::Amg8833(a) => match chips.get(&(a.bus, a.address)) {
                None => {
                    chips.insert((a.bus, a.address), i);
                }
                Some(&first) => {
                    // Several tables may share one array, each with its
                    // own window, if they agree on how it is driven.
                    let same_chip = sensors.get(first).and_then(|f| match &f.kind {
                        SensorKind::Amg8833(f) => Some(f),
                        _ => None,
                    });
                    let compatible = same_chip.is_some_and(|f| {
                        f.frame_rate == a.frame_rate
                            && f.interval == a.interval
                            && f.window != Window::FULL
                            && a.window != Window::FULL
                    });
                    if !compatible {
                        return Err(key_error(
                            format!("sensors[{i}].address"),
                            format!(
                                "0x{:02x} on bus {} is already used by sensors[{first}]; to split one AMG8833 between tables give each entry a window and the same frame_rate and interval",
                                a.address, a.bus
                            ),
                        ));
                    }
                }
            },
            SensorKind::Mqtt | SensorKind::Sim(_) => {}
        }
    }
    for indices in tofs_per_bus.values().filter(|v| v.len() > 1) {
        for &i in indices {
            let missing = matches!(
                sensors.get(i).map(|s| &s.kind),
                Some(SensorKind::Tof(TofSensor {
                    xshut_pin: None,
                    ..
                }))
            );
            if missing {
                return Err(key_error(
                    format!("sensors[{i}].xshut_pin"),
                    "several time-of-flight sensors share this bus: each needs an xshut_pin and its own address",
                ));
            }
        }
    }
    Ok(())
}

fn address_taken(i: usize, bus: u8, address: u8, first: usize) -> ConfigError {
    key_error(
        format!("sensors[{i}].address"),
        format!("0x{address:02x} on bus {bus} is already used by sensors[{first}]"),
    )
}
