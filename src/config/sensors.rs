//! `[[sensors]]`: the raw entry as written in the file, and its checked form.
//!
//! One raw struct holds every key of every kind (so `deny_unknown_fields`
//! still catches typos); [`check`] then rejects keys that do not belong to
//! the entry's kind, fills per-kind defaults and checks the wiring as a
//! whole (unique ids, pins and I2C addresses, tables that exist). Every
//! error names the key, e.g. `sensors[2].pin`.

use super::{ConfigError, TableSeed, duration_in, key_error, parse_duration};
use crate::domain::TableId;
use crate::sensors::TofKind;
use crate::sensors::amg8833::{CountingConfig, FrameRate};
use crate::sensors::health::HealthConfig;
use crate::sensors::sim::{RandomConfig, Step};
use crate::sensors::spec::{
    Amg8833Sensor, ButtonInput, GpioInput, Pull, RETRY_INITIAL, RETRY_MAX, SensorConfig,
    SensorKind, SimSpec, TofSensor, Window,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Longest sensor id: it is part of MQTT topics and event actors.
pub const MAX_SENSOR_ID_LEN: usize = 64;

/// BCM numbers of the GPIOs on the 40-pin header.
pub const MAX_BCM_PIN: u8 = 27;

/// GPIO 2 and 3 are SDA and SCL of I2C bus 1 on every 40-pin Pi.
const I2C1_PINS: [u8; 2] = [2, 3];

/// One `[[sensors]]` entry exactly as written (all kinds' keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSensor {
    pub id: String,
    pub kind: String,
    pub table: Option<i64>,
    pub fault_after: Option<i64>,
    pub stale_after: Option<String>,
    // gpio, button
    pub pin: Option<i64>,
    pub pull: Option<String>,
    pub active_low: Option<bool>,
    pub debounce_ms: Option<i64>,
    pub long_press: Option<String>,
    // amg8833, vl53l0x, vl53l1x
    pub bus: Option<i64>,
    pub address: Option<i64>,
    pub interval: Option<String>,
    pub frame_rate: Option<i64>,
    pub delta_c: Option<f64>,
    pub min_blob: Option<i64>,
    pub window: Option<Vec<i64>>,
    pub max_mm: Option<i64>,
    pub xshut_pin: Option<i64>,
    // sim
    pub script: Option<Vec<Vec<toml::Value>>>,
    pub seed: Option<i64>,
    pub gap: Option<Vec<String>>,
    pub stay: Option<Vec<String>>,
    pub max_party: Option<i64>,
    pub counts: Option<bool>,
}

/// Which keys each kind accepts besides `id`, `kind` and `table`.
fn allowed_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "gpio" => &["pin", "pull", "active_low", "debounce_ms", "fault_after"],
        "button" => &[
            "pin",
            "pull",
            "active_low",
            "debounce_ms",
            "long_press",
            "fault_after",
        ],
        "amg8833" => &[
            "bus",
            "address",
            "interval",
            "frame_rate",
            "delta_c",
            "min_blob",
            "window",
            "fault_after",
            "stale_after",
        ],
        "vl53l0x" | "vl53l1x" => &[
            "bus",
            "address",
            "interval",
            "max_mm",
            "xshut_pin",
            "fault_after",
            "stale_after",
        ],
        "mqtt" => &["stale_after"],
        "sim" => &["script", "seed", "gap", "stay", "max_party", "counts"],
        _ => return None,
    })
}

impl RawSensor {
    /// The optional keys that are set.
    fn present_keys(&self) -> Vec<&'static str> {
        [
            ("fault_after", self.fault_after.is_some()),
            ("stale_after", self.stale_after.is_some()),
            ("pin", self.pin.is_some()),
            ("pull", self.pull.is_some()),
            ("active_low", self.active_low.is_some()),
            ("debounce_ms", self.debounce_ms.is_some()),
            ("long_press", self.long_press.is_some()),
            ("bus", self.bus.is_some()),
            ("address", self.address.is_some()),
            ("interval", self.interval.is_some()),
            ("frame_rate", self.frame_rate.is_some()),
            ("delta_c", self.delta_c.is_some()),
            ("min_blob", self.min_blob.is_some()),
            ("window", self.window.is_some()),
            ("max_mm", self.max_mm.is_some()),
            ("xshut_pin", self.xshut_pin.is_some()),
            ("script", self.script.is_some()),
            ("seed", self.seed.is_some()),
            ("gap", self.gap.is_some()),
            ("stay", self.stay.is_some()),
            ("max_party", self.max_party.is_some()),
            ("counts", self.counts.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
    }
}

fn int_in<T: TryFrom<i64>>(key: &str, value: i64, min: i64, max: i64) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(key_error(
            key,
            format!("{value} is out of range ({min}..={max})"),
        ));
    }
    T::try_from(value).map_err(|_| key_error(key, "out of range"))
}

/// Checks every `[[sensors]]` entry against each other and the tables.
pub(super) fn check(
    raw: Vec<RawSensor>,
    tables: &[TableSeed],
) -> Result<Vec<SensorConfig>, ConfigError> {
    let seats: HashMap<TableId, u32> = tables.iter().map(|t| (t.id, t.seats)).collect();
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("sensors[{i}]");
        let sensor = check_one(&key, s, &seats)?;
        if !ids.insert(sensor.id.clone()) {
            return Err(key_error(
                format!("{key}.id"),
                format!("duplicate sensor id {:?}", sensor.id),
            ));
        }
        out.push(sensor);
    }
    check_wiring(&out)?;
    Ok(out)
}

fn check_one(
    key: &str,
    s: RawSensor,
    seats: &HashMap<TableId, u32>,
) -> Result<SensorConfig, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    if s.id.is_empty()
        || s.id.len() > MAX_SENSOR_ID_LEN
        || !s
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(key_error(
            k("id"),
            format!(
                "{:?} must be 1 to {MAX_SENSOR_ID_LEN} letters, digits, '-' or '_' (it is part of MQTT topics)",
                s.id
            ),
        ));
    }
    let Some(allowed) = allowed_keys(&s.kind) else {
        return Err(key_error(
            k("kind"),
            format!(
                "{:?} is not one of gpio, button, amg8833, vl53l0x, vl53l1x, mqtt, sim",
                s.kind
            ),
        ));
    };
    if let Some(extra) = s.present_keys().into_iter().find(|p| !allowed.contains(p)) {
        return Err(key_error(
            k(extra),
            format!(
                "not a key of kind {:?} (it takes: {})",
                s.kind,
                allowed.join(", ")
            ),
        ));
    }
    let table = match s.table {
        Some(id) if seats.contains_key(&id) => Some(id),
        Some(id) => {
            return Err(key_error(
                k("table"),
                format!("no table with id {id} in [[tables]]"),
            ));
        }
        None if s.kind == "button" => None,
        None => {
            return Err(key_error(
                k("table"),
                format!("a {} sensor must name the table it watches", s.kind),
            ));
        }
    };

    let fault_after = match s.fault_after {
        Some(n) => int_in(&k("fault_after"), n, 1, 1000)?,
        None => HealthConfig::default().fault_after,
    };
    let polled_stale = Some(Duration::from_secs(30));
    let stale_default = match s.kind.as_str() {
        "amg8833" | "vl53l0x" | "vl53l1x" => polled_stale,
        "mqtt" => Some(Duration::from_secs(300)),
        // Edge-driven inputs are silent while nothing happens, and the
        // simulator never fails.
        _ => None,
    };
    let stale_after = match &s.stale_after {
        Some(v) => Some(duration_in(
            &k("stale_after"),
            v,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        )?),
        None => stale_default,
    };
    let health = HealthConfig {
        fault_after,
        stale_after,
        retry_initial: RETRY_INITIAL,
        retry_max: RETRY_MAX,
    };

    let kind = match s.kind.as_str() {
        "gpio" => SensorKind::Gpio(gpio_input(key, &s, Pull::Off, false, 50)?),
        "button" => SensorKind::Button(ButtonInput {
            input: gpio_input(key, &s, Pull::Up, true, 30)?,
            long_press: match &s.long_press {
                Some(v) => duration_in(
                    &k("long_press"),
                    v,
                    Duration::from_millis(200),
                    Duration::from_secs(30),
                )?,
                None => Duration::from_millis(1500),
            },
        }),
        "amg8833" => SensorKind::Amg8833(amg8833(key, &s)?),
        "vl53l0x" => SensorKind::Tof(tof(key, &s, TofKind::Vl53l0x)?),
        "vl53l1x" => SensorKind::Tof(tof(key, &s, TofKind::Vl53l1x)?),
        "mqtt" => SensorKind::Mqtt,
        _ => SensorKind::Sim(sim(key, &s, table.and_then(|t| seats.get(&t).copied()))?),
    };
    Ok(SensorConfig {
        id: s.id,
        table,
        kind,
        health,
    })
}

fn pin(key: &str, value: i64) -> Result<u8, ConfigError> {
    int_in(key, value, 0, i64::from(MAX_BCM_PIN)).map_err(|_| {
        key_error(
            key,
            format!("{value} is not a BCM GPIO number of the 40-pin header (0..={MAX_BCM_PIN})"),
        )
    })
}

fn gpio_input(
    key: &str,
    s: &RawSensor,
    pull: Pull,
    active_low: bool,
    debounce_ms: i64,
) -> Result<GpioInput, ConfigError> {
    let Some(raw_pin) = s.pin else {
        return Err(key_error(
            format!("{key}.pin"),
            "missing (the BCM GPIO number)",
        ));
    };
    let pull = match s.pull.as_deref() {
        None => pull,
        Some("up") => Pull::Up,
        Some("down") => Pull::Down,
        Some("off") => Pull::Off,
        Some(other) => {
            return Err(key_error(
                format!("{key}.pull"),
                format!("{other:?} is not one of up, down, off"),
            ));
        }
    };
    Ok(GpioInput {
        pin: pin(&format!("{key}.pin"), raw_pin)?,
        pull,
        active_low: s.active_low.unwrap_or(active_low),
        debounce: Duration::from_millis(int_in(
            &format!("{key}.debounce_ms"),
            s.debounce_ms.unwrap_or(debounce_ms),
            0,
            10_000,
        )?),
    })
}

fn bus(key: &str, s: &RawSensor) -> Result<u8, ConfigError> {
    int_in(&format!("{key}.bus"), s.bus.unwrap_or(1), 0, 31)
}

fn interval(key: &str, s: &RawSensor, default: Duration) -> Result<Duration, ConfigError> {
    match &s.interval {
        Some(v) => duration_in(
            &format!("{key}.interval"),
            v,
            Duration::from_millis(50),
            Duration::from_secs(60),
        ),
        None => Ok(default),
    }
}

fn amg8833(key: &str, s: &RawSensor) -> Result<Amg8833Sensor, ConfigError> {
    let address = match s.address.unwrap_or(0x68) {
        0x68 => 0x68,
        0x69 => 0x69,
        other => {
            return Err(key_error(
                format!("{key}.address"),
                format!("0x{other:x} is not an AMG8833 address (0x68 or 0x69)"),
            ));
        }
    };
    let (frame_rate, default_interval) = match s.frame_rate.unwrap_or(10) {
        10 => (FrameRate::Fps10, Duration::from_millis(100)),
        1 => (FrameRate::Fps1, Duration::from_secs(1)),
        other => {
            return Err(key_error(
                format!("{key}.frame_rate"),
                format!("{other} is not 1 or 10 (frames per second)"),
            ));
        }
    };
    let mut counting = CountingConfig::default();
    if let Some(delta) = s.delta_c {
        if !(0.25..=20.0).contains(&delta) {
            return Err(key_error(
                format!("{key}.delta_c"),
                format!("{delta} is out of range (0.25..=20.0 °C)"),
            ));
        }
        counting.delta_c = delta as f32;
    }
    if let Some(min_blob) = s.min_blob {
        counting.min_blob = int_in(&format!("{key}.min_blob"), min_blob, 1, 64)?;
    }
    let window = match &s.window {
        None => Window::FULL,
        Some(w) => {
            let bad = || {
                key_error(
                    format!("{key}.window"),
                    "must be [row, col, rows, cols] inside the 8×8 array, e.g. [0, 0, 4, 4]",
                )
            };
            let [row, col, rows, cols] = w.as_slice() else {
                return Err(bad());
            };
            let fits =
                |start: i64, len: i64| (0..8).contains(&start) && len >= 1 && start + len <= 8;
            if !fits(*row, *rows) || !fits(*col, *cols) {
                return Err(bad());
            }
            let byte = |v: i64| u8::try_from(v).map_err(|_| bad());
            Window {
                row: byte(*row)?,
                col: byte(*col)?,
                rows: byte(*rows)?,
                cols: byte(*cols)?,
            }
        }
    };
    Ok(Amg8833Sensor {
        bus: bus(key, s)?,
        address,
        frame_rate,
        interval: interval(key, s, default_interval)?,
        counting,
        window,
    })
}

fn tof(key: &str, s: &RawSensor, chip: TofKind) -> Result<TofSensor, ConfigError> {
    let address = int_in(
        &format!("{key}.address"),
        s.address
            .unwrap_or(i64::from(crate::sensors::TOF_DEFAULT_ADDRESS)),
        0x08,
        0x77,
    )?;
    let xshut_pin = s
        .xshut_pin
        .map(|p| pin(&format!("{key}.xshut_pin"), p))
        .transpose()?;
    if address != crate::sensors::TOF_DEFAULT_ADDRESS && xshut_pin.is_none() {
        return Err(key_error(
            format!("{key}.address"),
            "a time-of-flight sensor powers up at 0x29; another address needs xshut_pin so it can be re-addressed at every start",
        ));
    }
    let max_range = match chip {
        TofKind::Vl53l0x => 2000,
        TofKind::Vl53l1x => 4000,
    };
    Ok(TofSensor {
        chip,
        bus: bus(key, s)?,
        address,
        max_mm: int_in(
            &format!("{key}.max_mm"),
            s.max_mm.unwrap_or(800),
            30,
            max_range,
        )?,
        xshut_pin,
        interval: interval(key, s, Duration::from_millis(200))?,
    })
}

fn sim(key: &str, s: &RawSensor, seats: Option<u32>) -> Result<SimSpec, ConfigError> {
    match (&s.script, s.seed) {
        (Some(_), Some(_)) => Err(key_error(
            format!("{key}.seed"),
            "give either script or seed, not both",
        )),
        (None, None) => Err(key_error(
            key,
            "a sim sensor needs a script (scripted steps) or a seed (random)",
        )),
        (Some(script), None) => {
            for extra in ["gap", "stay", "max_party", "counts"] {
                if s.present_keys().contains(&extra) {
                    return Err(key_error(
                        format!("{key}.{extra}"),
                        "only used by a random sim sensor (with seed)",
                    ));
                }
            }
            script
                .iter()
                .enumerate()
                .map(|(j, step)| sim_step(&format!("{key}.script[{j}]"), step))
                .collect::<Result<Vec<_>, _>>()
                .map(SimSpec::Scripted)
        }
        (None, Some(seed)) => {
            let mut config = RandomConfig::default();
            if let Some(gap) = &s.gap {
                (config.gap_min, config.gap_max) = range_pair(&format!("{key}.gap"), gap)?;
            }
            if let Some(stay) = &s.stay {
                (config.stay_min, config.stay_max) = range_pair(&format!("{key}.stay"), stay)?;
            }
            config.max_party = match s.max_party {
                Some(n) => int_in(&format!("{key}.max_party"), n, 1, 100)?,
                None => seats.unwrap_or(4),
            };
            config.counts = s.counts.unwrap_or(true);
            Ok(SimSpec::Random {
                seed: int_in(&format!("{key}.seed"), seed, 0, i64::MAX)?,
                config,
            })
        }
    }
}

fn range_pair(key: &str, pair: &[String]) -> Result<(Duration, Duration), ConfigError> {
    let [lo, hi] = pair else {
        return Err(key_error(
            key,
            "must be [shortest, longest], e.g. [\"1m\", \"10m\"]",
        ));
    };
    let lo = duration_in(key, lo, Duration::from_secs(5), Duration::from_secs(86_400))?;
    let hi = duration_in(key, hi, Duration::from_secs(5), Duration::from_secs(86_400))?;
    if lo > hi {
        return Err(key_error(key, "the shortest is longer than the longest"));
    }
    Ok((lo, hi))
}

/// `[at, present]` or `[at, present, people]`, e.g. `["30s", true, 2]`.
fn sim_step(key: &str, step: &[toml::Value]) -> Result<Step, ConfigError> {
    let bad = || {
        key_error(
            key,
            "must be [at, present] or [at, present, people], e.g. [\"30s\", true, 2]",
        )
    };
    let (at, present, people) = match step {
        [toml::Value::String(at), toml::Value::Boolean(p)] => (at, *p, None),
        [
            toml::Value::String(at),
            toml::Value::Boolean(p),
            toml::Value::Integer(n),
        ] => (at, *p, Some(int_in::<u32>(key, *n, 0, 100)?)),
        _ => return Err(bad()),
    };
    Ok(Step {
        at: parse_duration(key, at)?,
        present,
        people,
    })
}

/// Cross-entry checks: each GPIO pin used once, each I2C address used once
/// per bus (windows of one AMG8833 excepted), ToF chips sharing a bus all
/// behind XSHUT with distinct addresses.
fn check_wiring(sensors: &[SensorConfig]) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    const TABLES: &str = "[[tables]]\nid = 1\nseats = 2\n[[tables]]\nid = 2\n";

    fn parse(sensors: &str) -> Result<Config, ConfigError> {
        Config::from_toml(
            Path::new("test.toml"),
            &format!("{TABLES}{sensors}"),
            std::iter::empty(),
        )
    }

    #[test]
    fn every_kind_with_its_keys() {
        let cfg = parse(
            r#"
[[sensors]]
id = "pir-1"
kind = "gpio"
table = 1
pin = 17
pull = "down"
debounce_ms = 100

[[sensors]]
id = "call-1"
kind = "button"
pin = 27

[[sensors]]
id = "thermal-a"
kind = "amg8833"
table = 1
address = 0x69
frame_rate = 1
delta_c = 2.0
min_blob = 4
window = [0, 0, 4, 8]

[[sensors]]
id = "thermal-b"
kind = "amg8833"
table = 2
address = 0x69
frame_rate = 1
window = [4, 0, 4, 8]

[[sensors]]
id = "tof-1"
kind = "vl53l0x"
table = 1
address = 0x30
xshut_pin = 5
max_mm = 600

[[sensors]]
id = "tof-2"
kind = "vl53l1x"
table = 2
xshut_pin = 6
stale_after = "1m"

[[sensors]]
id = "node-1"
kind = "mqtt"
table = 2

[[sensors]]
id = "sim-1"
kind = "sim"
table = 1
script = [["0s", false], ["30s", true, 2]]

[[sensors]]
id = "sim-2"
kind = "sim"
table = 2
seed = 7
gap = ["1m", "5m"]
"#,
        )
        .expect("valid sensors");
        let s = &cfg.sensors;
        assert_eq!(s.len(), 9);
        match &s[0].kind {
            SensorKind::Gpio(g) => {
                assert_eq!((g.pin, g.pull, g.active_low), (17, Pull::Down, false));
                assert_eq!(g.debounce, Duration::from_millis(100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[0].health.stale_after, None, "edge-driven");
        match &s[1].kind {
            SensorKind::Button(b) => {
                assert_eq!((b.input.pull, b.input.active_low), (Pull::Up, true));
                assert_eq!(b.long_press, Duration::from_millis(1500));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[1].table, None);
        match &s[2].kind {
            SensorKind::Amg8833(a) => {
                assert_eq!((a.bus, a.address, a.frame_rate), (1, 0x69, FrameRate::Fps1));
                assert_eq!(a.interval, Duration::from_secs(1));
                assert_eq!(a.counting.min_blob, 4);
                assert!(a.window.contains(7) && !a.window.contains(32));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[2].health.stale_after, Some(Duration::from_secs(30)));
        match &s[5].kind {
            SensorKind::Tof(t) => {
                assert_eq!((t.chip, t.address, t.max_mm), (TofKind::Vl53l1x, 0x29, 800))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[5].health.stale_after, Some(Duration::from_secs(60)));
        assert!(matches!(s[6].kind, SensorKind::Mqtt));
        match &s[7].kind {
            SensorKind::Sim(SimSpec::Scripted(steps)) => {
                assert_eq!(steps.len(), 2);
                assert_eq!(steps[1].at, Duration::from_secs(30));
                assert_eq!(steps[1].people, Some(2));
            }
            other => panic!("{other:?}"),
        }
        match &s[8].kind {
            SensorKind::Sim(SimSpec::Random { seed, config }) => {
                assert_eq!(*seed, 7);
                assert_eq!(config.gap_min, Duration::from_secs(60));
                assert_eq!(config.max_party, 4, "defaults to the table's seats");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            cfg.summary()
                .contains("sensors: 9 (gpio 1, button 1, amg8833 2")
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\n",
                "sensors[0].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 40\n",
                "sensors[0].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 9\npin = 4\n",
                "sensors[0].table",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\npin = 4\n",
                "sensors[0].table",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"laser\"\ntable = 1\n",
                "sensors[0].kind",
            ),
            (
                "[[sensors]]\nid = \"a b\"\nkind = \"mqtt\"\ntable = 1\n",
                "sensors[0].id",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\ndelta_c = 2.0\n",
                "sensors[0].delta_c",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\npull = \"sideways\"\n",
                "sensors[0].pull",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\nstale_after = \"1m\"\n",
                "sensors[0].stale_after",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\nspeed = 1\n",
                "sensors[0].speed",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\naddress = 0x29\n",
                "sensors[0].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\nwindow = [6, 0, 4, 4]\n",
                "sensors[0].window",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\nframe_rate = 5\n",
                "sensors[0].frame_rate",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\naddress = 0x30\n",
                "sensors[0].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l1x\"\ntable = 1\nmax_mm = 9000\n",
                "sensors[0].max_mm",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\n",
                "sensors[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nscript = [[\"x\", true]]\n",
                "sensors[0].script[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nscript = [[true, \"1s\"]]\n",
                "sensors[0].script[0]",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"sim\"\ntable = 1\nseed = 1\ngap = [\"5m\", \"1m\"]\n",
                "sensors[0].gap",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 1\nfault_after = 2\n",
                "sensors[0].fault_after",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 1\n[[sensors]]\nid = \"a\"\nkind = \"mqtt\"\ntable = 2\n",
                "sensors[1].id",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"gpio\"\ntable = 1\npin = 4\n[[sensors]]\nid = \"b\"\nkind = \"button\"\npin = 4\n",
                "sensors[1].pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"vl53l1x\"\ntable = 2\n",
                "sensors[1].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"vl53l0x\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"vl53l1x\"\ntable = 2\naddress = 0x30\nxshut_pin = 5\n",
                "sensors[0].xshut_pin",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"amg8833\"\ntable = 2\n",
                "sensors[1].address",
            ),
            (
                "[[sensors]]\nid = \"a\"\nkind = \"amg8833\"\ntable = 1\n[[sensors]]\nid = \"b\"\nkind = \"gpio\"\ntable = 2\npin = 3\n",
                "sensors[1].pin",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{key}:")),
                "{text}\n→ {message}\n(expected the key {key})"
            );
        }
    }
}
