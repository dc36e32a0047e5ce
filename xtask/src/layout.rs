//! Where things are in the workspace: its root, the member crates under `crates/`, and the
//! example chains under `examples/`.
//!
//! Everything is derived from the directory tree, so a new crate is covered by `deps` and `tidy`
//! without editing xtask. Nothing here runs cargo or judges what it finds.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The package name of this crate, which lives at the workspace root rather than under `crates/`.
pub(crate) const XTASK: &str = "xtask";

/// The binaries: the only members allowed `anyhow` in `[dependencies]` (`poa-chaos` and
/// `poa-bench` are tooling run by `cargo xtask chaos` and `cargo xtask bench`, never production
/// crates).
pub(crate) const APPLICATION_CRATES: &[&str] = &[NODE, CHAOS, BENCH, XTASK];

/// The chaos harness binary: test tooling that no other crate may depend on.
pub(crate) const CHAOS: &str = "poa-chaos";
/// The benchmark harness (`cargo xtask bench`): tooling, and the only crate that may pull in a
/// second Redis client (`rslock` over the `redis` crate) to compare against.
pub(crate) const BENCH: &str = "poa-bench";
/// The demo driver (`cargo xtask demo`): tooling like the chaos harness, nothing depends on it.
pub(crate) const DEMO: &str = "poa-demo";

/// The protocol model checker: verification tooling, never linked into a producer.
pub(crate) const MODEL: &str = "poa-model";
/// Test fixtures (Redis servers, certificates), used only as a dev-dependency.
pub(crate) const TEST_SUPPORT: &str = "poa-test-support";

/// The crates no embedder links: harnesses, the demo driver, the model checker, test fixtures
/// and xtask itself.
pub(crate) const TOOLING_CRATES: &[&str] = &[CHAOS, BENCH, DEMO, MODEL, TEST_SUPPORT, XTASK];

/// The binary that wires the libraries and owns the command line.
pub(crate) const NODE: &str = "poa-node";

/// Whether `name` is a library a node team links into its own binary: a production crate
/// other than `poa-node`. Such a crate speaks its own vocabulary, never `poa-node`'s flags.
pub(crate) fn is_embedded_library(name: &str) -> bool {
    name != NODE && !TOOLING_CRATES.contains(&name)
}

/// The workspace root: the parent of xtask's own manifest directory.
///
/// # Errors
/// Fails only if xtask's manifest directory has no parent, which cargo never produces.
pub(crate) fn project_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}

/// Where the example chains live: each a workspace member written the way a node team embeds
/// the producer, never a production crate.
pub(crate) const EXAMPLES_DIR: &str = "examples";

/// The directory names under `crates/` that hold a `Cargo.toml`, sorted.
///
/// The workspace uses `members = ["crates/*", "examples/*"]` and tidy requires directory =
/// package name, so these are the member package names (xtask and the examples aside).
///
/// # Errors
/// Fails if `crates/` cannot be read or holds a directory name that is not UTF-8.
pub(crate) fn member_crates(root: &Path) -> Result<Vec<String>> {
    packages_under(&root.join("crates"))
}

/// The directory names under `examples/` that hold a `Cargo.toml`, sorted; none when there is
/// no `examples/`.
///
/// # Errors
/// Fails if `examples/` exists but cannot be read, or holds a directory name that is not UTF-8.
pub(crate) fn example_crates(root: &Path) -> Result<Vec<String>> {
    let examples_dir = root.join(EXAMPLES_DIR);
    if !examples_dir.is_dir() {
        return Ok(Vec::new());
    }
    packages_under(&examples_dir)
}

/// The directory names under `dir` that hold a `Cargo.toml`, sorted.
fn packages_under(crates_dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in
        fs::read_dir(crates_dir).with_context(|| format!("cannot read {}", crates_dir.display()))?
    {
        let path = entry?.path();
        if !path.join("Cargo.toml").is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("crate directory {} is not UTF-8", path.display()))?;
        names.push(name.to_owned());
    }
    names.sort();
    Ok(names)
}
