//! The fitted turn-time model: one blended Kaplan–Meier curve per group
//! (party-size bucket × day part × weekday/weekend), and what is read off
//! it for a table seated at a given time.
//!
//! Shrinkage: each group's curve is a mixture of its own KM curve, its
//! party bucket's (all day parts and days) and the global one (every
//! visit). The group keeps weight n/(n + [`SHRINK_VISITS`]) for its own n
//! visits and hands the rest to its bucket, which splits the same way with
//! the global curve. A group with 200 visits is almost its own curve; one
//! with 5 is mostly its bucket's; a bucket without visits is the global
//! curve. Visits without a party size count only in the global curve.

use super::km::{Curve, Observation};
use crate::domain::Visit;
use jiff::tz::TimeZone;
use std::time::{Duration, SystemTime};

/// The prior strength of shrinkage, in visits: a group with this many
/// visits is half its own curve, half its broader group's.
pub const SHRINK_VISITS: f64 = 20.0;
/// Fewer ended visits than this in the whole history: no predictions
/// (null), and quotes use the fixed turn time.
pub const MIN_VISITS: usize = 30;
/// A visit longer than this (ended or still open) is not a seating but a
/// table nobody cleared; it is left out of the model.
pub const MAX_TURN: Duration = Duration::from_secs(6 * 3600);
/// A table seated longer than anything in its history is expected to free
/// within this (the median) ...
pub const OVERDUE_P50: Duration = Duration::from_secs(5 * 60);
/// ... and within this (the 80th percentile).
pub const OVERDUE_P80: Duration = Duration::from_secs(10 * 60);

/// Party-size buckets: 1–2, 3–4, 5–6, 7 and more.
const BUCKETS: [&str; 4] = ["party 1-2", "party 3-4", "party 5-6", "party 7+"];

fn bucket(size: u32) -> usize {
    match size {
        0..=2 => 0,
        3..=4 => 1,
        5..=6 => 2,
        _ => 3,
    }
}

/// A part of the day, by the local time (`site.timezone`) a party sat
/// down: lunch from 11:00 to 16:00, dinner from 17:00 to midnight, other
/// the rest (breakfast, the afternoon gap, after midnight). Fixed, not
/// configured: they only group visits, and a learned curve per group
/// absorbs a restaurant's own habits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayPart {
    Lunch,
    Dinner,
    Other,
}

const DAY_PARTS: [DayPart; 3] = [DayPart::Lunch, DayPart::Dinner, DayPart::Other];

impl DayPart {
    /// The day part of a local hour and minute.
    pub fn of(hour: i8, minute: i8) -> DayPart {
        let m = i32::from(hour) * 60 + i32::from(minute);
        if (11 * 60..16 * 60).contains(&m) {
            DayPart::Lunch
        } else if m >= 17 * 60 {
            DayPart::Dinner
        } else {
            DayPart::Other
        }
    }

    fn index(self) -> usize {
        match self {
            DayPart::Lunch => 0,
            DayPart::Dinner => 1,
            DayPart::Other => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DayPart::Lunch => "lunch",
            DayPart::Dinner => "dinner",
            DayPart::Other => "other",
        }
    }
}

/// Where a seating falls: its day part and whether it is a weekend
/// (Saturday or Sunday, local).
fn when(t: SystemTime, zone: &TimeZone) -> (DayPart, bool) {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned_datetime(zone.clone());
    let weekend = matches!(
        z.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    );
    (DayPart::of(z.hour(), z.minute()), weekend)
}

fn leaf(bucket: usize, part: DayPart, weekend: bool) -> usize {
    (bucket * DAY_PARTS.len() + part.index()) * 2 + usize::from(weekend)
}

const LEAVES: usize = BUCKETS.len() * DAY_PARTS.len() * 2;

#[derive(Debug, Clone)]
struct Leaf {
    curve: Curve,
    /// The most specific group with visits: what `predicted_from` and
    /// `group` describe.
    from: usize,
    label: String,
}

/// What the model says of one seated party.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// When it is expected to leave: the median ...
    pub p50: SystemTime,
    /// ... and the 80th percentile.
    pub p80: SystemTime,
    /// Visits in `group`.
    pub from: usize,
    /// The group, e.g. `party 3-4 / dinner / weekend`.
    pub group: String,
}

/// A fitted model; immutable, shared behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    zone: TimeZone,
    leaves: Vec<Leaf>,
    /// Visits the model was fitted on (ended and censored).
    visits: usize,
}

impl Model {
    /// Fits on `visits` as of `now`: ended visits are turn times, those
    /// still open are censored at `now`. `None` with fewer than
    /// [`MIN_VISITS`] ended visits.
    pub fn fit(visits: &[Visit], zone: &TimeZone, now: SystemTime) -> Option<Model> {
        let mut leaves: Vec<Vec<Observation>> = vec![Vec::new(); LEAVES];
        let mut buckets: Vec<Vec<Observation>> = vec![Vec::new(); BUCKETS.len()];
        let mut global = Vec::new();
        for v in visits {
            let Some(seated) = crate::clock::parse(&v.seated_at) else {
                continue;
            };
            let (end, ended) = match v.left_at.as_deref().map(crate::clock::parse) {
                Some(Some(left)) => (left, true),
                Some(None) => continue,
                None => (now, false),
            };
            let Ok(turn) = end.duration_since(seated) else {
                continue;
            };
            if turn > MAX_TURN {
                continue;
            }
            let o = Observation {
                secs: u32::try_from(turn.as_secs()).unwrap_or(u32::MAX),
                ended,
            };
            global.push(o);
            if let Some(size) = v.party_size {
                let (part, weekend) = when(seated, zone);
                let b = bucket(size);
                buckets[b].push(o);
                leaves[leaf(b, part, weekend)].push(o);
            }
        }
        if global.iter().filter(|o| o.ended).count() < MIN_VISITS {
            return None;
        }
        let global_curve = Curve::fit(&global);
        let weight = |n: usize| n as f64 / (n as f64 + SHRINK_VISITS);
        let bucket_curves: Vec<Curve> = buckets
            .iter()
            .map(|obs| {
                let w = weight(obs.len());
                Curve::blend(&[(w, &Curve::fit(obs)), (1.0 - w, &global_curve)])
            })
            .collect();
        let mut fitted = Vec::with_capacity(LEAVES);
        for (b, name) in BUCKETS.iter().enumerate() {
            for part in DAY_PARTS {
                for weekend in [false, true] {
                    let obs = &leaves[leaf(b, part, weekend)];
                    let w = weight(obs.len());
                    let curve =
                        Curve::blend(&[(w, &Curve::fit(obs)), (1.0 - w, &bucket_curves[b])]);
                    let days = if weekend { "weekend" } else { "weekday" };
                    let (from, label) = if !obs.is_empty() {
                        (obs.len(), format!("{name} / {} / {days}", part.as_str()))
                    } else if !buckets[b].is_empty() {
                        (buckets[b].len(), (*name).to_string())
                    } else {
                        (global.len(), "all parties".to_string())
                    };
                    fitted.push(Leaf { curve, from, label });
                }
            }
        }
        Some(Model {
            zone: zone.clone(),
            leaves: fitted,
            visits: global.len(),
        })
    }

    /// Visits the model was fitted on.
    pub fn visits(&self) -> usize {
        self.visits
    }

    fn leaf_of(&self, size: u32, seated: SystemTime) -> &Leaf {
        let (part, weekend) = when(seated, &self.zone);
        &self.leaves[leaf(bucket(size), part, weekend)]
    }

    /// When a party of `size` seated at `seated` is expected to leave, as
    /// seen at `at` (conditional on it still being there).
    pub fn forecast(&self, size: u32, seated: SystemTime, at: SystemTime) -> Forecast {
        let leaf = self.leaf_of(size, seated);
        let elapsed = at.duration_since(seated).unwrap_or_default();
        let e = u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX);
        let end = |left: f64, overdue: Duration| match leaf.curve.quantile_after(e, left) {
            Some(t) => seated + Duration::from_secs(u64::from(t)),
            None => at + overdue,
        };
        Forecast {
            p50: end(0.5, OVERDUE_P50),
            p80: end(0.2, OVERDUE_P80),
            from: leaf.from,
            group: leaf.label.clone(),
        }
    }

    /// A random remaining time for a party of `size` seated at `seated`,
    /// still there at `at`: `u` in (0, 1) is read as S(t)/S(e) (inverse
    /// transform sampling), for the waitlist's queue simulation.
    pub fn sample_remaining(
        &self,
        size: u32,
        seated: SystemTime,
        at: SystemTime,
        u: f64,
    ) -> Duration {
        let leaf = self.leaf_of(size, seated);
        let elapsed = at.duration_since(seated).unwrap_or_default();
        let e = u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX);
        match leaf.curve.quantile_after(e, u) {
            Some(t) => Duration::from_secs(u64::from(t)).saturating_sub(elapsed),
            None => {
                let longest = Duration::from_secs(u64::from(leaf.curve.longest()));
                longest.saturating_sub(elapsed).max(OVERDUE_P50)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::VisitOrigin;

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn at(s: &str) -> SystemTime {
        crate::clock::parse(s).expect("time")
    }

    fn visit(size: Option<u32>, seated: SystemTime, minutes: Option<u64>) -> Visit {
        Visit {
            id: 0,
            tables: vec![1],
            party_size: size,
            party_size_source: None,
            seated_at: crate::clock::format(seated),
            left_at: minutes.map(|m| crate::clock::format(seated + Duration::from_secs(m * 60))),
            origin: VisitOrigin::Import,
        }
    }

    /// Tuesday 2026-12-01, 20:00 UTC: a weekday dinner.
    fn dinner() -> SystemTime {
        at("2026-12-01T20:00:00Z")
    }

    #[test]
    fn day_parts_have_fixed_local_boundaries() {
        assert_eq!(DayPart::of(10, 59), DayPart::Other);
        assert_eq!(DayPart::of(11, 0), DayPart::Lunch);
        assert_eq!(DayPart::of(16, 30), DayPart::Other);
        assert_eq!(DayPart::of(17, 0), DayPart::Dinner);
        assert_eq!(DayPart::of(23, 59), DayPart::Dinner);
        assert_eq!(DayPart::of(0, 30), DayPart::Other);
        let madrid = crate::localtime::zone("Europe/Madrid").expect("zone");
        // 10:30 UTC is 11:30 in Madrid in winter; 2026-12-05 is a Saturday.
        assert_eq!(
            when(at("2026-12-05T10:30:00Z"), &madrid),
            (DayPart::Lunch, true)
        );
        assert_eq!(
            when(at("2026-12-05T10:30:00Z"), &utc()),
            (DayPart::Other, true)
        );
    }

    #[test]
    fn too_little_history_fits_nothing() {
        let few: Vec<Visit> = (0..MIN_VISITS - 1)
            .map(|_| visit(Some(2), dinner(), Some(50)))
            .collect();
        assert!(Model::fit(&few, &utc(), dinner()).is_none());
    }

    #[test]
    fn a_sparse_group_shrinks_toward_its_bucket_and_the_global_curve() {
        // 100 weekday-dinner twos of 40 min, and 5 weekday-lunch twos of
        // 100 min: lunch has 5/(5+20) of its own curve.
        let lunch = at("2026-12-01T12:00:00Z");
        let mut visits: Vec<Visit> = (0..100)
            .map(|_| visit(Some(2), dinner(), Some(40)))
            .collect();
        visits.extend((0..5).map(|_| visit(Some(2), lunch, Some(100))));
        let model = Model::fit(&visits, &utc(), dinner()).expect("fits");
        let minutes = |f: &Forecast, seated: SystemTime| {
            f.p50.duration_since(seated).expect("after").as_secs() / 60
        };
        let d = model.forecast(2, dinner(), dinner());
        assert_eq!(minutes(&d, dinner()), 40);
        assert_eq!(
            (d.from, d.group.as_str()),
            (100, "party 1-2 / dinner / weekday")
        );
        let l = model.forecast(2, lunch, lunch);
        // 20 % lunch's own 100 min; the median is the bucket's 40 min.
        assert_eq!(minutes(&l, lunch), 40);
        assert_eq!(
            minutes(
                &Forecast {
                    p50: l.p80,
                    ..l.clone()
                },
                lunch
            ),
            100
        );
        assert_eq!(l.from, 5);
        // No fours at all: the bucket is the global curve.
        let four = model.forecast(4, dinner(), dinner());
        assert_eq!(minutes(&four, dinner()), 40);
        assert_eq!((four.from, four.group.as_str()), (105, "all parties"));
        // A weekend dinner two has no group of its own: its bucket's.
        let saturday = at("2026-12-05T20:00:00Z");
        let w = model.forecast(2, saturday, saturday);
        assert_eq!((w.from, w.group.as_str()), (105, "party 1-2"));
    }

    #[test]
    fn open_visits_are_censored_and_long_ones_left_out() {
        let mut visits: Vec<Visit> = (0..40)
            .map(|_| visit(Some(4), dinner(), Some(60)))
            .collect();
        visits.push(visit(Some(4), dinner(), Some(7 * 60)));
        visits.push(visit(Some(4), dinner(), None));
        let now = dinner() + Duration::from_secs(30 * 60);
        let model = Model::fit(&visits, &utc(), now).expect("fits");
        assert_eq!(model.visits(), 41);
        // A table seated 70 min, past everyone: any minute now.
        let late = dinner() + Duration::from_secs(70 * 60);
        let f = model.forecast(4, dinner(), late);
        assert_eq!(f.p50, late + OVERDUE_P50);
        assert_eq!(f.p80, late + OVERDUE_P80);
        assert_eq!(
            model.sample_remaining(4, dinner(), dinner(), 0.5),
            Duration::from_secs(3600)
        );
    }

    /// How fast a forecast is (not a check: run it with
    /// `cargo test --release --lib turns::model::tests::timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn timing() {
        let mut visits = Vec::new();
        for day in 0..90u64 {
            for i in 0..60u64 {
                let seated = dinner() + Duration::from_secs(day * 86_400 + i * 97);
                visits.push(visit(
                    Some(1 + (i % 8) as u32),
                    seated,
                    Some(30 + (i * 7) % 90),
                ));
            }
        }
        let started = std::time::Instant::now();
        let model = Model::fit(&visits, &utc(), dinner()).expect("fits");
        let fit = started.elapsed();
        let started = std::time::Instant::now();
        let n = 100_000u64;
        let mut sum = 0u64;
        for i in 0..n {
            let seated = dinner() + Duration::from_secs(i % 7200);
            let f = model.forecast(
                1 + (i % 8) as u32,
                seated,
                seated + Duration::from_secs(i % 5400),
            );
            sum += f.from as u64;
        }
        let each = started.elapsed() / u32::try_from(n).unwrap_or(1);
        eprintln!(
            "fit of {} visits: {fit:?}; one forecast: {each:?} ({sum})",
            visits.len()
        );
    }
}
