//! `cargo xtask demo [flags]`: builds `poa-node` and `poa-demo`, then runs the demo (three
//! redis-servers and three nodes on loopback, a leader kill and the takeover, live) with the
//! flags passed through (`--duration 30s`, `--kill-after 5s`, `--plain`).
//!
//! xtask depends on no workspace crate, so the demo is a binary of its own (`crates/poa-demo`)
//! that this task only builds and starts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cmd::{self, cargo, step};

/// Builds the node and the demo, then runs the demo with `args`.
///
/// # Errors
/// Fails when the build fails or the demo does not show a takeover.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    step("build poa-node and poa-demo", || {
        cmd::run(cargo(root).args(["build", "--locked", "-p", "poa-node", "-p", "poa-demo"]))
    })?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let demo = target.join("debug").join("poa-demo");
    let node = target.join("debug").join("poa-node");
    step("demo", || {
        cmd::run(
            Command::new(&demo)
                .arg("--node-binary")
                .arg(&node)
                .args(args)
                .current_dir(root),
        )
    })
}
