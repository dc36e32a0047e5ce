//! The arithmetic of a handover, free of I/O: how a leader was stopped, the budget
//! docs/operations.md gives for it, which height the successor produced first, the production
//! gap between two block timestamps, and the median and worst of repeated runs.

use std::time::Duration;

use poa_ports::{BlockHeight, Timestamp};

use crate::fleet::{FleetSettings, NodeStatus};

/// How the leader is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGKILL: a crash; the lease is left to expire.
    Kill,
    /// SIGTERM: a clean shutdown; the node releases the lease on its way out.
    Terminate,
}

impl Stop {
    /// The signal's name.
    pub(crate) fn signal(self) -> &'static str {
        match self {
            Self::Kill => "SIGKILL",
            Self::Terminate => "SIGTERM",
        }
    }
}

/// The worst-case gap docs/operations.md gives (section "Failover budget, worked"): after a
/// SIGKILL the lease is free one TTL after the last published block, after a SIGTERM at once;
/// then a follower notices within one poll interval plus its jitter and produces within one
/// block time.
pub(crate) fn budget(stop: Stop, settings: &FleetSettings) -> Duration {
    let after_release = settings.poll_interval + settings.poll_jitter() + settings.block_time;
    match stop {
        Stop::Kill => settings.lease_ttl + after_release,
        Stop::Terminate => after_release,
    }
}

/// The first height the successor produced, from one status snapshot (its height and count are
/// updated together) and its production count before the leader was stopped. Correct because
/// the successor, as the only leader since, produced every block from its first to its head.
/// `None` when it has produced nothing since.
pub(crate) fn first_height_produced(
    successor: &NodeStatus,
    produced_before: u64,
) -> Option<BlockHeight> {
    let produced = successor
        .blocks_produced
        .checked_sub(produced_before)
        .filter(|produced| *produced > 0)?;
    let first = successor
        .height
        .get()
        .checked_sub(produced)?
        .checked_add(1)?;
    Some(BlockHeight::new(first))
}

/// The time from `earlier` to `later`, zero when `later` is not later.
pub(crate) fn between(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::from_millis(
        later
            .as_unix_millis()
            .saturating_sub(earlier.as_unix_millis()),
    )
}

/// The median and the worst of repeated runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spread {
    /// The middle run (the mean of the two middle ones for an even count).
    pub(crate) median: Duration,
    /// The slowest run.
    pub(crate) worst: Duration,
}

/// The spread of `runs`; `None` when there are none.
pub(crate) fn spread(runs: &[Duration]) -> Option<Spread> {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    let worst = *sorted.last()?;
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2
    };
    Some(Spread { median, worst })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn settings() -> FleetSettings {
        FleetSettings {
            block_time: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            ..FleetSettings::FAST_LOOPBACK
        }
    }

    #[test]
    fn budget__when_killed__then_ttl_plus_poll_jitter_and_one_block() {
        // given
        let settings = settings();

        // when
        let kill = budget(Stop::Kill, &settings);
        let terminate = budget(Stop::Terminate, &settings);

        // then
        assert_eq!(kill, Duration::from_millis(1_000 + 200 + 50 + 200));
        assert_eq!(terminate, Duration::from_millis(200 + 50 + 200));
    }

    #[test]
    fn first_height_produced__when_successor_produced_three__then_its_head_minus_two() {
        // given: the successor had produced 4 blocks in an earlier leadership
        let successor = NodeStatus {
            height: BlockHeight::new(40),
            is_leader: true,
            blocks_produced: 7,
        };

        // when
        let first = first_height_produced(&successor, 4);

        // then: it produced 38, 39 and 40
        assert_eq!(first, Some(BlockHeight::new(38)));
    }

    #[test]
    fn first_height_produced__when_nothing_produced_since__then_none() {
        // given
        let successor = NodeStatus {
            height: BlockHeight::new(40),
            is_leader: false,
            blocks_produced: 4,
        };

        // when / then
        assert_eq!(first_height_produced(&successor, 4), None);
        assert_eq!(first_height_produced(&successor, 5), None);
    }

    #[test]
    fn between__when_later_is_earlier__then_zero() {
        // given
        let early = Timestamp::from_unix_millis(1_000);
        let late = Timestamp::from_unix_millis(2_250);

        // when / then
        assert_eq!(between(early, late), Duration::from_millis(1_250));
        assert_eq!(between(late, early), Duration::ZERO);
    }

    #[test]
    fn spread__when_odd_and_even_counts__then_middle_and_slowest() {
        // given
        let millis = |values: &[u64]| -> Vec<Duration> {
            values.iter().copied().map(Duration::from_millis).collect()
        };

        // when
        let odd = spread(&millis(&[300, 100, 200])).unwrap();
        let even = spread(&millis(&[400, 100, 200, 300])).unwrap();

        // then
        assert_eq!(odd.median, Duration::from_millis(200));
        assert_eq!(odd.worst, Duration::from_millis(300));
        assert_eq!(even.median, Duration::from_millis(250));
        assert_eq!(even.worst, Duration::from_millis(400));
        assert_eq!(spread(&[]), None);
    }
}
