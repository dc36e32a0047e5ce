//! One fleet of the soak, from start to end: three `poa-node` processes (one allocator
//! variant) on their own three `redis-server`s, a steady load of transactions and reads through
//! every node's API, leader changes on a schedule (a step-down through the admin API, a SIGKILL
//! and restart of a follower), and a reading of every process from `/proc` at a fixed interval.
//!
//! Blocking, on the fleet's own thread (see `crate::fleet`); the load runs on a second thread
//! that only talks HTTP, so the observing thread keeps the fleet to itself.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::fleet::{Fleet, FleetSettings, Progress};
use crate::process_probe::Reading;

/// Blocks produced before the soak starts (start-up is not what it measures).
const WARM_UP_BLOCKS: u64 = 20;
/// Bound of the wait for a steady leader at start.
const STEADY_DEADLINE: Duration = Duration::from_secs(60);
/// Bound of one request of the load: generous, the machine is shared.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Size of each transaction.
pub(crate) const TRANSACTION_BYTES: usize = 1_024;
/// Transactions per second to each node (a follower relays them to the leader).
pub(crate) const TRANSACTIONS_PER_NODE_PER_SECOND: u32 = 20;
/// Every this many transactions, a read of the latest block and of the metrics.
pub(crate) const READ_EVERY: u64 = 10;
/// Every this many transactions, a range of older raw blocks (beyond the small chain cache).
pub(crate) const RANGE_READ_EVERY: u64 = 50;
/// How far below the head the range read starts, and how many blocks it asks for.
pub(crate) const RANGE_READ_DEPTH: u64 = 400;
pub(crate) const RANGE_READ_BLOCKS: u64 = 100;
/// Progress lines while the soak runs, so a long run can be followed.
const PROGRESS_EVERY: Duration = Duration::from_secs(300);

/// A disruption the soak forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disruption {
    /// The leader is asked to step down (`POST /admin/step-down`).
    StepDown,
    /// A follower is killed with SIGKILL and started again on its data directory.
    RestartFollower,
}

impl Disruption {
    /// The disruption as the report names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::StepDown => "step-down",
            Self::RestartFollower => "follower restart",
        }
    }
}

/// What every fleet of one soak does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// How long the soak runs (after the warm-up).
    pub(crate) duration: Duration,
    /// How often every process is read.
    pub(crate) every: Duration,
    /// Disruptions at fractions of the duration. Restarts come only in the first half, so every
    /// process judged over the second half lived through all of it.
    pub(crate) disruptions: Vec<(f64, Disruption)>,
}

/// An allocator setting the processes of one fleet run with.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// How the report names it, e.g. `MALLOC_ARENA_MAX=2`.
    pub(crate) name: String,
    /// Added to every process's environment.
    pub(crate) environment: Vec<(String, String)>,
    /// Whether it is what `poa-node` runs with: only its series fail the run when not flat;
    /// the others are comparisons.
    pub(crate) shipped: bool,
}

/// One reading of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the soak started.
    pub(crate) seconds: f64,
    /// The process read (a restart changes it).
    pub(crate) pid: u32,
    /// The node's chain height, when it answered.
    pub(crate) height: Option<u64>,
    /// What `/proc` said.
    pub(crate) reading: Reading,
}

/// Every reading of one node, across its restarts.
#[derive(Debug, Clone)]
pub(crate) struct NodeSeries {
    /// `node 1`, ...
    pub(crate) name: String,
    pub(crate) samples: Vec<Sample>,
    /// How often the soak restarted it.
    pub(crate) restarts: u32,
}

/// What one fleet's soak produced.
#[derive(Debug, Clone)]
pub(crate) struct FleetRun {
    pub(crate) variant: Variant,
    pub(crate) nodes: Vec<NodeSeries>,
    /// Disruptions as they happened: seconds, and what.
    pub(crate) disruptions: Vec<(f64, String)>,
    /// Times the leader observed by the sampler changed.
    pub(crate) leader_changes: u32,
    /// Requests of the load that succeeded, and those that failed or were refused.
    pub(crate) requests_ok: u64,
    pub(crate) requests_failed: u64,
    /// How long the soak ran.
    pub(crate) seconds: f64,
}

/// Starts the fleet of `variant`, waits for a steady leader, then soaks it as `plan` says.
///
/// # Errors
/// Fails when the fleet cannot start, a node does not come back after a restart, or a
/// process disappears without being killed (a crash is a failed soak).
pub(crate) fn run(
    binary: &Path,
    settings: &FleetSettings,
    variant: Variant,
    plan: &Plan,
    progress: &Progress,
) -> Result<FleetRun> {
    let mut fleet = Fleet::start_meshed_with_environment(binary, settings, &variant.environment)
        .with_context(|| format!("{}: the fleet did not start", variant.name))?;
    fleet.wait_for_steady_leader(WARM_UP_BLOCKS, STEADY_DEADLINE)?;
    progress.say(format_args!(
        "{}: fleet steady, soaking for {} s",
        variant.name,
        plan.duration.as_secs()
    ));
    let addresses: Vec<SocketAddr> = fleet.nodes().iter().map(|node| node.http()).collect();
    let stop = AtomicBool::new(false);
    let counts = LoadCounts::default();
    let observed = thread::scope(|scope| {
        let load = scope.spawn(|| load(&addresses, &stop, &counts, plan.duration));
        let observed = observe(&mut fleet, &variant, plan, progress);
        // Set before anything can return, so the scope's join never waits on the load.
        stop.store(true, Ordering::Relaxed);
        load.join()
            .map_err(|_| anyhow!("the load thread panicked"))
            .and(observed)
    })?;
    Ok(FleetRun {
        variant,
        nodes: observed.nodes,
        disruptions: observed.disruptions,
        leader_changes: observed.leader_changes,
        requests_ok: counts.ok.load(Ordering::Relaxed),
        requests_failed: counts.failed.load(Ordering::Relaxed),
        seconds: observed.seconds,
    })
}

/// What the observing thread gathered.
struct Observed {
    nodes: Vec<NodeSeries>,
    disruptions: Vec<(f64, String)>,
    leader_changes: u32,
    seconds: f64,
}

/// Reads every process every `plan.every` and forces the planned disruptions on time.
fn observe(
    fleet: &mut Fleet,
    variant: &Variant,
    plan: &Plan,
    progress: &Progress,
) -> Result<Observed> {
    let mut nodes: Vec<NodeSeries> = fleet
        .nodes()
        .iter()
        .map(|node| NodeSeries {
            name: node.name.clone(),
            samples: Vec::new(),
            restarts: 0,
        })
        .collect();
    let mut pending: Vec<(Duration, Disruption)> = plan
        .disruptions
        .iter()
        .map(|(fraction, what)| (plan.duration.mul_f64(*fraction), *what))
        .collect();
    let mut disruptions = Vec::new();
    let mut leader: Option<usize> = None;
    let mut leader_changes = 0;
    let started = Instant::now();
    let mut next = started;
    let mut next_progress = started + PROGRESS_EVERY;
    while next <= started + plan.duration {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        next += plan.every;
        let seconds = started.elapsed().as_secs_f64();
        let mut leaders = Vec::new();
        for (index, series) in nodes.iter_mut().enumerate() {
            let node = &fleet.nodes()[index];
            let pid = node
                .pid()
                .ok_or_else(|| anyhow!("{}: {} is not running", variant.name, node.name))?;
            let reading = Reading::of_process(pid)
                .with_context(|| format!("{}: {} is gone", variant.name, node.name))?;
            let status = node.status();
            if status.is_some_and(|status| status.is_leader) {
                leaders.push(index);
            }
            series.samples.push(Sample {
                seconds,
                pid,
                height: status.map(|status| status.height.get()),
                reading,
            });
        }
        if let [now] = leaders[..] {
            if leader.is_some_and(|before| before != now) {
                leader_changes += 1;
            }
            leader = Some(now);
        }
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            progress.say(format_args!(
                "{}: {:.0} s: {}",
                variant.name,
                seconds,
                latest(&nodes)
            ));
        }
        let due = started.elapsed();
        while let Some(&(at, what)) = pending.first()
            && at <= due
        {
            pending.remove(0);
            let done = disrupt(fleet, &mut nodes, leader, what)?;
            disruptions.push((started.elapsed().as_secs_f64(), done));
        }
    }
    Ok(Observed {
        nodes,
        disruptions,
        leader_changes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Forces `what`; says what was done.
fn disrupt(
    fleet: &mut Fleet,
    nodes: &mut [NodeSeries],
    leader: Option<usize>,
    what: Disruption,
) -> Result<String> {
    let Some(leader) = leader else {
        return Ok(format!("{} skipped: no leader seen", what.label()));
    };
    match what {
        Disruption::StepDown => {
            let node = &fleet.nodes()[leader];
            let answer = node
                .step_down()
                .map_or_else(|| "no answer".to_owned(), |status| status.to_string());
            Ok(format!("step-down of {} ({answer})", node.name))
        }
        Disruption::RestartFollower => {
            let follower = (leader + 1) % fleet.nodes().len();
            fleet.node_mut(follower)?.restart()?;
            if let Some(series) = nodes.get_mut(follower) {
                series.restarts += 1;
            }
            Ok(format!(
                "SIGKILL and restart of {}",
                fleet.nodes()[follower].name
            ))
        }
    }
}

/// The last reading of every node, for a progress line.
fn latest(nodes: &[NodeSeries]) -> String {
    let parts: Vec<String> = nodes
        .iter()
        .filter_map(|series| {
            let sample = series.samples.last()?;
            Some(format!(
                "{} height {} rss {:.1} MiB fds {} threads {} tcp {}",
                series.name,
                sample
                    .height
                    .map_or_else(|| "?".to_owned(), |h| h.to_string()),
                sample.reading.rss_kib as f64 / 1_024.0,
                sample.reading.descriptors,
                sample.reading.threads,
                sample.reading.connections
            ))
        })
        .collect();
    parts.join("; ")
}

/// Requests of the load, counted from its thread.
#[derive(Debug, Default)]
struct LoadCounts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Until `stop` (or `duration` plus a slack): a transaction to each node in turn at
/// [`TRANSACTIONS_PER_NODE_PER_SECOND`] per node; every [`READ_EVERY`] a read of the latest
/// block and of the metrics, and every [`RANGE_READ_EVERY`] a range of raw blocks from
/// [`RANGE_READ_DEPTH`] below the head, from the node in turn.
fn load(addresses: &[SocketAddr], stop: &AtomicBool, counts: &LoadCounts, duration: Duration) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(LOAD_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let per_second = TRANSACTIONS_PER_NODE_PER_SECOND * u32::try_from(addresses.len()).unwrap_or(1);
    let interval = Duration::from_secs(1) / per_second.max(1);
    let bound = duration + Duration::from_secs(30);
    let started = Instant::now();
    let mut serial: u64 = 0;
    let mut head: u64 = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < bound {
        let index = usize::try_from(serial).unwrap_or(0) % addresses.len().max(1);
        let Some(address) = addresses.get(index) else {
            return;
        };
        let mut body = format!("poa-bench soak transaction {serial:012} ").into_bytes();
        body.resize(TRANSACTION_BYTES, b'.');
        let submitted = agent
            .post(&format!("http://{address}/transactions"))
            .send(&body[..]);
        count(counts, submitted.is_ok_and(|r| r.status().as_u16() == 202));
        if serial.is_multiple_of(READ_EVERY) {
            let latest = read(&agent, &format!("http://{address}/blocks/latest"));
            if let Some(height) = latest.as_deref().and_then(height_of) {
                head = height;
            }
            count(counts, latest.is_some());
            count(
                counts,
                read(&agent, &format!("http://{address}/metrics")).is_some(),
            );
        }
        if serial.is_multiple_of(RANGE_READ_EVERY) {
            let from = head.saturating_sub(RANGE_READ_DEPTH).max(1);
            let url = format!("http://{address}/blocks/raw?from={from}&limit={RANGE_READ_BLOCKS}");
            count(counts, read(&agent, &url).is_some());
        }
        serial += 1;
        let due = started + interval.saturating_mul(u32::try_from(serial).unwrap_or(u32::MAX));
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// The body of a successful GET, read to the end; `None` for anything else.
fn read(agent: &ureq::Agent, url: &str) -> Option<Vec<u8>> {
    let mut response = agent.get(url).call().ok()?;
    if !response.status().is_success() {
        return None;
    }
    response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .ok()
}

/// The `height` of a block's JSON.
fn height_of(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("height")?
        .as_u64()
}

fn count(counts: &LoadCounts, ok: bool) {
    let counter = if ok { &counts.ok } else { &counts.failed };
    counter.fetch_add(1, Ordering::Relaxed);
}
