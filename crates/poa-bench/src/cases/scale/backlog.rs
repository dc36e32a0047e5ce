//! Scale measurement `backlog`: scaffolding, replaced by its implementation.

use anyhow::{Result, bail};

use crate::context::BenchContext;
use crate::model::CaseReport;

/// Measures `backlog`.
///
/// # Errors
/// Always, until the measurement is built.
pub(crate) async fn measure(_context: &BenchContext) -> Result<CaseReport> {
    bail!("scale measurement backlog is not built yet")
}
