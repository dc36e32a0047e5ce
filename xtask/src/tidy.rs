//! `cargo xtask tidy`: the house rules a grep or a manifest read can check.
//!
//! Each finding is reported as `path:line: message`, all of them at once:
//! - every `.rs` file under `crates/`, `examples/` and `xtask/` opens with a `//!` paragraph;
//! - no ignored or should-panic tests, no todo or unimplemented macros (comment lines aside);
//! - no non-test file has more than 800 lines before its `#[cfg(test)]` module (files under a
//!   `tests/` directory and sibling `tests.rs` modules are test files);
//! - member manifests follow the workspace's rules (see `manifest`);
//! - `rust-toolchain.toml` pins the project's toolchain;
//! - the repository stands alone: no path or link out of it, no tracker numbers, every
//!   Markdown link and every test a document names resolves (see `standalone`);
//! - a library crate's error messages name its fields, never a command-line flag (see
//!   `library_errors`);
//! - `poa-ports`, `poa-core` and the chain-agnostic adapters name no item of the reference
//!   chain outside their tests (see `generic_core`).
//!
//! It runs as `cargo xtask tidy`, as a step of `cargo xtask ci`, and as a `#[test]` so a plain
//! `cargo test` enforces it too. It reads files and never edits them.

mod generic_core;
mod library_errors;
mod manifest;
mod standalone;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::layout::{self, APPLICATION_CRATES, EXAMPLES_DIR, XTASK};

pub(crate) use manifest::{check_manifest, check_toolchain};

/// Top-level files the standalone rules read.
const STANDALONE_FILES: &[&str] = &[
    "README.md",
    "Cargo.toml",
    "rust-toolchain.toml",
    "clippy.toml",
];

/// Directories whose text files the standalone rules read.
const STANDALONE_DIRS: &[&str] = &[
    "crates",
    EXAMPLES_DIR,
    XTASK,
    "docs",
    ".github",
    ".ci",
    ".cargo",
];

/// What counts as a text file for the standalone rules (besides `.ci/run`).
const TEXT_EXTENSIONS: &[&str] = &[".rs", ".md", ".lua", ".toml", ".yml", ".sh"];

/// The file that spells the standalone rules, and so holds their patterns.
const STANDALONE_RULES: &str = "xtask/src/tidy/standalone.rs";

/// Lines of non-test code a file may hold before it owns too much.
const MAX_NON_TEST_LINES: usize = 800;

/// Spelled in pieces so this file does not match its own rules.
const BANNED: &[(&str, &str)] = &[
    (
        concat!("#[", "ignore"),
        "tests are never ignored: fix the test or delete it",
    ),
    (
        concat!("#[", "should_panic"),
        "assert on the returned error or outcome, not on a panic",
    ),
    (concat!("todo", "!("), "finish the code or return an error"),
    (
        concat!("unimplemented", "!("),
        "finish the code or return an error",
    ),
];

/// One broken rule, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Relative to the workspace root.
    pub(crate) path: PathBuf,
    /// 1-based; 1 when the rule is about something missing from the file.
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl Violation {
    pub(crate) fn new(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Checks the workspace and prints every violation.
///
/// # Errors
/// Fails if there is any violation or a file cannot be read.
pub(crate) fn run(root: &Path) -> Result<()> {
    let violations = check(root)?;
    if violations.is_empty() {
        println!("tidy: no violations");
        return Ok(());
    }
    for violation in &violations {
        eprintln!("{violation}");
    }
    bail!("tidy found {} violations", violations.len())
}

/// Every violation in the workspace at `root`, in path order.
///
/// # Errors
/// Fails if a file or directory cannot be read.
pub(crate) fn check(root: &Path) -> Result<Vec<Violation>> {
    let mut violations = Vec::new();

    let mut sources = Vec::new();
    for dir in ["crates", EXAMPLES_DIR, XTASK] {
        collect_rust_files(&root.join(dir), &mut sources)?;
    }
    sources.sort();
    let mut reference_names = BTreeSet::new();
    for file in generic_core::REFERENCE_CHAIN_FILES {
        let text = read(&root.join(file))?;
        reference_names.extend(generic_core::reference_names(&text));
    }
    for source in &sources {
        let text = read(source)?;
        let path = relative(root, source);
        violations.extend(check_source(path, &text));
        if library_errors::applies_to(path) {
            violations.extend(library_errors::check_error_messages(path, &text));
        }
        if generic_core::applies_to(path) {
            violations.extend(generic_core::check_core_source(
                path,
                &text,
                &reference_names,
            ));
        }
    }

    let members = layout::member_crates(root)?;
    let examples = layout::example_crates(root)?;
    let manifests = members
        .iter()
        .map(|name| (name.as_str(), Path::new("crates").join(name)))
        .chain(
            examples
                .iter()
                .map(|name| (name.as_str(), Path::new(EXAMPLES_DIR).join(name))),
        )
        .chain([(XTASK, PathBuf::from(XTASK))]);
    for (name, dir) in manifests {
        let path = dir.join("Cargo.toml");
        let text = read(&root.join(&path))?;
        let is_library = !APPLICATION_CRATES.contains(&name);
        violations.extend(check_manifest(&path, name, is_library, &text));
    }

    let toolchain = Path::new("rust-toolchain.toml");
    let text = read(&root.join(toolchain))?;
    violations.extend(check_toolchain(toolchain, &text));

    violations.extend(check_standalone(root, &sources)?);

    Ok(violations)
}

/// The standalone rules over every text file of the repository; `sources` are its `.rs` files,
/// whose functions are the tests documents may name.
fn check_standalone(root: &Path, sources: &[PathBuf]) -> Result<Vec<Violation>> {
    let mut functions = HashSet::new();
    for source in sources {
        let text = read(source)?;
        functions.extend(standalone::function_names(&text).map(str::to_owned));
    }

    let mut files: Vec<PathBuf> = STANDALONE_FILES
        .iter()
        .map(|name| root.join(name))
        .collect();
    for dir in STANDALONE_DIRS {
        collect_files(&root.join(dir), &mut files, &|name| {
            TEXT_EXTENSIONS
                .iter()
                .any(|extension| name.ends_with(extension))
                || name == "run"
        })?;
    }
    files.sort();

    let mut violations = Vec::new();
    for file in &files {
        let path = relative(root, file);
        if path == Path::new(STANDALONE_RULES) {
            continue;
        }
        let text = read(file)?;
        violations.extend(standalone::check_text(path, &text));
        if path.extension().is_some_and(|extension| extension == "md") {
            violations.extend(standalone::check_markdown(root, path, &text, &functions));
        }
    }
    Ok(violations)
}

/// The rules for one `.rs` file at `path` (relative to the root) with contents `text`.
pub(crate) fn check_source(path: &Path, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();

    match text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty())
    {
        Some((_, first)) if first.trim_start().starts_with("//!") => {}
        Some((index, _)) => violations.push(Violation::new(
            path,
            index + 1,
            "a file opens with a `//!` paragraph saying what it owns",
        )),
        None => violations.push(Violation::new(
            path,
            1,
            "empty file: a file opens with a `//!` paragraph saying what it owns",
        )),
    }

    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (pattern, advice) in BANNED {
            if contains_token(line, pattern) {
                violations.push(Violation::new(
                    path,
                    index + 1,
                    format!("`{pattern}`: {advice}"),
                ));
            }
        }
    }

    if !is_test_file(path) {
        let non_test_lines = non_test_line_count(text);
        if non_test_lines > MAX_NON_TEST_LINES {
            violations.push(Violation::new(
                path,
                MAX_NON_TEST_LINES + 1,
                format!(
                    "{non_test_lines} lines of non-test code (at most {MAX_NON_TEST_LINES}): \
                     the file owns too much, split it by responsibility"
                ),
            ));
        }
    }

    violations
}

/// The crate whose sources hold `path` (relative to the workspace root): `name` for a file
/// under `crates/<name>/src/`.
pub(crate) fn source_crate(path: &Path) -> Option<&str> {
    let mut parts = path.components().map(|part| match part {
        Component::Normal(name) => name.to_str(),
        _ => None,
    });
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some("crates")), Some(Some(name)), Some(Some("src"))) => Some(name),
        _ => None,
    }
}

/// Whether `path` holds only tests: it is under a `tests/` directory or is a `tests.rs` module.
fn is_test_file(path: &Path) -> bool {
    path.components().any(|part| part.as_os_str() == "tests")
        || path.file_name().is_some_and(|name| name == "tests.rs")
}

/// Lines before the `#[cfg(test)]` that opens a test module, or all lines when there is none.
fn non_test_line_count(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .find(|(index, line)| line.trim() == "#[cfg(test)]" && opens_module(&lines[index + 1..]))
        .map_or(lines.len(), |(index, _)| index)
}

/// Whether the first item in `rest`, past blank lines and other attributes, is a `mod`.
fn opens_module(rest: &[&str]) -> bool {
    rest.iter()
        .map(|line| line.trim())
        .find(|line| !line.is_empty() && !line.starts_with("#["))
        .is_some_and(|item| item.starts_with("mod ") || item.contains(") mod "))
}

/// Whether `pattern` occurs in `line` as a whole token: not glued to an identifier on the left,
/// and, for an attribute, not continued by one on the right (an attribute that merely starts with
/// a banned name is fine).
fn contains_token(line: &str, pattern: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(pattern).any(|(start, _)| {
        let before = line[..start].chars().next_back();
        let after = line[start + pattern.len()..].chars().next();
        let glued_left = before.is_some_and(is_ident);
        let glued_right = pattern.starts_with("#[") && after.is_some_and(is_ident);
        !glued_left && !glued_right
    })
}

/// Every `.rs` file below `dir`, skipping build output and hidden directories.
fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    collect_files(dir, files, &|name| name.ends_with(".rs"))
}

/// Every file below `dir` whose name `wanted` accepts, skipping build output and hidden
/// directories below it; none when `dir` does not exist (a workspace without examples).
fn collect_files(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_files(&path, files, wanted)?;
            }
        } else if wanted(&name) {
            files.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn relative<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}
