//! Scale measurement `memory`: scaffolding, replaced by its implementation.

use anyhow::{Result, bail};

use crate::context::BenchContext;
use crate::model::CaseReport;

/// Measures `memory`.
///
/// # Errors
/// Always, until the measurement is built.
pub(crate) async fn measure(_context: &BenchContext) -> Result<CaseReport> {
    bail!("scale measurement memory is not built yet")
}
