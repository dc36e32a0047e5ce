//! `benchmarks.md`: the machine, the date, the commands, a table of every goal with its
//! verdict, then one section per case with its result table, goals, charts and notes. Charts
//! are written as SVG files next to the Markdown. Owns the layout and the tables; the words
//! are in `templates/report.md` and each case's own template.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cases::CaseInfo;
use crate::machine::Machine;
use crate::model::{CaseReport, Row};
use crate::prose::fill;
use crate::templates::REPORT;

/// One case's outcome: its report, or why it could not be measured.
#[derive(Debug)]
pub(crate) struct CaseOutcome {
    pub(crate) info: CaseInfo,
    pub(crate) result: Result<CaseReport>,
    pub(crate) elapsed_s: f64,
}

impl CaseOutcome {
    /// Whether the case fails the run: it could not measure, or it measured something that
    /// fails the run (a soak's resource that is not flat).
    pub(crate) fn failed(&self) -> bool {
        self.result
            .as_ref()
            .map_or(true, |report| !report.failures.is_empty())
    }
}

/// How the run was made, for the report's header.
#[derive(Debug)]
pub(crate) struct RunFacts {
    pub(crate) machine: Machine,
    pub(crate) date: String,
    pub(crate) command: String,
    pub(crate) quick: bool,
    pub(crate) build_profile: &'static str,
}

/// Writes `benchmarks.md` and every chart into `dir`.
///
/// # Errors
/// Fails when the directory or a file cannot be written.
pub(crate) fn write(dir: &Path, facts: &RunFacts, outcomes: &[CaseOutcome]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for outcome in outcomes {
        if let Ok(report) = &outcome.result {
            for chart in &report.charts {
                let path = dir.join(&chart.file_name);
                std::fs::write(&path, &chart.svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    let path = dir.join("benchmarks.md");
    std::fs::write(&path, markdown(facts, outcomes)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The whole report as Markdown.
///
/// # Errors
/// Fails when a template section is missing or does not fit its values.
pub(crate) fn markdown(facts: &RunFacts, outcomes: &[CaseOutcome]) -> Result<String> {
    let mut out = String::new();
    header(&mut out, facts)?;
    goals_summary(&mut out, outcomes);
    for outcome in outcomes {
        case_section(&mut out, outcome)?;
    }
    Ok(out)
}

fn header(out: &mut String, facts: &RunFacts) -> Result<()> {
    let machine = &facts.machine;
    let _ = writeln!(out, "# Benchmarks\n");
    let intro = fill!(
        REPORT,
        "intro",
        command = &facts.command,
        build_profile = facts.build_profile,
        date = &facts.date,
    )?;
    let _ = writeln!(out, "{intro}\n");
    if facts.quick {
        let _ = writeln!(out, "{}\n", REPORT.text("quick")?);
    }
    let _ = writeln!(out, "{}\n", REPORT.text("commands")?);
    let table = fill!(
        REPORT,
        "machine",
        cpu = &machine.cpu,
        cores = machine.cores,
        memory = &machine.memory,
        kernel = &machine.kernel,
        redis = &machine.redis,
        rustc = &machine.rustc,
    )?;
    let _ = writeln!(out, "{table}\n");
    let _ = writeln!(out, "{}\n", REPORT.text("servers")?);
    Ok(())
}

fn goals_summary(out: &mut String, outcomes: &[CaseOutcome]) {
    let _ = writeln!(out, "## Goals\n");
    let _ = writeln!(
        out,
        "| case | goal | measured | verdict |\n|---|---|---|---|"
    );
    for outcome in outcomes {
        match &outcome.result {
            Ok(report) => {
                for goal in &report.goals {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} |",
                        outcome.info.title,
                        goal.goal,
                        goal.measured,
                        goal.verdict.label()
                    );
                }
            }
            Err(error) => {
                let _ = writeln!(
                    out,
                    "| {} | (all) | case failed: {} | **failed** |",
                    outcome.info.title,
                    one_line(&format!("{error:#}"))
                );
            }
        }
    }
    out.push('\n');
}

fn case_section(out: &mut String, outcome: &CaseOutcome) -> Result<()> {
    let info = &outcome.info;
    let _ = writeln!(out, "## {}\n", info.title);
    let _ = writeln!(
        out,
        "{}\n\n`cargo xtask bench --case {}` ({:.0} s in this run)\n",
        info.prose.text("about")?,
        info.name,
        outcome.elapsed_s
    );
    let report = match &outcome.result {
        Ok(report) => report,
        Err(error) => {
            let _ = writeln!(
                out,
                "**The case failed**: {}\n",
                one_line(&format!("{error:#}"))
            );
            return Ok(());
        }
    };
    for failure in &report.failures {
        let _ = writeln!(out, "**The run fails**: {failure}\n");
    }
    rows_table(out, &report.rows);
    if !report.goals.is_empty() {
        let _ = writeln!(out, "| goal | measured | verdict |\n|---|---|---|");
        for goal in &report.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                goal.goal,
                goal.measured,
                goal.verdict.label()
            );
        }
        out.push('\n');
    }
    for chart in &report.charts {
        let _ = writeln!(out, "![{}]({})\n", chart.caption, chart.file_name);
    }
    for note in &report.notes {
        let _ = writeln!(out, "{note}\n");
    }
    Ok(())
}

/// The result rows; latency columns only when some row has samples, one column per named value.
fn rows_table(out: &mut String, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let mut value_names: Vec<&str> = Vec::new();
    for row in rows {
        for (name, _) in &row.values.0 {
            if !value_names.contains(&name.as_str()) {
                value_names.push(name);
            }
        }
    }
    let latency = rows.iter().any(|row| row.latency.samples > 0);
    let mut head = String::from("| variant | nodes | block |");
    if latency {
        head.push_str(" samples | p50 | p90 | p99 | max |");
    }
    for name in &value_names {
        let _ = write!(head, " {} |", name.replace('_', " "));
    }
    let columns = head.matches('|').count().saturating_sub(1);
    let _ = writeln!(out, "{head}\n|{}", "---|".repeat(columns));
    for row in rows {
        let mut line = format!(
            "| {} | {} | {} |",
            row.variant,
            dash_if_zero(row.nodes as u64, |nodes| nodes.to_string()),
            dash_if_zero(row.block_bytes as u64, bytes)
        );
        if latency {
            let summary = &row.latency;
            let _ = write!(
                line,
                " {} | {} | {} | {} | {} |",
                summary.samples,
                micros(summary.p50_us),
                micros(summary.p90_us),
                micros(summary.p99_us),
                micros(summary.max_us)
            );
        }
        for name in &value_names {
            let cell = row.value(name).map_or_else(|| "-".to_owned(), number);
            let _ = write!(line, " {cell} |");
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn dash_if_zero(value: u64, format: impl Fn(u64) -> String) -> String {
    if value == 0 {
        "-".to_owned()
    } else {
        format(value)
    }
}

/// A latency in the unit that reads best: µs below 10 ms, ms below 10 s, else s.
pub(crate) fn micros(value: u64) -> String {
    if value < 10_000 {
        format!("{value} µs")
    } else if value < 10_000_000 {
        format!("{:.1} ms", value as f64 / 1_000.0)
    } else {
        format!("{:.2} s", value as f64 / 1_000_000.0)
    }
}

/// A byte count as B, KiB or MiB.
pub(crate) fn bytes(value: u64) -> String {
    if value >= 1 << 20 && value.is_multiple_of(1 << 20) {
        format!("{} MiB", value >> 20)
    } else if value >= 1 << 10 && value.is_multiple_of(1 << 10) {
        format!("{} KiB", value >> 10)
    } else {
        format!("{value} B")
    }
}

/// A named value with a sensible number of decimals.
fn number(value: f64) -> String {
    if (value.fract() == 0.0 && value.abs() < 1e15) || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ").replace('|', "/")
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cases::CASES;
    use crate::model::{Goal, Verdict};
    use crate::stats::Latencies;

    fn facts() -> RunFacts {
        RunFacts {
            machine: Machine::detect(),
            date: "2026-11-26".to_owned(),
            command: "cargo xtask bench".to_owned(),
            quick: false,
            build_profile: "release",
        }
    }

    #[test]
    fn markdown__when_a_case_measured_a_failure__then_the_section_says_so_and_the_run_fails() {
        // given
        let soak = CaseOutcome {
            info: CASES[0],
            result: Ok(CaseReport {
                failures: vec!["glibc: open descriptors not flat".to_owned()],
                ..CaseReport::default()
            }),
            elapsed_s: 1.0,
        };

        // when
        let text = markdown(&facts(), std::slice::from_ref(&soak)).unwrap();

        // then
        assert!(soak.failed());
        assert!(
            text.contains("**The run fails**: glibc: open descriptors not flat"),
            "{text}"
        );
    }

    #[test]
    fn markdown__when_one_case_passed_and_one_failed__then_both_show_with_verdicts() {
        // given
        let mut latencies = Latencies::new();
        latencies.record(Duration::from_micros(300));
        let passed = CaseOutcome {
            info: CASES[0],
            result: Ok(CaseReport {
                rows: vec![Row::new("limit", "ping", 1, 0, &latencies)],
                goals: vec![Goal::at_most("p99 under 1 ms", "300 µs", 300.0, 1000.0)],
                charts: Vec::new(),
                notes: vec!["a note".to_owned()],
                failures: Vec::new(),
            }),
            elapsed_s: 1.0,
        };
        let failed = CaseOutcome {
            info: CASES[1],
            result: Err(anyhow::anyhow!("no redis-server")),
            elapsed_s: 0.0,
        };

        // when
        let text = markdown(&facts(), &[passed, failed]).unwrap();

        // then
        assert!(
            text.contains("| 1. Physical limit | p99 under 1 ms | 300 µs | met |"),
            "{text}"
        );
        assert!(text.contains("case failed: no redis-server"), "{text}");
        assert!(text.contains("| ping | 1 | - | 1 | 300 µs |"), "{text}");
        assert!(text.contains("a note"));
        assert_eq!(Verdict::Missed.label(), "**missed**");
    }

    #[test]
    fn units__when_formatted__then_read_naturally() {
        // given / when / then
        assert_eq!(micros(950), "950 µs");
        assert_eq!(micros(12_345), "12.3 ms");
        assert_eq!(micros(12_345_678), "12.35 s");
        assert_eq!(bytes(256), "256 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(65_536), "64 KiB");
    }
}
