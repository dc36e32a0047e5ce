//! Case `scale`: three measurements of how the producer behaves at size, each in its own
//! module, merged into one report section.
//!
//! - `backlog`: a new leader reconciling a 1,000-block backlog from the streams.
//! - `memory`: the steady-state memory of a producing `poa-node` process.
//! - `stragglers`: outstanding publish tasks during and after a burst with a straggling node.
//!
//! Their words are in `templates/scale.md`.

mod backlog;
mod memory;
mod stragglers;

use anyhow::Result;

use crate::context::BenchContext;
use crate::model::CaseReport;
use crate::templates::SCALE;

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
    // What the first memory runs found, fixed since: kept in the report because it is why
    // `read_from` reads through the index.
    report.notes.push(SCALE.text("large-blocks")?);
    Ok(report)
}
