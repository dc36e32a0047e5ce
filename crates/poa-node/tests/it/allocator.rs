//! The malloc arena limit: a node started without one runs with two glibc arenas (it applies the
//! limit itself), and a limit the environment sets is kept.

use std::time::Duration;

use crate::support::{Node, eventually};

const ARGS: &[&str] = &["--block-time", "100ms"];

#[test]
fn node__when_started_without_an_arena_limit__then_runs_with_two_arenas_and_says_so() {
    // given
    let dir = tempfile::tempdir().unwrap();

    // when
    let node = Node::start_with_environment(
        dir.path(),
        ARGS,
        &[("MALLOC_ARENA_MAX", None), ("GLIBC_TUNABLES", None)],
    );

    // then: the process runs with the limit, logs it, and works
    assert!(
        node.environment()
            .contains(&"MALLOC_ARENA_MAX=2".to_owned()),
        "{:?}",
        node.environment()
    );
    assert!(node.log_contains("malloc arena limit"));
    assert!(eventually(Duration::from_secs(20), || node.height() >= 2));
}

#[test]
fn node__when_the_environment_sets_an_arena_limit__then_keeps_it() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let tunables_dir = tempfile::tempdir().unwrap();

    // when
    let variable =
        Node::start_with_environment(dir.path(), ARGS, &[("MALLOC_ARENA_MAX", Some("4"))]);
    let tunable = Node::start_with_environment(
        tunables_dir.path(),
        ARGS,
        &[
            ("MALLOC_ARENA_MAX", None),
            ("GLIBC_TUNABLES", Some("glibc.malloc.arena_max=3")),
        ],
    );

    // then
    let variable_environment = variable.environment();
    assert!(
        variable_environment.contains(&"MALLOC_ARENA_MAX=4".to_owned()),
        "{variable_environment:?}"
    );
    let tunable_environment = tunable.environment();
    assert!(
        !tunable_environment
            .iter()
            .any(|entry| entry.starts_with("MALLOC_ARENA_MAX=")),
        "{tunable_environment:?}"
    );
}
