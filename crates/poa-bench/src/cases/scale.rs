//! Case `scale`: three measurements of how the producer behaves at size, each in its own
//! module, merged into one report section.
//!
//! - `backlog`: a new leader reconciling a 1,000-block backlog from the streams.
//! - `memory`: the steady-state memory of a producing `poa-node` process.
//! - `stragglers`: outstanding publish tasks during and after a burst with a straggling node.

mod backlog;
mod memory;
mod stragglers;

use anyhow::Result;

use crate::context::BenchContext;
use crate::model::CaseReport;

/// What the first memory runs found, fixed since: kept in the report because it is why
/// `read_from` reads through the index.
const LARGE_BLOCKS_FINDING: &str = "**Finding (fixed): large blocks stalled every node.** An \
early memory run with 8 KiB transactions at 200 per second (blocks of about 70 KiB at 50 ms) \
stopped both nodes for good after 13 s: every cycle logged `reconcile_read reached 0 of the 2 \
nodes a quorum needs`. `read_from.lua` walked the whole stream (`XRANGE - +`) on every call, as \
fuel-core's script does, so its cost followed the stream's size (12.6 MB, 97 to 164 ms in \
Redis's slow log) rather than what it returned (5 blocks), and outlasted the 100 ms node \
timeout on every node at once. `write_block` now records each entry's stream id in the heights \
index and `read_from` fetches only the entries it returns; the regression test \
`leader_state__when_the_stream_holds_many_large_blocks__then_reads_the_tip_without_walking_the_stream` \
fails with the old script. A second limit followed from it: a catch-up read still \
asked for up to `stream_max_len` payloads in one reply, which with large blocks outlasts the \
node timeout on every node, so a lagging node never caught up; the read window now halves \
while reads time out and grows back after fast reads (docs/protocol.md section 7; regression \
test `leader_state__when_a_catch_up_read_of_large_blocks_outlasts_the_node_timeout__then_smaller_reads_catch_up`, \
which fails without it).";

/// Runs the three measurements one after another and merges their reports.
///
/// # Errors
/// Fails when any of them cannot measure.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let mut report = backlog::measure(context).await?;
    for part in [
        memory::measure(context).await?,
        stragglers::measure(context).await?,
    ] {
        report.rows.extend(part.rows);
        report.goals.extend(part.goals);
        report.charts.extend(part.charts);
        report.notes.extend(part.notes);
    }
    report.notes.push(LARGE_BLOCKS_FINDING.to_owned());
    Ok(report)
}
