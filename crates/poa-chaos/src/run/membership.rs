//! A membership change under load, step by step as docs/operations.md 7.14 has it: one more
//! Redis server (behind its fault proxies, as every server), every node but the leader
//! restarted one at a time with both lists, `poa-node membership begin`, the leader restarted
//! with both lists, one node restarted on the new list alone, `poa-node membership commit`
//! until it succeeds (bounded), the others restarted on the new list, the old server stopped.
//!
//! Owns the sequence and its bounds, advanced one step per tick of the run so the load and the
//! observer keep running throughout; which node moves next ([`next_action`]) and which lists
//! may lead at each point ([`eligible`]) are pure rules, tested here. The verdict on the
//! outcomes is `checks`'.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Result;

use crate::checks::MembershipOutcome;
use crate::cluster::{Cluster, membership_args, redis_args};
use crate::faults::ActiveFault;
use crate::observe::Sample;

/// Pause after each step before the next: the fleet settles (a new leader takes over) as an
/// operator would let it.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a restarted node may take to answer (and reach the chain's tip of its restart, if
/// the record accepts its lists).
const RESTART_BOUND: Duration = Duration::from_secs(30);
/// How long one membership command may run before it is killed and counts as a failed try.
const COMMAND_BOUND: Duration = Duration::from_secs(30);
/// Tries of `membership begin` (it says what is missing; the operator runs it again).
const BEGIN_TRIES: u32 = 10;
/// Tries of `membership commit`, one a second as the runbook's loop (which gives it 20): the
/// new server must hold the window first, copied by the leader's anti-entropy.
const COMMIT_TRIES: u32 = 30;

/// The lists a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lists {
    /// The fleet's list before the change (`--redis-url`).
    Current,
    /// Both: the current list as `--redis-url`, the next as `--next-redis-url`.
    Joint,
    /// The next list alone.
    Next,
}

/// What the change does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Restart `node` on `lists`.
    Restart { node: usize, lists: Lists },
    /// Run `membership begin`.
    Begin,
    /// Run `membership commit`.
    Commit,
    /// Stop the replaced server: every node runs on the next list.
    Retire,
}

/// The next step of a change, from where each node runs, the node leading now, the nodes
/// behind past the window and how far the records went. Before the begin, every node but one
/// (the leader, if one leads) moves to both lists (they wait, ready to take over from the
/// leader the begin fences); after it, the last one; then one node moves to the next list
/// alone (it waits for the commit, and is the only one that may lead after it: a node that
/// is not behind, a follower if one is); after the commit, the others. Otherwise followers
/// move first, those behind first of all: a node is restarted while it leads only when nobody
/// else is left.
pub(super) fn next_action(
    lists: &[Lists],
    leader: Option<usize>,
    behind: &[bool],
    begun: bool,
    committed: bool,
) -> Action {
    // Every step restarts one node of those on `from` onto `to`. With `healthy_first` (the node
    // must be able to lead afterwards) one not behind, a follower among those; otherwise a
    // follower, one behind among those.
    let restart_one = |from: Lists, to: Lists, healthy_first: bool| {
        (0..lists.len())
            .filter(|node| lists[*node] == from)
            .min_by_key(|&node| {
                let (leads, behind) = (Some(node) == leader, behind[node]);
                if healthy_first {
                    (behind, leads)
                } else {
                    (leads, !behind)
                }
            })
            .map(|node| Action::Restart { node, lists: to })
    };
    if !begun {
        // One node stays on the current list: nothing else may lead until the begin.
        let current = lists
            .iter()
            .filter(|lists| **lists == Lists::Current)
            .count();
        return match restart_one(Lists::Current, Lists::Joint, false) {
            Some(restart) if current > 1 => restart,
            _ => Action::Begin,
        };
    }
    if !committed {
        if let Some(restart) = restart_one(Lists::Current, Lists::Joint, false) {
            return restart;
        }
        // Then one node alone on the new list, to lead once the commit is taken.
        if lists.contains(&Lists::Next) {
            return Action::Commit;
        }
        return restart_one(Lists::Joint, Lists::Next, true).unwrap_or(Action::Commit);
    }
    restart_one(Lists::Joint, Lists::Next, false)
        .or_else(|| restart_one(Lists::Current, Lists::Next, false))
        .unwrap_or(Action::Retire)
}

/// What the run knows of each node that the change must respect.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeMarks<'a> {
    /// Held by a fault (frozen, killed, cut off, its disk failing): no node is restarted until
    /// every such fault is healed.
    pub(super) held: &'a [bool],
    /// Behind past the streams' window (catching up from peers, or stranded).
    pub(super) behind: &'a [bool],
}

/// What one call of [`Change::advance`] did.
#[derive(Debug, Default)]
pub(super) struct Step {
    /// What it did, for the timeline.
    pub(super) said: Vec<String>,
    /// Whether the change is over (done or failed: see [`Change::into_outcome`]).
    pub(super) over: bool,
    /// Nodes that followed no chain for a while and follow it again from now on: those that
    /// waited for the record (on both lists before the begin, on the new list before the
    /// commit), and a node the record refused, once restarted on lists it accepts.
    pub(super) resumed: Vec<usize>,
}

/// Where a change stands between ticks.
enum Stage {
    /// Nothing under way: the next action may start at `after`.
    Ready { after: Duration },
    /// `node` was restarted at `since`; it is done once it answers, at `tip` or above if the
    /// record accepts its lists now.
    Restarting {
        node: usize,
        since: Duration,
        tip: u64,
    },
    /// A membership command runs (started at `since`, try `attempt`).
    Command {
        commit: bool,
        child: Child,
        since: Duration,
        attempt: u32,
    },
}

/// One membership change on its way.
pub(super) struct Change {
    /// The fault that asked for it.
    pub(super) fault: ActiveFault,
    old: Vec<usize>,
    next: Vec<usize>,
    retired: usize,
    lists: Vec<Lists>,
    begun: bool,
    committed: bool,
    /// Failed tries of the command under way.
    failed_tries: u32,
    stage: Stage,
    log: PathBuf,
    outcome: MembershipOutcome,
}

impl Drop for Change {
    fn drop(&mut self) {
        if let Stage::Command { child, .. } = &mut self.stage {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Change {
    /// Starts the change `fault` asks for: one more server, which replaces the server at
    /// `position` of the current list (the fault's). The commands' output goes to `log`.
    pub(super) fn start(
        cluster: &mut Cluster,
        fault: ActiveFault,
        position: usize,
        now: Duration,
        log: &Path,
    ) -> (Self, String) {
        let old = cluster.members.clone();
        let position = position % old.len();
        let retired = old[position];
        let added = cluster.add_redis();
        let mut next = old.clone();
        next[position] = added;
        let describe = fault.describe();
        let change = Self {
            fault,
            old,
            next,
            retired,
            lists: vec![Lists::Current; cluster.nodes.len()],
            begun: false,
            committed: false,
            failed_tries: 0,
            stage: Stage::Ready { after: now },
            log: log.to_owned(),
            outcome: MembershipOutcome {
                fault: describe,
                replaced: format!("r{retired} by r{added}"),
                from: now,
                begun: None,
                begin_tries: 0,
                committed: None,
                commit_tries: 0,
                done: None,
                failure: None,
            },
        };
        let what = format!(
            "r{added} started (port {}): it replaces r{retired} in the list",
            cluster.redis[added].port()
        );
        (change, what)
    }

    /// The action the change takes at `now`, if one is due: none while a step is under way or
    /// its pause lasts, and no restart while a fault holds any node (`held`: frozen, killed, cut
    /// off, its disk failing): an operator waits for the fleet to be whole before taking the
    /// next process down, and a restart then could leave no process able to lead.
    pub(super) fn due(
        &self,
        now: Duration,
        leader: Option<usize>,
        nodes: NodeMarks<'_>,
    ) -> Option<Action> {
        let Stage::Ready { after } = self.stage else {
            return None;
        };
        if now < after {
            return None;
        }
        let behind = nodes.behind;
        match next_action(&self.lists, leader, behind, self.begun, self.committed) {
            Action::Restart { .. } if nodes.held.contains(&true) => None,
            action => Some(action),
        }
    }

    /// The node being restarted, until it is ready: no fault starts on it meanwhile (as the
    /// schedule never puts two faults on one node).
    pub(super) fn restarting(&self) -> Option<usize> {
        match self.stage {
            Stage::Restarting { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Per node, whether it cannot produce at this point of the change: it runs on lists the
    /// nodes' record does not accept now, or it is being restarted (until it answers at the
    /// tip of its restart).
    pub(super) fn excluded(&self) -> Vec<bool> {
        let command = match self.stage {
            Stage::Command { commit, .. } => Some(commit),
            _ => None,
        };
        let restarting = self.restarting();
        self.lists
            .iter()
            .enumerate()
            .map(|(node, lists)| {
                restarting == Some(node) || !eligible(*lists, self.begun, self.committed, command)
            })
            .collect()
    }

    /// Takes the change one step further at `now`, given the latest sample and the nodes a
    /// fault holds or that are behind; says what it did.
    ///
    /// # Errors
    /// Fails when a node cannot be started again.
    pub(super) fn advance(
        &mut self,
        cluster: &mut Cluster,
        sample: Option<&Sample>,
        tip: u64,
        nodes: NodeMarks<'_>,
        now: Duration,
    ) -> Result<Step> {
        let behind = nodes.behind;
        let mut said = Vec::new();
        let mut resumed = Vec::new();
        let leader = sample.and_then(|sample| sample.leader);
        match &mut self.stage {
            Stage::Ready { .. } => {
                let Some(action) = self.due(now, leader, nodes) else {
                    return Ok(Step {
                        said,
                        over: false,
                        resumed,
                    });
                };
                match action {
                    Action::Restart { node, lists } => {
                        let args = self.node_args(cluster, node, lists);
                        cluster.nodes[node].restart_with(args)?;
                        // A node the record refused (the old leader after the begin, a node on
                        // both lists after the commit) followed no chain since: it follows again
                        // from where it stopped.
                        let (begun, committed) = (self.begun, self.committed);
                        if !eligible(self.lists[node], begun, committed, None)
                            && eligible(lists, begun, committed, None)
                        {
                            resumed.push(node);
                        }
                        self.lists[node] = lists;
                        self.stage = Stage::Restarting {
                            node,
                            since: now,
                            tip,
                        };
                        let role = if leader == Some(node) {
                            " (the leader)"
                        } else {
                            ""
                        };
                        said.push(format!("restart n{node}{role} on {}", describe(lists)));
                    }
                    Action::Begin | Action::Commit => {
                        let commit = self.begun;
                        let tries = if commit { COMMIT_TRIES } else { BEGIN_TRIES };
                        if self.failed_tries >= tries {
                            let log = self.log.display().to_string();
                            return Ok(self.fail(
                                format!(
                                    "membership {} failed {tries} times (see {log})",
                                    verb(commit)
                                ),
                                said,
                            ));
                        }
                        self.run_command(cluster, commit, now, &mut said);
                    }
                    Action::Retire => {
                        cluster.redis[self.retired].stop();
                        self.outcome.done = Some(now);
                        said.push(format!(
                            "every node on the new list: r{} stopped, done",
                            self.retired
                        ));
                        return Ok(Step {
                            said,
                            over: true,
                            resumed,
                        });
                    }
                }
            }
            Stage::Restarting { node, since, tip } => {
                let (node, since, tip) = (*node, *since, *tip);
                let height = sample.and_then(|sample| sample.heights[node]);
                // A node the record accepts now must catch up before the next step; one that
                // waits for the begin or the commit follows no chain until then (it fails every
                // cycle on the record): it is ready once it answers.
                // A node the run knows is behind past the window (catching up from its peers,
                // or stranded without one) is not waited for either: its peers or nothing
                // bring it back, as after any fault.
                let follows = eligible(self.lists[node], self.begun, self.committed, None);
                if height.is_some_and(|height| height >= tip || !follows || behind[node]) {
                    said.push(format!(
                        "n{node} answers at height {} on {}",
                        height.unwrap_or_default(),
                        describe(self.lists[node])
                    ));
                    self.stage = Stage::Ready {
                        after: now + SETTLE,
                    };
                } else if now >= since + RESTART_BOUND {
                    return Ok(self.fail(
                        format!(
                            "n{node} did not reach height {tip} within {RESTART_BOUND:?} of its restart on {}",
                            describe(self.lists[node])
                        ),
                        said,
                    ));
                }
            }
            Stage::Command {
                commit,
                child,
                since,
                attempt,
            } => {
                let (commit, since, attempt) = (*commit, *since, *attempt);
                let verb = verb(commit);
                let status = match child.try_wait() {
                    Ok(Some(status)) => Some(status.success()),
                    Ok(None) if now >= since + COMMAND_BOUND => {
                        let _ = child.kill();
                        let _ = child.wait();
                        Some(false)
                    }
                    Ok(None) => None,
                    Err(_) => Some(false),
                };
                match status {
                    None => {}
                    Some(true) => {
                        said.push(format!("membership {verb} succeeded (try {attempt})"));
                        self.failed_tries = 0;
                        // The nodes that waited for this record follow the chain from now on.
                        let waited = if commit { Lists::Next } else { Lists::Joint };
                        resumed = (0..self.lists.len())
                            .filter(|node| self.lists[*node] == waited)
                            .collect();
                        if commit {
                            self.committed = true;
                            self.outcome.committed = Some(now);
                            self.outcome.commit_tries = attempt;
                            cluster.members.clone_from(&self.next);
                        } else {
                            self.begun = true;
                            self.outcome.begun = Some(now);
                            self.outcome.begin_tries = attempt;
                        }
                        self.stage = Stage::Ready {
                            after: now + SETTLE,
                        };
                    }
                    Some(false) => {
                        // The runbook's loop: try again a second later, within the bound.
                        self.failed_tries = attempt;
                        self.stage = Stage::Ready {
                            after: now + Duration::from_secs(1),
                        };
                    }
                }
            }
        }
        Ok(Step {
            said,
            over: false,
            resumed,
        })
    }

    /// The outcome, once [`Self::advance`] said the change is over, or for a change the run
    /// ended before it was.
    pub(super) fn into_outcome(mut self, now: Duration) -> MembershipOutcome {
        if self.outcome.done.is_none() && self.outcome.failure.is_none() {
            self.outcome.failure = Some(format!(
                "not finished at {:.1}s (old list {}, new list {})",
                now.as_secs_f64(),
                servers(&self.old),
                servers(&self.next)
            ));
        }
        self.outcome.clone()
    }

    fn fail(&mut self, reason: String, mut said: Vec<String>) -> Step {
        said.push(format!("failed: {reason}"));
        self.outcome.failure = Some(reason);
        Step {
            said,
            over: true,
            resumed: Vec::new(),
        }
    }

    /// Starts the next try of `membership begin` or `commit`; a failed one is tried again
    /// from [`Stage::Ready`] by the same rule, so the count of failed tries rides along.
    fn run_command(
        &mut self,
        cluster: &Cluster,
        commit: bool,
        now: Duration,
        said: &mut Vec<String>,
    ) {
        let attempt = self.failed_tries + 1;
        let args = membership_args(
            verb(commit),
            &cluster.server_urls(&self.old),
            &cluster.server_urls(&self.next),
            cluster.membership_settings(),
        );
        match cluster.start_membership_command(&args, &self.log) {
            Ok(child) => {
                if attempt == 1 {
                    said.push(format!(
                        "membership {} from {} to {}",
                        verb(commit),
                        servers(&self.old),
                        servers(&self.next)
                    ));
                }
                self.stage = Stage::Command {
                    commit,
                    child,
                    since: now,
                    attempt,
                };
            }
            Err(error) => {
                // Counted as a failed try; the bound ends the change if it keeps failing.
                said.push(format!("cannot run membership {}: {error:#}", verb(commit)));
                self.failed_tries = attempt;
                self.stage = Stage::Ready {
                    after: now + Duration::from_secs(1),
                };
            }
        }
    }

    fn node_args(&self, cluster: &Cluster, node: usize, lists: Lists) -> Vec<String> {
        let old = cluster.node_urls(node, &self.old);
        let next = cluster.node_urls(node, &self.next);
        match lists {
            Lists::Current => redis_args(&old, &[]),
            Lists::Joint => redis_args(&old, &next),
            Lists::Next => redis_args(&next, &[]),
        }
    }
}

/// Whether a node on `lists` may lead at this point of the change, as the nodes' records
/// decide: the current list until the begin, both lists until the commit, the next list after
/// it. While `membership begin` (`command` false) or `commit` (true) runs, the record may
/// already have changed on a quorum: the lists of either side may lead then.
pub(super) fn eligible(lists: Lists, begun: bool, committed: bool, command: Option<bool>) -> bool {
    match (begun, committed) {
        (_, true) => lists == Lists::Next,
        (true, false) => lists == Lists::Joint || (command == Some(true) && lists == Lists::Next),
        (false, false) => {
            lists == Lists::Current || (command == Some(false) && lists == Lists::Joint)
        }
    }
}

fn verb(commit: bool) -> &'static str {
    if commit { "commit" } else { "begin" }
}

fn describe(lists: Lists) -> &'static str {
    match lists {
        Lists::Current => "the old list",
        Lists::Joint => "both lists",
        Lists::Next => "the new list",
    }
}

fn servers(list: &[usize]) -> String {
    let names: Vec<String> = list.iter().map(|server| format!("r{server}")).collect();
    format!("{{{}}}", names.join(","))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    use Lists::{Current, Joint, Next};

    /// The next action when no node is behind.
    fn act(lists: &[Lists], leader: Option<usize>, begun: bool, committed: bool) -> Action {
        next_action(lists, leader, &vec![false; lists.len()], begun, committed)
    }

    #[test]
    fn next_action__when_a_node_is_behind__then_it_moves_early_but_is_never_the_one_left_to_lead() {
        // given three nodes, n2 leading, n0 behind past the window
        let (leader, behind) = (Some(2), [true, false, false]);

        // when / then: before the begin, the one behind moves first, the leader stays
        assert_eq!(
            next_action(&[Current; 3], leader, &behind, false, false),
            restart(0, Joint)
        );
        // the node alone on the new list before the commit is not the one behind
        assert_eq!(
            next_action(&[Joint; 3], leader, &behind, true, false),
            restart(1, Next)
        );
        // and when only the one behind and the leader are left, the leader goes
        assert_eq!(
            next_action(
                &[Joint, Next, Joint],
                Some(0),
                &[false, false, true],
                true,
                false
            ),
            Action::Commit
        );
        assert_eq!(
            next_action(
                &[Joint, Joint, Next],
                Some(0),
                &[false, true, false],
                true,
                true
            ),
            restart(1, Next)
        );
    }

    fn restart(node: usize, lists: Lists) -> Action {
        Action::Restart { node, lists }
    }

    #[test]
    fn next_action__when_a_change_runs_from_start_to_end__then_moves_followers_first_and_the_leader_last()
     {
        // given three nodes, n1 leading throughout
        let leader = Some(1);

        // when / then: before the begin, the followers take both lists
        assert_eq!(act(&[Current; 3], leader, false, false), restart(0, Joint));
        assert_eq!(
            act(&[Joint, Current, Current], leader, false, false),
            restart(2, Joint)
        );
        assert_eq!(
            act(&[Joint, Current, Joint], leader, false, false),
            Action::Begin
        );
        // after it, the old leader too, then one follower on the new list alone
        assert_eq!(
            act(&[Joint, Current, Joint], leader, true, false),
            restart(1, Joint)
        );
        assert_eq!(act(&[Joint; 3], leader, true, false), restart(0, Next));
        assert_eq!(
            act(&[Next, Joint, Joint], leader, true, false),
            Action::Commit
        );
        // after the commit, the others, followers first
        assert_eq!(
            act(&[Next, Joint, Joint], leader, true, true),
            restart(2, Next)
        );
        assert_eq!(
            act(&[Next, Joint, Next], leader, true, true),
            restart(1, Next)
        );
        assert_eq!(act(&[Next; 3], leader, true, true), Action::Retire);
    }

    #[test]
    fn next_action__when_only_the_leader_is_left_to_move__then_moves_it() {
        // given one node, leading
        let leader = Some(0);

        // when / then: nobody else could take over, so the leader itself is restarted
        assert_eq!(act(&[Current], leader, false, false), Action::Begin);
        assert_eq!(act(&[Current], leader, true, false), restart(0, Joint));
        assert_eq!(act(&[Joint], leader, true, false), restart(0, Next));
        assert_eq!(act(&[Next], leader, true, false), Action::Commit);
    }

    #[test]
    fn eligible__when_the_change_moves_on__then_only_the_lists_the_record_accepts_may_lead() {
        // given / when / then: before the begin, the current list; while it runs, both
        assert!(eligible(Current, false, false, None));
        assert!(!eligible(Joint, false, false, None));
        assert!(eligible(Joint, false, false, Some(false)));
        // after it, both lists; the next list alone while the commit runs
        assert!(!eligible(Current, true, false, None));
        assert!(eligible(Joint, true, false, None));
        assert!(!eligible(Next, true, false, None));
        assert!(eligible(Next, true, false, Some(true)));
        // after the commit, the next list alone
        assert!(!eligible(Joint, true, true, None));
        assert!(eligible(Next, true, true, None));
    }

    #[test]
    fn next_action__when_nobody_leads_before_the_begin__then_keeps_one_node_on_the_current_list() {
        // given / when / then: the last node on the current list is the only one that may lead
        assert_eq!(
            act(&[Joint, Current, Current], None, false, false),
            restart(1, Joint)
        );
        assert_eq!(
            act(&[Joint, Joint, Current], None, false, false),
            Action::Begin
        );
        // even when the sample names a leader on both lists (a stale one)
        assert_eq!(
            act(&[Joint, Joint, Current], Some(0), false, false),
            Action::Begin
        );
    }
}
