//! Failover of the example chain's fleet: the leader is killed, the survivors take over, agree
//! on every height and keep producing; a block sealed by a key that is not the authority's,
//! written straight into the shared log, is never imported.

use fuel_style_chain::{
    AuthorityKey, FuelBlock, FuelStyleChain, SealedFuelBlock, Secp256k1BlockSigner,
    Secp256k1SealVerifier, Tai64,
};
use poa_ports::{BlockCodec, BlockHeight, BlockSigner, SealVerifier, SealedBlockView, Transaction};
use poa_test_support::{LogEntry, RedisServer};

use crate::fleet::{LEASE_KEY, Producer, SETTINGS, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet__when_the_leader_is_killed__then_the_survivors_agree_on_every_height_keep_producing_and_never_import_a_forged_block()
 {
    // given: three producers of one chain on three redis-servers, one of them leading
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let authority = AuthorityKey::generate();
    let mut producers = Vec::new();
    for _ in 0..3 {
        producers.push(Producer::start(&servers, &authority).await);
    }
    for producer in &producers {
        // Every process hears of every transaction, as peers relay them to each other.
        producer
            .node
            .queue
            .submit(Transaction::new(b"before the failover".to_vec()));
    }
    assert!(
        eventually(|| producers.iter().all(|p| p.height() >= BlockHeight::new(5))).await,
        "the fleet produced no chain: heights {:?}",
        heights(&producers)
    );
    let leader = eventually(|| producers.iter().filter(|p| p.leads()).count() == 1).await;
    assert!(
        leader,
        "no single leader: heights {:?}",
        heights(&producers)
    );
    let leader = producers
        .iter()
        .position(Producer::leads)
        .expect("one producer leads");

    // when: the leader is killed
    producers[leader].kill();
    let killed_at = producers[leader].height();
    let mut survivors: Vec<Producer> = Vec::new();
    let mut killed = None;
    for (index, producer) in producers.into_iter().enumerate() {
        if index == leader {
            killed = Some(producer);
        } else {
            survivors.push(producer);
        }
    }
    let killed = killed.expect("the killed producer");
    for survivor in &survivors {
        survivor
            .node
            .queue
            .submit(Transaction::new(b"after the failover".to_vec()));
    }

    // then: the survivors take over and keep producing
    let past_the_kill = BlockHeight::new(killed_at.get() + 5);
    assert!(
        eventually(|| survivors.iter().all(|s| s.height() >= past_the_kill)).await,
        "the survivors stalled after the leader was killed at {killed_at}: heights {:?}",
        heights(&survivors)
    );

    // when: a block sealed by another key, on the survivors' head, is written into the log
    let forged = forged_block_on(&survivors[0], &authority);
    append_to_log(&servers[0], &forged);

    // then: the survivors read and refuse it, and produce past its height on their own blocks
    let past_the_forgery = BlockHeight::new(forged.height().get() + 3);
    assert!(
        eventually(|| {
            survivors.iter().all(|s| s.height() >= past_the_forgery)
                && survivors
                    .iter()
                    .any(|s| s.counter("poa_refused_entries_total") > 0)
        })
        .await,
        "the survivors did not produce past the forged block's height {} or never refused it: \
         heights {:?}",
        forged.height(),
        heights(&survivors)
    );
    for survivor in &mut survivors {
        survivor.stop().await;
    }

    // then: one chain, every block the authority's, the forged block in none of them
    let verifier = Secp256k1SealVerifier::new(authority.public_key());
    let chains: Vec<Vec<SealedFuelBlock>> =
        survivors.iter().map(|s| s.node.store.blocks()).collect();
    let common = chains.iter().map(Vec::len).min().unwrap_or(0);
    for (height, (first, second)) in chains[0].iter().zip(&chains[1]).enumerate() {
        assert_eq!(
            first.id(),
            second.id(),
            "the survivors disagree at height {height}"
        );
    }
    let killed_chain = killed.node.store.blocks();
    assert!(
        killed_chain.len() <= common,
        "the killed leader's chain outgrew the survivors'"
    );
    for (height, block) in killed_chain.iter().enumerate() {
        assert_eq!(
            block.id(),
            chains[0][height].id(),
            "the killed leader's block at {height} is not the survivors'"
        );
    }
    for chain in &chains {
        assert!(chain.iter().all(|block| block.id() != forged.id()));
        for block in &chain[1..] {
            verifier
                .verify_seal(block)
                .expect("every committed block is the authority's");
        }
        let included: Vec<&[u8]> = chain
            .iter()
            .flat_map(|block| &block.block.transactions)
            .map(Transaction::as_bytes)
            .collect();
        assert_eq!(
            included,
            vec![&b"before the failover"[..], &b"after the failover"[..]],
            "each transaction included once"
        );
    }
}

/// The block above `producer`'s head, well formed, sealed by a key that is not `authority`.
fn forged_block_on(producer: &Producer, authority: &AuthorityKey) -> SealedFuelBlock {
    let head = producer
        .node
        .store
        .blocks()
        .pop()
        .expect("a chain holds its genesis at least");
    let intruder = AuthorityKey::generate();
    assert_ne!(intruder.public_key(), authority.public_key());
    let block = FuelBlock::build_on(
        head.header(),
        Tai64(head.header().time.0),
        SETTINGS.consensus_parameters_version,
        vec![Transaction::new(b"forged".to_vec())],
    )
    .expect("a block above the head");
    Secp256k1BlockSigner::new(intruder)
        .seal(block)
        .expect("the intruder seals")
}

/// Writes `block` into `server`'s block log past every check the write script makes, as anyone
/// who reaches a node can, under the fleet's current epoch so it looks like the leader's own.
fn append_to_log(server: &RedisServer, block: &SealedFuelBlock) {
    let epoch = server.command(&[b"GET", format!("{LEASE_KEY}:epoch:token").as_bytes()]);
    let epoch = epoch
        .as_bytes()
        .and_then(|epoch| String::from_utf8_lossy(epoch).parse().ok())
        .unwrap_or(0);
    server.append_log_entry(
        LEASE_KEY,
        LogEntry {
            height: block.height().get(),
            id: &block.id().to_hex(),
            epoch,
            data: &FuelStyleChain::encode_block(block),
        },
    );
}

fn heights(producers: &[Producer]) -> Vec<u64> {
    producers.iter().map(|p| p.height().get()).collect()
}
