//! One test per protocol variant, each printing how many states it explored (`--nocapture`).
//! The protocol as specified must satisfy every property exhaustively within the bound; each
//! mutation either yields the counterexample named in its test or, where the model shows another
//! mechanism already covers it, is asserted to stay safe (see the crate README).

#![allow(non_snake_case)]

use poa_model::stateright::{Checker, HasDiscoveries, Model};
use poa_model::{ModelConfig, Mutation, ProtocolModel};

const NO_FORK: &str = "no fork";
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
    let path = checker.discovery(NO_FORK);
    assert!(
        path.is_some(),
        "expected a fork, found only {:?}",
        failures(&checker)
    );
    println!("fork: {:?}", path.map(|p| p.into_actions()));
}

#[test]
fn mutation__when_reconciliation_skips_repair__then_a_producer_livelocks_without_forking() {
    // given
    let config = ModelConfig::small(Some(Mutation::NoRepair));

    // when
    let checker = explore(config, false);

    // then
    let path = checker.discovery(PROGRESS);
    assert!(
        path.is_some(),
        "expected a livelock, found only {:?}",
        failures(&checker)
    );
    assert_eq!(failures(&checker), vec![PROGRESS]);
    println!("livelock: {:?}", path.map(|p| p.into_actions()));
}

#[test]
fn mutation__when_write_block_skips_the_owner_check__then_height_check_and_epoch_still_prevent_a_fork()
 {
    // given
    let config = ModelConfig::small(Some(Mutation::NoOwnerCheck));

    // when
    let checker = explore(config, false);

    // then
    assert_eq!(failures(&checker), Vec::<&str>::new());
}

#[test]
fn mutation__when_reconciliation_reads_one_node__then_the_height_check_still_prevents_a_fork() {
    // given
    let config = ModelConfig::small(Some(Mutation::ReadAnyOneNode));

    // when
    let checker = explore(config, false);

    // then
    assert_eq!(failures(&checker), Vec::<&str>::new());
}
