//! One test per protocol variant and bound, each printing how many states it explored and its
//! counterexample's length (`--nocapture`). The protocol as specified must satisfy every property
//! exhaustively within each bound; each mutation must yield the counterexample named in its
//! test, and where the whole space is explored, no other safety property may fail (see the crate
//! README).

#![allow(non_snake_case)]

use poa_model::stateright::{Checker, HasDiscoveries, Model};
use poa_model::{ModelConfig, Mutation, ProtocolModel, Start};

const NO_FORK: &str = "no fork";
const SINGLE_QUORUM_BLOCK: &str = "no two blocks on a quorum at one height";
const LAPSED_LEADER: &str = "a leader whose lease lapsed cannot get a write to quorum";
const RECONCILIATION: &str = "a reconciled leader finds every block on a quorum";
const EPOCH_FLOOR: &str = "a leader's epoch is above every epoch it led with before";
const PROGRESS: &str = "a producer with a reachable quorum can make progress";
const SKIPPED_CHECK: &str = "a leader skips the ownership check only while it holds the lease";
const PARENT_FIRST: &str = "a block is committed only after its parent is committed locally";
const PREFIX: &str = "a local chain is a prefix of the quorum chain and skips no height";

/// When an exploration may stop.
enum Until {
    /// Every reachable state is checked.
    Exhausted,
    /// The first counterexample to this property.
    Found(&'static str),
}

fn explore(config: ModelConfig, until: Until) -> impl Checker<ProtocolModel> {
    let model = ProtocolModel::new(config).unwrap();
    let started = std::time::Instant::now();
    let builder = model.checker().symmetry();
    let builder = match until {
        Until::Exhausted => builder,
        Until::Found(property) => {
            builder.finish_when(HasDiscoveries::AnyOf([property].into_iter().collect()))
        }
    };
    let checker = builder.spawn_dfs().join();
    println!(
        "{:?} from {:?}: {} unique states ({} generated) in {:?}",
        config.mutation,
        config.start,
        checker.unique_state_count(),
        checker.state_count(),
        started.elapsed()
    );
    checker
}

fn failures(checker: &impl Checker<ProtocolModel>) -> Vec<&'static str> {
    let properties = checker.model().properties();
    checker
        .discoveries()
        .into_keys()
        .filter(|name| {
            properties.iter().any(|p| {
                p.name == *name && p.expectation != poa_model::stateright::Expectation::Sometimes
            })
        })
        .collect()
}

/// Every failing property with its counterexample's steps, for failure messages.
fn described(checker: &impl Checker<ProtocolModel>) -> String {
    failures(checker)
        .into_iter()
        .map(|name| {
            let steps = checker
                .discovery(name)
                .map(|path| path.into_actions())
                .unwrap_or_default();
            format!("{name}: {steps:?}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `property` has a counterexample and prints its length and steps.
fn expect_counterexample(checker: &impl Checker<ProtocolModel>, property: &'static str) {
    let path = checker.discovery(property);
    assert!(
        path.is_some(),
        "expected a counterexample to {property:?}, found only:\n{}",
        described(checker)
    );
    let actions = path.map(|p| p.into_actions()).unwrap_or_default();
    println!(
        "{property}: {} steps (failing: {:?}): {actions:?}",
        actions.len(),
        failures(checker)
    );
}

/// Asserts that progress has a counterexample and that neither fork property failed.
fn expect_stall_without_fork(checker: &impl Checker<ProtocolModel>) {
    expect_counterexample(checker, PROGRESS);
    let found = failures(checker);
    assert!(
        !found.contains(&NO_FORK) && !found.contains(&SINGLE_QUORUM_BLOCK),
        "{found:?}"
    );
}

/// One kept height, a read window of one, two heights: streams trim while the exploration runs.
fn trimming(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        max_height: 2,
        kept_heights: 1,
        read_window: 1,
        ..ModelConfig::small(mutation)
    }
}

/// From the failed-publish start (P0's first publish left X1 on A alone): epochs up to 3, so P0
/// may lead once more and P1 once, each sealing one more block at height 1. The three blocks
/// can then end up one on each node, none on a quorum.
fn three_orphans(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        start: Start::FailedPublish,
        ..ModelConfig::small(mutation)
    }
}

/// Three nodes with budget 1 (quorum 3), one of them wiped at a time, up to two wipes.
fn data_loss(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        disruption_budget: 1,
        max_height: 2,
        max_wipes: 2,
        ..ModelConfig::small(mutation)
    }
}

/// One producer with the commit pipeline from the committing start, which may crash once and
/// have a commit fail once, and lead once more (epoch 2) with a block left to seal: a process
/// that sealed all it may takes no new leadership, and this one must, to import what its crash
/// or failure left uncommitted.
fn lone_pipeline(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        producers: 1,
        max_attempts: 2,
        max_crashes: 1,
        ..ModelConfig::pipeline(mutation)
    }
}

#[test]
fn protocol__when_two_heights_are_produced__then_every_property_holds() {
    // given
    let config = ModelConfig {
        max_height: 2,
        ..ModelConfig::small(None)
    };

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn protocol__when_a_producer_may_crash_between_publish_and_commit__then_every_property_holds() {
    // given
    let config = ModelConfig {
        max_crashes: 1,
        max_epoch: 2,
        ..ModelConfig::small(None)
    };

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn protocol__when_a_process_is_far_behind_a_trimmed_log__then_every_property_holds() {
    // given
    let config = ModelConfig::far_behind(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn protocol__when_streams_trim_while_the_exploration_runs__then_every_property_holds() {
    // given
    let config = trimming(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn protocol__when_nodes_lose_their_data_within_the_budget__then_every_property_holds() {
    // given
    let config = data_loss(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn protocol__when_failed_publishes_leave_a_different_block_on_every_node__then_every_property_holds()
 {
    // given
    let config = three_orphans(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn mutation__when_write_block_skips_the_height_check__then_producers_fork() {
    // given
    let config = ModelConfig::small(Some(Mutation::NoHeightCheck));

    // when
    let checker = explore(config, Until::Found(NO_FORK));

    // then
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn mutation__when_reconciliation_skips_repair__then_a_producer_livelocks_without_forking() {
    // given
    let config = ModelConfig::small(Some(Mutation::NoRepair));

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    expect_stall_without_fork(&checker);
}

#[test]
fn mutation__when_a_repair_never_replaces__then_three_orphans_at_one_height_stall_the_fleet() {
    // given
    let config = three_orphans(Some(Mutation::NoReplacement));

    // when
    let checker = explore(config, Until::Exhausted);

    // then: the stall, and nothing else
    expect_counterexample(&checker, PROGRESS);
    assert_eq!(failures(&checker), vec![PROGRESS]);
}

#[test]
fn mutation__when_write_block_skips_the_owner_check__then_a_leader_whose_lease_lapsed_gets_a_write_to_quorum()
 {
    // given
    let config = ModelConfig::small(Some(Mutation::NoOwnerCheck));

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    expect_counterexample(&checker, LAPSED_LEADER);
    assert_eq!(failures(&checker), vec![LAPSED_LEADER]);
}

#[test]
fn mutation__when_a_leader_skips_the_ownership_check_after_its_validity_ended__then_it_produces_without_the_lease()
 {
    // given
    let config = ModelConfig::small(Some(Mutation::SkipCheckAfterExpiry));

    // when
    let checker = explore(config, Until::Exhausted);

    // then: caught by the rule's own property; the write script still fences the stale leader,
    // so no other safety property fails
    expect_counterexample(&checker, SKIPPED_CHECK);
    assert_eq!(failures(&checker), vec![SKIPPED_CHECK]);
}

#[test]
fn mutation__when_reconciliation_reads_one_node__then_a_leader_misses_a_block_on_a_quorum() {
    // given
    let config = ModelConfig::small(Some(Mutation::ReadAnyOneNode));

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    expect_counterexample(&checker, RECONCILIATION);
    assert_eq!(failures(&checker), vec![RECONCILIATION]);
}

#[test]
fn mutation__when_the_walk_has_no_gap_rule_and_write_block_no_trim_floor__then_a_far_behind_leader_forks()
 {
    // given: the far-behind start, and empty nodes where P1 may seal two blocks (so it can
    // commit past the window while P0 stays down)
    let mutation = Some(Mutation::NoGapRuleNorTrimFloor);
    let configs = [
        ModelConfig::far_behind(mutation),
        ModelConfig {
            max_attempts: 2,
            ..trimming(mutation)
        },
    ];

    // when
    let checkers = configs.map(|config| explore(config, Until::Found(NO_FORK)));

    // then
    for checker in &checkers {
        expect_counterexample(checker, NO_FORK);
    }
}

#[test]
fn mutation__when_only_the_gap_rule_is_gone__then_the_trim_floor_refuses_the_repair_and_the_leader_stalls()
 {
    // given: no height above the start's (P1 needs none to stall P0)
    let config = ModelConfig {
        max_height: 2,
        ..ModelConfig::far_behind(Some(Mutation::NoGapRule))
    };

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    expect_stall_without_fork(&checker);
}

#[test]
fn mutation__when_only_the_trim_floor_is_gone__then_the_gap_rule_alone_keeps_every_property() {
    // given
    let config = ModelConfig::far_behind(Some(Mutation::NoTrimFloor));

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn mutation__when_promote_has_no_epoch_floor__then_a_process_leads_again_at_an_epoch_it_used() {
    // given: epochs up to 2 are enough for a second leadership
    let config = ModelConfig {
        max_epoch: 2,
        ..ModelConfig::small(Some(Mutation::NoEpochFloor))
    };

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    expect_counterexample(&checker, EPOCH_FLOOR);
    assert_eq!(failures(&checker), vec![EPOCH_FLOOR]);
}

#[test]
fn protocol__when_the_operator_changes_the_membership_through_the_joint_record__then_every_property_holds()
 {
    // given: old {A,B,C} to new {A,B,D}; begin, commit and the restarts on the next list
    // interleave with leases, publishes and reconciliations in any order
    let config = ModelConfig::membership_change(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn mutation__when_the_commit_skips_the_joint_quorum_check__then_the_old_and_new_sets_both_lead_and_fork()
 {
    // given
    let config = ModelConfig::membership_change(Some(Mutation::CommitWithoutJointQuorum));

    // when
    let checker = explore(config, Until::Found(NO_FORK));

    // then
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn config__when_the_budget_needs_more_nodes_than_there_are__then_refused() {
    // given
    let config = ModelConfig {
        disruption_budget: 2,
        ..ModelConfig::small(None)
    };

    // when
    let model = ProtocolModel::new(config);

    // then
    assert_eq!(
        model.err(),
        Some(poa_model::ModelError::BudgetTooLarge {
            budget: 2,
            nodes: 3
        })
    );
    assert!(
        ProtocolModel::new(ModelConfig {
            start: Start::FarBehind,
            ..ModelConfig::small(None)
        })
        .is_ok()
    );
}

#[test]
fn config__when_a_start_is_replayed_on_another_cluster__then_refused() {
    // given
    let config = ModelConfig {
        nodes: 5,
        ..three_orphans(None)
    };

    // when
    let model = ProtocolModel::new(config);

    // then
    assert_eq!(
        model.err(),
        Some(poa_model::ModelError::StartNeeds {
            start: "failed publish",
            needs: "3 nodes and budget 0"
        })
    );
}

#[test]
fn mutation__when_the_scripts_skip_the_membership_check__then_a_process_of_the_old_set_and_one_of_the_new_fork()
 {
    // given: the change's model with nodes that admit a caller of any record
    let config = ModelConfig::membership_change(Some(Mutation::NoMembershipCheck));

    // when
    let checker = explore(config, Until::Found(NO_FORK));

    // then
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn pipeline__when_leaders_publish_the_next_block_while_a_commit_runs_and_a_commit_may_fail__then_every_property_holds()
 {
    // given
    let config = ModelConfig::pipeline(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn pipeline__when_the_leader_crashes_or_a_commit_fails_with_two_blocks_uncommitted__then_every_property_holds()
 {
    // given
    let config = lone_pipeline(None);

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}

#[test]
fn pipeline__when_the_log_keeps_one_height_and_the_leader_crashes__then_the_committing_block_is_lost_and_the_chain_stalls()
 {
    // given: the block published on the committing one trims it from every node
    let config = ModelConfig {
        kept_heights: 1,
        read_window: 1,
        max_commit_failures: 0,
        ..lone_pipeline(None)
    };

    // when
    let checker = explore(config, Until::Found(PROGRESS));

    // then
    expect_counterexample(&checker, PROGRESS);
}

#[test]
fn mutation__when_a_failed_commit_does_not_stop_the_pipeline__then_the_block_above_is_committed_without_its_parent_and_producers_fork()
 {
    // given
    let config = ModelConfig::pipeline(Some(Mutation::CommitPastFailure));

    // when
    let checker = explore(config, Until::Found(NO_FORK));

    // then
    expect_counterexample(&checker, PARENT_FIRST);
    expect_counterexample(&checker, PREFIX);
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn mutation__when_commits_may_end_out_of_height_order__then_a_block_is_committed_before_its_parent_and_producers_fork()
 {
    // given
    let config = ModelConfig::pipeline(Some(Mutation::CommitsOutOfOrder));

    // when
    let checker = explore(config, Until::Found(NO_FORK));

    // then
    expect_counterexample(&checker, PARENT_FIRST);
    expect_counterexample(&checker, PREFIX);
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn mutation__when_a_leader_produces_a_third_block_while_two_are_uncommitted__then_no_property_fails()
 {
    // given: one producer, three heights and two more blocks, no fault (the pipeline's depth
    // bounds what a crash loses from memory, not what is safe)
    let config = ModelConfig {
        max_height: 3,
        max_crashes: 0,
        max_commit_failures: 0,
        ..lone_pipeline(Some(Mutation::ThirdBlockInFlight))
    };

    // when
    let checker = explore(config, Until::Exhausted);

    // then
    checker.assert_properties();
}
