//! One measured handover: wait for a steady leader, watch the fleet for a while, stop the leader
//! (SIGKILL or SIGTERM), wait for another process to produce, watch a while longer, then read
//! the production gap from the chain itself and start the stopped process again.
//!
//! The gap comes from block timestamps (the producer's wall clock when it built each block,
//! millisecond resolution, one clock for every process on this machine), not from polling: the
//! polled observations only draw the timeline. It owns no statistics and no report.

use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use poa_ports::{BlockHeight, Timestamp};

use super::gap::{self, Stop};
use crate::fleet::{Fleet, NodeStatus, OBSERVE_EVERY, Progress};

/// Blocks the leader produces (and the others follow) before it is stopped.
pub(crate) const STEADY_BLOCKS: u64 = 5;
/// Bound of the wait for a steady leader.
const STEADY_DEADLINE: Duration = Duration::from_secs(30);
/// Bound of the wait for a successor's first block, on top of the lease TTL.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(15);
/// Bound of the wait for a SIGTERMed node to exit before it is killed.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Blocks before the successor's first drawn on the timeline at most.
const TIMELINE_BLOCKS_BEFORE: u64 = 10;

/// How long the fleet is watched around the signal, for the timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// Before the signal.
    pub(crate) before: Duration,
    /// After the successor's first block was seen.
    pub(crate) after: Duration,
}

/// What one handover measured.
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    /// How the leader was stopped.
    pub(crate) stop: Stop,
    /// The stopped leader's name.
    pub(crate) stopped: String,
    /// The successor's name.
    pub(crate) successor: String,
    /// The stopped leader's last block in the chain.
    pub(crate) last_block: BlockHeight,
    /// The production gap: from the stopped leader's last block to the successor's first.
    pub(crate) gap: Duration,
    /// From the signal to the successor's first block.
    pub(crate) signal_to_first_block: Duration,
    /// How a SIGTERMed leader exited (`None` after a SIGKILL, or when it had to be killed).
    pub(crate) exit: Option<ExitStatus>,
    /// What was watched, in seconds since the signal.
    pub(crate) timeline: Timeline,
}

/// The watched fleet around one handover, in seconds since the signal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    /// Per node, its name and each `(seconds, height)` at which its head was seen to change
    /// (and the last sighting).
    pub(crate) nodes: Vec<(String, Vec<(f64, f64)>)>,
    /// The chain: `(seconds, height)` of each block's timestamp.
    pub(crate) blocks: Vec<(f64, f64)>,
}

/// Measures one handover on `fleet`: the signal comes `after_block` after one of the leader's
/// blocks was seen (plus the observation's own delay); then starts the stopped leader again.
///
/// # Errors
/// Fails when the fleet does not settle, nobody takes over in time, or the chain cannot be read.
pub(crate) fn measure(
    fleet: &mut Fleet,
    stop: Stop,
    after_block: Duration,
    windows: Windows,
    progress: &Progress,
) -> Result<Handover> {
    fleet.wait_for_steady_leader(STEADY_BLOCKS, STEADY_DEADLINE)?;
    let mut sightings = Sightings::new(fleet.nodes().len());
    watch(fleet, &mut sightings, windows.before);
    let leader = single_leader(&fleet.statuses())?;
    wait_for_next_block(fleet, leader, &mut sightings)?;
    thread::sleep(after_block);
    let before = fleet.statuses();
    if single_leader(&before)? != leader {
        bail!("leadership moved on its own before the signal: {before:?}");
    }
    let produced_before: Vec<u64> = before
        .iter()
        .map(|status| status.map_or(0, |status| status.blocks_produced))
        .collect();
    let stopped = fleet.node_mut(leader)?;
    let stopped_name = stopped.name.clone();
    progress.say(format_args!(
        "{} of the leader, {stopped_name}",
        stop.signal()
    ));
    // The clocks are read last, so the gap from the signal includes nothing else.
    let signal_wall = now();
    let signal_at = Instant::now();
    match stop {
        Stop::Kill => stopped.kill(),
        Stop::Terminate => stopped.terminate()?,
    }

    let mut exit = None;
    let deadline = TAKEOVER_DEADLINE
        + match stop {
            Stop::Kill => fleet.settings().lease_ttl,
            Stop::Terminate => Duration::ZERO,
        };
    let successor = loop {
        let statuses = sightings.record(fleet);
        if let Some(status) = fleet.node_mut(leader)?.try_reap() {
            exit = Some(status);
        }
        if let Some(successor) = producers_since(&statuses, &produced_before, leader).first() {
            break *successor;
        }
        if signal_at.elapsed() > deadline {
            bail!(
                "no process produced within {deadline:?} of the {} of {stopped_name}; last \
                 statuses: {statuses:?}",
                stop.signal()
            );
        }
        thread::sleep(OBSERVE_EVERY);
    };
    watch(fleet, &mut sightings, windows.after);

    let after = fleet.statuses();
    let producers = producers_since(&after, &produced_before, leader);
    if producers != [successor] {
        bail!(
            "leadership moved more than once after the {} of {stopped_name}: processes {producers:?} \
             produced; the gap is not attributable",
            stop.signal()
        );
    }
    let successor_node = &fleet.nodes()[successor];
    let successor_status =
        after[successor].ok_or_else(|| anyhow!("{} stopped answering", successor_node.name))?;
    let first_block = gap::first_height_produced(&successor_status, produced_before[successor])
        .ok_or_else(|| anyhow!("{} produced nothing countable", successor_node.name))?;
    let last_block = first_block
        .previous()
        .ok_or_else(|| anyhow!("the successor's first block is genesis"))?;
    let timestamp = |height: BlockHeight| {
        successor_node
            .block_timestamp(height)
            .ok_or_else(|| anyhow!("{} did not serve block {height}", successor_node.name))
    };
    let (last_at, first_at) = (timestamp(last_block)?, timestamp(first_block)?);
    if stop == Stop::Kill && last_at > signal_wall {
        bail!(
            "block {last_block} is stamped {} ms after the SIGKILL of its producer: the \
             successor's production count does not add up",
            gap::between(signal_wall, last_at).as_millis()
        );
    }

    let mut blocks = Vec::new();
    let lowest = last_block
        .get()
        .saturating_sub(TIMELINE_BLOCKS_BEFORE)
        .max(1);
    for height in lowest..=successor_status.height.get() {
        let at = timestamp(BlockHeight::new(height))?;
        blocks.push((seconds_between_stamps(signal_wall, at), height as f64));
    }
    let nodes = sightings.into_series(fleet, signal_at);
    // The chain is drawn from where the watching began (and always from the last block on).
    let watched_from = nodes
        .iter()
        .filter_map(|(_, points)| points.first().map(|(seconds, _)| *seconds))
        .fold(f64::INFINITY, f64::min);
    blocks
        .retain(|(seconds, height)| *seconds >= watched_from || *height >= last_block.get() as f64);
    let timeline = Timeline { nodes, blocks };
    let successor_name = successor_node.name.clone();
    let stopped = fleet.node_mut(leader)?;
    if exit.is_none() && stop == Stop::Terminate {
        exit = stopped.wait_for_exit(EXIT_DEADLINE);
    }
    stopped
        .restart()
        .with_context(|| format!("cannot start {stopped_name} again"))?;
    Ok(Handover {
        stop,
        stopped: stopped_name,
        successor: successor_name,
        last_block,
        gap: gap::between(last_at, first_at),
        signal_to_first_block: gap::between(signal_wall, first_at),
        exit,
        timeline,
    })
}

/// The index of the one node that claims to lead.
fn single_leader(statuses: &[Option<NodeStatus>]) -> Result<usize> {
    let leaders: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, status)| status.is_some_and(|status| status.is_leader))
        .map(|(index, _)| index)
        .collect();
    match leaders.as_slice() {
        [leader] => Ok(*leader),
        _ => bail!("expected one leader before the signal, saw {leaders:?}: {statuses:?}"),
    }
}

/// The nodes other than `stopped` that produced since `produced_before` was read.
fn producers_since(
    statuses: &[Option<NodeStatus>],
    produced_before: &[u64],
    stopped: usize,
) -> Vec<usize> {
    statuses
        .iter()
        .zip(produced_before)
        .enumerate()
        .filter(|(index, (status, before))| {
            *index != stopped && status.is_some_and(|status| status.blocks_produced > **before)
        })
        .map(|(index, _)| index)
        .collect()
}

/// Watches the fleet until `leader` has produced one more block.
fn wait_for_next_block(fleet: &Fleet, leader: usize, sightings: &mut Sightings) -> Result<()> {
    let deadline = fleet.settings().block_time * 10 + fleet.settings().lease_ttl;
    let started = Instant::now();
    let mut produced_before = None;
    while started.elapsed() < deadline {
        let produced = sightings.record(fleet)[leader].map(|status| status.blocks_produced);
        match (produced_before, produced) {
            (Some(before), Some(now)) if now > before => return Ok(()),
            (None, now) => produced_before = now,
            _ => {}
        }
        thread::sleep(Duration::from_millis(2));
    }
    bail!("the leader produced no block within {deadline:?}")
}

/// Watches the fleet for `window`.
fn watch(fleet: &Fleet, sightings: &mut Sightings, window: Duration) {
    let started = Instant::now();
    while started.elapsed() < window {
        sightings.record(fleet);
        thread::sleep(OBSERVE_EVERY);
    }
}

/// The heights each node was seen at, when they changed.
struct Sightings {
    /// Per node: `(when, height)` at each change, and the latest sighting.
    changes: Vec<Vec<(Instant, BlockHeight)>>,
    latest: Vec<Option<(Instant, BlockHeight)>>,
}

impl Sightings {
    fn new(nodes: usize) -> Self {
        Self {
            changes: vec![Vec::new(); nodes],
            latest: vec![None; nodes],
        }
    }

    /// Reads every node's status once and records the heights; returns the statuses.
    fn record(&mut self, fleet: &Fleet) -> Vec<Option<NodeStatus>> {
        let statuses = fleet.statuses();
        let now = Instant::now();
        for ((changes, latest), status) in
            self.changes.iter_mut().zip(&mut self.latest).zip(&statuses)
        {
            let Some(status) = status else { continue };
            if changes
                .last()
                .is_none_or(|(_, height)| *height != status.height)
            {
                changes.push((now, status.height));
            }
            *latest = Some((now, status.height));
        }
        statuses
    }

    /// Step series per node, in seconds since `signal_at`.
    fn into_series(self, fleet: &Fleet, signal_at: Instant) -> Vec<(String, Vec<(f64, f64)>)> {
        fleet
            .nodes()
            .iter()
            .zip(self.changes.into_iter().zip(self.latest))
            .map(|(node, (changes, latest))| {
                let mut points: Vec<(f64, f64)> = Vec::with_capacity(changes.len() * 2 + 1);
                for (when, height) in changes.iter().chain(latest.iter()) {
                    let x = seconds_since(signal_at, *when);
                    // Horizontal to the change, then up: the head holds its height until then.
                    if let Some(&(_, previous)) = points.last() {
                        points.push((x, previous));
                    }
                    points.push((x, height.get() as f64));
                }
                points.dedup();
                (node.name.clone(), points)
            })
            .collect()
    }
}

/// Signed seconds from `origin` to `when`.
fn seconds_since(origin: Instant, when: Instant) -> f64 {
    if when >= origin {
        (when - origin).as_secs_f64()
    } else {
        -(origin - when).as_secs_f64()
    }
}

/// Signed seconds from `origin` to `when`, both wall-clock stamps.
fn seconds_between_stamps(origin: Timestamp, when: Timestamp) -> f64 {
    (when.as_unix_millis() as f64 - origin.as_unix_millis() as f64) / 1_000.0
}

/// The wall clock as block timestamps read it.
fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    Timestamp::from_unix_millis(millis)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn status(height: u64, is_leader: bool, blocks_produced: u64) -> Option<NodeStatus> {
        Some(NodeStatus {
            height: BlockHeight::new(height),
            is_leader,
            blocks_produced,
        })
    }

    #[test]
    fn producers_since__when_a_survivor_produced__then_only_it() {
        // given: node 0 was stopped (its old count is higher), node 2 took over
        let statuses = [None, status(30, false, 2), status(31, true, 4)];

        // when
        let producers = producers_since(&statuses, &[20, 2, 1], 0);

        // then
        assert_eq!(producers, [2]);
    }

    #[test]
    fn single_leader__when_none_or_two__then_error() {
        // given
        let none = [status(3, false, 0), status(3, false, 0)];
        let two = [status(3, true, 0), status(3, true, 3)];
        let one = [status(3, false, 0), None, status(3, true, 3)];

        // when / then
        assert!(single_leader(&none).is_err());
        assert!(single_leader(&two).is_err());
        assert_eq!(single_leader(&one).unwrap(), 2);
    }

    #[test]
    fn seconds_between_stamps__when_before_the_origin__then_negative() {
        // given
        let origin = Timestamp::from_unix_millis(10_000);

        // when / then
        assert_eq!(
            seconds_between_stamps(origin, Timestamp::from_unix_millis(9_750)),
            -0.25
        );
        assert_eq!(
            seconds_between_stamps(origin, Timestamp::from_unix_millis(11_500)),
            1.5
        );
    }
}
