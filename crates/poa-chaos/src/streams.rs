//! What the Redis servers' streams still hold, read from the servers themselves (never through
//! the fault proxies): whether a node that comes back can still find its next height there, or
//! fell past the window.
//!
//! Read-only and bounded: it never writes a key, and a stopped or frozen server counts as
//! holding nothing.

use std::time::Duration;

use poa_test_support::{RedisServer, RespValue};

/// The nodes' `--lease-key` (poa-node's default, which the harness does not change): the
/// prefix of the stream and index keys.
const LEASE_KEY: &str = "poa:leader:lock";
/// Bound of one read; a frozen server costs one of them per height asked.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// How many of `servers` hold a block at `height` in their stream: indexed at that height, and
/// its stream entry not trimmed yet (what the nodes' `read_from` script returns).
pub(crate) fn servers_holding(servers: &[RedisServer], height: u64) -> usize {
    servers
        .iter()
        .filter(|server| holds(server, height))
        .count()
}

fn holds(server: &RedisServer, height: u64) -> bool {
    let index = format!("{LEASE_KEY}:heights:index");
    let stream = format!("{LEASE_KEY}:block:stream");
    let height = height.to_string();
    let members = server.try_command(
        &[
            b"ZRANGEBYSCORE",
            index.as_bytes(),
            height.as_bytes(),
            height.as_bytes(),
        ],
        READ_TIMEOUT,
    );
    let Ok(RespValue::Array(members)) = members else {
        return false;
    };
    // Members are "<height>:<block id>:<stream entry id>".
    members
        .iter()
        .filter_map(RespValue::as_bytes)
        .filter_map(|member| member.rsplit(|byte| *byte == b':').next())
        .any(|entry| {
            let found =
                server.try_command(&[b"XRANGE", stream.as_bytes(), entry, entry], READ_TIMEOUT);
            matches!(found, Ok(RespValue::Array(entries)) if !entries.is_empty())
        })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn write_block(server: &RedisServer, height: u64) {
        let stream = format!("{LEASE_KEY}:block:stream");
        let index = format!("{LEASE_KEY}:heights:index");
        let height = height.to_string();
        let entry = server.command(&[
            b"XADD",
            stream.as_bytes(),
            b"MAXLEN",
            b"3",
            b"*",
            b"height",
            height.as_bytes(),
        ]);
        let entry = String::from_utf8_lossy(entry.as_bytes().unwrap_or_default()).into_owned();
        let member = format!("{height}:abcd:{entry}");
        server.command(&[
            b"ZADD",
            index.as_bytes(),
            height.as_bytes(),
            member.as_bytes(),
        ]);
    }

    #[test]
    fn servers_holding__when_a_height_was_trimmed_from_one_stream__then_counts_the_others() {
        // given three servers; the first keeps only heights 3 to 5 of 1 to 5
        let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        for height in 1..=5 {
            write_block(&servers[0], height);
        }
        write_block(&servers[1], 1);
        write_block(&servers[2], 1);
        servers[2].stop();

        // when
        let trimmed = servers_holding(&servers, 1);
        let kept = servers_holding(&servers, 4);
        let never_written = servers_holding(&servers, 9);

        // then: a stopped server holds nothing
        assert_eq!((trimmed, kept, never_written), (1, 1, 0));
    }
}
