//! The clients the limit case sends `PING` through, one call at a time on one server: the
//! adapter's own client (fred as `adapter_redis::node_client` builds it, `crate::floor`) on the harness's
//! multi-threaded runtime as `poa-node` runs it, the same client on a current-thread runtime,
//! the `redis` crate (its multiplexed async connection, and its blocking connection), and
//! `redis-benchmark` (C, one event loop, no runtime at all), whose own percentile report is read
//! back into a histogram.
//!
//! Owns connecting each client and timing its calls; it decides nothing about what the
//! numbers mean (the case does) and never changes the adapter's settings.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use redis::io::tcp::TcpSettings;
use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::fixtures::{HANG_BOUND, WARM_UP, bounded};
use crate::stats::Latencies;

/// A client of the `PING` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PingClient {
    /// The adapter's client on the harness's multi-threaded runtime, called from a task on one
    /// of its workers, as `poa-node`'s producer calls it: what production pays.
    Adapter,
    /// The same, called from a thread outside the runtime's workers (`block_on`), where every
    /// reply wakes the caller across threads.
    AdapterOffWorker,
    /// The adapter's client on a current-thread runtime of its own: the caller and fred's
    /// routing task on one thread, so no wake-up crosses threads.
    AdapterCurrentThread,
    /// The `redis` crate's multiplexed connection (a driver task, as fred has) on the
    /// harness's runtime.
    RedisCrate,
    /// The `redis` crate's blocking connection: one thread writes and reads the socket.
    RedisCrateBlocking,
    /// `redis-benchmark -c 1`, the server's own tool.
    RedisBenchmark,
}

impl PingClient {
    /// Every client, in the order each round measures them.
    pub(super) const ALL: [Self; 6] = [
        Self::Adapter,
        Self::RedisBenchmark,
        Self::AdapterOffWorker,
        Self::AdapterCurrentThread,
        Self::RedisCrate,
        Self::RedisCrateBlocking,
    ];

    /// The row's variant.
    pub(super) fn variant(self) -> &'static str {
        match self {
            Self::Adapter => "PING round trip, the adapter's client (fred, multi-thread runtime)",
            Self::AdapterOffWorker => {
                "PING round trip, the adapter's client (fred, multi-thread runtime, called from \
                 block_on)"
            }
            Self::AdapterCurrentThread => {
                "PING round trip, the adapter's client (fred, current-thread runtime)"
            }
            Self::RedisCrate => "PING round trip, redis crate (multiplexed, multi-thread runtime)",
            Self::RedisCrateBlocking => "PING round trip, redis crate (blocking connection)",
            Self::RedisBenchmark => "PING round trip, redis-benchmark -c 1",
        }
    }

    /// The chart's legend.
    pub(super) fn legend(self) -> &'static str {
        match self {
            Self::Adapter => "PING, fred (multi-thread)",
            Self::AdapterOffWorker => "PING, fred (multi-thread, from block_on)",
            Self::AdapterCurrentThread => "PING, fred (current-thread)",
            Self::RedisCrate => "PING, redis crate (async)",
            Self::RedisCrateBlocking => "PING, redis crate (blocking)",
            Self::RedisBenchmark => "PING, redis-benchmark",
        }
    }

    /// `samples` timed `PING`s to `url` after an untimed warm-up; `key` is the adapter's key
    /// prefix (its client's membership is written under it).
    ///
    /// # Errors
    /// Fails when the client cannot connect, a call fails or hangs, or `redis-benchmark`
    /// cannot run or its report cannot be read.
    pub(super) async fn pings(self, url: &str, key: String, samples: u64) -> Result<Latencies> {
        match self {
            Self::Adapter => adapter_pings(url.to_owned(), key, samples).await,
            Self::AdapterOffWorker => {
                let url = url.to_owned();
                let runtime = tokio::runtime::Handle::current();
                on_blocking_thread("the calls from block_on", move || {
                    runtime.block_on(adapter_pings(url, key, samples))
                })
                .await
            }
            Self::AdapterCurrentThread => {
                let url = url.to_owned();
                on_blocking_thread("the current-thread runtime", move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start a current-thread runtime")?;
                    runtime.block_on(adapter_pings(url, key, samples))
                })
                .await
            }
            Self::RedisCrate => redis_crate_pings(url, samples).await,
            Self::RedisCrateBlocking => {
                let info = connection_info(url)?;
                on_blocking_thread("the redis crate's blocking connection", move || {
                    redis_crate_blocking_pings(info, samples)
                })
                .await
            }
            Self::RedisBenchmark => {
                let (host, port) = host_and_port(url)?;
                on_blocking_thread("redis-benchmark", move || {
                    redis_benchmark_pings(&host, port, samples)
                })
                .await
            }
        }
    }
}

/// Runs `measure` on the blocking pool: a blocking client, or a runtime of its own.
async fn on_blocking_thread(
    what: &str,
    measure: impl FnOnce() -> Result<Latencies> + Send + 'static,
) -> Result<Latencies> {
    bounded(what, HANG_BOUND, tokio::task::spawn_blocking(measure))
        .await?
        .map_err(|error| anyhow!("{what} failed: {error}"))?
}

/// `PING`s over a client built exactly as the adapter builds a node's (the scripts' connection).
async fn adapter_pings(url: String, key: String, samples: u64) -> Result<Latencies> {
    let floor = super::connect(&url, key).await?;
    let node = floor.node(0)?;
    let mut latencies = Latencies::new();
    for sample in 0..WARM_UP + samples {
        let started = Instant::now();
        bounded("PING", HANG_BOUND, node.ping()).await??;
        if sample >= WARM_UP {
            latencies.record(started.elapsed());
        }
    }
    Ok(latencies)
}

/// The `redis` crate's settings for `url`, with Nagle off as the adapter has it.
fn connection_info(url: &str) -> Result<ConnectionInfo> {
    Ok(url
        .into_connection_info()
        .with_context(|| format!("the redis crate cannot read the url {url}"))?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true)))
}

async fn redis_crate_pings(url: &str, samples: u64) -> Result<Latencies> {
    let client = redis::Client::open(connection_info(url)?)?;
    let mut connection = bounded(
        "connecting the redis crate",
        HANG_BOUND,
        client.get_multiplexed_async_connection(),
    )
    .await?
    .context("the redis crate cannot connect")?;
    let ping = redis::cmd("PING");
    let mut latencies = Latencies::new();
    for sample in 0..WARM_UP + samples {
        let started = Instant::now();
        let reply: String =
            bounded("PING", HANG_BOUND, ping.query_async(&mut connection)).await??;
        record_pong(&mut latencies, sample, &reply, started.elapsed())?;
    }
    Ok(latencies)
}

fn redis_crate_blocking_pings(info: ConnectionInfo, samples: u64) -> Result<Latencies> {
    let client = redis::Client::open(info)?;
    let mut connection = client
        .get_connection_with_timeout(HANG_BOUND)
        .context("the redis crate's blocking connection cannot connect")?;
    connection.set_read_timeout(Some(HANG_BOUND))?;
    connection.set_write_timeout(Some(HANG_BOUND))?;
    let ping = redis::cmd("PING");
    let mut latencies = Latencies::new();
    for sample in 0..WARM_UP + samples {
        let started = Instant::now();
        let reply: String = ping.query(&mut connection)?;
        record_pong(&mut latencies, sample, &reply, started.elapsed())?;
    }
    Ok(latencies)
}

/// Records the `sample`th `PING` of the redis crate (none of the warm-up), once its reply is
/// known to be `PONG`.
fn record_pong(
    latencies: &mut Latencies,
    sample: u64,
    reply: &str,
    elapsed: Duration,
) -> Result<()> {
    if reply != "PONG" {
        bail!("the redis crate's PING answered {reply:?}");
    }
    if sample >= WARM_UP {
        latencies.record(elapsed);
    }
    Ok(())
}

/// `host` and `port` of a plain `redis://host:port[/db]` URL, what `redis-benchmark` takes.
fn host_and_port(url: &str) -> Result<(String, u16)> {
    let unsupported = || {
        anyhow!(
            "redis-benchmark is only run against plain redis://host:port URLs, not {url}: \
             measure that server with redis-benchmark by hand"
        )
    };
    let rest = url.strip_prefix("redis://").ok_or_else(unsupported)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(unsupported());
    }
    let (host, port) = authority.rsplit_once(':').ok_or_else(unsupported)?;
    let port = port.parse().map_err(|_| unsupported())?;
    Ok((host.to_owned(), port))
}

/// `redis-benchmark -c 1 -n samples` of the multi-bulk `PING` (the form every client sends).
fn redis_benchmark_pings(host: &str, port: u16, samples: u64) -> Result<Latencies> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-c",
            "1",
            "-t",
            "ping_mbulk",
        ])
        .args(["-n", &samples.to_string()])
        .output()
        .context("cannot run redis-benchmark (installed with redis-server)")?;
    if !output.status.success() {
        bail!(
            "redis-benchmark failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    percentile_report(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `redis-benchmark`'s "Latency by percentile distribution" (its own HDR histogram, to
/// the microsecond) back into a histogram. Between two printed percentiles each sample counts
/// at the higher printed latency, so a percentile it does not print reads as the next one it
/// does: never below its own figure.
///
/// # Errors
/// Fails when the report has no such section.
pub(super) fn percentile_report(text: &str) -> Result<Latencies> {
    let mut latencies = Latencies::new();
    let mut counted = 0u64;
    let lines = text
        .lines()
        .skip_while(|line| !line.starts_with("Latency by percentile distribution"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty());
    for line in lines {
        let (Some(millis), Some(cumulative)) = (
            between(line, "<= ", " milliseconds").and_then(|value| value.parse::<f64>().ok()),
            between(line, "(cumulative count ", ")").and_then(|value| value.parse::<u64>().ok()),
        ) else {
            bail!("cannot read redis-benchmark's percentile line {line:?}");
        };
        let latency = Duration::from_secs_f64(millis / 1_000.0);
        for _ in counted..cumulative {
            latencies.record(latency);
        }
        counted = counted.max(cumulative);
    }
    if latencies.is_empty() {
        bail!("redis-benchmark printed no percentile distribution");
    }
    Ok(latencies)
}

/// The text between `start` and the next `end` in `line`.
fn between<'a>(line: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(start)?;
    rest.split_once(end).map(|(value, _)| value.trim())
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    /// What redis-benchmark 7.0 prints for `-c 1 -n 20000 -t ping_mbulk`, cut to its
    /// percentile section and the line after it.
    const REPORT: &str = "PING_MBULK: rps=8510.0 (overall: 4261.7) avg_msec=0.115\r\n\
====== PING_MBULK ======\n  20000 requests completed in 4.55 seconds\n\n\
Latency by percentile distribution:\n\
0.000% <= 0.015 milliseconds (cumulative count 436)\n\
50.000% <= 0.023 milliseconds (cumulative count 13593)\n\
75.000% <= 0.039 milliseconds (cumulative count 18731)\n\
93.750% <= 0.047 milliseconds (cumulative count 18964)\n\
99.219% <= 4.071 milliseconds (cumulative count 19845)\n\
100.000% <= 203.903 milliseconds (cumulative count 20000)\n\n\
Cumulative distribution of latencies:\n\
96.445% <= 0.103 milliseconds (cumulative count 19289)\n";

    #[test]
    fn percentile_report__when_redis_benchmark_printed_its_distribution__then_same_percentiles() {
        // given / when
        let latencies = percentile_report(REPORT).unwrap();

        // then: every sample counted once, its own p50 exact, the tail at its printed steps
        let summary = latencies.summary();
        assert_eq!(summary.samples, 20_000);
        assert_eq!(summary.p50_us, 23);
        assert_eq!(latencies.quantile_us(0.9), 39);
        assert!((4_069..=4_073).contains(&summary.p99_us), "{summary:?}");
        assert!((203_800..=204_000).contains(&summary.max_us), "{summary:?}");
    }

    #[test]
    fn percentile_report__when_no_distribution__then_error_names_it() {
        // given / when
        let error = percentile_report("PING_MBULK: 8745.08 requests per second\n").unwrap_err();

        // then
        assert!(
            error.to_string().contains("no percentile distribution"),
            "{error}"
        );
    }

    #[test]
    fn host_and_port__when_plain_or_with_credentials__then_read_or_refused() {
        // given / when / then
        assert_eq!(
            host_and_port("redis://127.0.0.1:7001/0").unwrap(),
            ("127.0.0.1".to_owned(), 7001)
        );
        let refused = host_and_port("rediss://user:secret@host:6380").unwrap_err();
        assert!(refused.to_string().contains("plain redis://"), "{refused}");
    }
}
