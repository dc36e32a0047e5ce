//! `cargo xtask deps`: the workspace layering, checked with `cargo tree -i`.
//!
//! Each rule names a package and a dependency it must not reach through normal (non-dev)
//! dependencies; `cargo tree -e normal -p <package> -i <dependency> --locked` must find no path.
//! The rules are derived from the directory names under `crates/` and `examples/`, so a new
//! `adapter-*` crate or example chain is covered on both sides without editing this file. Dev-dependencies are out of scope: tests may
//! use fixtures and mocks the production graph must not. This module reads the graph and never
//! edits a manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Stdio;
use std::thread;

use anyhow::{Context, Result, anyhow, bail};

use crate::cmd::{self, cargo};
use crate::layout::{self, BENCH, CHAOS, DEMO, MODEL, TEST_SUPPORT, XTASK};

#[cfg(test)]
mod tests;

const PORTS: &str = "poa-ports";
const CORE: &str = "poa-core";
const QUORUM_RULES: &str = "poa-quorum";
const REDIS_ADAPTER: &str = "adapter-redis";
const ADAPTER_PREFIX: &str = "adapter-";
/// The reference chain, which an example chain must not borrow: it shows that a chain sharing no
/// block code with it embeds the producer.
const REFERENCE_CHAIN: &str = "adapter-chain";
const FRED: &str = "fred";
/// Serialisation frameworks and wire formats: the chain's business, never the contract's or the
/// domain service's.
const WIRE_FORMATS: &[&str] = &["serde", "postcard"];
/// What only the benchmark harness may depend on: its comparison baseline.
const BENCH_ONLY: &[&str] = &["rslock", "redis"];

/// `cargo tree` calls in flight at once: each is mostly process start-up and graph resolution.
const MAX_PARALLEL_TREES: usize = 4;

/// One layering rule: `package` must not reach `forbidden` through normal dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) package: String,
    pub(crate) forbidden: String,
    pub(crate) reason: &'static str,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` must not depend on `{}` ({})",
            self.package, self.forbidden, self.reason
        )
    }
}

/// What `cargo tree -i` said about one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TreeAnswer {
    /// The dependency is not in the package's graph, or only behind non-normal edges.
    NoPath,
    /// A path exists: the inverted tree cargo printed, from the dependency up to the package.
    Path(String),
}

/// A broken rule and the path that breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) rule: Rule,
    pub(crate) tree: String,
}

/// Checks every rule and prints the verdict.
///
/// # Errors
/// Fails if any rule is broken or `cargo tree` cannot answer.
pub(crate) fn run(root: &Path) -> Result<()> {
    let (checked, violations) = check(root)?;
    if violations.is_empty() {
        println!("deps: {checked} layering rules hold");
        return Ok(());
    }
    for violation in &violations {
        eprintln!("deps: {}\n{}\n", violation.rule, violation.tree);
    }
    bail!(
        "{} of {checked} layering rules broken (see docs/ARCHITECTURE.md)",
        violations.len()
    )
}

/// Runs `cargo tree -i` for every rule; returns how many rules were checked and the broken ones.
///
/// # Errors
/// Fails if the workspace cannot be loaded or any `cargo tree` call fails for a reason other than
/// "no such package in the graph" (a locked-lockfile mismatch, say).
pub(crate) fn check(root: &Path) -> Result<(usize, Vec<Violation>)> {
    let rules = rules(
        &layout::member_crates(root)?,
        &layout::example_crates(root)?,
    );
    require_packages_exist(root, &rules)?;

    let mut violations = Vec::new();
    let mut failures = Vec::new();
    for (rule, answer) in rules.iter().zip(ask_all(root, &rules)?) {
        match answer {
            Ok(TreeAnswer::NoPath) => {}
            Ok(TreeAnswer::Path(tree)) => violations.push(Violation {
                rule: rule.clone(),
                tree,
            }),
            Err(err) => failures.push(format!("{rule}: {err:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("cargo tree could not check:\n{}", failures.join("\n"));
    }
    Ok((rules.len(), violations))
}

/// The layering rules for a workspace whose `crates/` holds `crates` and whose `examples/` holds
/// `examples` (xtask is always present).
///
/// A rule about a package that does not exist is dropped; a rule about a dependency that does
/// not exist is kept and simply holds.
pub(crate) fn rules(crates: &[String], examples: &[String]) -> Vec<Rule> {
    let adapters: Vec<&str> = crates
        .iter()
        .map(String::as_str)
        .filter(|name| name.starts_with(ADAPTER_PREFIX))
        .collect();
    let members: Vec<&str> = crates.iter().chain(examples).map(String::as_str).collect();
    let exists = |package: &str| package == XTASK || members.contains(&package);
    let mut rules: BTreeMap<(String, String), &'static str> = BTreeMap::new();
    let mut forbid = |package: &str, forbidden: &[&str], reason: &'static str| {
        if !exists(package) {
            return;
        }
        for dependency in forbidden {
            rules
                .entry((package.to_owned(), (*dependency).to_owned()))
                .or_insert(reason);
        }
    };

    forbid(
        PORTS,
        &[&["tokio", FRED, CORE][..], &adapters].concat(),
        "poa-ports is the contract: no runtime, no backend, no implementation",
    );
    forbid(
        PORTS,
        WIRE_FORMATS,
        "poa-ports carries the embedder's blocks and owns no wire format: encodings are the \
         chain's (the reference chain's live in adapter-chain)",
    );
    forbid(
        CORE,
        WIRE_FORMATS,
        "poa-core carries the embedder's blocks and owns no wire format: encodings are the \
         chain's (the reference chain's live in adapter-chain)",
    );
    forbid(
        CORE,
        &[&[FRED, "redb", "ed25519-dalek", "axum"][..], &adapters].concat(),
        "poa-core reaches backends, storage, keys and HTTP only through poa-ports",
    );
    forbid(
        QUORUM_RULES,
        &[&["tokio", FRED, CORE][..], &adapters].concat(),
        "poa-quorum holds pure rules shared by the Redis adapter and the model: no runtime, no backend",
    );
    let beside_the_rules: Vec<&str> = crates
        .iter()
        .map(String::as_str)
        .filter(|name| ![MODEL, PORTS, QUORUM_RULES].contains(name))
        .collect();
    forbid(
        MODEL,
        &[&["tokio", FRED][..], &beside_the_rules].concat(),
        "poa-model checks poa-quorum's rules over poa-ports' types and models the world itself: \
         no runtime, no backend, no other workspace crate",
    );
    for adapter in &adapters {
        let others: Vec<&str> = adapters.iter().copied().filter(|a| a != adapter).collect();
        forbid(
            adapter,
            &[&[CORE][..], &others].concat(),
            "an adapter depends on poa-ports only among workspace crates",
        );
    }
    for package in [PORTS, CORE]
        .into_iter()
        .chain(adapters.iter().copied().filter(|a| *a != REDIS_ADAPTER))
    {
        forbid(package, &[FRED], "fred appears only under adapter-redis");
    }
    forbid(
        TEST_SUPPORT,
        &[&[CORE, FRED][..], &adapters].concat(),
        "test fixtures depend on nothing they test and speak RESP themselves",
    );
    for example in examples {
        forbid(
            example,
            &[REFERENCE_CHAIN],
            "an example chain brings its own blocks and shares no block code with the reference \
             chain",
        );
    }
    if exists(CHAOS) {
        for package in members.iter().copied().filter(|name| *name != CHAOS) {
            forbid(
                package,
                &[CHAOS],
                "poa-chaos is test tooling run by `cargo xtask chaos`: nothing depends on it",
            );
        }
    }
    if exists(DEMO) {
        for package in members.iter().copied().filter(|name| *name != DEMO) {
            forbid(
                package,
                &[DEMO],
                "poa-demo is tooling run by `cargo xtask demo`: nothing depends on it",
            );
        }
    }
    if exists(BENCH) {
        for package in members
            .iter()
            .copied()
            .chain([XTASK])
            .filter(|name| *name != BENCH)
        {
            forbid(
                package,
                &[BENCH],
                "poa-bench is tooling run by `cargo xtask bench`: nothing depends on it",
            );
            forbid(
                package,
                BENCH_ONLY,
                "rslock and its redis client are poa-bench's comparison baseline, never a \
                 dependency of the producer",
            );
        }
    }
    forbid(XTASK, &members, "xtask depends on no workspace crate");

    rules
        .into_iter()
        .map(|((package, forbidden), reason)| Rule {
            package,
            forbidden,
            reason,
        })
        .collect()
}

/// Reads one `cargo tree -i` outcome.
///
/// Success with output is a path; success with nothing printed ("nothing to print") is no path;
/// failure because the dependency's package ID matched nothing is no path too (it is not in the
/// graph at all). Any other failure is an error, never a pass.
///
/// # Errors
/// Fails when `cargo tree` failed for any other reason.
pub(crate) fn classify(
    forbidden: &str,
    success: bool,
    stdout: &str,
    stderr: &str,
) -> Result<TreeAnswer> {
    if success {
        let tree = stdout.trim_end();
        return Ok(if tree.trim().is_empty() {
            TreeAnswer::NoPath
        } else {
            TreeAnswer::Path(tree.to_owned())
        });
    }
    let not_in_graph = format!("package ID specification `{forbidden}` did not match any packages");
    if stderr.contains(&not_in_graph) {
        return Ok(TreeAnswer::NoPath);
    }
    Err(anyhow!("cargo tree failed: {}", stderr.trim()))
}

/// Fails unless every package a rule names is a workspace member.
///
/// Needed because `cargo tree -p <unknown> -i <dep>` does not fail: it quietly prints the whole
/// workspace's inverted tree, which would read as a violation of the wrong rule.
fn require_packages_exist(root: &Path, rules: &[Rule]) -> Result<()> {
    let mut packages: Vec<&str> = rules.iter().map(|rule| rule.package.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    let mut command = cargo(root);
    command.args(["tree", "-e", "normal", "--depth", "0", "--locked"]);
    for package in &packages {
        command.args(["-p", package]);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", cmd::describe(&command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}",
            cmd::describe(&command),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Asks `cargo tree` about every rule, a few at a time, answers in rule order.
fn ask_all(root: &Path, rules: &[Rule]) -> Result<Vec<Result<TreeAnswer>>> {
    let workers = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, MAX_PARALLEL_TREES);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    rules
                        .iter()
                        .enumerate()
                        .skip(worker)
                        .step_by(workers)
                        .map(|(index, rule)| (index, ask(root, rule)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(rules.len());
        for handle in handles {
            answers.extend(
                handle
                    .join()
                    .map_err(|_| anyhow!("a cargo tree worker panicked"))?,
            );
        }
        answers.sort_by_key(|(index, _)| *index);
        Ok(answers.into_iter().map(|(_, answer)| answer).collect())
    })
}

/// Asks `cargo tree -e normal -p <package> -i <forbidden> --locked` about one rule.
fn ask(root: &Path, rule: &Rule) -> Result<TreeAnswer> {
    let mut command = cargo(root);
    command.args([
        "tree",
        "-e",
        "normal",
        "-p",
        &rule.package,
        "-i",
        &rule.forbidden,
        "--locked",
    ]);
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", cmd::describe(&command)))?;
    classify(
        &rule.forbidden,
        output.status.success(),
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    )
    .with_context(|| format!("`{}`", cmd::describe(&command)))
}
