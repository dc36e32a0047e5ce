//! Integration tests of the Redis reconciliation adapter against real `redis-server`
//! processes (poa-test-support): fuel-core's adapter suite adapted to `docs/protocol.md`, the
//! half-alive and multi-producer scenarios, forged and trimmed history, repair and
//! replacement, the scripts against their pure rules, TLS and ACL connections, and the node
//! client and scripts the adapter exposes for the benchmarks' floors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(non_snake_case, reason = "test names read subject__when__then")]

mod anti_entropy;
mod faults;
mod lease;
mod membership;
mod membership_change;
mod node_client;
mod node_state;
mod publish;
mod reconcile;
mod restore;
mod round_trips;
mod scripts;
mod security;
mod support;
