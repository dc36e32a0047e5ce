//! Behaviour of the production loop, driven through mockall doubles of every port (or
//! `adapter-memory`'s shared log in place of the reconciliation mock) and tokio's paused clock.

#![allow(
    clippy::arithmetic_side_effects,
    reason = "test arithmetic on small constants"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, ReferenceChain, Seal, SealedBlock};
use async_trait::async_trait;
use mockall::{Sequence, mock, predicate};
use poa_ports::BlockHistorySource;
use poa_ports::{
    BlockHeight, BlockId, BlockImporter, BlockProducer, BlockReconciliationPort, BlockSigner,
    ChainHead, ChainId, Clock, ImportError, LeaderState, LeaseStatus, ParentBlock, ProductionError,
    ReconciliationError, Signature, SigningError, Timestamp, TransactionPool,
};
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{CycleOutcome, Ports, ProductionService, ServiceHandle};
use crate::config::{ServiceConfig, Trigger};
use crate::status::Role;

mod handover;
mod history;
mod log_loss;
mod memory_log;
mod own_chain;
mod pipeline;

mock! {
    Reconciliation {}
    #[async_trait]
    impl BlockReconciliationPort<ReferenceChain> for Reconciliation {
        async fn leader_state(&self, head: ChainHead) -> Result<LeaderState<SealedBlock>, ReconciliationError>;
        async fn follower_state(&self, head: ChainHead) -> Result<LeaderState<SealedBlock>, ReconciliationError>;
        async fn release(&self) -> Result<(), ReconciliationError>;
        async fn publish_produced_block(&self, block: &SealedBlock) -> Result<(), ReconciliationError>;
        fn lease_status(&self) -> LeaseStatus;
        fn time_reference(&self) -> Option<Timestamp>;
    }
}

mock! {
    Importer {}
    #[async_trait]
    impl BlockImporter<ReferenceChain> for Importer {
        async fn latest_header(&self) -> Result<Header, ImportError>;
        async fn verify(&self, block: &SealedBlock) -> Result<(), ImportError>;
        async fn verify_on_committing(&self, block: &SealedBlock, committing: &SealedBlock) -> Result<(), ImportError>;
        async fn commit(&self, block: SealedBlock) -> Result<(), ImportError>;
        async fn block_at(&self, height: BlockHeight) -> Result<Option<SealedBlock>, ImportError>;
    }
}

/// What a producer double is asked to build on: the parent's place, and whether its commit was
/// still running. (mockall cannot mock an argument type that borrows, as `ParentBlock` does.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    height: BlockHeight,
    id: BlockId,
    committing: bool,
}

impl Parent {
    fn height(&self) -> BlockHeight {
        self.height
    }

    fn id(&self) -> BlockId {
        self.id
    }
}

mock! {
    Producer {
        fn produce_on(&self, parent: Parent, timestamp: Timestamp) -> Result<Block, ProductionError>;
    }
}

#[async_trait]
impl BlockProducer<ReferenceChain> for MockProducer {
    async fn produce_block(
        &self,
        parent: ParentBlock<'_, ReferenceChain>,
        timestamp: Timestamp,
    ) -> Result<Block, ProductionError> {
        let parent = Parent {
            height: parent.height(),
            id: parent.id(),
            committing: matches!(parent, ParentBlock::Committing(_)),
        };
        self.produce_on(parent, timestamp)
    }
}

mock! {
    Signer {}
    impl BlockSigner<ReferenceChain> for Signer {
        fn seal(&self, block: Block) -> Result<SealedBlock, SigningError>;
    }
}

/// A pool double that really waits: `wait_for_pending` cannot be expressed with a mockall
/// expectation, whose returning closure cannot await.
#[derive(Default)]
struct FakePool {
    pending: AtomicUsize,
    arrived: Notify,
}

impl FakePool {
    fn add_pending(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
    }
}

#[async_trait]
impl TransactionPool for FakePool {
    fn pending_count(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    async fn wait_for_pending(&self) {
        loop {
            let arrived = self.arrived.notified();
            if self.pending_count() > 0 {
                return;
            }
            arrived.await;
        }
    }
}

mock! {
    WallClock {}
    impl Clock for WallClock {
        fn now(&self) -> Timestamp;
    }
}

const BLOCK_TIME: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_millis(100);

fn header_at(height: u64, parent_id: BlockId) -> Header {
    Header {
        chain_id: ChainId::new(1),
        height: BlockHeight::new(height),
        parent_id,
        timestamp: Timestamp::from_unix_millis(1_000 + height),
        transactions_root: transactions_root(&[]),
        transaction_count: 0,
    }
}

fn sealed(header: Header) -> SealedBlock {
    SealedBlock {
        block: Block {
            header,
            transactions: vec![],
        },
        seal: Seal::Authority(Signature::from_bytes([7; 64])),
    }
}

/// A chain of sealed blocks from height 1 to `to`, linked to a genesis header.
fn chain_to(to: u64) -> (Header, Vec<SealedBlock>) {
    let genesis = header_at(0, BlockId::default());
    let mut parent = genesis.id();
    let mut blocks = Vec::new();
    for height in 1..=to {
        let block = sealed(header_at(height, parent));
        parent = block.id();
        blocks.push(block);
    }
    (genesis, blocks)
}

/// Mocks with permissive defaults for the calls a test does not care about; each test adds its
/// own expectations first (mockall matches the earliest matching expectation).
struct Doubles {
    reconciliation: MockReconciliation,
    importer: MockImporter,
    producer: MockProducer,
    signer: MockSigner,
    pool: Arc<FakePool>,
    clock: MockWallClock,
    head: Arc<Mutex<Header>>,
    history: Option<Arc<dyn BlockHistorySource<ReferenceChain>>>,
    /// A reconciliation port that replaces the mock, when a test runs on a fake log.
    port: Option<Arc<dyn BlockReconciliationPort<ReferenceChain>>>,
    /// A local chain that replaces the importer mock.
    local_chain: Option<Arc<dyn BlockImporter<ReferenceChain>>>,
}

impl Doubles {
    fn new() -> Self {
        let head = Arc::new(Mutex::new(header_at(0, BlockId::default())));
        let mut clock = MockWallClock::new();
        clock
            .expect_now()
            .returning(|| Timestamp::from_unix_millis(5_000));
        Self {
            reconciliation: MockReconciliation::new(),
            importer: MockImporter::new(),
            producer: MockProducer::new(),
            signer: MockSigner::new(),
            pool: Arc::new(FakePool::default()),
            clock,
            head,
            history: None,
            port: None,
            local_chain: None,
        }
    }

    /// Runs the service on `port` instead of the reconciliation mock (whose expectations then
    /// go unused).
    fn on_port(mut self, port: impl BlockReconciliationPort<ReferenceChain> + 'static) -> Self {
        self.port = Some(Arc::new(port));
        self
    }

    /// Runs the service on `importer` instead of the importer mock (whose expectations then go
    /// unused).
    fn on_importer(mut self, importer: Arc<dyn BlockImporter<ReferenceChain>>) -> Self {
        self.local_chain = Some(importer);
        self
    }

    /// `latest_header` answers from the shared head, and `commit` advances it.
    fn with_local_chain(mut self) -> Self {
        let head = Arc::clone(&self.head);
        self.importer
            .expect_latest_header()
            .returning(move || Ok(head.lock().unwrap().clone()));
        self
    }

    fn commit_advances_head(&mut self) {
        let head = Arc::clone(&self.head);
        self.importer.expect_commit().returning(move |block| {
            *head.lock().unwrap() = block.block.header;
            Ok(())
        });
    }

    /// Every release succeeds; the returned counter counts them.
    fn counting_releases(&mut self) -> Arc<AtomicUsize> {
        let releases = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&releases);
        self.reconciliation.expect_release().returning(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        releases
    }

    /// The whole produce path succeeds: produce, seal, verify, publish, commit.
    fn publishing_and_committing(&mut self) {
        self.producing_empty_blocks();
        self.importer.expect_verify().returning(|_| Ok(()));
        self.importer
            .expect_verify_on_committing()
            .returning(|_, _| Ok(()));
        self.reconciliation
            .expect_publish_produced_block()
            .returning(|_| Ok(()));
        self.commit_advances_head();
    }

    /// Expects `blocks` to be verified and committed once each, in this order.
    fn expect_import_in_order(&mut self, blocks: &[&SealedBlock]) {
        let mut order = Sequence::new();
        for block in blocks {
            let id = block.id();
            self.importer
                .expect_verify()
                .withf(move |candidate| candidate.id() == id)
                .times(1)
                .in_sequence(&mut order)
                .returning(|_| Ok(()));
            let head = Arc::clone(&self.head);
            self.importer
                .expect_commit()
                .withf(move |candidate| candidate.id() == id)
                .times(1)
                .in_sequence(&mut order)
                .returning(move |block| {
                    *head.lock().unwrap() = block.block.header;
                    Ok(())
                });
        }
    }

    /// A producer that builds an empty block on its parent and a signer that seals it.
    fn producing_empty_blocks(&mut self) {
        self.producer.expect_produce_on().returning(|parent, _| {
            Ok(sealed(header_at(parent.height().get() + 1, parent.id())).block)
        });
        self.signer.expect_seal().returning(|block| {
            Ok(SealedBlock {
                block,
                seal: Seal::Authority(Signature::from_bytes([7; 64])),
            })
        });
    }

    fn start(self, trigger: Trigger) -> Running {
        self.start_with(ServiceConfig::new(trigger, RETRY, Duration::from_secs(1)).unwrap())
    }

    fn start_with(self, config: ServiceConfig) -> Running {
        let reconciliation = self.port.unwrap_or_else(|| {
            Arc::new(self.reconciliation) as Arc<dyn BlockReconciliationPort<ReferenceChain>>
        });
        let ports = Ports {
            reconciliation,
            importer: self.local_chain.unwrap_or_else(|| {
                Arc::new(self.importer) as Arc<dyn BlockImporter<ReferenceChain>>
            }),
            producer: Arc::new(self.producer),
            signer: Arc::new(self.signer),
            pool: self.pool,
            clock: Arc::new(self.clock),
        };
        let (service, handle) = ProductionService::new(config, ports, &mut Registry::default());
        let service = match self.history {
            Some(history) => service.with_block_history(history),
            None => service,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async move {
            let _ = stopped.await;
        }));
        Running {
            handle,
            stop: Some(stop),
            task,
            head: self.head,
        }
    }
}

/// Asserts that the status shows a failed cycle and standing aside for a reason that starts
/// with `reason`.
fn assert_standing_aside(status: &crate::status::ServiceStatus, reason: &str) {
    assert_eq!(status.role, Role::Degraded);
    assert!(
        status
            .standing_aside
            .as_deref()
            .is_some_and(|aside| aside.starts_with(reason)),
        "{:?}",
        status.standing_aside
    );
}

/// Lets `duration` of paused time pass in 10 ms steps, so the service task runs between steps.
async fn let_time_pass(duration: Duration) {
    let step = Duration::from_millis(10);
    let mut passed = Duration::ZERO;
    while passed < duration {
        tokio::time::advance(step).await;
        passed += step;
    }
}

struct Running {
    handle: ServiceHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    head: Arc<Mutex<Header>>,
}

impl Running {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("service did not stop")
            .expect("service panicked");
    }

    fn head_height(&self) -> u64 {
        self.head.lock().unwrap().height.get()
    }
}

#[tokio::test(start_paused = true)]
async fn produce__when_leader__then_verifies_publishes_and_only_then_commits() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    let mut order = Sequence::new();
    doubles
        .reconciliation
        .expect_leader_state()
        .with(predicate::function(|head: &ChainHead| {
            *head == ChainHead::of(&header_at(0, BlockId::default()))
        }))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles
        .producer
        .expect_produce_on()
        .times(1)
        .in_sequence(&mut order)
        .returning(|parent, _| Ok(sealed(header_at(1, parent.id())).block));
    doubles
        .signer
        .expect_seal()
        .times(1)
        .in_sequence(&mut order)
        .returning(|block| {
            Ok(SealedBlock {
                block,
                seal: Seal::Authority(Signature::from_bytes([7; 64])),
            })
        });
    doubles
        .importer
        .expect_verify()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(()));
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(()));
    let head = Arc::clone(&doubles.head);
    doubles
        .importer
        .expect_commit()
        .times(1)
        .in_sequence(&mut order)
        .returning(move |block| {
            *head.lock().unwrap() = block.block.header;
            Ok(())
        });
    // Later cycles: keep leading, produce nothing more (manual trigger timer cycles).
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    assert!(
        matches!(outcome, CycleOutcome::Produced { height, .. } if height == BlockHeight::new(1))
    );
    assert_eq!(running.head_height(), 1);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_publish_fails__then_commits_nothing_and_releases_the_lease() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producing_empty_blocks();
    doubles.importer.expect_verify().returning(|_| Ok(()));
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .returning(|_| {
            Err(ReconciliationError::NoQuorum {
                operation: "publish",
                acked: 1,
                needed: 2,
            })
        });
    doubles.importer.expect_commit().never();
    // Once for the failed publish; shutdown may release again.
    doubles
        .reconciliation
        .expect_release()
        .times(1..)
        .returning(|| Ok(()));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    assert!(matches!(
        outcome,
        CycleOutcome::Failed {
            step: "publish",
            ..
        }
    ));
    assert_eq!(running.head_height(), 0);
    assert_eq!(running.handle.status().role, Role::Degraded);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_a_quorum_refuses_the_height__then_commits_nothing_and_keeps_the_lease() {
    // given: every publish is refused by a quorum holding something else at the height
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producing_empty_blocks();
    doubles.importer.expect_verify().returning(|_| Ok(()));
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .returning(|block| {
            Err(ReconciliationError::HeightTaken {
                height: block.height(),
            })
        });
    doubles.importer.expect_commit().never();
    let releases = doubles.counting_releases();
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when
    let_time_pass(Duration::from_millis(500)).await;

    // then: nothing committed, and the lease never released (no churn of leaderships)
    assert_eq!(running.head_height(), 0);
    assert_eq!(releases.load(Ordering::SeqCst), 0);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_the_produced_block_fails_verification__then_publishes_nothing() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producing_empty_blocks();
    doubles.importer.expect_verify().returning(|block| {
        Err(ImportError::InvalidSeal {
            height: block.height(),
        })
    });
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    doubles.importer.expect_commit().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    assert!(matches!(
        outcome,
        CycleOutcome::Failed { step: "verify", .. }
    ));
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_follower__then_never_produces_and_never_spins() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    let calls = Arc::new(Mutex::new(0_u32));
    let counted = Arc::clone(&calls);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            *counted.lock().unwrap() += 1;
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.producer.expect_produce_on().never();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    doubles.importer.expect_commit().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when: one second of paused time passes in small steps
    let_time_pass(Duration::from_secs(1)).await;

    // then: about one check per retry period (10 in a second), never a busy loop
    let calls = *calls.lock().unwrap();
    assert!(
        (5..=15).contains(&calls),
        "leader_state called {calls} times in 1 s"
    );
    assert_eq!(running.handle.status().role, Role::Follower);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn import__when_blocks_are_unreconciled__then_imports_in_height_order_and_skips_local_ones() {
    // given: the local chain holds height 1; the log returns 3, 1, 2 out of order
    let (_, blocks) = chain_to(3);
    let mut doubles = Doubles::new().with_local_chain();
    *doubles.head.lock().unwrap() = blocks[0].block.header.clone();
    let returned = vec![blocks[2].clone(), blocks[0].clone(), blocks[1].clone()];
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(move |_| Ok(LeaderState::UnreconciledBlocks(returned.clone())));
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    doubles.expect_import_in_order(&[&blocks[1], &blocks[2]]);
    doubles.producer.expect_produce_on().never();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then: two imported, then the next cycle found a follower and produced nothing
    assert_eq!(running.head_height(), 3);
    assert_eq!(outcome, CycleOutcome::Follower);
    assert_eq!(running.handle.status().blocks_imported, 2);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn import__when_a_reconciled_block_is_invalid__then_refuses_it_releases_the_lease_and_only_follows()
 {
    // given: the log hands back a block this process refuses, every cycle
    let (_, blocks) = chain_to(2);
    let mut doubles = Doubles::new().with_local_chain();
    let returned = blocks.clone();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(move |_| Ok(LeaderState::UnreconciledBlocks(returned.clone())));
    let returned = blocks.clone();
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(move |_| Ok(LeaderState::UnreconciledBlocks(returned.clone())));
    doubles.importer.expect_verify().returning(|block| {
        Err(ImportError::InvalidSeal {
            height: block.height(),
        })
    });
    doubles.importer.expect_commit().never();
    doubles.producer.expect_produce_on().never();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    let releases = doubles.counting_releases();
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when
    let_time_pass(Duration::from_millis(350)).await;

    // then: released once, never competed again, and says why
    assert_eq!(running.head_height(), 0);
    assert_standing_aside(&running.handle.status(), "import:");
    assert_eq!(releases.load(Ordering::SeqCst), 1);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn import__when_local_storage_fails_then_recovers__then_stands_aside_and_competes_again_once_caught_up()
 {
    // given: the first commit fails (a full disk), later ones succeed
    let (_, blocks) = chain_to(1);
    let mut doubles = Doubles::new().with_local_chain();
    let returned = blocks.clone();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(move |_| Ok(LeaderState::UnreconciledBlocks(returned.clone())));
    let returned = blocks.clone();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(move |head| {
            counter.fetch_add(1, Ordering::SeqCst);
            if head.height.get() == 0 {
                Ok(LeaderState::UnreconciledBlocks(returned.clone()))
            } else {
                Ok(LeaderState::ReconciledFollower)
            }
        });
    let competes_again = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&competes_again);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.importer.expect_verify().returning(|_| Ok(()));
    let failures = Arc::new(AtomicUsize::new(0));
    let head = Arc::clone(&doubles.head);
    doubles.importer.expect_commit().returning(move |block| {
        if failures.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(ImportError::Storage("no space left on device".into()));
        }
        *head.lock().unwrap() = block.block.header.clone();
        Ok(())
    });
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when
    let_time_pass(Duration::from_millis(600)).await;

    // then: it caught up as a follower, then competed again
    assert_eq!(running.head_height(), 1);
    assert!(asked.load(Ordering::SeqCst) >= 2);
    assert!(competes_again.load(Ordering::SeqCst) >= 1);
    assert_eq!(running.handle.status().standing_aside, None);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_shut_down__then_releases_the_lease() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    doubles
        .reconciliation
        .expect_release()
        .times(1)
        .returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });
    let_time_pass(Duration::from_millis(50)).await;

    // when
    let status = running.handle.subscribe();
    running.shutdown().await;

    // then: release was called exactly once (checked by the mock on drop) and the status says so
    assert_eq!(status.borrow().role, Role::Stopped);
}

#[tokio::test(start_paused = true)]
async fn produce__when_production_fails__then_releases_the_lease_and_commits_nothing() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producer.expect_produce_on().returning(|_, _| {
        Err(ProductionError::Failed {
            reason: "executor crashed".to_owned(),
        })
    });
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .never();
    doubles.importer.expect_commit().never();
    let releases = Arc::new(Mutex::new(0_u32));
    let counted = Arc::clone(&releases);
    doubles.reconciliation.expect_release().returning(move || {
        *counted.lock().unwrap() += 1;
        Ok(())
    });
    let running = doubles.start(Trigger::Manual);

    // when
    let outcome = running.handle.produce_block().await.unwrap();

    // then
    assert!(matches!(
        outcome,
        CycleOutcome::Failed {
            step: "produce",
            ..
        }
    ));
    assert_eq!(*releases.lock().unwrap(), 1);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_a_cycle_fails__then_recovers_on_the_next_cycle() {
    // given: the first leader_state fails, later ones lead
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(|_| {
            Err(ReconciliationError::NoQuorum {
                operation: "reconcile_read",
                acked: 1,
                needed: 2,
            })
        });
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.publishing_and_committing();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when: the failed cycle backs off one retry period, then production resumes
    let_time_pass(Duration::from_millis(10)).await;
    assert_eq!(running.head_height(), 0);
    let_time_pass(Duration::from_millis(500)).await;

    // then
    assert!(
        running.head_height() >= 2,
        "produced up to {}",
        running.head_height()
    );
    assert_eq!(running.handle.status().role, Role::Leader);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_interval_leader__then_produces_one_block_per_block_time() {
    // given
    let mut doubles = Doubles::new().with_local_chain();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.publishing_and_committing();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });

    // when: one second in 10 ms steps
    let_time_pass(Duration::from_secs(1)).await;

    // then: about ten blocks (one at start, one per 100 ms)
    let height = running.head_height();
    assert!(
        (9..=12).contains(&height),
        "produced {height} blocks in 1 s"
    );
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_instant_leader_without_transactions__then_produces_nothing_until_one_arrives() {
    // given: the pool is empty for 500 ms, then holds a transaction
    let mut doubles = Doubles::new().with_local_chain();
    let pool = Arc::clone(&doubles.pool);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.publishing_and_committing();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Instant);

    // when
    let_time_pass(Duration::from_millis(500)).await;
    let before = running.head_height();
    pool.add_pending();
    let_time_pass(Duration::from_millis(200)).await;

    // then
    assert_eq!(before, 0);
    assert!(running.head_height() >= 1);
    running.shutdown().await;
}

/// Makes `leader_state` answer leader, counting the calls made once the returned flag is set
/// (the test sets it when it steps down); returns the flag and the count.
fn lead_counting_calls_once_flagged(doubles: &mut Doubles) -> (Arc<Mutex<bool>>, Arc<Mutex<u32>>) {
    let flagged = Arc::new(Mutex::new(false));
    let calls = Arc::new(Mutex::new(0_u32));
    let (flag, counted) = (Arc::clone(&flagged), Arc::clone(&calls));
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            if *flag.lock().unwrap() {
                *counted.lock().unwrap() += 1;
            }
            Ok(LeaderState::ReconciledLeader)
        });
    (flagged, calls)
}

#[tokio::test(start_paused = true)]
async fn step_down__when_the_hold_off_is_too_long_to_represent__then_stands_down_rather_than_not_at_all()
 {
    // given: a leader on the interval trigger
    let mut doubles = Doubles::new().with_local_chain();
    let (standing_down, leader_calls_while_standing_down) =
        lead_counting_calls_once_flagged(&mut doubles);
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    doubles.publishing_and_committing();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });
    let_time_pass(Duration::from_millis(250)).await;

    // when: a hold-off no clock can add (an operator typo, or u64::MAX seconds)
    *standing_down.lock().unwrap() = true;
    running.handle.step_down(Duration::MAX).await.unwrap();
    let height_at_step_down = running.head_height();
    let_time_pass(Duration::from_secs(60)).await;

    // then: it stands down (for the longest hold-off it can represent), not "no hold-off"
    assert_eq!(*leader_calls_while_standing_down.lock().unwrap(), 0);
    assert_eq!(running.head_height(), height_at_step_down);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn step_down__when_leading__then_releases_and_only_follows_until_the_hold_off_ends() {
    // given: a leader on the interval trigger
    let mut doubles = Doubles::new().with_local_chain();
    let (standing_down, leader_calls_while_standing_down) =
        lead_counting_calls_once_flagged(&mut doubles);
    let follower_calls = Arc::new(Mutex::new(0_u32));
    let counted_follower = Arc::clone(&follower_calls);
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(move |_| {
            *counted_follower.lock().unwrap() += 1;
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.publishing_and_committing();
    let releases = Arc::new(Mutex::new(0_u32));
    let counted_releases = Arc::clone(&releases);
    doubles.reconciliation.expect_release().returning(move || {
        *counted_releases.lock().unwrap() += 1;
        Ok(())
    });
    let running = doubles.start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });
    let_time_pass(Duration::from_millis(250)).await;
    assert!(running.head_height() >= 2);

    // when
    *standing_down.lock().unwrap() = true;
    running
        .handle
        .step_down(Duration::from_secs(1))
        .await
        .unwrap();
    let height_at_step_down = running.head_height();
    let_time_pass(Duration::from_millis(900)).await;

    // then: released once, followed without acquiring, produced nothing
    assert_eq!(*releases.lock().unwrap(), 1);
    assert!(*follower_calls.lock().unwrap() >= 5);
    assert_eq!(*leader_calls_while_standing_down.lock().unwrap(), 0);
    assert_eq!(running.head_height(), height_at_step_down);
    assert_eq!(running.handle.status().role, Role::Follower);

    // and after the hold-off it competes (and here leads) again
    let_time_pass(Duration::from_millis(400)).await;
    assert!(*leader_calls_while_standing_down.lock().unwrap() > 0);
    assert!(running.head_height() > height_at_step_down);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_follower_with_jitter__then_polls_no_faster_than_the_period_and_no_slower_than_period_plus_jitter()
 {
    // given: a 100 ms period with up to 100 ms of jitter
    let mut doubles = Doubles::new().with_local_chain();
    let calls = Arc::new(Mutex::new(0_u32));
    let counted = Arc::clone(&calls);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            *counted.lock().unwrap() += 1;
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let config = ServiceConfig::new(
        Trigger::Interval {
            block_time: BLOCK_TIME,
        },
        RETRY,
        Duration::from_secs(1),
    )
    .unwrap()
    .with_retry_jitter(Duration::from_millis(100));
    let running = doubles.start_with(config);

    // when
    let_time_pass(Duration::from_secs(2)).await;

    // then: between 2 s / 200 ms and 2 s / 100 ms polls (plus the first one)
    let calls = *calls.lock().unwrap();
    assert!((10..=21).contains(&calls), "polled {calls} times in 2 s");
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn run__when_blocks_are_farther_apart_than_the_lease_renewal__then_renews_in_between_without_producing()
 {
    // given: 400 ms blocks, a lease that must be renewed every 100 ms
    let mut doubles = Doubles::new().with_local_chain();
    let cycles = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&cycles);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(LeaderState::ReconciledLeader)
        });
    doubles.publishing_and_committing();
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let config = ServiceConfig::new(
        Trigger::Interval {
            block_time: Duration::from_millis(400),
        },
        RETRY,
        Duration::from_secs(1),
    )
    .unwrap()
    .with_lease_renewal(Duration::from_millis(100));
    let running = doubles.start_with(config);

    // when
    let_time_pass(Duration::from_millis(1_190)).await;

    // then: blocks at 0, 400 and 800 ms only; a leader cycle (a renewal) at least every 100 ms
    assert_eq!(running.head_height(), 3);
    let renewals = cycles.load(Ordering::SeqCst);
    assert!((11..=14).contains(&renewals), "{renewals} leader cycles");
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn produce__when_the_clock_is_a_day_ahead_of_the_coordination_nodes__then_dates_no_block_and_stands_aside_until_it_is_fixed()
 {
    // given: a leader whose clock reads a day later than the coordination nodes' clocks
    let mut doubles = Doubles::new().with_local_chain();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock_fixed = Arc::clone(&fixed);
    doubles.clock = MockWallClock::new();
    doubles.clock.expect_now().returning(move || {
        let day = if clock_fixed.load(Ordering::SeqCst) {
            0
        } else {
            86_400_000
        };
        Timestamp::from_unix_millis(1_000_000 + day)
    });
    doubles
        .reconciliation
        .expect_time_reference()
        .returning(|| Some(Timestamp::from_unix_millis(1_000_000)));
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles
        .reconciliation
        .expect_follower_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    doubles.publishing_and_committing();
    let releases = doubles.counting_releases();
    let config = ServiceConfig::new(
        Trigger::Interval {
            block_time: BLOCK_TIME,
        },
        RETRY,
        Duration::from_secs(1),
    )
    .unwrap()
    .with_max_clock_skew(Duration::from_secs(2));
    let running = doubles.start_with(config);

    // when: half a second with the bad clock, then the clock is fixed
    let_time_pass(Duration::from_millis(500)).await;
    let aside = running.handle.status();
    let height_while_wrong = running.head_height();
    fixed.store(true, Ordering::SeqCst);
    let_time_pass(Duration::from_millis(500)).await;

    // then: nothing dated while the clock was wrong, the lease released once, and production
    // resumed once it was fixed
    assert_eq!(height_while_wrong, 0);
    assert!(
        aside
            .standing_aside
            .as_deref()
            .is_some_and(|reason| reason.starts_with("clock: the local clock is 86400000 ms ahead")),
        "{:?}",
        aside.standing_aside
    );
    assert_eq!(releases.load(Ordering::SeqCst), 1);
    assert!(running.head_height() > 0);
    assert_eq!(running.handle.status().standing_aside, None);
    running.shutdown().await;
}
