//! Probes: the adapter's own node clients, scripts and lease, driven one operation at a time
//! and outside the port, for the benchmark harness (the physical limit of one node, the naive
//! one-node-after-another baseline, lease acquisition) and for diagnosing a node by hand.
//!
//! Every call goes through exactly the code the port uses (the same fred client settings, the
//! same bounded `evalsha`, the same decoders), so a probe measures what production pays. The
//! port never uses this module, and nothing here relaxes a rule: writes are still fenced by
//! the lease and unique per height on the server.

use std::sync::Arc;

use poa_ports::{BlockCodec, Epoch, SealedBlockView};

use crate::config::RedisConfig;
use crate::error::{Error, ProbeError};
use crate::lease::{Lease, Role};
use crate::membership::read_and_join;
use crate::node::{BlockWrite, DetachedFleet, NodeHandle};
use crate::scripts::{NodeError, PromoteOutcome, WriteOutcome};

/// Nodes built from a configuration exactly as the adapter builds them, with their own token,
/// joined to the membership the nodes hold (or bootstrapping a blank fleet).
async fn probe_nodes(config: RedisConfig) -> Result<DetachedFleet, Error> {
    let token = format!("{:032x}", rand::random::<u128>());
    let fleet = DetachedFleet::connect(config, token).await?;
    read_and_join(&fleet.nodes, &fleet.tracker, &fleet.membership).await;
    Ok(fleet)
}

/// Every node of a configuration, each driven on its own: `PING`, a promote on that node
/// alone, and the raw `write_block` script, one call at a time.
#[derive(Debug)]
pub struct NodeProbe {
    inner: DetachedFleet,
}

impl NodeProbe {
    /// Builds and connects one client per `config.urls` entry, as the adapter does (nodes
    /// that are down keep reconnecting in the background).
    ///
    /// # Errors
    ///
    /// As [`crate::RedisReconciliation::connect`].
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        Ok(Self {
            inner: probe_nodes(config).await?,
        })
    }

    /// How many nodes the probe drives, in configuration order.
    pub fn nodes(&self) -> usize {
        self.inner.nodes.len()
    }

    /// One `PING` round trip to node `node` over the scripts' connection.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Unavailable`] when the node did not answer `PONG` in time, or `node` is
    /// out of range.
    pub async fn ping(&self, node: usize) -> Result<(), ProbeError> {
        let handle = self.node(node, "ping")?;
        handle
            .ping()
            .await
            .map_err(|error| unavailable("ping", handle, &error))
    }

    /// Takes (or re-arms) the lease on node `node` alone with this probe's token and returns
    /// the node's epoch: what the raw writes to that node are fenced by.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Refused`] when another token holds the lease there,
    /// [`ProbeError::Unavailable`] when the node did not answer.
    pub async fn take_lease(&self, node: usize) -> Result<Epoch, ProbeError> {
        let handle = self.node(node, "promote")?;
        match handle.promote(Epoch::new(0)).await {
            PromoteOutcome::Granted(epoch) => Ok(epoch),
            PromoteOutcome::HeldByAnother => Err(ProbeError::Refused {
                operation: "promote",
                node: handle.name().to_owned(),
                reason: "the lease is held by another token".to_owned(),
            }),
            PromoteOutcome::Unavailable(error) => Err(unavailable("promote", handle, &error)),
        }
    }

    /// One raw `write_block` script call on node `node`, fenced by `epoch`: exactly the call a
    /// publish makes to each node, without the fan-out or the quorum.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Refused`] when the write was fenced or the height holds another block,
    /// [`ProbeError::Unavailable`] when the outcome is unknown.
    pub async fn write_block<C: BlockCodec>(
        &self,
        node: usize,
        epoch: Epoch,
        block: &C::SealedBlock,
    ) -> Result<(), ProbeError> {
        let handle = self.node(node, "write_block")?;
        let write = BlockWrite::new(
            epoch,
            block.height(),
            block.id(),
            C::encode_block(block).into(),
        );
        match handle.write_block(&write).await {
            WriteOutcome::Written | WriteOutcome::AlreadyStored => Ok(()),
            WriteOutcome::HeightTaken => Err(ProbeError::Refused {
                operation: "write_block",
                node: handle.name().to_owned(),
                reason: format!("height {} holds another block", block.height()),
            }),
            WriteOutcome::HeightTrimmed => Err(ProbeError::Refused {
                operation: "write_block",
                node: handle.name().to_owned(),
                reason: format!(
                    "height {} is below the heights the node keeps",
                    block.height()
                ),
            }),
            WriteOutcome::Fenced { reason } => Err(ProbeError::Refused {
                operation: "write_block",
                node: handle.name().to_owned(),
                reason,
            }),
            WriteOutcome::Failed(error) => Err(unavailable("write_block", handle, &error)),
        }
    }

    fn node(&self, node: usize, operation: &'static str) -> Result<&NodeHandle, ProbeError> {
        self.inner
            .nodes
            .get(node)
            .ok_or_else(|| ProbeError::Unavailable {
                operation,
                node: format!("node #{node}"),
                reason: format!("the probe has {} nodes", self.inner.nodes.len()),
            })
    }
}

/// The adapter's lease alone: acquisition by concurrent promote with Redlock validity and
/// retries, exactly as a follower runs it before it may lead, and release.
#[derive(Debug)]
pub struct LeaseProbe {
    lease: Lease,
    /// Owns the nodes' background tasks, closed on drop.
    _nodes: DetachedFleet,
}

impl LeaseProbe {
    /// Builds and connects the nodes of `config` and a lease over them with a fresh token.
    ///
    /// # Errors
    ///
    /// As [`crate::RedisReconciliation::connect`].
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        let inner = probe_nodes(config).await?;
        let lease = Lease::new(
            &inner.config,
            Arc::clone(&inner.nodes),
            inner.tracker.clone(),
            Arc::clone(&inner.metrics),
            None,
        );
        Ok(Self {
            lease,
            _nodes: inner,
        })
    }

    /// Confirms the lease if this probe holds it, else tries to acquire it (with the
    /// configured attempts and retry delays). Returns the epoch when this probe leads.
    pub async fn acquire(&self) -> Option<Epoch> {
        match self.lease.role().await {
            Role::Leader { .. } => self.lease.state().epoch(),
            Role::Follower => None,
        }
    }

    /// Releases the lease on every node (each call bounded by the node timeout).
    pub async fn release(&self) {
        self.lease.release().await;
    }
}

fn unavailable(operation: &'static str, node: &NodeHandle, error: &NodeError) -> ProbeError {
    ProbeError::Unavailable {
        operation,
        node: node.name().to_owned(),
        reason: error.to_string(),
    }
}
