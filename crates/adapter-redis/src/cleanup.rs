//! The operator's way out of a height blocked by entries that do not belong: remove, on every
//! node, the entries at one height that are proven invalid (they do not decode to the block
//! they are stored as, or fail the chain's verification) and the index members there that do
//! not parse. A valid block is never removed, whatever chain it extends: what passes
//! verification is evidence of something a producer of this authority did, and only an
//! operator who knows why may delete it by hand.

use std::collections::HashMap;
use std::sync::Arc;

use poa_ports::{BlockCodec, BlockHeight, SealVerifier};
use serde::Serialize;

use crate::log_read::{Checked, check_entry};
use crate::node::NodeHandle;

/// Entries asked of each node when looking at one height: far more than one height holds
/// unless someone wrote a flood of garbage there.
const ENTRIES_PER_HEIGHT: u64 = 256;

/// What the removal did on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRemoval {
    /// The node's address, without credentials.
    pub node: String,
    /// Stream entries and index members removed; `None` when the node could not be asked.
    pub removed: Option<u64>,
    /// Why the node could not be asked, if it could not.
    pub error: Option<String>,
}

/// Removes the invalid entries at `height` on every node, one node at a time.
pub(crate) async fn remove_invalid_entries<C: BlockCodec>(
    nodes: &[NodeHandle],
    verifier: &Arc<dyn SealVerifier<C>>,
    height: BlockHeight,
) -> Vec<NodeRemoval> {
    let mut report = Vec::with_capacity(nodes.len());
    for node in nodes {
        let outcome = remove_on_node(node, verifier.as_ref(), height).await;
        if let Ok(removed) = &outcome
            && *removed > 0
        {
            tracing::warn!(node = node.name(), height = %height, removed, "removed invalid entries");
        }
        report.push(NodeRemoval {
            node: node.name().to_owned(),
            removed: outcome.as_ref().ok().copied(),
            error: outcome.err(),
        });
    }
    report
}

async fn remove_on_node<C: BlockCodec>(
    node: &NodeHandle,
    verifier: &dyn SealVerifier<C>,
    height: BlockHeight,
) -> Result<u64, String> {
    let read = node
        .read_from(height, ENTRIES_PER_HEIGHT)
        .await
        .map_err(|error| error.to_string())?;
    let verified = HashMap::new();
    let invalid: Vec<String> = read
        .entries
        .into_iter()
        .filter(|entry| entry.height == height)
        .filter(|entry| {
            !matches!(
                check_entry(verifier, &verified, entry),
                Checked::Verified(_)
            )
        })
        .map(|entry| entry.entry_id)
        .collect();
    node.remove_entries(height, &invalid)
        .await
        .map_err(|error| error.to_string())
}
