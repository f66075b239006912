//! What a sensor is, once its `[[sensors]]` entry is checked: the runtime
//! description the drivers, the engine and `mesero sensors` work from.
//!
//! `config` builds these (and owns every rule about what a valid entry is);
//! nothing here reads the file, so the drivers do not depend on `config`.

use crate::domain::TableId;
use crate::sensors::TofKind;
use crate::sensors::amg8833::{CountingConfig, FrameRate};
use crate::sensors::health::HealthConfig;
use crate::sensors::sim::{RandomConfig, Step};
use std::time::Duration;

/// First wait after a failed retry of a faulted sensor; doubles up to
/// [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// A checked sensor.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    pub id: String,
    /// The table it reports on; `None` only for buttons raising general
    /// alerts.
    pub table: Option<TableId>,
    pub kind: SensorKind,
    pub health: HealthConfig,
}

#[derive(Debug, Clone)]
pub enum SensorKind {
    /// A presence contact (PIR, pressure pad, IR beam, LD2410 OUT).
    Gpio(GpioInput),
    /// A call button: press → call, long press → bill.
    Button(ButtonInput),
    Amg8833(Amg8833Sensor),
    /// A VL53L0X or VL53L1X time-of-flight ranger.
    Tof(TofSensor),
    /// Readings arrive from outside (the MQTT broker) through
    /// [`crate::engine::SensorInput`].
    Mqtt,
    Sim(SimSpec),
}

impl SensorKind {
    /// The `kind` value as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            SensorKind::Gpio(_) => "gpio",
            SensorKind::Button(_) => "button",
            SensorKind::Amg8833(_) => "amg8833",
            SensorKind::Tof(t) => match t.chip {
                TofKind::Vl53l0x => "vl53l0x",
                TofKind::Vl53l1x => "vl53l1x",
            },
            SensorKind::Mqtt => "mqtt",
            SensorKind::Sim(_) => "sim",
        }
    }

    /// The table whose occupancy this sensor feeds: a call button's table
    /// is where its alerts come from, not a presence input.
    pub fn occupancy_table(&self, table: Option<TableId>) -> Option<TableId> {
        match self {
            SensorKind::Button(_) => None,
            _ => table,
        }
    }

    /// Whether the sensor needs the Pi's GPIO or I2C.
    pub fn is_hardware(&self) -> bool {
        matches!(
            self,
            SensorKind::Gpio(_)
                | SensorKind::Button(_)
                | SensorKind::Amg8833(_)
                | SensorKind::Tof(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Up,
    Down,
    Off,
}

impl Pull {
    pub fn as_str(self) -> &'static str {
        match self {
            Pull::Up => "up",
            Pull::Down => "down",
            Pull::Off => "off",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GpioInput {
    /// BCM number.
    pub pin: u8,
    pub pull: Pull,
    pub active_low: bool,
    pub debounce: Duration,
}

#[derive(Debug, Clone)]
pub struct ButtonInput {
    pub input: GpioInput,
    pub long_press: Duration,
}

/// Part of the 8×8 pixel array that belongs to one table (row and column
/// of the top-left pixel, then height and width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub row: u8,
    pub col: u8,
    pub rows: u8,
    pub cols: u8,
}

impl Window {
    pub const FULL: Window = Window {
        row: 0,
        col: 0,
        rows: 8,
        cols: 8,
    };

    pub fn contains(&self, pixel: usize) -> bool {
        let (r, c) = (pixel / 8, pixel % 8);
        let (row, col) = (usize::from(self.row), usize::from(self.col));
        r >= row && r < row + usize::from(self.rows) && c >= col && c < col + usize::from(self.cols)
    }
}

#[derive(Debug, Clone)]
pub struct Amg8833Sensor {
    pub bus: u8,
    pub address: u8,
    pub frame_rate: FrameRate,
    /// How often a frame is read.
    pub interval: Duration,
    pub counting: CountingConfig,
    pub window: Window,
}

#[derive(Debug, Clone)]
pub struct TofSensor {
    pub chip: TofKind,
    pub bus: u8,
    /// The address the chip answers at once brought up.
    pub address: u8,
    pub max_mm: u16,
    /// BCM number of the pin wired to XSHUT (needed to share a bus).
    pub xshut_pin: Option<u8>,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub enum SimSpec {
    Scripted(Vec<Step>),
    Random { seed: u64, config: RandomConfig },
}
