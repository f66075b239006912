//! Implicit detector sensors: a detector (a camera counting people) that
//! publishes batches on one of `mqtt.detection_topics` works without a
//! `[[sensors]]` entry per table.
//!
//! A batch entry for a table with declared `mqtt` sensors goes to them
//! (the installer chose). For a table without any, the entry is a reading
//! of the implicit sensor `detector:<client id>:<table>`: created on its
//! first reading, with the health rules of an `mqtt` sensor declared
//! without keys (faulted after `stale_after` = 5 min of silence, so a
//! dead detector makes its tables `unknown` instead of frozen), shown in
//! `/api/v1/stats` like any sensor. Two detectors watching one table are
//! two sensors, OR-ed like any others. Entries for tables that do not
//! exist are refused (the caller counts them as bad input).
//!
//! Bound: at most [`MAX_IMPLICIT_SENSORS`] ids are ever created (they are
//! kept until the daemon restarts, as sensors are), so a client that sends
//! batches under ever new client ids, or for every table, cannot grow the
//! engine without limit; beyond it entries are refused with
//! [`InputError::TooManyImplicit`]. A detector should therefore keep one
//! client id across reconnects (paho: `client_id=`, mosquitto_pub: `-i`).

use super::InputError;
use crate::domain::TableId;
use std::collections::HashSet;
use std::sync::Mutex;

/// Most implicit detector sensors the daemon creates (one per detector
/// client and table): a few detectors over a large floor fit, and each
/// costs a few hundred bytes in the engine and on the stats board.
pub const MAX_IMPLICIT_SENSORS: usize = 512;

/// The id of the implicit sensor for what `client` detects at `table`.
pub fn implicit_id(client: &str, table: TableId) -> String {
    format!("detector:{client}:{table}")
}

/// The implicit sensor ids handed out so far.
#[derive(Default)]
pub(super) struct Implicit {
    /// A std mutex: held for one set lookup or insert, never across an
    /// await.
    ids: Mutex<HashSet<String>>,
}

impl Implicit {
    /// Takes `id` (again, or for the first time if there is room).
    pub(super) fn admit(&self, id: &str) -> Result<(), InputError> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.contains(id) {
            return Ok(());
        }
        if ids.len() >= MAX_IMPLICIT_SENSORS {
            return Err(InputError::TooManyImplicit);
        }
        ids.insert(id.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_ids_are_bounded_but_known_ones_stay_usable() {
        let implicit = Implicit::default();
        for n in 0..MAX_IMPLICIT_SENSORS {
            implicit
                .admit(&implicit_id(&format!("cam-{n}"), 1))
                .expect("room");
        }
        assert_eq!(
            implicit.admit(&implicit_id("cam-new", 1)),
            Err(InputError::TooManyImplicit)
        );
        assert_eq!(implicit.admit(&implicit_id("cam-0", 1)), Ok(()));
        assert_eq!(implicit_id("cam", 7), "detector:cam:7");
    }
}
