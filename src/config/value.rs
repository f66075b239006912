//! How one scalar value is read and bounded: durations, integers in a
//! range, socket addresses. Every section goes through these, so a rule
//! (e.g. the longest duration any key accepts) has one home, and every
//! error names the key.

use super::error::{ConfigError, key_error};
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest value any duration key accepts (7 days). Every configured
/// duration ends up added to an `Instant` somewhere (a deadline, a timer),
/// so the one parser all duration keys go through bounds them: a value such
/// as `500000000000y` is an error naming the key, not an overflow panic in
/// `run`. Keys with a tighter meaning set a lower bound with
/// [`duration_in`].
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// Parses a duration such as `"10s"`, `"3m"`, `"1h"` for `key`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        key_error(
            key,
            format!("invalid duration {value:?} ({e}); use e.g. \"10s\", \"3m\", \"1h\""),
        )
    })?;
    within(key, value, d, Duration::ZERO, MAX_DURATION)
}

/// Parses `value` for `key` and checks it lies in `min..=max` (`max` is
/// itself capped by [`MAX_DURATION`]).
pub(super) fn duration_in(
    key: &str,
    value: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value)?;
    within(key, value, d, min, max)
}

/// Checks that `d` (parsed from `value`) lies in `min..=max`.
pub(super) fn within(
    key: &str,
    value: &str,
    d: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if d < min {
        return Err(key_error(
            key,
            format!("{value:?} is too short: must be at least {}", show(min)),
        ));
    }
    if d > max {
        return Err(key_error(
            key,
            format!("{value:?} is too long: must be at most {}", show(max)),
        ));
    }
    Ok(d)
}

/// A duration for which zero means nothing (a period, a timeout):
/// greater than zero and at most [`MAX_DURATION`].
pub(super) fn positive_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value)?;
    if d.is_zero() {
        return Err(key_error(key, "must be greater than zero"));
    }
    Ok(d)
}

/// Checks that the integer `value` of `key` lies in `min..=max` and
/// converts it to the type the runtime config keeps.
pub(super) fn int_in<V, T>(key: &str, value: V, min: V, max: V) -> Result<T, ConfigError>
where
    V: PartialOrd + Display + Copy,
    T: TryFrom<V>,
{
    if value < min || value > max {
        return Err(key_error(
            key,
            format!("{value} is out of range ({min}..={max})"),
        ));
    }
    T::try_from(value).map_err(|_| key_error(key, "out of range"))
}

pub(super) fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|e| key_error(key, format!("invalid address {value:?}: {e}")))
}
