//! The cheap check's tally.

use super::*;

#[test]
fn latest_tally__when_backlog_is_seen_on_a_quorum_of_answers__then_backlog() {
    // given
    let quorum = Quorum::new(3, 0);
    let mut tally = LatestTally::new(quorum);

    // when
    tally.record(Some(true));
    assert_eq!(tally.decision(), LatestDecision::Undecided);
    tally.record(Some(false));

    // then
    assert_eq!(tally.decision(), LatestDecision::Backlog);

    let mut failing = LatestTally::new(quorum);
    failing.record(None);
    failing.record(None);
    assert_eq!(failing.decision(), LatestDecision::NoQuorum);

    let mut in_sync = LatestTally::new(quorum);
    in_sync.record(Some(false));
    in_sync.record(Some(false));
    assert_eq!(in_sync.decision(), LatestDecision::InSync);
}
