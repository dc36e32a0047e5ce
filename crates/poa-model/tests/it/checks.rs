//! One test per protocol variant, each printing how many states it explored and its
//! counterexample's length (`--nocapture`). The protocol as specified must satisfy every property
//! exhaustively within the bound; each mutation must yield the counterexample named in its test,
//! and where the whole space is explored, no other safety property may fail (see the crate README).

#![allow(non_snake_case)]

use poa_model::stateright::{Checker, HasDiscoveries, Model};
use poa_model::{ModelConfig, Mutation, ProtocolModel};

const NO_FORK: &str = "no fork";
const SINGLE_QUORUM_BLOCK: &str = "no two blocks on a quorum at one height";
const LAPSED_LEADER: &str = "a leader whose lease lapsed cannot get a write to quorum";
const RECONCILIATION: &str = "a reconciled leader finds every block on a quorum";
const PROGRESS: &str = "a producer with a reachable quorum can make progress";

fn explore(config: ModelConfig, finish_at_first_failure: bool) -> impl Checker<ProtocolModel> {
    let model = ProtocolModel::new(config).unwrap();
    let started = std::time::Instant::now();
    let mut builder = model.checker().threads(2).symmetry();
    if finish_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker = builder.spawn_dfs().join();
    println!(
        "{:?}: {} unique states ({} generated) in {:?}",
        config.mutation,
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

/// Asserts that `property` has a counterexample and prints its length and steps.
fn expect_counterexample(checker: &impl Checker<ProtocolModel>, property: &'static str) {
    let path = checker.discovery(property);
    assert!(
        path.is_some(),
        "expected a counterexample to {property:?}, found only {:?}",
        failures(checker)
    );
    let actions = path.map(|p| p.into_actions()).unwrap_or_default();
    println!(
        "{property}: {} steps (failing: {:?}): {actions:?}",
        actions.len(),
        failures(checker)
    );
}

#[test]
fn protocol__when_two_heights_are_produced__then_every_property_holds() {
    // given
    let config = ModelConfig {
        max_height: 2,
        ..ModelConfig::small(None)
    };

    // when
    let checker = explore(config, false);

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
    let checker = explore(config, false);

    // then
    checker.assert_properties();
}

#[test]
fn mutation__when_write_block_skips_the_height_check__then_producers_fork() {
    // given
    let config = ModelConfig::small(Some(Mutation::NoHeightCheck));

    // when
    let checker = explore(config, true);

    // then
    expect_counterexample(&checker, NO_FORK);
}

#[test]
fn mutation__when_reconciliation_skips_repair__then_a_producer_livelocks_without_forking() {
    // given
    let config = ModelConfig::small(Some(Mutation::NoRepair));

    // when
    let checker = explore(config, false);

    // then
    expect_counterexample(&checker, PROGRESS);
    let found = failures(&checker);
    assert!(
        !found.contains(&NO_FORK) && !found.contains(&SINGLE_QUORUM_BLOCK),
        "{found:?}"
    );
}

#[test]
fn mutation__when_write_block_skips_the_owner_check__then_a_leader_whose_lease_lapsed_gets_a_write_to_quorum()
 {
    // given
    let config = ModelConfig::small(Some(Mutation::NoOwnerCheck));

    // when
    let checker = explore(config, false);

    // then
    expect_counterexample(&checker, LAPSED_LEADER);
    assert_eq!(failures(&checker), vec![LAPSED_LEADER]);
}

#[test]
fn mutation__when_reconciliation_reads_one_node__then_a_leader_misses_a_block_on_a_quorum() {
    // given
    let config = ModelConfig::small(Some(Mutation::ReadAnyOneNode));

    // when
    let checker = explore(config, false);

    // then
    expect_counterexample(&checker, RECONCILIATION);
    assert_eq!(failures(&checker), vec![RECONCILIATION]);
}
