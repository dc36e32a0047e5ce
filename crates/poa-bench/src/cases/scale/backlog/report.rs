//! The report of the `backlog` measurement: a row per catch-up scenario and per import, a bar
//! chart, the method, and the findings worded from the numbers (where a catch-up's time goes,
//! and what failed cycles at the production defaults mean). Owns no measuring; the words are
//! in `templates/scale.md`.

use adapter_chain::CommitDurability;
use adapter_redis::RedisConfig;
use anyhow::Result;

use super::{
    CASE, Catcher, FAILED_CYCLES_IN_A_ROW, LONG_NODE_TIMEOUT, Obtained, REDIS_NODES, Scenario,
    TRANSACTION_BYTES, TRANSACTIONS_PER_BLOCK,
};
use crate::chart;
use crate::model::{CaseReport, Row};
use crate::prose::fill;
use crate::stats::Latencies;
use crate::templates::SCALE;

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
    report.notes.push(fill!(
        SCALE,
        "backlog-method",
        backlog = backlog,
        transactions_per_block = TRANSACTIONS_PER_BLOCK,
        transaction_bytes = TRANSACTION_BYTES,
        redis_nodes = REDIS_NODES,
        stream_max_len = RedisConfig::default().stream_max_len,
    )?);
    report
        .notes
        .push(summary_finding(backlog, obtained, imports)?);
    if let Some(finding) = defaults_finding(backlog, block_bytes, obtained)? {
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
) -> Result<String> {
    let obtain = obtained
        .iter()
        .filter(|catch_up| catch_up.scenario.is_default())
        .filter_map(|catch_up| {
            mean_ms(catch_up).map(|ms| {
                fill!(
                    SCALE,
                    "backlog-obtained-item",
                    ms = ms,
                    catcher = catcher_name(catch_up.scenario.catcher),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let import = imports
        .iter()
        .map(|(durability, latencies)| {
            let summary = latencies.summary();
            fill!(
                SCALE,
                "backlog-imported-item",
                seconds = summary.mean_us * summary.samples as f64 / 1e6,
                fsync = fsync_label(*durability),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    fill!(
        SCALE,
        "backlog-summary",
        backlog = backlog,
        obtained = if obtain.is_empty() {
            SCALE.text("backlog-none-obtained")?
        } else {
            obtain.join(" and ")
        },
        imported = import.join(", "),
    )
}

/// What failed cycles at the defaults mean, when there were any: a read close to, or over,
/// the node timeout.
fn defaults_finding(
    backlog: u64,
    block_bytes: usize,
    obtained: &[Obtained],
) -> Result<Option<String>> {
    let failing: Vec<&Obtained> = obtained
        .iter()
        .filter(|catch_up| catch_up.scenario.is_default() && catch_up.failed_cycles > 0)
        .collect();
    let Some(example) = failing.first() else {
        return Ok(None);
    };
    let defaults = RedisConfig::default();
    let read_mib =
        (defaults.stream_max_len.min(backlog) as f64 * block_bytes as f64) / (1024.0 * 1024.0);
    let who = failing
        .iter()
        .map(|catch_up| {
            let stuck = catch_up.repetitions - catch_up.caught_up;
            let catcher = catcher_name(catch_up.scenario.catcher);
            if stuck > 0 {
                fill!(
                    SCALE,
                    "backlog-stuck-item",
                    catcher = catcher,
                    failed_cycles = catch_up.failed_cycles,
                    repetitions = catch_up.repetitions,
                    stuck = stuck,
                    failures_in_a_row = FAILED_CYCLES_IN_A_ROW,
                )
            } else {
                fill!(
                    SCALE,
                    "backlog-failing-item",
                    catcher = catcher,
                    failed_cycles = catch_up.failed_cycles,
                    repetitions = catch_up.repetitions,
                )
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let scenario = |pick: &dyn Fn(&Scenario) -> bool| {
        let Some(catch_up) = obtained.iter().find(|catch_up| pick(&catch_up.scenario)) else {
            return SCALE.text("backlog-scenario-unmeasured");
        };
        match mean_ms(catch_up) {
            Some(ms) => fill!(
                SCALE,
                "backlog-scenario-took",
                ms = ms,
                cycles = catch_up.cycles,
                failed_cycles = catch_up.failed_cycles,
            ),
            None => SCALE.text("backlog-scenario-never"),
        }
    };
    let longer = scenario(&|scenario| {
        scenario.catcher == example.scenario.catcher
            && scenario.node_timeout > defaults.node_timeout
    })?;
    let shorter = scenario(&|scenario| scenario.stream_max_len < defaults.stream_max_len)?;
    fill!(
        SCALE,
        "backlog-defaults",
        node_timeout_ms = defaults.node_timeout.as_millis(),
        stream_max_len = defaults.stream_max_len,
        who = who.join("; "),
        last_error = example.last_error.as_deref().unwrap_or("none recorded"),
        read_mib = read_mib,
        backlog = backlog,
        block_bytes = block_bytes,
        long_node_timeout_ms = LONG_NODE_TIMEOUT.as_millis(),
        longer = longer,
        shorter = shorter,
    )
    .map(Some)
}
