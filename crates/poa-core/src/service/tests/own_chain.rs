//! The service on a chain of the embedder's that shares no code with the reference chain: its
//! own header fields (a `u32` number, a date in seconds), its own id, an unsealed draft and a
//! stamp for a seal. The service reads only what the chain's views say: it produces on the
//! local head, dates no block before its parent, reports the transactions the view counts,
//! and imports a backlog in height order.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mockall::mock;
use poa_ports::{
    BlockHeight, BlockId, BlockImporter, BlockProducer, BlockReconciliationPort, BlockSigner,
    Chain, ChainHead, HeaderView, ImportError, LeaderState, LeaseStatus, ParentBlock,
    ProductionError, ReconciliationError, SealedBlockView, SigningError, Timestamp,
};
use prometheus_client::registry::Registry;

use super::{FakePool, MockWallClock};
use crate::config::{ServiceConfig, Trigger};
use crate::service::{CycleOutcome, Ports, ProductionService, ServiceHandle};

/// The embedder's chain: its types, named once.
struct StampChain;

impl Chain for StampChain {
    type Header = Tip;
    type Block = Draft;
    type SealedBlock = Stamped;
}

/// The embedder's header: a number instead of a height, a date in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tip {
    number: u32,
    parent: [u8; 32],
    unix_seconds: u64,
}

impl Tip {
    fn genesis(unix_seconds: u64) -> Self {
        Self {
            number: 0,
            parent: [0; 32],
            unix_seconds,
        }
    }

    /// The embedder's own id: its fields laid out in the bytes, not a hash the library knows.
    fn hash(&self) -> [u8; 32] {
        let mut hash = [0xee; 32];
        hash[..4].copy_from_slice(&self.number.to_le_bytes());
        hash[4..12].copy_from_slice(&self.unix_seconds.to_le_bytes());
        hash[12..20].copy_from_slice(&self.parent[..8]);
        hash
    }

    fn child(&self, unix_seconds: u64) -> Self {
        Self {
            number: self.number + 1,
            parent: self.hash(),
            unix_seconds,
        }
    }
}

impl HeaderView for Tip {
    fn height(&self) -> BlockHeight {
        BlockHeight::new(u64::from(self.number))
    }

    fn id(&self) -> BlockId {
        BlockId::from_bytes(self.hash())
    }

    fn timestamp(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.unix_seconds * 1_000)
    }
}

/// The embedder's unsealed block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Draft {
    tip: Tip,
    payloads: Vec<String>,
}

/// The embedder's sealed block: a draft and a stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamped {
    draft: Draft,
    stamp: u8,
}

impl Stamped {
    fn on(tip: Tip, payloads: &[&str]) -> Self {
        Self {
            draft: Draft {
                tip,
                payloads: payloads
                    .iter()
                    .map(|payload| (*payload).to_owned())
                    .collect(),
            },
            stamp: 1,
        }
    }
}

impl SealedBlockView for Stamped {
    fn height(&self) -> BlockHeight {
        self.draft.tip.height()
    }

    fn id(&self) -> BlockId {
        self.draft.tip.id()
    }

    fn parent_id(&self) -> BlockId {
        BlockId::from_bytes(self.draft.tip.parent)
    }

    fn transaction_count(&self) -> usize {
        self.draft.payloads.len()
    }
}

mock! {
    StampLog {}
    #[async_trait]
    impl BlockReconciliationPort<StampChain> for StampLog {
        async fn leader_state(&self, head: ChainHead) -> Result<LeaderState<Stamped>, ReconciliationError>;
        async fn follower_state(&self, head: ChainHead) -> Result<LeaderState<Stamped>, ReconciliationError>;
        async fn release(&self) -> Result<(), ReconciliationError>;
        async fn publish_produced_block(&self, block: &Stamped) -> Result<(), ReconciliationError>;
        fn lease_status(&self) -> LeaseStatus;
        fn time_reference(&self) -> Option<Timestamp>;
    }
}

/// The embedder's local chain, block builder and stamp in one: a list of stamped blocks over
/// a genesis tip, and the payloads the next draft includes.
struct StampLedger {
    genesis: Tip,
    blocks: Mutex<Vec<Stamped>>,
    payloads: Vec<&'static str>,
}

impl StampLedger {
    fn new(genesis: Tip, payloads: Vec<&'static str>) -> Arc<Self> {
        Arc::new(Self {
            genesis,
            blocks: Mutex::new(Vec::new()),
            payloads,
        })
    }

    fn head(&self) -> Tip {
        self.blocks
            .lock()
            .unwrap()
            .last()
            .map_or_else(|| self.genesis.clone(), |block| block.draft.tip.clone())
    }

    fn committed(&self) -> Vec<Stamped> {
        self.blocks.lock().unwrap().clone()
    }
}

#[async_trait]
impl BlockImporter<StampChain> for StampLedger {
    async fn latest_header(&self) -> Result<Tip, ImportError> {
        Ok(self.head())
    }

    async fn verify(&self, block: &Stamped) -> Result<(), ImportError> {
        Self::check_child(&self.head(), block)
    }

    async fn verify_on_committing(
        &self,
        block: &Stamped,
        committing: &Stamped,
    ) -> Result<(), ImportError> {
        Self::check_child(&committing.draft.tip, block)
    }

    async fn commit(&self, block: Stamped) -> Result<(), ImportError> {
        self.blocks.lock().unwrap().push(block);
        Ok(())
    }

    async fn block_at(&self, height: BlockHeight) -> Result<Option<Stamped>, ImportError> {
        Ok(self
            .committed()
            .into_iter()
            .find(|block| SealedBlockView::height(block) == height))
    }
}

impl StampLedger {
    /// Whether `block` is the child of `head`.
    fn check_child(head: &Tip, block: &Stamped) -> Result<(), ImportError> {
        if block.draft.tip.number != head.number + 1 {
            return Err(ImportError::WrongHeight {
                expected: HeaderView::height(head).next().unwrap(),
                found: SealedBlockView::height(block),
            });
        }
        if block.draft.tip.parent != head.hash() {
            return Err(ImportError::WrongParent {
                height: SealedBlockView::height(block),
                expected: HeaderView::id(head),
                found: block.parent_id(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl BlockProducer<StampChain> for StampLedger {
    async fn produce_block(
        &self,
        parent: ParentBlock<'_, StampChain>,
        timestamp: Timestamp,
    ) -> Result<Draft, ProductionError> {
        let parent = match parent {
            ParentBlock::Head(tip) => tip,
            ParentBlock::Committing(block) => &block.draft.tip,
        };
        Ok(Draft {
            tip: parent.child(timestamp.as_unix_millis() / 1_000),
            payloads: self
                .payloads
                .iter()
                .map(|&payload| payload.to_owned())
                .collect(),
        })
    }
}

impl BlockSigner<StampChain> for StampLedger {
    fn seal(&self, block: Draft) -> Result<Stamped, SigningError> {
        Ok(Stamped {
            draft: block,
            stamp: 1,
        })
    }
}

/// Runs the service on `ledger` and `log` with the manual trigger and a clock at 5 s.
fn start(
    ledger: &Arc<StampLedger>,
    log: MockStampLog,
) -> (ServiceHandle, tokio::sync::oneshot::Sender<()>) {
    let mut clock = MockWallClock::new();
    clock
        .expect_now()
        .returning(|| Timestamp::from_unix_millis(5_000));
    let ports: Ports<StampChain> = Ports {
        reconciliation: Arc::new(log),
        importer: Arc::clone(ledger) as Arc<dyn BlockImporter<StampChain>>,
        producer: Arc::clone(ledger) as Arc<dyn BlockProducer<StampChain>>,
        signer: Arc::clone(ledger) as Arc<dyn BlockSigner<StampChain>>,
        pool: Arc::new(FakePool::default()),
        clock: Arc::new(clock),
    };
    let config = ServiceConfig::new(
        Trigger::Manual,
        super::RETRY,
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let (service, handle) = ProductionService::new(config, ports, &mut Registry::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.run(async move {
        let _ = stopped.await;
    }));
    (handle, stop)
}

#[tokio::test(start_paused = true)]
async fn produce__when_the_chain_is_the_embedder_s__then_builds_on_its_head_dated_no_earlier_and_reports_its_transactions()
 {
    // given: a genesis dated 10 s, after the local clock's 5 s; the log lets this process lead
    let genesis = Tip::genesis(10);
    let ledger = StampLedger::new(genesis.clone(), vec!["pay alice", "pay bob"]);
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut log = MockStampLog::new();
    log.expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    let seen = Arc::clone(&published);
    log.expect_publish_produced_block().returning(move |block| {
        seen.lock().unwrap().push(block.clone());
        Ok(())
    });
    log.expect_time_reference().returning(|| None);
    log.expect_release().returning(|| Ok(()));
    let (handle, _stop) = start(&ledger, log);

    // when
    let outcome = handle.produce_block().await.unwrap();

    // then: the block extends genesis, is dated at genesis (not before it), was published,
    // then committed, and the outcome names it by the embedder's id
    let expected = Stamped::on(genesis.child(10), &["pay alice", "pay bob"]);
    assert_eq!(
        outcome,
        CycleOutcome::Produced {
            height: BlockHeight::new(1),
            id: SealedBlockView::id(&expected),
            transactions: 2,
        }
    );
    assert_eq!(*published.lock().unwrap(), vec![expected.clone()]);
    assert_eq!(ledger.committed(), vec![expected]);
    assert_eq!(handle.status().height, BlockHeight::new(1));
}

#[tokio::test(start_paused = true)]
async fn import__when_the_log_hands_back_the_embedder_s_blocks_out_of_order__then_commits_them_in_height_order()
 {
    // given: the log holds heights 1 and 2 of another producer, handed back out of order
    let genesis = Tip::genesis(10);
    let one = Stamped::on(genesis.child(11), &["pay carol"]);
    let two = Stamped::on(one.draft.tip.child(12), &[]);
    let ledger = StampLedger::new(genesis.clone(), vec![]);
    let mut log = MockStampLog::new();
    let backlog = vec![two.clone(), one.clone()];
    log.expect_leader_state()
        .withf(|head| head.height == BlockHeight::GENESIS)
        .returning(move |_| Ok(LeaderState::UnreconciledBlocks(backlog.clone())));
    log.expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledFollower));
    log.expect_release().returning(|| Ok(()));
    let (handle, _stop) = start(&ledger, log);

    // when
    let outcome = handle.produce_block().await.unwrap();

    // then: both imported (each verified against the head before it), the follower cycle
    // after them found nothing more
    assert_eq!(outcome, CycleOutcome::Follower);
    assert_eq!(ledger.committed(), vec![one, two.clone()]);
    assert_eq!(handle.status().height, BlockHeight::new(2));
    assert_eq!(handle.status().head_id, SealedBlockView::id(&two));
    assert_eq!(handle.status().blocks_imported, 2);
}
