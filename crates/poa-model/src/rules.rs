//! Where the model meets the code's rules: model blocks as `poa_ports` ids, a node's answer to a
//! reconciliation read (what `read_from` returns) added to a `poa_quorum::LogView`, and
//! `write_block` on a modelled node with its stream kept beside the script's index. Only data
//! crosses here; every decision is `poa_quorum`'s (or a mutation's wrapper around it).

use poa_ports::{BlockHeight, BlockId, Epoch};
use poa_quorum::script::{BlockWrite, WriteAnswer};
use poa_quorum::{Coverage, LogView, WriteReply};

use crate::mutation::{self, Mutation};
use crate::state::{Block, BlockRef, Record, RedisNode, StreamEntry, Token};

/// The first byte of every non-genesis id, so no block id equals the genesis id (all zeros).
const SEALED: u8 = 1;

/// The id of the block at `height` sealed as `sealed_by` (`None`: the genesis id). Ids order
/// like `(height, producer, attempt)`, so "smallest id" breaks ties the same way whatever the
/// encoding.
pub(crate) fn id_at(height: u8, sealed_by: Option<BlockRef>) -> BlockId {
    let mut bytes = [0u8; 32];
    if let Some(sealer) = sealed_by {
        bytes[..4].copy_from_slice(&[SEALED, height, sealer.producer, sealer.attempt]);
    }
    BlockId::from_bytes(bytes)
}

/// The `poa_ports` id of `block`.
pub(crate) fn id_of(block: Block) -> BlockId {
    id_at(block.height, Some(block.reference()))
}

/// The id of the block `block` extends.
pub(crate) fn parent_id_of(block: Block) -> BlockId {
    id_at(block.height.saturating_sub(1), block.parent)
}

/// The model block behind `id` at `height`, extending `parent` (as a walk candidate carries them).
pub(crate) fn block_of(height: BlockHeight, id: BlockId, parent: BlockId) -> Block {
    let sealer = |id: BlockId| {
        let bytes = id.as_bytes();
        (bytes[0] == SEALED).then_some(BlockRef {
            producer: bytes[2],
            attempt: bytes[3],
        })
    };
    let this = sealer(id).unwrap_or(BlockRef {
        producer: u8::MAX,
        attempt: u8::MAX,
    });
    Block {
        height: u8::try_from(height.get()).unwrap_or(u8::MAX),
        producer: this.producer,
        attempt: this.attempt,
        parent: sealer(parent),
    }
}

/// The height of a model block as the rules see it.
pub(crate) fn height_of(height: u8) -> BlockHeight {
    BlockHeight::new(u64::from(height))
}

/// Adds node `index`'s answer to a read from `next` with `window` entries to `view`, as
/// `read_from` answers: the first `window` entries at or above `next`, lowest first (covered up
/// to the last of them when the window is full, else complete), and the node's highest entry
/// when it lies above them.
pub(crate) fn read_into(view: &mut LogView, index: u8, node: &RedisNode, next: u8, window: u8) {
    let rows: Vec<&StreamEntry> = node
        .stream
        .iter()
        .filter(|entry| entry.block.height >= next)
        .collect();
    let returned = &rows[..rows.len().min(usize::from(window))];
    let highest_row = returned.last().map(|entry| entry.block.height);
    let coverage = match highest_row {
        Some(highest) if returned.len() == usize::from(window) => {
            Coverage::UpTo(height_of(highest.max(next)))
        }
        _ => Coverage::Complete,
    };
    let top = rows
        .last()
        .filter(|top| highest_row.is_none_or(|highest| top.block.height > highest));
    let node_index = usize::from(index);
    view.answered(node_index, coverage);
    for entry in returned.iter().chain(top) {
        view.add(
            node_index,
            height_of(entry.block.height),
            id_of(entry.block),
            parent_id_of(entry.block),
            entry.epoch,
        );
    }
}

/// Runs `write_block` (or its mutated variant) on `node` for a writer of `record` (whom the
/// membership check admitted), naming the block it `replaces` at the height (a repair's
/// replacement), and keeps the stream in step with the index: a replaced block leaves the stream,
/// an appended block joins it, trimmed heights leave it.
#[allow(
    clippy::too_many_arguments,
    reason = "one argument per field of the script call"
)]
pub(crate) fn write_on(
    node: &mut RedisNode,
    token: Token,
    epoch: Epoch,
    record: Record,
    block: Block,
    replaces: Option<BlockId>,
    kept_heights: u8,
    mutation: Option<Mutation>,
) -> WriteAnswer {
    let height = height_of(block.height);
    let write = BlockWrite {
        token: &token,
        epoch,
        height,
        id: id_of(block),
        kept_heights: usize::from(kept_heights),
        replaces,
    };
    let held_before = node.script.heights.get(&height).copied();
    let answer = mutation::write_block(&mut node.script, write, mutation);
    // The script removed the named block from the index (the write went past the height check
    // with it there): its stream entry goes too, as the script's `XDEL` does.
    if let Some(replaced) = replaces
        && held_before == Some(replaced)
        && node.script.heights.get(&height) != Some(&replaced)
    {
        node.stream
            .retain(|entry| entry.block.height != block.height || id_of(entry.block) != replaced);
    }
    if answer == WriteAnswer::Written && !node.holds(block) {
        let entry = StreamEntry {
            block,
            epoch,
            record,
        };
        let at = node.stream.partition_point(|held| *held < entry);
        node.stream.insert(at, entry);
    }
    let heights = &node.script.heights;
    node.stream
        .retain(|entry| heights.contains_key(&height_of(entry.block.height)));
    answer
}

/// What a writer's tally makes of a script's answer.
pub(crate) fn reply_of(answer: WriteAnswer) -> WriteReply {
    match answer {
        WriteAnswer::Written => WriteReply::Written,
        WriteAnswer::AlreadyStored => WriteReply::AlreadyStored,
        WriteAnswer::HeightExists | WriteAnswer::HeightTrimmed => WriteReply::HeightRefused,
        WriteAnswer::NotOwner | WriteAnswer::StaleEpoch => WriteReply::Fenced,
    }
}
