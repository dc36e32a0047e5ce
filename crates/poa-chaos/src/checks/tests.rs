//! Tests of the invariant checks, from hand-made timelines and chains.

#![allow(non_snake_case)]

use super::*;
use crate::observe::Said;

fn sample(at_ms: u64, heights: &[Option<u64>], leader: Option<usize>, available: bool) -> Sample {
    Sample {
        at: Duration::from_millis(at_ms),
        heights: heights.to_vec(),
        leader,
        producer_available: available,
        said: vec![Said::default(); heights.len()],
    }
}

fn seen(id: &str, node: usize, incarnation: u32, at_secs: u64) -> Sighting {
    Sighting {
        id: id.to_owned(),
        node,
        incarnation,
        at: Duration::from_secs(at_secs),
    }
}

fn sightings(reports: &[(u64, Sighting)]) -> BTreeMap<u64, Vec<Sighting>> {
    let mut map: BTreeMap<u64, Vec<Sighting>> = BTreeMap::new();
    for (height, sighting) in reports {
        map.entry(*height).or_default().push(sighting.clone());
    }
    map
}

fn block(id: &str, transactions: &[&str]) -> BlockSummary {
    BlockSummary {
        id: id.to_owned(),
        transactions: transactions.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn longest_stall__when_heights_stop_for_a_while__then_measures_that_gap() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(100, &[Some(2)], Some(0), true),
        sample(1100, &[Some(2)], None, true),
        sample(2100, &[Some(2)], None, true),
        sample(2200, &[Some(3)], Some(0), true),
    ];

    // when
    let stall = longest_stall(&samples, Duration::ZERO, true);

    // then
    assert_eq!(stall.from, Duration::from_millis(100));
    assert_eq!(stall.length, Duration::from_millis(2000));
}

#[test]
fn longest_stall__when_no_producer_was_available__then_that_time_is_not_counted() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(1000, &[Some(1)], None, false),
        sample(2000, &[Some(1)], None, false),
        sample(2500, &[Some(1)], None, true),
        sample(2600, &[Some(2)], Some(0), true),
    ];

    // when
    let counted = longest_stall(&samples, Duration::ZERO, true);
    let total = longest_stall(&samples, Duration::ZERO, false);

    // then
    assert_eq!(counted.length, Duration::from_millis(500));
    assert_eq!(total.length, Duration::from_millis(2500));
}

#[test]
fn time_to_progress__when_the_height_grows_later__then_is_the_delay() {
    // given
    let samples = [
        sample(0, &[Some(5), None], Some(0), true),
        sample(500, &[Some(5), None], None, true),
        sample(900, &[None, Some(6)], Some(1), true),
    ];

    // when / then
    assert_eq!(
        time_to_progress(&samples, Duration::from_millis(100)),
        Some(Duration::from_millis(800))
    );
    assert_eq!(time_to_progress(&samples, Duration::from_millis(900)), None);
}

#[test]
fn time_to_new_leader__when_another_node_leads_and_produces__then_is_the_failover_time() {
    // given
    let samples = [
        sample(0, &[Some(5), Some(5)], Some(0), true),
        sample(300, &[None, Some(6)], None, true),
        sample(1200, &[None, Some(6)], Some(1), true),
        sample(1300, &[None, Some(7)], Some(1), true),
    ];

    // when / then
    assert_eq!(
        time_to_new_leader(&samples, Duration::from_millis(100), 0),
        Some(Duration::from_millis(1100))
    );
    assert_eq!(
        time_to_new_leader(&samples, Duration::from_millis(100), 1),
        None
    );
}

#[test]
fn leader_changes__when_leadership_moves_with_gaps__then_counts_each_new_leader() {
    // given
    let samples = [
        sample(0, &[Some(1)], Some(0), true),
        sample(100, &[Some(1)], None, true),
        sample(200, &[Some(1)], Some(0), true),
        sample(300, &[Some(1)], Some(2), true),
        sample(400, &[Some(1)], Some(1), true),
    ];

    // when
    let changes = leader_changes(&samples);

    // then
    assert_eq!(
        changes,
        vec![
            (Duration::from_millis(300), 2),
            (Duration::from_millis(400), 1)
        ]
    );
}

#[test]
fn no_fork__when_final_chains_differ_at_a_height__then_fails_naming_it() {
    // given
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[]), block("b2", &[]), block("b3", &[])],
    ];

    // when
    let verdict = no_fork(&BTreeMap::new(), &chains);

    // then
    assert!(!verdict.passed);
    assert!(verdict.detail.contains("height 2"), "{}", verdict.detail);
}

#[test]
fn no_fork__when_chains_are_prefixes_of_each_other__then_holds() {
    // given
    let chains = vec![
        vec![block("a1", &[])],
        vec![block("a1", &[]), block("a2", &[])],
    ];

    // when / then
    assert!(no_fork(&BTreeMap::new(), &chains).passed);
}

#[test]
fn no_fork__when_a_restarted_process_reported_another_block_at_a_height__then_fails_naming_both() {
    // given n1's first process reported x at 7 before a kill; its next process reported y there
    let reports = sightings(&[(7, seen("x", 1, 0, 3)), (7, seen("y", 1, 1, 9))]);
    let chains = vec![vec![block("a1", &[])]];

    // when
    let verdict = no_fork(&reports, &chains);

    // then
    assert!(!verdict.passed);
    assert_eq!(verdict.at, Some(Duration::from_secs(9)));
    assert!(
        verdict.detail.contains("n1 (process 0)") && verdict.detail.contains("n1 (process 1)"),
        "{}",
        verdict.detail
    );
}

#[test]
fn no_fork__when_every_height_was_reported_with_one_block__then_holds() {
    // given
    let reports = sightings(&[(1, seen("a1", 0, 0, 1)), (2, seen("a2", 1, 2, 2))]);
    let chains = vec![vec![block("a1", &[]), block("a2", &[])]];

    // when / then
    assert!(no_fork(&reports, &chains).passed);
}

#[test]
fn nothing_lost__when_a_reported_block_is_missing_on_one_node__then_fails() {
    // given
    let reports = sightings(&[(2, seen("a2", 0, 0, 1))]);
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[])],
    ];

    // when
    let verdict = nothing_lost(&reports, &chains, &[2, 2]);

    // then
    assert!(!verdict.passed);
    assert!(
        verdict.detail.contains("missing on n1"),
        "{}",
        verdict.detail
    );
}

#[test]
fn nothing_lost__when_every_node_holds_every_reported_block__then_holds() {
    // given
    let reports = sightings(&[(1, seen("a1", 1, 0, 1))]);
    let chains = vec![
        vec![block("a1", &[])],
        vec![block("a1", &[]), block("a2", &[])],
    ];

    // when / then
    assert!(nothing_lost(&reports, &chains, &[1, 1]).passed);
}

#[test]
fn nothing_lost__when_a_block_above_the_settled_height_is_not_imported_yet__then_holds() {
    // given
    let reports = sightings(&[(2, seen("a2", 0, 0, 1))]);
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[])],
    ];

    // when / then
    assert!(nothing_lost(&reports, &chains, &[1, 1]).passed);
}

#[test]
fn nothing_lost__when_a_stranded_node_stops_far_below_the_others__then_holds_for_it_alone() {
    // given n1 was left behind at height 1; n0 and n2 settled at 3
    let reports = sightings(&[(3, seen("a3", 0, 0, 1))]);
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[]), block("a3", &[])],
        vec![block("a1", &[])],
        vec![block("a1", &[]), block("a2", &[])],
    ];

    // when
    let stranded_exempt = nothing_lost(&reports, &chains, &[3, 1, 1]);
    let lagging_node_checked = nothing_lost(&reports, &chains, &[3, 1, 3]);

    // then
    assert!(stranded_exempt.passed, "{}", stranded_exempt.detail);
    assert!(!lagging_node_checked.passed);
}

#[test]
fn nothing_lost__when_a_block_above_the_settled_height_was_replaced__then_fails() {
    // given
    let reports = sightings(&[(2, seen("a2", 0, 0, 1))]);
    let chains = vec![
        vec![block("a1", &[]), block("a2", &[])],
        vec![block("a1", &[]), block("b2", &[])],
    ];

    // when / then
    assert!(!nothing_lost(&reports, &chains, &[1, 1]).passed);
}

#[test]
fn stranded_nodes_say_why__when_a_stuck_node_reports_the_history_gap__then_holds() {
    // given
    let stranded = [StrandedNode {
        node: 1,
        next_height: 40,
        converged: false,
        says: Some("history: no history source (peer) is configured".to_owned()),
    }];

    // when
    let verdict = stranded_nodes_say_why(&stranded);

    // then
    assert!(verdict.passed);
    assert!(verdict.detail.contains("n1 at 39"), "{}", verdict.detail);
}

#[test]
fn stranded_nodes_say_why__when_a_stuck_node_says_nothing__then_fails() {
    // given
    let stranded = [
        StrandedNode {
            node: 0,
            next_height: 12,
            converged: true,
            says: None,
        },
        StrandedNode {
            node: 2,
            next_height: 40,
            converged: false,
            says: Some("publish: reached 1 of the 2 nodes a quorum needs".to_owned()),
        },
    ];

    // when
    let verdict = stranded_nodes_say_why(&stranded);

    // then
    assert!(!verdict.passed);
    assert!(verdict.detail.contains("n2"), "{}", verdict.detail);
}

#[test]
fn no_duplicate_transaction__when_a_transaction_is_in_two_blocks__then_fails() {
    // given
    let chain = vec![
        block("a1", &["t1", "t2"]),
        block("a2", &["t3"]),
        block("a3", &["t2"]),
    ];

    // when
    let verdict = no_duplicate_transaction(&chain);

    // then
    assert!(!verdict.passed);
    assert!(
        verdict.detail.contains("heights 1 and 3"),
        "{}",
        verdict.detail
    );
}

#[test]
fn no_duplicate_transaction__when_each_transaction_is_once__then_holds() {
    // given
    let chain = vec![block("a1", &["t1", "t2"]), block("a2", &["t3"])];

    // when / then
    assert!(no_duplicate_transaction(&chain).passed);
}

fn saying(mut sample: Sample, node: usize, holds_lease: bool, error: &str) -> Sample {
    sample.said[node] = Said {
        holds_lease,
        last_error: Some(error.to_owned()),
        redis_errors: Vec::new(),
        catching_up: false,
    };
    sample
}

fn window(from_ms: u64, to_ms: u64, on_quorum: bool, height: Option<u64>) -> GarbageWindow {
    GarbageWindow {
        fault: "#4 corrupt_quorum(forged_next on r0+r1)".to_owned(),
        garbage: "forged_next",
        from: Duration::from_millis(from_ms),
        to: Duration::from_millis(to_ms),
        on_quorum,
        height,
        landed: String::new(),
    }
}

/// Heights 10 until 3.5 s (garbage at 11 from 1 s to 4 s), then 11 at 4.2 s; what each
/// sample's node 0 says is up to `say`.
fn blocked_timeline(say: impl Fn(Sample) -> Sample) -> Vec<Sample> {
    (0..=42)
        .map(|tenth| {
            let at = tenth * 100;
            let height = if at < 4200 { 10 } else { 11 };
            say(sample(
                at,
                &[Some(height), Some(height)],
                None,
                !(1000..=4000).contains(&at),
            ))
        })
        .collect()
}

#[test]
fn mentions_height__when_a_longer_number_starts_with_the_height__then_does_not_count_it() {
    // given / when / then
    assert!(mentions_height(
        "height 11 is blocked on the shared block log",
        11
    ));
    assert!(mentions_height("backlog at height 11", 11));
    assert!(!mentions_height("height 112 is blocked", 11));
    assert!(!mentions_height("heights 11", 11));
}

#[test]
fn garbage_stops_said_why__when_the_lease_holder_names_the_blocked_height__then_holds() {
    // given
    let samples = blocked_timeline(|s| {
        if s.at >= Duration::from_millis(2000) {
            saying(
                s,
                0,
                true,
                "leader_state: height 11 is blocked on the shared block log",
            )
        } else {
            s
        }
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);
    let verdict = garbage_stops_said_why(&outcomes, threshold);

    // then
    assert!(verdict.passed, "{verdict:?}");
    assert_eq!(outcomes[0].blocks, 0);
    assert_eq!(outcomes[0].resumed_after, Some(Duration::from_millis(200)));
    assert!(
        outcomes[0]
            .said_why
            .as_deref()
            .unwrap()
            .starts_with("n0 at 3.9s"),
        "{:?}",
        outcomes[0].said_why
    );
}

#[test]
fn garbage_stops_said_why__when_the_report_came_and_went_before_the_stop_ended__then_fails() {
    // given: the lease holder named the height for a moment only
    let samples = blocked_timeline(|s| {
        if s.at >= Duration::from_millis(1500) && s.at < Duration::from_millis(2000) {
            saying(
                s,
                0,
                true,
                "publish: height 11 already holds another block on a quorum",
            )
        } else {
            s
        }
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);

    // then
    assert!(!garbage_stops_said_why(&outcomes, threshold).passed);
}

#[test]
fn garbage_stops_said_why__when_the_holder_is_cut_off_and_says_why_it_cannot_lead__then_holds() {
    // given: the lease holder names the height while it holds the lease, then a partition
    // costs it the lease before the stop ends; it still answers, says why it cannot lead, and
    // nobody holds the lease at the end
    let samples = blocked_timeline(|s| {
        if s.at < Duration::from_millis(1500) {
            s
        } else if s.at < Duration::from_millis(3000) {
            saying(
                s,
                0,
                true,
                "leader_state: height 11 is blocked on the shared block log",
            )
        } else {
            saying(
                s,
                0,
                false,
                "leader_state: reconcile_read reached 0 of the 2 nodes a quorum needs",
            )
        }
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);
    let verdict = garbage_stops_said_why(&outcomes, threshold);

    // then
    assert!(verdict.passed, "{verdict:?}");
    assert!(
        outcomes[0]
            .said_why
            .as_deref()
            .unwrap()
            .starts_with("n0 at 2.9s"),
        "{:?}",
        outcomes[0].said_why
    );
}

#[test]
fn garbage_stops_said_why__when_only_a_node_without_the_lease_names_it__then_fails() {
    // given
    let samples = blocked_timeline(|s| saying(s, 1, false, "height 11 is blocked"));
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);
    let verdict = garbage_stops_said_why(&outcomes, threshold);

    // then
    assert!(!verdict.passed);
    assert!(
        verdict.detail.contains("named height 11"),
        "{}",
        verdict.detail
    );
}

#[test]
fn garbage_stops_said_why__when_the_garbage_was_on_one_server__then_leaves_the_stop_to_the_stall_check()
 {
    // given: nobody says anything, but the garbage was on one server only
    let samples = blocked_timeline(|s| s);
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, false, Some(11))], threshold);
    let verdict = garbage_stops_said_why(&outcomes, threshold);

    // then
    assert!(verdict.passed, "{verdict:?}");
    assert_eq!(outcomes[0].said_why, None);
}

#[test]
fn garbage_stops_said_why__when_a_whole_key_stops_production_and_any_node_says_so__then_holds() {
    // given
    let samples = blocked_timeline(|s| saying(s, 1, false, "leader_state: reconcile_read failed"));
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, None)], threshold);

    // then
    assert!(garbage_stops_said_why(&outcomes, threshold).passed);
}

#[test]
fn no_unexpected_exit__when_a_node_exited_on_its_own__then_fails_with_its_log() {
    // given
    let exits = [Exit {
        node: 2,
        incarnation: 1,
        at: Duration::from_secs(9),
        status: "exit status: 101".to_owned(),
        log: vec!["thread 'main' panicked".to_owned()],
    }];

    // when
    let verdict = no_unexpected_exit(&exits);

    // then
    assert!(!verdict.passed);
    assert!(verdict.detail.contains("panicked"), "{}", verdict.detail);
    assert!(no_unexpected_exit(&[]).passed);
}

#[test]
fn garbage_stops_said_why__when_only_a_node_still_catching_up_complains__then_fails() {
    // given: the stranded node's own history error is no word about the garbage
    let samples = blocked_timeline(|mut s| {
        s.said[1] = Said {
            holds_lease: false,
            last_error: Some("history: no history source (peer) is configured".to_owned()),
            redis_errors: vec!["promote: WRONGTYPE Operation against a key".to_owned()],
            catching_up: true,
        };
        s
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, None)], threshold);

    // then
    assert!(!garbage_stops_said_why(&outcomes, threshold).passed);
}

#[test]
fn garbage_stops_said_why__when_a_producer_shows_what_the_redis_nodes_answer__then_holds() {
    // given: the lease key is a hash on a quorum; no cycle fails, but /status names what the
    // nodes answer the lease's calls
    let samples = blocked_timeline(|mut s| {
        s.said[1] = Said {
            holds_lease: false,
            last_error: None,
            redis_errors: vec!["promote: WRONGTYPE Operation against a key".to_owned()],
            catching_up: false,
        };
        s
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, None)], threshold);
    let verdict = garbage_stops_said_why(&outcomes, threshold);

    // then
    assert!(verdict.passed, "{verdict:?}");
    assert!(
        outcomes[0]
            .said_why
            .as_deref()
            .is_some_and(|why| why.contains("WRONGTYPE")),
        "{:?}",
        outcomes[0].said_why
    );
}

#[test]
fn garbage_stops_said_why__when_garbage_blocks_a_height_and_only_redis_nodes_complain__then_fails()
{
    // given: a height blocked by garbage must be named by the lease holder; a Redis node's
    // error is no such word
    let samples = blocked_timeline(|mut s| {
        s.said[0] = Said {
            holds_lease: true,
            last_error: None,
            redis_errors: vec!["read_from: timed out".to_owned()],
            catching_up: false,
        };
        s
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);

    // then
    assert!(!garbage_stops_said_why(&outcomes, threshold).passed);
}

#[test]
fn garbage_stops_said_why__when_the_lease_holder_freezes_before_the_stop_ends__then_reads_its_last_answer()
 {
    // given: n0 holds the lease and names the blocked height until it is frozen at 3 s; from
    // then on only n1 answers, without the lease
    let samples = blocked_timeline(|s| {
        if s.at < Duration::from_millis(2000) {
            s
        } else if s.at < Duration::from_millis(3000) {
            saying(
                s,
                0,
                true,
                "leader_state: height 11 is blocked on the shared block log",
            )
        } else {
            let mut s = s;
            s.heights[0] = None;
            s
        }
    });
    let threshold = Duration::from_millis(2500);

    // when
    let outcomes = garbage_outcomes(&samples, &[window(1000, 4000, true, Some(11))], threshold);

    // then
    assert!(
        garbage_stops_said_why(&outcomes, threshold).passed,
        "{:?}",
        outcomes[0]
    );
}

fn change(done: Option<u64>, failure: Option<&str>) -> MembershipOutcome {
    MembershipOutcome {
        fault: "#0 membership_change(list position 1)".to_owned(),
        replaced: "r1 by r3".to_owned(),
        from: Duration::from_secs(4),
        begun: Some(Duration::from_secs(6)),
        begin_tries: 1,
        committed: done.map(|_| Duration::from_secs(10)),
        commit_tries: 3,
        done: done.map(Duration::from_secs),
        failure: failure.map(str::to_owned),
    }
}

#[test]
fn membership_changes_complete__when_a_commit_never_succeeded__then_fails_with_its_reason() {
    // given
    let done = change(Some(14), None);
    let stuck = change(None, Some("membership commit failed 30 times"));

    // when
    let passed = membership_changes_complete(std::slice::from_ref(&done));
    let failed = membership_changes_complete(&[done, stuck]);

    // then
    assert!(passed.passed, "{passed:?}");
    assert!(!failed.passed);
    assert!(
        failed.detail.contains("r1 by r3") && failed.detail.contains("failed 30 times"),
        "{}",
        failed.detail
    );
    assert_eq!(failed.at, Some(Duration::from_secs(4)));
}
