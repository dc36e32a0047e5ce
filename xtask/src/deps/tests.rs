//! Tests for the layering rules: how they are derived, how `cargo tree` answers are read, and
//! the real workspace checked with `cargo tree`.

#![allow(non_snake_case)]

use super::*;

fn crates(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn pairs(rules: &[Rule]) -> Vec<(&str, &str)> {
    rules
        .iter()
        .map(|rule| (rule.package.as_str(), rule.forbidden.as_str()))
        .collect()
}

/// What `cargo tree` says about a made-up rule against the real workspace.
fn ask_about(package: &str, forbidden: &str) -> TreeAnswer {
    let rule = Rule {
        package: package.to_owned(),
        forbidden: forbidden.to_owned(),
        reason: "made up for this test",
    };
    ask(&layout::project_root().unwrap(), &rule).unwrap()
}

const TODAY: &[&str] = &[
    "adapter-chain",
    "adapter-noop",
    "adapter-redis",
    "poa-core",
    "poa-node",
    "poa-ports",
    "poa-quorum",
    "poa-test-support",
];

#[test]
fn rules__when_workspace_has_todays_crates__then_forbids_each_documented_edge() {
    // given
    let crates = crates(TODAY);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    let expected = [
        ("poa-ports", "tokio"),
        ("poa-ports", "fred"),
        ("poa-ports", "poa-core"),
        ("poa-ports", "adapter-chain"),
        ("poa-ports", "adapter-noop"),
        ("poa-ports", "adapter-redis"),
        ("poa-ports", "serde"),
        ("poa-ports", "postcard"),
        ("poa-core", "fred"),
        ("poa-core", "redb"),
        ("poa-core", "ed25519-dalek"),
        ("poa-core", "axum"),
        ("poa-core", "adapter-chain"),
        ("poa-core", "adapter-noop"),
        ("poa-core", "adapter-redis"),
        ("poa-core", "serde"),
        ("poa-core", "postcard"),
        ("poa-quorum", "tokio"),
        ("poa-quorum", "fred"),
        ("poa-quorum", "poa-core"),
        ("poa-quorum", "adapter-chain"),
        ("poa-quorum", "adapter-noop"),
        ("poa-quorum", "adapter-redis"),
        ("adapter-chain", "poa-core"),
        ("adapter-chain", "adapter-noop"),
        ("adapter-chain", "adapter-redis"),
        ("adapter-chain", "fred"),
        ("adapter-noop", "poa-core"),
        ("adapter-noop", "adapter-chain"),
        ("adapter-noop", "adapter-redis"),
        ("adapter-noop", "fred"),
        ("adapter-redis", "poa-core"),
        ("adapter-redis", "adapter-chain"),
        ("adapter-redis", "adapter-noop"),
        ("poa-test-support", "poa-core"),
        ("poa-test-support", "fred"),
        ("poa-test-support", "adapter-chain"),
        ("poa-test-support", "adapter-noop"),
        ("poa-test-support", "adapter-redis"),
    ];
    for pair in expected {
        assert!(pairs.contains(&pair), "missing rule {pair:?}");
    }
    for name in TODAY {
        assert!(
            pairs.contains(&("xtask", name)),
            "xtask may depend on {name}"
        );
    }
    assert_eq!(pairs.len(), expected.len() + TODAY.len(), "{pairs:?}");
}

#[test]
fn rules__when_the_chaos_harness_exists__then_no_other_crate_may_depend_on_it() {
    // given
    let mut names = TODAY.to_vec();
    names.push("poa-chaos");
    let crates = crates(&names);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    for name in TODAY {
        assert!(
            pairs.contains(&(name, "poa-chaos")),
            "{name} may depend on poa-chaos"
        );
    }
    assert!(!pairs.contains(&("poa-chaos", "poa-chaos")));
    assert!(!pairs.contains(&("poa-chaos", "poa-test-support")));
}

#[test]
fn rules__when_the_bench_harness_exists__then_nothing_depends_on_it_and_only_it_reaches_rslock() {
    // given
    let mut names = TODAY.to_vec();
    names.push("poa-bench");
    let crates = crates(&names);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    for name in TODAY.iter().chain(&["xtask"]) {
        for forbidden in ["poa-bench", "rslock", "redis"] {
            assert!(
                pairs.contains(&(name, forbidden)),
                "{name} may depend on {forbidden}"
            );
        }
    }
    for allowed in [
        "poa-bench",
        "rslock",
        "redis",
        "adapter-redis",
        "poa-test-support",
    ] {
        assert!(
            !pairs.contains(&("poa-bench", allowed)),
            "poa-bench may depend on {allowed}"
        );
    }
}

#[test]
fn rules__when_an_example_chain_exists__then_it_may_not_reach_the_reference_chain_or_the_tooling() {
    // given
    let mut names = TODAY.to_vec();
    names.extend(["poa-chaos", "poa-bench"]);
    let examples = crates(&["fuel-style-chain"]);
    let crates = crates(&names);

    // when
    let rules = rules(&crates, &examples);

    // then
    let pairs = pairs(&rules);
    for forbidden in ["adapter-chain", "poa-chaos", "poa-bench", "rslock"] {
        assert!(
            pairs.contains(&("fuel-style-chain", forbidden)),
            "the example may depend on {forbidden}"
        );
    }
    assert!(pairs.contains(&("xtask", "fuel-style-chain")));
    for allowed in ["poa-core", "poa-ports", "adapter-redis", "adapter-memory"] {
        assert!(!pairs.contains(&("fuel-style-chain", allowed)), "{allowed}");
    }
}

#[test]
fn rules__when_the_model_exists__then_it_may_reach_poa_quorum_and_poa_ports_only() {
    // given
    let mut names = TODAY.to_vec();
    names.push("poa-model");
    let crates = crates(&names);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    for forbidden in [
        "tokio",
        "fred",
        "poa-core",
        "poa-node",
        "poa-test-support",
        "adapter-chain",
        "adapter-noop",
        "adapter-redis",
    ] {
        assert!(
            pairs.contains(&("poa-model", forbidden)),
            "poa-model may depend on {forbidden}"
        );
    }
    for allowed in ["poa-quorum", "poa-ports", "poa-model"] {
        assert!(
            !pairs.contains(&("poa-model", allowed)),
            "poa-model may not depend on {allowed}"
        );
    }
}

#[test]
fn rules__when_checking_allowed_edges__then_none_is_forbidden() {
    // given
    let crates = crates(TODAY);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    for allowed in [
        ("poa-core", "tokio"),
        ("poa-core", "poa-ports"),
        ("adapter-redis", "fred"),
        ("adapter-redis", "poa-ports"),
    ] {
        assert!(!pairs.contains(&allowed), "{allowed:?} is allowed");
    }
    assert!(
        rules.iter().all(|rule| rule.package != "poa-node"),
        "poa-node wires everything and has no rule"
    );
}

#[test]
fn rules__when_a_new_adapter_appears__then_it_is_covered_on_both_sides() {
    // given
    let crates = crates(&["adapter-kafka", "adapter-redis", "poa-core", "poa-ports"]);

    // when
    let rules = rules(&crates, &[]);

    // then
    let pairs = pairs(&rules);
    for pair in [
        ("adapter-kafka", "poa-core"),
        ("adapter-kafka", "adapter-redis"),
        ("adapter-kafka", "fred"),
        ("adapter-redis", "adapter-kafka"),
        ("poa-core", "adapter-kafka"),
        ("poa-ports", "adapter-kafka"),
        ("xtask", "adapter-kafka"),
    ] {
        assert!(pairs.contains(&pair), "missing rule {pair:?}");
    }
}

#[test]
fn rules__when_a_crate_is_absent__then_no_rule_names_it_as_the_package() {
    // given
    let crates = crates(&["poa-ports"]);

    // when
    let rules = rules(&crates, &[]);

    // then
    let packages: Vec<&str> = rules.iter().map(|rule| rule.package.as_str()).collect();
    assert!(
        packages
            .iter()
            .all(|package| ["poa-ports", "xtask"].contains(package)),
        "{packages:?}"
    );
    assert!(pairs(&rules).contains(&("xtask", "poa-ports")));
}

#[test]
fn classify__when_cargo_tree_prints_a_path__then_reports_the_path() {
    // given
    let tree = "fred v10.1.0\n└── poa-core v0.0.0 (/work/crates/poa-core)\n";

    // when
    let answer = classify("fred", true, tree, "");

    // then
    assert_eq!(
        answer.unwrap(),
        TreeAnswer::Path(tree.trim_end().to_owned())
    );
}

#[test]
fn classify__when_cargo_tree_has_nothing_to_print__then_no_path() {
    // given: the dependency is in the graph only behind a dev-dependency edge
    let stderr = "warning: nothing to print.\n\nTo find dependencies that require specific target \
                  platforms, try to use option `--target all` first";

    // when
    let answer = classify("mockall", true, "", stderr);

    // then
    assert_eq!(answer.unwrap(), TreeAnswer::NoPath);
}

#[test]
fn classify__when_the_dependency_is_not_in_the_graph__then_no_path() {
    // given
    let stderr = "error: package ID specification `tokio` did not match any packages\n";

    // when
    let answer = classify("tokio", false, "", stderr);

    // then
    assert_eq!(answer.unwrap(), TreeAnswer::NoPath);
}

#[test]
fn classify__when_a_different_spec_did_not_match__then_error() {
    // given: the failure is about another package, so it says nothing about `tokio`
    let stderr = "error: package ID specification `poa-prots` did not match any packages\n";

    // when
    let answer = classify("tokio", false, "", stderr);

    // then
    assert!(answer.is_err());
}

#[test]
fn classify__when_the_lockfile_is_stale__then_error_not_a_pass() {
    // given
    let stderr = "error: the lock file /work/Cargo.lock needs to be updated but --locked was \
                  passed to prevent this";

    // when
    let answer = classify("fred", false, "", stderr);

    // then
    let err = answer.unwrap_err();
    assert!(format!("{err}").contains("--locked"), "{err}");
}

/// The real check, as `cargo xtask deps` runs it: a plain `cargo test` enforces the layering.
#[test]
fn workspace__when_checked_with_cargo_tree__then_every_layering_rule_holds() {
    // given
    let root = layout::project_root().unwrap();

    // when
    let (checked, violations) = check(&root).unwrap();

    // then
    assert!(checked > 0, "no rules were checked");
    let report: Vec<String> = violations
        .iter()
        .map(|violation| format!("{}\n{}", violation.rule, violation.tree))
        .collect();
    assert!(violations.is_empty(), "{}", report.join("\n\n"));
}

#[test]
fn ask__when_the_workspace_has_a_real_normal_edge__then_cargo_tree_reports_a_path() {
    // given: poa-core depends on poa-ports, an allowed edge, so a rule against it must break

    // when
    let answer = ask_about("poa-core", "poa-ports");

    // then
    assert!(
        matches!(&answer, TreeAnswer::Path(tree) if tree.contains("poa-core")),
        "{answer:?}"
    );
}

#[test]
fn ask__when_the_dependency_is_only_a_dev_dependency__then_no_path() {
    // given: poa-core uses mockall in its tests only

    // when
    let answer = ask_about("poa-core", "mockall");

    // then
    assert_eq!(answer, TreeAnswer::NoPath);
}
