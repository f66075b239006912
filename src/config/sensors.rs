//! `[[sensors]]`: each entry as written in the file, and its checked form.
//!
//! An entry is read as a table: `id`, `kind` and `table` are common, and
//! the rest is deserialized into the raw struct of its kind (one per kind,
//! each `deny_unknown_fields`), so a kind takes exactly the keys its struct
//! declares and a key of another kind is an error naming it. [`KINDS`] is
//! the one list of kinds. [`check`] then fills per-kind defaults and checks
//! the wiring as a whole (unique ids, pins and I2C addresses, tables that
//! exist). Every error names the key, e.g. `sensors[2].pin`.
//!
//! Adding a key to a kind touches its raw struct and its builder here, and
//! the runtime struct in [`crate::sensors::spec`].

use super::error::{ConfigError, key_error};
use super::raw::{deserialize, fields_of};
use super::tables::TableSeed;
use super::value::{duration_in, int_in, parse_duration};
use super::wiring;
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
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Longest sensor id: it is part of MQTT topics and event actors.
pub const MAX_SENSOR_ID_LEN: usize = 64;

/// BCM numbers of the GPIOs on the 40-pin header.
pub const MAX_BCM_PIN: u8 = 27;

/// Default `stale_after` of a polled I2C sensor: it reads many times a
/// second, so half a minute of silence means it is stuck.
const POLLED_STALE_AFTER: Duration = Duration::from_secs(30);

/// Default `stale_after` of an MQTT sensor node (nodes report on change
/// and every few minutes at least).
const MQTT_STALE_AFTER: Duration = Duration::from_secs(300);

/// The keys every kind has. Not `deny_unknown_fields`: they are taken out
/// of the entry first, and the rest goes to the kind's struct.
#[derive(Debug, Deserialize)]
struct Common {
    id: String,
    kind: String,
    table: Option<i64>,
}

/// `kind = "gpio"`: a presence contact.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gpio {
    pin: Option<i64>,
    pull: Option<String>,
    active_low: Option<bool>,
    debounce_ms: Option<i64>,
    fault_after: Option<i64>,
}

/// `kind = "button"`: a call button.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Button {
    pin: Option<i64>,
    pull: Option<String>,
    active_low: Option<bool>,
    debounce_ms: Option<i64>,
    long_press: Option<String>,
    fault_after: Option<i64>,
}

/// `kind = "amg8833"`: the 8×8 thermal array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Amg8833 {
    bus: Option<i64>,
    address: Option<i64>,
    interval: Option<String>,
    frame_rate: Option<i64>,
    delta_c: Option<f64>,
    min_blob: Option<i64>,
    window: Option<Vec<i64>>,
    fault_after: Option<i64>,
    stale_after: Option<String>,
}

/// `kind = "vl53l0x"` or `"vl53l1x"`: a time-of-flight ranger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tof {
    bus: Option<i64>,
    address: Option<i64>,
    interval: Option<String>,
    max_mm: Option<i64>,
    xshut_pin: Option<i64>,
    fault_after: Option<i64>,
    stale_after: Option<String>,
}

/// `kind = "mqtt"`: readings published to the broker by a sensor node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mqtt {
    stale_after: Option<String>,
}

/// `kind = "sim"`: the simulator, scripted or random.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sim {
    script: Option<Vec<Vec<toml::Value>>>,
    seed: Option<i64>,
    gap: Option<Vec<String>>,
    stay: Option<Vec<String>>,
    max_party: Option<i64>,
    counts: Option<bool>,
}

/// What the common keys of one entry say, for its kind's builder.
struct Entry<'a> {
    /// `sensors[i]`, the prefix of every key error.
    key: &'a str,
    /// Seats of its table, if it has one.
    seats: Option<u32>,
}

impl Entry<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }
}

/// What a kind's builder makes of an entry.
type Built = (SensorKind, HealthConfig);

/// One sensor kind: how its entries are read.
struct Kind {
    /// The `kind` value.
    name: &'static str,
    /// The keys it takes besides the common ones: its raw struct's fields.
    keys: fn() -> &'static [&'static str],
    /// A call button need not name a table (its alerts may be general).
    needs_table: bool,
    build: fn(&Entry, toml::Table) -> Result<Built, ConfigError>,
}

/// Every kind, in the order the errors list them.
const KINDS: &[Kind] = &[
    Kind {
        name: "gpio",
        keys: fields_of::<Gpio>,
        needs_table: true,
        build: |e, t| gpio(e, deserialize(e.key, t)?),
    },
    Kind {
        name: "button",
        keys: fields_of::<Button>,
        needs_table: false,
        build: |e, t| button(e, deserialize(e.key, t)?),
    },
    Kind {
        name: "amg8833",
        keys: fields_of::<Amg8833>,
        needs_table: true,
        build: |e, t| amg8833(e, deserialize(e.key, t)?),
    },
    Kind {
        name: "vl53l0x",
        keys: fields_of::<Tof>,
        needs_table: true,
        build: |e, t| tof(e, deserialize(e.key, t)?, TofKind::Vl53l0x),
    },
    Kind {
        name: "vl53l1x",
        keys: fields_of::<Tof>,
        needs_table: true,
        build: |e, t| tof(e, deserialize(e.key, t)?, TofKind::Vl53l1x),
    },
    Kind {
        name: "mqtt",
        keys: fields_of::<Mqtt>,
        needs_table: true,
        build: |e, t| mqtt(e, deserialize(e.key, t)?),
    },
    Kind {
        name: "sim",
        keys: fields_of::<Sim>,
        needs_table: true,
        build: |e, t| sim(e, deserialize(e.key, t)?),
    },
];

/// Checks every `[[sensors]]` entry against each other and the tables.
pub(super) fn check(
    raw: Vec<toml::Table>,
    tables: &[TableSeed],
) -> Result<Vec<SensorConfig>, ConfigError> {
    let seats: HashMap<TableId, u32> = tables.iter().map(|t| (t.id, t.seats)).collect();
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let key = format!("sensors[{i}]");
        let sensor = check_one(&key, entry, &seats)?;
        if !ids.insert(sensor.id.clone()) {
            return Err(key_error(
                format!("{key}.id"),
                format!("duplicate sensor id {:?}", sensor.id),
            ));
        }
        out.push(sensor);
    }
    wiring::check(&out)?;
    Ok(out)
}

fn check_one(
    key: &str,
    mut rest: toml::Table,
    seats: &HashMap<TableId, u32>,
) -> Result<SensorConfig, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    let mut common = toml::Table::new();
    for &field in fields_of::<Common>() {
        if let Some(value) = rest.remove(field) {
            common.insert(field.into(), value);
        }
    }
    let common: Common = deserialize(key, common)?;
    if common.id.is_empty()
        || common.id.len() > MAX_SENSOR_ID_LEN
        || !common
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(key_error(
            k("id"),
            format!(
                "{:?} must be 1 to {MAX_SENSOR_ID_LEN} letters, digits, '-' or '_' (it is part of MQTT topics)",
                common.id
            ),
        ));
    }
    let Some(kind) = KINDS.iter().find(|kind| kind.name == common.kind) else {
        let names: Vec<&str> = KINDS.iter().map(|kind| kind.name).collect();
        return Err(key_error(
            k("kind"),
            format!("{:?} is not one of {}", common.kind, names.join(", ")),
        ));
    };
    let allowed = (kind.keys)();
    if let Some(extra) = rest.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(key_error(
            k(extra),
            format!(
                "not a key of kind {:?} (it takes: {})",
                kind.name,
                allowed.join(", ")
            ),
        ));
    }
    let table = match common.table {
        Some(id) if seats.contains_key(&id) => Some(id),
        Some(id) => {
            return Err(key_error(
                k("table"),
                format!("no table with id {id} in [[tables]]"),
            ));
        }
        None if !kind.needs_table => None,
        None => {
            return Err(key_error(
                k("table"),
                format!("a {} sensor must name the table it watches", kind.name),
            ));
        }
    };
    let entry = Entry {
        key,
        seats: table.and_then(|t| seats.get(&t).copied()),
    };
    let (kind, health) = (kind.build)(&entry, rest)?;
    Ok(SensorConfig {
        id: common.id,
        table,
        kind,
        health,
    })
}

/// Health settings from `fault_after` and `stale_after`, for the kinds
/// that take them (`None` otherwise: the defaults apply).
/// `stale_default` is the kind's: edge-driven inputs are silent while
/// nothing happens, and the simulator never fails, so they have none.
fn health(
    e: &Entry,
    fault_after: Option<i64>,
    stale_after: Option<&str>,
    stale_default: Option<Duration>,
) -> Result<HealthConfig, ConfigError> {
    let fault_after = match fault_after {
        Some(n) => int_in(&e.key("fault_after"), n, 1, 1000)?,
        None => HealthConfig::default().fault_after,
    };
    let stale_after = match stale_after {
        Some(v) => Some(duration_in(
            &e.key("stale_after"),
            v,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        )?),
        None => stale_default,
    };
    Ok(HealthConfig {
        fault_after,
        stale_after,
        retry_initial: RETRY_INITIAL,
        retry_max: RETRY_MAX,
    })
}

fn gpio(e: &Entry, raw: Gpio) -> Result<Built, ConfigError> {
    let health = health(e, raw.fault_after, None, None)?;
    let pins = PinKeys {
        pin: raw.pin,
        pull: raw.pull,
        active_low: raw.active_low,
        debounce_ms: raw.debounce_ms,
    };
    let input = gpio_input(e, pins, Pull::Off, false, 50)?;
    Ok((SensorKind::Gpio(input), health))
}

fn button(e: &Entry, raw: Button) -> Result<Built, ConfigError> {
    let health = health(e, raw.fault_after, None, None)?;
    let pins = PinKeys {
        pin: raw.pin,
        pull: raw.pull,
        active_low: raw.active_low,
        debounce_ms: raw.debounce_ms,
    };
    let button = ButtonInput {
        input: gpio_input(e, pins, Pull::Up, true, 30)?,
        long_press: match &raw.long_press {
            Some(v) => duration_in(
                &e.key("long_press"),
                v,
                Duration::from_millis(200),
                Duration::from_secs(30),
            )?,
            None => Duration::from_millis(1500),
        },
    };
    Ok((SensorKind::Button(button), health))
}

/// The health rules of an `mqtt` sensor declared without `stale_after`:
/// also those of the implicit sensors a detector's batches create.
pub fn mqtt_default_health() -> HealthConfig {
    HealthConfig {
        fault_after: HealthConfig::default().fault_after,
        stale_after: Some(MQTT_STALE_AFTER),
        retry_initial: RETRY_INITIAL,
        retry_max: RETRY_MAX,
    }
}

fn mqtt(e: &Entry, raw: Mqtt) -> Result<Built, ConfigError> {
    let health = health(e, None, raw.stale_after.as_deref(), Some(MQTT_STALE_AFTER))?;
    Ok((SensorKind::Mqtt, health))
}

fn pin(key: &str, value: i64) -> Result<u8, ConfigError> {
    int_in(key, value, 0, i64::from(MAX_BCM_PIN)).map_err(|_| {
        key_error(
            key,
            format!("{value} is not a BCM GPIO number of the 40-pin header (0..={MAX_BCM_PIN})"),
        )
    })
}

/// The keys of a GPIO input, shared by `gpio` and `button`.
struct PinKeys {
    pin: Option<i64>,
    pull: Option<String>,
    active_low: Option<bool>,
    debounce_ms: Option<i64>,
}

/// Reads `s`; `pull`, `active_low` and `debounce_ms` are the kind's
/// defaults.
fn gpio_input(
    e: &Entry,
    s: PinKeys,
    pull: Pull,
    active_low: bool,
    debounce_ms: i64,
) -> Result<GpioInput, ConfigError> {
    let key = e.key;
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

fn bus(e: &Entry, bus: Option<i64>) -> Result<u8, ConfigError> {
    int_in(&e.key("bus"), bus.unwrap_or(1), 0, 31)
}

fn interval(e: &Entry, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        Some(v) => duration_in(
            &e.key("interval"),
            v,
            Duration::from_millis(50),
            Duration::from_secs(60),
        ),
        None => Ok(default),
    }
}

fn amg8833(e: &Entry, s: Amg8833) -> Result<Built, ConfigError> {
    let health = health(
        e,
        s.fault_after,
        s.stale_after.as_deref(),
        Some(POLLED_STALE_AFTER),
    )?;
    let key = e.key;
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
    let sensor = Amg8833Sensor {
        bus: bus(e, s.bus)?,
        address,
        frame_rate,
        interval: interval(e, s.interval.as_deref(), default_interval)?,
        counting,
        window,
    };
    Ok((SensorKind::Amg8833(sensor), health))
}

fn tof(e: &Entry, s: Tof, chip: TofKind) -> Result<Built, ConfigError> {
    let health = health(
        e,
        s.fault_after,
        s.stale_after.as_deref(),
        Some(POLLED_STALE_AFTER),
    )?;
    let key = e.key;
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
    let sensor = TofSensor {
        chip,
        bus: bus(e, s.bus)?,
        address,
        max_mm: int_in(
            &format!("{key}.max_mm"),
            s.max_mm.unwrap_or(800),
            30,
            max_range,
        )?,
        xshut_pin,
        interval: interval(e, s.interval.as_deref(), Duration::from_millis(200))?,
    };
    Ok((SensorKind::Tof(sensor), health))
}

fn sim(e: &Entry, s: Sim) -> Result<Built, ConfigError> {
    let health = health(e, None, None, None)?;
    Ok((SensorKind::Sim(sim_spec(e, s)?), health))
}

fn sim_spec(e: &Entry, s: Sim) -> Result<SimSpec, ConfigError> {
    let key = e.key;
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
            let random_only = [
                ("gap", s.gap.is_some()),
                ("stay", s.stay.is_some()),
                ("max_party", s.max_party.is_some()),
                ("counts", s.counts.is_some()),
            ];
            if let Some((extra, _)) = random_only.iter().find(|(_, set)| *set) {
                return Err(key_error(
                    format!("{key}.{extra}"),
                    "only used by a random sim sensor (with seed)",
                ));
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
                None => e.seats.unwrap_or(4),
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
        ] => (at, *p, Some(int_in::<i64, u32>(key, *n, 0, 100)?)),
        _ => return Err(bad()),
    };
    Ok(Step {
        at: parse_duration(key, at)?,
        present,
        people,
    })
}
