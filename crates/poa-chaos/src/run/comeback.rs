//! Where a node that a fault kept away stands when the fault heals, against the streams'
//! window, and so whether the stall check counts it as a producer: near the cluster's height or
//! within the window it reads what it missed from the streams and counts at once; past the
//! window it needs a history source, so it counts only once it caught up (from its peers), or
//! never (stranded, without a peer).
//!
//! A pure rule, tested here; the run's state asks Redis how many servers hold a height and
//! records the answer.

/// Blocks below a returning node's next height that must still be in a quorum of streams for
/// it to count as within the window: trimming goes on while it reads (a second of blocks).
const WINDOW_EDGE_MARGIN: u64 = 10;

/// Where a returning node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comeback {
    /// About as high as the cluster: within any window.
    Current,
    /// Behind, but a quorum of streams still holds what it missed.
    WithinWindow {
        /// The height the streams were asked about.
        probe: u64,
        /// Servers holding it.
        held_by: usize,
    },
    /// Past the window with a peer to ask: no producer until it reaches `target`.
    CatchingUpFromPeers {
        /// The height the streams were asked about.
        probe: u64,
        /// Servers holding it.
        held_by: usize,
        /// The cluster's height when it came back.
        target: u64,
    },
    /// Past the window without a peer: no producer, exempt from convergence, unless it reaches
    /// `target` after all.
    Stranded {
        /// The height the streams were asked about.
        probe: u64,
        /// Servers holding it.
        held_by: usize,
        /// The height it needs next.
        next_height: u64,
        /// The height that counts as caught up.
        target: u64,
    },
}

/// Where a node at `height` stands when the cluster is at `cluster_height`; `held_by` counts
/// the servers whose stream holds a height (asked only for a node well behind).
pub(super) fn comeback(
    height: u64,
    cluster_height: u64,
    has_peers: bool,
    quorum: usize,
    held_by: impl FnOnce(u64) -> usize,
) -> Comeback {
    if height + WINDOW_EDGE_MARGIN >= cluster_height {
        return Comeback::Current;
    }
    let next_height = height + 1;
    let probe = next_height.saturating_sub(WINDOW_EDGE_MARGIN).max(1);
    let held_by = held_by(probe);
    if held_by >= quorum {
        Comeback::WithinWindow { probe, held_by }
    } else if has_peers {
        Comeback::CatchingUpFromPeers {
            probe,
            held_by,
            target: cluster_height,
        }
    } else {
        Comeback::Stranded {
            probe,
            held_by,
            next_height,
            target: cluster_height.max(next_height),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    /// A stream window on three servers (quorum 2) that holds heights `from..` on `servers`.
    fn window(from: u64, servers: usize) -> impl FnOnce(u64) -> usize {
        move |height| if height >= from { servers } else { 0 }
    }

    #[test]
    fn comeback__when_near_the_cluster_height__then_current_without_asking_redis() {
        let verdict = comeback(95, 100, false, 2, |_| panic!("no need to ask Redis"));

        assert_eq!(verdict, Comeback::Current);
    }

    #[test]
    fn comeback__when_behind_within_the_window__then_within() {
        let verdict = comeback(50, 100, false, 2, window(30, 3));

        assert_eq!(
            verdict,
            Comeback::WithinWindow {
                probe: 41,
                held_by: 3
            }
        );
    }

    #[test]
    fn comeback__when_past_the_window_with_peers__then_catching_up_to_the_cluster_height() {
        // Cut off for 45 blocks with a window of 30: what it missed is gone from the streams,
        // and it counts as a producer only once its peers brought it current.
        let verdict = comeback(185, 230, true, 2, window(200, 3));

        assert_eq!(
            verdict,
            Comeback::CatchingUpFromPeers {
                probe: 176,
                held_by: 0,
                target: 230
            }
        );
    }

    #[test]
    fn comeback__when_past_the_window_without_peers__then_stranded() {
        let verdict = comeback(185, 230, false, 2, window(200, 3));

        assert_eq!(
            verdict,
            Comeback::Stranded {
                probe: 176,
                held_by: 0,
                next_height: 186,
                target: 230
            }
        );
    }

    #[test]
    fn comeback__when_the_window_is_held_below_a_quorum__then_past_it() {
        let verdict = comeback(50, 100, true, 2, window(0, 1));

        assert!(matches!(verdict, Comeback::CatchingUpFromPeers { .. }));
    }
}
