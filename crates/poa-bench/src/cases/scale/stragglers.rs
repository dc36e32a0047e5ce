//! Scale measurement `stragglers`: scaffolding, replaced by its implementation.

use anyhow::{Result, bail};

use crate::context::BenchContext;
use crate::model::CaseReport;

/// Measures `stragglers`.
///
/// # Errors
/// Always, until the measurement is built.
pub(crate) async fn measure(_context: &BenchContext) -> Result<CaseReport> {
    bail!("scale measurement stragglers is not built yet")
}
