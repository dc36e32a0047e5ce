//! Named, timed steps and the nested commands they run.
//!
//! Owns how a step is announced, timed and judged, and how cargo is invoked from xtask. It does
//! not know which steps a task runs (that is each task's module), and it never retries a command
//! or hides a failure: a failed step stops the task with the step's name in the error.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `cargo` command run from `root`.
///
/// Uses the `CARGO` that launched xtask, so nested calls use the same toolchain as the outer one.
pub(crate) fn cargo(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.current_dir(root);
    command
}

/// Runs `body` as the step `name`: prints the name, then how long it took and whether it passed.
///
/// # Errors
/// Returns `body`'s error, wrapped in one that names the step.
pub(crate) fn step<T>(name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> {name}");
    let started = Instant::now();
    let outcome = body();
    let elapsed = format_elapsed(started.elapsed());
    match outcome {
        Ok(value) => {
            println!("<== {name}: ok in {elapsed}");
            Ok(value)
        }
        Err(err) => {
            eprintln!("<== {name}: FAILED after {elapsed}");
            Err(err.context(format!("step `{name}` failed")))
        }
    }
}

/// Runs `command` with its output going straight to the terminal.
///
/// # Errors
/// Fails if the command cannot be started or exits unsuccessfully.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let shown = describe(command);
    let status = command
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` exited with {status}");
    }
    Ok(())
}

/// Whether `command` starts and exits successfully, its output discarded.
///
/// For probes such as "is `cargo nextest` installed?", where failing is an answer, not an error.
pub(crate) fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The command line as a user would type it, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let mut words = vec![program];
    words.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// Elapsed time in seconds with one decimal, the precision a human reads in a CI log.
pub(crate) fn format_elapsed(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}
