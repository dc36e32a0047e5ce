//! Tests for tidy's rules on small made-up files, and tidy run on the real workspace.
//!
//! Banned spellings are assembled at run time so this file passes the rules it tests.

#![allow(non_snake_case)]

use std::path::Path;

use super::*;

const HEADER: &str = "//! Owns the thing.\n\n";

fn lines_of(violations: &[Violation]) -> Vec<usize> {
    violations.iter().map(|violation| violation.line).collect()
}

/// The 1-based line of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|line| line.starts_with(start))
        .unwrap()
        + 1
}

fn attribute(name: &str) -> String {
    format!("#[{name}]")
}

fn macro_call(name: &str) -> String {
    format!("{name}!()")
}

fn lib_rs() -> &'static Path {
    Path::new("crates/poa-core/src/lib.rs")
}

#[test]
fn check_source__when_file_opens_with_inner_doc__then_no_violation() {
    // given
    let text = format!("\n{HEADER}pub fn run() {{}}\n");

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_source__when_file_opens_with_an_attribute__then_reports_that_line() {
    // given
    let text = "\n#![allow(non_snake_case)]\n\n//! Too late.\n";

    // when
    let violations = check_source(Path::new("crates/x/tests/it/wait.rs"), text);

    // then
    assert_eq!(lines_of(&violations), [2]);
    assert!(violations[0].message.contains("`//!`"), "{violations:?}");
}

#[test]
fn check_source__when_file_opens_with_an_outer_doc__then_reports_line_one() {
    // given
    let text = "/// A function.\npub fn run() {}\n";

    // when
    let violations = check_source(lib_rs(), text);

    // then
    assert_eq!(lines_of(&violations), [1]);
}

#[test]
fn check_source__when_code_uses_banned_attributes_and_macros__then_reports_each_line() {
    // given
    let text = format!(
        "{HEADER}{}\nfn a() {{}}\n{}\nfn b() {{}}\n#[{} = \"slow\"]\nfn c() {{ {} }}\nfn d() {{ {} }}\n",
        attribute("ignore"),
        attribute("should_panic"),
        "ignore",
        macro_call("todo"),
        macro_call("unimplemented"),
    );

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(lines_of(&violations), [3, 5, 7, 8, 9], "{violations:?}");
}

#[test]
fn check_source__when_banned_words_are_only_in_comments_or_longer_names__then_no_violation() {
    // given
    let text = format!(
        "{HEADER}// never {}\n/// no {}\n#[{}_later]\nfn f() {{ my_{} }}\n",
        attribute("ignore"),
        macro_call("todo"),
        "ignore",
        macro_call("todo"),
    );

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_source__when_non_test_code_exceeds_the_limit__then_reports_the_first_line_past_it() {
    // given
    let text = format!("{HEADER}{}", "fn f() {}\n".repeat(MAX_NON_TEST_LINES));

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(lines_of(&violations), [MAX_NON_TEST_LINES + 1]);
    assert!(
        violations[0].message.contains("802 lines"),
        "{violations:?}"
    );
}

#[test]
fn check_source__when_only_the_test_module_is_long__then_no_violation() {
    // given
    let text = format!(
        "{HEADER}fn f() {{}}\n\n#[cfg(test)]\n#[allow(non_snake_case)]\nmod tests {{\n{}}}\n",
        "    fn t() {}\n".repeat(MAX_NON_TEST_LINES)
    );

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_source__when_cfg_test_guards_an_item_not_a_module__then_lines_after_it_count() {
    // given
    let text = format!(
        "{HEADER}#[cfg(test)]\nfn helper() {{}}\n{}",
        "fn f() {}\n".repeat(MAX_NON_TEST_LINES)
    );

    // when
    let violations = check_source(lib_rs(), &text);

    // then
    assert_eq!(lines_of(&violations), [MAX_NON_TEST_LINES + 1]);
}

#[test]
fn check_source__when_a_test_file_is_long__then_no_violation() {
    // given
    let text = format!("{HEADER}{}", "fn t() {}\n".repeat(2 * MAX_NON_TEST_LINES));

    // when
    let in_tests_dir = check_source(Path::new("crates/x/tests/it/main.rs"), &text);
    let sibling_module = check_source(Path::new("crates/x/src/quorum/tests.rs"), &text);

    // then
    assert_eq!(in_tests_dir, []);
    assert_eq!(sibling_module, []);
}

const GOOD_MANIFEST: &str = r#"[package]
name = "adapter-noop"
version.workspace = true

# Comment with a version = "1" in it.
[dependencies]
poa-ports.workspace = true
tokio = { workspace = true, features = ["rt", "sync"] }

[dependencies.serde]
workspace = true
features = [
    "derive",
    "rc",
]

[dev-dependencies]
anyhow.workspace = true

[lints]
workspace = true
"#;

fn manifest_path() -> &'static Path {
    Path::new("crates/adapter-noop/Cargo.toml")
}

#[test]
fn check_manifest__when_manifest_follows_every_rule__then_no_violation() {
    // given
    let text = GOOD_MANIFEST;

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, text);

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_manifest__when_package_is_not_named_after_its_directory__then_reports_the_name_line() {
    // given
    let text = GOOD_MANIFEST.replace(r#"name = "adapter-noop""#, r#"name = "noop""#);

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, &text);

    // then
    assert_eq!(lines_of(&violations), [2]);
    assert!(violations[0].message.contains("`noop`"), "{violations:?}");
}

#[test]
fn check_manifest__when_workspace_lints_are_missing__then_reports_the_manifest() {
    // given
    let text = GOOD_MANIFEST.replace("[lints]\nworkspace = true\n", "");

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, &text);

    // then
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].message.contains("[lints]"), "{violations:?}");
}

#[test]
fn check_manifest__when_dependencies_declare_their_own_source__then_reports_each_line() {
    // given
    let text = format!(
        "{GOOD_MANIFEST}\n[build-dependencies]\n\
         a = \"1\"\n\
         b = {{ version = \"1\", features = [\"x\"] }}\n\
         c.version = \"1\"\n\
         d = {{ path = \"../d\" }}\n\
         [target.'cfg(unix)'.dependencies.e]\n\
         version = \"0.29\"\n"
    );

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, &text);

    // then
    let expected =
        ["a =", "b =", "c.version", "d =", "version = \"0.29\""].map(|start| line_of(&text, start));
    assert_eq!(lines_of(&violations), expected, "{violations:?}");
}

#[test]
fn check_manifest__when_a_dependency_does_not_say_workspace__then_reports_it() {
    // given
    let text = format!("{GOOD_MANIFEST}\n[dev-dependencies.f]\nfeatures = [\"x\"]\n");

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, &text);

    // then
    assert_eq!(
        lines_of(&violations),
        [line_of(&text, "features = [\"x\"]")],
        "{violations:?}"
    );
    assert!(
        violations[0].message.contains("not inherited"),
        "{violations:?}"
    );
}

#[test]
fn check_manifest__when_a_library_lists_anyhow_in_dependencies__then_reports_it() {
    // given
    let text = GOOD_MANIFEST.replace(
        "poa-ports.workspace = true",
        "poa-ports.workspace = true\nanyhow.workspace = true",
    );

    // when
    let violations = check_manifest(manifest_path(), "adapter-noop", true, &text);

    // then
    assert_eq!(lines_of(&violations), [8], "{violations:?}");
    assert!(violations[0].message.contains("anyhow"), "{violations:?}");
}

#[test]
fn check_manifest__when_an_application_lists_anyhow_in_dependencies__then_no_violation() {
    // given
    let text = GOOD_MANIFEST
        .replace(r#"name = "adapter-noop""#, r#"name = "poa-node""#)
        .replace(
            "poa-ports.workspace = true",
            "poa-ports.workspace = true\nanyhow.workspace = true",
        );

    // when
    let violations = check_manifest(
        Path::new("crates/poa-node/Cargo.toml"),
        "poa-node",
        false,
        &text,
    );

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_toolchain__when_channel_is_pinned__then_no_violation() {
    // given
    let text = "[toolchain]\nchannel = \"1.95.0\"\ncomponents = [\"rustfmt\", \"clippy\"]\n";

    // when
    let violations = check_toolchain(Path::new("rust-toolchain.toml"), text);

    // then
    assert_eq!(violations, []);
}

#[test]
fn check_toolchain__when_channel_floats__then_reports_the_channel_line() {
    // given
    let text = "[toolchain]\nchannel = \"stable\"\n";

    // when
    let violations = check_toolchain(Path::new("rust-toolchain.toml"), text);

    // then
    assert_eq!(lines_of(&violations), [2]);
}

/// The real check, as `cargo xtask tidy` runs it: a plain `cargo test` enforces the house rules.
#[test]
fn workspace__when_tidied__then_has_no_violation() {
    // given
    let root = layout::project_root().unwrap();

    // when
    let violations = check(&root).unwrap();

    // then
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "\n{}", report.join("\n"));
}
