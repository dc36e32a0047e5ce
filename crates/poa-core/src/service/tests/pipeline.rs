//! The commit pipeline: a block's local commit runs while the next block is produced, verified
//! and published on it; commits run one at a time in height order; a failed commit stops the
//! pipeline before anything above it is committed; a lost lease, a refused publish or a
//! shutdown let the commit in flight end. The local chain is a double whose every commit waits
//! for the test, so a test holds a commit open for as long as it looks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_chain::{Header, ReferenceChain, SealedBlock};
use async_trait::async_trait;
use poa_ports::{
    BlockHeight, BlockImporter, ImportError, LeaderState, ReconciliationError, SealedBlockView,
    Transaction,
};
use tokio::sync::mpsc;

use super::{BLOCK_TIME, Doubles, Parent, Running, header_at, let_time_pass, sealed};
use crate::config::Trigger;
use crate::status::Role;

/// How long a test waits for something the service must do before it calls it stuck (paused
/// time: the clock jumps there at once when the service is stuck).
const DEADLINE: Duration = Duration::from_secs(30);

/// A local chain whose every commit waits until the test ends it: the test hears each commit
/// begin and says how it ends. Verification is real as far as places go: `verify` takes only
/// the child of the head, `verify_on_committing` only the child of a block that extends the
/// head (or is it).
struct GatedChain {
    head: Arc<Mutex<Header>>,
    committed: Arc<Mutex<Vec<u64>>>,
    began: mpsc::UnboundedSender<u64>,
    endings: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<(), ImportError>>>,
    open: Arc<AtomicBool>,
    running: AtomicUsize,
    most_running: Arc<AtomicUsize>,
}

/// The test's side of a [`GatedChain`].
struct Gate {
    began: mpsc::UnboundedReceiver<u64>,
    endings: mpsc::UnboundedSender<Result<(), ImportError>>,
    committed: Arc<Mutex<Vec<u64>>>,
    open: Arc<AtomicBool>,
    most_running: Arc<AtomicUsize>,
}

impl GatedChain {
    /// A chain whose head is `head` (shared with the doubles), and the test's gate to it.
    fn new(head: Arc<Mutex<Header>>) -> (Arc<Self>, Gate) {
        let (began, began_receiver) = mpsc::unbounded_channel();
        let (endings_sender, endings) = mpsc::unbounded_channel();
        let committed = Arc::new(Mutex::new(Vec::new()));
        let most_running = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let chain = Arc::new(Self {
            head,
            committed: Arc::clone(&committed),
            began,
            endings: tokio::sync::Mutex::new(endings),
            open: Arc::clone(&open),
            running: AtomicUsize::new(0),
            most_running: Arc::clone(&most_running),
        });
        let gate = Gate {
            began: began_receiver,
            endings: endings_sender,
            committed,
            open,
            most_running,
        };
        (chain, gate)
    }

    fn head(&self) -> Header {
        self.head.lock().unwrap().clone()
    }
}

/// Whether `block` is at the height above `parent` and names it.
fn check_child(
    parent_height: BlockHeight,
    parent_id: poa_ports::BlockId,
    block: &SealedBlock,
) -> Result<(), ImportError> {
    if block.height() != parent_height.next().unwrap() {
        return Err(ImportError::WrongHeight {
            expected: parent_height.next().unwrap(),
            found: block.height(),
        });
    }
    if block.parent_id() != parent_id {
        return Err(ImportError::WrongParent {
            height: block.height(),
            expected: parent_id,
            found: block.parent_id(),
        });
    }
    Ok(())
}

#[async_trait]
impl BlockImporter<ReferenceChain> for GatedChain {
    async fn latest_header(&self) -> Result<Header, ImportError> {
        Ok(self.head())
    }

    async fn verify(&self, block: &SealedBlock) -> Result<(), ImportError> {
        let head = self.head();
        check_child(head.height, head.id(), block)
    }

    async fn verify_on_committing(
        &self,
        block: &SealedBlock,
        committing: &SealedBlock,
    ) -> Result<(), ImportError> {
        let head = self.head();
        if committing.id() != head.id() {
            check_child(head.height, head.id(), committing)?;
        }
        check_child(committing.height(), committing.id(), block)
    }

    async fn commit(&self, block: SealedBlock) -> Result<(), ImportError> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        let head = self.head();
        let placed = check_child(head.height, head.id(), &block);
        self.began.send(block.height().get()).unwrap();
        let ending = if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            self.endings
                .lock()
                .await
                .recv()
                .await
                .expect("the test ended")
        };
        let result = placed.and(ending);
        if result.is_ok() {
            self.committed.lock().unwrap().push(block.height().get());
            *self.head.lock().unwrap() = block.block.header;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn block_at(&self, _height: BlockHeight) -> Result<Option<SealedBlock>, ImportError> {
        Ok(None)
    }
}

impl Gate {
    /// Waits until a commit begins; its height.
    async fn commit_began(&mut self) -> u64 {
        tokio::time::timeout(DEADLINE, self.began.recv())
            .await
            .expect("no commit began")
            .expect("the chain is gone")
    }

    /// Ends the commit that waits (or the next one to begin) with `result`.
    fn end_commit(&self, result: Result<(), ImportError>) {
        self.endings.send(result).unwrap();
    }

    /// Lets the commit that waits, and every later one, end well without waiting.
    fn open_for_good(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.end_commit(Ok(()));
    }

    fn committed(&self) -> Vec<u64> {
        self.committed.lock().unwrap().clone()
    }

    /// The most commits that ever ran at once.
    fn most_at_once(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }
}

/// Heights in the order the service published them.
struct Publishes(mpsc::UnboundedReceiver<u64>);

impl Publishes {
    async fn next(&mut self) -> u64 {
        tokio::time::timeout(DEADLINE, self.0.recv())
            .await
            .expect("nothing was published")
            .expect("the log is gone")
    }

    /// The next publish if one is there already, without waiting (nor letting time pass).
    fn already(&mut self) -> Option<u64> {
        self.0.try_recv().ok()
    }
}

/// An interval leader on a gated local chain whose publishes succeed until `refuse_from`
/// (a height whose publish and every later one is fenced); returns the running service, the
/// gate, the publishes and a count of lease releases.
fn start_leader(
    refuse_from: Option<u64>,
    configure: impl FnOnce(&mut Doubles),
) -> (Running, Gate, Publishes, Arc<AtomicUsize>) {
    start_leader_with(
        Trigger::Interval {
            block_time: BLOCK_TIME,
        },
        refuse_from,
        configure,
    )
}

/// Like [`start_leader`], with `trigger`.
fn start_leader_with(
    trigger: Trigger,
    refuse_from: Option<u64>,
    configure: impl FnOnce(&mut Doubles),
) -> (Running, Gate, Publishes, Arc<AtomicUsize>) {
    let mut doubles = Doubles::new();
    let (chain, gate) = GatedChain::new(Arc::clone(&doubles.head));
    configure(&mut doubles);
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    doubles.producing_empty_blocks();
    let (published, publishes) = mpsc::unbounded_channel();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .returning(move |block| {
            let height = block.height().get();
            if refuse_from.is_some_and(|refused| height >= refused) {
                return Err(ReconciliationError::Fenced {
                    reason: "the lease is another's".to_owned(),
                });
            }
            published.send(height).unwrap();
            Ok(())
        });
    let releases = doubles.counting_releases();
    let running = doubles.on_importer(chain).start(trigger);
    (running, gate, Publishes(publishes), releases)
}

/// Makes the producer build blocks of one transaction each, and the pool hold `pending`.
fn one_transaction_blocks_with_pending(doubles: &mut Doubles, pending: usize) {
    doubles.producer.expect_produce_on().returning(|parent, _| {
        let height = parent.height().get() + 1;
        let mut block = sealed(header_at(height, parent.id())).block;
        block.transactions = vec![Transaction::new(height.to_be_bytes().to_vec())];
        Ok(block)
    });
    for _ in 0..pending {
        doubles.pool.add_pending();
    }
}

/// Waits until `holds` or [`DEADLINE`] passes; whether it held.
async fn until(mut holds: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(DEADLINE, async {
        while !holds() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_a_commit_is_slower_than_the_block_time__then_publishes_the_next_block_while_it_runs_and_claims_neither_before_its_commit()
 {
    // given: a leader whose first block's commit does not end
    let parents = Arc::new(Mutex::new(Vec::<Parent>::new()));
    let asked = Arc::clone(&parents);
    let (running, mut gate, mut publishes, _) = start_leader(None, move |doubles| {
        doubles
            .producer
            .expect_produce_on()
            .returning(move |parent, _| {
                asked.lock().unwrap().push(parent);
                Ok(sealed(header_at(parent.height().get() + 1, parent.id())).block)
            });
    });
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when: the next block is due while that commit still runs
    let next = publishes.next().await;

    // then: block 2 is on the log, built on block 1 while it was committing, and nothing is
    // committed or claimed yet
    assert_eq!(next, 2);
    let built_on: Vec<(u64, bool)> = parents
        .lock()
        .unwrap()
        .iter()
        .map(|parent| (parent.height().get(), parent.committing))
        .collect();
    assert_eq!(built_on, vec![(0, false), (1, true)]);
    assert_eq!(gate.committed(), Vec::<u64>::new());
    assert_eq!(running.handle.status().height, BlockHeight::GENESIS);
    assert_eq!(running.handle.status().blocks_produced, 0);

    // and once block 1's commit ends, block 2's begins, and the status shows block 1
    gate.end_commit(Ok(()));
    assert_eq!(gate.commit_began().await, 2);
    assert_eq!(gate.committed(), vec![1]);
    assert_eq!(running.handle.status().height, BlockHeight::new(1));
    gate.open_for_good();
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_blocks_keep_coming_faster_than_commits__then_commits_one_at_a_time_in_height_order()
 {
    // given
    let (running, mut gate, mut publishes, _) = start_leader(None, |_| {});

    // when: six blocks, each commit ended only after the block above it was published
    let mut published = vec![publishes.next().await];
    for height in 1..=6 {
        assert_eq!(gate.commit_began().await, height);
        published.push(publishes.next().await);
        gate.end_commit(Ok(()));
    }
    assert_eq!(gate.commit_began().await, 7);
    let committed = gate.committed();

    // then: published and committed once each, in height order, never two commits at once
    assert_eq!(published, (1..=7).collect::<Vec<_>>());
    assert_eq!(committed, (1..=6).collect::<Vec<_>>());
    assert_eq!(gate.most_at_once(), 1);
    gate.open_for_good();
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_a_commit_fails_after_the_next_block_was_published__then_commits_nothing_above_it_and_stands_aside()
 {
    // given: block 2 published while block 1's commit runs; the log then only answers a
    // follower's reads with errors, so the process stays aside
    let (running, mut gate, mut publishes, releases) = start_leader(None, |doubles| {
        doubles
            .reconciliation
            .expect_follower_state()
            .returning(|_| {
                Err(ReconciliationError::NoQuorum {
                    operation: "reconcile_read",
                    acked: 1,
                    needed: 2,
                })
            });
    });
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);
    assert_eq!(publishes.next().await, 2);

    // when: block 1's commit fails (a full disk)
    gate.end_commit(Err(ImportError::Storage("no space left on device".into())));
    let_time_pass(Duration::from_millis(500)).await;

    // then: block 2's commit never began, nothing was committed, the lease was released and the
    // process stands aside, saying why
    assert!(
        gate.began.try_recv().is_err(),
        "a commit above the failed one began"
    );
    assert_eq!(gate.committed(), Vec::<u64>::new());
    assert_eq!(running.head_height(), 0);
    assert!(releases.load(Ordering::SeqCst) >= 1);
    let status = running.handle.status();
    assert!(
        status
            .standing_aside
            .as_deref()
            .is_some_and(|reason| reason.starts_with("commit:")),
        "{:?}",
        status.standing_aside
    );
    assert_eq!(status.height, BlockHeight::GENESIS);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_the_next_publish_is_refused_while_a_commit_runs__then_releases_and_the_commit_still_ends()
 {
    // given: block 2's publish (and every later one) is fenced: the lease is another's
    let (running, mut gate, mut publishes, releases) = start_leader(Some(2), |_| {});
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when: the refusal comes while block 1's commit runs, then the commit ends
    let released = tokio::time::timeout(DEADLINE, async {
        while releases.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let committed_at_release = gate.committed();
    gate.end_commit(Ok(()));
    let ended = tokio::time::timeout(DEADLINE, async {
        while running.head_height() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;

    // then: the lease was released without waiting for the commit, block 1 was committed all
    // the same, and block 2 never was
    released.expect("the refused publish did not release the lease");
    assert_eq!(committed_at_release, Vec::<u64>::new());
    ended.expect("block 1's commit was not recorded");
    assert_eq!(gate.committed(), vec![1]);
    assert_eq!(running.handle.status().height, BlockHeight::new(1));
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_the_lease_is_lost_while_a_commit_runs__then_the_commit_ends_and_nothing_more_is_produced()
 {
    // given: after the first block, every leader state says another process leads
    let mut doubles = Doubles::new();
    let (chain, mut gate) = GatedChain::new(Arc::clone(&doubles.head));
    doubles
        .reconciliation
        .expect_leader_state()
        .times(1)
        .returning(|_| Ok(LeaderState::ReconciledLeader));
    let (asked, mut asks) = mpsc::unbounded_channel();
    doubles
        .reconciliation
        .expect_leader_state()
        .returning(move |head| {
            asked.send(head.height.get()).unwrap();
            Ok(LeaderState::ReconciledFollower)
        });
    doubles.producing_empty_blocks();
    doubles
        .reconciliation
        .expect_publish_produced_block()
        .times(1)
        .returning(|_| Ok(()));
    doubles.reconciliation.expect_release().returning(|| Ok(()));
    let running = doubles.on_importer(chain).start(Trigger::Interval {
        block_time: BLOCK_TIME,
    });
    assert_eq!(gate.commit_began().await, 1);

    // when: the next cycle, asked on block 1 while its commit runs, follows
    let asked_on = tokio::time::timeout(DEADLINE, asks.recv()).await.unwrap();
    gate.end_commit(Ok(()));
    let_time_pass(Duration::from_millis(300)).await;

    // then: block 1 was committed, nothing else was published (checked by the mock), and the
    // process follows
    assert_eq!(asked_on, Some(1));
    assert_eq!(gate.committed(), vec![1]);
    assert_eq!(running.handle.status().height, BlockHeight::new(1));
    assert_eq!(running.handle.status().role, Role::Follower);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_shut_down_while_a_commit_runs__then_releases_the_lease_and_stops_only_once_the_commit_ended()
 {
    // given: a leader whose first block's commit runs
    let (mut running, mut gate, mut publishes, releases) = start_leader(None, |_| {});
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when: it is shut down
    let _ = running.stop.take().unwrap().send(());
    let released = tokio::time::timeout(DEADLINE, async {
        while releases.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let_time_pass(Duration::from_millis(500)).await;
    let stopped_before_the_commit_ended = running.task.is_finished();
    gate.end_commit(Ok(()));
    let stopped = tokio::time::timeout(DEADLINE, &mut running.task).await;

    // then: the lease went at once, the service waited for the commit, and the block is
    // committed and shown
    released.expect("shutdown did not release the lease");
    assert!(
        !stopped_before_the_commit_ended,
        "stopped with a commit in flight"
    );
    stopped.expect("the service did not stop").unwrap();
    assert_eq!(gate.committed(), vec![1]);
    assert_eq!(running.handle.status().height, BlockHeight::new(1));
    assert_eq!(running.handle.status().role, Role::Stopped);
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_a_commit_ends_between_blocks__then_the_status_shows_it_before_the_next_block_is_due()
 {
    // given: a block every ten seconds, the first one's commit running
    let (running, mut gate, mut publishes, _) = start_leader_with(
        Trigger::Interval {
            block_time: Duration::from_secs(10),
        },
        None,
        |_| {},
    );
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when
    gate.end_commit(Ok(()));
    let shown = tokio::time::timeout(Duration::from_secs(1), async {
        while running.handle.status().height != BlockHeight::new(1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;

    // then: shown within a second, not at the next block ten seconds on
    shown.expect("the commit's end was noticed only by a later cycle");
    assert_eq!(running.handle.status().blocks_produced, 1);
    gate.open_for_good();
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_instant_and_more_transactions_wait_than_the_committing_block_holds__then_publishes_the_next_block_while_it_commits()
 {
    // given: an instant leader, blocks of one transaction, three transactions pending
    let (running, mut gate, mut publishes, _) =
        start_leader_with(Trigger::Instant, None, |doubles| {
            one_transaction_blocks_with_pending(doubles, 3);
        });
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when
    let next = publishes.next().await;

    // then: block 2 came while block 1's commit ran
    assert_eq!(next, 2);
    assert_eq!(gate.committed(), Vec::<u64>::new());
    gate.open_for_good();
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_instant_and_the_next_block_is_due_at_once__then_it_is_published_before_any_time_passes_not_after_the_commit()
 {
    // given: an instant leader, blocks of one transaction, three transactions pending, and a
    // clock between two ticks of the runtime's timer (one millisecond), as a real clock is
    tokio::time::advance(Duration::from_micros(500)).await;
    let (running, mut gate, mut publishes, _) =
        start_leader_with(Trigger::Instant, None, |doubles| {
            one_transaction_blocks_with_pending(doubles, 3);
        });
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when: the test looks the moment block 1's commit began, before any time passes (a real
    // commit can end well within the runtime timer's one-millisecond tick)
    let published_at_once = publishes.already();

    // then: the next block did not wait for a timer tick, in which the commit would have ended
    assert_eq!(published_at_once, Some(2));
    assert_eq!(gate.committed(), Vec::<u64>::new());
    gate.open_for_good();
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pipeline__when_instant_and_only_the_committing_block_s_transactions_wait__then_produces_nothing_more_until_its_commit_ended()
 {
    // given: an instant leader, blocks of one transaction, one transaction pending (which the
    // first block includes, and which the pool counts until that block's commit ended)
    let (running, mut gate, mut publishes, _) =
        start_leader_with(Trigger::Instant, None, |doubles| {
            one_transaction_blocks_with_pending(doubles, 1);
        });
    assert_eq!(publishes.next().await, 1);
    assert_eq!(gate.commit_began().await, 1);

    // when: half a second with the commit running, then the commit ends (the pool here keeps
    // counting one transaction: a new one arrived)
    let_time_pass(Duration::from_millis(500)).await;
    let published_while_committing = publishes.0.try_recv().ok();
    gate.end_commit(Ok(()));
    let next = publishes.next().await;

    // then: no block was built on the committing one from its own transactions; the new
    // transaction made the next block once the commit ended
    assert_eq!(published_while_committing, None);
    assert_eq!(next, 2);
    assert!(until(|| gate.committed() == vec![1]).await);
    gate.open_for_good();
    running.shutdown().await;
}
