//! The mutable state of one chaos run's main loop and what it does on each event: starting
//! and healing faults (garbage included, which it writes and removes itself, and the snapshots
//! that restores bring back, which it takes itself), noticing nodes that come back behind or
//! stranded, noticing processes that exit on their own, submitting the transaction workload.
//!
//! Owns the bookkeeping between faults and observations; the sequencing and the verdict are
//! `run`'s, the rules `schedule`'s and `checks`'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use adapter_chain::SealedBlock;
use anyhow::{Result, bail};
use poa_test_support::Snapshot;
use rand::Rng;
use rand::rngs::StdRng;

use crate::checks::{Exit, GarbageWindow, MembershipOutcome, StrandedNode};
use crate::client::{BlockSummary, Client};
use crate::cluster::Cluster;
use crate::corrupt::{self, ChainTip, Planted};
use crate::faults::{self, ActiveFault};
use crate::observe::Observer;
use crate::report::Event;
use crate::schedule::{FaultKind, PlannedFault};
use crate::streams;

use super::comeback::{Comeback, comeback};
use super::membership::{Action, Change, NodeMarks};

/// Largest padding of a transaction payload: blocks with a few kilobytes of transactions make
/// the stream reads long replies, so a cut lands inside them.
const MAX_PAYLOAD_PADDING: usize = 4096;
/// Tries to remove a fault's garbage before the run gives up (exit 2): a removal only fails
/// when a server does not answer, which the schedule's rules keep from happening.
const REMOVAL_ATTEMPTS: usize = 3;
/// Log lines of a node that exited on its own kept for the report.
const EXIT_LOG_LINES: usize = 8;

/// A fault as it was started.
pub(super) struct StartedFault {
    pub(super) active: ActiveFault,
    pub(super) at: Duration,
    pub(super) hit_leader: bool,
}

/// A node that came back without a peer after its next height had left a quorum of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stranding {
    /// Its next height when it came back.
    next_height: u64,
}

/// The mutable state of the main loop.
pub(super) struct RunState {
    pub(super) observer: Observer,
    pub(super) timeline: Vec<Event>,
    pub(super) active: Vec<ActiveFault>,
    pub(super) started: Vec<StartedFault>,
    pub(super) skipped: usize,
    pub(super) accepted: Vec<String>,
    /// Redis servers in the cluster.
    pub(super) redis_servers: usize,
    /// Redis servers a quorum needs.
    pub(super) quorum: usize,
    /// Per node, its height when a fault last stopped its process.
    pub(super) stopped_at: Vec<Option<u64>>,
    /// Per node, the height it must reach before it counts as a producer again: set when it
    /// comes back from falling behind or from a failing disk, or stranded.
    pub(super) catching_up: Vec<Option<u64>>,
    /// Per node, whether it came back stranded past the streams' window without a peer (and
    /// has not caught up since).
    pub(super) stranded: Vec<Option<Stranding>>,
    /// Per active corruption fault (by id), what it wrote and when.
    pub(super) planted: BTreeMap<usize, (Planted, Duration)>,
    /// Every corruption fault whose garbage was removed.
    pub(super) garbage: Vec<GarbageWindow>,
    /// Per restore fault (by id) whose snapshot was taken, the snapshot, until its heal.
    pub(super) snapshots: BTreeMap<usize, Snapshot>,
    /// Node processes that exited on their own.
    pub(super) exits: Vec<Exit>,
    /// The membership change under way, if any (one at a time).
    pub(super) change: Option<Change>,
    /// Every membership change that ended, done or not.
    pub(super) membership: Vec<MembershipOutcome>,
    /// Where the membership commands write their output.
    membership_log: PathBuf,
}

impl RunState {
    /// The state of a run of `nodes` nodes on `redis_servers` servers, `quorum` of them a
    /// quorum, whose files go under `dir`.
    pub(super) fn new(
        client: Client,
        nodes: usize,
        redis_servers: usize,
        quorum: usize,
        dir: &Path,
    ) -> Self {
        Self {
            observer: Observer::new(client, nodes),
            timeline: Vec::new(),
            active: Vec::new(),
            started: Vec::new(),
            skipped: 0,
            accepted: Vec::new(),
            redis_servers,
            quorum,
            stopped_at: vec![None; nodes],
            catching_up: vec![None; nodes],
            stranded: vec![None; nodes],
            planted: BTreeMap::new(),
            garbage: Vec::new(),
            snapshots: BTreeMap::new(),
            exits: Vec::new(),
            change: None,
            membership: Vec::new(),
            membership_log: dir.join("membership.log"),
        }
    }

    pub(super) fn event(&mut self, at: Duration, what: String) {
        self.timeline.push(Event { at, what });
    }

    /// Whether a producer that can produce is healthy: nodes still catching up after falling
    /// behind (stranded ones for good) do not count.
    pub(super) fn producer_available(&self) -> bool {
        let mut excluded = self.catching_up_nodes();
        // A membership change under way: nodes on lists the record refuses now, or being
        // restarted, cannot produce.
        if let Some(change) = &self.change {
            for (excluded, out) in excluded.iter_mut().zip(change.excluded()) {
                *excluded |= out;
            }
        }
        faults::producer_available(&self.active, self.redis_servers, self.quorum, &excluded)
    }

    /// Per node, whether it does not count as a producer now (behind after a fault, or
    /// stranded).
    pub(super) fn catching_up_nodes(&self) -> Vec<bool> {
        self.catching_up.iter().map(Option::is_some).collect()
    }

    /// Clears the catching-up mark of nodes the latest sample shows at their target height.
    pub(super) fn note_caught_up(&mut self, now: Duration) {
        let Some(sample) = self.observer.samples.last() else {
            return;
        };
        let caught_up: Vec<usize> = self
            .catching_up
            .iter()
            .zip(&sample.heights)
            .enumerate()
            .filter(|(_, (target, height))| {
                target.is_some_and(|target| height.is_some_and(|height| height >= target))
            })
            .map(|(node, _)| node)
            .collect();
        for node in caught_up {
            self.catching_up[node] = None;
            // It reached the cluster's height after all: within the window, held to converge.
            if self.stranded[node].take().is_some() {
                self.event(now, format!("n{node} caught up, no longer stranded"));
            } else {
                self.event(now, format!("n{node} caught up"));
            }
        }
    }

    /// Takes the snapshot a restore brings back later, as an operator's backup would: the
    /// server's data as of now (`SAVE`, its RDB file), kept by the harness. A server a fault
    /// holds (down, frozen, holding garbage) is not copied, and the restore is skipped then;
    /// the schedule never plans that.
    pub(super) fn take_snapshot(
        &mut self,
        cluster: &Cluster,
        planned: &PlannedFault,
        now: Duration,
    ) {
        let FaultKind::RedisRestoreSnapshot { redis, .. } = planned.kind else {
            return;
        };
        let held = self.active.iter().any(|fault| {
            let kind = fault.planned.kind;
            kind.downed_redis() == Some(redis)
                || kind
                    .corrupted_redis()
                    .is_some_and(|servers| servers.contains(redis))
        });
        if held {
            self.event(
                now,
                format!("no snapshot of r{redis} for #{} (server busy)", planned.id),
            );
            return;
        }
        let server = &cluster.redis[redis];
        let snapshot = server.snapshot();
        let height = streams::highest_block(&[server])
            .map_or("none".to_owned(), |(height, _)| height.to_string());
        self.snapshots.insert(planned.id, snapshot);
        self.event(
            now,
            format!(
                "snapshot of r{redis} for #{} (its highest height {height})",
                planned.id
            ),
        );
    }

    pub(super) fn start_fault(
        &mut self,
        cluster: &mut Cluster,
        planned: &PlannedFault,
        leader: Option<usize>,
        now: Duration,
    ) -> Result<()> {
        let Some(active) = faults::resolve(planned, cluster.nodes.len(), leader, &self.active)
        else {
            self.skipped += 1;
            self.event(
                now,
                format!("skip #{} {} (target busy)", planned.id, planned.kind),
            );
            return Ok(());
        };
        let restarting = self.change.as_ref().and_then(Change::restarting);
        if active.node.is_some() && active.node == restarting {
            self.skipped += 1;
            self.event(
                now,
                format!(
                    "skip #{} {} (the membership change restarts it)",
                    planned.id, planned.kind
                ),
            );
            return Ok(());
        }
        if planned.kind.snapshot_age().is_some() && !self.snapshots.contains_key(&planned.id) {
            self.skipped += 1;
            self.event(
                now,
                format!("skip #{} {} (no snapshot)", planned.id, planned.kind),
            );
            return Ok(());
        }
        if let (Some(node), FaultKind::NodeKill { .. } | FaultKind::NodeFreeze { .. }) =
            (active.node, planned.kind)
        {
            self.before_stop(cluster, node, now);
        }
        let mut started = format!("start {}", active.describe());
        if let FaultKind::Corrupt {
            garbage,
            servers,
            salt,
            ..
        } = planned.kind
        {
            let tip = Self::chain_tip(cluster);
            match corrupt::plant(&cluster.redis, garbage, servers, salt, tip.as_ref()) {
                Ok(planted) => {
                    started.push_str(&format!(": {}", planted.describe()));
                    self.planted.insert(planned.id, (planted, now));
                }
                Err(reason) => {
                    self.skipped += 1;
                    self.event(
                        now,
                        format!("skip #{} {} ({reason})", planned.id, planned.kind),
                    );
                    return Ok(());
                }
            }
        }
        faults::start(cluster, &active)?;
        if let FaultKind::MembershipChange { position } = planned.kind {
            let (change, what) =
                Change::start(cluster, active, position, now, &self.membership_log);
            started.push_str(&format!(": {what}"));
            self.change = Some(change);
        }
        let hit_leader = leader.is_some()
            && active.node == leader
            && !matches!(
                planned.kind,
                FaultKind::LinkReset { .. } | FaultKind::LinkLatency { .. }
            );
        self.event(now, started);
        self.active.push(active);
        self.started.push(StartedFault {
            active,
            at: now,
            hit_leader,
        });
        Ok(())
    }

    /// Cuts off the falling-behind nodes whose links degraded long enough, and stops those whose
    /// cut-off is over.
    pub(super) fn stop_due(&mut self, cluster: &mut Cluster, now: Duration) {
        for index in 0..self.active.len() {
            if self.active[index].cut_due(now) {
                faults::cut(cluster, &mut self.active[index]);
                let what = format!("cut off {}", self.active[index].describe());
                self.event(now, what);
            }
            let Some(node) = self.active[index].stop_due(now) else {
                continue;
            };
            self.before_stop(cluster, node, now);
            faults::stop(cluster, &mut self.active[index]);
            let height = self.stopped_at[node].map_or("?".into(), |h| h.to_string());
            self.event(
                now,
                format!("stop n{node} at height {height} (falls behind)"),
            );
        }
    }

    /// Reads what the node reported that was not read yet, and its height, before its process
    /// is stopped: every block an incarnation reported is recorded, also before a kill.
    fn before_stop(&mut self, cluster: &Cluster, node: usize, now: Duration) {
        let latest = self
            .observer
            .samples
            .last()
            .and_then(|sample| sample.heights[node]);
        let status = self.observer.read_node(now, cluster, node);
        self.stopped_at[node] = status.map(|status| status.height).or(latest);
    }

    pub(super) fn heal_due(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        // A membership change ends when its steps do (`advance_change`), not at a time.
        let (due, keep): (Vec<ActiveFault>, Vec<ActiveFault>) =
            self.active.iter().partition(|fault| {
                fault.planned.ends() <= now
                    && !matches!(fault.planned.kind, FaultKind::MembershipChange { .. })
            });
        self.active = keep;
        for fault in due {
            self.heal(cluster, &fault, now, "")?;
        }
        Ok(())
    }

    /// Heals one fault; a corruption fault's garbage is removed and its window recorded.
    fn heal(
        &mut self,
        cluster: &mut Cluster,
        fault: &ActiveFault,
        now: Duration,
        note: &str,
    ) -> Result<()> {
        let snapshot = self.snapshots.remove(&fault.planned.id);
        faults::heal(cluster, fault, snapshot.as_ref())?;
        let mut healed = format!("heal  {}{note}", fault.describe());
        if let FaultKind::RedisRestoreSnapshot { redis, .. } = fault.planned.kind {
            let height = streams::highest_block(&[&cluster.redis[redis]])
                .map_or("none".to_owned(), |(height, _)| height.to_string());
            healed.push_str(&format!(": restored, its highest height {height}"));
        }
        if let Some((planted, from)) = self.planted.remove(&fault.planned.id) {
            let undone = remove_garbage(cluster, &planted)?;
            healed.push_str(&format!(": removed {undone} writes still there"));
            if let FaultKind::Corrupt {
                garbage, on_quorum, ..
            } = fault.planned.kind
            {
                self.garbage.push(GarbageWindow {
                    fault: fault.describe(),
                    garbage: garbage.name(),
                    from,
                    to: now,
                    on_quorum,
                    height: planted.height,
                    landed: planted.describe(),
                });
            }
        }
        self.event(now, healed);
        self.after_heal(cluster, fault, now);
        Ok(())
    }

    /// The chain's freshest head, for garbage at a height: the highest block on the Redis
    /// servers (a leader publishes there before it commits, so a node's own head lags it).
    fn chain_tip(cluster: &Cluster) -> Option<ChainTip> {
        let (height, data) = streams::highest_block(&cluster.member_servers())?;
        let block = SealedBlock::decode(&data).ok()?;
        Some(ChainTip { height, block })
    }

    /// Notices node processes that exited without the harness killing them, records each with
    /// the end of its log, and starts it again, as its supervisor would.
    pub(super) fn reap_exits(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        for node in 0..cluster.nodes.len() {
            let process = &mut cluster.nodes[node];
            let Some(status) = process.reap() else {
                continue;
            };
            let exit = Exit {
                node,
                incarnation: process.incarnation(),
                at: now,
                status: status.to_string(),
                log: process.log_tail(EXIT_LOG_LINES),
            };
            process.spawn()?;
            self.event(
                now,
                format!("n{node} exited on its own ({}): started again", exit.status),
            );
            self.exits.push(exit);
        }
        Ok(())
    }

    /// Takes the membership change under way one step further; once it is over, records its
    /// outcome and ends its fault.
    ///
    /// # Errors
    /// Fails when a node cannot be started again.
    pub(super) fn advance_change(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        let held: Vec<bool> = (0..cluster.nodes.len())
            .map(|node| self.active.iter().any(|fault| fault.downs_node(node)))
            .collect();
        let behind = self.catching_up_nodes();
        let marks = NodeMarks {
            held: &held,
            behind: &behind,
        };
        let leader = self
            .observer
            .samples
            .last()
            .and_then(|sample| sample.leader);
        let tip = self.observer.tip();
        // Every block the old process reported is read before it stops, as before a kill.
        let due = self
            .change
            .as_ref()
            .and_then(|change| change.due(now, leader, marks));
        if let Some(Action::Restart { node, .. }) = due {
            self.before_stop(cluster, node, now);
        }
        let Some(change) = self.change.as_mut() else {
            return Ok(());
        };
        let sample = self.observer.samples.last();
        let step = change.advance(cluster, sample, tip, marks, now)?;
        let id = change.fault.planned.id;
        for what in step.said {
            self.event(now, format!("#{id} membership_change: {what}"));
        }
        // Nodes that waited for the record follow the chain again, from where they stopped:
        // as after any time away, past the window they need peers, or are stranded.
        for node in step.resumed {
            let height = self
                .observer
                .samples
                .last()
                .and_then(|sample| sample.heights[node]);
            if let Some(height) = height
                && self.stranded[node].is_none()
            {
                self.place_comeback(cluster, node, height, true, now);
            }
        }
        let over = step.over;
        if over && let Some(change) = self.change.take() {
            let fault = change.fault;
            self.active.retain(|active| *active != fault);
            self.membership.push(change.into_outcome(now));
        }
        Ok(())
    }

    /// Whether a membership change is under way.
    pub(super) fn changing(&self) -> bool {
        self.change.is_some()
    }

    pub(super) fn heal_all(&mut self, cluster: &mut Cluster, now: Duration) -> Result<()> {
        // A change the run ended before it was over has nothing to heal: it failed.
        if let Some(change) = self.change.take() {
            let fault = change.fault;
            self.active.retain(|active| *active != fault);
            let outcome = change.into_outcome(now);
            let why = outcome.failure.clone().unwrap_or_default();
            self.event(
                now,
                format!("#{} membership_change: {why}", fault.planned.id),
            );
            self.membership.push(outcome);
        }
        for fault in std::mem::take(&mut self.active) {
            self.heal(cluster, &fault, now, " (final)")?;
        }
        self.event(now, "every fault healed".to_owned());
        Ok(())
    }

    /// A node that falls behind must catch up before it counts as a producer: one that comes
    /// back past the streams' window needs its peers for that, and one without a peer whose
    /// next height left a quorum of streams while it was away is stranded.
    fn after_heal(&mut self, cluster: &Cluster, fault: &ActiveFault, now: Duration) {
        let Some(node) = fault.node else {
            return;
        };
        // The tip, not the latest sample's highest node: that node may be the one frozen.
        let cluster_height = self.observer.tip();
        let fell_behind = matches!(fault.planned.kind, FaultKind::NodeFallBehind { .. });
        // A node whose disk failed stood aside meanwhile: it counts again once caught up.
        let disk_failed = matches!(fault.planned.kind, FaultKind::NodeDiskFull { .. });
        if (fell_behind && fault.stopped) || disk_failed {
            self.catching_up[node] = Some(cluster_height);
        }
        if self.stranded[node].is_some() {
            return;
        }
        let stopped = fault.stopped
            || matches!(
                fault.planned.kind,
                FaultKind::NodeKill { .. } | FaultKind::NodeFreeze { .. }
            );
        let height = if stopped {
            self.stopped_at[node]
        } else {
            self.observer
                .samples
                .last()
                .and_then(|sample| sample.heights[node])
        };
        let Some(height) = height else {
            return;
        };
        self.place_comeback(cluster, node, height, fell_behind, now);
    }

    /// Where `node`, back at `height` after time away from the chain, stands against the
    /// streams' window: within it, past it with peers (no producer until they bring it to the
    /// tip) or stranded without one. `announce` says so in the timeline even within the window.
    fn place_comeback(
        &mut self,
        cluster: &Cluster,
        node: usize,
        height: u64,
        announce: bool,
        now: Duration,
    ) {
        let cluster_height = self.observer.tip();
        let has_peers = cluster.nodes[node].has_peers;
        // The servers of the current list: a server a membership change retired holds nothing
        // the nodes read.
        let members = cluster.member_servers();
        let servers = members.len();
        let quorum = self.quorum;
        let place = comeback(height, cluster_height, has_peers, quorum, |probe| {
            streams::servers_holding(&members, probe)
        });
        match place {
            Comeback::Current => {}
            Comeback::WithinWindow { probe, held_by } => {
                if announce {
                    self.event(
                        now,
                        format!("n{node} back at height {height}, within the streams' window ({held_by} of {servers} servers hold height {probe})"),
                    );
                }
            }
            Comeback::CatchingUpFromPeers {
                probe,
                held_by,
                target,
            } => {
                let target = self.catching_up[node].map_or(target, |t| t.max(target));
                self.catching_up[node] = Some(target);
                self.event(
                    now,
                    format!("n{node} back at height {height}, past the streams' window ({held_by} of {servers} servers hold height {probe}; quorum {quorum}): no producer until its peers bring it to height {target}"),
                );
            }
            Comeback::Stranded {
                probe,
                held_by,
                next_height,
                target,
            } => {
                // Past the window, or within a second of its edge: say which, for the
                // post-mortem.
                let next_held_by = streams::servers_holding(&members, next_height);
                let edge = if next_held_by >= quorum {
                    "at the edge of"
                } else {
                    "past"
                };
                self.stranded[node] = Some(Stranding { next_height });
                self.catching_up[node] = Some(target);
                self.event(
                    now,
                    format!(
                        "n{node} back at height {height} without a peer, {edge} the streams' window ({next_held_by} of {servers} servers hold its next height, {held_by} hold height {probe}; quorum {quorum}): stranded, exempt from convergence"
                    ),
                );
            }
        }
    }

    /// The stranded nodes, as the checks judge them.
    pub(super) fn stranded_nodes(
        &self,
        chains: &[Vec<BlockSummary>],
        says: &[Option<String>],
        target: u64,
    ) -> Vec<StrandedNode> {
        self.stranded
            .iter()
            .enumerate()
            .filter_map(|(node, stranding)| {
                let stranding = stranding.as_ref()?;
                Some(StrandedNode {
                    node,
                    next_height: stranding.next_height,
                    // Without a target height production never resumed: nobody converged.
                    converged: target > 0 && chains[node].len() as u64 >= target,
                    says: says[node].clone(),
                })
            })
            .collect()
    }

    pub(super) fn print_progress(&self, now: Duration, leader: Option<usize>) {
        let heights: Vec<String> = self
            .observer
            .samples
            .last()
            .map(|s| {
                s.heights
                    .iter()
                    .map(|h| h.map_or("-".into(), |h| h.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let active: Vec<String> = self.active.iter().map(ActiveFault::describe).collect();
        eprintln!(
            "[{:>6.1}s] heights [{}] leader {} faults started {} active: {}",
            now.as_secs_f64(),
            heights.join(" "),
            leader.map_or("-".into(), |l| format!("n{l}")),
            self.started.len(),
            if active.is_empty() {
                "none".into()
            } else {
                active.join(", ")
            }
        );
    }
}

/// Submits one transaction with a unique payload to a random live node.
pub(super) fn submit_transaction(
    client: &Client,
    cluster: &Cluster,
    rng: &mut StdRng,
    seed: u64,
    accepted: &mut Vec<String>,
) {
    let live: Vec<_> = cluster.nodes.iter().filter(|n| n.is_live()).collect();
    if live.is_empty() {
        return;
    }
    let node = live[rng.gen_range(0..live.len())];
    let padding = "p".repeat(rng.gen_range(0..=MAX_PAYLOAD_PADDING));
    let payload = format!(
        "chaos seed {seed} transaction {} nonce {} {padding}",
        accepted.len(),
        rng.r#gen::<u64>()
    );
    if let Some(id) = client.submit(node.http, payload.as_bytes()) {
        accepted.push(id);
    }
}

/// Removes a fault's garbage, trying again a few times before the run gives up.
fn remove_garbage(cluster: &Cluster, planted: &Planted) -> Result<usize> {
    let mut last = String::new();
    for _ in 0..REMOVAL_ATTEMPTS {
        match corrupt::remove(&cluster.redis, planted) {
            Ok(undone) => return Ok(undone),
            Err(error) => last = error,
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!("cannot remove the garbage the run wrote: {last}")
}
