//! docs/operations.md 7.1 under load: every Redis node in turn restarted with its data, then
//! emptied, then restored from a backup taken before, while two producers take transactions,
//! each step only once the runbook's wait ended for the one before; then every height of the
//! window is on a quorum of the servers, the chain advanced throughout, and both producers hold
//! the same block at every height. The wait is read as written "on the leader": from
//! `localhost:4000` while the producer there leads (it leads first), from the other's address
//! after the lease moved (a starved machine can time out a whole publish).

use std::collections::BTreeMap;

use poa_test_support::{RedisServer, RespValue, Snapshot};

use super::load::Load;
use super::{HANG, Shell, height_of, id_at, producer_on, recipe, status_of};
use crate::support::eventually;

const LEADER: &str = "127.0.0.1:4000";
const FOLLOWER: &str = "127.0.0.1:4002";
/// The heights index every server keeps (the default `--lease-key` and its suffix).
const HEIGHTS_INDEX: &str = "poa:leader:lock:heights:index";
/// The heights anti-entropy keeps on a quorum: the highest `--stream-max-len / 2` (1000 by
/// default).
const WINDOW: u64 = 500;

/// The value of the metric `name` in the recipe's output, if it printed it.
fn metric(output: &str, name: &str) -> Option<f64> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// The producer that leads now, if one does.
fn leader_now() -> Option<&'static str> {
    [LEADER, FOLLOWER]
        .into_iter()
        .find(|http| status_of(&format!("http://{http}/leader")) == Some(200))
}

/// Runs the 7.1 recipe as written, on the leader at `http`, and returns what it printed.
fn run_recipe(dir: &std::path::Path, http: &str) -> String {
    let script = recipe("docs/operations.md", "7.1 ").replace(
        "localhost:4000",
        &format!("localhost:{}", http.rsplit(':').next().unwrap_or(http)),
    );
    let mut shell = Shell::start(&script, dir);
    let code = shell.wait();
    let output = shell.output();
    assert_eq!(code, 0, "{output}");
    output
}

/// How many of `servers` index a block at `height`.
fn holders(servers: &[RedisServer], height: u64) -> usize {
    let score = height.to_string();
    servers
        .iter()
        .filter(|server| {
            matches!(
                server.command(&[b"ZCOUNT", HEIGHTS_INDEX.as_bytes(), score.as_bytes(), score.as_bytes()]),
                RespValue::Integer(count) if count > 0
            )
        })
        .count()
}

/// What happens to a server at one step of the test.
#[derive(Clone, Copy)]
enum Loss<'a> {
    /// Restarted with its data (7.1 step 2).
    Restarted,
    /// Back empty (7.1 step 3).
    Emptied,
    /// Back from the backup (7.1 step 3: the same procedure).
    Restored(&'a Snapshot),
}

pub(super) fn emptied_node_recipe_under_load() {
    // given: a leader on 4000 and a follower, three servers that keep their data across a
    // restart, transactions submitted to both
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::builder().append_only().start())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<&RedisServer> = servers.iter().collect();
    let _leader = producer_on(&list, LEADER, dir.path());
    assert!(
        eventually(HANG, || status_of(&format!("http://{LEADER}/leader"))
            == Some(200)),
        "the producer did not lead on {LEADER}"
    );
    let _follower = producer_on(&list, FOLLOWER, dir.path());
    let load = Load::start(&[LEADER, FOLLOWER]);
    assert!(
        eventually(HANG, || height_of(FOLLOWER) >= 30),
        "the follower did not follow"
    );
    let height_before = height_of(LEADER);
    let backups: Vec<_> = servers.iter().map(RedisServer::snapshot).collect();

    // when: each server in turn is restarted with its data, then each is emptied, then each
    // comes back from the backup taken before; every step waits until the runbook's wait ended
    // for the one before (two more passes, nothing below quorum)
    let steps = (0..3)
        .map(|server| (server, Loss::Restarted))
        .chain((0..3).map(|server| (server, Loss::Emptied)))
        .chain((0..3).map(|server| (server, Loss::Restored(&backups[server]))));
    for (server, loss) in steps {
        // (the passes counted before the loss, by the producer that then led; a producer that
        // leads only later counts from its first reading)
        let mut passes_before = BTreeMap::new();
        let mut leading = None;
        assert!(
            eventually(HANG, || {
                leading = leader_now();
                leading.is_some()
            }),
            "no producer leads before server {server}'s step"
        );
        let leader = leading.expect("a producer leads");
        let passes = metric(
            &run_recipe(dir.path(), leader),
            "poa_anti_entropy_passes_total",
        )
        .expect("the recipe prints the passes");
        passes_before.insert(leader, passes);
        let what = match loss {
            Loss::Restarted => {
                servers[server].restart_keeping_data();
                "restarted"
            }
            Loss::Emptied => {
                servers[server].restart();
                "emptied"
            }
            Loss::Restored(backup) => {
                servers[server].restore(backup);
                "restored"
            }
        };
        let waited = eventually(HANG, || {
            let Some(leader) = leader_now() else {
                return false;
            };
            let output = run_recipe(dir.path(), leader);
            let Some(passes) = metric(&output, "poa_anti_entropy_passes_total") else {
                return false;
            };
            let before = *passes_before.entry(leader).or_insert(passes);
            passes >= before + 2.0 && metric(&output, "poa_heights_below_quorum") == Some(0.0)
        });
        assert!(
            waited,
            "server {server} {what}: passes before {passes_before:?}; {LEADER}: {}; {FOLLOWER}: {}",
            run_recipe(dir.path(), LEADER),
            run_recipe(dir.path(), FOLLOWER),
        );
    }
    let accepted = load.stop();
    assert!(accepted > 0, "no transaction was accepted");

    // then: the chain advanced throughout; every height of the window is on a quorum of the
    // servers; and both producers hold the same block at every height
    let top = height_of(LEADER).max(height_of(FOLLOWER));
    assert!(top > height_before + 10, "{height_before} -> {top}");
    let short: Vec<u64> = (top.saturating_sub(WINDOW - 1).max(1)..=top)
        .filter(|height| holders(&servers, *height) < 2)
        .collect();
    assert!(short.is_empty(), "heights below a quorum: {short:?}");
    assert!(
        eventually(HANG, || height_of(LEADER) >= top
            && height_of(FOLLOWER) >= top),
        "the producers did not both reach {top}"
    );
    for height in 1..=top {
        assert_eq!(
            id_at(LEADER, height),
            id_at(FOLLOWER, height),
            "height {height}"
        );
    }
}
