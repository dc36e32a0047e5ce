//! What the nodes logged while a fault was on, read back from their log files: how many `WARN`
//! and `ERROR` lines each wrote, and the most in any one second. A condition an operator must
//! see is logged once when it starts and once when it ends (docs/operations.md); a node that
//! repeats it every cycle floods the log, and this is how a run shows it.
//!
//! Read-only and pure over the text; it judges nothing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Warnings and errors one node logged in a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub(crate) struct LogRate {
    /// `WARN` and `ERROR` lines.
    pub(crate) lines: usize,
    /// The most of them within one wall-clock second.
    pub(crate) busiest_second: usize,
}

/// Every node's log, read at the end of a run, and the wall-clock time the run started.
#[derive(Debug, Clone)]
pub(crate) struct NodeLogs {
    /// Each node's log.
    pub(crate) texts: Vec<String>,
    /// When the run started, by the wall clock the logs are dated by.
    pub(crate) started: SystemTime,
}

impl NodeLogs {
    /// The warnings of every node between `from` and `to` (from the start of the run): lines
    /// summed over the nodes, the busiest second of the busiest node.
    pub(crate) fn between(&self, from: Duration, to: Duration) -> LogRate {
        let rates: Vec<LogRate> = self
            .texts
            .iter()
            .map(|text| warnings_between(text, self.started + from, self.started + to))
            .collect();
        LogRate {
            lines: rates.iter().map(|rate| rate.lines).sum(),
            busiest_second: rates
                .iter()
                .map(|rate| rate.busiest_second)
                .max()
                .unwrap_or(0),
        }
    }
}

/// The `WARN` and `ERROR` lines of `text` (a node's log: each line starts with an RFC 3339
/// UTC time, then the level, possibly in terminal colours) dated in `[from, to)`.
pub(crate) fn warnings_between(text: &str, from: SystemTime, to: SystemTime) -> LogRate {
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for line in text.lines() {
        let plain = without_colours(line);
        let mut words = plain.split_whitespace();
        let (Some(time), Some(level)) = (words.next(), words.next()) else {
            continue;
        };
        if level != "WARN" && level != "ERROR" {
            continue;
        }
        let Ok(time) = humantime::parse_rfc3339(time) else {
            continue;
        };
        if time < from || time >= to {
            continue;
        }
        let second = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        *per_second.entry(second).or_default() += 1;
    }
    LogRate {
        lines: per_second.values().sum(),
        busiest_second: per_second.values().copied().max().unwrap_or(0),
    }
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for end in chars.by_ref() {
                if end == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn warnings_between__when_lines_are_coloured_and_some_outside_the_range__then_counts_the_rest_per_second()
     {
        // given
        let text = "\u{1b}[2m2026-12-06T02:37:29.100Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m backlog found\n\
                    2026-12-06T02:37:29.900Z  WARN backlog found\n\
                    2026-12-06T02:37:30.100Z  INFO produced block\n\
                    2026-12-06T02:37:30.200Z ERROR cannot keep the local chain current\n\
                    2026-12-06T02:37:40.000Z  WARN after the range\n\
                    not a log line\n";
        let from = humantime::parse_rfc3339("2026-12-06T02:37:29Z").unwrap();
        let to = humantime::parse_rfc3339("2026-12-06T02:37:35Z").unwrap();

        // when
        let rate = warnings_between(text, from, to);

        // then
        assert_eq!(
            rate,
            LogRate {
                lines: 3,
                busiest_second: 2
            }
        );
    }
}
