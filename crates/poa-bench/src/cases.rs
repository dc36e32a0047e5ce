//! The benchmark cases, in report order, and the dispatch to each case's module.
//! A case measures and returns a [`CaseReport`]; it never formats the report or prints results.

mod degraded;
mod end_to_end;
mod failover;
mod lease;
mod limit;
mod naive;
mod publish;
mod relay;
mod scale;
mod soak;

use anyhow::Result;

use crate::context::BenchContext;
use crate::model::CaseReport;

/// A case as `--case` names it and the report introduces it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaseInfo {
    /// The `--case` name.
    pub(crate) name: &'static str,
    /// The report's section title.
    pub(crate) title: &'static str,
    /// What the case measures and against what, one paragraph.
    pub(crate) about: &'static str,
}

/// Every case, in report order.
pub(crate) const CASES: &[CaseInfo] = &[
    CaseInfo {
        name: "limit",
        title: "1. Physical limit",
        about: "One Redis node: `PING` round trip and the raw `write_block` script over the \
                adapter's own client, one call at a time. Nothing the adapter does can be faster.",
    },
    CaseInfo {
        name: "publish",
        title: "2. Quorum publish latency",
        about: "The adapter's fenced quorum publish (`publish_produced_block`) with N = 1, 3 and \
                5 nodes and blocks of 256 B, 4 KiB and 64 KiB, one block after another.",
    },
    CaseInfo {
        name: "degraded",
        title: "3. Quorum publish with a bad node",
        about: "The same publish with one node of 3 (and two of 5) frozen with SIGSTOP, and with \
                one node of 3 behind a proxy that holds every reply: the healthy quorum's latency \
                must not change.",
    },
    CaseInfo {
        name: "naive",
        title: "4. Naive baseline",
        about: "The same writes sent to one node after another, each waiting for the previous \
                reply: what the fan-out saves.",
    },
    CaseInfo {
        name: "lease",
        title: "5. Lease acquisition",
        about: "Acquiring the leader lease on 3 nodes, healthy and with one half-alive node \
                (accepts TCP, never answers), next to the `rslock` crate on the same servers.",
    },
    CaseInfo {
        name: "end-to-end",
        title: "6. End to end",
        about: "Blocks per second in instant mode (produce, validate, publish, commit) with the \
                time split by step, for the no-op adapter and for 3 Redis nodes.",
    },
    CaseInfo {
        name: "failover",
        title: "7. Failover",
        about: "SIGKILL and SIGTERM of the leading `poa-node` process, repeated: the gap in \
                production against the budget of docs/operations.md.",
    },
    CaseInfo {
        name: "scale",
        title: "8. Scale",
        about: "Reconciliation of a 1,000-block backlog, the steady-state memory of a node, and \
                the outstanding publish tasks after a burst of blocks with a straggling node.",
    },
    CaseInfo {
        name: "relay",
        title: "9. Transaction relay",
        about: "Submissions through a follower that relays them to its peers, with every peer \
                answering and with one peer frozen: throughput and latency must not change.",
    },
    CaseInfo {
        name: "soak",
        title: "10. Soak",
        about: "An hour (`--soak-duration`) of three producing fleets side by side, one per \
                allocator variant, under steady load and forced leader changes: every \
                process's RSS, descriptors, threads and TCP connections must be flat over the \
                second half; for the variant `poa-node` runs with, a series that is not fails \
                the run.",
    },
];

/// Runs the case named `name`.
///
/// # Errors
/// Fails when the case cannot set up or measure; the message says what failed.
pub(crate) async fn run(name: &str, context: &BenchContext) -> Result<CaseReport> {
    match name {
        "limit" => limit::run(context).await,
        "publish" => publish::run(context).await,
        "degraded" => degraded::run(context).await,
        "naive" => naive::run(context).await,
        "lease" => lease::run(context).await,
        "end-to-end" => end_to_end::run(context).await,
        "failover" => failover::run(context).await,
        "scale" => scale::run(context).await,
        "relay" => relay::run(context).await,
        "soak" => soak::run(context).await,
        other => anyhow::bail!("unknown case `{other}`"),
    }
}
