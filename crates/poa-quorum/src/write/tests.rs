//! The write tally from tables and for any sequence of replies.

use proptest::prelude::*;

use super::*;

#[test]
fn write_tally__when_publish_gets_a_quorum_of_refusals__then_is_impossible_before_the_last_reply() {
    // given: 4 nodes, quorum 3
    let mut tally = WriteTally::publish(Quorum::new(4, 0));

    // when
    tally.record(WriteReply::HeightRefused);
    assert_eq!(tally.decision(), WriteDecision::Undecided);
    tally.record(WriteReply::Failed);

    // then
    assert_eq!(tally.decision(), WriteDecision::Impossible);
}

#[test]
fn write_tally__when_a_quorum_denies_the_writer__then_is_impossible_and_counts_the_denials() {
    // given: 3 nodes, quorum 2
    let mut tally = WriteTally::publish(Quorum::new(3, 0));

    // when: two nodes refuse this writer the command (an ACL without XADD)
    tally.record(WriteReply::Denied);
    tally.record(WriteReply::Denied);

    // then: told apart from refused heights and unknown outcomes
    assert_eq!(tally.decision(), WriteDecision::Impossible);
    assert_eq!(
        tally.counts(),
        WriteCounts {
            denied: 2,
            ..WriteCounts::default()
        }
    );
}

#[test]
fn write_tally__when_already_stored_and_written_reach_quorum__then_stored() {
    // given
    let mut tally = WriteTally::publish(Quorum::new(3, 0));

    // when
    tally.record(WriteReply::AlreadyStored);
    tally.record(WriteReply::Written);

    // then
    assert_eq!(tally.decision(), WriteDecision::Stored);
}

#[test]
fn write_tally__when_publish_is_fenced_on_a_quorum__then_reports_fenced() {
    // given
    let mut tally = WriteTally::publish(Quorum::new(3, 0));

    // when
    tally.record(WriteReply::Written);
    tally.record(WriteReply::Fenced);
    assert_eq!(tally.decision(), WriteDecision::Undecided);
    tally.record(WriteReply::Fenced);

    // then
    assert_eq!(tally.decision(), WriteDecision::Fenced);
}

#[test]
fn write_tally__when_repair_has_pre_existing_nodes__then_stops_at_quorum_and_aborts_on_fence() {
    // given: 5 nodes, quorum 3, 2 hold the block, 3 targets
    let quorum = Quorum::new(5, 0);
    let mut tally = WriteTally::repair(quorum, 2, 3);

    // when
    tally.record(WriteReply::AlreadyStored);

    // then
    assert_eq!(tally.decision(), WriteDecision::Stored);

    let mut fenced = WriteTally::repair(quorum, 2, 3);
    fenced.record(WriteReply::Fenced);
    assert_eq!(fenced.decision(), WriteDecision::Fenced);
}

proptest! {
    #[test]
    fn write_tally__for_any_replies__then_decides_exactly_when_it_should(
        nodes in 1usize..8,
        replies in proptest::collection::vec(0u8..5, 0..8),
    ) {
        let quorum = Quorum::new(nodes, 0);
        let mut tally = WriteTally::publish(quorum);
        let (mut stored, mut fenced) = (0usize, 0usize);
        for (answered, reply) in replies.iter().take(nodes).enumerate() {
            let reply = match reply {
                0 => WriteReply::Written,
                1 => WriteReply::AlreadyStored,
                2 => WriteReply::HeightRefused,
                3 => WriteReply::Fenced,
                _ => WriteReply::Failed,
            };
            match reply {
                WriteReply::Written | WriteReply::AlreadyStored => stored += 1,
                WriteReply::Fenced => fenced += 1,
                _ => {}
            }
            tally.record(reply);
            let expected = if stored >= quorum.size() {
                WriteDecision::Stored
            } else if stored + (nodes - answered - 1) < quorum.size() {
                if fenced > 0 { WriteDecision::Fenced } else { WriteDecision::Impossible }
            } else {
                WriteDecision::Undecided
            };
            prop_assert_eq!(tally.decision(), expected);
            if answered + 1 == nodes {
                prop_assert_ne!(tally.decision(), WriteDecision::Undecided);
            }
        }
    }
}
