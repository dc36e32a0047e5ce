//! Errors of this crate: configuration errors (each naming the [`crate::RedisConfig`] field to
//! fix, never a flag of a binary that fills it), the construction error, and the adapter's
//! internal errors with their mapping into the port's [`ReconciliationError`] at the port
//! boundary.

use std::fmt;
use std::time::Duration;

use poa_ports::{BlockHeight, BlockId, ReconciliationError};

/// A setting of [`crate::RedisConfig`] is unusable. Each message names the field and the fix;
/// a binary that fills the fields from its own flags maps the variant to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No node configured.
    #[error("urls is empty: configure at least one redis node")]
    NoUrls,
    /// A URL that is not a `redis://` or `rediss://` URL of a standalone node.
    #[error(
        "url {url} in {list} is not supported: use redis://host:port or rediss://host:port (tls) of a standalone node"
    )]
    UnsupportedUrl {
        /// The URL without credentials.
        url: String,
        /// The list it was given in.
        list: UrlList,
    },
    /// A URL that does not parse.
    #[error("url {url} in {list} is not a valid url: {reason}")]
    InvalidUrl {
        /// The URL without credentials.
        url: String,
        /// The list it was given in.
        list: UrlList,
        /// What the parser reported.
        reason: String,
    },
    /// A URL part the adapter would ignore: a database path, a query or a fragment.
    #[error(
        "url {url} in {list} has a {part} the adapter would ignore: remove it (every node is used as redis://host:port, database 0)"
    )]
    UrlPartIgnored {
        /// The URL without credentials, query or fragment.
        url: String,
        /// The list it was given in.
        list: UrlList,
        /// `path`, `query` or `fragment`.
        part: &'static str,
    },
    /// One node listed twice: it would count twice toward every quorum.
    #[error(
        "url {url} is listed twice in {list}: list every node once, or quorums would count it twice"
    )]
    DuplicateUrl {
        /// The URL without credentials.
        url: String,
        /// The list that names it twice.
        list: UrlList,
    },
    /// A URL carries a password, which would show in process lists, shell histories and logs.
    #[error(
        "url {url} in {list} embeds a password: remove it and set security.password instead (a password in a url shows in process lists and logs)"
    )]
    PasswordInUrl {
        /// The URL without credentials.
        url: String,
        /// The list it was given in.
        list: UrlList,
    },
    /// The ACL user name is empty.
    #[error("security.username must not be empty")]
    EmptyUsername,
    /// `security.username` and a URL name different users. The URL's user is not repeated:
    /// it is sometimes a password typed where the user goes.
    #[error(
        "security.username {username} differs from the user named in a url: name the user once, without a password in the url"
    )]
    ConflictingUsername {
        /// The user of `security.username`.
        username: String,
    },
    /// Two URLs name different users.
    #[error(
        "{first_list} {first} names user {first_user} and {second_list} {second} names user {second_user}: every node uses one user, set it once in security.username"
    )]
    ConflictingUrlUsernames {
        /// The first URL that names a user, without credentials.
        first: String,
        /// The list `first` is given in.
        first_list: UrlList,
        /// The user `first` names.
        first_user: String,
        /// The first URL that names another user, without credentials.
        second: String,
        /// The list `second` is given in.
        second_list: UrlList,
        /// The user `second` names.
        second_user: String,
    },
    /// A user is named but no password is given.
    #[error(
        "a user is named (security.username or a url) but security.password is not set: set the user's password"
    )]
    UsernameWithoutPassword,
    /// The password is empty.
    #[error("security.password is empty: set the user's password")]
    EmptyPassword,
    /// A TLS file is given but no node uses TLS.
    #[error("{file} needs at least one rediss:// url: remove it or use tls")]
    TlsFileWithoutTls {
        /// The field of the TLS file.
        file: SecurityFile,
    },
    /// Only half of the client identity is given.
    #[error("security.client_cert and security.client_key must be set together")]
    IncompleteClientIdentity,
    /// The key prefix is empty.
    #[error("lease_key must not be empty")]
    EmptyLeaseKey,
    /// The lease would never be granted for any time.
    #[error("lease_ttl must be larger than zero")]
    ZeroLeaseTtl,
    /// No node call could ever finish.
    #[error("node_timeout must be larger than zero")]
    ZeroNodeTimeout,
    /// Acquisition attempts would follow each other without a pause.
    #[error("retry_delay must be larger than zero")]
    ZeroRetryDelay,
    /// The lease would expire before one node call is allowed to finish.
    #[error(
        "lease_ttl ({lease_ttl:?}) must be larger than node_timeout ({node_timeout:?}): raise lease_ttl or lower node_timeout"
    )]
    LeaseTtlNotAboveNodeTimeout {
        /// The configured TTL.
        lease_ttl: Duration,
        /// The configured node timeout.
        node_timeout: Duration,
    },
    /// No acquisition attempt would ever be made.
    #[error("max_attempts must be at least 1")]
    ZeroMaxAttempts,
    /// Streams would keep fewer entries than a block whose local commit is still running needs
    /// ([`crate::MIN_STREAM_MAX_LEN`]).
    #[error(
        "stream_max_len {stream_max_len} is below {min}: the streams alone hold a block whose local commit runs while the next block is stored"
    )]
    StreamMaxLenTooSmall {
        /// The configured value.
        stream_max_len: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// An acquisition's retries could outlast the lease, so a candidate would still be trying
    /// when the lease it contends for has long changed hands.
    #[error(
        "max_attempts {max_attempts} x (retry_delay {retry_delay:?} + max_retry_delay_offset {max_retry_delay_offset:?} + node_timeout {node_timeout:?}) must stay below lease_ttl ({lease_ttl:?}): lower max_attempts or the delays, or raise lease_ttl"
    )]
    AcquisitionOutlastsLease {
        /// The configured attempts.
        max_attempts: u32,
        /// The configured retry delay.
        retry_delay: Duration,
        /// The configured jitter.
        max_retry_delay_offset: Duration,
        /// The configured node timeout.
        node_timeout: Duration,
        /// The configured TTL.
        lease_ttl: Duration,
    },
    /// The quorum would need more nodes than configured.
    #[error(
        "quorum_disruption_budget {budget} needs more than the {nodes} configured nodes: use at most {max_budget} or add nodes"
    )]
    BudgetTooLarge {
        /// The configured budget.
        budget: usize,
        /// The configured number of nodes.
        nodes: usize,
        /// The largest budget these nodes allow.
        max_budget: usize,
    },
}

/// One of the node lists of [`crate::RedisConfig`], named by its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlList {
    /// `urls`: the nodes of the fleet.
    Urls,
    /// `next_urls`: the nodes a membership change moves the fleet to.
    NextUrls,
}

impl fmt::Display for UrlList {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Urls => "urls",
            Self::NextUrls => "next_urls",
        })
    }
}

/// One of the TLS files of [`crate::RedisSecurity`], named by its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityFile {
    /// `security.ca_file`: the certificate authorities to trust.
    CaFile,
    /// `security.client_cert`: the client certificate chain.
    ClientCert,
    /// `security.client_key`: the client certificate's private key.
    ClientKey,
}

impl fmt::Display for SecurityFile {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::CaFile => "security.ca_file",
            Self::ClientCert => "security.client_cert",
            Self::ClientKey => "security.client_key",
        })
    }
}

/// The adapter could not be constructed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid redis configuration")]
    Config(#[from] ConfigError),
    /// The client for a node could not be built (an unparsable URL).
    #[error("cannot build a client for {node}")]
    Client {
        /// The node's URL without credentials.
        node: String,
        /// What the client reported.
        #[source]
        source: fred::error::Error,
    },
    /// A TLS file could not be read or holds no usable certificate or key.
    #[error("cannot use {file} {path}: {reason}")]
    TlsFile {
        /// The field naming the file.
        file: SecurityFile,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS library refused its own default protocol versions (a build without any
    /// usable version), so no `rediss://` node can be reached.
    #[error("cannot set up tls for rediss:// urls")]
    TlsSetup {
        /// What the TLS library reported.
        #[source]
        source: rustls::Error,
    },
    /// The epoch file cannot be read or does not hold an epoch.
    #[error("cannot use the epoch file {path}: {reason}")]
    EpochFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it, and the fix.
        reason: String,
    },
    /// Construction was attempted outside a tokio runtime.
    #[error("no tokio runtime: the adapter must be constructed inside one")]
    NoRuntime,
    /// An operator's membership command refused to write: what the nodes hold and the fix.
    #[error("membership not written: {reason}")]
    Membership {
        /// What the nodes hold, and what to do.
        reason: String,
    },
    /// Two URLs reach the same Redis server (another spelling of one host, an alias): it
    /// would count twice toward every quorum.
    #[error(
        "{first_list} {first} and {second_list} {second} reach the same redis server (run_id {run_id}): list every server once"
    )]
    SameServerTwice {
        /// The first URL, without credentials.
        first: String,
        /// The list `first` is given in.
        first_list: UrlList,
        /// The second URL, without credentials.
        second: String,
        /// The list `second` is given in.
        second_list: UrlList,
        /// The server's `run_id`.
        run_id: String,
    },
}

/// Why an adapter operation failed, before it is mapped into the port's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AdapterError {
    /// Publishing needs a fencing epoch.
    #[error("no fencing epoch held")]
    NoEpoch,
    /// Fewer nodes than a quorum acknowledged.
    #[error("{operation} reached {acked} of {needed} nodes")]
    NoQuorum {
        operation: &'static str,
        acked: usize,
        needed: usize,
    },
    /// A node fenced a write.
    #[error("fenced: {reason}")]
    Fenced { reason: String },
    /// A quorum holds another block at the height.
    #[error("height {height} holds another block on a quorum")]
    HeightTaken { height: BlockHeight },
    /// A quorum refused this process the operation (authentication, ACL).
    #[error("{operation} refused by a quorum for this process's credentials or permissions")]
    Denied { operation: &'static str },
    /// A backlog could not be brought to a quorum.
    #[error("backlog at height {height} is unresolved: {reason}")]
    UnresolvedBacklog { height: BlockHeight, reason: String },
    /// The block committed at the next height is not in the log (trimmed, or lost), though
    /// blocks above it are: it must come from a peer.
    #[error("the streams no longer hold height {next_height}")]
    HistoryGap { next_height: BlockHeight },
    /// The log's block at this height does not extend the local chain.
    #[error("the log's block {block} at height {height} does not extend the local chain")]
    Diverged { height: BlockHeight, block: BlockId },
    /// Two blocks at this height are each extended by a verified block above.
    #[error("the log holds two extended blocks at height {height}")]
    ConflictingHistory { height: BlockHeight },
    /// A quorum of nodes holds nothing as high as the local head.
    #[error("the log reaches {log_top:?}, below the local head at {head}")]
    LogBehindHead {
        head: BlockHeight,
        log_top: Option<BlockHeight>,
    },
    /// Too many nodes hold something other than a block of this chain at the next height.
    #[error("height {height} is blocked: {detail}")]
    HeightBlocked { height: BlockHeight, detail: String },
    /// A produced block is larger than the log carries: no reader would ever see it.
    #[error(
        "the block at height {height} encodes to {bytes} bytes, more than max_entry_bytes ({max}): raise max_entry_bytes to the largest block the chain produces"
    )]
    BlockTooLarge {
        height: BlockHeight,
        bytes: u64,
        max: u64,
    },
}

impl From<AdapterError> for ReconciliationError {
    fn from(error: AdapterError) -> Self {
        match error {
            AdapterError::NoEpoch => Self::NoEpoch,
            AdapterError::NoQuorum {
                operation,
                acked,
                needed,
            } => Self::NoQuorum {
                operation,
                acked,
                needed,
            },
            AdapterError::Fenced { reason } => Self::Fenced { reason },
            AdapterError::HeightTaken { height } => Self::HeightTaken { height },
            AdapterError::Denied { operation } => Self::Denied { operation },
            AdapterError::UnresolvedBacklog { height, reason } => {
                Self::UnresolvedBacklog { height, reason }
            }
            AdapterError::HistoryGap { next_height } => Self::HistoryGap { next_height },
            AdapterError::Diverged { height, block } => Self::Diverged { height, block },
            AdapterError::ConflictingHistory { height } => Self::ConflictingHistory { height },
            AdapterError::HeightBlocked { height, detail } => {
                Self::HeightBlocked { height, detail }
            }
            AdapterError::LogBehindHead { head, log_top } => Self::LogBehindHead { head, log_top },
            too_large @ AdapterError::BlockTooLarge { .. } => Self::Backend(Box::new(too_large)),
        }
    }
}
