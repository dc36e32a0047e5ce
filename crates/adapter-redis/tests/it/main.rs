//! Integration tests of the Redis reconciliation adapter against real `redis-server`
//! processes (poa-test-support): fuel-core's adapter suite adapted to PROTOCOL.md, the
//! half-alive and multi-producer scenarios, and the additional cases of issue 3, and TLS and ACL connections (issue 5).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(non_snake_case, reason = "test names read subject__when__then")]

mod faults;
mod lease;
mod probe;
mod publish;
mod reconcile;
mod scripts;
mod security;
mod support;
