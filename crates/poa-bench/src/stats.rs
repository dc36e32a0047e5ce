//! Latency recording and summaries: an HDR histogram per measured series (microsecond
//! resolution, three significant digits), reduced to the percentiles every report line carries;
//! and the least-squares slope the memory measurements use for growth.
//!
//! Owns no timing policy: callers decide what one sample is and record its `Duration`.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track: anything slower is clamped to it (and shows as the
/// maximum). One minute covers every failover and hang the harness bounds.
const HIGHEST_TRACKABLE_US: u64 = 60_000_000;

/// The latencies of one measured series, in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty series.
    #[allow(
        clippy::expect_used,
        reason = "constant bounds that hdrhistogram documents as valid"
    )]
    pub(crate) fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_US, 3)
                .expect("1 us to 60 s at 3 significant digits is a valid histogram"),
        }
    }

    /// Records one sample (clamped to one minute, at least one microsecond).
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, HIGHEST_TRACKABLE_US);
        self.histogram.saturating_record(micros);
    }

    /// Adds every sample of `other` (a series measured in several runs).
    pub(crate) fn add(&mut self, other: &Latencies) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Whether no sample was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency at `quantile` (0.0 to 1.0), in microseconds.
    pub(crate) fn quantile_us(&self, quantile: f64) -> u64 {
        self.histogram.value_at_quantile(quantile)
    }

    /// The percentiles every report line carries.
    pub(crate) fn summary(&self) -> Summary {
        Summary {
            samples: self.histogram.len(),
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            max_us: self.histogram.max(),
            mean_us: self.histogram.mean(),
        }
    }

    /// `(latency_us, cumulative fraction)` points of the distribution, for a CDF chart.
    pub(crate) fn cdf_points(&self) -> Vec<(f64, f64)> {
        if self.histogram.is_empty() {
            return Vec::new();
        }
        self.histogram
            .iter_quantiles(4)
            .map(|step| {
                (
                    step.value_iterated_to() as f64,
                    step.quantile_iterated_to().min(1.0),
                )
            })
            .chain(std::iter::once((self.histogram.max() as f64, 1.0)))
            .collect()
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// Percentiles of one series, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Summary {
    pub(crate) samples: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

/// `a / b` as a ratio for the report, `None` when `b` is zero.
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// The least-squares slope of `y` on `x`; `None` when `x` never varies.
pub(crate) fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let count = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / count;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / count;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if variance > 0.0 {
        Some(covariance / variance)
    } else {
        None
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn summary__when_samples_are_1_to_100_ms__then_percentiles_match_within_resolution() {
        // given
        let mut latencies = Latencies::new();
        for millis in 1..=100 {
            latencies.record(Duration::from_millis(millis));
        }

        // when
        let summary = latencies.summary();

        // then
        assert_eq!(summary.samples, 100);
        assert!((49_900..=50_100).contains(&summary.p50_us), "{summary:?}");
        assert!((98_900..=99_100).contains(&summary.p99_us), "{summary:?}");
        assert!((99_900..=100_100).contains(&summary.max_us), "{summary:?}");
    }

    #[test]
    fn cdf_points__when_recorded__then_fractions_rise_to_one() {
        // given
        let mut latencies = Latencies::new();
        for micros in [100, 200, 300, 400, 5_000] {
            latencies.record(Duration::from_micros(micros));
        }

        // when
        let points = latencies.cdf_points();

        // then
        assert!(
            points.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{points:?}"
        );
        assert_eq!(points.last().map(|point| point.1), Some(1.0));
    }

    #[test]
    fn slope__when_points_are_on_a_line__then_its_slope_and_none_without_spread() {
        // given
        let line: Vec<(f64, f64)> = (0..10)
            .map(|x| (f64::from(x), 3.0 * f64::from(x) + 7.0))
            .collect();

        // when / then
        assert!((slope(&line).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(5.0, 1.0), (5.0, 2.0)]), None);
    }
}
