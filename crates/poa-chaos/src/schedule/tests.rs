//! Tests of the fault schedule: reproducible from the seed, and every scheduling rule holds.

#![allow(non_snake_case)]

use super::*;

fn settings(seed: u64, fault_budget: usize) -> ScheduleSettings {
    ScheduleSettings {
        seed,
        duration: Duration::from_secs(120),
        warmup: Duration::from_secs(3),
        nodes: 3,
        redis: 3,
        fault_budget,
        lease_ttl: Duration::from_secs(1),
    }
}

fn active_at(faults: &[PlannedFault], time: Duration) -> Vec<FaultKind> {
    faults
        .iter()
        .filter(|f| f.active_at(time))
        .map(|f| f.kind)
        .collect()
}

#[test]
fn plan__when_drawn_twice_from_one_seed__then_gives_the_same_schedule() {
    // given
    let settings = settings(42, 2);

    // when
    let first = plan(&settings);
    let second = plan(&settings);

    // then
    assert!(first.len() > 20, "only {} faults", first.len());
    assert_eq!(first, second);
}

#[test]
fn plan__when_seeds_differ__then_schedules_differ() {
    // given / when
    let one = plan(&settings(1, 1));
    let two = plan(&settings(2, 1));

    // then
    assert_ne!(one, two);
}

#[test]
fn plan__when_drawn_for_many_seeds__then_every_rule_holds_at_every_fault_start() {
    for seed in 0..200 {
        for budget in 1..=3 {
            // given
            let settings = settings(seed, budget);

            // when
            let faults = plan(&settings);

            // then
            for fault in &faults {
                assert!(
                    fault.at >= settings.warmup,
                    "seed {seed}: {fault:?} in warmup"
                );
                assert!(
                    fault.ends() < settings.duration,
                    "seed {seed}: {fault:?} too late"
                );
                let active = active_at(&faults, fault.at);
                assert!(
                    active.len() <= budget,
                    "seed {seed}: over budget at {fault:?}"
                );
                let downed_nodes = active.iter().filter(|f| f.downed_node().is_some()).count();
                assert!(
                    downed_nodes < settings.nodes,
                    "seed {seed}: every node down"
                );
                let downed_redis = active.iter().filter(|f| f.downed_redis().is_some()).count();
                assert!(downed_redis <= 1, "seed {seed}: Redis quorum lost");
            }
        }
    }
}

#[test]
fn plan__when_the_budget_is_one__then_faults_never_overlap() {
    // given
    let faults = plan(&settings(7, 1));

    // when / then
    for pair in faults.windows(2) {
        assert!(pair[0].ends() <= pair[1].at, "{pair:?} overlap");
    }
}

#[test]
fn plan__when_drawn_over_many_seeds__then_every_kind_appears() {
    // given / when
    let names: std::collections::BTreeSet<&str> = (0..20)
        .flat_map(|seed| plan(&settings(seed, 1)))
        .map(|fault| fault.kind.name())
        .collect();

    // then
    assert_eq!(names.len(), FaultKind::NAMES.len(), "{names:?}");
}

#[test]
fn plan__when_a_freeze_is_drawn__then_it_outlasts_the_lease_ttl() {
    // given
    let settings = settings(3, 1);

    // when
    let freezes: Vec<PlannedFault> = (0..20)
        .flat_map(|seed| plan(&ScheduleSettings { seed, ..settings }))
        .filter(|fault| matches!(fault.kind, FaultKind::NodeFreeze { .. }))
        .collect();

    // then
    assert!(!freezes.is_empty());
    assert!(
        freezes.iter().all(|f| f.lasts > settings.lease_ttl
            || f.ends() + Duration::from_secs(1) >= settings.duration)
    );
}

#[test]
fn quorum__when_given_server_counts__then_is_a_strict_majority() {
    for (count, expected) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
        assert_eq!(quorum(count), expected, "count {count}");
    }
}
