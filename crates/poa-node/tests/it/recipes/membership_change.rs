//! docs/operations.md 7.14 run as written, with real redis-servers and real poa-node processes
//! producing throughout: the node on 6381 replaced by one on 6382 through the joint phase, a
//! producer of each list (old, both, new) running and taking transactions, and the chain going
//! on across the change with one block per height.

use std::path::Path;
use std::process::{Command, Stdio};

use poa_test_support::RedisServer;

use super::load::Load;
use super::{
    HANG, KillOnDrop, Shell, body_of, height_of, id_at, recipe, status_of, with_redis_ports,
};
use crate::support::{binary, eventually};

/// A producer on `current`, with `next` as its `--next-redis-url` list (none when empty).
fn producer(current: &[&RedisServer], next: &[&RedisServer], http: &str, dir: &Path) -> KillOnDrop {
    let data_dir = dir.join(http.replace([':', '.'], "-"));
    let urls = |flag: &'static str, servers: &[&RedisServer]| {
        servers
            .iter()
            .flat_map(move |server| [flag.to_owned(), server.url()])
            .collect::<Vec<_>>()
    };
    let mut node = Command::new(binary());
    node.arg("--data-dir")
        .arg(&data_dir)
        .args(["--http", http, "--admin-http", "127.0.0.1:0"])
        .args(["--block-time", "100ms"])
        .args(urls("--redis-url", current))
        .args(urls("--next-redis-url", next))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    KillOnDrop(node.spawn().unwrap())
}

/// Runs the recipe under `heading` and returns its output after checking it exited 0.
fn run(heading: &str, servers: &[RedisServer], dir: &Path) -> String {
    let script = with_redis_ports(&recipe("docs/operations.md", heading), servers);
    let mut shell = Shell::start(&script, dir);
    let code = shell.wait();
    let output = shell.output();
    assert_eq!(code, 0, "{heading}: {output}");
    output
}

pub(super) fn membership_change_recipe_of_the_runbook() {
    // given: the old list's producer leads; one with both lists waits; transactions go to
    // every producer (the new list's once it is up)
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let dir = tempfile::tempdir().unwrap();
    let old_list = [&servers[0], &servers[1], &servers[2]];
    let new_list = [&servers[0], &servers[1], &servers[3]];
    let (old, both, new) = ("127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003");
    let _old = producer(&old_list, &[], old, dir.path());
    assert!(
        eventually(HANG, || height_of(old) >= 5),
        "the old list's producer did not produce: {}",
        body_of(&format!("http://{old}/status"))
    );
    let _both = producer(&old_list, &new_list, both, dir.path());
    let load = Load::start(&[old, both, new]);

    // when: the change begins, as written
    let begun = run("7.14.1", &servers, dir.path());

    // then: the producer with both lists leads and goes on from the old list's chain, the old
    // list's producer stops leading
    assert!(begun.contains("generation 2"), "{begun}");
    let at_begin = height_of(old);
    assert!(
        eventually(HANG, || height_of(both) >= at_begin + 5),
        "the producer with both lists did not go on: {}",
        body_of(&format!("http://{both}/status"))
    );
    assert!(
        eventually(HANG, || status_of(&format!("http://{old}/leader"))
            == Some(503)),
        "the old list's producer still leads"
    );

    // when: a producer of the new list starts, and the change is committed, as written
    let _new = producer(&new_list, &[], new, dir.path());
    let committed = run("7.14.2", &servers, dir.path());

    // then: the new list's producer leads and the chain goes on, with one block per height
    assert!(committed.contains("generation 3"), "{committed}");
    let at_commit = height_of(both);
    assert!(
        eventually(HANG, || height_of(new) >= at_commit + 5),
        "the new list's producer did not go on: {}",
        body_of(&format!("http://{new}/status"))
    );
    assert!(
        eventually(HANG, || status_of(&format!("http://{both}/leader"))
            == Some(503)),
        "the producer with both lists still leads after the commit"
    );
    let accepted = load.stop();
    assert!(accepted > 0, "no transaction was accepted");
    let top = height_of(new);
    for height in 1..=top {
        let ids: std::collections::BTreeSet<String> = [old, both, new]
            .iter()
            .filter_map(|http| id_at(http, height))
            .collect();
        assert_eq!(ids.len(), 1, "height {height} has blocks {ids:?}");
    }
}
