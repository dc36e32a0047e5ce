//! How many entries each reconciliation read asks of a node: the whole stream window when reads
//! are fast, fewer while timeouts cost reads their quorum (a reply of many large blocks can
//! outlast the node timeout on every node, and a reader that kept asking for it would never
//! catch up). Any window is safe: the walk decides only heights a quorum of reads covers.

use std::time::Duration;

/// What one read showed about its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTiming {
    /// How long the read took to reach a quorum of successful answers; `None` if it never did.
    pub quorum_after: Option<Duration>,
    /// How many nodes timed out.
    pub timed_out: usize,
}

/// The window of the next read, given the one this read used (`window`), the largest allowed
/// (`max`, the stream length) and the node timeout: halved (not below 1) when timeouts cost the
/// read its quorum, doubled (not above `max`) when the quorum answered within a quarter of the
/// node timeout, unchanged otherwise. The time is taken at the quorum, not at the end of the
/// read: a slow minority that every read waits out (a half-alive node) must not pin the window
/// low for good.
pub fn next_read_window(window: u64, max: u64, timing: ReadTiming, node_timeout: Duration) -> u64 {
    let max = max.max(1);
    match timing.quorum_after {
        None if timing.timed_out > 0 => (window / 2).max(1),
        Some(elapsed) if elapsed < node_timeout.checked_div(4).unwrap_or_default() => {
            window.saturating_mul(2).min(max)
        }
        _ => window.clamp(1, max),
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(100);

    fn timing(quorum_after: Option<u64>, timed_out: usize) -> ReadTiming {
        ReadTiming {
            quorum_after: quorum_after.map(Duration::from_millis),
            timed_out,
        }
    }

    #[test]
    fn next_read_window__when_timeouts_cost_the_quorum__then_halves_down_to_one() {
        assert_eq!(next_read_window(8, 1000, timing(None, 2), TIMEOUT), 4);
        assert_eq!(next_read_window(1, 1000, timing(None, 2), TIMEOUT), 1);
        // no quorum without timeouts (refusals, errors): the window is not the cause
        assert_eq!(next_read_window(8, 1000, timing(None, 0), TIMEOUT), 8);
    }

    #[test]
    fn next_read_window__when_the_quorum_answered_fast_but_a_slow_node_cost_the_grace__then_doubles_up_to_the_stream_length()
     {
        // the read as a whole took the grace and more; its quorum answered in 5 ms
        assert_eq!(next_read_window(1, 1000, timing(Some(5), 1), TIMEOUT), 2);
        assert_eq!(
            next_read_window(600, 1000, timing(Some(5), 1), TIMEOUT),
            1000
        );
        // a quorum that answered slowly keeps the window
        assert_eq!(next_read_window(4, 1000, timing(Some(40), 0), TIMEOUT), 4);
    }
}
