//! One test per protocol variant; each prints the number of states it explored.

#![allow(non_snake_case)]

use poa_model::stateright::{Checker, Model};
use poa_model::{ModelConfig, Mutation, ProtocolModel};

fn check(mutation: Option<Mutation>) -> impl Checker<ProtocolModel> {
    let model = ProtocolModel::new(ModelConfig::small(mutation)).unwrap();
    let started = std::time::Instant::now();
    let checker = model.checker().threads(2).symmetry().spawn_dfs().join();
    println!(
        "{mutation:?}: {} unique states ({} generated) in {:?}",
        checker.unique_state_count(),
        checker.state_count(),
        started.elapsed()
    );
    checker
}

#[test]
fn protocol__when_checked_exhaustively__then_every_property_holds() {
    // given / when
    let checker = check(None);

    // then
    checker.assert_properties();
}
