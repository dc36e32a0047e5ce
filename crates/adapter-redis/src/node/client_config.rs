//! How a node's fred client is configured: ACL credentials and TLS, the reconnection policy, and
//! which connection errors need the operator rather than a retry.

use std::time::Duration;

use fred::types::config::{Config, ReconnectPolicy};

use crate::config::RedisSecurity;
use crate::error::Error;

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

/// Sets the ACL credentials and, for `rediss://`, the TLS configuration. The password comes
/// only from `security` (validation refuses one in the URL); the user may come from the URL.
pub(super) fn apply_security(
    config: &mut Config,
    url: &str,
    security: &RedisSecurity,
) -> Result<(), Error> {
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
pub(super) fn reconnect_policy(node_timeout: Duration, lease_ttl: Duration) -> ReconnectPolicy {
    let millis = |duration: Duration| u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    let min_delay = millis(node_timeout / 4).clamp(5, 100);
    let max_delay = millis(lease_ttl / 4).clamp(50, 2_000).max(min_delay);
    let mut policy = ReconnectPolicy::new_exponential(0, min_delay, max_delay, 2);
    policy.set_jitter(min_delay);
    policy
}
