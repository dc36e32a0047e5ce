//! Removes what a run wrote to the servers given with `--redis-url`: every key under this run's
//! prefix (`poa-bench:<pid>:`), found with `SCAN` and removed with `UNLINK`, so measuring on real
//! infrastructure leaves nothing behind. Local servers need none of this: they are discarded.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use poa_test_support::RespValue;
use poa_test_support::resp::request;

use crate::templates::REPORT;

/// Bound of one `SCAN` or `UNLINK` exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What happens to the keys on the user's servers, for the report when `--redis-url` was given.
pub(crate) fn leftover_keys_note() -> String {
    // The section has no values: only a missing section could fail, which a test rules out.
    REPORT.text("leftover-keys").unwrap_or_default()
}

/// Removes every key matching `prefix*` from the server at `url`; returns how many went.
///
/// # Errors
/// Fails when the URL has no reachable address or the server refuses or does not answer.
pub(crate) fn remove_keys(url: &str, prefix: &str) -> Result<u64> {
    let addr = address(url)?;
    let pattern = format!("{prefix}*");
    let mut cursor = b"0".to_vec();
    let mut removed = 0;
    loop {
        let reply = request(
            addr,
            &[
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"1000",
            ],
            REQUEST_TIMEOUT,
        )
        .with_context(|| format!("SCAN on {url}"))?;
        let Some([next, RespValue::Array(keys)]) = reply.as_array() else {
            bail!("SCAN on {url} answered {reply:?}");
        };
        let names: Vec<&[u8]> = keys.iter().filter_map(RespValue::as_bytes).collect();
        if !names.is_empty() {
            let mut command: Vec<&[u8]> = vec![b"UNLINK"];
            command.extend(names);
            let reply = request(addr, &command, REQUEST_TIMEOUT)
                .with_context(|| format!("UNLINK on {url}"))?;
            removed += reply
                .as_integer()
                .and_then(|count| u64::try_from(count).ok())
                .unwrap_or(0);
        }
        cursor = next.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        if cursor.is_empty() || cursor == b"0" {
            return Ok(removed);
        }
    }
}

/// The socket address of a `redis://host:port` URL (port 6379 when omitted).
fn address(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("{url}: only redis:// servers are cleaned up"))?;
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {url}"))?
        .next()
        .with_context(|| format!("{url} resolves to no address"))
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use poa_test_support::RedisServer;

    use super::*;

    #[test]
    fn remove_keys__when_keys_under_and_outside_the_prefix__then_only_the_prefix_goes() {
        // given
        let server = RedisServer::start();
        for index in 0..2_500 {
            let key = format!("poa-bench:1:{index}");
            server.command(&[b"SET", key.as_bytes(), b"v"]);
        }
        server.command(&[b"SET", b"poa-bench:2:other-run", b"v"]);

        // when
        let removed = remove_keys(&server.url(), "poa-bench:1:").unwrap();

        // then
        assert_eq!(removed, 2_500);
        assert_eq!(server.command(&[b"DBSIZE"]), RespValue::Integer(1));
    }

    #[test]
    fn leftover_keys_note__when_asked__then_names_the_prefix_and_the_removal_command() {
        // given / when
        let note = leftover_keys_note();

        // then
        assert!(note.contains("`poa-bench:<pid>:`"), "{note}");
        assert!(note.contains("xargs -r redis-cli unlink"), "{note}");
    }

    #[test]
    fn address__when_port_omitted_or_path_given__then_resolved() {
        // given / when / then
        assert_eq!(address("redis://127.0.0.1").unwrap().port(), 6379);
        assert_eq!(address("redis://127.0.0.1:7000/0").unwrap().port(), 7000);
        assert!(address("rediss://127.0.0.1:7000").is_err());
    }
}
