//! The learned wait quote: the line is played forward
//! [`SIMULATIONS`] times against the turn-time model, and the new party's
//! wait is read off the runs (median and 80th percentile).
//!
//! One run: every table gets the time it frees — a free one now, one to
//! bus in a few minutes, an occupied one after a remaining time drawn from
//! its conditional survival curve (S(t)/S(e), seated `e` ago), one with no
//! data after a whole turn drawn for its seats. Then, from time 0, the
//! parties in line are seated in the order they were added, each at the
//! first fit ([`super::fits`]: one table, else a combination) whose tables
//! are all free, the way [`super::offers`] hands out tables (a party that
//! fits nothing free keeps its place; one behind it that fits a free table
//! gets it). A seated party holds its tables for a turn drawn for its own
//! size. A table with a booked reservation starting within the fixed turn
//! time (or under way) is not given to a walk-in until the reservation's
//! end. When nobody can sit, time moves to the next table that frees. The
//! run ends when the new party sits: that time is its wait.
//!
//! The draws come from a small seeded generator, so the same line, tables
//! and model always give the same quote.

use super::{BUSSING, Quote};
use crate::domain::{Table, TableId, TableState};
use crate::turns::model::Model;
use std::time::{Duration, SystemTime};

/// Runs per quote: enough for a stable 80th percentile (its standard
/// error is about 3 % of the runs), cheap enough for every party added.
pub const SIMULATIONS: usize = 200;

/// A booked reservation's tables and when it runs.
#[derive(Debug, Clone)]
pub struct Booked {
    pub tables: Vec<TableId>,
    pub at: SystemTime,
    pub end: SystemTime,
}

/// What a quote is made from.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The floor plan as walk-ins see it.
    pub tables: &'a [Table],
    /// The sizes of the parties in line, in the order they were added.
    pub ahead: &'a [u32],
    pub booked: &'a [Booked],
    /// `waitlist.turn_time`: how long before a reservation its table is
    /// kept from walk-ins.
    pub turn: Duration,
    /// `occupancy.bussing`: a freed table needs clearing first.
    pub bussing: bool,
}

/// splitmix64: tiny, fast, well mixed; quality is ample for sampling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// The median and 80th percentile of the wait of a party of `size` that
/// joins the end of `line` at `now`; `None` when no table or combination
/// of the floor plan seats it.
pub fn quote(now: SystemTime, line: &Line<'_>, size: u32, model: &Model) -> Option<Quote> {
    let index = |ids: &[TableId]| -> Vec<usize> {
        ids.iter()
            .filter_map(|id| line.tables.iter().position(|t| t.id == *id))
            .collect()
    };
    let fits_of = |s: u32| -> Vec<Vec<usize>> {
        super::fits(line.tables, s)
            .iter()
            .map(|ids| index(ids))
            .collect()
    };
    let mine = fits_of(size);
    if mine.is_empty() {
        return None;
    }
    // The parties that can ever sit, with their fits; the new one last.
    let mut queue: Vec<(u32, Vec<Vec<usize>>)> = line
        .ahead
        .iter()
        .map(|&s| (s, fits_of(s)))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    queue.push((size, mine));
    let blocks: Vec<(Vec<usize>, Duration, Duration)> = line
        .booked
        .iter()
        .map(|b| {
            let from = b.at.checked_sub(line.turn).unwrap_or(b.at);
            (
                index(&b.tables),
                from.duration_since(now).unwrap_or_default(),
                b.end.duration_since(now).unwrap_or_default(),
            )
        })
        .filter(|(_, _, end)| !end.is_zero())
        .collect();
    let mut rng = Rng(0x6D65_7365_726F);
    let mut waits: Vec<Duration> = (0..SIMULATIONS)
        .filter_map(|_| run(now, line, &queue, &blocks, model, &mut rng))
        .collect();
    if waits.is_empty() {
        return None;
    }
    waits.sort_unstable();
    let p50 = waits[waits.len() / 2];
    let p80 = waits[(waits.len() * 4 / 5).min(waits.len() - 1)];
    // Both to the nearest 5 minutes (what a host says); rounding up
    // would over-quote on purpose and inflate the P80's coverage.
    let p50 = round_nearest_5(p50);
    Some(Quote {
        p50,
        p80: round_nearest_5(p80).max(p50),
    })
}

fn round_nearest_5(d: Duration) -> u32 {
    let minutes = (d.as_secs() + 150) / 300 * 5;
    u32::try_from(minutes)
        .unwrap_or(super::MAX_QUOTED_MINUTES)
        .min(super::MAX_QUOTED_MINUTES)
}

/// One run; the new party's wait, or `None` if it never sits.
fn run(
    now: SystemTime,
    line: &Line<'_>,
    queue: &[(u32, Vec<Vec<usize>>)],
    blocks: &[(Vec<usize>, Duration, Duration)],
    model: &Model,
    rng: &mut Rng,
) -> Option<Duration> {
    let clearing = if line.bussing {
        BUSSING
    } else {
        Duration::ZERO
    };
    let mut free_at: Vec<Duration> = line
        .tables
        .iter()
        .map(|t| match t.state {
            TableState::Free => Duration::ZERO,
            TableState::Dirty => BUSSING,
            TableState::Occupied => {
                let seated = crate::clock::parse(&t.since).unwrap_or(now);
                let size = t.people.unwrap_or(t.seats).max(1);
                model.sample_remaining(size, seated, now, rng.unit()) + clearing
            }
            TableState::Reserved | TableState::Unknown => {
                model.sample_remaining(t.seats.max(1), now, now, rng.unit()) + clearing
            }
        })
        .collect();
    let mut waiting: Vec<bool> = vec![true; queue.len()];
    let last = queue.len() - 1;
    let mut t = Duration::ZERO;
    // Each pass seats someone or moves time to a later free time, so
    // this bound is never reached in practice; it keeps a bug finite.
    for _ in 0..(queue.len() + 1) * (free_at.len() + 1) * 4 {
        let mut seated_any = false;
        for (i, (size, fits)) in queue.iter().enumerate() {
            if !waiting[i] {
                continue;
            }
            let open = |fit: &Vec<usize>| {
                fit.iter().all(|&k| {
                    free_at[k] <= t
                        && !blocks
                            .iter()
                            .any(|(ids, from, end)| ids.contains(&k) && *from <= t && t < *end)
                })
            };
            let Some(fit) = fits.iter().find(|f| open(f)) else {
                continue;
            };
            if i == last {
                return Some(t);
            }
            let turn = model.sample_remaining(*size, now + t, now + t, rng.unit()) + clearing;
            for &k in fit {
                free_at[k] = t + turn;
            }
            waiting[i] = false;
            seated_any = true;
        }
        if seated_any {
            continue;
        }
        let next = free_at
            .iter()
            .copied()
            .chain(blocks.iter().map(|(_, _, end)| *end))
            .filter(|&f| f > t)
            .min()?;
        t = next;
    }
    None
}
