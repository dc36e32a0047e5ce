//! Case `lease`: scaffolding, replaced by its implementation.

use anyhow::{Result, bail};

use crate::context::BenchContext;
use crate::model::CaseReport;

/// Measures case `lease`.
///
/// # Errors
/// Always, until the case is built.
pub(crate) async fn run(_context: &BenchContext) -> Result<CaseReport> {
    bail!("case lease is not built yet")
}
