//! End-to-end tests of the `poa-node` binary: real processes, real HTTP, real redis-server.

#![allow(non_snake_case, reason = "test names read as subject__when__then")]
#![allow(
    unreachable_pub,
    reason = "an integration test binary has no public API"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails the test loudly"
)]

mod admin;
mod allocator;
mod blocked;
mod blocking_threads;
mod bulk;
mod chain_storage;
mod clock;
mod config_command;
mod dashboards;
mod fleet;
mod handover;
mod history;
mod http_errors;
mod http_limits;
mod key_files;
mod lifecycle_logs;
mod log_loss;
mod log_output;
mod pipeline;
mod recipes;
mod relay;
mod secrets;
mod single_node;
mod startup_errors;
mod support;
mod transaction_status;
