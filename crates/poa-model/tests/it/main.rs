//! Model-checking tests: the protocol as specified satisfies every property within the bounds,
//! and each mutation that removes a safety mechanism yields a counterexample.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test crate"
)]

mod checks;
mod pipeline;
mod scenarios;
