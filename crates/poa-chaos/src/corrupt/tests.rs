//! Tests of planting and removing garbage, against real `redis-server` processes holding a
//! producer's keys: the removal leaves every server exactly as it was.

use adapter_chain::block::transactions_root;
use adapter_chain::{Block, Header, Seal};
use poa_ports::{BlockHeight, BlockId, ChainId, Signature, Timestamp};

use super::*;

/// The head the fixture's chain ends at.
const HEAD: u64 = 3;

fn block(height: u64) -> SealedBlock {
    let transactions = Vec::new();
    SealedBlock {
        block: Block {
            header: Header {
                chain_id: ChainId::new(0),
                height: BlockHeight::new(height),
                parent_id: BlockId::from_bytes([height as u8; 32]),
                timestamp: Timestamp::from_unix_millis(1_000 + height),
                transactions_root: transactions_root(&transactions),
                transaction_count: 0,
            },
            transactions,
        },
        seal: Seal::Authority(Signature::from_bytes([7; 64])),
    }
}

/// A server holding what a producer leaves: blocks 1 to `HEAD` in the stream and the index, an
/// epoch, a trim floor and a lease.
fn producer_server() -> RedisServer {
    let server = RedisServer::start();
    for height in 1..=HEAD {
        // Written as garbage entries are: the fixture needs the same fields.
        let block = block(height);
        let fields = EntryFields {
            height,
            id: block.id().to_hex(),
            data: block.encode(),
        };
        let entry = Plan::Entry {
            prefix: format!("{height}:{}:", fields.id).into_bytes(),
            fields,
        };
        entry.write(&server).unwrap();
    }
    let epoch = ProducerKey::Epoch.under(LEASE_KEY);
    let floor = ProducerKey::Floor.under(LEASE_KEY);
    server.command(&[b"SET", epoch.as_bytes(), b"4"]);
    server.command(&[b"SET", floor.as_bytes(), b"0"]);
    server.command(&[b"SET", LEASE_KEY.as_bytes(), b"owner", b"PX", b"60000"]);
    server
}

fn tip() -> ChainTip {
    ChainTip {
        height: HEAD,
        block: block(HEAD),
    }
}

/// Every key on the server with its type and content, sorted.
fn dump(server: &RedisServer) -> Vec<(Vec<u8>, RespValue, RespValue)> {
    let keys = server.command(&[b"KEYS", b"*"]);
    let mut keys: Vec<Vec<u8>> = keys
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|key| key.as_bytes().map(<[u8]>::to_vec))
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let kind = server.command(&[b"TYPE", &key]);
            let content = match kind.as_bytes() {
                Some(b"string") => server.command(&[b"GET", &key]),
                Some(b"stream") => server.command(&[b"XRANGE", &key, b"-", b"+"]),
                Some(b"zset") => server.command(&[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"]),
                _ => RespValue::Null,
            };
            (key, kind, content)
        })
        .collect()
}

fn without_lease(
    dump: Vec<(Vec<u8>, RespValue, RespValue)>,
) -> Vec<(Vec<u8>, RespValue, RespValue)> {
    dump.into_iter()
        .filter(|(key, _, _)| key.as_slice() != LEASE_KEY.as_bytes())
        .collect()
}

#[test]
fn plant_then_remove__for_every_kind_on_two_servers__then_each_server_is_as_it_was() {
    for ticket in 0..Garbage::KINDS {
        // given
        let garbage = Garbage::drawn(ticket, 30);
        let servers = [producer_server(), producer_server(), producer_server()];
        let before: Vec<_> = servers.iter().map(dump).collect();

        // when
        let planted = plant(
            &servers,
            garbage,
            Servers::consecutive(1, 2, 3),
            ticket as u64,
            Some(&tip()),
        )
        .unwrap();
        let during: Vec<_> = servers.iter().map(dump).collect();
        let undone = remove(&servers, &planted).unwrap();
        let after: Vec<_> = servers.iter().map(dump).collect();

        // then: written on r1 and r2 only, and gone again; the lease is not brought back
        assert!(planted.failed.is_empty(), "{garbage}: {:?}", planted.failed);
        assert_eq!(during[0], before[0], "{garbage} touched r0");
        assert_ne!(during[1], before[1], "{garbage} wrote nothing on r1");
        assert_eq!(undone, 2, "{garbage}");
        for (after, before) in after.iter().zip(&before) {
            if garbage.key() == ProducerKey::Lease {
                assert_eq!(without_lease(after.clone()), without_lease(before.clone()));
            } else {
                assert_eq!(after, before, "{garbage} left something behind");
            }
        }
    }
}

#[test]
fn plant__when_garbage_lands_at_a_height__then_at_the_next_height_or_far_above() {
    // given
    let servers = [producer_server()];
    let one = Servers::consecutive(0, 1, 1);

    // when
    let next = plant(&servers, Garbage::UndecodableEntry, one, 1, Some(&tip())).unwrap();
    let forged = plant(&servers, Garbage::ForgedNext, one, 2, Some(&tip())).unwrap();
    let above = plant(
        &servers,
        Garbage::ForgedFarAbove { above: 30 },
        one,
        3,
        Some(&tip()),
    )
    .unwrap();
    let index = ProducerKey::Index.under(LEASE_KEY);
    let at_forged = servers[0].command(&[b"ZRANGEBYSCORE", index.as_bytes(), b"4", b"4"]);

    // then
    assert_eq!(next.height, Some(HEAD + 2));
    assert_eq!(forged.height, Some(HEAD + 1));
    assert_eq!(above.height, Some(HEAD + 30));
    assert_eq!(at_forged.as_array().map(<[RespValue]>::len), Some(1));
}

#[test]
fn plant__when_the_leaders_block_already_holds_the_height__then_says_it_came_late() {
    // given: the next height (head + 2) already holds a block on the server
    let server = producer_server();
    let index = ProducerKey::Index.under(LEASE_KEY);
    let height = (HEAD + 2).to_string();
    server.command(&[b"ZADD", index.as_bytes(), height.as_bytes(), b"5:abcd:1-1"]);

    // when
    let planted = plant(
        std::slice::from_ref(&server),
        Garbage::UnparsableMember,
        Servers::consecutive(0, 1, 1),
        4,
        Some(&tip()),
    )
    .unwrap();

    // then
    assert_eq!(planted.late_on, vec![0]);
}

#[test]
fn remove__when_the_producer_wrote_the_floor_over_the_garbage__then_keeps_its_value() {
    // given
    let servers = [producer_server()];
    let planted = plant(
        &servers,
        Garbage::FloorNotANumber,
        Servers::consecutive(0, 1, 1),
        5,
        None,
    )
    .unwrap();
    let floor = ProducerKey::Floor.under(LEASE_KEY);
    servers[0].command(&[b"SET", floor.as_bytes(), b"17"]);

    // when
    let undone = remove(&servers, &planted).unwrap();

    // then
    assert_eq!(undone, 0);
    assert_eq!(
        servers[0].command(&[b"GET", floor.as_bytes()]),
        RespValue::bulk("17")
    );
}

#[test]
fn plant__when_garbage_at_a_height_has_no_tip__then_writes_nothing() {
    // given
    let servers = [producer_server()];
    let before = dump(&servers[0]);

    // when
    let planted = plant(
        &servers,
        Garbage::HugeEntry,
        Servers::consecutive(0, 1, 1),
        6,
        None,
    );

    // then
    assert!(planted.is_err());
    assert_eq!(dump(&servers[0]), before);
}
