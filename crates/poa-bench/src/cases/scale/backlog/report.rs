//! The report of the `backlog` measurement: a row per catch-up scenario and per import, a bar
//! chart, the method, and the findings worded from the numbers (where a catch-up's time goes,
//! and what failed cycles at the production defaults mean). Owns no measuring.

use adapter_chain::CommitDurability;
use adapter_redis::RedisConfig;
use anyhow::Result;

use super::{
    CASE, Catcher, FAILED_CYCLES_IN_A_ROW, LONG_NODE_TIMEOUT, Obtained, REDIS_NODES, Scenario,
    TRANSACTION_BYTES, TRANSACTIONS_PER_BLOCK,
};
use crate::chart;
use crate::model::{CaseReport, Row};
use crate::stats::Latencies;

fn fsync_label(durability: CommitDurability) -> String {
    match durability {
        CommitDurability::Immediate => "fsync every block".to_owned(),
        CommitDurability::Deferred { fsync_every } => format!("fsync every {fsync_every} blocks"),
    }
}

pub(super) fn build(
    backlog: u64,
    block_bytes: usize,
    obtained: &[Obtained],
    imports: &[(CommitDurability, Latencies)],
) -> Result<CaseReport> {
    let mut report = CaseReport::default();
    let mut bars = Vec::new();
    for catch_up in obtained {
        let label = catch_up.scenario.label(backlog);
        let mut row = Row::new(
            CASE,
            label.clone(),
            REDIS_NODES,
            block_bytes,
            &catch_up.totals,
        )
        .with_value("blocks", backlog as f64)
        .with_value("caught_up", catch_up.caught_up as f64)
        .with_value("repetitions", catch_up.repetitions as f64)
        .with_value("failed_cycles", catch_up.failed_cycles as f64);
        if let Some(ms) = mean_ms(catch_up) {
            row = row
                .with_value("cycles", catch_up.cycles as f64)
                .with_value("total_s", ms / 1e3)
                .with_value(
                    "blocks_per_second",
                    backlog as f64 / (ms / 1e3).max(f64::MIN_POSITIVE),
                );
            bars.push((label, ms));
        }
        report.rows.push(row);
    }
    for (durability, latencies) in imports {
        let total_s = latencies.summary().mean_us * latencies.summary().samples as f64 / 1e6;
        let label = format!(
            "verify + commit {backlog} blocks into redb ({})",
            fsync_label(*durability)
        );
        report.rows.push(
            Row::new(CASE, label.clone(), 0, block_bytes, latencies)
                .with_value("blocks", backlog as f64)
                .with_value("total_s", total_s)
                .with_value(
                    "blocks_per_second",
                    backlog as f64 / total_s.max(f64::MIN_POSITIVE),
                ),
        );
        bars.push((label, total_s * 1e3));
    }
    report.charts.push(chart::bars(
        "bench-scale-backlog.svg",
        &format!("Catching up a {backlog}-block backlog: obtaining it, then importing it"),
        "ms (mean per catch-up; import: total)",
        &bars,
    )?);
    report.notes.push(format!(
        "Backlog: one adapter, as leader, publishes a chain of {backlog} blocks of {} \
         transactions of {} B to {REDIS_NODES} local `redis-server`s. A fresh adapter (a new \
         token, an empty local chain) then calls `leader_state` with its next height, takes \
         the blocks it returns and asks again, until a cycle returns none; the rows' \
         latencies are the time until the last block was obtained, one sample per repetition \
         (connecting is not counted), and every catch-up is checked to be the published \
         chain. As a follower the fresh adapter finds the lease held and reads what a quorum \
         holds; as a new leader (after the publisher released) it acquires the lease and runs \
         its full scan. One cycle returns at most `stream_max_len` blocks: one cycle at the \
         default of {}, ten at a tenth of the backlog (the `cycles` value counts the last \
         call too, which returns none). Each node's read fetches the entries it returns \
         through the heights index, in one reply. Importing (verify, then commit, block after block \
         through the importer port, as `poa-core` does) is measured separately on the \
         obtained blocks; its latencies are per block.",
        TRANSACTIONS_PER_BLOCK,
        TRANSACTION_BYTES,
        RedisConfig::default().stream_max_len,
    ));
    report
        .notes
        .push(summary_finding(backlog, obtained, imports));
    if let Some(finding) = defaults_finding(backlog, block_bytes, obtained) {
        report.notes.push(finding);
    }
    Ok(report)
}

/// The mean time of a scenario's catch-ups that obtained every block, in milliseconds.
fn mean_ms(catch_up: &Obtained) -> Option<f64> {
    (!catch_up.totals.is_empty()).then(|| catch_up.totals.summary().mean_us / 1e3)
}

fn catcher_name(catcher: Catcher) -> &'static str {
    match catcher {
        Catcher::Follower => "lagging follower",
        Catcher::NewLeader => "new leader",
    }
}

/// Where a catch-up's time goes: obtaining the backlog at the defaults against importing it.
fn summary_finding(
    backlog: u64,
    obtained: &[Obtained],
    imports: &[(CommitDurability, Latencies)],
) -> String {
    let obtain: Vec<String> = obtained
        .iter()
        .filter(|catch_up| catch_up.scenario.is_default())
        .filter_map(|catch_up| {
            mean_ms(catch_up).map(|ms| {
                format!(
                    "{ms:.0} ms as a {}",
                    catcher_name(catch_up.scenario.catcher)
                )
            })
        })
        .collect();
    let import: Vec<String> = imports
        .iter()
        .map(|(durability, latencies)| {
            let summary = latencies.summary();
            format!(
                "{:.1} s with {}",
                summary.mean_us * summary.samples as f64 / 1e6,
                fsync_label(*durability)
            )
        })
        .collect();
    format!(
        "Finding: obtaining the {backlog} blocks at the production defaults took {}; \
         verifying and committing them took {}. A catching-up process is bound by its local \
         commit, not by the streams: the blocks of a whole stream arrive in one cycle, and \
         each then waits for its own fsync.",
        if obtain.is_empty() {
            "no successful catch-up".to_owned()
        } else {
            obtain.join(" and ")
        },
        import.join(", ")
    )
}

/// What failed cycles at the defaults mean, when there were any: a read close to, or over,
/// the node timeout.
fn defaults_finding(backlog: u64, block_bytes: usize, obtained: &[Obtained]) -> Option<String> {
    let failing: Vec<&Obtained> = obtained
        .iter()
        .filter(|catch_up| catch_up.scenario.is_default() && catch_up.failed_cycles > 0)
        .collect();
    let example = failing.first()?;
    let defaults = RedisConfig::default();
    let read_mib =
        (defaults.stream_max_len.min(backlog) as f64 * block_bytes as f64) / (1024.0 * 1024.0);
    let who: Vec<String> = failing
        .iter()
        .map(|catch_up| {
            let stuck = catch_up.repetitions - catch_up.caught_up;
            format!(
                "the {} saw {} failed cycles over {} catch-ups{}",
                catcher_name(catch_up.scenario.catcher),
                catch_up.failed_cycles,
                catch_up.repetitions,
                if stuck > 0 {
                    format!(
                        " and got stuck in {stuck} ({FAILED_CYCLES_IN_A_ROW} failures in a row)"
                    )
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let clean = |pick: &dyn Fn(&Scenario) -> bool| {
        obtained
            .iter()
            .find(|catch_up| pick(&catch_up.scenario))
            .map_or_else(
                || "was not measured".to_owned(),
                |catch_up| match mean_ms(catch_up) {
                    Some(ms) => format!(
                        "took {ms:.0} ms over {} cycles with {} failed cycles",
                        catch_up.cycles, catch_up.failed_cycles
                    ),
                    None => "never caught up".to_owned(),
                },
            )
    };
    let longer = clean(&|scenario| {
        scenario.catcher == example.scenario.catcher
            && scenario.node_timeout > defaults.node_timeout
    });
    let shorter = clean(&|scenario| scenario.stream_max_len < defaults.stream_max_len);
    Some(format!(
        "Finding: at the production defaults ({} ms node timeout, `stream_max_len` {}) {} \
         (last error: {}). A cycle's read returns up to `stream_max_len` blocks from each node \
         in one reply, bounded by the node timeout: here about {read_mib:.1} MiB per node \
         ({backlog} blocks of about {block_bytes} B), which takes about the node timeout on \
         this machine. With a {} ms node timeout the same catch-up {longer}; reading a tenth \
         per cycle {shorter}. The read is all or nothing and the next cycle asks for the same \
         heights again, so with larger blocks or a slower machine a process this far behind \
         (or starting with an empty data directory) would not catch up at all until an \
         operator lowers `--stream-max-len` or raises `--node-timeout`. The fix belongs in \
         adapter-redis and was not made here: bound a read's reply by bytes as well as \
         entries, so a cycle always returns what fits in one node timeout and the next one \
         continues from there.",
        defaults.node_timeout.as_millis(),
        defaults.stream_max_len,
        who.join("; "),
        example.last_error.as_deref().unwrap_or("none recorded"),
        LONG_NODE_TIMEOUT.as_millis(),
    ))
}
