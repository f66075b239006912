//! Hourly analytics rollups for the group's HQ (`bridge.analytics`).
//!
//! On every hour of the daemon's wall clock the hour just ended is summed
//! up ([`HourlyRollup`]) and recorded as an `analytics.hourly` event. Being
//! an event is what makes it store-and-forward: the bridge sends it like
//! any other, in seq order, at least once, from the log across outages
//! and restarts, and HQ deduplicates it by `site` and `seq`.
//!
//! Hours the daemon was not running for are caught up when it starts
//! again, at most [`MAX_CATCH_UP`] of them, oldest first; an hour is
//! recorded once (the newest recorded `hour` is read back from the log).
//! The first start with rollups on begins with the hour under way.

use crate::clock::{self, Wall};
use crate::domain::{Actor, EventData, HourlyRollup, Visit};
use crate::store::{Change, HourRows, Store};
use crate::systemd::Heartbeat;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const HOUR: Duration = Duration::from_secs(3600);

/// Most missed hours recorded after a restart (a day: what HQ's daily
/// views need; older hours stay in the site's own analytics).
pub const MAX_CATCH_UP: u64 = 24;

/// The start of the hour `t` is in (UTC hours: the same instants for every
/// site, whatever its zone).
fn hour_of(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs - secs % 3600)
}

/// The rollup of `[start, start + 1 h)` from what the store read.
pub fn sum_up(start: SystemTime, rows: &HourRows) -> HourlyRollup {
    let end = start + HOUR;
    let (start_s, end_s) = (clock::format(start), clock::format(end));
    let in_hour = |t: &str| *t >= *start_s && *t < *end_s;
    let seated: Vec<&Visit> = rows
        .visits
        .iter()
        .filter(|v| in_hour(&v.seated_at))
        .collect();
    let turns: Vec<f64> = rows
        .visits
        .iter()
        .filter(|v| v.left_at.as_deref().is_some_and(in_hour))
        .filter_map(crate::visits::analytics::turn_minutes)
        .collect();
    let occupied_minutes: f64 = rows
        .visits
        .iter()
        .map(|v| {
            let from = clock::parse(&v.seated_at).unwrap_or(end).max(start);
            let to = v
                .left_at
                .as_deref()
                .and_then(clock::parse)
                .unwrap_or(end)
                .min(end);
            let minutes = to.duration_since(from).unwrap_or_default().as_secs_f64() / 60.0;
            minutes * v.tables.len() as f64
        })
        .sum();
    let count = |kind: &str| {
        rows.counts
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let utilization = if rows.tables == 0 {
        0.0
    } else {
        (occupied_minutes / (rows.tables as f64 * 60.0)).min(1.0)
    };
    HourlyRollup {
        hour: start_s,
        tables: rows.tables,
        seated: seated.len(),
        covers: seated
            .iter()
            .filter_map(|v| v.party_size)
            .map(u64::from)
            .sum(),
        ended: turns.len(),
        median_turn_minutes: crate::visits::analytics::quantile(&turns, 0.5),
        // Two decimals: a share, not a measurement to the microsecond.
        utilization: (utilization * 100.0).round() / 100.0,
        no_shows: count("reservation.no_show"),
        waitlist_seated: count("waitlist.seated"),
        walk_aways: count("waitlist.left"),
        alerts_raised: count("alert.raised"),
        alerts_acked: count("alert.acked"),
    }
}

/// Records the rollup of every hour that ends until `shutdown`.
pub async fn run(store: Store, mut heartbeat: Heartbeat, shutdown: CancellationToken) {
    let wall = store.wall().clone();
    let mut next = match store.last_rollup_hour().await {
        Ok(Some(last)) => {
            let after = clock::parse(&last).map_or_else(|| hour_of(wall.now()), |t| t + HOUR);
            let oldest = hour_of(wall.now())
                .checked_sub(HOUR * u32::try_from(MAX_CATCH_UP).unwrap_or(u32::MAX))
                .unwrap_or(after);
            after.max(oldest)
        }
        Ok(None) => hour_of(wall.now()),
        Err(e) => {
            tracing::error!(error = %e, "analytics rollups: cannot read the last one; off");
            return;
        }
    };
    loop {
        // `next` is recorded once it has ended.
        let due = next + HOUR;
        if !sleep_until(&wall, due, &mut heartbeat, &shutdown).await {
            return;
        }
        match record(&store, next).await {
            Ok(()) => next = due,
            Err(e) => {
                // Tried again on the next beat; an hour is never skipped.
                tracing::warn!(error = %e, hour = %clock::format(next), "analytics rollup not recorded");
                if !sleep_until(&wall, wall.now() + HOUR / 60, &mut heartbeat, &shutdown).await {
                    return;
                }
            }
        }
    }
}

async fn record(store: &Store, start: SystemTime) -> Result<(), crate::store::StoreError> {
    let rows = store.hour(start, start + HOUR).await?;
    let data = EventData::AnalyticsHourly {
        rollup: sum_up(start, &rows),
    };
    store
        .apply(Change::Record { table: None, data }, Actor::System)
        .await?;
    Ok(())
}

/// Waits for the wall clock to reach `deadline`, checking in with the
/// watchdog; false when stopped meanwhile.
async fn sleep_until(
    wall: &Wall,
    deadline: SystemTime,
    heartbeat: &mut Heartbeat,
    shutdown: &CancellationToken,
) -> bool {
    let sleep = wall.sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = &mut sleep => return true,
            _ = heartbeat.tick() => heartbeat.beat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PartySizeSource, VisitOrigin};

    fn at(s: &str) -> SystemTime {
        clock::parse(s).expect("time")
    }

    fn visit(tables: Vec<i64>, party: u32, seated: &str, left: Option<&str>) -> Visit {
        Visit {
            id: 0,
            tables,
            party_size: Some(party),
            party_size_source: Some(PartySizeSource::Staff),
            seated_at: seated.into(),
            left_at: left.map(Into::into),
            origin: VisitOrigin::Staff,
        }
    }

    #[test]
    fn hours_start_on_the_utc_hour() {
        assert_eq!(
            hour_of(at("2026-12-02T19:59:59.999Z")),
            at("2026-12-02T19:00:00.000Z")
        );
        assert_eq!(
            hour_of(at("2026-12-02T20:00:00.000Z")),
            at("2026-12-02T20:00:00.000Z")
        );
    }

    #[test]
    fn an_hour_sums_its_visits_overlaps_and_events() {
        let rows = HourRows {
            tables: 4,
            visits: vec![
                // Seated before the hour, left inside it: 30 min in it.
                visit(
                    vec![1],
                    2,
                    "2026-12-02T18:40:00.000Z",
                    Some("2026-12-02T19:30:00.000Z"),
                ),
                // A combination seated inside, still there: 2 × 45 min.
                visit(vec![2, 3], 6, "2026-12-02T19:15:00.000Z", None),
                // Seated and gone inside the hour: 20 min.
                visit(
                    vec![4],
                    3,
                    "2026-12-02T19:35:00.000Z",
                    Some("2026-12-02T19:55:00.000Z"),
                ),
            ],
            counts: vec![
                ("alert.raised".into(), 3),
                ("alert.acked".into(), 2),
                ("waitlist.seated".into(), 1),
                ("table.state".into(), 9),
            ],
        };
        let r = sum_up(at("2026-12-02T19:00:00.000Z"), &rows);
        assert_eq!(r.hour, "2026-12-02T19:00:00.000Z");
        assert_eq!((r.tables, r.seated, r.covers, r.ended), (4, 2, 9, 2));
        // Turns of the two that ended: 50 and 20 min.
        assert_eq!(r.median_turn_minutes, Some(35.0));
        // (30 + 90 + 20) / (4 × 60) = 0.583…
        assert_eq!(r.utilization, 0.58);
        assert_eq!((r.alerts_raised, r.alerts_acked), (3, 2));
        assert_eq!((r.waitlist_seated, r.walk_aways, r.no_shows), (1, 0, 0));
    }

    #[test]
    fn an_empty_floor_plan_is_not_a_division_by_zero() {
        let rows = HourRows {
            tables: 0,
            visits: Vec::new(),
            counts: Vec::new(),
        };
        let r = sum_up(at("2026-12-02T03:00:00.000Z"), &rows);
        assert_eq!((r.utilization, r.median_turn_minutes), (0.0, None));
    }
}
