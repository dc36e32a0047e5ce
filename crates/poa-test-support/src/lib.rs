//! Test fixtures for the block producer's tests: real `redis-server` processes and the network
//! faults a coordination node can suffer. Used only as a dev-dependency; nothing in production
//! depends on it, and it depends on no workspace crate and no Redis client.
//!
//! # Fixtures
//!
//! - [`RedisServer`]: a `redis-server` child process on a reserved loopback port, without
//!   persistence. `start`, `stop` (SIGKILL), `restart` (same port, empty), `freeze`/`thaw`
//!   (SIGSTOP/SIGCONT: a half-alive node), and `command` to seed and inspect keys.
//!   [`RedisServer::builder`] adds a TLS port ([`TlsFiles`], `tls_url`) and ACL users, with the
//!   `default` user optionally disabled (the fixture then authenticates its own commands), and
//!   an append-only file (`append_only`) so that `restart_keeping_data` brings every
//!   acknowledged write back. `append_log_entry` writes a [`LogEntry`] into a node's block log
//!   past the write script's checks, as anyone who reaches a node can.
//! - [`TestCertificates`]: a throwaway CA with server and client certificates as PEM files.
//! - [`HalfAliveListener`]: accepts TCP connections, reads, never answers.
//! - [`FaultProxy`]: a TCP proxy whose [`ProxyMode`] (`Pass`, `Hold`, `Reset`, `Latency`,
//!   `Blackhole`, `CloseAfter`) can change at any time, with a count of accepted connections.
//! - [`spawner`]: child processes the kernel kills when this process dies
//!   (`setpriv --pdeathsig`), for fixtures and for the tooling binaries' nodes.
//! - [`ChildProcess`]: a program a harness starts, stops and starts again (the `poa-node`
//!   processes of the benchmark fleets and the chaos cluster): its output appended to one log
//!   across starts, readiness polled under a bound, signals, SIGKILL on drop; with
//!   [`reserve_loopback_addresses`] for the ports it keeps across restarts. Its failures are
//!   [`ProcessError`]s, not panics, since tooling binaries run it.
//! - [`wait_for`] / [`wait_for_async`]: poll a condition every 20 ms up to a deadline.
//! - [`resp`]: the minimal RESP2 client behind `RedisServer::command`, usable against any
//!   address (a proxy, a half-alive listener).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use poa_test_support::{FaultProxy, ProxyMode, RedisServer, RespValue};
//!
//! let redis = RedisServer::start();
//! assert_eq!(redis.command(&[b"SET", b"k", b"v"]), RespValue::Simple("OK".into()));
//! let proxy = FaultProxy::start(redis.addr());
//! proxy.set_mode(ProxyMode::Hold); // clients of proxy.url() now wait for answers
//! redis.freeze(); // clients of redis.url() connect but get no answer
//! ```
//!
//! # Behaviour every fixture shares
//!
//! - Set-up failures panic with a message saying what to do (for example "redis-server not found
//!   on PATH: install it (apt-get install -y redis-server)"); tests are never silently skipped.
//! - Dropping a fixture, also during a panic, kills its process or closes its sockets. Processes
//!   are additionally tied to the test process (`setpriv --pdeathsig`), so a killed test run
//!   leaves no `redis-server` behind.
//! - Fixtures are independent, so tests using them run in parallel, within one process and across
//!   processes (nextest): `redis-server` ports are reserved with a lock file per port.
//! - The listener and proxy serve from their own thread and runtime: they work from `#[test]`
//!   and from current-thread and multi-thread `#[tokio::test]`, even while the test blocks.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures fail the test loudly"
)]

mod background;
mod block_log;
mod certificates;
mod error;
mod fault_proxy;
mod half_alive;
mod loopback;
mod process;
mod redis_server;
pub mod resp;
pub mod spawner;
mod wait;

pub use block_log::LogEntry;
pub use certificates::TestCertificates;
pub use error::{ProcessError, RespError};
pub use fault_proxy::{FaultProxy, ProxyMode};
pub use half_alive::HalfAliveListener;
pub use loopback::reserve_loopback_addresses;
pub use process::ChildProcess;
pub use redis_server::{RedisServer, RedisServerBuilder, Snapshot, TlsFiles};
pub use resp::RespValue;
pub use wait::{POLL_INTERVAL, wait_for, wait_for_async};
