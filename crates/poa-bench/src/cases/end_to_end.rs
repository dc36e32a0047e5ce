//! Case `end_to_end`: scaffolding, replaced by its implementation.

use anyhow::{Result, bail};

use crate::context::BenchContext;
use crate::model::CaseReport;

/// Measures case `end_to_end`.
///
/// # Errors
/// Always, until the case is built.
pub(crate) async fn run(_context: &BenchContext) -> Result<CaseReport> {
    bail!("case end_to_end is not built yet")
}
