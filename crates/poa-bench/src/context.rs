//! What every case gets: the run's scale (quick or full), the user's `--redis-url` servers, the
//! `poa-node` binary, the peer bench binary if any, unique key prefixes, and progress lines on
//! stderr. Owns no measuring.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// The run-wide settings and services a case uses.
#[derive(Debug)]
pub(crate) struct BenchContext {
    quick: bool,
    redis_urls: Vec<String>,
    node_binary: Option<PathBuf>,
    soak_duration: Option<Duration>,
    peer_bench: Option<PathBuf>,
    started: Instant,
    next_key: AtomicU64,
}

impl BenchContext {
    /// The context of one run.
    pub(crate) fn new(
        quick: bool,
        redis_urls: Vec<String>,
        node_binary: Option<PathBuf>,
        soak_duration: Option<Duration>,
    ) -> Self {
        Self {
            quick,
            redis_urls,
            node_binary,
            soak_duration,
            peer_bench: None,
            started: Instant::now(),
            next_key: AtomicU64::new(0),
        }
    }

    /// The same context with the peer bench binary (`--peer-bench`) the publish case compares
    /// against.
    pub(crate) fn with_peer_bench(mut self, peer_bench: Option<PathBuf>) -> Self {
        self.peer_bench = peer_bench;
        self
    }

    /// The peer bench binary, if `--peer-bench` named one.
    pub(crate) fn peer_bench(&self) -> Option<&Path> {
        self.peer_bench.as_deref()
    }

    /// `full` in a full run, `quick` in a `--quick` run: sample counts, repetitions.
    pub(crate) fn scale(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }

    /// `full` in a full run, `quick` in a `--quick` run: measuring windows.
    pub(crate) fn duration(&self, full: Duration, quick: Duration) -> Duration {
        if self.quick { quick } else { full }
    }

    /// How long the soak runs: `--soak-duration`, else an hour (20 s with `--quick`).
    pub(crate) fn soak_duration(&self) -> Duration {
        self.soak_duration
            .unwrap_or_else(|| self.duration(Duration::from_secs(3_600), Duration::from_secs(20)))
    }

    /// The servers given with `--redis-url`; empty means local `redis-server`s.
    pub(crate) fn redis_urls(&self) -> &[String] {
        &self.redis_urls
    }

    /// The `poa-node` binary: `--node-binary`, else the one next to this binary.
    ///
    /// # Errors
    /// Fails when neither exists, naming the build command.
    pub(crate) fn node_binary(&self) -> Result<PathBuf> {
        let candidate = match &self.node_binary {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(|dir| dir.join("poa-node"))
                .unwrap_or_else(|| Path::new("poa-node").to_path_buf()),
        };
        if !candidate.is_file() {
            bail!(
                "poa-node binary not found at {}: run through `cargo xtask bench`, or build it \
                 with `cargo build --release -p poa-node` and pass --node-binary",
                candidate.display()
            );
        }
        Ok(candidate)
    }

    /// A lease-key prefix no other measurement of this run uses, so series never share keys.
    /// Every such key starts with [`Self::run_prefix`].
    pub(crate) fn unique_key(&self, what: &str) -> String {
        let serial = self.next_key.fetch_add(1, Ordering::Relaxed);
        format!("{}{serial}:{what}", Self::run_prefix())
    }

    /// The prefix of every key this run writes: `poa-bench:<pid>:`.
    pub(crate) fn run_prefix() -> String {
        format!("poa-bench:{}:", std::process::id())
    }

    /// Prints one progress line on stderr, with the time since the run started.
    pub(crate) fn progress(&self, case: &str, message: impl Display) {
        eprintln!(
            "[{:>6.1}s] {case}: {message}",
            self.started.elapsed().as_secs_f64()
        );
    }
}
