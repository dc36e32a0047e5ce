//! The benchmark cases, in report order, and the dispatch to each case's module.
//! A case measures and returns a [`CaseReport`]; it never formats the report or prints results.
//! Its words are in its template (`templates/<case>.md`).

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
use crate::prose::Prose;
use crate::templates;

/// A case as `--case` names it and the report introduces it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaseInfo {
    /// The `--case` name.
    pub(crate) name: &'static str,
    /// The report's section title.
    pub(crate) title: &'static str,
    /// The case's prose; its `about` section says what the case measures and against what.
    pub(crate) prose: Prose,
}

/// Every case, in report order.
pub(crate) const CASES: &[CaseInfo] = &[
    CaseInfo {
        name: "limit",
        title: "1. Physical limit",
        prose: templates::LIMIT,
    },
    CaseInfo {
        name: "publish",
        title: "2. Quorum publish latency",
        prose: templates::PUBLISH,
    },
    CaseInfo {
        name: "degraded",
        title: "3. Quorum publish with a bad node",
        prose: templates::DEGRADED,
    },
    CaseInfo {
        name: "naive",
        title: "4. Naive baseline",
        prose: templates::NAIVE,
    },
    CaseInfo {
        name: "lease",
        title: "5. Lease acquisition",
        prose: templates::LEASE,
    },
    CaseInfo {
        name: "end-to-end",
        title: "6. End to end",
        prose: templates::END_TO_END,
    },
    CaseInfo {
        name: "failover",
        title: "7. Failover",
        prose: templates::FAILOVER,
    },
    CaseInfo {
        name: "scale",
        title: "8. Scale",
        prose: templates::SCALE,
    },
    CaseInfo {
        name: "relay",
        title: "9. Transaction relay",
        prose: templates::RELAY,
    },
    CaseInfo {
        name: "soak",
        title: "10. Soak",
        prose: templates::SOAK,
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
