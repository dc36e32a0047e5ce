//! `cargo xtask bench [flags]`: builds `poa-node` and `poa-bench`, then runs the benchmark
//! harness with the flags passed through (`--quick`, `--case NAME`, `--redis-url URL`,
//! `--soak-duration D`, `--peer-bench PATH`, `--json`, `--out DIR`; see `docs/benchmarks.md`).
//!
//! A full run builds in release, since that is what the published numbers must describe. A
//! `--quick` run (a few seconds of each case, inside `cargo xtask ci`) builds in debug, reusing
//! the artifacts of the test build, because it only has to prove that the harness still works.
//! xtask depends on no workspace crate, so the harness is a binary of its own
//! (`crates/poa-bench`) that this task only builds and starts; it never interprets other flags.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cmd::{self, cargo, step};

/// Builds the node and the harness in the profile `args` call for, then runs the harness.
///
/// # Errors
/// Fails when the build fails or a case could not measure.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let quick = args.iter().any(|arg| arg == "--quick");
    let profile = if quick { "debug" } else { "release" };
    step(&format!("build poa-node and poa-bench ({profile})"), || {
        let mut build = cargo(root);
        build.args(["build", "--locked", "-p", "poa-node", "-p", "poa-bench"]);
        if !quick {
            build.arg("--release");
        }
        cmd::run(&mut build)
    })?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bench = target.join(profile).join("poa-bench");
    let node = target.join(profile).join("poa-node");
    let title = format!("bench {}", args.join(" "));
    step(title.trim(), || {
        cmd::run(
            Command::new(&bench)
                .arg("--node-binary")
                .arg(&node)
                .args(args)
                .current_dir(root),
        )
    })
}
