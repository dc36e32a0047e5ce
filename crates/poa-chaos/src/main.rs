//! `poa-chaos`: the chaos harness behind `cargo xtask chaos`. It runs real `redis-server` and
//! `poa-node` processes on loopback behind a grid of fault proxies, injects a seeded schedule of
//! faults (garbage in the producer's Redis keys and a failing disk among them) while submitting
//! transactions, then heals everything and checks the invariants of docs/protocol.md (no fork
//! across every process incarnation, nothing committed lost, no transaction twice, production
//! resumes, nodes converge, no long stall while a producer is available, stranded nodes say
//! why, stops under garbage on a quorum said why, no process exits on its own). `poa-chaos
//! load` is the transaction load harness. Exit status 0: every invariant held; 1: a violation
//! (the report names it, with the timeline and the replay command); 2: the harness itself
//! failed.
//!
//! Test tooling, never production: no production crate depends on it, and it reaches the node
//! only as a process, through its command line and HTTP API. It writes into the Redis servers
//! directly only to corrupt them on purpose.
//!
//! # Layout
//! - `cli`: flags and the replay command.
//! - `schedule`: the seeded fault schedule (pure).
//! - `cluster`: processes and proxies, killed on drop.
//! - `faults`: starting and healing a fault; what stays reachable.
//! - `corrupt`: writing garbage into the producer's keys, and removing exactly that again.
//! - `client`: bounded HTTP calls to a node.
//! - `observe`: the timeline and block sightings.
//! - `streams`: what the Redis servers' streams still hold, read directly.
//! - `checks`: the invariants (pure).
//! - `logs`: warnings the nodes logged while a fault was on.
//! - `report`: text and JSON.
//! - `run`: one run, start to verdict.
//! - `load`: the transaction load harness (`poa-chaos load`): clients, phases, accounting.

mod checks;
mod cli;
mod client;
mod cluster;
mod corrupt;
mod faults;
mod load;
mod logs;
mod observe;
mod report;
mod run;
mod schedule;
mod streams;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::cli::{Cli, Invocation, LoadCli, Mode};

fn main() -> ExitCode {
    let invocation = Invocation::parse();
    match invocation.mode {
        Some(Mode::Load(load)) => run_load(&load),
        None => run_chaos(&invocation.chaos),
    }
}

fn run_load(cli: &LoadCli) -> ExitCode {
    if let Err(err) = cli.validate() {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let interrupted = watch_for_interrupt();
    let outcome = load::run(cli, &interrupted);
    finish(
        outcome,
        cli.json,
        &format!("load seed {}", cli.seed),
        &cli.replay_command(),
    )
}

fn run_chaos(cli: &Cli) -> ExitCode {
    if let Err(err) = cli.validate() {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    if cli.plan_only {
        for fault in schedule::plan(&cli.schedule_settings()) {
            println!(
                "{:>9.3}s  #{:<3} {} for {:?}",
                fault.at.as_secs_f64(),
                fault.id,
                fault.kind,
                fault.lasts
            );
        }
        return ExitCode::SUCCESS;
    }
    let interrupted = watch_for_interrupt();
    let outcome = run::run(cli, &interrupted);
    finish(
        outcome,
        cli.json,
        &format!("seed {}", cli.seed),
        &cli.replay_command(),
    )
}

/// A run's report as `main` prints it.
trait Verdicts: serde::Serialize {
    /// The report for a human.
    fn text(&self) -> String;
    /// Whether every verdict held.
    fn passed(&self) -> bool;
}

impl Verdicts for report::Report {
    fn text(&self) -> String {
        self.to_text()
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

impl Verdicts for load::LoadReport {
    fn text(&self) -> String {
        self.to_text()
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

/// Prints a run's report (as JSON on stdout with `json`, the text on stderr then) and turns it
/// into the exit status: 0 passed, 1 a violation, 2 the harness failed (`what` and `replay`
/// say which run and how to run it again).
fn finish<R: Verdicts>(
    outcome: anyhow::Result<R>,
    json: bool,
    what: &str,
    replay: &str,
) -> ExitCode {
    match outcome {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(json) => println!("{json}"),
                    Err(err) => eprintln!("error: cannot encode the report: {err}"),
                }
                eprint!("{}", report.text());
            } else {
                print!("{}", report.text());
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            eprintln!("{what}; replay with:\n  {replay}");
            ExitCode::from(2)
        }
    }
}

/// A flag set on Ctrl-C (SIGINT) or SIGTERM, so the run stops at its next tick and the cluster's
/// `Drop` kills every process, instead of the default exit that would skip destructors.
fn watch_for_interrupt() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&flag);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => {
            // Registered before the thread starts, so no signal slips through a start-up window.
            let signals = runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                )
            });
            if let (Ok(mut interrupt), Ok(mut terminate)) = signals {
                std::thread::spawn(move || {
                    runtime.block_on(async {
                        tokio::select! {
                            _ = interrupt.recv() => {}
                            _ = terminate.recv() => {}
                        }
                    });
                    eprintln!("chaos: interrupted, stopping every process");
                    setter.store(true, Ordering::SeqCst);
                });
            }
        }
        Err(err) => eprintln!("warning: no interrupt handler ({err}); Ctrl-C may leave processes"),
    }
    flag
}
