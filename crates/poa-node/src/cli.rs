//! The command line: every flag also reads a `POA_*` environment variable, and any flag left
//! unset falls back to the TOML file given by `--config`, then to the built-in default.
//!
//! Flags are `Option`s without clap defaults on purpose: the settings module must tell "not
//! given" from "given the default value" to let the file fill the gaps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// What separates the values of a repeatable list flag (`--redis-url`, `--next-redis-url`,
/// `--peer`) given at once, in one flag or in its `POA_*` variable
/// (`POA_REDIS_URLS=redis://a:6379,redis://b:6379`).
const LIST_DELIMITER: char = ',';

/// A high-availability Proof-of-Authority block producer.
///
/// With no arguments it runs a single-node development chain in ./poa-data with 1 s blocks and
/// HTTP on 127.0.0.1:4000. Give one or more --redis-url to run as one of several producers that
/// share a leader lease on a quorum of Redis nodes.
#[derive(Debug, Parser)]
#[command(name = "poa-node", version, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    /// What to do; without a subcommand the node runs.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Settings of `run`, also accepted without the subcommand.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the block producer (the default).
    Run(Box<RunArgs>),
    /// Print the configuration `run` would use with the same flags, variables and --config
    /// file: every setting with where its value came from (flag, env, file, default), secrets
    /// redacted; exits 0 when it is valid, else 2 with the error.
    Config(Box<RunArgs>),
    /// Verify a data directory offline: page checksums, then every block from genesis to the
    /// head (ids, parent links, transaction roots, seals, indexes). Exits 0 when it is sound.
    /// Stop the node that uses it first.
    CheckChain {
        /// The data directory to check.
        #[arg(long, env = "POA_DATA_DIR")]
        data_dir: PathBuf,
        /// The authority public key (64 hex characters), needed only for a data directory
        /// written before the chain spec was recorded in it.
        #[arg(long)]
        authority: Option<adapter_chain::AuthorityPublicKey>,
    },
    /// The membership record of the Redis nodes (docs/operations.md 7.1 and 7.12): which
    /// servers the fleet's quorums are counted over.
    #[command(subcommand)]
    Membership(MembershipCommand),
    /// Write a new authority key file (mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, env = "POA_KEY_FILE")]
        key_file: PathBuf,
        /// Write nothing: print the public key of the existing --key-file, 64 hex characters as
        /// `/status` shows the `authority` and `check-chain --authority` takes it.
        #[arg(long)]
        print_public: bool,
    },
}

/// The operator's membership commands. They take the fleet's Redis settings (`--redis-url`,
/// `--lease-key`, `--quorum-disruption-budget`, the security flags, or `--config`) exactly as
/// its producers do.
#[derive(Debug, Subcommand)]
pub(crate) enum MembershipCommand {
    /// Write server ids and a first record on nodes that hold no record: a fresh fleet whose
    /// producers did not bootstrap it because a node was down. The nodes that do not answer
    /// become vacancies, filled by the leader once they answer.
    Init(Box<RunArgs>),
    /// Write the next record over the current one naming the server of every --redis-url: the
    /// stop-the-world change of the node list. Refuses while any node holds a lease (stop every
    /// producer first) and unless every node answers.
    Set(Box<RunArgs>),
    /// Begin a change of the node list without downtime: write the joint record naming the
    /// --redis-url list and the --next-redis-url list, while the producers run.
    Begin(Box<RunArgs>),
    /// Commit the change begun: once the new list holds the log, write its own record over the
    /// joint one.
    Commit(Box<RunArgs>),
}

/// Settings of a running node, each declared once: its flag, its `POA_*` variable and its key
/// in the `--config` file (the field's name in kebab-case) all come from its field here. A
/// setting left unset is `None` (or false, or empty), so the file can fill it and the
/// settings module can tell it from one given its default value.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub(crate) struct RunArgs {
    /// TOML file with any of these settings (kebab-case keys, durations like "200ms").
    #[arg(long, env = "POA_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,

    /// Directory of the local chain database [default: ./poa-data].
    #[arg(long, env = "POA_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Produce a block every interval, e.g. 1s or 200ms [default: 1s].
    #[arg(long, env = "POA_BLOCK_TIME", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) block_time: Option<Duration>,

    /// Produce a block as soon as transactions are pending (no empty blocks).
    #[arg(long, env = "POA_INSTANT", conflicts_with_all = ["block_time", "manual"])]
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) instant: bool,

    /// Produce blocks only on POST /admin/produce (on --admin-http).
    #[arg(long, env = "POA_MANUAL", conflicts_with_all = ["block_time", "instant"])]
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) manual: bool,

    /// Address of the HTTP API [default: 127.0.0.1:4000].
    #[arg(long, env = "POA_HTTP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<SocketAddr>,

    /// Address of the admin API (POST /admin/step-down, POST /admin/produce, ...); keep it on
    /// loopback [default: 127.0.0.1, the --http port + 100, e.g. 4100].
    #[arg(long, env = "POA_ADMIN_HTTP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) admin_http: Option<SocketAddr>,

    /// How long a step-down keeps this process from taking the lease back [default: 10s].
    #[arg(long, env = "POA_STEP_DOWN_HOLD_OFF", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) step_down_hold_off: Option<Duration>,

    /// How far this process's clock may be from the Redis nodes' clocks, and a block ahead of
    /// it, before it refuses to date or import the block [default: 2s].
    #[arg(long, env = "POA_MAX_CLOCK_SKEW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) max_clock_skew: Option<Duration>,

    /// Authority key file (see `poa-node keygen`) [default: the public development key].
    #[arg(long, env = "POA_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_file: Option<PathBuf>,

    /// Chain id [default: 0, the development chain].
    #[arg(long, env = "POA_CHAIN_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain_id: Option<u64>,

    /// Genesis time, RFC 3339 (e.g. 2024-01-01T00:00:00Z) [default: the development genesis].
    #[arg(long, env = "POA_GENESIS_TIME", value_parser = humantime::parse_rfc3339)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) genesis_time: Option<std::time::SystemTime>,

    /// How often a follower (or a failed cycle) checks again [default: min(block time, lease ttl / 4)].
    #[arg(long, env = "POA_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) poll_interval: Option<Duration>,

    /// A Redis node of the leader lease, redis://host:port or rediss://host:port (TLS); repeat
    /// for each node. Without any, the node runs alone. Never put a password in it.
    #[arg(
        long = "redis-url",
        env = "POA_REDIS_URLS",
        hide_env_values = true,
        value_delimiter = LIST_DELIMITER
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) redis_urls: Vec<String>,

    /// During a membership change without downtime only: a Redis node of the list the fleet
    /// moves to; repeat for each (docs/operations.md 7.14). The process then needs a quorum of
    /// the --redis-url list and one of this list for everything it does.
    #[arg(
        long = "next-redis-url",
        env = "POA_NEXT_REDIS_URLS",
        hide_env_values = true,
        value_delimiter = LIST_DELIMITER
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) next_redis_urls: Vec<String>,

    /// Another poa-node's HTTP API, http://host:port; repeat for each. A process whose next
    /// height was trimmed from every Redis stream fetches the blocks from these peers.
    #[arg(
        long = "peer",
        env = "POA_PEERS",
        hide_env_values = true,
        value_delimiter = LIST_DELIMITER
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) peers: Vec<String>,

    /// ACL user on every Redis node [default: the user in the URL, else `default`]. The
    /// password comes from POA_REDIS_PASSWORD or --redis-password-file, never from a flag.
    #[arg(long, env = "POA_REDIS_USERNAME", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_username: Option<String>,

    /// File holding the Redis password (one line); alternative to POA_REDIS_PASSWORD.
    #[arg(long, env = "POA_REDIS_PASSWORD_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_password_file: Option<PathBuf>,

    /// PEM bundle of the certificate authorities trusted for rediss:// nodes [default: the
    /// platform's roots].
    #[arg(long, env = "POA_REDIS_CA_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_ca_file: Option<PathBuf>,

    /// PEM client certificate for mutual TLS with rediss:// nodes (with --redis-client-key).
    #[arg(long, env = "POA_REDIS_CLIENT_CERT", requires = "redis_client_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_client_cert: Option<PathBuf>,

    /// PEM private key of --redis-client-cert.
    #[arg(long, env = "POA_REDIS_CLIENT_KEY", requires = "redis_client_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis_client_key: Option<PathBuf>,

    /// Key prefix of the lease, epoch, stream and index keys [default: poa:leader:lock].
    #[arg(long, env = "POA_LEASE_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lease_key: Option<String>,

    /// Lease time to live [default: 3s].
    #[arg(long, env = "POA_LEASE_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) lease_ttl: Option<Duration>,

    /// Bound of every call to one Redis node [default: 100ms].
    #[arg(long, env = "POA_NODE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) node_timeout: Option<Duration>,

    /// Delay between lease acquisition attempts [default: 200ms].
    #[arg(long, env = "POA_RETRY_DELAY", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) retry_delay: Option<Duration>,

    /// Largest random delay added to --retry-delay [default: 100ms].
    #[arg(long, env = "POA_MAX_RETRY_DELAY_OFFSET", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) max_retry_delay_offset: Option<Duration>,

    /// Lease acquisition attempts per cycle [default: 3].
    #[arg(long, env = "POA_MAX_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_attempts: Option<u32>,

    /// Blocks each Redis stream retains [default: 1000].
    #[arg(long, env = "POA_STREAM_MAX_LEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_max_len: Option<u64>,

    /// Extra nodes every quorum must include, to survive that many nodes losing data [default: 0].
    #[arg(long, env = "POA_QUORUM_DISRUPTION_BUDGET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) quorum_disruption_budget: Option<usize>,

    /// Log format: text or json [default: text].
    #[arg(long, env = "POA_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_format: Option<LogFormat>,

    // Bounds of the HTTP listeners (settings/http_limits.rs).
    /// Most connections the HTTP API holds; at the cap a new connection closes the one that
    /// has waited longest for a request [default: 1024].
    #[arg(long, env = "POA_HTTP_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http_max_connections: Option<usize>,

    /// Time a connection has to send a request's headers, from the connection or the previous
    /// answer, so it also closes keep-alive connections idle that long [default: 10s].
    #[arg(long, env = "POA_HTTP_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) http_header_timeout: Option<Duration>,

    /// Time to read a request's body and answer it; 408 past it [default: 30s].
    #[arg(long, env = "POA_HTTP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) http_request_timeout: Option<Duration>,

    /// Time a connection may move no byte either way before it is closed [default: 30s].
    #[arg(long, env = "POA_HTTP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) http_idle_timeout: Option<Duration>,

    /// Bulk transfers served at once (raw block answers, relay batches from peers); past it
    /// 503 with Retry-After [default: 16].
    #[arg(long, env = "POA_HTTP_MAX_BULK_REQUESTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http_max_bulk_requests: Option<usize>,

    // The transaction pool (settings/transactions.rs).
    /// How long an accepted transaction stays pending, from when a process of the fleet first
    /// accepted it, before every pool drops it [default: 1h].
    #[arg(long, env = "POA_TRANSACTION_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) transaction_ttl: Option<Duration>,

    // The local chain database (settings/chain_storage.rs).
    /// How long the node keeps reopening its chain database after an I/O error (a full disk)
    /// before it exits for a supervisor to restart it [default: 60s].
    #[arg(long, env = "POA_CHAIN_RECOVERY_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) chain_recovery_window: Option<Duration>,

    /// Upper bound of the chain database's page cache, in MiB; a tenth of it buffers writes
    /// [default: 64].
    #[arg(long, env = "POA_CHAIN_CACHE_MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain_cache_mib: Option<u64>,

    /// How the chain database is checked at startup: full (every page checksum, about 3 to 10 s
    /// per GiB) or quick (the head only) [default: full].
    #[arg(long, env = "POA_CHAIN_OPEN_CHECK")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain_open_check: Option<ChainOpenCheck>,
}

/// How the chain database is checked at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ChainOpenCheck {
    /// Every page checksum, then the head.
    Full,
    /// The head only; damage further down is found when a block is read.
    Quick,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether a flag is unset, so it leaves the file's value alone.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}
