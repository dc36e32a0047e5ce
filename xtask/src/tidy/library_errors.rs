//! Library errors speak the library's vocabulary: in the source of a crate that embedders link
//! (see [`crate::layout::is_embedded_library`]) an `#[error("...")]` message names the
//! library's own fields and concepts (`lease_ttl`, "the data directory"), never a command-line
//! flag (`--` followed by a letter). A node team that links the crate into its own binary has
//! other flags or none; `poa-node` maps each typed error to its flags itself.
//!
//! The check reads the string literals inside each `#[error(...)]` attribute, over as many
//! lines as it spans; it reads no other text and never edits a file.

use std::path::Path;

use super::{Violation, source_crate};
use crate::layout;

/// Spelled in pieces so this file's own text does not look like an attribute to the check.
const ERROR_ATTRIBUTE: &str = concat!("#[", "error(");

/// Whether the rule applies to the file at `path` (relative to the workspace root): a file
/// under `crates/<library>/src/`.
pub(crate) fn applies_to(path: &Path) -> bool {
    source_crate(path).is_some_and(layout::is_embedded_library)
}

/// Every `#[error(...)]` message of `text` that names a command-line flag, at the line of the
/// flag.
pub(crate) fn check_error_messages(path: &Path, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (start, _) in text.match_indices(ERROR_ATTRIBUTE) {
        let line_start = text[..start].rfind('\n').map_or(0, |newline| newline + 1);
        if text[line_start..start].trim_start().starts_with("//") {
            continue;
        }
        let arguments = start + ERROR_ATTRIBUTE.len();
        for (offset, flag) in flags_in_literals(&text[arguments..]) {
            let line = text[..arguments + offset].matches('\n').count() + 1;
            violations.push(Violation::new(
                path,
                line,
                format!(
                    "`{flag}` in an error message of a library: name the field or the concept \
                     (`lease_ttl`, \"the data directory\") and let the binary map the typed \
                     error to its flags"
                ),
            ));
        }
    }
    violations
}

/// The flags (`--name`) inside the string literals of the attribute arguments that open
/// `arguments`, up to the parenthesis that closes them, each with its byte offset.
fn flags_in_literals(arguments: &str) -> Vec<(usize, String)> {
    let mut flags = Vec::new();
    let mut depth = 1usize;
    let mut chars = arguments.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            '"' => {
                let mut literal = String::new();
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {
                            escaped = false;
                            literal.push(c);
                        }
                    }
                }
                flags.extend(flags_in(&literal).map(|flag| (index, flag)));
            }
            _ => {}
        }
    }
    flags
}

/// Each `--` followed by a letter in `literal`, with the name that follows.
fn flags_in(literal: &str) -> impl Iterator<Item = String> + '_ {
    literal.match_indices("--").filter_map(|(start, _)| {
        let name: String = literal[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let glued_left = literal[..start].ends_with('-');
        (name.starts_with(|c: char| c.is_ascii_alphabetic()) && !glued_left)
            .then(|| format!("--{name}"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    const HEADER: &str = "//! Owns the errors.\n\n";

    fn error_rs() -> &'static Path {
        Path::new("crates/adapter-redis/src/error.rs")
    }

    /// An enum with one variant whose attribute is `attribute_arguments`.
    fn error_enum(attribute_arguments: &str) -> String {
        format!(
            "{HEADER}pub enum ConfigError {{\n    /// Why.\n    {ERROR_ATTRIBUTE}{attribute_arguments})]\n    Variant,\n}}\n"
        )
    }

    fn lines_and_messages(violations: &[Violation]) -> Vec<(usize, String)> {
        violations
            .iter()
            .map(|violation| (violation.line, violation.message.clone()))
            .collect()
    }

    #[test]
    fn check_error_messages__when_a_message_names_fields__then_no_violation() {
        // given
        let text = error_enum(
            "\"lease_ttl ({lease_ttl:?}) must be larger than node_timeout: raise lease_ttl\"",
        );

        // when
        let violations = check_error_messages(error_rs(), &text);

        // then
        assert_eq!(violations, []);
    }

    #[test]
    fn check_error_messages__when_a_message_names_a_flag__then_reports_its_line_and_the_flag() {
        // given
        let text = error_enum("\"--lease-ttl must be larger than zero\"");

        // when
        let violations = check_error_messages(error_rs(), &text);

        // then
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].line, 5);
        assert!(
            violations[0].message.starts_with("`--lease-ttl`"),
            "{violations:?}"
        );
    }

    #[test]
    fn check_error_messages__when_the_attribute_spans_lines__then_reports_the_line_of_the_literal()
    {
        // given
        let text = error_enum(
            "\n        \"{url} is given twice: list it once in --redis-url\",\n        url = url\n    ",
        );

        // when
        let violations = check_error_messages(error_rs(), &text);

        // then
        let found = lines_and_messages(&violations);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 6);
        assert!(found[0].1.starts_with("`--redis-url`"), "{found:?}");
    }

    #[test]
    fn check_error_messages__when_dashes_are_no_flag__then_no_violation() {
        // given: a separator, a decrement, dashes before a digit, and a flag outside the
        // attribute (a doc comment, a string elsewhere in the code)
        let text = format!(
            "{}\n/// Set by `--lease-ttl` in poa-node.\nconst HELP: &str = \"--lease-ttl\";\n",
            error_enum("\"a -- b, x--, --5 and ---\"")
        );

        // when
        let violations = check_error_messages(error_rs(), &text);

        // then
        assert_eq!(violations, []);
    }

    #[test]
    fn check_error_messages__when_the_attribute_is_in_a_comment__then_no_violation() {
        // given
        let text = format!("{HEADER}// {ERROR_ATTRIBUTE}\"--lease-ttl\")]\n");

        // when
        let violations = check_error_messages(error_rs(), &text);

        // then
        assert_eq!(violations, []);
    }

    #[test]
    fn applies_to__when_the_crate_is_a_library__then_true_for_its_sources_only() {
        for (path, applies) in [
            ("crates/adapter-redis/src/error.rs", true),
            ("crates/poa-core/src/error.rs", true),
            ("crates/adapter-chain/src/storage/file.rs", true),
            ("crates/adapter-redis/tests/it/main.rs", false),
            ("crates/poa-node/src/settings.rs", false),
            ("crates/poa-chaos/src/cli.rs", false),
            ("crates/poa-bench/src/main.rs", false),
            ("crates/poa-demo/src/main.rs", false),
            ("crates/poa-model/src/error.rs", false),
            ("crates/poa-test-support/src/lib.rs", false),
            ("xtask/src/main.rs", false),
        ] {
            assert_eq!(applies_to(Path::new(path)), applies, "{path}");
        }
    }
}
