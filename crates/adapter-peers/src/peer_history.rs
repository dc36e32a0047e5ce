//! [`PeerBlockHistory`]: asks other `poa-node` processes for committed blocks over HTTP.
//!
//! Peers are asked one after another, starting one further along the list at every call, so
//! a peer that keeps serving something the importer refuses does not stall the catch-up while
//! another peer could serve it. A request that times out halves the number of blocks the next
//! request asks for (down to one), and an answer that fills it doubles it again: a batch too
//! large to serve within the request timeout (large blocks, a slow peer) never stalls the
//! catch-up for good. Each request goes through the adapter's async client, bounded as
//! a whole (connect, send, the answer body) by the request timeout and capped in size. The
//! answer is trimmed to the consecutive heights from the one asked for; nothing here verifies a
//! block.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::PeerRequestError;

use crate::block_batch::split_block_batch;
use async_trait::async_trait;
use poa_ports::{
    BlockCodec, BlockHeight, BlockHistorySource, EverySource, HistoryError, SealedBlockView,
};
use tracing::{debug, info, warn};

use crate::config::PeerConfig;
use crate::http_client::PeerHttpClient;

/// What one peer said.
#[derive(Debug)]
enum PeerAnswer<B> {
    /// Blocks from the height asked for, consecutive.
    Blocks(Vec<B>),
    /// The peer does not hold the height asked for.
    NotHeld,
}

/// The history source over HTTP peers, for any chain with a codec: peers serve the chain's
/// own encoding of each block.
pub struct PeerBlockHistory<C: BlockCodec> {
    config: Arc<PeerConfig>,
    client: PeerHttpClient,
    next_peer: Arc<AtomicUsize>,
    /// The most blocks one request asks for now: lowered by timeouts, raised by full answers.
    batch: Arc<AtomicUsize>,
    chain: PhantomData<fn() -> C>,
}

// Not derived: a derive would ask the chain's marker type for `Clone` and `Debug` too.
impl<C: BlockCodec> Clone for PeerBlockHistory<C> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            client: self.client.clone(),
            next_peer: Arc::clone(&self.next_peer),
            batch: Arc::clone(&self.batch),
            chain: PhantomData,
        }
    }
}

impl<C: BlockCodec> std::fmt::Debug for PeerBlockHistory<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBlockHistory")
            .field("config", &self.config)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<C: BlockCodec> PeerBlockHistory<C> {
    /// Builds the source; does no I/O.
    pub fn new(config: PeerConfig) -> Self {
        // Catch-up asks one peer at a time: one idle connection per peer is enough.
        let client = PeerHttpClient::new(&config, 1);
        Self {
            config: Arc::new(config),
            client,
            next_peer: Arc::new(AtomicUsize::new(0)),
            batch: Arc::new(AtomicUsize::new(usize::MAX)),
            chain: PhantomData,
        }
    }

    /// The configured peers' base URLs.
    pub fn peers(&self) -> &[String] {
        &self.config.urls
    }

    /// Asks one peer, bounded by the request timeout.
    async fn ask(
        &self,
        peer: &str,
        next_height: BlockHeight,
        max: usize,
    ) -> Result<PeerAnswer<C::SealedBlock>, String> {
        let limit = max.min(self.batch.load(Ordering::Relaxed)).max(1);
        let url = format!("{peer}/blocks/raw?from={}&limit={limit}", next_height.get());
        let response = match self.client.get(&url).await {
            Ok(response) => response,
            Err(error) => {
                if matches!(error, PeerRequestError::TimedOut { .. }) && limit > 1 {
                    let fewer = limit / 2;
                    self.batch.store(fewer, Ordering::Relaxed);
                    warn!(node = %peer, asked = limit, next = fewer, "peer did not serve the batch in time: asking for fewer blocks");
                }
                return Err(error.to_string());
            }
        };
        let bytes = match response.status {
            200 => response.body,
            404 => return Ok(PeerAnswer::NotHeld),
            status => return Err(format!("answered http {status}")),
        };
        let blocks = decode_consecutive::<C>(peer, &bytes, next_height)?;
        if blocks.len() >= limit {
            self.batch.store(limit.saturating_mul(2), Ordering::Relaxed);
        }
        if blocks.is_empty() {
            Ok(PeerAnswer::NotHeld)
        } else {
            Ok(PeerAnswer::Blocks(blocks))
        }
    }
}

#[async_trait]
impl<C: BlockCodec> BlockHistorySource<C> for PeerBlockHistory<C> {
    async fn blocks_from(
        &self,
        next_height: BlockHeight,
        max: usize,
    ) -> Result<Vec<C::SealedBlock>, HistoryError> {
        let peers = &self.config.urls;
        if peers.is_empty() {
            return Err(HistoryError::NoSource);
        }
        let start = self.next_peer.fetch_add(1, Ordering::Relaxed) % peers.len();
        let mut answered = false;
        let mut last_failure = String::new();
        for peer in peers.iter().cycle().skip(start).take(peers.len()) {
            match self.ask(peer, next_height, max.max(1)).await {
                Ok(PeerAnswer::Blocks(blocks)) => {
                    info!(node = %peer, height = %next_height, count = blocks.len(), "peer served blocks");
                    return Ok(blocks);
                }
                Ok(PeerAnswer::NotHeld) => {
                    debug!(node = %peer, height = %next_height, "peer does not hold the height");
                    answered = true;
                }
                Err(error) => {
                    warn!(node = %peer, height = %next_height, error = %error, "peer request failed");
                    last_failure = format!("{peer}: {error}");
                }
            }
        }
        if answered {
            Ok(Vec::new())
        } else {
            Err(HistoryError::Unavailable {
                sources: peers.len(),
                reason: last_failure,
            })
        }
    }

    async fn ask_every_source(
        &self,
        next_height: BlockHeight,
        max: usize,
    ) -> Result<EverySource<C::SealedBlock>, HistoryError> {
        let peers = &self.config.urls;
        if peers.is_empty() {
            return Err(HistoryError::NoSource);
        }
        let answers = futures::future::join_all(
            peers
                .iter()
                .map(|peer| async move { (peer, self.ask(peer, next_height, max.max(1)).await) }),
        )
        .await;
        let mut unanswered = Vec::new();
        for (peer, answer) in answers {
            match answer {
                Ok(PeerAnswer::Blocks(blocks)) => {
                    info!(node = %peer, height = %next_height, count = blocks.len(), "peer holds blocks above the local head");
                    return Ok(EverySource::Blocks(blocks));
                }
                Ok(PeerAnswer::NotHeld) => {}
                Err(error) => {
                    warn!(node = %peer, height = %next_height, error = %error, "peer request failed");
                    unanswered.push(peer.clone());
                }
            }
        }
        Ok(if unanswered.is_empty() {
            EverySource::NoneHolds
        } else {
            EverySource::Unanswered(unanswered)
        })
    }
}

/// Decodes a batch and keeps the blocks at consecutive heights from `next_height`. An
/// undecodable block ends the batch (the blocks before it are kept); a broken framing is a
/// failed request.
fn decode_consecutive<C: BlockCodec>(
    peer: &str,
    batch: &[u8],
    next_height: BlockHeight,
) -> Result<Vec<C::SealedBlock>, String> {
    let frames = split_block_batch(batch).map_err(|error| error.to_string())?;
    let mut blocks = Vec::with_capacity(frames.len());
    let mut expected = Some(next_height);
    for frame in frames {
        let block = match C::decode_block(frame) {
            Ok(block) => block,
            Err(error) => {
                warn!(node = %peer, height = ?expected, error = %error, "undecodable block from a peer: keeping the blocks before it");
                break;
            }
        };
        if Some(block.height()) != expected {
            warn!(node = %peer, height = %block.height(), "peer answered a height out of sequence: keeping the blocks before it");
            break;
        }
        expected = block.height().next();
        blocks.push(block);
    }
    Ok(blocks)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
