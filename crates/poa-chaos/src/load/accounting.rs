//! The load harness's accounting, pure: which accepted transactions the final chain lacks, why
//! (the phase they were accepted in, the node that accepted them, its role then, whether it was
//! killed after), which losses the rules allow, what was included twice, and latency
//! percentiles. The rule: a `202` is a promise, kept whatever leads next, except by a process
//! SIGKILLed less than one relay round trip after it answered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::client::BlockSummary;
use crate::observe::Sample;

/// The phases of a load run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// No fault.
    Steady,
    /// The leader is SIGKILLed at the start and restarted on its data a while later.
    LeaderKill,
    /// The leader is asked to step down (`POST /admin/step-down`) at the start.
    StepDown,
    /// A follower is SIGSTOPped at the start and continued a while later.
    FrozenPeer,
}

impl Phase {
    /// Every phase, in the order a run goes through them.
    pub(crate) const ALL: [Self; 4] = [
        Self::Steady,
        Self::LeaderKill,
        Self::StepDown,
        Self::FrozenPeer,
    ];

    /// The phase's name, as in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::LeaderKill => "leader_kill",
            Self::StepDown => "step_down",
            Self::FrozenPeer => "frozen_peer",
        }
    }
}

/// How one submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 202.
    Accepted,
    /// Another answer (409 duplicate, 429 pool full, 503, ...).
    Refused { status: u16 },
    /// No answer within the bound (a dead or frozen node, a refused connection).
    Failed,
}

/// One submission by one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submission {
    /// The transaction's id (hex), computed from the payload as the node does.
    pub(crate) id: String,
    /// The node it went to.
    pub(crate) node: usize,
    /// The phase it was sent in.
    pub(crate) phase: Phase,
    /// When it was sent, from the start of the run.
    pub(crate) sent_at: Duration,
    /// How long the answer took.
    pub(crate) latency: Duration,
    /// How it ended.
    pub(crate) outcome: Outcome,
}

impl Submission {
    /// When the answer arrived.
    pub(crate) fn answered_at(&self) -> Duration {
        self.sent_at + self.latency
    }

    /// The id, when accepted.
    pub(crate) fn accepted_id(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Accepted => Some(&self.id),
            Outcome::Refused { .. } | Outcome::Failed => None,
        }
    }
}

/// A node SIGKILLed by the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Kill {
    /// The node.
    pub(crate) node: usize,
    /// When, from the start of the run (taken just before the signal).
    #[serde(with = "crate::checks::millis")]
    pub(crate) at: Duration,
    /// When it was started again, if it was.
    #[serde(skip)]
    pub(crate) restarted: Option<Duration>,
}

impl Kill {
    /// How long after an answer that arrived at `answered` the process that gave it was
    /// killed, if this kill is that process's death. An answer that arrives after the kill
    /// but before the restart was given by the killed process just before it died (the
    /// client reads it a moment later): its death came at once.
    fn after(&self, answered: Duration) -> Option<Duration> {
        (answered < self.restarted.unwrap_or(Duration::MAX))
            .then(|| self.at.saturating_sub(answered))
    }
}

/// What became of the node that accepted a lost transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fate {
    /// It was not killed after accepting it.
    Alive,
    /// It was SIGKILLed less than one relay round trip after its 202: the loss is allowed.
    KilledWithinRoundTrip,
    /// It was SIGKILLed later than that: the loss is forbidden.
    KilledLater,
}

/// Lost transactions that share a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LossGroup {
    /// The phase they were accepted in.
    pub(crate) phase: Phase,
    /// The node that accepted them.
    pub(crate) node: usize,
    /// Whether that node led when it accepted them.
    pub(crate) leader: bool,
    /// What became of that node.
    pub(crate) fate: Fate,
    /// How many.
    pub(crate) count: usize,
    /// Whether the rules allow these losses.
    pub(crate) allowed: bool,
}

/// The accepted transactions `included` lacks, grouped by cause. A loss is allowed only when
/// the accepting node was SIGKILLed less than `round_trip` after its 202.
pub(crate) fn losses(
    submissions: &[Submission],
    included: &BTreeMap<&str, usize>,
    kills: &[Kill],
    samples: &[Sample],
    round_trip: Duration,
) -> Vec<LossGroup> {
    let mut groups: BTreeMap<(Phase, usize, bool, Fate), usize> = BTreeMap::new();
    for submission in submissions {
        let Some(id) = submission.accepted_id() else {
            continue;
        };
        if included.contains_key(id) {
            continue;
        }
        let answered = submission.answered_at();
        let killed_after = kills
            .iter()
            .filter(|kill| kill.node == submission.node)
            .filter_map(|kill| kill.after(answered))
            .min();
        let fate = match killed_after {
            None => Fate::Alive,
            Some(after) if after < round_trip => Fate::KilledWithinRoundTrip,
            Some(_) => Fate::KilledLater,
        };
        let leader = led_at(samples, submission.node, answered);
        *groups
            .entry((submission.phase, submission.node, leader, fate))
            .or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((phase, node, leader, fate), count)| LossGroup {
            phase,
            node,
            leader,
            fate,
            count,
            allowed: fate == Fate::KilledWithinRoundTrip,
        })
        .collect()
}

/// Whether `node` claimed to lead in the last sample taken at or before `at`.
fn led_at(samples: &[Sample], node: usize, at: Duration) -> bool {
    samples
        .iter()
        .take_while(|sample| sample.at <= at)
        .last()
        .is_some_and(|sample| sample.leader == Some(node))
}

/// How many times each transaction appears in `chain`.
pub(crate) fn inclusions(chain: &[BlockSummary]) -> BTreeMap<&str, usize> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for block in chain {
        for id in &block.transactions {
            *counts.entry(id.as_str()).or_default() += 1;
        }
    }
    counts
}

/// The `fraction` percentile (0.5, 0.99) of `values`, nearest rank; zero when empty.
pub(crate) fn percentile(values: &[Duration], fraction: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    // Nearest rank: ceil(fraction * n), counted from 1.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank between 1 and the number of values"
    )]
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;
    use crate::observe::Said;

    fn accepted(node: usize, phase: Phase, answered_ms: u64, id: &str) -> Submission {
        Submission {
            id: id.to_owned(),
            node,
            phase,
            sent_at: Duration::from_millis(answered_ms - 2),
            latency: Duration::from_millis(2),
            outcome: Outcome::Accepted,
        }
    }

    fn led_by(at_ms: u64, leader: usize) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            heights: vec![Some(1); 3],
            leader: Some(leader),
            producer_available: true,
            said: vec![Said::default(); 3],
        }
    }

    #[test]
    fn losses__when_the_killed_leader_acknowledged_just_before_its_death__then_only_that_is_allowed()
     {
        // given: n0 leads and is killed at 10 s; n1 follows
        let submissions = [
            accepted(0, Phase::LeaderKill, 9_950, "just-before"),
            accepted(0, Phase::Steady, 9_000, "a-second-before"),
            accepted(1, Phase::LeaderKill, 10_500, "follower-after"),
            accepted(1, Phase::LeaderKill, 10_600, "included"),
        ];
        let included: BTreeMap<&str, usize> = [("included", 1)].into();
        let kills = [Kill {
            node: 0,
            at: Duration::from_secs(10),
            restarted: Some(Duration::from_secs(11)),
        }];
        let samples = [led_by(0, 0), led_by(10_200, 2)];

        // when
        let groups = losses(
            &submissions,
            &included,
            &kills,
            &samples,
            Duration::from_millis(200),
        );

        // then
        let expected = vec![
            LossGroup {
                phase: Phase::Steady,
                node: 0,
                leader: true,
                fate: Fate::KilledLater,
                count: 1,
                allowed: false,
            },
            LossGroup {
                phase: Phase::LeaderKill,
                node: 0,
                leader: true,
                fate: Fate::KilledWithinRoundTrip,
                count: 1,
                allowed: true,
            },
            LossGroup {
                phase: Phase::LeaderKill,
                node: 1,
                leader: false,
                fate: Fate::Alive,
                count: 1,
                allowed: false,
            },
        ];
        assert_eq!(groups, expected);
    }

    /// The one loss of a 202 from n0 that reached the client at `answered_ms`, n0 being killed
    /// at 10 s and started again at 11 s.
    fn fate_of_one_answered_at(answered_ms: u64) -> LossGroup {
        let submissions = [accepted(0, Phase::LeaderKill, answered_ms, "lost")];
        let kills = [Kill {
            node: 0,
            at: Duration::from_secs(10),
            restarted: Some(Duration::from_secs(11)),
        }];
        let mut groups = losses(
            &submissions,
            &BTreeMap::new(),
            &kills,
            &[],
            Duration::from_millis(200),
        );
        assert_eq!(groups.len(), 1);
        groups.remove(0)
    }

    #[test]
    fn losses__when_a_node_is_killed_before_it_acknowledged__then_that_kill_is_no_excuse() {
        // given / when: the 202 came from the restarted process, after the kill
        let group = fate_of_one_answered_at(12_000);

        // then
        assert_eq!(group.fate, Fate::Alive);
        assert!(!group.allowed);
    }

    #[test]
    fn losses__when_the_answer_arrives_just_after_the_kill__then_the_killed_process_gave_it() {
        // given / when: the 202 reached the client 3 ms after the signal, before any restart
        let group = fate_of_one_answered_at(10_003);

        // then
        assert_eq!(group.fate, Fate::KilledWithinRoundTrip);
        assert!(group.allowed);
    }

    #[test]
    fn inclusions__when_a_transaction_is_in_two_blocks__then_counts_it_twice() {
        // given
        let chain = [
            BlockSummary {
                id: "b1".to_owned(),
                transactions: vec!["t1".to_owned(), "t2".to_owned()],
            },
            BlockSummary {
                id: "b2".to_owned(),
                transactions: vec!["t2".to_owned()],
            },
        ];

        // when
        let counts = inclusions(&chain);

        // then
        assert_eq!(counts.get("t1"), Some(&1));
        assert_eq!(counts.get("t2"), Some(&2));
    }

    #[test]
    fn percentile__when_given_a_hundred_values__then_takes_the_nearest_rank() {
        // given
        let values: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();

        // when / then
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
