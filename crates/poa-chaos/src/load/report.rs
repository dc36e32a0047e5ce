//! The load run's verdict and report: what was submitted, accepted, included (once or twice) and
//! lost by cause, throughput and submit latency per phase, and the three verdicts (no forbidden
//! loss, no transaction twice, no fork), as text or JSON.
//!
//! Presentation and judgement over what the run measured; the counting rules are
//! `load::accounting`'s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::PhaseRun;
use super::accounting::{self, Kill, LossGroup, Outcome, Phase, Submission};
use crate::checks::{Verdict, millis};
use crate::cli::LoadCli;
use crate::client::BlockSummary;
use crate::observe::Sample;
use crate::report::Event;

/// Everything a load run measured, handed to [`judge`].
pub(super) struct Measured<'a> {
    pub(super) cli: &'a LoadCli,
    pub(super) phases: &'a [PhaseRun],
    pub(super) submissions: &'a [Submission],
    /// When the clients stopped, from the start of the run.
    pub(super) submitting: Duration,
    /// Whether every pool emptied within the drain bound.
    pub(super) drained: bool,
    pub(super) chains: &'a [Vec<BlockSummary>],
    pub(super) kills: &'a [Kill],
    pub(super) samples: &'a [Sample],
    pub(super) no_fork: Verdict,
    pub(super) timeline: &'a [Event],
}

/// Submissions and their latency over one phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PhaseReport {
    /// The phase.
    pub(crate) phase: Phase,
    /// Its fault, if it had one.
    pub(crate) action: Option<String>,
    /// Submissions sent in it.
    pub(crate) submitted: usize,
    /// Of which answered 202.
    pub(crate) accepted: usize,
    /// Accepted per second of the phase.
    pub(crate) accepted_per_second: f64,
    /// Median and 99th percentile latency of the accepted submissions.
    #[serde(with = "millis")]
    pub(crate) p50: Duration,
    #[serde(with = "millis")]
    pub(crate) p99: Duration,
    /// Accepted in this phase and lost, allowed or not.
    pub(crate) lost: usize,
    /// For a phase whose fault took a node out: the submissions to the other nodes alone, what
    /// their submit path paid for it (the clients that drew the faulted node wait out their
    /// bound there, which says nothing about the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) others: Option<OthersReport>,
}

/// The submissions of a phase to the nodes its fault did not take out.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OthersReport {
    /// The node the fault took out.
    pub(crate) faulted: usize,
    /// Answered 202 by the other nodes.
    pub(crate) accepted: usize,
    /// Their median and 99th percentile latency.
    #[serde(with = "millis")]
    pub(crate) p50: Duration,
    #[serde(with = "millis")]
    pub(crate) p99: Duration,
}

/// Everything a load run reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// The seed.
    pub(crate) seed: u64,
    /// Whether every verdict held.
    pub(crate) passed: bool,
    /// The command that replays this run.
    pub(crate) replay: String,
    /// Submissions sent.
    pub(crate) submitted: usize,
    /// Answered 202.
    pub(crate) accepted: usize,
    /// Answered otherwise, by status.
    pub(crate) refused: BTreeMap<u16, usize>,
    /// Not answered within the bound.
    pub(crate) failed: usize,
    /// Accepted and in the final chain.
    pub(crate) included: usize,
    /// Submitted without a 202 seen (failed, timed out) and in the final chain all the same.
    pub(crate) included_without_acknowledgement: usize,
    /// Transactions in the final chain more than once.
    pub(crate) included_twice: usize,
    /// Accepted and not in the final chain, by cause.
    pub(crate) losses: Vec<LossGroup>,
    /// Lost although the rules forbid it.
    pub(crate) lost_forbidden: usize,
    /// Lost as the rules allow (acknowledged by a process less than one relay round trip
    /// before it was SIGKILLed).
    pub(crate) lost_allowed: usize,
    /// Whether every pool emptied within the drain bound.
    pub(crate) drained: bool,
    /// Accepted per second while the clients ran.
    pub(crate) accepted_per_second: f64,
    /// Accepted and included, per second while the clients ran.
    pub(crate) included_per_second: f64,
    /// Median and 99th percentile submit latency of the accepted submissions.
    #[serde(with = "millis")]
    pub(crate) p50: Duration,
    #[serde(with = "millis")]
    pub(crate) p99: Duration,
    /// Per phase.
    pub(crate) phases: Vec<PhaseReport>,
    /// Blocks in the final chain.
    pub(crate) blocks: usize,
    /// Each verdict.
    pub(crate) verdicts: Vec<Verdict>,
    /// Faults, restarts and the drain, in time order.
    pub(crate) timeline: Vec<Event>,
}

/// Counts, groups and judges what the run measured.
pub(super) fn judge(measured: &Measured<'_>) -> LoadReport {
    let cli = measured.cli;
    let longest = measured
        .chains
        .iter()
        .max_by_key(|chain| chain.len())
        .map_or(&[][..], Vec::as_slice);
    let inclusions = accounting::inclusions(longest);
    let losses = accounting::losses(
        measured.submissions,
        &inclusions,
        measured.kills,
        measured.samples,
        cli.relay_round_trip,
    );
    let accepted: Vec<&Submission> = measured
        .submissions
        .iter()
        .filter(|s| s.outcome == Outcome::Accepted)
        .collect();
    let included = accepted
        .iter()
        .filter(|s| inclusions.contains_key(s.id.as_str()))
        .count();
    let included_without_acknowledgement = measured
        .submissions
        .iter()
        .filter(|s| s.outcome != Outcome::Accepted && inclusions.contains_key(s.id.as_str()))
        .count();
    let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
    for submission in measured.submissions {
        if let Outcome::Refused { status } = submission.outcome {
            *refused.entry(status).or_default() += 1;
        }
    }
    let twice: Vec<&str> = inclusions
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| *id)
        .collect();
    let lost_forbidden: usize = losses.iter().filter(|g| !g.allowed).map(|g| g.count).sum();
    let lost_allowed: usize = losses.iter().filter(|g| g.allowed).map(|g| g.count).sum();
    let latencies: Vec<Duration> = accepted.iter().map(|s| s.latency).collect();
    let seconds = measured.submitting.as_secs_f64().max(f64::EPSILON);
    let verdicts = vec![
        if lost_forbidden == 0 {
            Verdict::pass(
                "no_forbidden_loss",
                format!(
                    "{included} of {} accepted included; {lost_allowed} lost as allowed (acknowledged less than {:?} before a SIGKILL)",
                    accepted.len(),
                    cli.relay_round_trip
                ),
            )
        } else {
            Verdict::fail(
                "no_forbidden_loss",
                format!(
                    "{lost_forbidden} accepted transactions lost that the rules forbid losing (by cause below); {lost_allowed} lost as allowed"
                ),
                None,
            )
        },
        if twice.is_empty() {
            Verdict::pass(
                "no_transaction_twice",
                format!("{} transactions in the chain, each once", inclusions.len()),
            )
        } else {
            Verdict::fail(
                "no_transaction_twice",
                format!(
                    "{} transactions included twice, e.g. {}",
                    twice.len(),
                    crate::checks::short(twice[0])
                ),
                None,
            )
        },
        measured.no_fork.clone(),
    ];
    let phases = measured
        .phases
        .iter()
        .map(|run| phase_report(run, measured.submissions, &losses))
        .collect();
    LoadReport {
        seed: cli.seed,
        passed: verdicts.iter().all(|v| v.passed),
        replay: cli.replay_command(),
        submitted: measured.submissions.len(),
        accepted: accepted.len(),
        refused,
        failed: measured
            .submissions
            .iter()
            .filter(|s| s.outcome == Outcome::Failed)
            .count(),
        included,
        included_without_acknowledgement,
        included_twice: twice.len(),
        losses,
        lost_forbidden,
        lost_allowed,
        drained: measured.drained,
        accepted_per_second: accepted.len() as f64 / seconds,
        included_per_second: included as f64 / seconds,
        p50: accounting::percentile(&latencies, 0.5),
        p99: accounting::percentile(&latencies, 0.99),
        phases,
        blocks: longest.len(),
        verdicts,
        timeline: measured.timeline.to_vec(),
    }
}

fn phase_report(run: &PhaseRun, submissions: &[Submission], losses: &[LossGroup]) -> PhaseReport {
    let sent: Vec<&Submission> = submissions
        .iter()
        .filter(|s| s.phase == run.phase)
        .collect();
    let latencies: Vec<Duration> = sent
        .iter()
        .filter(|s| s.outcome == Outcome::Accepted)
        .map(|s| s.latency)
        .collect();
    let seconds = (run.to - run.from).as_secs_f64().max(f64::EPSILON);
    let others = run.faulted.map(|faulted| {
        let latencies: Vec<Duration> = sent
            .iter()
            .filter(|s| s.node != faulted && s.outcome == Outcome::Accepted)
            .map(|s| s.latency)
            .collect();
        OthersReport {
            faulted,
            accepted: latencies.len(),
            p50: accounting::percentile(&latencies, 0.5),
            p99: accounting::percentile(&latencies, 0.99),
        }
    });
    PhaseReport {
        phase: run.phase,
        action: run.action.clone(),
        submitted: sent.len(),
        accepted: latencies.len(),
        accepted_per_second: latencies.len() as f64 / seconds,
        p50: accounting::percentile(&latencies, 0.5),
        p99: accounting::percentile(&latencies, 0.99),
        lost: losses
            .iter()
            .filter(|g| g.phase == run.phase)
            .map(|g| g.count)
            .sum(),
        others,
    }
}

impl LoadReport {
    /// The report for a human.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "== load report (seed {}) ==", self.seed);
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(status, count)| format!("{count} x {status}"))
            .collect();
        let _ = writeln!(
            text,
            "submitted {}: accepted {}, refused {} ({}), no answer {}",
            self.submitted,
            self.accepted,
            self.refused.values().sum::<usize>(),
            if refused.is_empty() {
                "none".to_owned()
            } else {
                refused.join(", ")
            },
            self.failed
        );
        let _ = writeln!(
            text,
            "included {} of {} accepted (and {} submitted without a 202 seen); included twice: {}; pools {}",
            self.included,
            self.accepted,
            self.included_without_acknowledgement,
            self.included_twice,
            if self.drained {
                "drained"
            } else {
                "still held transactions at the end of the drain"
            }
        );
        let _ = writeln!(
            text,
            "throughput: {:.0} tx/s accepted, {:.0} tx/s included; submit latency p50 {:?}, p99 {:?}; {} blocks",
            self.accepted_per_second, self.included_per_second, self.p50, self.p99, self.blocks
        );
        for phase in &self.phases {
            let _ = writeln!(
                text,
                "  {:<11} {:>5} submitted, {:>5} accepted ({:.0}/s), p50 {:?}, p99 {:?}, {} lost{}",
                phase.phase.name(),
                phase.submitted,
                phase.accepted,
                phase.accepted_per_second,
                phase.p50,
                phase.p99,
                phase.lost,
                phase
                    .action
                    .as_deref()
                    .map_or_else(String::new, |action| format!("  [{action}]"))
            );
            if let Some(others) = &phase.others {
                let _ = writeln!(
                    text,
                    "  {:<11} to the nodes but n{}: {:>5} accepted, p50 {:?}, p99 {:?}",
                    "", others.faulted, others.accepted, others.p50, others.p99
                );
            }
        }
        let _ = writeln!(
            text,
            "lost: {} forbidden, {} allowed",
            self.lost_forbidden, self.lost_allowed
        );
        for group in &self.losses {
            let _ = writeln!(
                text,
                "  {:>5} accepted in {} by n{} ({}), {}: {}",
                group.count,
                group.phase.name(),
                group.node,
                if group.leader { "leader" } else { "follower" },
                match group.fate {
                    accounting::Fate::Alive => "not killed after",
                    accounting::Fate::KilledWithinRoundTrip =>
                        "SIGKILLed less than one relay round trip later",
                    accounting::Fate::KilledLater => "SIGKILLed later",
                },
                if group.allowed {
                    "allowed"
                } else {
                    "FORBIDDEN"
                }
            );
        }
        for verdict in &self.verdicts {
            let mark = if verdict.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(text, "  {mark} {}: {}", verdict.name, verdict.detail);
        }
        if self.passed {
            let _ = writeln!(text, "PASSED load seed {}", self.seed);
        } else {
            let _ = writeln!(text, "-- timeline --");
            for event in &self.timeline {
                let _ = writeln!(text, "  {:>9.3}s {}", event.at.as_secs_f64(), event.what);
            }
            let _ = writeln!(
                text,
                "FAILED load seed {}; replay with:\n  {}",
                self.seed, self.replay
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    fn submission(node: usize, latency_ms: u64, outcome: Outcome) -> Submission {
        Submission {
            id: format!("{node}-{latency_ms}"),
            node,
            phase: Phase::FrozenPeer,
            sent_at: Duration::from_secs(1),
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn phase_report__when_a_follower_was_frozen__then_reports_the_other_nodes_apart() {
        // given: n1 frozen, its clients held to their bound; n0 and n2 answering in 4-6 ms
        let run = PhaseRun {
            phase: Phase::FrozenPeer,
            from: Duration::ZERO,
            to: Duration::from_secs(5),
            action: Some("SIGSTOP follower n1 for 3s".to_owned()),
            faulted: Some(1),
        };
        let mut submissions = vec![
            submission(1, 2000, Outcome::Failed),
            submission(1, 1900, Outcome::Accepted),
        ];
        for latency in 4..=6 {
            submissions.push(submission(0, latency, Outcome::Accepted));
            submissions.push(submission(2, latency, Outcome::Accepted));
        }

        // when
        let report = phase_report(&run, &submissions, &[]);

        // then: the phase as a whole pays the frozen node; the others do not
        assert_eq!(report.p99, Duration::from_millis(1900));
        let others = report.others.unwrap();
        assert_eq!(others.faulted, 1);
        assert_eq!(others.accepted, 6);
        assert_eq!(others.p99, Duration::from_millis(6));
    }

    #[test]
    fn phase_report__when_the_phase_took_no_node_out__then_has_no_split() {
        // given
        let run = PhaseRun {
            phase: Phase::StepDown,
            from: Duration::ZERO,
            to: Duration::from_secs(5),
            action: None,
            faulted: None,
        };

        // when / then
        assert!(phase_report(&run, &[], &[]).others.is_none());
    }
}
