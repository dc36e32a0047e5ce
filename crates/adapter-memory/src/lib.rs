//! An in-memory `BlockReconciliationPort` for unit tests: the shared quorum log of
//! `docs/protocol.md` as one log in a `Mutex`, that several producer handles share, with
//! switches a test flips to inject the faults a real fleet meets. A node team swaps it in for
//! the Redis adapter (or for a mock) when a test reads better as "two producers on one log"
//! than as a list of expected calls. It performs no I/O and never waits.
//!
//! # What it keeps of the port's contract
//!
//! - **One lease, one owner, a rising epoch.** [`MemoryBlockLog::producer`] makes a producer
//!   process; the first whose `leader_state` finds the lease free leads, every new leadership
//!   gets an epoch above the log's and above every epoch that process held before, a leader's
//!   `leader_state` and publishes renew it, and the others follow.
//! - **Fenced publish.** A publish without the lease is `NoEpoch` (the genesis block, at height 0,
//!   excepted: `Ok`, not written); from a leader whose lease is gone (lapsed, or taken by
//!   another) or whose epoch is stale it is `Fenced`; a second block at a height is
//!   `HeightTaken`, the same block again is `Ok`. The log never holds two blocks at one height.
//! - **Reconciliation.** `leader_state` and `follower_state` hand back the blocks above the
//!   caller's head that extend it, in height order: what another producer published and this
//!   one has not imported. A block at the next height that does not extend the head is
//!   `Diverged`, a missing next height with blocks above it is `HistoryGap`, and a new
//!   leadership's first scan (or the first after a failed publish) whose head the log no
//!   longer reaches is `LogBehindHead`.
//! - **Release** is idempotent, and dropping the last clone of a handle releases too.
//!
//! # Fault switches
//!
//! On the log: [`MemoryBlockLog::expire_lease`] (the holder stopped renewing: its next publish
//! is fenced) and [`MemoryBlockLog::append_backlog`] (blocks another producer published that no
//! handle has imported; also how a test starts from an existing chain). On one producer:
//! [`MemoryReconciliation::lose_lease_before_next_publish`],
//! [`MemoryReconciliation::refuse_next_publish`],
//! [`MemoryReconciliation::lose_next_publish_reply`] (the block is on the log, the caller gets
//! an unknown outcome) and [`MemoryReconciliation::time_out_next_call`]. Each producer switch is
//! used up by the one call it affects.
//!
//! # What it does not model
//!
//! There is no quorum of nodes: the one log stands for a quorum, so a block is either on it
//! (committed) or not, and errors name a quorum of 1. Hence no partial writes, no repair of
//! blocks below quorum, no anti-entropy, no votes between disagreeing nodes, no trimmed
//! streams (a gap appears only where a test leaves one), no node clocks (`time_reference` is
//! `None`) and no per-node status. Blocks are not verified: only what a test publishes or
//! appends is on the log. The lease lapses only by [`MemoryBlockLog::expire_lease`] unless the
//! log has a TTL ([`MemoryBlockLog::with_lease_ttl`], on tokio's clock, so a test lets paused
//! time pass instead of sleeping); a timeout is a switch, never a delay.
//!
//! # An embedder's unit test
//!
//! Two producer processes on one log: one leads and publishes, the other follows and imports
//! the block; when the leader freezes past its lease, the other takes over and the old
//! leader's late publish is fenced.
//!
//! ```rust
//! use adapter_memory::MemoryBlockLog;
//! use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock, transactions_root};
//! use poa_ports::{
//!     BlockHeight, BlockId, BlockReconciliationPort, ChainHead, ChainId, LeaderState,
//!     ReconciliationError, Signature, Timestamp,
//! };
//!
//! /// An empty block on top of `parent`, as the embedder's producer and signer would make it.
//! fn block_on(parent: ChainHead, millis: u64) -> SealedBlock {
//!     let header = Header {
//!         chain_id: ChainId::new(1),
//!         height: parent.next_height().unwrap(),
//!         parent_id: parent.id,
//!         timestamp: Timestamp::from_unix_millis(millis),
//!         transactions_root: transactions_root(&[]),
//!         transaction_count: 0,
//!     };
//!     let block = Block { header, transactions: vec![] };
//!     SealedBlock { block, seal: Seal::Authority(Signature::from_bytes([7; 64])) }
//! }
//!
//! fn head_of(block: &SealedBlock) -> ChainHead {
//!     ChainHead::of(&block.block.header)
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), ReconciliationError> {
//!     // given: two producer processes on one log, both at genesis
//!     let log = MemoryBlockLog::<ReferenceChain>::new();
//!     let first = log.producer();
//!     let second = log.producer();
//!     let genesis = ChainHead { height: BlockHeight::GENESIS, id: BlockId::default() };
//!
//!     // when: the first leads and publishes height 1
//!     assert_eq!(first.leader_state(genesis).await?, LeaderState::ReconciledLeader);
//!     assert_eq!(second.leader_state(genesis).await?, LeaderState::ReconciledFollower);
//!     let one = block_on(genesis, 1_000);
//!     first.publish_produced_block(&one).await?;
//!
//!     // then: the follower is handed the block to import, and cannot publish its own
//!     assert_eq!(
//!         second.leader_state(genesis).await?,
//!         LeaderState::UnreconciledBlocks(vec![one.clone()])
//!     );
//!     let rival = block_on(genesis, 2_000);
//!     assert!(matches!(
//!         second.publish_produced_block(&rival).await,
//!         Err(ReconciliationError::NoEpoch)
//!     ));
//!
//!     // when: the leader freezes past its lease and the follower (now at height 1) takes over
//!     log.expire_lease();
//!     assert_eq!(second.leader_state(head_of(&one)).await?, LeaderState::ReconciledLeader);
//!     let two = block_on(head_of(&one), 3_000);
//!     second.publish_produced_block(&two).await?;
//!
//!     // then: the old leader's late publish at height 2 is fenced, and the log kept one block
//!     // per height
//!     let late = block_on(head_of(&one), 4_000);
//!     assert!(matches!(
//!         first.publish_produced_block(&late).await,
//!         Err(ReconciliationError::Fenced { .. })
//!     ));
//!     assert_eq!(log.blocks(), vec![one, two]);
//!     assert_eq!(log.lease_holder(), Some(second.id()));
//!     Ok(())
//! }
//! ```

//!
//! # Driving the production service
//!
//! The same log under a whole producer process: `poa_core::ProductionService` over the
//! embedder's own chain, store, producer and signer (here the repository's example chain,
//! `fuel_style_chain`, stands for yours), with this port in place of the Redis adapter. The
//! manual trigger lets the test decide when each cycle runs; each switch is one fault a fleet
//! meets.
//!
//! ```rust
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use adapter_memory::MemoryBlockLog;
//! use fuel_style_chain::{
//!     AuthorityKey, ChainSettings, FuelBlock, FuelStyleChain, FuelStyleNode,
//!     Secp256k1BlockSigner,
//! };
//! use poa_core::{CycleOutcome, ProductionService, ServiceConfig, Trigger};
//! use poa_ports::{BlockHeight, BlockImporter, BlockSigner};
//! use prometheus_client::registry::Registry;
//!
//! fn produced_height(outcome: CycleOutcome) -> Option<u64> {
//!     match outcome {
//!         CycleOutcome::Produced { height, .. } => Some(height.get()),
//!         _ => None,
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     // given: one producer process of the embedder's chain on an in-memory log
//!     let authority = AuthorityKey::generate();
//!     let settings = ChainSettings { consensus_parameters_version: 1, max_transactions: 16 };
//!     let node = FuelStyleNode::new(authority.clone(), settings);
//!     let log = MemoryBlockLog::<FuelStyleChain>::new();
//!     let port = log.producer();
//!     let config =
//!         ServiceConfig::new(Trigger::Manual, Duration::from_millis(100), Duration::from_secs(1))
//!             .unwrap();
//!     let ports = node.ports(Arc::new(port.clone()));
//!     let (service, handle) = ProductionService::new(config, ports, &mut Registry::default());
//!     tokio::spawn(service.run(std::future::pending()));
//!     assert_eq!(produced_height(handle.produce_block().await.unwrap()), Some(1));
//!
//!     // when: the lease is lost between the cycle's check and the publish
//!     port.lose_lease_before_next_publish();
//!     let fenced = handle.produce_block().await.unwrap();
//!
//!     // then: the block is fenced and not committed; the next cycle leads again, higher epoch
//!     assert!(matches!(fenced, CycleOutcome::Failed { step: "publish", .. }), "{fenced:?}");
//!     assert_eq!(node.store.height(), BlockHeight::new(1));
//!     assert_eq!(produced_height(handle.produce_block().await.unwrap()), Some(2));
//!     assert!(log.epoch_at(BlockHeight::new(2)) > log.epoch_at(BlockHeight::new(1)));
//!
//!     // when: the publish is refused (too few nodes stored the block)
//!     port.refuse_next_publish();
//!     let refused = handle.produce_block().await.unwrap();
//!
//!     // then: nothing is committed or logged
//!     assert!(matches!(refused, CycleOutcome::Failed { step: "publish", .. }), "{refused:?}");
//!     assert_eq!((node.store.height(), log.top()), (BlockHeight::new(2), Some(BlockHeight::new(2))));
//!
//!     // when: another producer published height 3 meanwhile (a backlog)
//!     let parent = node.store.latest_header().await.unwrap();
//!     let block = FuelBlock::build_on(&parent, parent.time, 1, Vec::new()).unwrap();
//!     let theirs = Secp256k1BlockSigner::new(authority).seal(block).unwrap();
//!     log.append_backlog([theirs.clone()]).unwrap();
//!
//!     // then: the service imports it before it produces height 4 on it
//!     assert_eq!(produced_height(handle.produce_block().await.unwrap()), Some(4));
//!     assert_eq!(node.store.block_at(BlockHeight::new(3)).await.unwrap(), Some(theirs));
//! }
//! ```

mod error;
mod log;
mod reconciliation;
mod state;

pub use error::AppendError;
pub use log::{MemoryBlockLog, ProducerId};
pub use reconciliation::MemoryReconciliation;

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
