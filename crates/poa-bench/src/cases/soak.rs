//! Case `soak`: an hour of a producing fleet, to show that nothing a process holds grows
//! without bound. One fleet per allocator variant runs at the same time (three `poa-node`
//! processes on their own three `redis-server`s each), under a steady load of transactions and
//! reads through every node, with leader changes forced on a schedule; every process's
//! resident memory, open descriptors, threads and TCP connections are read from `/proc` every
//! few seconds and judged flat or not over the second half (`verdict`).
//!
//! A series of the variant `poa-node` runs with that is not flat fails the run (exit status
//! 1); the other variants are comparisons, reported with their verdicts. A `--quick` run is
//! too short to judge and only proves the harness works. The modules: `drive` runs one fleet
//! (reading `/proc` through `crate::process_probe`), `verdict` is the rule, `report` writes
//! the section with the words of `templates/soak.md`.

mod drive;
mod report;
mod verdict;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use self::drive::{Disruption, Plan, Variant};
use self::verdict::Bound;
use crate::context::BenchContext;
use crate::fleet::{self, FleetSettings};
use crate::model::CaseReport;
use crate::process_probe::Reading;
use crate::prose::fill;
use crate::templates::SOAK;

/// Moderate blocks and a lease of eight block times; the chain cache small enough to fill in
/// the first minutes, so what grows later is not the cache (its bound is docs/operations.md's).
const SETTINGS: FleetSettings = FleetSettings {
    block_time: Duration::from_millis(250),
    lease_ttl: Duration::from_secs(2),
    poll_interval: Duration::from_millis(250),
    node_timeout: Duration::from_millis(250),
    chain_cache_mib: Some(8),
    ..FleetSettings::FAST_LOOPBACK
};

/// How each resource may behave over the second half, per process.
const BOUNDS: [(Resource, Bound); 4] = [
    (
        Resource::Rss,
        Bound {
            per_hour: 8.0,
            ceiling: 170.0,
        },
    ),
    (
        Resource::Descriptors,
        Bound {
            per_hour: 20.0,
            ceiling: 256.0,
        },
    ),
    (
        Resource::Threads,
        Bound {
            per_hour: 10.0,
            ceiling: 64.0,
        },
    ),
    (
        Resource::Connections,
        Bound {
            per_hour: 20.0,
            ceiling: 128.0,
        },
    ),
];

/// Where a system-wide jemalloc may be, for the variant that preloads it.
const JEMALLOC_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
];

/// glibc's default arena limit on 64-bit systems: eight per online core.
const GLIBC_ARENAS_PER_CORE: usize = 8;
/// The arena limit `poa-node` applies itself (`DEFAULT_ARENA_MAX` in its allocator module).
const POA_NODE_ARENA_MAX: &str = "2";

/// A resource the soak follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Rss,
    Descriptors,
    Threads,
    Connections,
}

impl Resource {
    /// The resource as the report names it, with its unit.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Rss => "RSS (MiB)",
            Self::Descriptors => "open descriptors",
            Self::Threads => "threads",
            Self::Connections => "TCP connections",
        }
    }

    /// Its value in one reading.
    pub(crate) fn of(self, reading: &Reading) -> f64 {
        match self {
            Self::Rss => reading.rss_kib as f64 / 1_024.0,
            Self::Descriptors => reading.descriptors as f64,
            Self::Threads => reading.threads as f64,
            Self::Connections => reading.connections as f64,
        }
    }
}

/// Runs one fleet per variant at the same time for `--soak-duration`, then judges and reports.
///
/// # Errors
/// Fails when a fleet cannot start or a process disappears.
pub(crate) async fn run(context: &BenchContext) -> Result<CaseReport> {
    let binary = context.node_binary()?;
    let plan = Plan {
        duration: context.soak_duration(),
        every: context.duration(Duration::from_secs(5), Duration::from_secs(1)),
        disruptions: vec![
            (0.10, Disruption::StepDown),
            (0.15, Disruption::RestartFollower),
            (0.25, Disruption::StepDown),
            (0.35, Disruption::RestartFollower),
            (0.50, Disruption::StepDown),
            (0.65, Disruption::StepDown),
            (0.80, Disruption::StepDown),
            (0.95, Disruption::StepDown),
        ],
    };
    let (variants, missing) = variants()?;
    let fleets = variants.into_iter().map(|variant| {
        let (binary, plan) = (binary.clone(), plan.clone());
        fleet::run_blocking(context, "soak", move |progress| {
            drive::run(&binary, &SETTINGS, variant, &plan, progress)
        })
    });
    let runs = futures::future::join_all(fleets)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mut report = report::build(&runs, &plan, &SETTINGS, &BOUNDS, missing)?;
    // What the hour of 2026-12-06 decided, kept because it is why `poa-node` runs with two
    // arenas, and what it found about threads, kept because it explains their levels.
    report.notes.extend([
        SOAK.text("allocator-decision")?,
        SOAK.text("threads-finding")?,
    ]);
    Ok(report)
}

/// The allocator variants: glibc's default, glibc with two arenas, and jemalloc preloaded
/// when the system has it (else a note says it was not measured).
fn variants() -> Result<(Vec<Variant>, Option<String>)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arena = |value: String| vec![("MALLOC_ARENA_MAX".to_owned(), value)];
    let mut variants = vec![
        Variant {
            name: format!(
                "glibc default (MALLOC_ARENA_MAX={})",
                cores * GLIBC_ARENAS_PER_CORE
            ),
            environment: arena((cores * GLIBC_ARENAS_PER_CORE).to_string()),
            shipped: false,
        },
        // What poa-node applies itself when its environment names no limit (its allocator
        // module); named here so the soak does not depend on the harness's own environment.
        Variant {
            name: format!("glibc, MALLOC_ARENA_MAX={POA_NODE_ARENA_MAX}"),
            environment: arena(POA_NODE_ARENA_MAX.to_owned()),
            shipped: true,
        },
    ];
    let jemalloc = JEMALLOC_PATHS.iter().find(|path| Path::new(path).is_file());
    let missing = match jemalloc {
        Some(path) => {
            variants.push(Variant {
                name: "jemalloc (LD_PRELOAD)".to_owned(),
                environment: vec![("LD_PRELOAD".to_owned(), (*path).to_owned())],
                shipped: false,
            });
            None
        }
        None => Some(fill!(
            SOAK,
            "jemalloc-missing",
            paths = JEMALLOC_PATHS.join(", ")
        )?),
    };
    Ok((variants, missing))
}
