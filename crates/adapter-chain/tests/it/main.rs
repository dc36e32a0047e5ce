//! Integration tests of the chain adapter, driven through the `poa-ports` traits the domain
//! service uses: produce, seal, verify, commit, across reopened stores, separate stores of one
//! fleet, forged blocks, the pool, and a process killed mid-commit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on any unexpected error"
)]

mod chain;
mod chain_file;
mod crash;
mod damage;
mod first_start;
mod fleet;
mod forged;
mod pool;
mod storage_faults;
mod support;
