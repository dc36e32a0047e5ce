//! The soak's verdict on one resource series of one process: flat or not. Pure arithmetic on
//! `(seconds, value)` points, no I/O, so the rule is tested on its own.
//!
//! The rule: only the second half of the run counts (the first half is warm-up: caches
//! filling, connections opening, the allocator finding its working set). Over that half the
//! least-squares slope, scaled to an hour, must stay at or below the resource's bound, and no
//! value may exceed the resource's ceiling. A leak is a slope that does not stop, so it fails
//! however slow the run; noise has no slope; a ramp that ends in the first half is not judged.

use crate::stats::slope;

/// What a resource may do over the judged half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    /// Largest growth per hour the judged half may show (least-squares slope).
    pub(crate) per_hour: f64,
    /// Largest value any sample of the judged half may reach.
    pub(crate) ceiling: f64,
}

/// The verdict on one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Judgement {
    /// Least-squares growth over the judged half, per hour.
    pub(crate) per_hour: f64,
    /// Largest value of the judged half.
    pub(crate) max: f64,
    /// Whether the series is flat: slope and maximum within the bound.
    pub(crate) flat: bool,
}

/// Fewest samples in the judged half for a verdict: fewer say nothing about a slope.
pub(crate) const MIN_JUDGED_SAMPLES: usize = 10;
/// Shortest judged half, in seconds: over less, a step of one descriptor or thread scales to a
/// slope of hundreds per hour, so short runs (CI's) are not judged.
pub(crate) const MIN_JUDGED_SECONDS: f64 = 600.0;
const SECONDS_PER_HOUR: f64 = 3_600.0;

/// Judges `points` (seconds since the run started, value) of a run that lasted `run_seconds`;
/// `None` when the second half holds fewer than [`MIN_JUDGED_SAMPLES`] samples or spans less
/// than [`MIN_JUDGED_SECONDS`].
pub(crate) fn judge(points: &[(f64, f64)], run_seconds: f64, bound: Bound) -> Option<Judgement> {
    let half = run_seconds / 2.0;
    let judged: Vec<(f64, f64)> = points.iter().copied().filter(|(t, _)| *t >= half).collect();
    let span = match (judged.first(), judged.last()) {
        (Some((first, _)), Some((last, _))) => last - first,
        _ => 0.0,
    };
    if judged.len() < MIN_JUDGED_SAMPLES || span < MIN_JUDGED_SECONDS {
        return None;
    }
    let per_second = slope(&judged)?;
    let per_hour = per_second * SECONDS_PER_HOUR;
    let max = judged
        .iter()
        .map(|(_, value)| *value)
        .fold(f64::MIN, f64::max);
    Some(Judgement {
        per_hour,
        max,
        flat: per_hour <= bound.per_hour && max <= bound.ceiling,
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    /// An hour sampled every 5 s.
    const RUN_SECONDS: f64 = 3_600.0;
    const EVERY: f64 = 5.0;
    /// Resident memory in MiB: at most 8 MiB more per hour, never above 170 MiB.
    const RSS: Bound = Bound {
        per_hour: 8.0,
        ceiling: 170.0,
    };

    fn series(value_at: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..=(RUN_SECONDS / EVERY) as u32)
            .map(|step| {
                let t = f64::from(step) * EVERY;
                (t, value_at(t))
            })
            .collect()
    }

    /// A deterministic noise in [-amplitude, amplitude], no randomness needed.
    fn noise(t: f64, amplitude: f64) -> f64 {
        amplitude * ((t * 0.37).sin() + (t * 1.91).cos()) / 2.0
    }

    #[test]
    fn judge__when_memory_leaks_slowly_all_run__then_not_flat() {
        // given: 60 MiB growing 12 MiB per hour, with noise
        let points = series(|t| 60.0 + 12.0 * t / RUN_SECONDS + noise(t, 2.0));

        // when
        let judgement = judge(&points, RUN_SECONDS, RSS).unwrap();

        // then
        assert!(!judgement.flat, "{judgement:?}");
        assert!((judgement.per_hour - 12.0).abs() < 1.5, "{judgement:?}");
    }

    #[test]
    fn judge__when_flat_with_noise__then_flat() {
        // given: 60 MiB with +-3 MiB of noise
        let points = series(|t| 60.0 + noise(t, 3.0));

        // when
        let judgement = judge(&points, RUN_SECONDS, RSS).unwrap();

        // then
        assert!(judgement.flat, "{judgement:?}");
        assert!(judgement.per_hour.abs() < 2.0, "{judgement:?}");
    }

    #[test]
    fn judge__when_a_warm_up_ramp_ends_in_the_first_half__then_flat() {
        // given: from 20 to 80 MiB over the first 20 minutes (a cache filling), then flat
        let points = series(|t| 20.0 + 60.0 * (t / 1_200.0).min(1.0) + noise(t, 1.0));

        // when
        let judgement = judge(&points, RUN_SECONDS, RSS).unwrap();

        // then
        assert!(judgement.flat, "{judgement:?}");
    }

    #[test]
    fn judge__when_flat_but_above_the_ceiling__then_not_flat() {
        // given: descriptors steady at 300 against a ceiling of 256
        let points = series(|_| 300.0);
        let descriptors = Bound {
            per_hour: 30.0,
            ceiling: 256.0,
        };

        // when
        let judgement = judge(&points, RUN_SECONDS, descriptors).unwrap();

        // then
        assert!(!judgement.flat, "{judgement:?}");
        assert_eq!(judgement.max, 300.0);
    }

    #[test]
    fn judge__when_a_step_leak_repeats_in_the_second_half__then_not_flat() {
        // given: one descriptor kept per leader change, a change every 6 minutes
        let points = series(|t| 40.0 + (t / 360.0).floor());
        let descriptors = Bound {
            per_hour: 5.0,
            ceiling: 256.0,
        };

        // when
        let judgement = judge(&points, RUN_SECONDS, descriptors).unwrap();

        // then
        assert!(!judgement.flat, "{judgement:?}");
    }

    #[test]
    fn judge__when_the_second_half_is_too_short_or_too_sparse__then_no_verdict() {
        // given: 40 s sampled every second (CI's quick run), and an hour sampled every 10 min
        let short: Vec<(f64, f64)> = (0..=40).map(|step| (f64::from(step), 1.0)).collect();
        let sparse: Vec<(f64, f64)> = (0..=6).map(|step| (f64::from(step) * 600.0, 1.0)).collect();

        // when / then
        assert_eq!(judge(&short, 40.0, RSS), None);
        assert_eq!(judge(&sparse, RUN_SECONDS, RSS), None);
    }
}
