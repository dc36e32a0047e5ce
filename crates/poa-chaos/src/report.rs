//! The end-of-run report: what was injected, what was measured, each invariant's verdict, and
//! on a violation the fault timeline around it and the command that replays it.
//!
//! Owns presentation only (text and JSON); every number in it was computed elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::checks::{
    Exit, GarbageOutcome, MembershipOutcome, Stall, StrandedNode, Verdict, millis,
};

/// How much of the timeline is shown before and after a violation.
const TIMELINE_WINDOW: Duration = Duration::from_secs(10);

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event {
    /// When, from the start of the run.
    #[serde(with = "millis")]
    pub(crate) at: Duration,
    /// What happened.
    pub(crate) what: String,
}

/// How long production took to move on after a fault started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Recovery {
    /// The fault.
    pub(crate) fault: String,
    /// Its kind.
    pub(crate) kind: &'static str,
    /// Whether it hit the node leading when it started.
    pub(crate) hit_leader: bool,
    /// Time until the highest height grew, if it did during the run.
    pub(crate) progress_ms: Option<u64>,
    /// Time until another node led and produced, if leadership moved.
    pub(crate) new_leader_ms: Option<u64>,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The seed.
    pub(crate) seed: u64,
    /// Whether every invariant held.
    pub(crate) passed: bool,
    /// The command that replays this run.
    pub(crate) replay: String,
    /// Faults started, by kind.
    pub(crate) faults_by_kind: BTreeMap<&'static str, usize>,
    /// Scheduled faults skipped because their resolved target was busy.
    pub(crate) faults_skipped: usize,
    /// The highest height at the end.
    pub(crate) blocks: u64,
    /// Times leadership moved to another node.
    pub(crate) leader_changes: usize,
    /// The longest time without a new block.
    pub(crate) longest_stall: Stall,
    /// The longest such time while a producer that can produce was healthy.
    pub(crate) longest_stall_with_producer: Stall,
    /// Nodes that came back without a peer past the streams' window.
    pub(crate) stranded: Vec<StrandedNode>,
    /// What each corruption fault did to production.
    pub(crate) garbage: Vec<GarbageOutcome>,
    /// What became of each membership change.
    pub(crate) membership: Vec<MembershipOutcome>,
    /// Node processes that exited on their own.
    pub(crate) exits: Vec<Exit>,
    /// Faults that hit the leader's process or links: time until production moved on.
    pub(crate) failovers: Vec<Recovery>,
    /// Transactions the nodes accepted.
    pub(crate) transactions_accepted: usize,
    /// Accepted transactions found in the final chain.
    pub(crate) transactions_included: usize,
    /// Each invariant's verdict.
    pub(crate) verdicts: Vec<Verdict>,
    /// Faults, heals and leader changes, in time order.
    pub(crate) timeline: Vec<Event>,
}

impl Report {
    /// The report for a human: a summary, then each failed invariant with its timeline.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "== chaos report (seed {}) ==", self.seed);
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind}={count}"))
            .collect();
        let total: usize = self.faults_by_kind.values().sum();
        let _ = writeln!(
            text,
            "faults: {total} ({}), skipped {}",
            kinds.join(" "),
            self.faults_skipped
        );
        let _ = writeln!(
            text,
            "blocks: {}  leader changes: {}  transactions: {} accepted, {} included",
            self.blocks,
            self.leader_changes,
            self.transactions_accepted,
            self.transactions_included
        );
        let _ = writeln!(
            text,
            "longest stall: {:?} from {:?} ({:?} from {:?} while a producer was available)",
            self.longest_stall.length,
            self.longest_stall.from,
            self.longest_stall_with_producer.length,
            self.longest_stall_with_producer.from
        );
        for stranded in &self.stranded {
            let _ = writeln!(
                text,
                "stranded: n{} came back without a peer at height {}, past the streams' window ({})",
                stranded.node,
                stranded.next_height - 1,
                if stranded.converged {
                    "caught up after all"
                } else {
                    "exempt from convergence"
                }
            );
        }
        for outcome in &self.garbage {
            let _ = writeln!(
                text,
                "garbage: {} from {:.1}s to {:.1}s ({}): {} blocks meanwhile, longest stop {:?}{}, next block {} after the removal; {} warn/error lines, at most {} a second on one node",
                outcome.window.fault,
                outcome.window.from.as_secs_f64(),
                outcome.window.to.as_secs_f64(),
                outcome.window.landed,
                outcome.blocks,
                outcome.longest_stop.length,
                outcome
                    .said_why
                    .as_deref()
                    .map_or_else(String::new, |why| format!(", said by {why}")),
                outcome
                    .resumed_after
                    .map_or_else(|| "never".to_owned(), |after| format!("{after:?}")),
                outcome.warnings.lines,
                outcome.warnings.busiest_second,
            );
        }
        for change in &self.membership {
            let at = |time: Option<Duration>, tries: u32| {
                time.map_or_else(
                    || "never".to_owned(),
                    |time| format!("at {:.1}s (try {tries})", time.as_secs_f64()),
                )
            };
            let _ = writeln!(
                text,
                "membership: {} from {:.1}s, {}: begun {}, committed {}, {}",
                change.fault,
                change.from.as_secs_f64(),
                change.replaced,
                at(change.begun, change.begin_tries),
                at(change.committed, change.commit_tries),
                change.done.map_or_else(
                    || format!("not done: {}", change.failure.as_deref().unwrap_or("?")),
                    |done| format!("every node on the new list at {:.1}s", done.as_secs_f64()),
                ),
            );
        }
        let progress: Vec<u64> = self
            .failovers
            .iter()
            .filter_map(|r| r.progress_ms)
            .collect();
        let moved: Vec<u64> = self
            .failovers
            .iter()
            .filter_map(|r| r.new_leader_ms)
            .collect();
        let _ = writeln!(
            text,
            "faults on the leader: {}; production moved on after max {} ms (median {} ms); \
             leadership moved {} times, the new leader produced after max {} ms (median {} ms)",
            self.failovers.len(),
            progress.iter().max().copied().unwrap_or(0),
            median(&progress),
            moved.len(),
            moved.iter().max().copied().unwrap_or(0),
            median(&moved)
        );
        for verdict in &self.verdicts {
            let mark = if verdict.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(text, "  {mark} {}: {}", verdict.name, verdict.detail);
        }
        if self.passed {
            let _ = writeln!(text, "PASSED seed {}", self.seed);
            return text;
        }
        for verdict in self.verdicts.iter().filter(|v| !v.passed) {
            let _ = writeln!(text, "-- timeline around {} --", verdict.name);
            for event in self.window(verdict.at) {
                let _ = writeln!(text, "  {:>9.3}s {}", event.at.as_secs_f64(), event.what);
            }
        }
        let _ = writeln!(
            text,
            "FAILED seed {}; replay with:\n  {}",
            self.seed, self.replay
        );
        text
    }

    /// Timeline events near `at`, or the last ones when the time is unknown.
    fn window(&self, at: Option<Duration>) -> Vec<&Event> {
        match at {
            Some(at) => self
                .timeline
                .iter()
                .filter(|e| e.at + TIMELINE_WINDOW >= at && e.at <= at + TIMELINE_WINDOW)
                .collect(),
            None => {
                let skip = self.timeline.len().saturating_sub(30);
                self.timeline.iter().skip(skip).collect()
            }
        }
    }
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}
