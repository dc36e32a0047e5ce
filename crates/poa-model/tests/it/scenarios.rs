//! Named scenarios replayed step by step through the model's own `next_state`: the shortest
//! story behind a counterexample, checked against the protocol and against the mutation, so the
//! README's explanation cannot drift from the model.

#![allow(non_snake_case)]

use poa_model::stateright::Model;
use poa_model::{
    Action, Block, BlockRef, ModelConfig, Mutation, ProtocolModel, Record, State, Token, WriteMsg,
    no_fork, progress_possible,
};
use poa_ports::{BlockHeight, Epoch};

pub(crate) const NODE_A: u8 = 0;
pub(crate) const NODE_B: u8 = 1;
pub(crate) const NODE_C: u8 = 2;

/// Runs `actions` from the initial state of `config`, every one of which must be enabled.
pub(crate) fn replay_from(config: ModelConfig, actions: &[Action]) -> State {
    let model = ProtocolModel::new(config).unwrap();
    let mut state = model.init_states().remove(0);
    for action in actions {
        let mut enabled = Vec::new();
        model.actions(&state, &mut enabled);
        assert!(
            enabled.contains(action),
            "{action:?} not enabled in {state:?}"
        );
        state = model.next_state(&state, *action).unwrap();
    }
    state
}

/// Runs `actions` from the empty state of the smallest bound.
fn replay(mutation: Option<Mutation>, actions: &[Action]) -> State {
    replay_from(ModelConfig::small(mutation), actions)
}

/// Block X: P0's first block, at height 1 on genesis.
pub(crate) const X: Block = Block {
    height: 1,
    producer: 0,
    attempt: 0,
    parent: None,
};

/// P0's write of X (epoch 1, first process) to `node`.
fn write_of_x(node: u8) -> WriteMsg {
    WriteMsg {
        node,
        token: Token {
            producer: 0,
            incarnation: 0,
        },
        epoch: Epoch::new(1),
        block: X,
        view: Record::Old,
    }
}

pub(crate) fn chain_of(state: &State, producer: usize) -> Vec<Block> {
    state.producers[producer]
        .chain
        .iter()
        .map(|committed| committed.block)
        .collect()
}

pub(crate) fn heights_on(state: &State, node: u8) -> Vec<u8> {
    state.nodes[usize::from(node)]
        .stream
        .iter()
        .map(|entry| entry.block.height)
        .collect()
}

/// The mask of `list`.
pub(crate) fn nodes(list: &[u8]) -> u8 {
    list.iter().fold(0, |mask, node| mask | 1 << node)
}

/// `producer` takes the lease on the nodes `reach` and reconciles reading the nodes `read`.
fn leads_reading(producer: u8, reach: &[u8], read: &[u8]) -> [Action; 2] {
    [
        Action::Acquire {
            producer,
            reach: nodes(reach),
        },
        Action::Reconcile {
            producer,
            read: nodes(read),
        },
    ]
}

/// P0 takes the lease on A and B and reconciles reading them.
pub(crate) fn p0_leads_reading_a_and_b() -> Vec<Action> {
    leads_reading(0, &[NODE_A, NODE_B], &[NODE_A, NODE_B]).to_vec()
}

/// P0 leads on A and B at epoch 1 and publishes X.
fn p0_publishes_x_leading_on_a_and_b() -> Vec<Action> {
    [p0_leads_reading_a_and_b(), vec![Action::Produce(0)]].concat()
}

/// P0 publishes X; its lease then lapses on every node (a frozen process, SIGSTOP beyond the TTL:
/// its local validity ends first) while X's writes are still in flight; they land on C (never
/// promoted, epoch 0) and on A.
fn zombie_leader_writes() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::ValidityEnds(0),
        Action::Expire(NODE_A),
        Action::Expire(NODE_B),
        Action::DeliverWrite(write_of_x(NODE_C)),
        Action::DeliverWrite(write_of_x(NODE_A)),
    ]);
    steps
}

#[test]
fn zombie_leader__when_its_lease_lapsed_on_every_node__then_its_late_writes_are_fenced() {
    // given
    let steps = zombie_leader_writes();

    // when
    let state = replay(None, &steps);

    // then
    assert!(!state.lapsed_write_to_quorum);
    assert!(state.nodes.iter().all(|n| n.stream.is_empty()), "{state:?}");
}

#[test]
fn zombie_leader__when_write_block_skips_the_owner_check__then_its_late_writes_reach_a_quorum_and_it_commits()
 {
    // given
    let steps = [zombie_leader_writes(), vec![Action::Commit(0)]].concat();

    // when
    let state = replay(Some(Mutation::NoOwnerCheck), &steps);

    // then
    assert!(state.lapsed_write_to_quorum);
    assert_eq!(chain_of(&state, 0), vec![X]);
}

/// P0 commits X on A and B; its local validity ends, both leases expire and P1 takes B and C.
fn takeover_after_a_commit_on_a_and_b() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::DeliverWrite(write_of_x(NODE_A)),
        Action::DeliverWrite(write_of_x(NODE_B)),
        Action::Commit(0),
        Action::ValidityEnds(0),
        Action::Expire(NODE_A),
        Action::Expire(NODE_B),
        Action::Acquire {
            producer: 1,
            reach: 1 << NODE_B | 1 << NODE_C,
        },
    ]);
    steps
}

#[test]
fn reconciliation__when_the_new_leader_reads_a_quorum__then_it_imports_the_committed_block() {
    // given
    let steps = [
        takeover_after_a_commit_on_a_and_b(),
        vec![Action::Reconcile {
            producer: 1,
            read: 1 << NODE_B | 1 << NODE_C,
        }],
    ]
    .concat();

    // when
    let state = replay(None, &steps);

    // then
    assert!(!state.reconciled_behind);
    assert_eq!(chain_of(&state, 1), chain_of(&state, 0));
}

#[test]
fn reconciliation__when_it_reads_one_node__then_the_new_leader_misses_the_committed_block_and_produces_over_it()
 {
    // given
    let steps = [
        takeover_after_a_commit_on_a_and_b(),
        vec![
            Action::Reconcile {
                producer: 1,
                read: 1 << NODE_C,
            },
            Action::Produce(1),
        ],
    ]
    .concat();

    // when
    let state = replay(Some(Mutation::ReadAnyOneNode), &steps);

    // then
    assert!(state.reconciled_behind);
    assert_eq!(state.producers[1].publish.map(|p| p.block.height), Some(1));
}

/// Z1 and Z2: P1's blocks at heights 1 and 2 in the far-behind start.
fn z(height: u8) -> Block {
    Block {
        height,
        producer: 1,
        attempt: height - 1,
        parent: (height > 1).then(|| BlockRef {
            producer: 1,
            attempt: height - 2,
        }),
    }
}

#[test]
fn far_behind_start__when_replayed__then_p0_is_behind_a_trimmed_log_that_still_holds_its_stale_orphan()
 {
    // given
    let config = ModelConfig::far_behind(None);

    // when
    let state = replay_from(config, &[]);

    // then
    assert_eq!(chain_of(&state, 0), Vec::<Block>::new());
    assert_eq!(chain_of(&state, 1), vec![z(1), z(2)]);
    assert_eq!(state.nodes[usize::from(NODE_A)].stream[0].block, X);
    for node in [NODE_B, NODE_C] {
        assert_eq!(heights_on(&state, node), vec![2]);
        assert_eq!(
            state.nodes[usize::from(node)].script.trim_floor,
            Some(BlockHeight::new(1))
        );
    }
    assert!(state.writes.is_empty());
}

/// From the far-behind start: P1's local validity ends and its key on B expires; P0 takes A and B
/// and reads them. A holds X at P0's next height, B holds only Z2 above it.
fn far_behind_leader_reconciles() -> Vec<Action> {
    [
        vec![Action::ValidityEnds(1), Action::Expire(NODE_B)],
        p0_leads_reading_a_and_b(),
    ]
    .concat()
}

#[test]
fn far_behind_leader__when_the_walk_has_no_gap_rule_and_write_block_no_trim_floor__then_it_repairs_its_stale_orphan_over_a_committed_block_and_forks()
 {
    // given
    let config = ModelConfig::far_behind(Some(Mutation::NoGapRuleNorTrimFloor));

    // when
    let state = replay_from(config, &far_behind_leader_reconciles());

    // then: B accepted X at the trimmed height (and trimmed it again at once: it keeps height
    // 2), the repair counted it, and P0 imported X where P1 committed Z1
    assert_eq!(chain_of(&state, 0), vec![X]);
    assert_eq!(chain_of(&state, 1)[0], z(1));
    assert!(!no_fork(&state));
}

#[test]
fn far_behind_leader__when_the_walk_sees_blocks_above_its_next_height__then_it_stands_aside_and_catches_up_from_a_peer()
 {
    // given
    let mut steps = far_behind_leader_reconciles();
    steps.push(Action::CatchUp {
        producer: 0,
        from: 1,
    });

    // when
    let state = replay_from(ModelConfig::far_behind(None), &steps);
    let without_trim_floor =
        replay_from(ModelConfig::far_behind(Some(Mutation::NoTrimFloor)), &steps);

    // then: no repair was tried, P0 holds P1's chain; the trim floor played no part
    assert_eq!(heights_on(&state, NODE_B), vec![2]);
    assert_eq!(chain_of(&state, 0), chain_of(&state, 1));
    assert!(no_fork(&state));
    assert_eq!(without_trim_floor, state);
}

#[test]
fn far_behind_leader__when_only_the_gap_rule_is_gone__then_the_trim_floor_refuses_the_repair_and_it_keeps_the_lease_without_progress()
 {
    // given
    let config = ModelConfig::far_behind(Some(Mutation::NoGapRule));

    // when
    let state = replay_from(config, &far_behind_leader_reconciles());

    // then: B refused X below its trim floor; P0 still leads, unreconciled, with nothing
    assert_eq!(heights_on(&state, NODE_B), vec![2]);
    let p0 = &state.producers[0];
    assert!(p0.epoch.is_some() && !p0.reconciled && p0.chain.is_empty());
    assert!(no_fork(&state));
}

/// P0 leads on A and B, publishes X, and its publish fails: it steps down, and its release is
/// lost (the keys linger on A and B). It acquires again on A and B (it may seal a second block).
fn two_blocks_each(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        max_attempts: 2,
        ..ModelConfig::small(mutation)
    }
}

fn leads_again_on_its_lingering_keys() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::PublishFailed(0),
        Action::Acquire {
            producer: 0,
            reach: 1 << NODE_A | 1 << NODE_B,
        },
    ]);
    steps
}

#[test]
fn epoch_floor__when_a_process_leads_again_on_keys_its_lost_release_left__then_it_gets_a_higher_epoch()
 {
    // given
    let steps = leads_again_on_its_lingering_keys();

    // when
    let state = replay_from(two_blocks_each(None), &steps);

    // then
    assert_eq!(state.producers[0].epoch, Some(Epoch::new(2)));
    assert!(!state.epoch_reused);
}

#[test]
fn epoch_floor__when_promote_has_no_floor__then_the_process_leads_again_at_the_epoch_it_used() {
    // given
    let steps = leads_again_on_its_lingering_keys();

    // when
    let state = replay_from(two_blocks_each(Some(Mutation::NoEpochFloor)), &steps);

    // then
    assert_eq!(state.producers[0].epoch, Some(Epoch::new(1)));
    assert!(state.epoch_reused);
}

/// The write of `block` under `epoch` from the first process of its producer to `node`.
fn write_of(block: Block, epoch: u64, node: u8) -> WriteMsg {
    WriteMsg {
        node,
        token: Token {
            producer: block.producer,
            incarnation: 0,
        },
        epoch: Epoch::new(epoch),
        block,
        view: Record::Old,
    }
}

/// A block at height 1 on genesis, sealed by `producer` at its `attempt`.
const fn first_height(producer: u8, attempt: u8) -> Block {
    Block {
        height: 1,
        producer,
        attempt,
        parent: None,
    }
}

/// X2: P0's second block at height 1 (epoch 2); Y: P1's (epoch 3).
const X2: Block = first_height(0, 1);
const Y: Block = first_height(1, 0);

/// The bound of the three-orphans counterexample: P0 may seal two blocks (both producers may),
/// epochs up to 4.
fn three_orphans_bound(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        max_epoch: 4,
        ..two_blocks_each(mutation)
    }
}

/// P0 publishes X at epoch 1 on A and B and fails; X lands late on A, where its key lingers. P0
/// leads again on A and B (epoch 2), reads B and C (A's read times out), finds nothing and
/// publishes X2. Its local validity ends and A's key expires; P1 takes A and C (epoch 3), reads B and C, finds nothing. X2
/// lands on B (P0's key lingers there) and fenced on A and C; P1's Y lands on C, is refused on A
/// (X holds height 1) and fenced on B. Both publishes fail: every node holds a different block
/// at height 1, none on a quorum.
fn three_orphans_story() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::PublishFailed(0),
        Action::DeliverWrite(write_of_x(NODE_A)),
    ]);
    steps.extend(p0_leads_on_a_and_b_reading_b_and_c_and_publishes());
    steps.extend([Action::ValidityEnds(0), Action::Expire(NODE_A)]);
    steps.extend(leads_reading(1, &[NODE_A, NODE_C], &[NODE_B, NODE_C]));
    steps.extend([
        Action::DeliverWrite(write_of(X2, 2, NODE_B)),
        Action::DeliverWrite(write_of(X2, 2, NODE_A)),
        Action::DeliverWrite(write_of(X2, 2, NODE_C)),
        Action::PublishFailed(0),
        Action::Produce(1),
        Action::DeliverWrite(write_of(Y, 3, NODE_C)),
        Action::DeliverWrite(write_of(Y, 3, NODE_A)),
        Action::DeliverWrite(write_of(Y, 3, NODE_B)),
        Action::PublishFailed(1),
    ]);
    steps
}

/// P0 takes the lease on A and B, reads B and C (A's read times out) and publishes at its next
/// height.
fn p0_leads_on_a_and_b_reading_b_and_c_and_publishes() -> Vec<Action> {
    let mut steps = leads_reading(0, &[NODE_A, NODE_B], &[NODE_B, NODE_C]).to_vec();
    steps.push(Action::Produce(0));
    steps
}

/// P1 leads again on A and C (epoch 4) and reconciles reading every node.
fn p1_leads_again_reading_every_node() -> Vec<Action> {
    leads_reading(1, &[NODE_A, NODE_C], &[NODE_A, NODE_B, NODE_C]).to_vec()
}

fn block_on(state: &State, node: u8) -> Vec<Block> {
    state.nodes[usize::from(node)]
        .stream
        .iter()
        .map(|entry| entry.block)
        .collect()
}

#[test]
fn three_orphans__when_replayed__then_every_node_holds_a_different_block_at_height_one() {
    // given
    let steps = three_orphans_story();

    // when
    let state = replay_from(three_orphans_bound(None), &steps);

    // then
    assert_eq!(block_on(&state, NODE_A), vec![X]);
    assert_eq!(block_on(&state, NODE_B), vec![X2]);
    assert_eq!(block_on(&state, NODE_C), vec![Y]);
    assert!(
        state
            .producers
            .iter()
            .all(|p| p.epoch.is_none() && p.chain.is_empty())
    );
}

#[test]
fn three_orphans__when_a_repair_may_not_replace__then_no_leader_can_ever_fill_the_height() {
    // given
    let config = three_orphans_bound(Some(Mutation::NoReplacement));
    let model = ProtocolModel::new(config).unwrap();
    let orphans = replay_from(config, &three_orphans_story());

    // when: the highest-epoch orphan Y has no free node to be repaired to
    let state = replay_from(
        config,
        &[three_orphans_story(), p1_leads_again_reading_every_node()].concat(),
    );

    // then: P1 keeps its lease without progress, and no fault-free continuation fills the height
    let p1 = &state.producers[1];
    assert!(p1.epoch.is_some() && !p1.reconciled && p1.chain.is_empty());
    assert_eq!(block_on(&state, NODE_A), vec![X]);
    assert_eq!(block_on(&state, NODE_B), vec![X2]);
    assert_eq!(block_on(&state, NODE_C), vec![Y]);
    assert!(!progress_possible(&model, &orphans));
    assert!(!progress_possible(&model, &state));
}

#[test]
fn three_orphans__when_the_complete_read_proves_none_can_be_committed__then_the_repair_replaces_one_and_the_leader_imports_it()
 {
    // given
    let config = three_orphans_bound(None);
    let model = ProtocolModel::new(config).unwrap();
    let orphans = replay_from(config, &three_orphans_story());

    // when: every node read, nothing above, no block on a majority: Y replaces X on A
    let state = replay_from(
        config,
        &[three_orphans_story(), p1_leads_again_reading_every_node()].concat(),
    );

    // then
    assert_eq!(block_on(&state, NODE_A), vec![Y]);
    assert_eq!(block_on(&state, NODE_B), vec![X2]);
    assert_eq!(block_on(&state, NODE_C), vec![Y]);
    assert_eq!(chain_of(&state, 1), vec![Y]);
    assert!(!state.replaced_committed);
    assert!(progress_possible(&model, &orphans));
}

#[test]
fn three_orphans__when_the_leader_reads_only_two_nodes__then_it_does_not_replace_and_waits_for_a_complete_read()
 {
    // given: the same story, but A's read times out
    let config = three_orphans_bound(None);
    let mut steps = three_orphans_story();
    steps.extend(leads_reading(1, &[NODE_A, NODE_C], &[NODE_B, NODE_C]));

    // when
    let state = replay_from(config, &steps);

    // then: nothing replaced, nothing imported; P1 keeps its lease and reads again
    assert_eq!(block_on(&state, NODE_A), vec![X]);
    assert_eq!(block_on(&state, NODE_B), vec![X2]);
    let p1 = &state.producers[1];
    assert!(p1.epoch.is_some() && !p1.reconciled && p1.chain.is_empty());
}

/// R1: P1's first block at height 1 (epoch 2); Y1: its second (epoch 3).
const R1: Block = first_height(1, 0);
const Y1: Block = first_height(1, 1);

/// P0 leads on A and B (epoch 1), publishes X, which lands on A, and fails. P1 leads on B and C
/// (epoch 2), reads them (nothing: X is on A only), publishes R1 and fails with R1's writes
/// still on the wire; its keys linger. P1 leads again on A and B (epoch 3), reads B and C
/// (nothing yet) and is reconciled. R1 then lands on C, where P1's key of its first
/// leadership lingers. P1 publishes Y1: it lands on B and is refused on A (X) and on C (R1).
fn a_quorum_refuses_the_leaders_block() -> Vec<Action> {
    let mut steps = p0_publishes_x_leading_on_a_and_b();
    steps.extend([
        Action::DeliverWrite(write_of_x(NODE_A)),
        Action::PublishFailed(0),
        Action::Expire(NODE_B),
    ]);
    steps.extend(leads_reading(1, &[NODE_B, NODE_C], &[NODE_B, NODE_C]));
    steps.extend([
        Action::Produce(1),
        Action::PublishFailed(1),
        Action::Expire(NODE_A),
    ]);
    steps.extend(leads_reading(1, &[NODE_A, NODE_B], &[NODE_B, NODE_C]));
    steps.extend([
        Action::DeliverWrite(write_of(R1, 2, NODE_C)),
        Action::Produce(1),
        Action::DeliverWrite(write_of(Y1, 3, NODE_B)),
        Action::DeliverWrite(write_of(Y1, 3, NODE_A)),
        Action::DeliverWrite(write_of(Y1, 3, NODE_C)),
    ]);
    steps
}

#[test]
fn refused_publish__when_a_quorum_refuses_the_height__then_the_leader_keeps_its_lease_reconciles_again_and_replaces()
 {
    // given: two blocks for P1, epochs up to 3
    let config = two_blocks_each(None);
    let model = ProtocolModel::new(config).unwrap();
    let refused = replay_from(config, &a_quorum_refuses_the_leaders_block());
    let mut enabled = Vec::new();
    model.actions(&refused, &mut enabled);

    // when
    let mut steps = a_quorum_refuses_the_leaders_block();
    steps.push(Action::PublishRefused(1));
    let kept = replay_from(config, &steps);
    steps.push(Action::Reconcile {
        producer: 1,
        read: nodes(&[NODE_A, NODE_B, NODE_C]),
    });
    let state = replay_from(config, &steps);

    // then: the publish ends refused, not failed; P1 keeps its lease and epoch, must reconcile
    // before it produces, and its next scan finds X, Y1 and R1 one per node: Y1, the highest
    // epoch, replaces X on A and is imported
    assert!(!enabled.contains(&Action::PublishFailed(1)), "{enabled:?}");
    let p1 = &kept.producers[1];
    assert_eq!(p1.epoch, Some(Epoch::new(3)));
    assert!(!p1.reconciled && p1.publish.is_none());
    let mut next = Vec::new();
    model.actions(&kept, &mut next);
    assert!(!next.contains(&Action::Produce(1)));
    assert_eq!(block_on(&kept, NODE_A), vec![X]);
    assert_eq!(block_on(&kept, NODE_B), vec![Y1]);
    assert_eq!(block_on(&kept, NODE_C), vec![R1]);
    assert_eq!(chain_of(&state, 1), vec![Y1]);
    assert_eq!(block_on(&state, NODE_A), vec![Y1]);
}

/// Five nodes (quorum 3, bare majority 3): the fourth and fifth.
const NODE_D: u8 = 3;
const NODE_E: u8 = 4;

/// Five nodes, epochs up to 4, three blocks per producer (P1 seals two and leads a third time).
fn five_nodes(mutation: Option<Mutation>) -> ModelConfig {
    ModelConfig {
        nodes: 5,
        max_epoch: 4,
        max_attempts: 3,
        ..ModelConfig::small(mutation)
    }
}

/// R: P1's first block (epoch 1); W: P1's second (epoch 3). P0's block X is published at
/// epoch 2 here.
const R: Block = first_height(1, 0);
const W: Block = first_height(1, 1);

/// On five nodes: P1 leads on C, D and E (epoch 1), publishes R and fails; its release reaches
/// C and D only, so its key lingers on E. P0 leads on A, B and D (epoch 2), reads them, and
/// publishes X, which lands on A and B; its write to D is delayed. P0's keys on A and B expire
/// (its key on D does not). P1 leads on A, B and C (epoch 3), reads C, D and E (nothing yet),
/// and R lands late on E, where P1's old key lingers. P1 publishes W: it lands on C, A and B
/// refuse the height (X), E refuses it (R): a quorum refused, P1 keeps its lease. It reads every
/// node: X on A and B, W on C, nothing on D, R on E. No block is on a majority, nothing above:
/// `may_replace_at` holds, and W (the highest epoch) needs two more nodes with only D free, so
/// the plan writes D and replaces X on A. D fences the write (P0's key), the repair fails, but
/// X is gone from A. Then X lands on D: P0's tally counts A, B and D and P0 commits X, which
/// now sits on B and D only.
fn stale_publish_completes_after_a_replacement() -> Vec<Action> {
    let every_node = [NODE_A, NODE_B, NODE_C, NODE_D, NODE_E];
    let (abc, abd, cde) = (
        [NODE_A, NODE_B, NODE_C],
        [NODE_A, NODE_B, NODE_D],
        [NODE_C, NODE_D, NODE_E],
    );
    let mut steps = Vec::new();
    steps.extend(leads_reading(1, &cde, &cde));
    steps.extend([
        Action::Produce(1),
        Action::PublishFailed(1),
        Action::Expire(NODE_C),
        Action::Expire(NODE_D),
    ]);
    steps.extend(leads_reading(0, &abd, &abd));
    steps.extend([
        Action::Produce(0),
        Action::DeliverWrite(write_of(X, 2, NODE_A)),
        Action::DeliverWrite(write_of(X, 2, NODE_B)),
        Action::ValidityEnds(0),
        Action::Expire(NODE_A),
        Action::Expire(NODE_B),
    ]);
    steps.extend(leads_reading(1, &abc, &cde));
    steps.extend([
        Action::DeliverWrite(write_of(R, 1, NODE_E)),
        Action::Produce(1),
        Action::DeliverWrite(write_of(W, 3, NODE_C)),
        Action::DeliverWrite(write_of(W, 3, NODE_A)),
        Action::DeliverWrite(write_of(W, 3, NODE_B)),
        Action::DeliverWrite(write_of(W, 3, NODE_E)),
        Action::PublishRefused(1),
        Action::Reconcile {
            producer: 1,
            read: nodes(&every_node),
        },
        Action::DeliverWrite(write_of(X, 2, NODE_D)),
        Action::Commit(0),
    ]);
    steps
}

#[test]
fn replacement__when_a_free_node_refuses_the_winner__then_nothing_is_replaced_and_the_stale_publish_commits_without_a_fork()
 {
    // given: the five-node story under the rules: D (free at the read, P0's key there) fences
    // the repair's first step, so X stays on A
    let config = five_nodes(None);
    let committed = replay_from(config, &stale_publish_completes_after_a_replacement());
    assert_eq!(chain_of(&committed, 0), vec![X]);
    assert_eq!(block_on(&committed, NODE_A), vec![X]);
    assert_eq!(block_on(&committed, NODE_B), vec![X]);
    assert_eq!(block_on(&committed, NODE_D), vec![X]);

    // when: P1, still leading (its repair failed, it keeps the lease), reads every node again
    let mut steps = stale_publish_completes_after_a_replacement();
    steps.push(Action::Reconcile {
        producer: 1,
        read: nodes(&[NODE_A, NODE_B, NODE_C, NODE_D, NODE_E]),
    });
    let state = replay_from(config, &steps);

    // then: X is on a majority, committed, and P1 takes it
    assert_eq!(chain_of(&state, 1), vec![X]);
    assert!(!state.replaced_committed);
    assert!(no_fork(&state));
}

#[test]
fn replace_at_once__when_a_stale_publish_completes_on_a_node_the_repairer_does_not_hold__then_a_committed_block_is_replaced_and_producers_fork()
 {
    // given: the first replacement rule (replace without waiting for every free node), on five
    // nodes
    let config = five_nodes(Some(Mutation::ReplaceAtOnce));
    let committed = replay_from(config, &stale_publish_completes_after_a_replacement());
    assert_eq!(chain_of(&committed, 0), vec![X]);
    assert_eq!(block_on(&committed, NODE_A), vec![W]);
    assert_eq!(block_on(&committed, NODE_B), vec![X]);
    assert_eq!(block_on(&committed, NODE_D), vec![X]);

    // when: P1 leads again (epoch 4) and reads every node: W on A and C, X on B and D, R on E,
    // none on a majority, so W replaces X on B
    let mut steps = stale_publish_completes_after_a_replacement();
    steps.extend(leads_reading(
        1,
        &[NODE_A, NODE_B, NODE_C],
        &[NODE_A, NODE_B, NODE_C, NODE_D, NODE_E],
    ));
    let state = replay_from(config, &steps);

    // then: P1 imports W where P0 committed X
    assert_eq!(chain_of(&state, 1), vec![W]);
    assert!(state.replaced_committed);
    assert!(!no_fork(&state));
}
