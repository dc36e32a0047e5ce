//! Reads the production service's own per-step timing (`poa_production_step_duration_seconds`,
//! a histogram labelled `step`) out of the Prometheus text exposition of its registry, and
//! subtracts two readings, so a measuring window excludes what happened outside it, and sums
//! windows. Owns parsing only: it never times anything itself.

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

/// The histogram `poa-core` observes every production step into.
const STEP_HISTOGRAM: &str = "poa_production_step_duration_seconds";

/// Total time and number of observations of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StepTotal {
    /// Seconds spent in the step, summed over every observation.
    pub(crate) seconds: f64,
    /// How many times the step was observed.
    pub(crate) count: u64,
}

impl StepTotal {
    /// Mean seconds per observation, `None` without observations.
    pub(crate) fn mean_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.seconds / self.count as f64)
    }
}

/// Every step's totals at one moment, by step name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StepTotals(BTreeMap<String, StepTotal>);

impl StepTotals {
    /// The totals in the registry now.
    ///
    /// # Errors
    /// Fails when the registry cannot be encoded.
    pub(crate) fn read(registry: &Registry) -> anyhow::Result<Self> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry)
            .map_err(|error| anyhow::anyhow!("cannot encode the metrics registry: {error}"))?;
        Ok(Self::parse(&text))
    }

    /// The totals in a text exposition; lines of other metrics, and lines that do not parse,
    /// are ignored.
    pub(crate) fn parse(exposition: &str) -> Self {
        let mut totals = BTreeMap::<String, StepTotal>::new();
        for line in exposition.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some((name, labels)) = series.split_once('{') else {
                continue;
            };
            let Some(suffix) = name.strip_prefix(STEP_HISTOGRAM) else {
                continue;
            };
            let Some(step) = label_value(labels.trim_end_matches('}'), "step") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let total = totals.entry(step.to_owned()).or_default();
            match suffix {
                "_sum" => total.seconds = value,
                "_count" => total.count = value as u64,
                _ => {}
            }
        }
        Self(totals)
    }

    /// What was observed between `earlier` and `self`, by step.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        let steps = self
            .0
            .iter()
            .map(|(step, now)| {
                let before = earlier.0.get(step).copied().unwrap_or_default();
                let delta = StepTotal {
                    seconds: (now.seconds - before.seconds).max(0.0),
                    count: now.count.saturating_sub(before.count),
                };
                (step.clone(), delta)
            })
            .collect();
        Self(steps)
    }

    /// Adds `other`'s totals to these, step by step (to sum several windows).
    pub(crate) fn add(&mut self, other: &Self) {
        for (step, total) in &other.0 {
            let sum = self.0.entry(step.clone()).or_default();
            sum.seconds += total.seconds;
            sum.count += total.count;
        }
    }

    /// The totals of `step` (zero when never observed).
    pub(crate) fn step(&self, step: &str) -> StepTotal {
        self.0.get(step).copied().unwrap_or_default()
    }
}

/// The value of `name` in a label set such as `le="0.1",step="produce"`.
fn label_value<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;

    use super::*;

    const EXPOSITION: &str = "\
# HELP poa_production_step_duration_seconds Time spent in each step of producing a block.
# TYPE poa_production_step_duration_seconds histogram
poa_production_step_duration_seconds_sum{step=\"produce\"} 0.25
poa_production_step_duration_seconds_count{step=\"produce\"} 100
poa_production_step_duration_seconds_bucket{le=\"0.0001\",step=\"produce\"} 3
poa_production_step_duration_seconds_sum{step=\"commit\"} 1.5e-1
poa_production_step_duration_seconds_count{step=\"commit\"} 99
poa_blocks_produced_total 100
poa_other_seconds_sum{step=\"produce\"} 9.0
";

    #[test]
    fn parse__when_exposition_has_steps_and_other_metrics__then_reads_only_step_sums_and_counts() {
        // given / when
        let totals = StepTotals::parse(EXPOSITION);

        // then
        assert_eq!(
            totals.step("produce"),
            StepTotal {
                seconds: 0.25,
                count: 100
            }
        );
        assert_eq!(
            totals.step("commit"),
            StepTotal {
                seconds: 0.15,
                count: 99
            }
        );
        assert_eq!(totals.step("publish"), StepTotal::default());
        assert_eq!(totals.step("produce").mean_seconds(), Some(0.0025));
    }

    #[test]
    fn since__when_a_window_added_observations__then_returns_only_the_window() {
        // given
        let before = StepTotals::parse(EXPOSITION);
        let after = StepTotals::parse(
            &EXPOSITION
                .replace("_sum{step=\"produce\"} 0.25", "_sum{step=\"produce\"} 0.75")
                .replace(
                    "_count{step=\"produce\"} 100",
                    "_count{step=\"produce\"} 300",
                ),
        );

        // when
        let window = after.since(&before);

        // then
        assert_eq!(window.step("produce").count, 200);
        assert!((window.step("produce").seconds - 0.5).abs() < 1e-12);
        assert_eq!(window.step("commit"), StepTotal::default());
    }

    #[test]
    fn add__when_two_windows_are_summed__then_sums_and_counts_add_per_step() {
        // given
        let mut sum = StepTotals::default();
        let window = StepTotals::parse(EXPOSITION);

        // when
        sum.add(&window);
        sum.add(&window);

        // then
        assert_eq!(sum.step("produce").count, 200);
        assert!((sum.step("produce").seconds - 0.5).abs() < 1e-12);
        assert_eq!(sum.step("commit").count, 198);
    }

    #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Step {
        step: &'static str,
    }

    #[test]
    fn read__when_registry_holds_the_service_histogram__then_matches_what_was_observed() {
        // given
        let mut registry = Registry::default();
        let family =
            Family::<Step, Histogram>::new_with_constructor(|| Histogram::new([0.001, 0.01, 0.1]));
        registry.register(
            STEP_HISTOGRAM,
            "Time spent in each step of producing a block",
            family.clone(),
        );
        family
            .get_or_create(&Step { step: "publish" })
            .observe(0.002);
        family
            .get_or_create(&Step { step: "publish" })
            .observe(0.004);

        // when
        let totals = StepTotals::read(&registry).unwrap();

        // then
        assert_eq!(totals.step("publish").count, 2);
        assert!((totals.step("publish").seconds - 0.006).abs() < 1e-12);
    }
}
