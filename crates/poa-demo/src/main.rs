//! `poa-demo` (run by `cargo xtask demo`): three `redis-server`s and three `poa-node`
//! processes on loopback, a live view of leader, heights, epoch and each node's Redis status,
//! a SIGKILL of the leader after a few seconds, the takeover with the measured gap (kill to
//! the first block produced by another process), a no-fork check, then everything stopped and
//! its files removed.
//!
//! Tooling, never production: a binary only, so nothing can depend on it. Bounded in time
//! (`--duration`), loopback only.
//!
//! # Layout
//!
//! - `fleet`: the processes and their HTTP observation.
//! - `view`: the live view (ANSI on a terminal, plain lines otherwise).
//! - `error`: why the demo stopped early.

mod error;
mod fleet;
mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::error::DemoError;
use crate::fleet::{Fleet, LEASE_TTL, NodeView};
use crate::view::View;

/// Processes in the demo fleet (and Redis nodes).
const FLEET_SIZE: usize = 3;
/// How often the view refreshes.
const REFRESH: Duration = Duration::from_millis(200);
/// How often the nodes are polled while waiting for the takeover (the gap's resolution).
const TAKEOVER_POLL: Duration = Duration::from_millis(25);
/// How long the view keeps running after the takeover.
const AFTER_TAKEOVER: Duration = Duration::from_secs(3);

/// Runs the demo.
#[derive(Debug, Parser)]
#[command(name = "poa-demo")]
struct Args {
    /// The poa-node binary [default: poa-node next to this binary].
    #[arg(long)]
    node_binary: Option<PathBuf>,
    /// Upper bound of the whole demo, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// When to kill the leader, counted from the first leader.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    kill_after: Duration,
    /// Plain lines even on a terminal.
    #[arg(long)]
    plain: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), DemoError> {
    let binary = args.node_binary.clone().unwrap_or_else(default_node_binary);
    let deadline = Instant::now() + args.duration;
    let terminal = !args.plain && std::io::stdout().is_terminal();
    println!(
        "starting {FLEET_SIZE} redis-servers and {FLEET_SIZE} poa-node processes on 127.0.0.1 (block time 200 ms, lease ttl {} ms)",
        LEASE_TTL.as_millis()
    );
    let mut fleet = Fleet::start(&binary, FLEET_SIZE)?;
    let mut view = View::new(terminal, format!("redis: {}", fleet.redis_urls().join(" ")));
    let outcome = run_scenario(&mut fleet, &mut view, args, deadline);
    view.finish(&snapshot(&fleet));
    match fleet.stop() {
        Ok(()) => println!("stopped every process and removed the demo's files"),
        Err(error) => println!("stopped every process; removing the demo's files failed: {error}"),
    }
    outcome
}

/// Waits for a leader, kills it, measures the takeover and checks for forks.
fn run_scenario(
    fleet: &mut Fleet,
    view: &mut View,
    args: &Args,
    deadline: Instant,
) -> Result<(), DemoError> {
    let started = Instant::now();
    let (leader, views) = wait_for(fleet, view, deadline, |views| {
        views.iter().position(|(_, node)| node.is_leader)
    })
    .ok_or(DemoError::Timeout {
        what: "a first leader",
        waited_ms: started.elapsed().as_millis(),
    })?;
    view.event(format!(
        "{} leads at epoch {}",
        views[leader].0,
        epoch_text(&views[leader].1)
    ));

    let kill_at = (Instant::now() + args.kill_after).min(deadline);
    show_until(fleet, view, kill_at);
    let views = snapshot(fleet);
    let leader = views
        .iter()
        .position(|(_, node)| node.is_leader)
        .unwrap_or(leader);
    let baseline: Vec<u64> = views.iter().map(|(_, node)| node.blocks_produced).collect();
    let killed_height = views[leader].1.height;
    view.event(format!(
        "SIGKILL {} (the leader) at height {killed_height}",
        views[leader].0
    ));
    // The kill is the last thing before the clock starts: the gap includes nothing else.
    let killed_at = Instant::now();
    fleet.nodes[leader].kill();

    let (successor, views) = wait_for(fleet, view, deadline, |views| {
        views.iter().enumerate().position(|(index, (_, node))| {
            index != leader && node.blocks_produced > baseline[index]
        })
    })
    .ok_or(DemoError::Timeout {
        what: "a takeover",
        waited_ms: killed_at.elapsed().as_millis(),
    })?;
    let gap = killed_at.elapsed();
    let (name, node) = &views[successor];
    let message = format!(
        "takeover: {name} produced height {} at epoch {}, {} ms after the kill (lease ttl {} ms; measured by polling every {} ms)",
        node.height,
        epoch_text(node),
        gap.as_millis(),
        LEASE_TTL.as_millis(),
        TAKEOVER_POLL.as_millis()
    );
    view.event(message.clone());

    show_until(fleet, view, (Instant::now() + AFTER_TAKEOVER).min(deadline));
    let checked = check_no_fork(fleet, leader)?;
    view.event(format!(
        "no fork: the survivors hold the same block at each of {checked} heights"
    ));
    view.summary(&message);
    Ok(())
}

/// Polls the nodes until `found` picks one or `deadline` passes; keeps the view current.
fn wait_for(
    fleet: &Fleet,
    view: &mut View,
    deadline: Instant,
    found: impl Fn(&[(String, NodeView)]) -> Option<usize>,
) -> Option<(usize, Vec<(String, NodeView)>)> {
    let mut last_shown: Option<Instant> = None;
    loop {
        let views = snapshot(fleet);
        if let Some(index) = found(&views) {
            view.show(&views);
            return Some((index, views));
        }
        if last_shown.is_none_or(|shown| shown.elapsed() >= REFRESH) {
            view.show(&views);
            last_shown = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(TAKEOVER_POLL);
    }
}

/// Refreshes the view until `until`.
fn show_until(fleet: &Fleet, view: &mut View, until: Instant) {
    while Instant::now() < until {
        view.show(&snapshot(fleet));
        thread::sleep(REFRESH.min(until.saturating_duration_since(Instant::now())));
    }
}

/// Every node's current view.
fn snapshot(fleet: &Fleet) -> Vec<(String, NodeView)> {
    fleet
        .nodes
        .iter()
        .map(|node| (node.name.clone(), node.view()))
        .collect()
}

/// Compares the survivors' blocks at every height they all hold; returns how many.
fn check_no_fork(fleet: &Fleet, killed: usize) -> Result<u64, DemoError> {
    let survivors: Vec<_> = fleet
        .nodes
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != killed)
        .map(|(_, node)| node)
        .collect();
    let common = survivors
        .iter()
        .map(|node| node.view().height)
        .min()
        .unwrap_or(0);
    for height in 1..=common {
        let ids: Vec<Option<String>> = survivors.iter().map(|node| node.block_id(height)).collect();
        if ids.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(DemoError::Fork {
                height,
                ids: format!("{ids:?}"),
            });
        }
    }
    Ok(common)
}

fn epoch_text(node: &NodeView) -> String {
    node.epoch
        .map_or_else(|| "-".to_owned(), |epoch| epoch.to_string())
}

/// `poa-node` in the directory of this binary (where cargo puts both).
fn default_node_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("poa-node")))
        .unwrap_or_else(|| PathBuf::from("poa-node"))
}
