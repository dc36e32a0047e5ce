//! The example chain's integration tests: three of its producers on three real
//! `redis-server`s, through the Redis adapter, as a node team's own fleet would run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(non_snake_case, reason = "test names read subject__when__then")]

mod failover;
mod fleet;
