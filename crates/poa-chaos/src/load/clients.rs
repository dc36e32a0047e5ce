//! The load harness's clients: threads that submit unique transactions to a node drawn at random
//! for each one, at a shared pace, and record every submission (node, phase, latency, outcome).
//!
//! They only submit and record; they know nothing of faults, and the run tells them the phase
//! and when to stop. Every request is bounded by the submit timeout, so a frozen node costs a
//! client that long and no more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use poa_ports::Transaction;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ureq::Agent;

use super::accounting::{Outcome, Phase, Submission};

/// Largest padding of a payload: transactions of a few dozen to a few hundred bytes.
const MAX_PADDING: usize = 256;
/// A client that fell this far behind its pace (a frozen node held it) starts pacing afresh
/// instead of sending the backlog at once.
const MAX_LAG: Duration = Duration::from_secs(1);

/// What the run and its clients share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The current phase, as an index into [`Phase::ALL`].
    phase: AtomicUsize,
    /// Set when the clients must stop.
    stop: AtomicBool,
    /// The start of the run: every time is measured from it.
    start: Instant,
}

impl Shared {
    /// Shared state of a run that started at `start`, in its first phase.
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            start,
        }
    }

    /// Moves every client to `phase`.
    pub(crate) fn enter(&self, phase: Phase) {
        let index = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        self.phase.store(index, Ordering::SeqCst);
    }

    /// Tells every client to stop after its current submission.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn phase(&self) -> Phase {
        Phase::ALL[self.phase.load(Ordering::SeqCst).min(Phase::ALL.len() - 1)]
    }
}

/// How the clients submit.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// Seed of every client's choices and payloads.
    pub(crate) seed: u64,
    /// Number of clients.
    pub(crate) clients: usize,
    /// Submissions per second of all clients together; 0 for as fast as answers come.
    pub(crate) rate: u32,
    /// Bound of one submission.
    pub(crate) timeout: Duration,
    /// Every node's HTTP API.
    pub(crate) nodes: Vec<SocketAddr>,
}

/// Starts the clients; each returns its submissions when joined after [`Shared::stop`].
pub(crate) fn spawn(workload: &Workload, shared: &Arc<Shared>) -> Vec<JoinHandle<Vec<Submission>>> {
    (0..workload.clients)
        .map(|client| {
            let workload = workload.clone();
            let shared = Arc::clone(shared);
            thread::spawn(move || submit_until_stopped(client, &workload, &shared))
        })
        .collect()
}

fn submit_until_stopped(client: usize, workload: &Workload, shared: &Shared) -> Vec<Submission> {
    let agent: Agent = Agent::config_builder()
        .timeout_global(Some(workload.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut rng = StdRng::seed_from_u64(workload.seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
    // Each client's share of the rate; clients start spread over one interval.
    let interval = (workload.rate > 0)
        .then(|| Duration::from_secs_f64(workload.clients as f64 / f64::from(workload.rate)));
    let mut next = Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(rng.r#gen()));
    let mut submissions = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(interval) = interval {
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else if now - next > MAX_LAG {
                next = now;
            }
            next += interval;
        }
        let node = rng.gen_range(0..workload.nodes.len());
        let padding = "p".repeat(rng.gen_range(0..=MAX_PADDING));
        let payload = format!(
            "load seed {} client {client} transaction {} nonce {} {padding}",
            workload.seed,
            submissions.len(),
            rng.r#gen::<u64>()
        );
        let phase = shared.phase();
        let sent = Instant::now();
        let outcome = submit(&agent, workload.nodes[node], payload.as_bytes());
        submissions.push(Submission {
            id: Transaction::new(payload.into_bytes()).id().to_hex(),
            node,
            phase,
            sent_at: sent - shared.start,
            latency: sent.elapsed(),
            outcome,
        });
    }
    submissions
}

fn submit(agent: &Agent, node: SocketAddr, payload: &[u8]) -> Outcome {
    let response = agent
        .post(format!("http://{node}/transactions"))
        .send(payload);
    let Ok(mut response) = response else {
        return Outcome::Failed;
    };
    let status = response.status().as_u16();
    // The body is read so the connection can serve the next request.
    let _ = response.body_mut().read_to_string();
    match status {
        202 => Outcome::Accepted,
        status => Outcome::Refused { status },
    }
}
