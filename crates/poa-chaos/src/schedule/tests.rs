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
        block_time: Duration::from_millis(100),
        streams: StreamWindow {
            max_len: 40,
            node_max_entries: 10,
        },
        quorum_disruption_budget: 0,
        kinds: ALL_KINDS,
    }
}

/// Five servers with a budget of one: a quorum of four, one server may be down.
fn with_redis_budget(seed: u64) -> ScheduleSettings {
    ScheduleSettings {
        redis: 5,
        quorum_disruption_budget: 1,
        ..settings(seed, 1)
    }
}

fn active_at(faults: &[PlannedFault], time: Duration) -> Vec<FaultKind> {
    faults
        .iter()
        .filter(|f| f.active_at(time))
        .map(|f| f.kind)
        .collect()
}

fn restarts(faults: &[PlannedFault]) -> Vec<(Duration, usize, bool)> {
    faults
        .iter()
        .filter_map(|fault| match fault.kind {
            FaultKind::RedisRestart { redis, keeps_data } => Some((fault.at, redis, keeps_data)),
            _ => None,
        })
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
            for settings in [settings(seed, budget), with_redis_budget(seed)] {
                // given
                let settings = ScheduleSettings {
                    fault_budget: budget,
                    ..settings
                };

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
                    assert!(
                        downed_redis <= settings.redis - settings.quorum(),
                        "seed {seed}: Redis quorum lost at {fault:?}"
                    );
                }
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
fn plan__when_drawn_over_many_seeds_with_a_small_window_and_a_redis_budget__then_every_kind_appears()
 {
    // given / when
    let names: std::collections::BTreeSet<&str> = (0..40)
        .flat_map(|seed| plan(&with_redis_budget(seed)))
        .map(|fault| fault.kind.name())
        .collect();

    // then: every kind but the membership change, drawn only when named
    assert_eq!(names.len(), FaultKind::NAMES.len() - 1, "{names:?}");
    assert!(!names.contains("membership_change"), "{names:?}");
}

#[test]
fn plan__when_only_membership_changes_are_asked_for__then_draws_them_one_after_another_each_with_its_length_left()
 {
    // given
    let only = kinds_named(&["membership_change".to_owned()]).unwrap();

    for seed in 0..50 {
        // when
        let settings = ScheduleSettings {
            kinds: only,
            duration: Duration::from_secs(60),
            ..settings(seed, 2)
        };
        let faults = plan(&settings);

        // then: at least one, never two at once, each ending before the last second
        assert!(!faults.is_empty(), "seed {seed}");
        for pair in faults.windows(2) {
            assert!(pair[1].at >= pair[0].ends(), "seed {seed}: {pair:?}");
        }
        for fault in &faults {
            assert!(
                matches!(fault.kind, FaultKind::MembershipChange { position } if position < 3),
                "seed {seed}: {fault:?}"
            );
            assert_eq!(fault.lasts, MEMBERSHIP_CHANGE_LENGTH, "seed {seed}");
            assert!(fault.ends() <= Duration::from_secs(59), "seed {seed}");
        }
    }
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
fn plan__when_the_disruption_budget_is_zero__then_every_redis_restart_keeps_its_data() {
    // given / when
    let restarts: Vec<_> = (0..50)
        .flat_map(|seed| restarts(&plan(&settings(seed, 2))))
        .collect();

    // then
    assert!(restarts.len() > 20, "only {} restarts", restarts.len());
    assert!(restarts.iter().all(|(_, _, keeps_data)| *keeps_data));
}

/// Every fault that makes a server lose data (an empty restart or a restore): when, which
/// server, and whether it is a restore.
fn data_losses(faults: &[PlannedFault]) -> Vec<(Duration, usize, bool)> {
    faults
        .iter()
        .filter_map(|fault| {
            let redis = fault.kind.data_lost_on()?;
            Some((fault.at, redis, fault.kind.snapshot_age().is_some()))
        })
        .collect()
}

/// Asserts the budget rule of one plan: every server that lost data did so more than a
/// data-loss window after any other server did.
fn assert_one_server_loses_data_per_window(seed: u64, settings: &ScheduleSettings) -> usize {
    let window = settings.data_loss_window();
    let losses = data_losses(&plan(settings));
    for (at, redis, _) in &losses {
        let others: std::collections::BTreeSet<usize> = losses
            .iter()
            .filter(|(other_at, _, _)| other_at < at && *other_at + window > *at)
            .map(|(_, other, _)| *other)
            .filter(|other| other != redis)
            .collect();
        assert!(
            others.is_empty(),
            "seed {seed}: r{redis} lost data at {at:?} within {window:?} of {others:?}"
        );
    }
    losses.len()
}

#[test]
fn plan__when_the_disruption_budget_is_one__then_at_most_one_server_loses_its_data_per_window() {
    let mut emptied = 0;
    let mut restored = 0;
    for seed in 0..100 {
        // given
        let settings = with_redis_budget(seed);

        // when / then
        assert_one_server_loses_data_per_window(seed, &settings);
        for (_, _, is_restore) in data_losses(&plan(&settings)) {
            if is_restore {
                restored += 1;
            } else {
                emptied += 1;
            }
        }
    }
    assert!(emptied > 20, "only {emptied} empty restarts");
    assert!(restored > 20, "only {restored} restores");
}

#[test]
fn plan__when_two_servers_may_be_down_at_once_and_the_budget_is_one__then_only_one_of_them_loses_data_per_window()
 {
    let mut two_down = 0;
    let mut losses = 0;
    for seed in 0..100 {
        // given seven servers with a budget of one: a quorum of five, two may be down at once
        let settings = ScheduleSettings {
            redis: 7,
            quorum_disruption_budget: 1,
            ..settings(seed, 3)
        };

        // when
        let faults = plan(&settings);

        // then
        losses += assert_one_server_loses_data_per_window(seed, &settings);
        two_down += faults
            .iter()
            .filter(|fault| {
                active_at(&faults, fault.at)
                    .iter()
                    .filter(|f| f.downed_redis().is_some())
                    .count()
                    == 2
            })
            .count();
    }
    assert!(
        two_down > 20,
        "two servers down at once only {two_down} times"
    );
    assert!(losses > 20, "only {losses} data losses");
}

#[test]
fn plan__when_a_server_is_restored__then_its_snapshot_is_seconds_to_tens_of_seconds_older_and_taken_while_it_answers_clean()
 {
    let mut ages = Vec::new();
    for seed in 0..100 {
        // given
        let settings = with_redis_budget(seed);

        // when
        let faults = plan(&settings);

        // then
        for fault in &faults {
            let (Some(age), Some(taken)) = (fault.kind.snapshot_age(), fault.snapshot_at()) else {
                continue;
            };
            assert!(
                (Duration::from_secs(2)..=Duration::from_secs(30)).contains(&age),
                "seed {seed}: {fault:?}"
            );
            assert!(age <= settings.data_loss_window(), "seed {seed}: {fault:?}");
            assert!(taken >= settings.warmup, "seed {seed}: {fault:?} in warmup");
            assert_eq!(taken + age, fault.at);
            let redis = fault.kind.downed_redis();
            let busy = active_at(&faults, taken).into_iter().find(|other| {
                other.downed_redis() == redis
                    || other
                        .corrupted_redis()
                        .zip(redis)
                        .is_some_and(|(servers, redis)| servers.contains(redis))
            });
            assert!(
                busy.is_none(),
                "seed {seed}: {fault:?} copied under {busy:?}"
            );
            ages.push(age);
        }
    }
    assert!(ages.len() > 20, "only {} restores", ages.len());
    assert!(ages.iter().any(|age| *age < Duration::from_secs(5)));
    assert!(ages.iter().any(|age| *age > Duration::from_secs(15)));
}

#[test]
fn plan__when_the_run_has_no_disruption_budget__then_restores_take_no_share_and_the_schedule_is_the_one_without_them()
 {
    // given
    let without: Vec<String> = WEIGHTS
        .iter()
        .map(|(_, name, _)| (*name).to_owned())
        .filter(|name| !["redis_restore_snapshot", "membership_change"].contains(&name.as_str()))
        .collect();
    let without = kinds_named(&without).unwrap();

    for seed in 0..50 {
        // when
        let every_kind = plan(&settings(seed, 2));
        let but_restores = plan(&ScheduleSettings {
            kinds: without,
            ..settings(seed, 2)
        });

        // then
        assert_eq!(every_kind, but_restores, "seed {seed}");
        assert!(data_losses(&every_kind).is_empty(), "seed {seed}");
    }
}

#[test]
fn plan__when_only_restores_are_asked_for__then_draws_restores_only_within_the_budget() {
    // given
    let only = kinds_named(&["redis_restore_snapshot".to_owned()]).unwrap();

    // when
    let faults: Vec<Vec<PlannedFault>> = (0..20)
        .map(|seed| {
            plan(&ScheduleSettings {
                kinds: only,
                ..with_redis_budget(seed)
            })
        })
        .collect();

    // then
    for (seed, faults) in faults.iter().enumerate() {
        assert!(!faults.is_empty(), "seed {seed}: nothing drawn");
        assert!(
            faults
                .iter()
                .all(|fault| fault.kind.name() == "redis_restore_snapshot"),
            "seed {seed}: {faults:?}"
        );
    }
}

#[test]
fn data_loss_window__when_the_stream_is_forty_blocks__then_is_the_index_lifetime_in_block_times() {
    // given
    let settings = settings(1, 1);

    // when / then: 2 x 40 + 256 heights of 100 ms
    assert_eq!(settings.data_loss_window(), Duration::from_millis(33_600));
}

#[test]
fn plan__when_a_node_falls_behind__then_it_is_stopped_past_the_stream_window_and_sometimes_past_the_index()
 {
    // given
    let settings = settings(0, 2);
    let stream = settings.block_time * 50;
    let index = settings.block_time * 336;

    // when
    let falls: Vec<(Duration, Duration)> = (0..60)
        .flat_map(|seed| plan(&ScheduleSettings { seed, ..settings }))
        .filter_map(|fault| match fault.kind {
            FaultKind::NodeFallBehind { cut_off, .. } => Some((cut_off, fault.lasts)),
            _ => None,
        })
        .collect();

    // then
    assert!(falls.len() > 10, "only {} falls", falls.len());
    for (cut_off, lasts) in &falls {
        assert!(*lasts >= *cut_off + stream.mul_f64(1.5), "{lasts:?}");
    }
    assert!(
        falls
            .iter()
            .any(|(cut_off, lasts)| *lasts > *cut_off + index)
    );
    assert!(falls.iter().any(|(cut_off, _)| !cut_off.is_zero()));
}

#[test]
fn plan__when_the_stream_window_is_the_default__then_no_node_falls_behind_in_a_minute() {
    // given
    let settings = ScheduleSettings {
        duration: Duration::from_secs(60),
        streams: StreamWindow {
            max_len: 1000,
            node_max_entries: 100,
        },
        ..settings(0, 2)
    };

    // when
    let falls = (0..50)
        .flat_map(|seed| plan(&ScheduleSettings { seed, ..settings }))
        .filter(|fault| matches!(fault.kind, FaultKind::NodeFallBehind { .. }))
        .count();

    // then
    assert_eq!(falls, 0);
}

#[test]
fn plan__when_a_node_falls_behind_with_a_redis__then_no_link_to_that_redis_is_faulted_meanwhile() {
    for seed in 0..100 {
        // given
        let faults = plan(&settings(seed, 3));

        // when
        let isolations = faults
            .iter()
            .filter_map(|fault| fault.kind.isolated_redis().map(|redis| (fault, redis)));

        // then
        for (isolation, redis) in isolations {
            let clashing = faults.iter().find(|other| {
                other.id != isolation.id
                    && other.at < isolation.ends()
                    && isolation.at < other.ends()
                    && other.kind.link().is_some_and(|(_, r)| r == redis)
            });
            assert!(
                clashing.is_none(),
                "seed {seed}: {isolation:?} and {clashing:?}"
            );
        }
    }
}

#[test]
fn plan__when_replies_are_cut__then_offsets_land_inside_small_and_large_replies() {
    // given / when
    let offsets: Vec<usize> = (0..40)
        .flat_map(|seed| plan(&settings(seed, 1)))
        .filter_map(|fault| match fault.kind {
            FaultKind::LinkCutReply { after, .. } => Some(after),
            _ => None,
        })
        .collect();

    // then
    assert!(offsets.iter().any(|after| *after <= 48));
    assert!(offsets.iter().any(|after| *after >= 4096));
    assert!(offsets.iter().all(|after| (1..=65536).contains(after)));
}

#[test]
fn quorum__when_given_server_counts_and_budgets__then_is_a_majority_plus_the_budget_at_most_all() {
    for (count, budget, expected) in [
        (1, 0, 1),
        (2, 0, 2),
        (3, 0, 2),
        (4, 0, 3),
        (5, 0, 3),
        (3, 1, 3),
        (5, 1, 4),
        (5, 2, 5),
    ] {
        assert_eq!(
            quorum(count, budget),
            expected,
            "count {count} budget {budget}"
        );
    }
}

#[test]
fn plan__when_garbage_is_drawn__then_one_server_leaves_a_clean_quorum_and_a_quorum_has_every_server_up()
 {
    for seed in 0..200 {
        for settings in [settings(seed, 3), with_redis_budget(seed)] {
            // given
            let faults = plan(&settings);

            // when / then: at every start, count servers down or holding garbage
            for fault in &faults {
                let active = active_at(&faults, fault.at);
                let down = active.iter().filter(|f| f.downed_redis().is_some()).count();
                let corrupted: Vec<(Servers, bool)> = active
                    .iter()
                    .filter_map(|f| match f {
                        FaultKind::Corrupt {
                            servers, on_quorum, ..
                        } => Some((*servers, *on_quorum)),
                        _ => None,
                    })
                    .collect();
                assert!(
                    corrupted.len() <= 1,
                    "seed {seed}: two at once at {fault:?}"
                );
                match corrupted.first() {
                    Some((servers, true)) => {
                        assert_eq!(servers.len(), settings.quorum());
                        assert_eq!(down, 0, "seed {seed}: a server down under {fault:?}");
                    }
                    Some((servers, false)) => {
                        assert_eq!(servers.len(), 1);
                        assert!(
                            down < settings.redis - settings.quorum(),
                            "seed {seed}: no clean quorum at {fault:?}"
                        );
                    }
                    None => {}
                }
            }
        }
    }
}

#[test]
fn plan__when_drawn_over_many_seeds__then_every_kind_of_garbage_appears_on_one_server_and_on_a_quorum()
 {
    // given / when
    let drawn: std::collections::BTreeSet<(&str, bool)> = (0..200)
        .flat_map(|seed| plan(&settings(seed, 2)))
        .filter_map(|fault| match fault.kind {
            FaultKind::Corrupt {
                garbage, on_quorum, ..
            } => Some((garbage.name(), on_quorum)),
            _ => None,
        })
        .collect();

    // then
    assert_eq!(drawn.len(), 2 * Garbage::KINDS, "{drawn:?}");
}

#[test]
fn plan__when_a_disk_fills__then_it_lasts_well_within_the_chain_recovery_window() {
    // given / when
    let lengths: Vec<Duration> = (0..60)
        .flat_map(|seed| plan(&settings(seed, 2)))
        .filter(|fault| matches!(fault.kind, FaultKind::NodeDiskFull { .. }))
        .map(|fault| fault.lasts)
        .collect();

    // then
    assert!(lengths.len() > 10, "only {} disk faults", lengths.len());
    assert!(lengths.iter().all(|lasts| *lasts <= Duration::from_secs(8)));
}

#[test]
fn plan__when_only_some_kinds_are_asked_for__then_draws_nothing_else() {
    // given
    let only = kinds_named(&["corrupt".to_owned(), "node_kill".to_owned()]).unwrap();

    // when
    let names: std::collections::BTreeSet<&str> = (0..20)
        .flat_map(|seed| {
            plan(&ScheduleSettings {
                kinds: only,
                ..settings(seed, 2)
            })
        })
        .map(|fault| fault.kind.name())
        .collect();

    // then
    let expected: std::collections::BTreeSet<&str> =
        ["corrupt_one", "corrupt_quorum", "node_kill"].into();
    assert_eq!(names, expected);
}

#[test]
fn kinds_named__when_a_name_is_unknown__then_lists_the_known_ones() {
    // given / when
    let error = kinds_named(&["node_melt".to_owned()]).unwrap_err();

    // then
    assert!(
        error.contains("node_melt") && error.contains("node_disk_full"),
        "{error}"
    );
}

#[test]
fn all_kinds__when_drawn_without_only__then_leaves_out_the_membership_change_alone() {
    // given / when
    let position = WEIGHTS
        .iter()
        .position(|(_, name, _)| *name == "membership_change");

    // then: the constant names its place, and the default set lacks exactly that one
    assert_eq!(position, Some(MEMBERSHIP_CHANGE_DRAW));
    assert!(!ALL_KINDS.contains(MEMBERSHIP_CHANGE_DRAW));
    assert!(
        (0..WEIGHTS.len()).all(|draw| draw == MEMBERSHIP_CHANGE_DRAW || ALL_KINDS.contains(draw))
    );
}
