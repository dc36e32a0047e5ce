//! What a case hands to the report: result rows (also printed as JSON lines), goals with their
//! verdicts, charts, and notes. Owns no measuring and no formatting beyond the JSON line.

use serde::Serialize;

use crate::stats::{Latencies, Summary};

/// Everything one case measured, ready for the report.
#[derive(Debug, Default)]
pub(crate) struct CaseReport {
    /// Result rows in the order the report lists them.
    pub(crate) rows: Vec<Row>,
    /// Each goal this case checks, with its verdict.
    pub(crate) goals: Vec<Goal>,
    /// SVG charts, written next to `benchmarks.md`.
    pub(crate) charts: Vec<Chart>,
    /// Free Markdown paragraphs after the tables: method, findings, what a number means.
    pub(crate) notes: Vec<String>,
    /// Why the run fails although the case measured (a soak's resource that is not flat);
    /// empty for every case whose goals are verdicts only.
    pub(crate) failures: Vec<String>,
}

/// One measured series: a latency distribution, optionally with named values (a rate, a size).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// The case's name as `--case` takes it.
    pub(crate) case: &'static str,
    /// What varies within the case, e.g. `quorum publish, 1 of 3 frozen`.
    pub(crate) variant: String,
    /// Redis nodes involved (0 when none).
    pub(crate) nodes: usize,
    /// Block payload size in bytes (0 when not applicable).
    pub(crate) block_bytes: usize,
    /// The latency percentiles, flattened into the JSON line.
    #[serde(flatten)]
    pub(crate) latency: Summary,
    /// Further named values, e.g. `("blocks_per_second", 812.0)`, flattened into the JSON line.
    #[serde(flatten)]
    pub(crate) values: Values,
}

impl Row {
    /// A row of `latencies` for `case`.
    pub(crate) fn new(
        case: &'static str,
        variant: impl Into<String>,
        nodes: usize,
        block_bytes: usize,
        latencies: &Latencies,
    ) -> Self {
        Self {
            case,
            variant: variant.into(),
            nodes,
            block_bytes,
            latency: latencies.summary(),
            values: Values::default(),
        }
    }

    /// Adds a named value (kept in insertion order).
    pub(crate) fn with_value(mut self, name: impl Into<String>, value: f64) -> Self {
        self.values.0.push((name.into(), value));
        self
    }

    /// The named value, if the row has it.
    pub(crate) fn value(&self, name: &str) -> Option<f64> {
        self.values
            .0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// The row as one JSON object on one line.
    pub(crate) fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|error| format!(r#"{{"case":"{}","error":"{error}"}}"#, self.case))
    }
}

/// Named values of a row in insertion order, serialized as a map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Values(pub(crate) Vec<(String, f64)>);

impl Serialize for Values {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A goal of the benchmarks and how this run measured against it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Goal {
    /// The goal as stated, e.g. `quorum publish p50 at N = 3 <= 2x raw script p50`.
    pub(crate) goal: String,
    /// What this run measured, with the ratio, e.g. `1.41x (412 us vs 292 us)`.
    pub(crate) measured: String,
    /// Whether the goal was met.
    pub(crate) verdict: Verdict,
}

impl Goal {
    /// A goal met when `measured_value <= limit`.
    pub(crate) fn at_most(
        goal: impl Into<String>,
        measured: impl Into<String>,
        measured_value: f64,
        limit: f64,
    ) -> Self {
        Self {
            goal: goal.into(),
            measured: measured.into(),
            verdict: if measured_value <= limit {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        }
    }
}

/// The verdict on one goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The measurement meets the goal.
    Met,
    /// The measurement misses the goal: the report says what was done about it.
    Missed,
    /// Not measurable in this run (e.g. `--redis-url` servers cannot be frozen); the
    /// `measured` text says why.
    NotMeasured,
}

impl Verdict {
    /// The verdict as the report prints it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "**missed**",
            Self::NotMeasured => "not measured",
        }
    }
}

/// One SVG chart.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// File name next to `benchmarks.md`, e.g. `bench-publish-latency.svg`.
    pub(crate) file_name: String,
    /// What the chart shows, used as its alt text and caption.
    pub(crate) caption: String,
    /// The SVG document.
    pub(crate) svg: String,
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn to_json_line__when_row_has_values__then_one_line_with_required_fields() {
        // given
        let mut latencies = Latencies::new();
        latencies.record(Duration::from_micros(250));
        let row = Row::new("publish", "healthy", 3, 4096, &latencies)
            .with_value("blocks_per_second", 12.5);

        // when
        let line = row.to_json_line();

        // then
        assert!(!line.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        for field in [
            "case",
            "nodes",
            "block_bytes",
            "samples",
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us",
        ] {
            assert!(parsed.get(field).is_some(), "{field} missing from {line}");
        }
        assert_eq!(parsed["blocks_per_second"], 12.5);
        assert_eq!(parsed["nodes"], 3);
    }

    #[test]
    fn at_most__when_over_the_limit__then_missed() {
        // given / when
        let met = Goal::at_most("g", "m", 1.0, 2.0);
        let missed = Goal::at_most("g", "m", 2.5, 2.0);

        // then
        assert_eq!(met.verdict, Verdict::Met);
        assert_eq!(missed.verdict, Verdict::Missed);
    }
}
