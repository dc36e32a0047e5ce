//! Anti-entropy: while this process leads, every height of the window below its head (half
//! the stream length, `poa_quorum::sweep_window`) is kept on a quorum. Reconciliation repairs
//! only above the head; blocks below it lose copies when a node restarts empty, comes back
//! from an old snapshot, or misses writes while it is cut off, and without this nothing would
//! put them back: the log would hold them on fewer and fewer nodes until the next loss took
//! the last copy.
//!
//! A pass walks the window from the head down, one bounded step at a time. A step reads the
//! heights indexes of a range (`read_heights`: ids only, no payload), reads in full only the
//! heights that look short there (`LogReader::read_range`: every entry decoded and verified),
//! decides them with `poa_quorum::walk_window_down` (the head is committed; a committed block's
//! parent is committed; a block on a quorum is committed; nothing else is), and repairs the
//! committed blocks below quorum through the fenced write of every repair (`repair`).
//!
//! Steps run in the background, on the adapter's task tracker, holding per-node handles and
//! never the adapter: a leader cycle only starts one when the last has ended, and never waits
//! for it, so `leader_state` and `publish_produced_block` cost what they did. A step examines
//! at most [`HEIGHTS_PER_STEP`] heights and reads in full and repairs at most
//! [`REPAIRS_PER_STEP`], and every call it makes is bounded by the node timeout. A pass that
//! finds nothing takes one step per lease TTL. A new leadership and a node that answers with
//! another server identity (its `run_id`, fetched again after a reconnection or when the node's
//! latest height falls behind the head: it restarted, emptied or from a snapshot) start a new
//! pass at once, and a pass that repairs takes a step every leader cycle until it ends.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use poa_ports::{BlockCodec, BlockHeight, BlockId, ChainHead};
use poa_quorum::{
    IndexClaims, NodeIndex, WindowDecision, sweep_window, verified_range, walk_window_down,
    window_bottom,
};

use crate::config::ValidatedConfig;
use crate::error::AdapterError;
use crate::fanout::FanOut;
use crate::log_read::LogReader;
use crate::node::IdentityCheck;
use crate::publish::QuorumWriter;
use crate::repair::{RepairOutcome, Repairer};

/// Heights one step examines in the heights indexes.
pub(crate) const HEIGHTS_PER_STEP: u64 = 256;

/// Heights one step reads in full and repairs, at most.
pub(crate) const REPAIRS_PER_STEP: u64 = 32;

/// Index members a `read_heights` call examines beyond two per height, so that a few members
/// that do not parse do not hide the others (the same margin as `read_from`'s).
const EXTRA_MEMBERS_EXAMINED: u64 = 512;

/// The anti-entropy of one adapter: when to step, and the sweeper that steps.
#[derive(Debug)]
pub(crate) struct AntiEntropy<C: BlockCodec> {
    sweeper: Arc<Sweeper<C>>,
    /// How often a pass that nothing hurries takes a step: the lease TTL.
    steady_interval: Duration,
    /// How recent a node's latest height must be to say it fell behind the head.
    freshness: Duration,
    pace: Mutex<Pace>,
}

/// What the leader cycles remember between them.
#[derive(Debug, Default)]
struct Pace {
    /// The leadership generation of the last cycle that led.
    generation: Option<u64>,
    /// When the last step started.
    last_step: Option<Instant>,
    /// Per node, whether its latest height was more than one height below the head at the
    /// last cycle.
    behind: Vec<bool>,
    /// The nodes whose server identity the next step checks: they reconnected, or fell behind.
    to_check: BTreeSet<NodeIndex>,
}

impl<C: BlockCodec> AntiEntropy<C> {
    /// The sweep of `writer`'s nodes, reading with the shared `reader`.
    pub(crate) fn new(
        config: &ValidatedConfig,
        writer: &QuorumWriter,
        reader: Arc<LogReader<C>>,
    ) -> Self {
        let pace = Pace {
            behind: vec![false; writer.nodes.len()],
            ..Pace::default()
        };
        Self {
            sweeper: Arc::new(Sweeper {
                window: sweep_window(config.stream_max_len),
                fleet: writer.clone(),
                reader,
                repairer: Repairer::new(writer.clone()),
                stepping: Arc::new(AtomicBool::new(false)),
                new_pass: AtomicBool::new(false),
                pass: Mutex::new(None),
            }),
            steady_interval: config.lease_ttl,
            freshness: config.lease_ttl,
            pace: Mutex::new(pace),
        }
    }

    /// A leader cycle in leadership `generation` found the log reconciled with the local
    /// `head`: starts the next step in the background if one is due, or if a node's identity
    /// needs checking. Never waits.
    pub(crate) fn leading(&self, head: ChainHead, generation: u64) {
        let mut pace = self.pace.lock().unwrap_or_else(PoisonError::into_inner);
        if pace.generation != Some(generation) {
            pace.generation = Some(generation);
            self.sweeper.new_pass.store(true, Ordering::Release);
        }
        let nodes = &self.sweeper.fleet.nodes;
        let pace = &mut *pace;
        for (node, behind) in nodes.iter().zip(pace.behind.iter_mut()) {
            // More than one height below: a write of the last block may still be on its way.
            let now_behind = node.latest_height(self.freshness).is_some_and(|latest| {
                latest.is_none_or(|height| height.next().is_some_and(|next| next < head.height))
            });
            if now_behind && !*behind {
                tracing::debug!(node = node.name(), head = %head.height, "redis node fell behind the head: its server identity is checked");
                pace.to_check.insert(node.index());
            }
            *behind = now_behind;
        }
        if self.sweeper.stepping.load(Ordering::Acquire) {
            return;
        }
        for node in nodes.iter() {
            if node.connected_since_last_asked() {
                pace.to_check.insert(node.index());
            }
        }
        let now = Instant::now();
        let due = self.sweeper.hurried()
            || pace
                .last_step
                .is_none_or(|last| now.saturating_duration_since(last) >= self.steady_interval);
        if !due && pace.to_check.is_empty() {
            return;
        }
        if due {
            pace.last_step = Some(now);
        }
        let to_check = std::mem::take(&mut pace.to_check);
        self.sweeper.stepping.store(true, Ordering::Release);
        let stepping = Stepping(Arc::clone(&self.sweeper.stepping));
        let sweeper = Arc::clone(&self.sweeper);
        self.sweeper.fleet.tracker.spawn(async move {
            let _stepping = stepping;
            sweeper.step(head, to_check, due).await;
        });
    }

    /// This process does not lead: the pass in progress is dropped (the next leadership starts
    /// its own) and the gauge, which only a leader measures, reads 0.
    pub(crate) fn not_leading(&self) {
        let mut pace = self.pace.lock().unwrap_or_else(PoisonError::into_inner);
        if pace.generation.take().is_some() {
            self.sweeper.fleet.metrics.heights_below_quorum.set(0);
        }
    }
}

/// Clears the "a step is running" flag when the step's task ends, however it ends.
#[derive(Debug)]
struct Stepping(Arc<AtomicBool>);

impl Drop for Stepping {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Where a pass stands.
#[derive(Debug, Clone)]
struct Pass {
    /// The head the pass started from.
    head: BlockHeight,
    /// The lowest height of the window.
    bottom: BlockHeight,
    /// The highest height the next step examines.
    top: BlockHeight,
    /// The committed block at `top`, when the heights above named it.
    named: Option<BlockId>,
    /// Started by a new leadership or a restarted node, or found something to repair: a step
    /// every cycle.
    hurried: bool,
    /// Heights the pass left below quorum so far.
    below_quorum: u64,
    /// Heights the pass brought back to a quorum so far.
    repaired: u64,
    /// The lowest and highest height left below quorum, for the log.
    below_range: Option<(BlockHeight, BlockHeight)>,
}

impl Pass {
    /// A pass over the window below `head`, or `None` when there is nothing below it.
    fn start(head: ChainHead, window: u64, hurried: bool) -> Option<Self> {
        let bottom = window_bottom(head.height, window)?;
        Some(Self {
            head: head.height,
            bottom,
            top: head.height,
            named: Some(head.id),
            hurried,
            below_quorum: 0,
            repaired: 0,
            below_range: None,
        })
    }

    fn left_below_quorum(&mut self, height: BlockHeight) {
        self.below_quorum = self.below_quorum.saturating_add(1);
        self.below_range = Some(match self.below_range {
            None => (height, height),
            Some((lowest, highest)) => (lowest.min(height), highest.max(height)),
        });
    }
}

/// What a step left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepEnd {
    /// The pass goes on from its new top.
    Continue,
    /// The pass reached the bottom of the window (or stopped at a contradiction).
    PassDone,
}

/// Everything a step needs, shared with its background task: per-node handles and the lease's
/// state, never the adapter.
#[derive(Debug)]
struct Sweeper<C: BlockCodec> {
    window: u64,
    /// The nodes, the quorum, the lease's state, the tracker and the metrics.
    fleet: QuorumWriter,
    reader: Arc<LogReader<C>>,
    repairer: Repairer,
    /// A step is running; only one at a time.
    stepping: Arc<AtomicBool>,
    /// The next step starts a new, hurried pass from the head.
    new_pass: AtomicBool,
    /// The pass in progress; only the running step touches it.
    pass: Mutex<Option<Pass>>,
}

impl<C: BlockCodec> Sweeper<C> {
    /// Whether the next step is due at once: a new pass is asked for, or the pass in progress
    /// was started by one.
    fn hurried(&self) -> bool {
        self.new_pass.load(Ordering::Acquire)
            || self
                .pass
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|pass| pass.hurried)
    }

    /// One step: the identities of the nodes `to_check`, then, if `due` or if one of them
    /// changed, the next range of the pass.
    async fn step(&self, head: ChainHead, to_check: BTreeSet<NodeIndex>, due: bool) {
        for node in to_check
            .iter()
            .filter_map(|index| self.fleet.nodes.get(*index))
        {
            if let IdentityCheck::Changed { previous, current } = node.check_identity().await {
                tracing::info!(
                    node = node.name(),
                    previous = %previous,
                    current = %current,
                    "redis node answers with another server identity: a new anti-entropy pass starts"
                );
                self.new_pass.store(true, Ordering::Release);
            }
        }
        if !(due || self.new_pass.load(Ordering::Acquire)) || !self.fleet.state.is_leading() {
            return;
        }
        let current = self
            .pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let pass = if self.new_pass.swap(false, Ordering::AcqRel) {
            Pass::start(head, self.window, true)
        } else {
            current.or_else(|| Pass::start(head, self.window, false))
        };
        let Some(mut pass) = pass else {
            return;
        };
        match self.sweep_range(&mut pass).await {
            Ok(StepEnd::Continue) => {
                *self.pass.lock().unwrap_or_else(PoisonError::into_inner) = Some(pass);
            }
            Ok(StepEnd::PassDone) => self.pass_done(&pass),
            Err(error) => {
                // The lease lost, no quorum of answers: the pass resumes where it stood.
                tracing::debug!(error = %error, top = %pass.top, "anti-entropy step failed");
                *self.pass.lock().unwrap_or_else(PoisonError::into_inner) = Some(pass);
            }
        }
    }

    /// Examines the next range of `pass` from its top down, and repairs what it may.
    async fn sweep_range(&self, pass: &mut Pass) -> Result<StepEnd, AdapterError> {
        let lowest = BlockHeight::new(
            pass.top
                .get()
                .saturating_sub(HEIGHTS_PER_STEP.saturating_sub(1))
                .max(pass.bottom.get()),
        );
        let claims = self.read_claims(lowest, pass.top).await?;
        let short = claims.short_heights(lowest, pass.top);
        let Some((from, to)) =
            verified_range(lowest, pass.top, &short, REPAIRS_PER_STEP.saturating_add(1))
        else {
            if lowest == pass.bottom {
                return Ok(StepEnd::PassDone);
            }
            // The next step starts at this range's lowest height again: should the one below
            // it be short, that height's block names its committed block.
            pass.top = lowest;
            pass.named = None;
            return Ok(StepEnd::Continue);
        };
        let named = if to == pass.top { pass.named } else { None };
        let count = to.get().saturating_sub(from.get()).saturating_add(1);
        let backlog = self.reader.read_range(from, count).await?;
        if let Some(epoch) = backlog.highest_epoch {
            self.fleet.state.observe_log_epoch(epoch).await;
        }
        let walk = walk_window_down(&backlog.view, to, from, named);
        let repaired_before = pass.repaired;
        for (height, decision) in &walk.decisions {
            let height = *height;
            match decision {
                WindowDecision::OnQuorum => {}
                WindowDecision::Short(block) => {
                    match self.repairer.repair(height, &backlog, block, false).await? {
                        RepairOutcome::OnQuorum { .. } => {
                            self.fleet.metrics.anti_entropy_repairs.inc();
                            pass.repaired = pass.repaired.saturating_add(1);
                        }
                        RepairOutcome::NoRoom | RepairOutcome::BelowQuorum { .. } => {
                            pass.left_below_quorum(height);
                        }
                    }
                }
                WindowDecision::Missing { .. } | WindowDecision::Unproven => {
                    pass.left_below_quorum(height);
                }
                WindowDecision::Contradicted { held, named } => {
                    pass.left_below_quorum(height);
                    tracing::error!(
                        height = %height,
                        held = %held,
                        named = %named,
                        "a quorum of redis nodes holds another block than the local chain below the head"
                    );
                }
            }
        }
        if pass.repaired > repaired_before {
            // Where one height lost copies, its neighbours usually did too.
            pass.hurried = true;
            tracing::info!(
                lowest = %from,
                highest = %to,
                repaired = pass.repaired.saturating_sub(repaired_before),
                "anti-entropy repaired heights below the head"
            );
        }
        if walk.contradicted() || from == pass.bottom {
            return Ok(StepEnd::PassDone);
        }
        match from.previous() {
            Some(below) if below >= pass.bottom => {
                pass.top = below;
                pass.named = walk.named_below;
                Ok(StepEnd::Continue)
            }
            _ => Ok(StepEnd::PassDone),
        }
    }

    /// Which block each node's index names from `lowest` to `highest`; fewer than a quorum of
    /// answers is an error (a quorum read, like every other).
    async fn read_claims(
        &self,
        lowest: BlockHeight,
        highest: BlockHeight,
    ) -> Result<IndexClaims, AdapterError> {
        let heights = highest.get().saturating_sub(lowest.get()).saturating_add(1);
        let examine = heights
            .saturating_mul(2)
            .saturating_add(EXTRA_MEMBERS_EXAMINED);
        let fleet = &self.fleet;
        let replies = FanOut::spawn(
            &fleet.tracker,
            fleet.nodes.iter(),
            None,
            |node| async move { node.read_heights(lowest, highest, examine).await },
        )
        .all()
        .await;
        let mut claims = IndexClaims::new(fleet.quorum);
        let mut answered = 0usize;
        let mut malformed = 0usize;
        for (node, reply) in replies {
            let Ok(read) = reply else { continue };
            answered = answered.saturating_add(1);
            malformed = malformed.saturating_add(read.malformed);
            for (height, id) in read.claims {
                if (lowest..=highest).contains(&height) {
                    claims.claim(node, height, id);
                }
            }
        }
        fleet
            .metrics
            .undecodable_entries
            .inc_by(u64::try_from(malformed).unwrap_or(u64::MAX));
        if !fleet.quorum.reached(answered) {
            return Err(AdapterError::NoQuorum {
                operation: "anti_entropy_read",
                acked: answered,
                needed: fleet.quorum.size(),
            });
        }
        Ok(claims)
    }

    /// Reports a finished pass: the gauge, the pass counter, and a log line when it found
    /// something.
    fn pass_done(&self, pass: &Pass) {
        let metrics = &self.fleet.metrics;
        metrics
            .heights_below_quorum
            .set(i64::try_from(pass.below_quorum).unwrap_or(i64::MAX));
        metrics.anti_entropy_passes.inc();
        match pass.below_range {
            Some((lowest, highest)) => tracing::warn!(
                below_quorum = pass.below_quorum,
                lowest = %lowest,
                highest = %highest,
                repaired = pass.repaired,
                head = %pass.head,
                "anti-entropy pass left heights below quorum: nothing proves which block is committed there, or no node holds it"
            ),
            None if pass.repaired > 0 => tracing::info!(
                repaired = pass.repaired,
                head = %pass.head,
                "anti-entropy pass brought every height below the head back to a quorum"
            ),
            None => {
                tracing::debug!(head = %pass.head, "anti-entropy pass found every height on a quorum")
            }
        }
    }
}
