//! The Kaplan–Meier estimator and what is read off its curve.
//!
//! A [`Curve`] is the survival function S(t) = P(turn time > t) as a
//! non-increasing step function over seconds. Observations are turn times
//! that ended (an event) or are still running (censored: the party was
//! still seated when the curve was fitted, so all we know is T > t). Ties
//! follow the usual convention: at one time, the ends are counted before
//! the censorings, so a party censored at t was still at risk at t.
//!
//! Curves of several groups are blended as a mixture (a weighted mean of
//! survival functions is a survival function); the remaining time of a
//! table occupied `e` seconds is read off S(t)/S(e).

/// One observed turn: its length, and whether it ended (`false`: censored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub secs: u32,
    pub ended: bool,
}

/// S(t) as steps: after `steps[i].0` seconds the curve is `steps[i].1`;
/// before the first step it is 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    steps: Vec<(u32, f64)>,
    /// The longest observation (ended or not): what is known of the tail.
    longest: u32,
}

impl Curve {
    /// The Kaplan–Meier curve of `observations` (any order).
    pub fn fit(observations: &[Observation]) -> Curve {
        let mut sorted = observations.to_vec();
        // At one time, ends first (`!ended` sorts false before true).
        sorted.sort_by_key(|o| (o.secs, !o.ended));
        let mut at_risk = sorted.len();
        let mut s = 1.0;
        let mut steps = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let t = sorted[i].secs;
            let (mut ended, mut all) = (0usize, 0usize);
            while i < sorted.len() && sorted[i].secs == t {
                ended += usize::from(sorted[i].ended);
                all += 1;
                i += 1;
            }
            if ended > 0 {
                s *= 1.0 - ended as f64 / at_risk as f64;
                steps.push((t, s));
            }
            at_risk -= all;
        }
        Curve {
            steps,
            longest: sorted.last().map_or(0, |o| o.secs),
        }
    }

    /// S(t).
    pub fn survival(&self, t: u32) -> f64 {
        let after = self.steps.partition_point(|&(at, _)| at <= t);
        after.checked_sub(1).map_or(1.0, |i| self.steps[i].1)
    }

    /// The weighted mixture of `parts` (weights summing to 1).
    pub fn blend(parts: &[(f64, &Curve)]) -> Curve {
        let mut times: Vec<u32> = parts
            .iter()
            .filter(|(w, _)| *w > 0.0)
            .flat_map(|(_, c)| c.steps.iter().map(|&(t, _)| t))
            .collect();
        times.sort_unstable();
        times.dedup();
        let steps = times
            .into_iter()
            .map(|t| (t, parts.iter().map(|(w, c)| w * c.survival(t)).sum()))
            .collect();
        let longest = parts
            .iter()
            .filter(|(w, _)| *w > 0.0)
            .map(|(_, c)| c.longest)
            .max()
            .unwrap_or(0);
        Curve { steps, longest }
    }

    /// The first time t > `elapsed` with S(t) ≤ `left` · S(elapsed): the
    /// `1 - left` quantile of the turn of a party seated `elapsed` ago
    /// (`left` 0.5 is the median, 0.2 the 80th percentile). `None` when the
    /// curve never gets that low (the history has nobody staying that long,
    /// or the rest of it is censored).
    pub fn quantile_after(&self, elapsed: u32, left: f64) -> Option<u32> {
        let target = left * self.survival(elapsed);
        if target <= 0.0 {
            return None;
        }
        // `steps` is non-increasing in S, so this is a binary search.
        let i = self.steps.partition_point(|&(_, s)| s > target);
        self.steps.get(i).map(|&(t, _)| t).filter(|&t| t > elapsed)
    }

    /// The longest observation the curve was fitted on.
    pub fn longest(&self) -> u32 {
        self.longest
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(secs: u32) -> Observation {
        Observation { secs, ended: true }
    }
    fn censored(secs: u32) -> Observation {
        Observation { secs, ended: false }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn without_censoring_it_is_the_empirical_survival() {
        let c = Curve::fit(&[ended(30), ended(10), ended(20), ended(40)]);
        assert!(close(c.survival(0), 1.0));
        assert!(close(c.survival(10), 0.75));
        assert!(close(c.survival(25), 0.5));
        assert!(close(c.survival(40), 0.0));
        assert_eq!(c.quantile_after(0, 0.5), Some(20));
    }

    #[test]
    fn a_censored_party_leaves_the_risk_set_without_a_step() {
        // The textbook case: 10, 20+, 30, 40 (20 censored).
        let c = Curve::fit(&[ended(10), censored(20), ended(30), ended(40)]);
        assert!(close(c.survival(10), 0.75));
        assert!(close(c.survival(20), 0.75));
        // Two at risk at 30, one ends: 0.75 · 1/2.
        assert!(close(c.survival(30), 0.375));
        assert!(close(c.survival(40), 0.0));
        assert_eq!(c.longest(), 40);
    }

    #[test]
    fn at_a_tie_ends_come_before_censorings() {
        // At 20 one ends and one is censored: both were at risk at 20.
        let c = Curve::fit(&[ended(10), ended(20), censored(20), ended(30)]);
        assert!(close(c.survival(20), 0.75 * (1.0 - 1.0 / 3.0)));
        // The last one at risk ends at 30.
        assert!(close(c.survival(30), 0.0));
        // Ties among ends drop together.
        let t = Curve::fit(&[ended(5), ended(5), ended(9), ended(9)]);
        assert!(close(t.survival(5), 0.5));
        assert!(close(t.survival(9), 0.0));
    }

    #[test]
    fn a_censored_tail_never_reaches_zero_and_has_no_late_quantile() {
        let c = Curve::fit(&[ended(10), censored(50), censored(60)]);
        assert!(close(c.survival(100), 2.0 / 3.0));
        assert_eq!(c.quantile_after(0, 0.5), None);
        assert_eq!(c.quantile_after(0, 0.7), Some(10));
    }

    #[test]
    fn the_remaining_time_is_conditional_on_time_already_seated() {
        let c = Curve::fit(&(1..=100).map(|m| ended(m * 60)).collect::<Vec<_>>());
        // (Fractions between two steps: S is a product of floats.)
        assert_eq!(c.quantile_after(0, 0.505), Some(50 * 60));
        // Seated 60 min: 40 left of 100, 49 % of them still there at 81.
        assert_eq!(c.quantile_after(60 * 60, 0.49), Some(81 * 60));
        assert_eq!(c.quantile_after(60 * 60, 0.21), Some(92 * 60));
        // Past everyone: nothing to say.
        assert_eq!(c.quantile_after(100 * 60, 0.5), None);
    }

    #[test]
    fn a_blend_is_the_weighted_mixture() {
        let a = Curve::fit(&[ended(10)]);
        let b = Curve::fit(&[ended(30)]);
        let m = Curve::blend(&[(0.25, &a), (0.75, &b)]);
        assert!(close(m.survival(5), 1.0));
        assert!(close(m.survival(10), 0.75));
        assert!(close(m.survival(30), 0.0));
        assert_eq!(m.quantile_after(0, 0.5), Some(30));
        assert_eq!(m.quantile_after(0, 0.8), Some(10));
    }
}
