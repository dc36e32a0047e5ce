//! The adapter's configuration: the operator-facing [`RedisConfig`] and its validation into a
//! [`ValidatedConfig`] whose derived values (quorum, drift, key names, retention) are computed
//! once, and [`RedisSecurity`], how every node connection authenticates and encrypts. Owns no
//! I/O (certificate files are read when the clients are built); validation errors name the
//! field to fix. A password never appears in a URL, a `Debug` output or a message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConfigError, SecurityFile, UrlList};
use poa_quorum::{self as quorum, Quorum};

/// The default bound on an entry's data: twice the reference chain's largest block (1 MiB of
/// transactions and their framing).
const DEFAULT_MAX_ENTRY_BYTES: u64 = 2 * 1024 * 1024;

/// The fewest entries a stream may keep. A leader publishes the next block while the commit of
/// the one below it runs, and until a local chain holds that block only the streams do: a
/// stream that kept one entry would drop it once the next block is stored, and a crash of the
/// leader would then lose a block that reached a quorum.
pub const MIN_STREAM_MAX_LEN: u64 = 2;

/// How many extra heights the heights index keeps on top of twice the stream length, so a
/// height still in the stream (trimmed approximately with `~`) is always still in the index.
const INDEX_RETENTION_MARGIN: u64 = 256;

/// Configuration of the Redis reconciliation adapter (`poa-node` fills each field from the flag
/// named in its documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One URL per independent Redis node (`--redis-url`, repeatable).
    pub urls: Vec<String>,
    /// During a membership change without downtime, the node list the fleet moves to
    /// (`--next-redis-url`, repeatable; empty otherwise). The process then talks to every node
    /// of both lists and joins only the joint record, whose quorums are quorums of `urls` and
    /// of these (docs/operations.md 7.14).
    pub next_urls: Vec<String>,
    /// Prefix of every key on every node (`--lease-key`), e.g. `poa:leader:lock`.
    pub lease_key: String,
    /// How long a lease grant or renewal lasts on a node (`--lease-ttl`).
    pub lease_ttl: Duration,
    /// Bound on connecting to a node and on each command sent to it (`--node-timeout`).
    pub node_timeout: Duration,
    /// Base delay between lease acquisition attempts (`--retry-delay`).
    pub retry_delay: Duration,
    /// Upper bound of the uniform jitter added to `retry_delay` (`--max-retry-delay-offset`).
    pub max_retry_delay_offset: Duration,
    /// Acquisition attempts per production cycle (`--max-attempts`).
    pub max_attempts: u32,
    /// Approximate length each node's block stream is trimmed to; also the most entries read
    /// per node and blocks reconciled per cycle (`--stream-max-len`).
    pub stream_max_len: u64,
    /// Extra nodes every quorum needs on top of a bare majority (`--quorum-disruption-budget`).
    pub quorum_disruption_budget: usize,
    /// The largest encoded block the log carries, in bytes: a read never carries an entry's
    /// data beyond it (an entry that large is garbage, counted and skipped, and cannot make
    /// every read slow), and a publish of a larger block is refused. Set it at least to the
    /// largest block the chain can produce; the default (2 MiB) is twice the reference
    /// chain's largest.
    pub max_entry_bytes: u64,
    /// ACL credentials and TLS files, the same for every node.
    pub security: RedisSecurity,
    /// Where this process keeps the highest fencing epoch it has seen, so that a restart
    /// never leads with an epoch already used, even after the Redis nodes were restored from
    /// old snapshots (`poa-node` keeps it in its data directory). `None` keeps it in memory
    /// only: a restarted process then trusts the nodes' counters alone.
    pub epoch_file: Option<PathBuf>,
}

/// How every node connection authenticates (ACL user and password) and, for `rediss://` URLs,
/// which certificates it trusts and presents. The same for every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisSecurity {
    /// ACL user (`--redis-username`); `None` takes the user named in the URL, else `default`.
    pub username: Option<String>,
    /// The user's password (`POA_REDIS_PASSWORD` or `--redis-password-file`). Never part of a
    /// URL: it would show in process lists, shell histories and logs.
    pub password: Option<RedisPassword>,
    /// PEM bundle of the certificate authorities to trust for `rediss://` nodes
    /// (`--redis-ca-file`); `None` trusts the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (`--redis-client-cert`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`--redis-client-key`).
    pub client_key: Option<PathBuf>,
}

/// A Redis password. Its `Debug` form is redacted, so it cannot leak through a logged config.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(String);

impl RedisPassword {
    /// Wraps a password read from the environment or a file.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the `AUTH`/`HELLO` handshake only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisPassword {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RedisPassword(<redacted>)")
    }
}

impl Default for RedisConfig {
    /// fuel-core's CLI defaults, with a 3 s TTL as its design document recommends.
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            next_urls: Vec::new(),
            lease_key: "poa:leader:lock".to_owned(),
            lease_ttl: Duration::from_secs(3),
            node_timeout: Duration::from_millis(100),
            retry_delay: Duration::from_millis(200),
            max_retry_delay_offset: Duration::from_millis(100),
            max_attempts: 3,
            stream_max_len: 1000,
            quorum_disruption_budget: 0,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            security: RedisSecurity::default(),
            epoch_file: None,
        }
    }
}

/// Names of the keys every node holds, derived from the lease key (`docs/protocol.md`, "Keys on
/// every node"): what the adapter passes as the scripts' `KEYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The lease: the owner token, with a TTL.
    pub lease: String,
    /// The fencing epoch counter.
    pub epoch: String,
    /// The block stream.
    pub stream: String,
    /// The heights index (sorted set, score = height).
    pub index: String,
    /// The highest height ever trimmed from the index: writes at or below it are refused.
    pub trim_floor: String,
    /// This server's identity, written once.
    pub server_id: String,
    /// The membership record (a hash: generation, digest, members, size, budget).
    pub membership: String,
}

impl Keys {
    fn derive(lease_key: &str) -> Self {
        Self {
            lease: lease_key.to_owned(),
            epoch: format!("{lease_key}:epoch:token"),
            stream: format!("{lease_key}:block:stream"),
            index: format!("{lease_key}:heights:index"),
            trim_floor: format!("{lease_key}:heights:floor"),
            server_id: format!("{lease_key}:server_id"),
            membership: format!("{lease_key}:membership"),
        }
    }
}

/// A configuration that passed validation, with its derived values.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// Every node this process talks to: `urls`, then those of `next_urls` not among them.
    pub(crate) urls: Vec<String>,
    /// During a membership change, which of `urls` are the old list and which the new one.
    pub(crate) change: Option<ChangeLists>,
    pub(crate) keys: Keys,
    pub(crate) lease_ttl: Duration,
    pub(crate) node_timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) max_retry_delay_offset: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) stream_max_len: u64,
    pub(crate) index_retention: u64,
    pub(crate) max_entry_bytes: u64,
    pub(crate) quorum: Quorum,
    /// The disruption budget the quorum carries (part of the membership record).
    pub(crate) budget: usize,
    pub(crate) drift: Duration,
    pub(crate) security: RedisSecurity,
    pub(crate) epoch_file: Option<PathBuf>,
}

/// The two node lists of a membership change, as positions in the validated `urls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangeLists {
    /// The list the fleet leaves (`--redis-url`).
    pub(crate) old: Vec<usize>,
    /// The list the fleet moves to (`--next-redis-url`).
    pub(crate) new: Vec<usize>,
}

impl ValidatedConfig {
    /// The list node `index` of the validated urls is given in (a node named in both lists
    /// counts as one of `urls`).
    pub(crate) fn list_of(&self, index: usize) -> UrlList {
        match &self.change {
            Some(change) if !change.old.contains(&index) => UrlList::NextUrls,
            _ => UrlList::Urls,
        }
    }

    /// The number of nodes and the quorum size derived from the configuration.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// The clock drift allowance subtracted from every lease validity (`ttl / 100 + 2 ms`).
    pub fn drift(&self) -> Duration {
        self.drift
    }

    /// The names of the keys every node holds under this configuration's lease key.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// How many heights the heights index keeps (`write_block`'s argument): twice the stream's
    /// length plus a margin, so a height leaves the index well after its entry left the stream.
    pub fn index_retention(&self) -> u64 {
        self.index_retention
    }
}

impl RedisConfig {
    /// Checks every setting and computes the derived values once.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the offending field and how to fix it.
    pub fn validate(self) -> Result<ValidatedConfig, ConfigError> {
        if self.urls.is_empty() {
            return Err(ConfigError::NoUrls);
        }
        if let Some((list, url)) = self
            .listed_urls()
            .find(|(_, url)| !is_supported_scheme(url))
        {
            return Err(ConfigError::UnsupportedUrl {
                url: redact_url(url),
                list,
            });
        }
        // One set of credentials serves both lists of a membership change: checked over both.
        validate_security(self.listed_urls(), &self.security)?;
        // The same node listed twice would vote twice: one real node could then make a quorum.
        // Spellings the parser can tell apart are caught here; aliases (localhost and
        // 127.0.0.1, another DNS name) are caught at connection by the server's run_id.
        let mut seen = std::collections::HashMap::new();
        for (position, url) in self.urls.iter().enumerate() {
            if seen
                .insert(node_address(url, UrlList::Urls)?, position)
                .is_some()
            {
                return Err(ConfigError::DuplicateUrl {
                    url: redact_url(url),
                    list: UrlList::Urls,
                });
            }
        }
        let (urls, change) = self.union_with_next(seen)?;
        if self.lease_key.trim().is_empty() {
            return Err(ConfigError::EmptyLeaseKey);
        }
        for (value, error) in [
            (self.lease_ttl, ConfigError::ZeroLeaseTtl),
            (self.node_timeout, ConfigError::ZeroNodeTimeout),
            (self.retry_delay, ConfigError::ZeroRetryDelay),
        ] {
            if value.is_zero() {
                return Err(error);
            }
        }
        if self.lease_ttl <= self.node_timeout {
            return Err(ConfigError::LeaseTtlNotAboveNodeTimeout {
                lease_ttl: self.lease_ttl,
                node_timeout: self.node_timeout,
            });
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        let acquisition = self
            .retry_delay
            .saturating_add(self.max_retry_delay_offset)
            .saturating_add(self.node_timeout)
            .saturating_mul(self.max_attempts);
        if acquisition >= self.lease_ttl {
            return Err(ConfigError::AcquisitionOutlastsLease {
                max_attempts: self.max_attempts,
                retry_delay: self.retry_delay,
                max_retry_delay_offset: self.max_retry_delay_offset,
                node_timeout: self.node_timeout,
                lease_ttl: self.lease_ttl,
            });
        }
        if self.stream_max_len < MIN_STREAM_MAX_LEN {
            return Err(ConfigError::StreamMaxLenTooSmall {
                stream_max_len: self.stream_max_len,
                min: MIN_STREAM_MAX_LEN,
            });
        }
        let mut lists = vec![self.urls.len()];
        lists.extend(change.as_ref().map(|lists| lists.new.len()));
        for nodes in lists {
            let majority = quorum::majority(nodes);
            if majority.saturating_add(self.quorum_disruption_budget) > nodes {
                return Err(ConfigError::BudgetTooLarge {
                    budget: self.quorum_disruption_budget,
                    nodes,
                    max_budget: nodes.saturating_sub(majority),
                });
            }
        }
        let quorum = match &change {
            None => Quorum::new(self.urls.len(), self.quorum_disruption_budget),
            Some(lists) => Quorum::joint(
                lists.old.len(),
                lists.new.len(),
                lists
                    .new
                    .iter()
                    .filter(|position| **position < lists.old.len())
                    .count(),
                self.quorum_disruption_budget,
            ),
        };
        Ok(ValidatedConfig {
            keys: Keys::derive(&self.lease_key),
            drift: quorum::drift(self.lease_ttl),
            index_retention: self
                .stream_max_len
                .saturating_mul(2)
                .saturating_add(INDEX_RETENTION_MARGIN),
            max_entry_bytes: self.max_entry_bytes,
            urls,
            change,
            lease_ttl: self.lease_ttl,
            node_timeout: self.node_timeout,
            retry_delay: self.retry_delay,
            max_retry_delay_offset: self.max_retry_delay_offset,
            max_attempts: self.max_attempts,
            stream_max_len: self.stream_max_len,
            quorum,
            budget: self.quorum_disruption_budget,
            security: self.security,
            epoch_file: self.epoch_file,
        })
    }
}

impl RedisConfig {
    /// Every URL of both lists, with the list it is given in.
    fn listed_urls(&self) -> impl Iterator<Item = (UrlList, &String)> + Clone {
        let current = self.urls.iter().map(|url| (UrlList::Urls, url));
        let next = self.next_urls.iter().map(|url| (UrlList::NextUrls, url));
        current.chain(next)
    }

    /// Every node of `urls` and `next_urls` (those of `next_urls` that `urls` does not name
    /// appended), and the two lists as positions in it; `seen` maps each address of `urls` to
    /// its position.
    fn union_with_next(
        &self,
        mut seen: std::collections::HashMap<String, usize>,
    ) -> Result<(Vec<String>, Option<ChangeLists>), ConfigError> {
        if self.next_urls.is_empty() {
            return Ok((self.urls.clone(), None));
        }
        let mut urls = self.urls.clone();
        let mut new = Vec::with_capacity(self.next_urls.len());
        for url in &self.next_urls {
            let address = node_address(url, UrlList::NextUrls)?;
            let position = match seen.get(&address) {
                Some(position) => *position,
                None => {
                    urls.push(url.clone());
                    let position = urls.len().saturating_sub(1);
                    seen.insert(address, position);
                    position
                }
            };
            if new.contains(&position) {
                return Err(ConfigError::DuplicateUrl {
                    url: redact_url(url),
                    list: UrlList::NextUrls,
                });
            }
            new.push(position);
        }
        let change = ChangeLists {
            old: (0..self.urls.len()).collect(),
            new,
        };
        Ok((urls, Some(change)))
    }
}

/// The node a URL names, as `host:port` with the host in one canonical spelling, after
/// refusing the parts the adapter would silently ignore (a database path, a query, a fragment).
/// `list` is where the URL was given, for the error.
fn node_address(url: &str, list: UrlList) -> Result<String, ConfigError> {
    let redacted = || redact_url(url);
    let parsed = url::Url::parse(url).map_err(|error| ConfigError::InvalidUrl {
        url: redacted(),
        list,
        reason: error.to_string(),
    })?;
    for (part, present) in [
        ("path", !matches!(parsed.path(), "" | "/")),
        ("query", parsed.query().is_some()),
        ("fragment", parsed.fragment().is_some()),
    ] {
        if present {
            return Err(ConfigError::UrlPartIgnored {
                url: redacted(),
                list,
                part,
            });
        }
    }
    let host = match parsed.host() {
        Some(url::Host::Ipv6(address)) => address
            .to_ipv4_mapped()
            .map_or_else(|| address.to_string(), |v4| v4.to_string()),
        Some(host) => host.to_string().to_ascii_lowercase(),
        None => {
            return Err(ConfigError::InvalidUrl {
                url: redacted(),
                list,
                reason: "no host".to_owned(),
            });
        }
    };
    Ok(format!(
        "{host}:{}",
        parsed.port().unwrap_or(DEFAULT_REDIS_PORT)
    ))
}

/// The port of a URL that names none.
const DEFAULT_REDIS_PORT: u16 = 6379;

fn is_supported_scheme(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// Credentials only from the environment or a file, and TLS files only where TLS is used.
fn validate_security<'a>(
    mut urls: impl Iterator<Item = (UrlList, &'a String)> + Clone,
    security: &RedisSecurity,
) -> Result<(), ConfigError> {
    // Every user a url names, with the first url that names it.
    let mut url_users: Vec<(&str, UrlList, &String)> = Vec::new();
    for (list, url) in urls.clone() {
        let userinfo = url_userinfo(url);
        if userinfo.is_some_and(|userinfo| userinfo.contains(':')) {
            return Err(ConfigError::PasswordInUrl {
                url: redact_url(url),
                list,
            });
        }
        if let Some(user) = userinfo.filter(|user| !user.is_empty())
            && !url_users.iter().any(|(named, _, _)| *named == user)
        {
            url_users.push((user, list, url));
        }
    }
    if let Some(username) = &security.username {
        if username.is_empty() {
            return Err(ConfigError::EmptyUsername);
        }
        if url_users.iter().any(|(user, _, _)| user != username) {
            return Err(ConfigError::ConflictingUsername {
                username: username.clone(),
            });
        }
    } else if let [
        (first_user, first_list, first),
        (second_user, second_list, second),
        ..,
    ] = url_users[..]
    {
        return Err(ConfigError::ConflictingUrlUsernames {
            first: redact_url(first),
            first_list,
            first_user: first_user.to_owned(),
            second: redact_url(second),
            second_list,
            second_user: second_user.to_owned(),
        });
    }
    let has_user = security.username.is_some() || !url_users.is_empty();
    if has_user && security.password.is_none() {
        return Err(ConfigError::UsernameWithoutPassword);
    }
    if security
        .password
        .as_ref()
        .is_some_and(|password| password.expose().is_empty())
    {
        return Err(ConfigError::EmptyPassword);
    }
    let uses_tls = urls.any(|(_, url)| url.starts_with("rediss://"));
    for (file, path) in [
        (SecurityFile::CaFile, &security.ca_file),
        (SecurityFile::ClientCert, &security.client_cert),
        (SecurityFile::ClientKey, &security.client_key),
    ] {
        if path.is_some() && !uses_tls {
            return Err(ConfigError::TlsFileWithoutTls { file });
        }
    }
    if security.client_cert.is_some() != security.client_key.is_some() {
        return Err(ConfigError::IncompleteClientIdentity);
    }
    Ok(())
}

/// The `user[:password]` part of a URL, if it has one.
fn url_userinfo(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rfind('@').map(|at| &authority[..at])
}

/// The URL without credentials, for logs, metrics labels, status pages and errors: no user
/// information, and no query or fragment (the adapter reads neither, so a password put there
/// by mistake must not travel further than the refusal).
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let rest = &url[scheme_end..];
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    format!("{}{host}{path}", &url[..scheme_end])
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn config_with(urls: usize) -> RedisConfig {
        RedisConfig {
            urls: (0..urls)
                .map(|port| format!("redis://127.0.0.1:{}", 7000 + port))
                .collect(),
            ..RedisConfig::default()
        }
    }

    #[test]
    fn validate__when_config_is_sound__then_derives_keys_quorum_and_drift() {
        // given
        let config = config_with(3);

        // when
        let validated = config.validate().unwrap();

        // then
        assert_eq!(validated.quorum().size(), 2);
        assert_eq!(validated.drift(), Duration::from_millis(32));
        assert_eq!(validated.keys.epoch, "poa:leader:lock:epoch:token");
        assert_eq!(validated.keys.stream, "poa:leader:lock:block:stream");
        assert_eq!(validated.keys.index, "poa:leader:lock:heights:index");
        assert_eq!(validated.index_retention, 2256);
    }

    #[test]
    fn validate__when_one_server_is_spelled_several_ways__then_refuses_the_second_spelling() {
        // given: one server, each pair spelled differently
        let pairs = [
            ("redis://127.0.0.1:7000", "redis://127.0.0.1:7000/"),
            ("redis://LOCALHOST:7000", "redis://localhost:7000"),
            ("redis://127.0.0.1:7000", "redis://[::ffff:127.0.0.1]:7000"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1"),
        ];
        for (first, second) in pairs {
            // when
            let outcome = RedisConfig {
                urls: vec![first.into(), second.into()],
                ..config_with(1)
            }
            .validate();

            // then
            assert!(
                matches!(&outcome, Err(ConfigError::DuplicateUrl { .. })),
                "{first} {second}: {outcome:?}"
            );
        }
    }

    #[test]
    fn validate__when_a_url_has_a_part_the_adapter_ignores__then_refuses_it_naming_the_part() {
        for (url, part) in [
            ("redis://127.0.0.1:7000/0", "path"),
            ("redis://127.0.0.1:7000/1", "path"),
            ("redis://127.0.0.1:7000?a=1", "query"),
            ("redis://127.0.0.1:7000#x", "fragment"),
        ] {
            // when
            let outcome = RedisConfig {
                urls: vec![url.into()],
                ..config_with(1)
            }
            .validate();

            // then
            assert_eq!(
                outcome.err(),
                Some(ConfigError::UrlPartIgnored {
                    url: redact_url(url),
                    list: UrlList::Urls,
                    part
                })
            );
        }
    }

    #[test]
    fn validate__when_an_acquisition_could_outlast_the_lease__then_refuses_naming_the_fields() {
        // given: 3 x (1 s + 100 ms + 100 ms) = 3.6 s against a 3 s lease
        let config = RedisConfig {
            retry_delay: Duration::from_secs(1),
            ..config_with(3)
        };

        // when
        let error = config.validate().unwrap_err();

        // then
        assert!(matches!(
            error,
            ConfigError::AcquisitionOutlastsLease { .. }
        ));
        let message = error.to_string();
        for field in ["max_attempts", "retry_delay", "lease_ttl"] {
            assert!(message.contains(field), "{message}");
        }
        assert!(!message.contains("--"), "{message}");
    }

    #[test]
    fn validate__when_each_setting_is_wrong__then_names_the_field_and_no_flag() {
        // given
        let cases: Vec<(RedisConfig, &str)> = vec![
            (config_with(0), "urls"),
            (
                RedisConfig {
                    urls: vec!["http://x".into()],
                    ..config_with(1)
                },
                "url",
            ),
            (
                RedisConfig {
                    urls: vec![
                        "redis://127.0.0.1:7000".into(),
                        "redis://127.0.0.1:7000/".into(),
                    ],
                    ..config_with(1)
                },
                "url",
            ),
            (
                RedisConfig {
                    lease_key: " ".into(),
                    ..config_with(1)
                },
                "lease_key",
            ),
            (
                RedisConfig {
                    lease_ttl: Duration::ZERO,
                    ..config_with(1)
                },
                "lease_ttl",
            ),
            (
                RedisConfig {
                    node_timeout: Duration::ZERO,
                    ..config_with(1)
                },
                "node_timeout",
            ),
            (
                RedisConfig {
                    retry_delay: Duration::ZERO,
                    ..config_with(1)
                },
                "retry_delay",
            ),
            (
                RedisConfig {
                    lease_ttl: Duration::from_millis(100),
                    ..config_with(1)
                },
                "lease_ttl",
            ),
            (
                RedisConfig {
                    max_attempts: 0,
                    ..config_with(1)
                },
                "max_attempts",
            ),
            (
                RedisConfig {
                    stream_max_len: 0,
                    ..config_with(1)
                },
                "stream_max_len",
            ),
            (
                RedisConfig {
                    stream_max_len: 1,
                    ..config_with(1)
                },
                "stream_max_len",
            ),
            (
                RedisConfig {
                    quorum_disruption_budget: 2,
                    ..config_with(3)
                },
                "quorum_disruption_budget",
            ),
        ];

        for (config, field) in cases {
            // when
            let error = config.clone().validate().unwrap_err();

            // then
            let message = error.to_string();
            assert!(
                message.starts_with(field),
                "{config:?} gave `{message}`, which does not start with {field}"
            );
            assert!(!message.contains("--"), "{message}");
        }
    }

    #[test]
    fn validate__when_lease_ttl_is_not_above_node_timeout__then_names_both_fields_and_no_flag() {
        // given
        let config = RedisConfig {
            lease_ttl: Duration::from_millis(100),
            node_timeout: Duration::from_millis(200),
            ..config_with(1)
        };

        // when
        let error = config.validate().unwrap_err();

        // then
        assert_eq!(
            error,
            ConfigError::LeaseTtlNotAboveNodeTimeout {
                lease_ttl: Duration::from_millis(100),
                node_timeout: Duration::from_millis(200),
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("raise lease_ttl or lower node_timeout"),
            "{message}"
        );
        assert!(!message.contains("--"), "{message}");
    }

    #[test]
    fn validate__when_budget_uses_every_spare_node__then_quorum_is_all_nodes() {
        // given
        let config = RedisConfig {
            quorum_disruption_budget: 1,
            ..config_with(3)
        };

        // when
        let validated = config.validate().unwrap();

        // then
        assert_eq!(validated.quorum().size(), 3);
    }

    #[test]
    fn validate__when_security_settings_are_inconsistent__then_names_the_field() {
        // given
        let secured = |urls: &[&str], security: RedisSecurity| RedisConfig {
            urls: urls.iter().map(|url| (*url).to_owned()).collect(),
            security,
            ..RedisConfig::default()
        };
        let password = || Some(RedisPassword::new("pw"));
        let cases = vec![
            (
                secured(&["redis://poa:pw@h:1"], RedisSecurity::default()),
                "url ",
            ),
            (
                secured(&["rediss://:pw@h:1"], RedisSecurity::default()),
                "url ",
            ),
            (
                secured(
                    &["redis://h:1"],
                    RedisSecurity {
                        username: Some("poa".into()),
                        ..RedisSecurity::default()
                    },
                ),
                "a user is named",
            ),
            (
                secured(
                    &["redis://alice@h:1"],
                    RedisSecurity {
                        username: Some("poa".into()),
                        password: password(),
                        ..RedisSecurity::default()
                    },
                ),
                "security.username",
            ),
            (
                secured(
                    &["redis://h:1"],
                    RedisSecurity {
                        ca_file: Some("/ca.pem".into()),
                        ..RedisSecurity::default()
                    },
                ),
                "security.ca_file",
            ),
            (
                secured(
                    &["rediss://h:1"],
                    RedisSecurity {
                        client_cert: Some("/client.pem".into()),
                        ..RedisSecurity::default()
                    },
                ),
                "security.client_cert",
            ),
            (
                secured(
                    &["redis://h:1"],
                    RedisSecurity {
                        password: Some(RedisPassword::new("")),
                        ..RedisSecurity::default()
                    },
                ),
                "security.password",
            ),
        ];

        for (config, start) in cases {
            // when
            let error = config.clone().validate().unwrap_err();

            // then
            let message = error.to_string();
            assert!(
                message.starts_with(start),
                "{config:?} gave `{message}`, which does not start with {start}"
            );
            assert!(!message.contains("pw@"), "{message}");
            assert!(!message.contains("--"), "{message}");
        }
    }

    #[test]
    fn validate__when_a_next_url_names_another_user__then_names_both_urls_their_lists_and_users() {
        // given: the current list names one user, the next list another
        let config = RedisConfig {
            urls: vec!["redis://alice@h:1".into(), "redis://h:2".into()],
            next_urls: vec!["redis://h:1".into(), "redis://bob@h:3?x=1".into()],
            security: RedisSecurity {
                password: Some(RedisPassword::new("pw")),
                ..RedisSecurity::default()
            },
            ..RedisConfig::default()
        };

        // when
        let error = config.validate().unwrap_err();

        // then
        assert_eq!(
            error,
            ConfigError::ConflictingUrlUsernames {
                first: "redis://h:1".to_owned(),
                first_list: UrlList::Urls,
                first_user: "alice".to_owned(),
                second: "redis://h:3".to_owned(),
                second_list: UrlList::NextUrls,
                second_user: "bob".to_owned(),
            }
        );
    }

    #[test]
    fn validate__when_user_comes_from_url_or_flag_with_a_password__then_accepts_tls_and_plain_nodes()
     {
        // given
        let config = RedisConfig {
            urls: vec!["rediss://poa@h:1".into(), "redis://h:2".into()],
            security: RedisSecurity {
                username: Some("poa".into()),
                password: Some(RedisPassword::new("pw")),
                ca_file: Some("/ca.pem".into()),
                ..RedisSecurity::default()
            },
            ..RedisConfig::default()
        };

        // when
        let validated = config.validate();

        // then
        assert!(validated.is_ok(), "{validated:?}");
        assert!(!format!("{validated:?}").contains("pw\""));
    }

    #[test]
    fn validate__when_only_one_list_of_a_membership_change_uses_tls__then_accepts_the_tls_files() {
        // given: a change from plain nodes to TLS ones, and one from TLS ones with no next list
        let security = || RedisSecurity {
            ca_file: Some("/ca.pem".into()),
            ..RedisSecurity::default()
        };
        let to_tls = RedisConfig {
            urls: vec!["redis://h:1".into()],
            next_urls: vec!["rediss://h:2".into()],
            security: security(),
            ..RedisConfig::default()
        };
        let tls_alone = RedisConfig {
            urls: vec!["rediss://h:1".into()],
            security: security(),
            ..RedisConfig::default()
        };

        // when
        let validated = [to_tls.validate(), tls_alone.validate()];

        // then
        for config in validated {
            assert!(config.is_ok(), "{config:?}");
        }
    }

    #[test]
    fn redact_url__when_url_has_a_query_or_fragment__then_removes_them() {
        // given: a password where the adapter never reads one, but an operator might put it
        let urls = [
            "redis://host:6379/0?password=pl4nted-s3cret",
            "redis://host:6379#pl4nted-s3cret",
            "redis://host:6379/?user=a&password=pl4nted@s3cret",
        ];

        // when / then
        for url in urls {
            let redacted = redact_url(url);
            assert!(!redacted.contains("s3cret"), "{url} -> {redacted}");
            assert!(redacted.starts_with("redis://host:6379"), "{redacted}");
        }
    }

    #[test]
    fn validate__when_a_url_carries_a_password_in_its_query__then_refused_without_echoing_it() {
        // given
        let config = RedisConfig {
            urls: vec![
                "redis://127.0.0.1:7000/?password=pl4nted-s3cret".to_owned(),
                "redis://127.0.0.1:7001".to_owned(),
                "redis://127.0.0.1:7002".to_owned(),
            ],
            ..RedisConfig::default()
        };

        // when
        let error = config.validate().unwrap_err();

        // then
        assert!(
            matches!(error, ConfigError::UrlPartIgnored { part: "query", .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    }

    #[test]
    fn validate__when_a_password_is_typed_as_the_url_user__then_the_error_does_not_echo_it() {
        // given: the password where the user goes, and the real user in the setting
        let mut config = config_with(3);
        config.urls[0] = "redis://pl4nted-s3cret@127.0.0.1:7000".to_owned();
        config.security.username = Some("producer".to_owned());
        config.security.password = Some(RedisPassword::new("pl4nted-s3cret"));

        // when
        let error = config.validate().unwrap_err();

        // then
        assert!(
            matches!(error, ConfigError::ConflictingUsername { .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    }

    #[test]
    fn redact_url__when_url_has_credentials__then_removes_them() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
