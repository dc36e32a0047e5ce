//! What the Redis servers' streams still hold, read from the servers themselves (never through
//! the fault proxies): whether a node that comes back can still find its next height there, or
//! fell past the window, and the highest block of all (where garbage "at the next height" goes).
//!
//! Read-only and bounded: it never writes a key, and a stopped or frozen server counts as
//! holding nothing.

use std::time::Duration;

use poa_test_support::{RedisServer, RespValue};

/// The nodes' `--lease-key` (poa-node's default, which the harness does not change): the
/// prefix of the stream and index keys.
pub(crate) const LEASE_KEY: &str = "poa:leader:lock";
/// Bound of one read; a frozen server costs one of them per height asked.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// How many of `servers` hold a block at `height` in their stream: indexed at that height, and
/// its stream entry not trimmed yet (what the nodes' `read_from` script returns).
pub(crate) fn servers_holding(servers: &[&RedisServer], height: u64) -> usize {
    servers
        .iter()
        .filter(|server| holds(server, height))
        .count()
}

/// The highest block any of `servers` holds (height and encoded block), read from the top of
/// its heights index: the freshest head of the chain, ahead of every node's own `/status`
/// (a leader publishes before it commits).
pub(crate) fn highest_block(servers: &[&RedisServer]) -> Option<(u64, Vec<u8>)> {
    let index = format!("{LEASE_KEY}:heights:index");
    let stream = format!("{LEASE_KEY}:block:stream");
    servers
        .iter()
        .filter_map(|server| {
            let top = server
                .try_command(
                    &[
                        b"ZREVRANGEBYSCORE",
                        index.as_bytes(),
                        b"+inf",
                        b"-inf",
                        b"LIMIT",
                        b"0",
                        b"1",
                    ],
                    READ_TIMEOUT,
                )
                .ok()?;
            let member = top.as_array()?.first()?.as_bytes()?.to_vec();
            let mut parts = member.split(|byte| *byte == b':');
            let height: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
            let entry = parts.nth(1)?;
            let found = server
                .try_command(&[b"XRANGE", stream.as_bytes(), entry, entry], READ_TIMEOUT)
                .ok()?;
            let fields = found
                .as_array()?
                .first()?
                .as_array()?
                .get(1)?
                .as_array()?
                .to_vec();
            let data = fields
                .chunks(2)
                .find(|pair| pair.first().and_then(RespValue::as_bytes) == Some(b"data"))?
                .get(1)?
                .as_bytes()?
                .to_vec();
            Some((height, data))
        })
        .max_by_key(|(height, _)| *height)
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
        let data = format!("block {height}");
        let height = height.to_string();
        let entry = server.command(&[
            b"XADD",
            stream.as_bytes(),
            b"MAXLEN",
            b"3",
            b"*",
            b"height",
            height.as_bytes(),
            b"data",
            data.as_bytes(),
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
        let servers: Vec<&RedisServer> = servers.iter().collect();
        let highest = highest_block(&servers);
        let trimmed = servers_holding(&servers, 1);
        let kept = servers_holding(&servers, 4);
        let never_written = servers_holding(&servers, 9);

        // then: a stopped server holds nothing; the highest block is the first server's top
        assert_eq!((trimmed, kept, never_written), (1, 1, 0));
        assert_eq!(highest, Some((5, b"block 5".to_vec())));
    }
}
