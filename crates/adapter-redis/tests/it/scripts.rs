//! The Lua scripts against the pure rules of `poa_quorum::script`, which the model checks: for
//! random sequences of promotes (with epoch floors), writes, releases and expiries on a real
//! `redis-server`, every answer and the node's final state (owner, epoch, heights index, trim
//! floor) agree. A script that drifts from the rules the model checked fails here.

use std::collections::BTreeMap;

use poa_ports::{BlockHeight, BlockId, Epoch};
use poa_quorum::script::{self, BlockWrite, NodeState, PromoteAnswer, WriteAnswer};
use poa_test_support::{RedisServer, RespValue};
use proptest::prelude::*;

const PROMOTE: &str = include_str!("../../lua/promote.lua");
const WRITE_BLOCK: &str = include_str!("../../lua/write_block.lua");
const RELEASE: &str = include_str!("../../lua/release.lua");

/// Heights the index keeps in these runs: small, so trimming happens within a sequence.
const KEPT_HEIGHTS: usize = 4;

const TOKENS: [&str; 2] = ["token-a", "token-b"];

/// One operation on one node.
#[derive(Debug, Clone)]
enum Operation {
    Promote {
        token: usize,
        floor: u64,
    },
    /// A write at the epoch this token was last granted, moved by `epoch_step` (-1: stale,
    /// 0: as granted, 1: ahead of the node).
    Write {
        token: usize,
        epoch_step: i8,
        height: u64,
        block: u8,
        /// The variant of the block this write may replace at the height, if any.
        replaces: Option<u8>,
    },
    Release {
        token: usize,
    },
    Expire,
}

fn operations() -> impl Strategy<Value = Vec<Operation>> {
    // Writes dominate and mostly come from the first token, so sequences get past the lease
    // checks and write enough heights for the index to be trimmed.
    proptest::collection::vec(
        prop_oneof![
            2 => (0..2usize, 0..6u64).prop_map(|(token, floor)| Operation::Promote { token, floor }),
            10 => (
                prop_oneof![4 => Just(0usize), 1 => Just(1usize)],
                prop_oneof![1 => Just(-1i8), 6 => Just(0i8), 1 => Just(1i8)],
                1..12u64,
                0..3u8,
                prop_oneof![3 => Just(None), 1 => (0..3u8).prop_map(Some)],
            )
                .prop_map(|(token, epoch_step, height, block, replaces)| Operation::Write {
                    token,
                    epoch_step,
                    height,
                    block,
                    replaces,
                }),
            1 => (0..2usize).prop_map(|token| Operation::Release { token }),
            1 => Just(Operation::Expire),
        ],
        1..60,
    )
}

fn id(block: u8, height: u64) -> BlockId {
    let mut bytes = [block; 32];
    bytes[..8].copy_from_slice(&height.to_be_bytes());
    BlockId::from_bytes(bytes)
}

struct Keys {
    lease: String,
    epoch: String,
    stream: String,
    index: String,
    floor: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            lease: prefix.to_owned(),
            epoch: format!("{prefix}:epoch:token"),
            stream: format!("{prefix}:block:stream"),
            index: format!("{prefix}:heights:index"),
            floor: format!("{prefix}:heights:floor"),
        }
    }
}

fn eval(server: &RedisServer, lua: &str, keys: &[&str], args: &[&[u8]]) -> RespValue {
    let count = keys.len().to_string();
    let mut command: Vec<&[u8]> = vec![b"EVAL", lua.as_bytes(), count.as_bytes()];
    command.extend(keys.iter().map(|key| key.as_bytes()));
    command.extend_from_slice(args);
    server.command(&command)
}

fn promote_on_redis(server: &RedisServer, keys: &Keys, token: &str, floor: u64) -> PromoteAnswer {
    let floor = floor.to_string();
    match eval(
        server,
        PROMOTE,
        &[&keys.lease, &keys.epoch],
        &[token.as_bytes(), b"60000", floor.as_bytes()],
    ) {
        RespValue::Integer(epoch) => {
            PromoteAnswer::Granted(Epoch::new(u64::try_from(epoch).unwrap()))
        }
        RespValue::Error(text) if text.contains("LOCK_HELD") => PromoteAnswer::LockHeld,
        other => panic!("promote answered {other:?}"),
    }
}

fn write_on_redis(
    server: &RedisServer,
    keys: &Keys,
    token: &str,
    epoch: u64,
    height: u64,
    block: BlockId,
    replaces: Option<BlockId>,
) -> WriteAnswer {
    let (epoch, height, block, kept) = (
        epoch.to_string(),
        height.to_string(),
        block.to_hex(),
        KEPT_HEIGHTS.to_string(),
    );
    let replaces = replaces.map(|id| id.to_hex()).unwrap_or_default();
    match eval(
        server,
        WRITE_BLOCK,
        &[
            &keys.lease,
            &keys.epoch,
            &keys.stream,
            &keys.index,
            &keys.floor,
        ],
        &[
            epoch.as_bytes(),
            token.as_bytes(),
            height.as_bytes(),
            block.as_bytes(),
            b"payload",
            b"60000",
            b"100",
            kept.as_bytes(),
            replaces.as_bytes(),
        ],
    ) {
        RespValue::Bulk(_) => WriteAnswer::Written,
        RespValue::Integer(0) => WriteAnswer::AlreadyStored,
        RespValue::Error(text) if text.contains("HEIGHT_EXISTS") => WriteAnswer::HeightExists,
        RespValue::Error(text) if text.contains("HEIGHT_TRIMMED") => WriteAnswer::HeightTrimmed,
        RespValue::Error(text) if text.contains("lock lost") => WriteAnswer::NotOwner,
        RespValue::Error(text) if text.contains("stale") => WriteAnswer::StaleEpoch,
        other => panic!("write_block answered {other:?}"),
    }
}

/// The node's state as read back from Redis.
fn state_on_redis(server: &RedisServer, keys: &Keys) -> NodeState<String> {
    let owner = match server.command(&[b"GET", keys.lease.as_bytes()]) {
        RespValue::Bulk(token) => Some(String::from_utf8(token).unwrap()),
        _ => None,
    };
    let number = |key: &str| match server.command(&[b"GET", key.as_bytes()]) {
        RespValue::Bulk(value) => Some(String::from_utf8(value).unwrap().parse::<u64>().unwrap()),
        _ => None,
    };
    let mut heights = BTreeMap::new();
    if let RespValue::Array(members) =
        server.command(&[b"ZRANGE", keys.index.as_bytes(), b"0", b"-1"])
    {
        for member in members {
            let RespValue::Bulk(member) = member else {
                panic!("index member {member:?}");
            };
            let member = String::from_utf8(member).unwrap();
            let mut parts = member.split(':');
            let height: u64 = parts.next().unwrap().parse().unwrap();
            let block: BlockId = parts.next().unwrap().parse().unwrap();
            heights.insert(BlockHeight::new(height), block);
        }
    }
    NodeState {
        owner,
        epoch: Epoch::new(number(&keys.epoch).unwrap_or(0)),
        heights,
        trim_floor: number(&keys.floor).map(BlockHeight::new),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn scripts__for_any_sequence_of_promotes_writes_releases_and_expiries__then_answer_as_the_pure_rules(
        sequence in operations(),
    ) {
        let server = RedisServer::start();
        let keys = Keys::new("poa:test:equivalence");
        let mut model = NodeState::<String>::default();
        let mut granted = [0u64; 2];
        for operation in sequence {
            match operation {
                Operation::Promote { token, floor } => {
                    let name = TOKENS[token];
                    let expected = script::promote(&mut model, &name.to_owned(), Epoch::new(floor));
                    if let PromoteAnswer::Granted(epoch) = expected {
                        granted[token] = epoch.get();
                    }
                    prop_assert_eq!(promote_on_redis(&server, &keys, name, floor), expected);
                }
                Operation::Write { token, epoch_step, height, block, replaces } => {
                    let epoch = granted[token].saturating_add_signed(i64::from(epoch_step));
                    let token = TOKENS[token];
                    let block = id(block, height);
                    let replaces = replaces.map(|other| id(other, height));
                    let expected = script::write_block(&mut model, BlockWrite {
                        token: &token.to_owned(),
                        epoch: Epoch::new(epoch),
                        height: BlockHeight::new(height),
                        id: block,
                        kept_heights: KEPT_HEIGHTS,
                        replaces,
                    });
                    prop_assert_eq!(write_on_redis(&server, &keys, token, epoch, height, block, replaces), expected);
                }
                Operation::Release { token } => {
                    let token = TOKENS[token];
                    eval(&server, RELEASE, &[&keys.lease], &[token.as_bytes()]);
                    if model.owner.as_deref() == Some(token) {
                        model.owner = None;
                    }
                }
                Operation::Expire => {
                    server.command(&[b"DEL", keys.lease.as_bytes()]);
                    model.owner = None;
                }
            }
            prop_assert_eq!(state_on_redis(&server, &keys), model.clone());
        }
    }
}

#[test]
fn write_block__when_a_height_left_the_index__then_refuses_it_for_good() {
    // given: heights 1 to 5 written where the index keeps 4, so height 1 left it
    let server = RedisServer::start();
    let keys = Keys::new("poa:test:trimmed");
    assert_eq!(
        promote_on_redis(&server, &keys, TOKENS[0], 0),
        PromoteAnswer::Granted(Epoch::new(1))
    );
    for height in 1..=5 {
        assert_eq!(
            write_on_redis(&server, &keys, TOKENS[0], 1, height, id(0, height), None),
            WriteAnswer::Written
        );
    }

    // when: another block at height 1, which a far-behind leader could try to repair there
    let repaired = write_on_redis(&server, &keys, TOKENS[0], 1, 1, id(9, 1), None);

    // then
    assert_eq!(repaired, WriteAnswer::HeightTrimmed);
    assert_eq!(
        state_on_redis(&server, &keys).trim_floor,
        Some(BlockHeight::new(1))
    );
}
