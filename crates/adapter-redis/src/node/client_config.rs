//! How a node's fred client is configured: the one builder every node client of the adapter
//! comes from (timeouts, one attempt per command, Nagle off, ACL credentials and TLS, the
//! reconnection policy), and which connection errors need the operator rather than a retry, and
//! what each says.

use std::time::Duration;

use fred::clients::Client;
use fred::types::config::{Config, ReconnectPolicy, TcpConfig};
use poa_ports::NodeState;

use crate::config::{RedisSecurity, ValidatedConfig, redact_url};
use crate::error::Error;

/// The fred client of the node at `url`, built exactly as the adapter builds each of its nodes'
/// clients, not connected yet (`connect` and `wait_for_connect`, or `init`, are the caller's).
///
/// Every command is bounded by `node_timeout` inside fred and attempted once (a re-sent
/// promote would `INCR` twice), connections are made with Nagle off and within `node_timeout`,
/// the first connection is retried in the background like any reconnection, and the ACL
/// credentials and TLS settings come from the configuration's security. Public because the
/// benchmark harness measures the physical floors (a `PING`, the raw write script) over this
/// same client, so a floor pays exactly what the adapter's client pays.
///
/// # Errors
///
/// [`Error::Client`] when fred refuses the URL or the settings, [`Error::TlsFile`] or
/// [`Error::TlsSetup`] when a `rediss://` node's TLS configuration cannot be built.
pub fn node_client(config: &ValidatedConfig, url: &str) -> Result<Client, Error> {
    build_client(url, &config.security, config.node_timeout, config.lease_ttl)
}

/// [`node_client`] from the settings a node's context carries.
pub(super) fn build_client(
    url: &str,
    security: &RedisSecurity,
    node_timeout: Duration,
    lease_ttl: Duration,
) -> Result<Client, Error> {
    let name = redact_url(url);
    let mut config = Config::from_url(url).map_err(|source| Error::Client {
        node: name.clone(),
        source,
    })?;
    apply_security(&mut config, url, security)?;
    // The first connection is retried in the background like any reconnection, so a node
    // that is down or half-alive at startup never blocks construction.
    config.fail_fast = false;
    fred::types::Builder::from_config(config)
        .with_performance_config(|performance| {
            performance.default_command_timeout = node_timeout;
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = node_timeout;
            connection.internal_command_timeout = node_timeout;
            connection.max_command_attempts = 1;
            connection.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
        })
        .set_policy(reconnect_policy(node_timeout, lease_ttl))
        .build()
        .map_err(|source| Error::Client { node: name, source })
}

/// Errors that retrying cannot cure: TLS verification, authentication and ACL refusals.
pub(super) fn is_refusal(error: &fred::error::Error) -> bool {
    use fred::error::ErrorKind;
    match error.kind() {
        ErrorKind::Tls | ErrorKind::Auth => true,
        _ => {
            let details = error.details();
            [
                "WRONGPASS",
                "NOAUTH",
                "NOPERM",
                "InvalidCertificate",
                "AlertReceived",
            ]
            .iter()
            .any(|marker| details.contains(marker))
        }
    }
}

/// The state a failed connection attempt puts its node in, and the reason in an operator's
/// words: refused (authentication, ACL, TLS), timed out (a listener that never finishes the
/// handshake), else unreachable. `tls` says whether the URL is `rediss://`: a scheme that does
/// not match the port fails in ways that look like a dead node, so those failures name it.
pub(super) fn connection_condition(error: &fred::error::Error, tls: bool) -> (NodeState, String) {
    use fred::error::ErrorKind;
    let details = error.details();
    if is_refusal(error) {
        return (NodeState::Refused, refusal_reason(details));
    }
    if *error.kind() == ErrorKind::Timeout {
        // A plain port reads a TLS client hello as the start of a command and waits for the
        // rest: to the client it looks like a half-alive node.
        let reason = if tls {
            format!("no reply to the tls handshake in time: {TLS_TO_PLAIN_HINT}")
        } else {
            "no reply to the connection handshake in time".to_owned()
        };
        return (NodeState::TimedOut, reason);
    }
    let reason = io_reason(details);
    let hint = if tls && TLS_TO_PLAIN.iter().any(|marker| details.contains(marker)) {
        Some(TLS_TO_PLAIN_HINT)
    } else if !tls && PLAIN_TO_TLS.iter().any(|marker| details.contains(marker)) {
        Some(PLAIN_TO_TLS_HINT)
    } else {
        None
    };
    let reason = match hint {
        Some(hint) => format!("{reason}: {hint}"),
        None => reason,
    };
    (NodeState::Unreachable, reason)
}

/// What a `rediss://` connection to a port that does not speak TLS fails with: the server's
/// plain-text error reply read as a TLS record.
const TLS_TO_PLAIN: [&str; 3] = ["InvalidContentType", "CorruptMessage", "InvalidMessage"];
const TLS_TO_PLAIN_HINT: &str =
    "if this port does not serve tls, use redis:// for it, or the node's tls-port";
/// What a `redis://` connection to a TLS-only port fails with: the server drops the plain-text
/// handshake it cannot read as TLS.
const PLAIN_TO_TLS: [&str; 4] = [
    "ConnectionReset",
    "UnexpectedEof",
    "Connection closed",
    "BrokenPipe",
];
const PLAIN_TO_TLS_HINT: &str =
    "the node closed the connection during the handshake: if this port serves tls, use rediss://";

/// A refusal's reason: the server's reply as it stands, a certificate problem in words.
fn refusal_reason(details: &str) -> String {
    const CERTIFICATE: [(&str, &str); 6] = [
        ("Expired", "certificate expired"),
        ("NotValidYet", "certificate not valid yet"),
        (
            "UnknownIssuer",
            "certificate signed by an unknown authority",
        ),
        (
            "NotValidForName",
            "certificate not valid for the node's host name",
        ),
        ("Revoked", "certificate revoked"),
        ("BadSignature", "certificate with a bad signature"),
    ];
    if details.contains("InvalidCertificate") {
        if let Some((_, words)) = CERTIFICATE
            .iter()
            .find(|(variant, _)| details.contains(variant))
        {
            return format!("tls: the node's {words}");
        }
        return format!("tls: the node's certificate is refused ({details})");
    }
    if details.contains("AlertReceived") {
        return format!("tls: the node refused the handshake ({details})");
    }
    details.to_owned()
}

/// An I/O error's reason: the operating system's message when there is one (the client words
/// I/O errors as their debug form).
fn io_reason(details: &str) -> String {
    details
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| details.to_owned(), |(message, _)| message.to_lowercase())
}

/// Sets the ACL credentials and, for `rediss://`, the TLS configuration. The password comes
/// only from `security` (validation refuses one in the URL); the user may come from the URL.
fn apply_security(config: &mut Config, url: &str, security: &RedisSecurity) -> Result<(), Error> {
    if let Some(username) = &security.username {
        config.username = Some(username.clone());
    }
    config.password = security
        .password
        .as_ref()
        .map(|password| password.expose().to_owned());
    config.tls = if url.starts_with("rediss://") {
        Some(crate::tls::client_tls(security)?)
    } else {
        None
    };
    Ok(())
}

/// Jittered exponential reconnection: starts fast (a restarted node is back within one
/// cycle), never waits longer than a quarter of the lease TTL, and retries forever.
fn reconnect_policy(node_timeout: Duration, lease_ttl: Duration) -> ReconnectPolicy {
    let millis = |duration: Duration| u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    let min_delay = millis(node_timeout / 4).clamp(5, 100);
    let max_delay = millis(lease_ttl / 4).clamp(50, 2_000).max(min_delay);
    let mut policy = ReconnectPolicy::new_exponential(0, min_delay, max_delay, 2);
    policy.set_jitter(min_delay);
    policy
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use fred::error::{Error, ErrorKind};

    use super::*;

    #[test]
    fn connection_condition__when_the_server_certificate_expired__then_refused_in_words() {
        // given: how the client words the TLS error of an expired server certificate
        let error = Error::new(
            ErrorKind::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(Expired) }",
        );

        // when
        let (state, reason) = connection_condition(&error, true);

        // then
        assert_eq!(state, NodeState::Refused);
        assert_eq!(reason, "tls: the node's certificate expired");
    }

    #[test]
    fn connection_condition__when_the_port_is_closed__then_unreachable_with_the_system_message() {
        // given
        let error = Error::new(
            ErrorKind::IO,
            "Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }",
        );

        // when
        let (state, reason) = connection_condition(&error, false);

        // then
        assert_eq!(state, NodeState::Unreachable);
        assert_eq!(reason, "connection refused");
    }
}
