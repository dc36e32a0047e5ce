//! `poa-node membership init`, `set`, `begin` and `commit`: the operator's writes of the
//! Redis nodes' membership record, with the fleet's own Redis settings. Prints what each node
//! answered; exits 0 when the record reached a quorum.

use std::process::ExitCode;

use crate::cli::{MembershipCommand, RunArgs};
use crate::library_errors;
use crate::settings;

/// Runs one membership command to its end.
pub(crate) fn run(command: MembershipCommand) -> ExitCode {
    let (name, args) = match &command {
        MembershipCommand::Init(args) => ("init", args),
        MembershipCommand::Set(args) => ("set", args),
        MembershipCommand::Begin(args) => ("begin", args),
        MembershipCommand::Commit(args) => ("commit", args),
    };
    let config = match settings::resolve_redis_only(RunArgs::clone(args)) {
        Ok(config) => config,
        Err(invalid) => {
            eprintln!("error: {invalid}");
            return ExitCode::from(crate::EXIT_INVALID_SETTINGS);
        }
    };
    let runtime = match crate::async_runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let written = runtime.block_on(async {
        match command {
            MembershipCommand::Init(_) => adapter_redis::init_membership(config).await,
            MembershipCommand::Set(_) => adapter_redis::set_membership(config).await,
            MembershipCommand::Begin(_) => adapter_redis::begin_membership_change(config).await,
            MembershipCommand::Commit(_) => adapter_redis::commit_membership_change(config).await,
        }
    });
    match written {
        Ok(written) => {
            println!(
                "membership {name}: generation {} ({}) names {} servers",
                written.generation, written.digest, written.members
            );
            for node in &written.nodes {
                println!("  {node}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!(
                "error: membership {name}: {:#}",
                library_errors::redis_startup(failure)
            );
            ExitCode::FAILURE
        }
    }
}
