//! `poa-node`: a thin binary that wires the adapters to the production service.
//!
//! # Layout
//!
//! - `allocator`: glibc's malloc arena limit, applied before anything else runs.
//! - `check_chain`: the offline check of a data directory (`check-chain`).
//! - `membership`: the operator's `membership init`, `set`, `begin` and `commit`.
//! - `cli`: flags and environment variables.
//! - `settings`: merges flags, the `--config` file and defaults, and validates them.
//! - `library_errors`: the libraries' typed configuration and startup errors, told with the
//!   flag to fix.
//! - `run`: builds the adapters and the service, and runs them until a signal.
//! - `background`: the pool's maintenance tick and the relay's view of leadership.
//! - `http`: the HTTP API's routes.
//! - `http_error`: the one JSON shape of every HTTP error, with its stable codes.
//! - `http_server`: the listeners: connection cap, timeouts, the descriptor limit.
//! - `raw_blocks`: encoded sealed blocks for peers catching up (`/blocks/raw`).
//! - `status_json`: the JSON of the trigger and the lease in `/status`.
//! - `storage_health`: `/health` and the exit that follow the local chain database's health.
//! - `effective_config`: `poa-node config`, the settings with where each value came from.
//! - `transactions`: transaction submission, from clients and relayed by peers, and where a
//!   submitted transaction stands (`GET /transactions/{id}`).
//! - `telemetry`: logging.

mod allocator;
mod background;
mod check_chain;
mod cli;
mod effective_config;
mod http;
mod http_error;
mod http_server;
mod library_errors;
mod membership;
mod raw_blocks;
mod run;
mod settings;
mod status_json;
mod storage_health;
mod telemetry;
mod transactions;

use std::process::ExitCode;

use adapter_chain::{AuthorityKey, KeyError};
use clap::{CommandFactory, FromArgMatches};
use tracing::{info, warn};

use crate::cli::{Cli, Command, RunArgs};
use crate::settings::Settings;

/// Exit code for an invalid configuration, as for a command-line usage error.
const EXIT_INVALID_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match cli.command {
        Some(Command::Keygen {
            key_file,
            print_public: false,
        }) => keygen(&key_file),
        Some(Command::Keygen {
            key_file,
            print_public: true,
        }) => print_public_key(&key_file),
        Some(Command::CheckChain {
            data_dir,
            authority,
        }) => check_chain::run(&data_dir, authority),
        Some(Command::Membership(command)) => membership::run(command),
        Some(Command::Run(args)) => run_node(*args),
        Some(Command::Config(args)) => {
            let config_matches = matches.subcommand_matches("config").unwrap_or(&matches);
            print_config(*args, config_matches)
        }
        None => run_node(cli.run),
    }
}

/// `poa-node config`: the effective configuration with the source of each value, then its
/// verdict.
fn print_config(args: RunArgs, matches: &clap::ArgMatches) -> ExitCode {
    let (report, verdict) = effective_config::report(args, matches);
    print!("{report}");
    match verdict {
        Ok(()) => {
            println!("# valid");
            ExitCode::SUCCESS
        }
        Err(invalid) => {
            eprintln!("error: {invalid}");
            ExitCode::from(EXIT_INVALID_SETTINGS)
        }
    }
}

/// Runs the node until a signal or an error stops it. An error that stops it is printed once,
/// as the process's last line on standard error (`error: ...`, where clap's usage errors go
/// too), never also as a log line, so an operator and a supervisor's journal read it once.
fn run_node(args: RunArgs) -> ExitCode {
    // First: it may replace the process, which must happen before any thread or file exists.
    let arena_limit = allocator::limit_arenas();
    telemetry::init(settings::log_format_hint(&args));
    match arena_limit {
        allocator::ArenaLimit::Set { variable, value } => {
            info!(variable, value, "malloc arena limit");
        }
        allocator::ArenaLimit::NotApplied { error } => warn!(
            variable = allocator::ARENA_MAX_VARIABLE,
            value = allocator::DEFAULT_ARENA_MAX,
            error = %error,
            "malloc arena limit not applied"
        ),
    }
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(invalid) => {
            eprintln!("error: {invalid}");
            return ExitCode::from(EXIT_INVALID_SETTINGS);
        }
    };
    let needed = settings.http_limits.descriptors_needed();
    if let Err(failure) = http_server::ensure_descriptors(needed) {
        eprintln!(
            "error: invalid --http-max-connections ({}): {failure}",
            settings.http_limits.max_connections
        );
        return ExitCode::from(EXIT_INVALID_SETTINGS);
    }
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    match block_on_a_worker(&runtime, run::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure:#}");
            ExitCode::FAILURE
        }
    }
}

/// The most threads the runtime's blocking pool runs (tokio's default is 512). What runs there
/// is short and never waits for other work of the pool: a chain database operation (it may wait
/// only for a lock that a running operation holds, or for the disk), an epoch file write, a
/// host-name lookup of a Redis node or a peer. Past the ceiling such work waits its turn, first
/// come first served, so a burst of requests delays, never deadlocks, and the process keeps at
/// most this many idle threads after it. 64 leaves room for the chain database beside the worst
/// case of lookups hanging on a resolver that does not answer: one per Redis node and up to
/// three per peer (docs/operations.md, 9.6).
const MAX_BLOCKING_THREADS: usize = 64;

/// The multi-threaded runtime the node and the membership commands run on; the exit code after
/// saying why when it cannot start.
fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|failure| {
            eprintln!("error: cannot start the async runtime: {failure}");
            ExitCode::FAILURE
        })
}

/// Runs `future` to its end as a task on the runtime's workers, not on this thread: the
/// producer's Redis calls are answered by each client's routing task on a worker, and a caller
/// on a worker is woken there, where a caller on this thread (`block_on`) is woken across
/// threads on every call, which doubles a round trip and, on a busy machine, adds milliseconds
/// to its tail (docs/benchmarks.md, section 1). A panic of the task goes on here, as if it had
/// run on this thread.
fn block_on_a_worker<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    match runtime.block_on(runtime.spawn(future)) {
        Ok(output) => output,
        Err(failure) => match failure.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            // Only a runtime shutting down cancels its tasks, and this one is still held here.
            Err(failure) => Err(anyhow::anyhow!("the node's task did not finish: {failure}")),
        },
    }
}

fn keygen(path: &std::path::Path) -> ExitCode {
    let key = AuthorityKey::generate();
    match key.write_to_file(path) {
        Ok(()) => {
            println!("wrote {}", path.display());
            println!("authority public key: {}", key.public_key());
            ExitCode::SUCCESS
        }
        Err(failure @ KeyError::AlreadyExists { .. }) => {
            eprintln!(
                "error: {failure}: the chain's authority is derived from it; keep it, or move it \
                 away first to make a new chain's key (`poa-node keygen --print-public --key-file {}` \
                 shows its public key)",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the public key of an existing key file, as the chain's configuration names it.
fn print_public_key(path: &std::path::Path) -> ExitCode {
    match AuthorityKey::read_from_file(path) {
        Ok(key) => {
            println!("{}", key.public_key());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn block_on_a_worker__when_the_node_runs__then_on_a_runtime_worker_not_this_thread() {
        // given
        let runtime = async_runtime().unwrap();
        let this_thread = std::thread::current().id();

        // when
        let thread =
            block_on_a_worker(&runtime, async { Ok(std::thread::current().id()) }).unwrap();

        // then
        assert_ne!(thread, this_thread);
    }

    #[test]
    fn block_on_a_worker__when_the_task_panics__then_the_panic_goes_on_here() {
        // given
        let runtime = async_runtime().unwrap();

        // when
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on_a_worker::<()>(&runtime, async { panic!("the node's task panicked") })
        }));

        // then
        let payload = outcome.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the node's task panicked")
        );
    }
}
