//! How good the wait quotes were (`GET /api/v1/analytics/quotes`): every
//! seated party is scored on the daemon's quote (`quote_p50_minutes`, and
//! `quote_p80_minutes` for coverage) and on what the fixed turn-time rule
//! quoted it at the same moment (`baseline_minutes`, kept with the party
//! when it was added), against the wait it actually had
//! (`waited_minutes`, added to seated).
//!
//! - MAE: the mean of |actual − quoted| in minutes.
//! - Under-quote share: parties that waited longer than quoted.
//! - P80 coverage: parties that waited no longer than the P80; the
//!   baseline is one number, so it has none (null).
//!
//! Parties that left without a table have no actual wait and are not
//! scored. A party from before the baseline was kept is scored on its
//! `quote_p50_minutes` for both (the daemon quoted with the fixed rule
//! then). Days are local (`site.timezone`) dates of `added_at`.

use crate::domain::{Party, PartyStatus};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

/// The accuracy of one way of quoting over a set of parties.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    pub mae_minutes: Option<f64>,
    pub under_quote_share: Option<f64>,
    pub p80_coverage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    pub parties: usize,
    pub model_mae_minutes: Option<f64>,
    pub baseline_mae_minutes: Option<f64>,
}

/// The answer of `GET /api/v1/analytics/quotes` (CONTRACT12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuoteScore {
    pub from: String,
    pub to: String,
    pub parties: usize,
    pub model: Accuracy,
    pub baseline: Accuracy,
    pub by_day: Vec<Day>,
}

/// One scored party: actual wait, the daemon's P50 and P80, the baseline.
#[derive(Debug, Clone, Copy)]
struct Sample {
    waited: u32,
    p50: u32,
    p80: u32,
    baseline: u32,
}

fn share(n: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

fn mae(samples: &[Sample], quoted: impl Fn(&Sample) -> u32) -> Option<f64> {
    let total: u64 = samples
        .iter()
        .map(|s| u64::from(s.waited.abs_diff(quoted(s))))
        .sum();
    share(usize::try_from(total).unwrap_or(usize::MAX), samples.len())
}

fn accuracy(samples: &[Sample], baseline: bool) -> Accuracy {
    let quoted = |s: &Sample| if baseline { s.baseline } else { s.p50 };
    let n = samples.len();
    Accuracy {
        mae_minutes: mae(samples, quoted),
        under_quote_share: share(samples.iter().filter(|s| s.waited > quoted(s)).count(), n),
        p80_coverage: if baseline {
            None
        } else {
            share(samples.iter().filter(|s| s.waited <= s.p80).count(), n)
        },
    }
}

/// Scores the seated parties of `parties` added on the local days
/// `from..=to`.
pub fn score(parties: &[Party], zone: &TimeZone, from: Date, to: Date) -> QuoteScore {
    let mut days: Vec<(Date, Vec<Sample>)> = Vec::new();
    for p in parties {
        if p.status != PartyStatus::Seated {
            continue;
        }
        let (Some(waited), Some(added)) = (p.waited_minutes, crate::clock::parse(&p.added_at))
        else {
            continue;
        };
        let date = crate::localtime::date_of(added, zone);
        if date < from || date > to {
            continue;
        }
        let sample = Sample {
            waited,
            p50: p.quote_p50_minutes,
            p80: p.quote_p80_minutes,
            baseline: p.baseline_minutes.unwrap_or(p.quote_p50_minutes),
        };
        match days.iter_mut().find(|(d, _)| *d == date) {
            Some((_, samples)) => samples.push(sample),
            None => days.push((date, vec![sample])),
        }
    }
    days.sort_by_key(|(d, _)| *d);
    let all: Vec<Sample> = days.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    QuoteScore {
        from: from.to_string(),
        to: to.to_string(),
        parties: all.len(),
        model: accuracy(&all, false),
        baseline: accuracy(&all, true),
        by_day: days
            .iter()
            .map(|(date, samples)| Day {
                date: date.to_string(),
                parties: samples.len(),
                model_mae_minutes: mae(samples, |s| s.p50),
                baseline_mae_minutes: mae(samples, |s| s.baseline),
            })
            .collect(),
    }
}
