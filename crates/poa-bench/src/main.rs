//! `poa-bench`: the benchmark harness behind `cargo xtask bench`. It measures the quorum
//! publish, the lease, end-to-end production, failover, scale and the transaction relay against
//! the physical limit of the same machine and servers, prints progress on stderr, prints results
//! (a table, or one JSON object per line with `--json`) on stdout, and writes `benchmarks.md`
//! with SVG charts.
//! Exit status 0: every case measured; 1: a case failed (the report says which and why); 2:
//! invalid flags.
//!
//! Tooling, never production: no crate depends on it. Goals are verdicts in the report, not
//! assertions: a missed goal never fails the run, a case that cannot measure does.
//!
//! # Layout
//! - `cli`: flags and where the report goes.
//! - `cleanup`: removes this run's keys from `--redis-url` servers.
//! - `fixtures`: local redis-servers and bounded waits every case uses.
//! - `floor`: the physical floors' client: fred as the adapter builds it, the adapter's scripts.
//! - `context`: what every case gets (scale, servers, progress).
//! - `cases`: the cases, one module each.
//! - `blocks`: blocks of a given size and the Redis configuration of every series.
//! - `stats`: latency histograms and percentiles.
//! - `model`: result rows, goals, charts.
//! - `chart`: SVG charts.
//! - `machine`: what the numbers were taken on.
//! - `process_probe`: what a `poa-node` process holds, read from `/proc`.
//! - `report`: `benchmarks.md`.
//! - `prose`, `templates`: the report's words, Markdown files under `templates/` filled with
//!   the run's values.

mod blocks;
mod cases;
mod chart;
mod cleanup;
mod cli;
mod context;
mod fixtures;
mod fleet;
mod floor;
mod machine;
mod model;
mod process_probe;
mod prose;
mod report;
mod stats;
mod templates;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use clap::Parser;

use crate::cases::CASES;
use crate::cli::Cli;
use crate::context::BenchContext;
use crate::machine::Machine;
use crate::report::{CaseOutcome, RunFacts};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let context = Arc::new(
        BenchContext::new(
            cli.quick,
            cli.redis_urls.clone(),
            cli.node_binary.clone(),
            cli.soak_duration,
        )
        .with_peer_bench(cli.peer_bench.clone()),
    );
    let mut outcomes = Vec::new();
    for name in cli.selected() {
        let Some(info) = CASES.iter().find(|case| case.name == name).copied() else {
            continue;
        };
        context.progress(name, "starting");
        let started = Instant::now();
        // On a worker, as `poa-node` runs its node: a caller on this thread would be woken
        // across threads by every reply.
        let case_context = Arc::clone(&context);
        let result = runtime
            .block_on(runtime.spawn(async move { cases::run(name, &case_context).await }))
            .unwrap_or_else(|failure| Err(anyhow::anyhow!("the case's task failed: {failure}")));
        let elapsed_s = started.elapsed().as_secs_f64();
        match &result {
            Ok(report) => {
                context.progress(name, format_args!("done in {elapsed_s:.1} s"));
                for failure in &report.failures {
                    context.progress(name, format_args!("FAILED: {failure}"));
                }
                print_rows(&cli, report);
            }
            Err(error) => context.progress(name, format_args!("FAILED: {error:#}")),
        }
        outcomes.push(CaseOutcome {
            info,
            result,
            elapsed_s,
        });
    }
    // Background tasks of the adapters end with the runtime, before the servers' fixtures are
    // long gone.
    drop(runtime);
    for url in &cli.redis_urls {
        match cleanup::remove_keys(url, &BenchContext::run_prefix()) {
            Ok(removed) => eprintln!("{url}: removed the run's {removed} keys"),
            Err(error) => eprintln!("warning: {url}: the run's keys were not removed: {error:#}"),
        }
    }
    let facts = RunFacts {
        machine: Machine::detect(),
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        command: cli.command_line(),
        quick: cli.quick,
        build_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    };
    let out = cli.out_dir();
    if let Err(error) = report::write(&out, &facts, &outcomes) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    eprintln!("report written to {}", out.join("benchmarks.md").display());
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| outcome.failed())
        .map(|outcome| outcome.info.name)
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: cases failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Prints a case's rows on stdout: JSON lines with `--json`, else one readable line per row.
fn print_rows(cli: &Cli, report: &model::CaseReport) {
    for row in &report.rows {
        if cli.json {
            println!("{}", row.to_json_line());
        } else {
            let summary = &row.latency;
            let values: Vec<String> = row
                .values
                .0
                .iter()
                .map(|(name, value)| format!("{name}={value:.3}"))
                .collect();
            println!(
                "{:<11} {:<44} n={} bytes={} samples={} p50={} p90={} p99={} max={} {}",
                row.case,
                row.variant,
                row.nodes,
                row.block_bytes,
                summary.samples,
                report::micros(summary.p50_us),
                report::micros(summary.p90_us),
                report::micros(summary.p99_us),
                report::micros(summary.max_us),
                values.join(" ")
            );
        }
    }
    for goal in &report.goals {
        if !cli.json {
            println!(
                "  goal: {} -> {} [{}]",
                goal.goal,
                goal.measured,
                goal.verdict.label()
            );
        }
    }
}
