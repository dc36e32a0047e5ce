//! The libraries' typed configuration and startup errors, told in `poa-node`'s words. A library
//! names its own fields (`lease_ttl`, `security.ca_file`) because an embedder fills them from
//! whatever it likes; an operator of this binary sets flags (`--lease-ttl`), the same keys in
//! the `--config` file (`lease-ttl`) and `POA_*` variables. Each mapping is an exhaustive `match`
//! on the variants, so a variant added to a library does not compile here until it is given its
//! flag and its fix; nothing here reads or rewrites an error's message text.

use std::path::Path;

use adapter_chain::StorageError;
use adapter_peers::PeerConfigError;
use adapter_redis::{ConfigError, SecurityFile, UrlList};
use anyhow::anyhow;
use poa_core::{ServiceError, ServiceSetting};

use crate::settings::{InvalidSetting, REDIS_PASSWORD_ENV};

/// A Redis setting the adapter refused: the flag at fault, what is wrong and the fix.
pub(crate) fn redis_setting(error: ConfigError) -> InvalidSetting {
    let password_sources = format!("{REDIS_PASSWORD_ENV} or --redis-password-file");
    let (flag, reason) = match error {
        ConfigError::NoUrls => (
            "--redis-url",
            "at least one --redis-url is required".to_owned(),
        ),
        ConfigError::UnsupportedUrl { url, list } => {
            let flag = url_list_flag(list);
            (
                flag,
                format!(
                    "{flag} {url} is not supported: use redis://host:port or rediss://host:port (tls) of a standalone node"
                ),
            )
        }
        ConfigError::InvalidUrl { url, list, reason } => {
            let flag = url_list_flag(list);
            (flag, format!("{flag} {url} is not a valid url: {reason}"))
        }
        ConfigError::UrlPartIgnored { url, list, part } => {
            let flag = url_list_flag(list);
            (
                flag,
                format!(
                    "{flag} {url} has a {part} the adapter would ignore: remove it (every node is used as redis://host:port, database 0)"
                ),
            )
        }
        ConfigError::DuplicateUrl { url, list } => {
            let flag = url_list_flag(list);
            (
                flag,
                format!(
                    "{flag} {url} is given twice: list every node once, or quorums would count it twice"
                ),
            )
        }
        ConfigError::PasswordInUrl { url, list } => {
            let flag = url_list_flag(list);
            (
                flag,
                format!(
                    "{flag} {url} embeds a password: remove it and set {password_sources} instead (a password in a url shows in process lists and logs)"
                ),
            )
        }
        ConfigError::EmptyUsername => (
            "--redis-username",
            "--redis-username must not be empty".to_owned(),
        ),
        ConfigError::ConflictingUsername { username } => (
            "--redis-username",
            format!(
                "--redis-username {username} differs from the user named in a --redis-url: name the user once, without a password in the url"
            ),
        ),
        ConfigError::ConflictingUrlUsernames {
            first,
            first_list,
            first_user,
            second,
            second_list,
            second_user,
        } => (
            url_list_flag(second_list),
            format!(
                "{} {first} names user {first_user} and {} {second} names user {second_user}: every node uses one user, set it with --redis-username",
                url_list_flag(first_list),
                url_list_flag(second_list)
            ),
        ),
        ConfigError::UsernameWithoutPassword => (
            "--redis-username",
            format!("--redis-username needs a password: set {password_sources}"),
        ),
        ConfigError::EmptyPassword => (
            "--redis-password-file",
            format!("--redis-password-file (or {REDIS_PASSWORD_ENV}) gives an empty password"),
        ),
        ConfigError::TlsFileWithoutTls { file } => {
            let flag = security_file_flag(file);
            (
                flag,
                format!("{flag} needs at least one rediss:// --redis-url"),
            )
        }
        ConfigError::IncompleteClientIdentity => (
            "--redis-client-cert",
            "--redis-client-cert and --redis-client-key must be given together".to_owned(),
        ),
        ConfigError::EmptyLeaseKey => ("--lease-key", "--lease-key must not be empty".to_owned()),
        ConfigError::ZeroLeaseTtl => zero_duration("--lease-ttl"),
        ConfigError::ZeroNodeTimeout => zero_duration("--node-timeout"),
        ConfigError::ZeroRetryDelay => zero_duration("--retry-delay"),
        ConfigError::LeaseTtlNotAboveNodeTimeout {
            lease_ttl,
            node_timeout,
        } => (
            "--lease-ttl",
            format!(
                "--lease-ttl ({lease_ttl:?}) must be larger than --node-timeout ({node_timeout:?}): raise the ttl or lower the timeout"
            ),
        ),
        ConfigError::ZeroMaxAttempts => (
            "--max-attempts",
            "--max-attempts must be at least 1".to_owned(),
        ),
        ConfigError::StreamMaxLenTooSmall {
            stream_max_len,
            min,
        } => (
            "--stream-max-len",
            format!("--stream-max-len {stream_max_len} must be at least {min}"),
        ),
        ConfigError::AcquisitionOutlastsLease {
            max_attempts,
            retry_delay,
            max_retry_delay_offset,
            node_timeout,
            lease_ttl,
        } => (
            "--max-attempts",
            format!(
                "--max-attempts {max_attempts} x (--retry-delay {retry_delay:?} + --max-retry-delay-offset {max_retry_delay_offset:?} + --node-timeout {node_timeout:?}) must stay below --lease-ttl ({lease_ttl:?}): lower the attempts or the delays, or raise the ttl"
            ),
        ),
        ConfigError::BudgetTooLarge {
            budget,
            nodes,
            max_budget,
        } => (
            "--quorum-disruption-budget",
            format!(
                "--quorum-disruption-budget {budget} needs more than the {nodes} configured nodes: use at most {max_budget} or add nodes"
            ),
        ),
    };
    InvalidSetting::new(flag, reason)
}

/// The flag that gives a node list.
fn url_list_flag(list: UrlList) -> &'static str {
    match list {
        UrlList::Urls => "--redis-url",
        UrlList::NextUrls => "--next-redis-url",
    }
}

/// A service setting the production service refused. The binary validates its flags first, so
/// this names the flag each setting comes from for an error that slipped past them.
pub(crate) fn service_setting(error: ServiceError) -> anyhow::Error {
    match error {
        ServiceError::ZeroDuration { setting } => {
            let flag = match setting {
                ServiceSetting::BlockTime => "--block-time",
                ServiceSetting::RetryPeriod => "--poll-interval",
                // Four node timeouts, at least the idle poll.
                ServiceSetting::ReleaseTimeout => "--node-timeout",
            };
            InvalidSetting::new(flag, "must be greater than zero").into()
        }
        error @ ServiceError::Stopped => error.into(),
    }
}

/// A peer setting the adapter refused. Its messages name no flag, only the URL or bound.
pub(crate) fn peer_setting(error: PeerConfigError) -> InvalidSetting {
    match error {
        PeerConfigError::InvalidUrl { .. }
        | PeerConfigError::Duplicate { .. }
        | PeerConfigError::Zero { .. } => InvalidSetting::new("--peer", error.to_string()),
    }
}

/// Why the Redis adapter did not start, naming the flag where a setting is at fault. The
/// caller adds what was being started.
pub(crate) fn redis_startup(error: adapter_redis::Error) -> anyhow::Error {
    match error {
        adapter_redis::Error::Config(config) => redis_setting(config).into(),
        adapter_redis::Error::TlsFile { file, path, reason } => anyhow!(
            "cannot use {} {}: {reason}",
            security_file_flag(file),
            path.display()
        ),
        adapter_redis::Error::SameServerTwice {
            first,
            first_list,
            second,
            second_list,
            run_id,
        } => anyhow!(
            "{} {first} and {} {second} reach the same redis server (run_id {run_id}): list every server once",
            url_list_flag(first_list),
            url_list_flag(second_list)
        ),
        error @ (adapter_redis::Error::Client { .. }
        | adapter_redis::Error::Membership { .. }
        | adapter_redis::Error::TlsSetup { .. }
        | adapter_redis::Error::EpochFile { .. }
        | adapter_redis::Error::NoRuntime) => error.into(),
    }
}

/// Why the local chain in `data_dir` did not open: the error, under a context naming
/// `--data-dir`, and for a directory of another chain the flags that tell chains apart.
pub(crate) fn chain_open(error: StorageError, data_dir: &Path) -> anyhow::Error {
    let context = format!(
        "cannot open the local chain in --data-dir {}",
        data_dir.display()
    );
    let context = match &error {
        StorageError::ForeignChain { .. } => format!(
            "{context} (start this node with the --chain-id, --key-file and --genesis-time its data directory was created with, or give it its own --data-dir)"
        ),
        StorageError::Open { .. }
        | StorageError::DataDirNotADirectory { .. }
        | StorageError::NotARegularFile { .. }
        | StorageError::EmptyFile { .. }
        | StorageError::NotADatabase { .. }
        | StorageError::InUse { .. }
        | StorageError::UnsupportedSchema { .. }
        | StorageError::Inconsistent { .. }
        | StorageError::UndecodableBlock { .. }
        | StorageError::Io { .. }
        | StorageError::Reopening { .. }
        | StorageError::Failed { .. }
        | StorageError::Detached { .. }
        | StorageError::DamagedBlock { .. }
        | StorageError::Corrupted { .. }
        | StorageError::Database(_)
        | StorageError::TaskFailed(_) => context,
    };
    anyhow::Error::new(error).context(context)
}

/// The flag of one of the Redis TLS files.
fn security_file_flag(file: SecurityFile) -> &'static str {
    match file {
        SecurityFile::CaFile => "--redis-ca-file",
        SecurityFile::ClientCert => "--redis-client-cert",
        SecurityFile::ClientKey => "--redis-client-key",
    }
}

fn zero_duration(flag: &'static str) -> (&'static str, String) {
    (flag, format!("{flag} must be larger than zero"))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
