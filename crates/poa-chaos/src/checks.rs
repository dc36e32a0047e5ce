//! The invariants a run is judged by, as pure functions over what was observed: stalls from the
//! timeline of heights, forks and lost blocks from the sightings (every block every process
//! incarnation reported) and the final chains, transactions included twice from a walk of the
//! chain, and what a node left behind past the streams' window says about it.
//!
//! Pure: no clock, no HTTP, no process. The run gathers the data and hands it here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::client::BlockSummary;
use crate::logs::LogRate;
use crate::observe::{Sample, Sighting};

/// The verdict on one invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verdict {
    /// The invariant's name.
    pub(crate) name: &'static str,
    /// Whether it held.
    pub(crate) passed: bool,
    /// What was measured, or what broke it.
    pub(crate) detail: String,
    /// When it broke, from the start of the run, if known.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub(crate) at: Option<Duration>,
}

impl Verdict {
    /// A verdict that held.
    pub(crate) fn pass(name: &'static str, detail: String) -> Self {
        Self {
            name,
            passed: true,
            detail,
            at: None,
        }
    }

    /// A verdict that broke at `at`.
    pub(crate) fn fail(name: &'static str, detail: String, at: Option<Duration>) -> Self {
        Self {
            name,
            passed: false,
            detail,
            at,
        }
    }
}

/// A time without a new block anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub(crate) struct Stall {
    /// When the last block before it was first seen.
    #[serde(with = "millis")]
    pub(crate) from: Duration,
    /// How long no node's height grew.
    #[serde(with = "millis")]
    pub(crate) length: Duration,
}

/// The longest stall of the highest height from `after` on; with `only_available`, counting
/// only time during which a producer that can produce was healthy (the clock restarts when one
/// is again).
pub(crate) fn longest_stall(samples: &[Sample], after: Duration, only_available: bool) -> Stall {
    let mut longest = Stall::default();
    let mut best: Option<u64> = None;
    let mut since: Option<Duration> = None;
    for sample in samples.iter().filter(|s| s.at >= after) {
        let Some(height) = sample.max_height() else {
            continue;
        };
        if best.is_none_or(|best| height > best) || (only_available && !sample.producer_available) {
            best = Some(best.map_or(height, |best| best.max(height)));
            since = Some(sample.at);
            continue;
        }
        if let Some(since) = since {
            let length = sample.at - since;
            if length > longest.length {
                longest = Stall {
                    from: since,
                    length,
                };
            }
        }
    }
    longest
}

/// How long after `from` the highest height first exceeded its value at `from`; `None` if it
/// never did within the samples.
pub(crate) fn time_to_progress(samples: &[Sample], from: Duration) -> Option<Duration> {
    time_to_first_after(samples, from, |_| true)
}

/// How long after `from` a node other than `old_leader` first claimed to lead while the highest
/// height exceeded its value at `from`: the failover time of a fault on `old_leader`. `None`
/// when that never happened (the old leader kept its lease, say, behind a slow link).
pub(crate) fn time_to_new_leader(
    samples: &[Sample],
    from: Duration,
    old_leader: usize,
) -> Option<Duration> {
    time_to_first_after(samples, from, |s| {
        s.leader.is_some_and(|leader| leader != old_leader)
    })
}

/// How long after `from` the first sample that satisfies `also` saw the highest height above
/// its value at `from`; `None` if none did (or nothing was sampled by `from`).
fn time_to_first_after(
    samples: &[Sample],
    from: Duration,
    also: impl Fn(&Sample) -> bool,
) -> Option<Duration> {
    let baseline = samples
        .iter()
        .filter(|s| s.at <= from)
        .filter_map(Sample::max_height)
        .max()?;
    samples
        .iter()
        .filter(|s| s.at > from)
        .find(|s| also(s) && s.max_height().is_some_and(|h| h > baseline))
        .map(|s| s.at - from)
}

/// Leader changes: times a node other than the last known leader claimed to lead.
pub(crate) fn leader_changes(samples: &[Sample]) -> Vec<(Duration, usize)> {
    let mut changes = Vec::new();
    let mut last = None;
    for sample in samples {
        if let Some(leader) = sample.leader
            && last != Some(leader)
        {
            if last.is_some() {
                changes.push((sample.at, leader));
            }
            last = Some(leader);
        }
    }
    changes
}

/// No fork: no height was ever reported with two different blocks, by any node in any of its
/// process incarnations (a restarted process included), and at every height the final chains
/// agree.
pub(crate) fn no_fork(
    sightings: &BTreeMap<u64, Vec<Sighting>>,
    chains: &[Vec<BlockSummary>],
) -> Verdict {
    const NAME: &str = "no_fork";
    if let Some((height, seen)) = sightings.iter().find(|(_, seen)| seen.len() > 1) {
        let reports: Vec<String> = seen.iter().map(describe).collect();
        return Verdict::fail(
            NAME,
            format!("height {height}: {}", reports.join(", then ")),
            Some(seen[1].at),
        );
    }
    let longest = chains.iter().map(Vec::len).max().unwrap_or(0);
    for index in 0..longest {
        let ids: Vec<Option<&str>> = chains
            .iter()
            .map(|chain| chain.get(index).map(|block| block.id.as_str()))
            .collect();
        let mut present = ids.iter().flatten();
        if let Some(first) = present.next()
            && present.any(|id| id != first)
        {
            let shown: Vec<String> = ids.iter().map(|id| id.map_or("-".into(), short)).collect();
            return Verdict::fail(
                NAME,
                format!("final chains differ at height {}: {shown:?}", index + 1),
                None,
            );
        }
    }
    Verdict::pass(
        NAME,
        format!(
            "{} heights agree on every node; {} heights reported during the run, each with one block",
            longest,
            sightings.len()
        ),
    )
}

/// Nothing committed is lost: every block reported at a height is at that height in every
/// final chain, except above `settled[node]` on a node whose final chain stops below that
/// height (it is still importing, or it was left behind past the streams' window without a
/// peer and is exempt).
pub(crate) fn nothing_lost(
    sightings: &BTreeMap<u64, Vec<Sighting>>,
    chains: &[Vec<BlockSummary>],
    settled: &[u64],
) -> Verdict {
    const NAME: &str = "nothing_lost";
    for (height, seen) in sightings {
        let index = usize::try_from(*height).unwrap_or(usize::MAX) - 1;
        for sighting in seen {
            for (node, chain) in chains.iter().enumerate() {
                let settled = settled.get(node).copied().unwrap_or(0);
                match chain.get(index) {
                    Some(block) if block.id == sighting.id => {}
                    None if *height > settled => {}
                    found => {
                        return Verdict::fail(
                            NAME,
                            format!(
                                "block {} reported at height {height} by {} is {} on n{node} at the end",
                                short(&sighting.id),
                                describe_reporter(sighting),
                                found.map_or("missing".into(), |b| format!(
                                    "replaced by {}",
                                    short(&b.id)
                                ))
                            ),
                            Some(sighting.at),
                        );
                    }
                }
            }
        }
    }
    let reported: usize = sightings.values().map(Vec::len).sum();
    Verdict::pass(NAME, format!("{reported} reported blocks on every node"))
}

/// A node left behind past the streams' window without a peer, as the run found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StrandedNode {
    /// The node.
    pub(crate) node: usize,
    /// Its next height when it came back.
    pub(crate) next_height: u64,
    /// Whether it reached the cluster's height after all.
    pub(crate) converged: bool,
    /// What it says at the end about why it does not advance: the reason it stands aside
    /// (`/status` `standing_aside`), else its last cycle's failure.
    pub(crate) says: Option<String>,
}

/// A node left behind past the streams' window without a peer cannot catch up; it is exempt
/// from convergence but must say why in `/status`: the reason it stands aside (or, if it does
/// not, its last failure) names the history step or the trimmed height.
pub(crate) fn stranded_nodes_say_why(stranded: &[StrandedNode]) -> Verdict {
    const NAME: &str = "stranded_nodes_say_why";
    let mut said = Vec::new();
    for node in stranded.iter().filter(|node| !node.converged) {
        let says_why = node
            .says
            .as_deref()
            .is_some_and(|error| error.contains("history") || error.contains("no longer holds"));
        if !says_why {
            return Verdict::fail(
                NAME,
                format!(
                    "n{} is stuck below height {} without saying why (it says: {})",
                    node.node,
                    node.next_height,
                    node.says.as_deref().unwrap_or("nothing")
                ),
                None,
            );
        }
        said.push(format!(
            "n{} at {}: {}",
            node.node,
            node.next_height - 1,
            node.says.as_deref().unwrap_or_default()
        ));
    }
    if said.is_empty() {
        return Verdict::pass(
            NAME,
            "no node was left stuck past the streams' window".to_owned(),
        );
    }
    Verdict::pass(NAME, said.join("; "))
}

/// A corruption fault as the run applied it: when its garbage was on the servers (from the
/// write to the removal), whether on a quorum, and at which height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GarbageWindow {
    /// The fault, as the timeline shows it.
    pub(crate) fault: String,
    /// The kind of garbage.
    pub(crate) garbage: &'static str,
    /// When it was written.
    #[serde(with = "millis")]
    pub(crate) from: Duration,
    /// When the harness removed it.
    #[serde(with = "millis")]
    pub(crate) to: Duration,
    /// Whether it was on a quorum of the servers.
    pub(crate) on_quorum: bool,
    /// The height it was written at, for garbage at a height.
    pub(crate) height: Option<u64>,
    /// Where it landed: the height, and where the leader's block got there first.
    pub(crate) landed: String,
}

/// What a corruption fault did to production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GarbageOutcome {
    /// The fault.
    pub(crate) window: GarbageWindow,
    /// Heights the chain gained while the garbage was there.
    pub(crate) blocks: u64,
    /// The longest time without a block while the garbage was there.
    pub(crate) longest_stop: Stall,
    /// For a stop longer than the stall threshold: the first report of it (node and
    /// `last_error`) that says why, if any.
    pub(crate) said_why: Option<String>,
    /// Time from the removal to the next block, if one came.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub(crate) resumed_after: Option<Duration>,
    /// What the nodes logged at `WARN` and `ERROR` while the garbage was there (filled in by
    /// the run, which reads the logs).
    pub(crate) warnings: LogRate,
}

/// What each corruption fault did: the blocks produced while its garbage was there, its longest
/// stop, who said why, and how soon production resumed after the removal.
pub(crate) fn garbage_outcomes(
    samples: &[Sample],
    windows: &[GarbageWindow],
    threshold: Duration,
) -> Vec<GarbageOutcome> {
    windows
        .iter()
        .map(|window| {
            // Up to the removal: the samples from then on see the garbage gone.
            let during: Vec<Sample> = samples
                .iter()
                .filter(|s| s.at >= window.from && s.at < window.to)
                .cloned()
                .collect();
            let heights: Vec<u64> = during.iter().filter_map(Sample::max_height).collect();
            let blocks = match (heights.first(), heights.iter().max()) {
                (Some(first), Some(last)) => last - first,
                _ => 0,
            };
            let longest_stop = longest_stall(&during, Duration::ZERO, false);
            let said_why = (longest_stop.length > threshold)
                .then(|| said_why(&during, longest_stop, window.height))
                .flatten();
            GarbageOutcome {
                window: window.clone(),
                blocks,
                longest_stop,
                said_why,
                resumed_after: time_to_progress(samples, window.to),
                warnings: LogRate::default(),
            }
        })
        .collect()
}

/// What `/status` said at the end of `stop` (its last sample in which a node answered), if it
/// says why production stopped: for garbage at a height, a node holding the lease whose
/// `last_error` names that height (the last holder's last answer as holder, should it stop
/// answering before the end, or lose the lease and say why it cannot lead); otherwise, for garbage in the lease or the epoch, the
/// `last_error` of any node that counts as a producer (one still catching up after a fault has
/// its own reason to complain), or what a Redis node answers its calls
/// (`lease.nodes[].last_error`: the lease cannot be taken, and that is where `/status` says
/// why). The end, not any moment: an operator who looks while production stands still must
/// find the reason, not a report that came and went.
fn said_why(samples: &[Sample], stop: Stall, height: Option<u64>) -> Option<String> {
    let during = || {
        samples
            .iter()
            .rev()
            .filter(|s| s.at >= stop.from && s.at <= stop.from + stop.length)
    };
    let last_answer = during().find(|s| s.heights.iter().any(Option::is_some))?;
    // For a blocked height, the last lease holder's last answer as holder when, before the
    // stop ended, it fell silent (frozen or killed) or lost the lease and says why it cannot
    // lead (cut off from Redis): it said what it could while it held the lease, and nobody held
    // it after. A holder that still holds and answers is read at the end like everyone.
    let last_holder = height.and_then(|_| {
        let (sample, node) = during().find_map(|s| {
            let node = s
                .said
                .iter()
                .zip(&s.heights)
                .position(|(said, height)| said.holds_lease && height.is_some())?;
            Some((s, node))
        })?;
        let latest_answer = during()
            .take_while(|s| s.at > sample.at)
            .find(|s| s.heights.get(node).is_some_and(Option::is_some));
        let silent_or_says_why = latest_answer.is_none_or(|s| {
            s.said
                .get(node)
                .is_some_and(|said| said.last_error.is_some())
        });
        silent_or_says_why.then_some(sample)
    });
    let last = last_holder.unwrap_or(last_answer);
    last.said.iter().enumerate().find_map(|(node, said)| {
        if said.catching_up {
            return None;
        }
        let error = match height {
            Some(height) => said
                .last_error
                .as_deref()
                .filter(|error| said.holds_lease && mentions_height(error, height)),
            None => said
                .last_error
                .as_deref()
                .or_else(|| said.redis_errors.first().map(String::as_str)),
        }?;
        Some(format!("n{node} at {:?}: {error}", last.at))
    })
}

/// Whether `text` names `height` as `"height <height>"`, not as the start of a longer number.
pub(crate) fn mentions_height(text: &str, height: u64) -> bool {
    let needle = format!("height {height}");
    text.match_indices(&needle).any(|(at, _)| {
        !text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|next| next.is_ascii_digit())
    })
}

/// Garbage on a quorum of servers may stop production (a height blocked on a quorum: no block
/// can reach a quorum there), but never silently: every stop longer than `threshold` while it
/// was there must still be reported in `/status` at its end (see [`GarbageOutcome::said_why`]).
/// Stops under garbage on fewer than a quorum are no exemption: `no_long_stall` judges them.
pub(crate) fn garbage_stops_said_why(outcomes: &[GarbageOutcome], threshold: Duration) -> Verdict {
    const NAME: &str = "garbage_stops_said_why";
    let stops: Vec<&GarbageOutcome> = outcomes
        .iter()
        .filter(|o| o.window.on_quorum && o.longest_stop.length > threshold)
        .collect();
    if let Some(silent) = stops.iter().find(|o| o.said_why.is_none()) {
        let expected = match silent.window.height {
            Some(height) => {
                format!("no node holding the lease named height {height} in its last_error")
            }
            None => "no node had a last_error".to_owned(),
        };
        return Verdict::fail(
            NAME,
            format!(
                "{}: no block for {:?} from {:?} while the garbage was on a quorum, and {expected}",
                silent.window.fault, silent.longest_stop.length, silent.longest_stop.from
            ),
            Some(silent.longest_stop.from + silent.longest_stop.length),
        );
    }
    let on_quorum = outcomes.iter().filter(|o| o.window.on_quorum).count();
    Verdict::pass(
        NAME,
        format!(
            "{} corruption faults ({on_quorum} on a quorum); {} stopped production on a quorum, each said why",
            outcomes.len(),
            stops.len()
        ),
    )
}

/// A node process that exited without the harness killing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Exit {
    /// The node.
    pub(crate) node: usize,
    /// Its process incarnation that exited.
    pub(crate) incarnation: u32,
    /// When the harness noticed.
    #[serde(with = "millis")]
    pub(crate) at: Duration,
    /// The exit status.
    pub(crate) status: String,
    /// The last lines of its log.
    pub(crate) log: Vec<String>,
}

/// No node process exits on its own (a panic, a storage failure given up on): every fault of
/// the schedule is one a node must survive.
pub(crate) fn no_unexpected_exit(exits: &[Exit]) -> Verdict {
    const NAME: &str = "no_unexpected_exit";
    match exits.first() {
        None => Verdict::pass(NAME, "no node process exited on its own".to_owned()),
        Some(exit) => Verdict::fail(
            NAME,
            format!(
                "n{} (process {}) exited with {} ({} exits in all); its log ends: {}",
                exit.node,
                exit.incarnation,
                exit.status,
                exits.len(),
                exit.log.join(" | ")
            ),
            Some(exit.at),
        ),
    }
}

/// What became of one membership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct MembershipOutcome {
    /// The fault that asked for it.
    pub(crate) fault: String,
    /// Which server replaced which, e.g. `r1 by r3`.
    pub(crate) replaced: String,
    /// When it started, from the start of the run.
    #[serde(with = "millis")]
    pub(crate) from: Duration,
    /// When `membership begin` succeeded.
    #[serde(with = "opt_millis")]
    pub(crate) begun: Option<Duration>,
    /// Tries of `membership begin` until then.
    pub(crate) begin_tries: u32,
    /// When `membership commit` succeeded.
    #[serde(with = "opt_millis")]
    pub(crate) committed: Option<Duration>,
    /// Tries of `membership commit` until then.
    pub(crate) commit_tries: u32,
    /// When every node ran on the new list and the old server was stopped.
    #[serde(with = "opt_millis")]
    pub(crate) done: Option<Duration>,
    /// Why it did not get there.
    pub(crate) failure: Option<String>,
}

/// Every membership change the run started reached its end within its bounds: begun,
/// committed, every node on the new list. A commit refused for good (the new server never
/// holds the window) or a node that does not come back on a list fails it.
pub(crate) fn membership_changes_complete(outcomes: &[MembershipOutcome]) -> Verdict {
    const NAME: &str = "membership_changes_complete";
    match outcomes.iter().find(|outcome| outcome.done.is_none()) {
        None => Verdict::pass(
            NAME,
            format!("{} changes, each committed and done", outcomes.len()),
        ),
        Some(outcome) => Verdict::fail(
            NAME,
            format!(
                "{} ({}): {}",
                outcome.fault,
                outcome.replaced,
                outcome.failure.as_deref().unwrap_or("not done")
            ),
            Some(outcome.from),
        ),
    }
}

fn describe(sighting: &Sighting) -> String {
    format!(
        "block {} on {}",
        short(&sighting.id),
        describe_reporter(sighting)
    )
}

fn describe_reporter(sighting: &Sighting) -> String {
    format!(
        "n{} (process {}) at {:?}",
        sighting.node, sighting.incarnation, sighting.at
    )
}

/// No transaction included twice, walking `chain` from height 1.
pub(crate) fn no_duplicate_transaction(chain: &[BlockSummary]) -> Verdict {
    const NAME: &str = "no_duplicate_transaction";
    let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
    let mut count = 0;
    for (index, block) in chain.iter().enumerate() {
        for id in &block.transactions {
            count += 1;
            if let Some(earlier) = first_at.insert(id, index + 1) {
                return Verdict::fail(
                    NAME,
                    format!(
                        "transaction {} at heights {earlier} and {}",
                        short(id),
                        index + 1
                    ),
                    None,
                );
            }
        }
    }
    Verdict::pass(NAME, format!("{count} transactions, each once"))
}

/// The first characters of an id: enough to tell blocks apart in a report.
pub(crate) fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Serde for `Duration` as whole milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::Serializer;

    /// Writes `duration` as milliseconds.
    ///
    /// # Errors
    /// As the serializer.
    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

mod opt_millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::millis::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests;
