//! What the harness sees of the cluster while it runs: a timeline of heights, leaders and Redis
//! reachability, and every block sighted on any node, first sighting kept.
//!
//! It only reads (HTTP) and records; it never injects or heals a fault, and it judges nothing
//! except the one thing only visible live: two different blocks sighted at one height.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{BlockSummary, Client};
use crate::cluster::Cluster;

/// Blocks fetched from one node per chain sample, so one sample stays short.
const BLOCKS_PER_SAMPLE: u64 = 100;

/// One poll of every live node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When, from the start of the run.
    pub(crate) at: Duration,
    /// Each node's height, `None` when it did not answer (down, frozen, slow).
    pub(crate) heights: Vec<Option<u64>>,
    /// The lowest-numbered node claiming to lead, if any.
    pub(crate) leader: Option<usize>,
    /// Whether some live node reached a Redis quorum through working links.
    pub(crate) quorum_reachable: bool,
}

impl Sample {
    /// The highest height any node reported.
    pub(crate) fn max_height(&self) -> Option<u64> {
        self.heights.iter().flatten().copied().max()
    }
}

/// The first sighting of a block at a height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    /// The block.
    pub(crate) block: BlockSummary,
    /// The node it was read from.
    pub(crate) node: usize,
    /// When.
    pub(crate) at: Duration,
}

/// A block sighted at a height where another block had been sighted before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The height.
    pub(crate) height: u64,
    /// The earlier sighting.
    pub(crate) first: Sighting,
    /// The later, different one.
    pub(crate) second: Sighting,
}

/// Everything observed during the run.
#[derive(Debug)]
pub(crate) struct Observer {
    client: Client,
    /// Polls, in time order.
    pub(crate) samples: Vec<Sample>,
    /// The first block sighted at each height.
    pub(crate) sightings: BTreeMap<u64, Sighting>,
    /// Different blocks sighted at one height.
    pub(crate) conflicts: Vec<Conflict>,
    /// Per node, the height up to which its chain was read.
    read_up_to: Vec<u64>,
}

impl Observer {
    /// An observer of `nodes` nodes.
    pub(crate) fn new(client: Client, nodes: usize) -> Self {
        Self {
            client,
            samples: Vec::new(),
            sightings: BTreeMap::new(),
            conflicts: Vec::new(),
            read_up_to: vec![0; nodes],
        }
    }

    /// Polls every live node's status and records the sample.
    pub(crate) fn poll(
        &mut self,
        at: Duration,
        cluster: &Cluster,
        quorum_reachable: bool,
    ) -> &Sample {
        let statuses: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| {
                node.is_live()
                    .then(|| self.client.status(node.http))
                    .flatten()
            })
            .collect();
        let sample = Sample {
            at,
            heights: statuses.iter().map(|s| s.map(|s| s.height)).collect(),
            leader: statuses.iter().position(|s| s.is_some_and(|s| s.is_leader)),
            quorum_reachable,
        };
        self.samples.push(sample);
        &self.samples[self.samples.len() - 1]
    }

    /// Reads the blocks each live node gained since the last read (bounded per node) and
    /// records first sightings and conflicts.
    pub(crate) fn read_chains(&mut self, at: Duration, cluster: &Cluster) {
        let Some(latest) = self.samples.last().cloned() else {
            return;
        };
        for node in cluster.nodes.iter().filter(|node| node.is_live()) {
            let Some(height) = latest.heights[node.index] else {
                continue;
            };
            let from = self.read_up_to[node.index] + 1;
            let to = height.min(self.read_up_to[node.index] + BLOCKS_PER_SAMPLE);
            for h in from..=to {
                match self.client.block(node.http, h) {
                    Some(Some(block)) => {
                        self.record(
                            h,
                            Sighting {
                                block,
                                node: node.index,
                                at,
                            },
                        );
                        self.read_up_to[node.index] = h;
                    }
                    // A restart may lower the head for a moment; try again next time.
                    Some(None) | None => break,
                }
            }
        }
    }

    /// Records a sighting of a block at `height`, noting a conflict with an earlier one.
    pub(crate) fn record(&mut self, height: u64, sighting: Sighting) {
        match self.sightings.get(&height) {
            None => {
                self.sightings.insert(height, sighting);
            }
            Some(first) if first.block.id != sighting.block.id => {
                self.conflicts.push(Conflict {
                    height,
                    first: first.clone(),
                    second: sighting,
                });
            }
            Some(_) => {}
        }
    }
}
