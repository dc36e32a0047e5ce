//! Resolves the node's settings: command line and environment first, then the `--config` TOML
//! file, then the defaults; and validates them, naming the flag to fix in every error.
//!
//! Every setting is declared once, in [`RunArgs`]: its flag and `POA_*` variable (clap, which
//! also puts a flag over its variable) and its key in the file (serde). The file is read into
//! the same type, and figment layers the flags over it, so no setting is merged by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter_chain::{AuthorityKey, ChainSpec, KeyError, PoolLimits};
use adapter_peers::PeerConfig;
use adapter_redis::{RedisConfig, RedisPassword, RedisSecurity};
use poa_core::Trigger;
use poa_ports::{ChainId, Timestamp};

use figment::Figment;
use figment::providers::Serialized;

use crate::cli::{LogFormat, RunArgs};
use crate::http_server::HttpLimits;
use crate::library_errors;

mod http_limits;
mod transactions;

mod chain_storage;

pub(crate) use chain_storage::ChainStorageSettings;

/// The default directory of the local chain.
const DEFAULT_DATA_DIR: &str = "poa-data";
/// The default block time.
const DEFAULT_BLOCK_TIME: Duration = Duration::from_secs(1);
/// The default HTTP address.
const DEFAULT_HTTP: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    4000,
));
/// How far above the HTTP port the admin API listens by default: producers that share a host
/// on neighbouring HTTP ports (4001, 4002, ...) get neighbouring admin ports (4101, 4102, ...)
/// that never collide with them.
const ADMIN_PORT_OFFSET: u16 = 100;
/// The default step-down hold-off.
const DEFAULT_STEP_DOWN_HOLD_OFF: Duration = Duration::from_secs(10);
/// The longest step-down hold-off, configured or asked for: a day covers any rolling upgrade,
/// and a longer one is refused rather than capped, so a typo is not silently shortened.
pub(crate) const MAX_STEP_DOWN_HOLD_OFF: Duration = Duration::from_secs(24 * 60 * 60);

/// How far the clock may be from the Redis nodes' clocks by default: well above what NTP keeps
/// machines to, well below a block time an operator would notice.
const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(2);

/// A leader renews its lease at least this many times per lease TTL.
const LEASE_RENEWALS_PER_TTL: u32 = 3;

/// Followers add up to this fraction of the poll interval at random, so they do not poll in
/// lockstep.
const POLL_JITTER_DIVISOR: u32 = 4;
/// How often an idle or single node re-checks when no block time says otherwise.
const DEFAULT_IDLE_POLL: Duration = Duration::from_secs(1);
/// A Redis URL used only to validate leader-lock flags when no node is configured.
const VALIDATION_PROBE_URL: &str = "redis://127.0.0.1:6379";
/// The environment variable holding the Redis password (the alternative to a password file).
pub(crate) const REDIS_PASSWORD_ENV: &str = "POA_REDIS_PASSWORD";

/// A setting is unusable; the message names the flag and the fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag}: {reason}")]
pub(crate) struct InvalidSetting {
    /// The flag (or config file key) at fault.
    pub(crate) flag: &'static str,
    /// What is wrong and how to fix it.
    pub(crate) reason: String,
}

impl InvalidSetting {
    /// The `flag` at fault, with what is wrong and how to fix it.
    pub(crate) fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
        }
    }
}

/// Where the authority key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The public development key: fine for a local chain, never for a real one.
    Development,
    /// A key file.
    File(PathBuf),
}

/// The node's validated settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) trigger: Trigger,
    pub(crate) http: SocketAddr,
    pub(crate) admin_http: SocketAddr,
    pub(crate) step_down_hold_off: Duration,
    /// How far the clock may be from the Redis nodes', and a block ahead of the clock.
    pub(crate) max_clock_skew: Duration,
    pub(crate) key_source: KeySource,
    pub(crate) key: AuthorityKey,
    pub(crate) chain: ChainSpec,
    pub(crate) poll_interval: Duration,
    /// The largest random delay added to each poll.
    pub(crate) poll_jitter: Duration,
    /// `None` for a single node (no `--redis-url`).
    pub(crate) redis: Option<RedisConfig>,
    /// `None` without any `--peer`.
    pub(crate) peers: Option<PeerConfig>,
    pub(crate) release_timeout: Duration,
    /// The longest a leader goes between two cycles, so it renews its lease in time whatever
    /// the block time (a third of the lease TTL; zero for a single node, which has no lease).
    pub(crate) lease_renewal: Duration,
    /// The local chain database's settings.
    pub(crate) chain_storage: ChainStorageSettings,
    /// Bounds of the HTTP listeners.
    pub(crate) http_limits: HttpLimits,
    /// Bounds of the transaction pool.
    pub(crate) pool_limits: PoolLimits,
}

/// The Redis settings of `args` and its `--config` file alone, for the `membership` commands
/// (which need no key or data directory).
///
/// # Errors
///
/// [`InvalidSetting`] naming the flag at fault, also when no `--redis-url` is given.
pub(crate) fn resolve_redis_only(args: RunArgs) -> Result<RedisConfig, InvalidSetting> {
    let args = layered(args)?;
    resolve_redis(&args)?.ok_or_else(|| {
        InvalidSetting::new(
            "--redis-url",
            "the membership commands need the fleet's Redis nodes: give every --redis-url",
        )
    })
}

impl Settings {
    /// Reads the `--config` file if any, merges it under the flags and validates the result.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the flag at fault.
    pub(crate) fn resolve(args: RunArgs) -> Result<Self, InvalidSetting> {
        let args = layered(args)?;
        let chain_storage = chain_storage::resolve(&args)?;
        let trigger = resolve_trigger(&args)?;
        let redis = resolve_redis(&args)?;
        let peers = resolve_peers(&args)?;
        let http_limits = http_limits::resolve(&args)?;
        let pool_limits = transactions::resolve(&args)?;
        let (key_source, key) = resolve_key(args.key_file.clone())?;
        let chain = resolve_chain(args.chain_id, args.genesis_time, &key)?;
        let poll_interval = match args.poll_interval {
            Some(interval) if interval.is_zero() => {
                return Err(InvalidSetting::new(
                    "--poll-interval",
                    "must be larger than zero",
                ));
            }
            Some(interval) => interval,
            None => default_poll_interval(trigger, redis.as_ref()),
        };
        if let Some(redis) = &redis {
            validate_fleet_timing(poll_interval, redis)?;
        }
        let step_down_hold_off = args
            .step_down_hold_off
            .unwrap_or(DEFAULT_STEP_DOWN_HOLD_OFF);
        let max_clock_skew = args.max_clock_skew.unwrap_or(DEFAULT_MAX_CLOCK_SKEW);
        if max_clock_skew.is_zero() {
            return Err(InvalidSetting::new(
                "--max-clock-skew",
                "must be larger than zero",
            ));
        }
        if step_down_hold_off.is_zero() || step_down_hold_off > MAX_STEP_DOWN_HOLD_OFF {
            return Err(InvalidSetting::new(
                "--step-down-hold-off",
                "must be larger than zero and at most 24h",
            ));
        }
        let release_timeout = redis.as_ref().map_or(DEFAULT_IDLE_POLL, |redis| {
            redis.node_timeout.saturating_mul(4).max(DEFAULT_IDLE_POLL)
        });
        let lease_renewal = redis.as_ref().map_or(Duration::ZERO, |redis| {
            redis.lease_ttl / LEASE_RENEWALS_PER_TTL
        });
        let http = args.http.unwrap_or(DEFAULT_HTTP);
        let admin_http = match args.admin_http {
            Some(admin_http) => admin_http,
            None => default_admin_http(http)?,
        };
        Ok(Self {
            data_dir: args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            trigger,
            http,
            admin_http,
            step_down_hold_off,
            max_clock_skew,
            key_source,
            key,
            chain,
            poll_interval,
            poll_jitter: poll_interval / POLL_JITTER_DIVISOR,
            redis,
            peers,
            release_timeout,
            lease_renewal,
            chain_storage,
            http_limits,
            pool_limits,
        })
    }
}

/// Reads only the log format, before logging is set up, so that settings errors are logged
/// in the requested format. Falls back to text on any problem; `resolve` reports it.
pub(crate) fn log_format_hint(args: &RunArgs) -> LogFormat {
    args.log_format
        .or_else(|| {
            args.config
                .as_deref()
                .and_then(|path| read_file_settings(path).ok()?.log_format)
        })
        .unwrap_or(LogFormat::Text)
}

/// The flags (and their `POA_*` variables) over the `--config` file: a setting the command line
/// and the environment leave unset takes the file's value.
///
/// # Errors
///
/// [`InvalidSetting`] naming `--config` when the file cannot be read or does not parse.
pub(crate) fn layered(args: RunArgs) -> Result<RunArgs, InvalidSetting> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let file = read_file_settings(&path)?;
    let mut merged: RunArgs = Figment::from(Serialized::defaults(file))
        .merge(Serialized::defaults(&args))
        .extract()
        .map_err(|error| {
            InvalidSetting::new(
                "--config",
                format!(
                    "{} cannot be combined with the flags: {}",
                    path.display(),
                    error.kind
                ),
            )
        })?;
    merged.config = Some(path);
    Ok(merged)
}

/// The admin API's default address: loopback, `ADMIN_PORT_OFFSET` above the HTTP port (any free
/// port when the HTTP port is).
fn default_admin_http(http: SocketAddr) -> Result<SocketAddr, InvalidSetting> {
    let port = match http.port() {
        0 => 0,
        port => port.checked_add(ADMIN_PORT_OFFSET).ok_or_else(|| {
            InvalidSetting::new(
                "--admin-http",
                format!(
                    "has no default for --http port {port} (the default is {ADMIN_PORT_OFFSET} above it): set --admin-http"
                ),
            )
        })?,
    };
    Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
}

fn read_file_settings(path: &Path) -> Result<RunArgs, InvalidSetting> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        InvalidSetting::new(
            "--config",
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    toml::from_str(&text).map_err(|error| {
        // Where, and what is wrong, but never the offending line itself: it may be a password
        // pasted into the wrong file.
        let place = error.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        InvalidSetting::new(
            "--config",
            format!(
                "{} is not a valid settings file{place}: {}",
                path.display(),
                error.message()
            ),
        )
    })
}

fn resolve_trigger(args: &RunArgs) -> Result<Trigger, InvalidSetting> {
    match (args.block_time, args.instant, args.manual) {
        (_, true, true) => Err(InvalidSetting::new(
            "--instant",
            "cannot be combined with --manual: choose one",
        )),
        (Some(_), true, _) | (Some(_), _, true) => Err(InvalidSetting::new(
            "--block-time",
            "cannot be combined with --instant or --manual: choose one trigger",
        )),
        (Some(block_time), false, false) if block_time.is_zero() => Err(InvalidSetting::new(
            "--block-time",
            "must be larger than zero, e.g. 1s or 200ms",
        )),
        (Some(block_time), false, false) => Ok(Trigger::Interval { block_time }),
        (None, true, false) => Ok(Trigger::Instant),
        (None, false, true) => Ok(Trigger::Manual),
        (None, false, false) => Ok(Trigger::Interval {
            block_time: DEFAULT_BLOCK_TIME,
        }),
    }
}

/// The peers to fetch history from.
fn resolve_peers(args: &RunArgs) -> Result<Option<PeerConfig>, InvalidSetting> {
    if args.peers.is_empty() {
        return Ok(None);
    }
    PeerConfig::new(args.peers.clone())
        .map(Some)
        .map_err(library_errors::peer_setting)
}

/// Builds and validates the leader-lock settings. They are validated even without a node, so
/// a mistake surfaces before the first `--redis-url` is added.
fn resolve_redis(args: &RunArgs) -> Result<Option<RedisConfig>, InvalidSetting> {
    let defaults = RedisConfig::default();
    let urls = args.redis_urls.clone();
    if urls.is_empty() && !args.next_redis_urls.is_empty() {
        return Err(InvalidSetting::new(
            "--next-redis-url",
            "names the list a membership change moves to: give the current list as --redis-url too",
        ));
    }
    let config = RedisConfig {
        urls: urls.clone(),
        next_urls: args.next_redis_urls.clone(),
        lease_key: args.lease_key.clone().unwrap_or(defaults.lease_key),
        lease_ttl: args.lease_ttl.unwrap_or(defaults.lease_ttl),
        node_timeout: args.node_timeout.unwrap_or(defaults.node_timeout),
        retry_delay: args.retry_delay.unwrap_or(defaults.retry_delay),
        max_retry_delay_offset: args
            .max_retry_delay_offset
            .unwrap_or(defaults.max_retry_delay_offset),
        max_attempts: args.max_attempts.unwrap_or(defaults.max_attempts),
        stream_max_len: args.stream_max_len.unwrap_or(defaults.stream_max_len),
        quorum_disruption_budget: args
            .quorum_disruption_budget
            .unwrap_or(defaults.quorum_disruption_budget),
        // The adapter's default is twice the reference chain's largest block.
        max_entry_bytes: defaults.max_entry_bytes,
        security: resolve_redis_security(args)?,
        // Set by `run`, in the data directory, once it is known to be ours.
        epoch_file: None,
    };
    if urls.is_empty() {
        if config.quorum_disruption_budget > 0 {
            return Err(InvalidSetting::new(
                "--quorum-disruption-budget",
                "needs Redis nodes: add --redis-url, or leave the budget at 0 for a single node",
            ));
        }
        let probe = RedisConfig {
            urls: vec![VALIDATION_PROBE_URL.to_owned()],
            ..config
        };
        probe.validate().map_err(library_errors::redis_setting)?;
        return Ok(None);
    }
    config
        .clone()
        .validate()
        .map_err(library_errors::redis_setting)?;
    Ok(Some(config))
}

/// The ACL user, the password (environment or file, never a flag) and the TLS files.
fn resolve_redis_security(args: &RunArgs) -> Result<RedisSecurity, InvalidSetting> {
    let from_env = std::env::var(REDIS_PASSWORD_ENV).ok();
    let password_file = args.redis_password_file.clone();
    let password = match (from_env, password_file) {
        (Some(_), Some(_)) => {
            return Err(InvalidSetting::new(
                "--redis-password-file",
                format!("cannot be combined with {REDIS_PASSWORD_ENV}: set one of them"),
            ));
        }
        (Some(password), None) => Some(RedisPassword::new(password)),
        (None, Some(path)) => Some(read_password_file(&path)?),
        (None, None) => None,
    };
    Ok(RedisSecurity {
        username: args.redis_username.clone(),
        password,
        ca_file: args.redis_ca_file.clone(),
        client_cert: args.redis_client_cert.clone(),
        client_key: args.redis_client_key.clone(),
    })
}

/// The first line of the file, without its line ending (files written by `echo` end in one).
/// Refused when group or others may read or write it, as ssh refuses such a key: the mode of
/// the file opened, not of whatever the path named a moment before.
fn read_password_file(path: &Path) -> Result<RedisPassword, InvalidSetting> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    let unreadable = |error: std::io::Error| {
        InvalidSetting::new(
            "--redis-password-file",
            format!("cannot read {}: {error}", path.display()),
        )
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(InvalidSetting::new(
            "--redis-password-file",
            format!(
                "{} has mode {:04o}, so group or others may read or write it: restrict it to its owner with `chmod 600 {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(unreadable)?;
    let password = text.lines().next().unwrap_or_default();
    Ok(RedisPassword::new(password))
}

fn resolve_key(key_file: Option<PathBuf>) -> Result<(KeySource, AuthorityKey), InvalidSetting> {
    match key_file {
        None => Ok((KeySource::Development, AuthorityKey::dev())),
        Some(path) => {
            let key = AuthorityKey::read_from_file(&path).map_err(|error| match error {
                // Its message already says the fix.
                KeyError::OpenPermissions { .. } => {
                    InvalidSetting::new("--key-file", error.to_string())
                }
                _ => InvalidSetting::new(
                    "--key-file",
                    format!("{error} (create one with `poa-node keygen --key-file <path>`)"),
                ),
            })?;
            Ok((KeySource::File(path), key))
        }
    }
}

fn resolve_chain(
    chain_id: Option<u64>,
    genesis_time: Option<SystemTime>,
    key: &AuthorityKey,
) -> Result<ChainSpec, InvalidSetting> {
    let mut chain = ChainSpec::dev(key.public_key());
    if let Some(chain_id) = chain_id {
        chain.chain_id = ChainId::new(chain_id);
    }
    if let Some(genesis_time) = genesis_time {
        let millis = genesis_time
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|since| u64::try_from(since.as_millis()).ok())
            .ok_or_else(|| {
                InvalidSetting::new("--genesis-time", "must be after 1970-01-01T00:00:00Z")
            })?;
        chain.genesis_time = Timestamp::from_unix_millis(millis);
    }
    Ok(chain)
}

/// A follower checks about once per block, and at least four times per lease TTL so a free
/// lease is noticed well within one TTL.
/// The smallest `--stream-max-len` a fleet may run with: below it a follower that misses a few
/// seconds of blocks falls out of the streams' window and needs a peer to catch up.
const MIN_STREAM_MAX_LEN: u64 = 16;

/// Timing a fleet cannot work well with, refused with the flags and the fix.
fn validate_fleet_timing(
    poll_interval: Duration,
    redis: &RedisConfig,
) -> Result<(), InvalidSetting> {
    if poll_interval > redis.lease_ttl {
        return Err(InvalidSetting::new(
            "--poll-interval",
            format!(
                "({}) must not exceed --lease-ttl ({}): a follower notices a free lease only when it \
                 polls, so a crashed leader would be replaced that much later; lower it (the \
                 default is a quarter of the TTL)",
                humantime::format_duration(poll_interval),
                humantime::format_duration(redis.lease_ttl)
            ),
        ));
    }
    if redis.stream_max_len < MIN_STREAM_MAX_LEN {
        return Err(InvalidSetting::new(
            "--stream-max-len",
            format!(
                "({}) must be at least {MIN_STREAM_MAX_LEN}: a follower that misses more blocks than \
                 the streams keep can only catch up from a --peer",
                redis.stream_max_len
            ),
        ));
    }
    Ok(())
}

fn default_poll_interval(trigger: Trigger, redis: Option<&RedisConfig>) -> Duration {
    let per_block = match trigger {
        Trigger::Interval { block_time } => block_time,
        Trigger::Instant | Trigger::Manual => DEFAULT_IDLE_POLL,
    };
    match redis {
        Some(redis) => per_block.min(redis.lease_ttl / 4),
        None => per_block,
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
