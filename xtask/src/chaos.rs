//! `cargo xtask chaos [flags]`: builds `poa-node` and `poa-chaos`, then runs the chaos harness
//! with the flags passed through (see `docs/chaos.md`).
//!
//! xtask depends on no workspace crate, so the harness is a binary of its own
//! (`crates/poa-chaos`) that this task only builds and starts; it never interprets the flags.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cmd::{self, cargo, step};

/// Builds the node and the harness, then runs the harness with `args`.
///
/// # Errors
/// Fails when the build fails or the harness reports a violation or fails to run.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    build(root)?;
    run_built(root, args)
}

/// `cargo build -p poa-node -p poa-chaos`, for a caller that runs the harness several times.
///
/// # Errors
/// Fails when the build fails.
pub(crate) fn build(root: &Path) -> Result<()> {
    step("build poa-node and poa-chaos", || {
        cmd::run(cargo(root).args(["build", "--locked", "-p", "poa-node", "-p", "poa-chaos"]))
    })
}

/// Runs the built harness with `args`.
///
/// # Errors
/// Fails when the harness exits unsuccessfully.
pub(crate) fn run_built(root: &Path, args: &[String]) -> Result<()> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let harness = target.join("debug").join("poa-chaos");
    let title = format!("chaos {}", args.join(" "));
    step(&title, || {
        cmd::run(Command::new(&harness).args(args).current_dir(root))
    })
}
