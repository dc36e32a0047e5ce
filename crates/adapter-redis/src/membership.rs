//! The membership this process joined (docs/protocol.md, "Membership"): the record, the server
//! id it expects at each URL, and why it joined none when it fails closed. Shared by every node
//! handle (each script call carries the node's expected id and the record's digest) and by the
//! adapter, which reads the membership again after a node refused it.
//!
//! The decisions (which record to join, whether to bootstrap, which nodes to re-admit) are
//! `poa_quorum::membership`'s; `join` and `readmit` gather what the nodes answer and write what
//! those decisions say.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use poa_quorum::{MembershipView, NodeIndex, Quorum, Readmission, ServerId};

use crate::metrics::Metrics;

mod change;
mod join;
mod operator;
mod readmit;

pub use change::{begin_membership_change, commit_membership_change};
pub(crate) use join::read_and_join;
pub use operator::{MembershipWritten, init_membership, set_membership};
pub(crate) use readmit::readmit_members;

/// This process's membership, shared with every node handle.
#[derive(Debug)]
pub(crate) struct MembershipState {
    quorum: Quorum,
    budget: usize,
    /// How long a reading waits for the other nodes once a quorum answered.
    read_grace: Duration,
    inner: Mutex<Joined>,
    /// A node refused this process's membership: read every node's again before the next
    /// decision.
    reading_due: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Joined {
    view: Option<MembershipView>,
    /// The joined record's digest (computed once per join).
    digest: String,
    /// Per URL, the last member id this process read there: where a leader may re-admit.
    known: Vec<Option<ServerId>>,
    /// Why this process joined no record, while it does not.
    problem: Option<String>,
    /// What the leader should re-admit, from the last reading.
    readmissions: Vec<Readmission>,
    /// Members that hold an older record, with its digest: the leader installs the current one
    /// over it.
    lagging: Vec<(NodeIndex, String)>,
    /// When the membership was last read (joined or failed closed).
    last_reading: Option<Instant>,
}

impl Joined {
    /// The member id this process expects at `node`: the one the last reading found there,
    /// or, when that reading did not reach the node, the one an earlier reading found, while
    /// it is still a member of the joined record and expected at no other URL. A node that
    /// did not answer one reading is the same server when it answers again (its id is written
    /// once), and forgetting it would cost every call to it a refusal until the next reading.
    /// The node itself still checks the id and the digest, so a node wiped or replaced
    /// meanwhile refuses the stale id as it would refuse none.
    fn expected_at(&self, node: NodeIndex) -> Option<&ServerId> {
        let view = self.view.as_ref()?;
        if let Some(read) = view.expected.get(node)?.as_ref() {
            return Some(read);
        }
        self.known.get(node)?.as_ref().filter(|known| {
            view.record.is_member(known) && !view.expected.iter().flatten().any(|id| id == *known)
        })
    }
}

/// How often a refusal from a node where this process expects no member makes it read the
/// membership again: often enough that a node this process never read (it was down when the
/// process started) counts again within about a lease TTL of answering, rarely enough that a
/// node of another set, refusing every call, costs a reading per second at most.
const UNKNOWN_NODE_READ_INTERVAL: Duration = Duration::from_secs(1);

impl MembershipState {
    /// A process that joined nothing yet (every script call is refused until it joins).
    pub(crate) fn new(
        quorum: Quorum,
        budget: usize,
        node_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            quorum,
            budget,
            read_grace: node_timeout / 4,
            inner: Mutex::new(Joined {
                known: vec![None; quorum.nodes()],
                problem: Some("the membership has not been read yet".to_owned()),
                ..Joined::default()
            }),
            reading_due: AtomicBool::new(true),
            metrics,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Joined> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of nodes and the quorum size.
    pub(crate) fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// How long a reading waits for the other nodes once a quorum answered.
    pub(crate) fn read_grace(&self) -> Duration {
        self.read_grace
    }

    /// The disruption budget the records carry.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// The server id this process expects at `node` and the digest of its record, as a
    /// checked script takes them (empty strings while it has none: every node refuses those).
    pub(crate) fn credentials(&self, node: NodeIndex) -> (String, String) {
        let inner = self.inner();
        let expected = inner
            .expected_at(node)
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        (expected, inner.digest.clone())
    }

    /// Node `node` refused this process's membership: read the membership again at the next
    /// cycle, unless this process expects no member there (it knows the node has no vote), in
    /// which case at most every [`UNKNOWN_NODE_READ_INTERVAL`], to learn a node that answers
    /// again without paying a reading per cycle.
    pub(crate) fn refused_at(&self, node: NodeIndex) {
        let inner = self.inner();
        let expected = inner.expected_at(node).is_some();
        let stale = inner
            .last_reading
            .is_none_or(|read| read.elapsed() >= UNKNOWN_NODE_READ_INTERVAL);
        if expected || stale {
            self.reading_due.store(true, Ordering::Release);
        }
    }

    /// Read the membership again at the next cycle.
    pub(crate) fn refused(&self) {
        self.reading_due.store(true, Ordering::Release);
    }

    /// Whether the membership must be read again: never joined, failed closed, or refused.
    pub(crate) fn reading_due(&self) -> bool {
        self.reading_due.load(Ordering::Acquire)
    }

    /// The view joined, if any.
    pub(crate) fn view(&self) -> Option<MembershipView> {
        self.inner().view.clone()
    }

    /// Per URL, the last member id this process read there.
    pub(crate) fn known(&self) -> Vec<Option<ServerId>> {
        self.inner().known.clone()
    }

    /// Why this process joined no record (it neither leads nor counts votes), if it does not.
    pub(crate) fn problem(&self) -> Option<String> {
        self.inner().problem.clone()
    }

    /// The re-admissions the last reading found for a leader to make, and the members that
    /// lag behind (with the digest they hold).
    pub(crate) fn pending(&self) -> (Vec<Readmission>, Vec<(NodeIndex, String)>) {
        let inner = self.inner();
        (inner.readmissions.clone(), inner.lagging.clone())
    }

    /// Whether the last reading left anything for a leader to re-admit or bring forward.
    pub(crate) fn has_pending(&self) -> bool {
        let inner = self.inner();
        !inner.readmissions.is_empty() || !inner.lagging.is_empty()
    }

    /// Joins `view` (said once when the record changes), with the re-admissions it leaves to
    /// a leader.
    pub(crate) fn join(
        &self,
        view: MembershipView,
        readmissions: Vec<Readmission>,
        lagging: Vec<(NodeIndex, String)>,
    ) {
        let mut inner = self.inner();
        for (known, expected) in inner.known.iter_mut().zip(&view.expected) {
            if expected.is_some() {
                known.clone_from(expected);
            }
        }
        let changed = inner.view.as_ref().map(|joined| &joined.record) != Some(&view.record);
        if changed || inner.problem.is_some() {
            tracing::info!(
                generation = view.record.generation,
                membership = %view.record,
                nodes = view.expected.iter().flatten().count(),
                "membership joined"
            );
        }
        self.metrics
            .membership_generation
            .set(i64::try_from(view.record.generation).unwrap_or(i64::MAX));
        inner.digest = view.record.digest();
        inner.view = Some(view);
        inner.problem = None;
        inner.readmissions = readmissions;
        inner.lagging = lagging;
        inner.last_reading = Some(Instant::now());
        self.reading_due.store(false, Ordering::Release);
    }

    /// Joins nothing: every script call is refused until a reading joins again; said once
    /// when the reason changes.
    pub(crate) fn fail_closed(&self, problem: String) {
        let mut inner = self.inner();
        if inner.problem.as_deref() != Some(problem.as_str()) {
            tracing::error!(error = %problem, "membership mismatch: this process does not lead or count votes until its node list matches the nodes' membership record");
        }
        self.metrics.membership_generation.set(0);
        inner.view = None;
        inner.digest.clear();
        inner.problem = Some(problem);
        inner.readmissions.clear();
        inner.lagging.clear();
        inner.last_reading = Some(Instant::now());
        self.reading_due.store(true, Ordering::Release);
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use poa_quorum::MembershipRecord;
    use prometheus_client::registry::Registry;

    use super::*;

    fn id(value: u8) -> ServerId {
        ServerId::from_random(u128::from(value) + 1)
    }

    fn joined_state(record: &MembershipRecord, expected: [Option<u8>; 3]) -> MembershipState {
        let state = MembershipState::new(
            Quorum::new(3, 0),
            0,
            Duration::from_millis(100),
            Arc::new(Metrics::register(&mut Registry::default())),
        );
        state.join(view(record, expected), Vec::new(), Vec::new());
        state
    }

    fn view(record: &MembershipRecord, expected: [Option<u8>; 3]) -> MembershipView {
        MembershipView {
            record: record.clone(),
            expected: expected.iter().map(|server| server.map(id)).collect(),
        }
    }

    #[test]
    fn credentials__when_a_later_reading_missed_a_known_member__then_still_expects_it() {
        // given: a process that read all three members, then a reading node 2 did not answer
        let record = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 0);
        let state = joined_state(&record, [Some(0), Some(1), Some(2)]);
        state.join(
            view(&record, [Some(0), Some(1), None]),
            Vec::new(),
            Vec::new(),
        );

        // when
        let (expected, digest) = state.credentials(2);

        // then: node 2 is still called as the member it was, not refused for an empty id
        assert_eq!(expected, id(2).as_str());
        assert_eq!(digest, record.digest());
    }

    #[test]
    fn credentials__when_the_known_member_left_the_record_or_answers_elsewhere__then_expects_none()
    {
        // given: node 2 was server 2; the next record replaced it by server 3
        let record = MembershipRecord::new(1, [id(0), id(1), id(2)], 3, 0);
        let state = joined_state(&record, [Some(0), Some(1), Some(2)]);
        let successor = record.successor(&[(id(2), id(3))], &[]);
        state.join(
            view(&successor, [Some(0), Some(1), None]),
            Vec::new(),
            Vec::new(),
        );

        // then: no stale expectation of a server that is no longer a member
        assert_eq!(state.credentials(2).0, "");

        // given: server 2 now answers at URL 1, and URL 2 did not answer
        state.join(
            view(&record, [Some(0), Some(2), None]),
            Vec::new(),
            Vec::new(),
        );

        // then: one server is never expected at two URLs
        assert_eq!(state.credentials(1).0, id(2).as_str());
        assert_eq!(state.credentials(2).0, "");
    }
}
