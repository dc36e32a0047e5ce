//! Project automation, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! This file only dispatches; each task lives in its own module. xtask depends on `anyhow` and
//! std alone, never on a workspace crate, so it builds in seconds and still runs when the crates
//! it checks do not compile.
//!
//! # Layout
//! - `bench`: builds and runs the benchmark harness (`crates/poa-bench`), flags passed through.
//! - `chaos`: builds and runs the chaos harness (`crates/poa-chaos`), flags passed through.
//! - `ci`: everything CI runs, in order, failing fast.
//! - `deps`: the layering rules, checked with `cargo tree -i`.
//! - `tidy`: file headers, manifests, banned test attributes and macros, file length, toolchain.
//! - `cmd`: named, timed steps and nested cargo calls.
//! - `layout`: the workspace root and its member crates.

mod bench;
mod chaos;
mod ci;
mod cmd;
mod demo;
mod deps;
mod layout;
mod tidy;

use std::process::ExitCode;

use anyhow::{Result, bail};

/// Every task and the line `help` prints for it. A new task (`chaos`, `demo`, `bench`, ...) adds
/// a row here, an arm in `run_task` and a module of its own.
const TASKS: &[(&str, &str)] = &[
    (
        "bench",
        "build poa-node and poa-bench, run the benchmarks: [--quick] [--case NAME] [--redis-url URL] [--soak-duration D] [--peer-bench PATH] [--json] (docs/benchmarks.md)",
    ),
    (
        "chaos",
        "build poa-node and poa-chaos, run the chaos harness: --seed S --duration 60s ..., or `load` for the transaction load harness (docs/chaos.md)",
    ),
    (
        "ci",
        "everything CI runs: redis-server present, fmt, clippy, tests, doc tests, rustdoc, chaos and bench --quick, deps, tidy",
    ),
    (
        "demo",
        "build poa-node and poa-demo, run the live takeover demo: [--duration 30s] [--kill-after 5s] [--plain]",
    ),
    (
        "deps",
        "layering: `cargo tree -i` finds no path to a forbidden dependency",
    ),
    (
        "tidy",
        "house rules: `//!` headers, manifests, no ignored tests or todo!, file length, toolchain pin",
    ),
    ("help", "print this list"),
];

fn main() -> ExitCode {
    match run_task() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Printed by hand: anyhow's `Debug` adds a backtrace when RUST_BACKTRACE is set,
            // which buries the one line that names the failed step.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the task named on the command line.
fn run_task() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    if task.as_deref() == Some("bench") {
        return bench::run(&layout::project_root()?, &rest);
    }
    if task.as_deref() == Some("chaos") {
        return chaos::run(&layout::project_root()?, &rest);
    }
    if task.as_deref() == Some("demo") {
        return demo::run(&layout::project_root()?, &rest);
    }
    if let Some(extra) = rest.first() {
        eprint!("{}", usage());
        bail!("unexpected argument `{extra}`: only `bench`, `chaos` and `demo` take arguments");
    }
    let root = layout::project_root()?;
    match task.as_deref() {
        Some("ci") => ci::run(&root),
        Some("deps") => deps::run(&root),
        Some("tidy") => tidy::run(&root),
        None | Some("help" | "--help" | "-h") => {
            print!("{}", usage());
            Ok(())
        }
        Some(unknown) => {
            eprint!("{}", usage());
            bail!("unknown task `{unknown}`")
        }
    }
}

/// The task list, one task a line.
fn usage() -> String {
    let width = TASKS.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::from("usage: cargo xtask <task>\n\ntasks:\n");
    for (name, summary) in TASKS {
        text.push_str(&format!("  {name:<width$}  {summary}\n"));
    }
    text
}
