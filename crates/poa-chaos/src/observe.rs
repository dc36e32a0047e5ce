//! What the harness sees of the cluster while it runs: a timeline of heights, leaders and
//! whether a producer could produce, and every block any process incarnation ever reported at
//! any height (its head at every poll, and its chain, read every second and before a kill).
//!
//! It only reads (HTTP) and records; it never injects or heals a fault, and it judges nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::{BlockSummary, Client, NodeStatus};
use crate::cluster::Cluster;

/// Blocks fetched from one node per chain sample, so one sample stays short.
const BLOCKS_PER_SAMPLE: u64 = 100;
/// Time one chain sample may take over all nodes: the main loop samples heights meanwhile
/// (a longer pause would show as a stall); what is left is read at the next sample.
const CHAIN_SAMPLE_BUDGET: Duration = Duration::from_millis(150);
/// Time the read of a node's chain before it is stopped may take: longer, since what is not
/// read then may never be (the stop waits for it).
const BEFORE_STOP_BUDGET: Duration = Duration::from_millis(500);

/// One poll of every live node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When, from the start of the run.
    pub(crate) at: Duration,
    /// Each node's height, `None` when it did not answer (down, frozen, slow).
    pub(crate) heights: Vec<Option<u64>>,
    /// The lowest-numbered node claiming to lead, if any.
    pub(crate) leader: Option<usize>,
    /// Whether a producer that can produce was healthy: a live node, not left behind past the
    /// streams' window, reaching a Redis quorum through working links.
    pub(crate) producer_available: bool,
    /// What each node's `/status` said (the default when it did not answer).
    pub(crate) said: Vec<Said>,
}

/// What one node's `/status` said at a poll: who holds the lease and what failed, for the check
/// that a stop is reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Said {
    /// Whether it held the lease.
    pub(crate) holds_lease: bool,
    /// Its last cycle's failure, if its last cycle failed.
    pub(crate) last_error: Option<String>,
    /// What the Redis nodes answer while its calls to them fail.
    pub(crate) redis_errors: Vec<String>,
    /// Whether it did not count as a producer then (behind after a fault, or stranded).
    pub(crate) catching_up: bool,
}

impl Sample {
    /// The highest height any node reported.
    pub(crate) fn max_height(&self) -> Option<u64> {
        self.heights.iter().flatten().copied().max()
    }
}

/// The first report of one block at one height by one process incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    /// The block id, hex.
    pub(crate) id: String,
    /// The node it was read from.
    pub(crate) node: usize,
    /// The node's process incarnation (0 until its first restart).
    pub(crate) incarnation: u32,
    /// When.
    pub(crate) at: Duration,
}

/// Everything observed during the run.
#[derive(Debug)]
pub(crate) struct Observer {
    client: Client,
    /// Polls, in time order.
    pub(crate) samples: Vec<Sample>,
    /// Per height, the first sighting of each different block reported there, in order.
    pub(crate) sightings: BTreeMap<u64, Vec<Sighting>>,
    /// Per node, the height up to which the current incarnation's chain was read.
    read_up_to: Vec<u64>,
    /// Per node, the incarnation whose chain `read_up_to` counts.
    read_incarnation: Vec<u32>,
}

impl Observer {
    /// An observer of `nodes` nodes.
    pub(crate) fn new(client: Client, nodes: usize) -> Self {
        Self {
            client,
            samples: Vec::new(),
            sightings: BTreeMap::new(),
            read_up_to: vec![0; nodes],
            read_incarnation: vec![0; nodes],
        }
    }

    /// Polls every live node's status, records each head as a sighting and records the sample.
    /// `catching_up` marks the nodes that do not count as producers now (behind after a fault,
    /// or stranded): what they say does not explain a stop.
    pub(crate) fn poll(
        &mut self,
        at: Duration,
        cluster: &Cluster,
        producer_available: bool,
        catching_up: &[bool],
    ) -> &Sample {
        let statuses: Vec<Option<NodeStatus>> = cluster
            .nodes
            .iter()
            .map(|node| {
                node.is_live()
                    .then(|| self.client.status(node.http))
                    .flatten()
            })
            .collect();
        for (node, status) in statuses.iter().enumerate() {
            if let Some(status) = status {
                self.record_head(at, cluster, node, status);
            }
        }
        let sample = Sample {
            at,
            heights: statuses
                .iter()
                .map(|s| s.as_ref().map(|s| s.height))
                .collect(),
            leader: statuses
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.is_leader)),
            producer_available,
            said: statuses
                .iter()
                .enumerate()
                .map(|(node, status)| {
                    status.as_ref().map_or_else(Said::default, |status| Said {
                        holds_lease: status.holds_lease,
                        last_error: status.last_error.clone(),
                        redis_errors: status.redis_errors.clone(),
                        catching_up: catching_up.get(node).copied().unwrap_or(false),
                    })
                })
                .collect(),
        };
        self.samples.push(sample);
        &self.samples[self.samples.len() - 1]
    }

    /// Reads the blocks each live node gained since the last read (bounded per node) and
    /// records them. A restarted node's chain is read again from height 1.
    pub(crate) fn read_chains(&mut self, at: Duration, cluster: &Cluster) {
        let Some(latest) = self.samples.last().cloned() else {
            return;
        };
        let deadline = Instant::now() + CHAIN_SAMPLE_BUDGET;
        for node in cluster.nodes.iter().filter(|node| node.is_live()) {
            if let Some(height) = latest.heights[node.index] {
                self.read_chain(at, cluster, node.index, height, BLOCKS_PER_SAMPLE, deadline);
            }
        }
    }

    /// Reads every block of `node`'s chain not read yet, up to its head now, and returns that
    /// head's status: called before the node is stopped, so nothing it reported is missed.
    /// `None` when it does not answer.
    pub(crate) fn read_node(
        &mut self,
        at: Duration,
        cluster: &Cluster,
        node: usize,
    ) -> Option<NodeStatus> {
        let status = self.client.status(cluster.nodes[node].http)?;
        self.record_head(at, cluster, node, &status);
        let deadline = Instant::now() + BEFORE_STOP_BUDGET;
        self.read_chain(at, cluster, node, status.height, u64::MAX, deadline);
        Some(status)
    }

    fn read_chain(
        &mut self,
        at: Duration,
        cluster: &Cluster,
        node: usize,
        head: u64,
        most: u64,
        deadline: Instant,
    ) {
        let incarnation = cluster.nodes[node].incarnation();
        if self.read_incarnation[node] != incarnation {
            self.read_incarnation[node] = incarnation;
            self.read_up_to[node] = 0;
        }
        let from = self.read_up_to[node] + 1;
        let to = head.min(self.read_up_to[node].saturating_add(most));
        for height in from..=to {
            if Instant::now() >= deadline {
                break;
            }
            match self.client.block(cluster.nodes[node].http, height) {
                Some(Some(block)) => {
                    self.record(height, sighting(&block, node, incarnation, at));
                    self.read_up_to[node] = height;
                }
                // A restart may lower the head for a moment; try again next time.
                Some(None) | None => break,
            }
        }
    }

    fn record_head(&mut self, at: Duration, cluster: &Cluster, node: usize, status: &NodeStatus) {
        if status.height == 0 {
            return;
        }
        let sighting = Sighting {
            id: status.head_id.clone(),
            node,
            incarnation: cluster.nodes[node].incarnation(),
            at,
        };
        self.record(status.height, sighting);
    }

    /// The highest height any node reported so far: the chain's tip as the run knows it, which
    /// the latest sample alone may miss (its nodes frozen, killed or behind).
    pub(crate) fn tip(&self) -> u64 {
        self.sightings.keys().next_back().copied().unwrap_or(0)
    }

    /// Records a report of a block at `height`, unless that block was already reported there.
    pub(crate) fn record(&mut self, height: u64, sighting: Sighting) {
        let seen = self.sightings.entry(height).or_default();
        if !seen.iter().any(|earlier| earlier.id == sighting.id) {
            seen.push(sighting);
        }
    }
}

fn sighting(block: &BlockSummary, node: usize, incarnation: u32, at: Duration) -> Sighting {
    Sighting {
        id: block.id.clone(),
        node,
        incarnation,
        at,
    }
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    fn seen(node: usize, id: &str, at_ms: u64) -> Sighting {
        Sighting {
            id: id.to_owned(),
            node,
            incarnation: 0,
            at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn tip__when_the_highest_reporter_falls_silent__then_still_its_height() {
        // given: n0 reported height 240, then only n1 (stuck at 105) answered
        let mut observer = Observer::new(Client::new(Duration::from_secs(1)), 2);
        observer.record(105, seen(1, "b105", 100));
        observer.record(240, seen(0, "b240", 200));
        observer.record(105, seen(1, "b105", 300));

        // when / then
        assert_eq!(observer.tip(), 240);
    }

    #[test]
    fn tip__when_nothing_was_reported__then_zero() {
        // given / when / then
        assert_eq!(
            Observer::new(Client::new(Duration::from_secs(1)), 2).tip(),
            0
        );
    }
}
