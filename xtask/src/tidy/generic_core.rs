//! The contract, the domain service and the chain-agnostic adapters carry the embedder's blocks
//! and never the reference chain's: outside their tests, `poa-ports`, `poa-core`,
//! `adapter-redis`, `adapter-noop` and `adapter-memory` name no item of the reference chain
//! (the header, block and seal of `adapter-chain`'s `block` module and the `ReferenceChain` of
//! its `reference` module). They reach blocks
//! only through the chain they are generic over, as `C::Header` or `C::SealedBlock`.
//! `cargo xtask deps` already keeps `adapter-chain` out of their dependencies; this check
//! also catches a name that a test-only dependency would let compile.
//!
//! The forbidden names are read from the reference chain's own files, so a new item there is
//! covered without editing this file. Comment lines and the test module that closes a file are
//! not checked; a name preceded by a type's path (`C::SealedBlock`, `Chain::Header`) is the
//! chain's associated type, not the reference item. It reads files and never edits them.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Violation, is_test_file, non_test_line_count, source_crate};

/// The files of `adapter-chain` that define the reference chain, relative to the workspace
/// root.
pub(crate) const REFERENCE_CHAIN_FILES: &[&str] = &[
    "crates/adapter-chain/src/block.rs",
    "crates/adapter-chain/src/reference.rs",
];

/// The crates the rule applies to: those generic over the embedder's chain.
const GENERIC_CRATES: &[&str] = &[
    "poa-ports",
    "poa-core",
    "adapter-redis",
    "adapter-noop",
    "adapter-memory",
];

/// The crate that holds the reference chain, as a path would name it.
const REFERENCE_CRATE: &str = "adapter_chain";

/// The kinds of item whose names the reference chain exports.
const ITEM_KEYWORDS: &[&str] = &["struct", "enum", "fn", "type", "trait", "const"];

/// Whether the rule applies to the file at `path` (relative to the workspace root): a non-test
/// file under the `src/` of a crate generic over the chain.
pub(crate) fn applies_to(path: &Path) -> bool {
    source_crate(path).is_some_and(|name| GENERIC_CRATES.contains(&name)) && !is_test_file(path)
}

/// The names of the public items a reference chain file defines at its top level.
pub(crate) fn reference_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|line| {
        let mut words = line.strip_prefix("pub ")?.split_whitespace();
        let keyword = words.next()?;
        if !ITEM_KEYWORDS.contains(&keyword) {
            return None;
        }
        let name: String = words
            .next()?
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    })
}

/// Every line of the non-test part of `text` that names one of `names` or a reference chain
/// crate.
pub(crate) fn check_core_source(
    path: &Path,
    text: &str,
    names: &BTreeSet<String>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, line) in text.lines().take(non_test_line_count(text)).enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let named = identifiers(line)
            .filter(|(start, word)| {
                (names.contains(*word)
                    && !after_a_type_path(&line[..*start])
                    && !declares_an_associated_type(&line[..*start]))
                    || *word == REFERENCE_CRATE
            })
            .map(|(_, word)| word);
        for word in named {
            violations.push(Violation::new(
                path,
                index + 1,
                format!(
                    "`{word}` is the reference chain's: this crate reaches blocks only through the \
                     chain it is generic over (`C::Header`, `C::SealedBlock` and the views in \
                     `poa_ports::chain`)"
                ),
            ));
        }
    }
    violations
}

/// The identifiers of `line` with their byte offsets (string contents included: a message
/// naming a type is rare enough, and then worth a look).
fn identifiers(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = None;
    line.char_indices()
        .chain([(line.len(), ' ')])
        .filter_map(move |(index, c)| match (start, is_ident(c)) {
            (None, true) => {
                start = Some(index);
                None
            }
            (Some(from), false) => {
                start = None;
                Some((from, &line[from..index]))
            }
            _ => None,
        })
}

/// Whether `before` is a `type` keyword: what follows declares or defines the chain's
/// associated type of that name (`type Header: HeaderView;`), not the reference item.
fn declares_an_associated_type(before: &str) -> bool {
    before.trim_start() == "type "
}

/// Whether `before` ends with a path through a type (`C::`, `Self::`, `Chain::`): what follows
/// is an associated item, not the reference chain's item of that name.
fn after_a_type_path(before: &str) -> bool {
    let Some(segment) = before.strip_suffix("::") else {
        return false;
    };
    segment
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .is_some_and(|segment| segment.starts_with(|c: char| c.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    const HEADER: &str = "//! Owns the cycle.\n\n";

    fn cycle_rs() -> &'static Path {
        Path::new("crates/poa-core/src/service/cycle.rs")
    }

    fn names() -> BTreeSet<String> {
        ["Header", "SealedBlock", "transactions_root"]
            .map(str::to_owned)
            .into()
    }

    #[test]
    fn reference_names__when_a_file_defines_public_items__then_lists_their_names() {
        // given
        let text = "//! Blocks.\n\nuse serde::Serialize;\n\n/// A header.\n#[derive(Debug)]\npub struct Header {\n    pub height: u64,\n}\n\npub enum Seal {}\n\npub fn transactions_root(x: &[u8]) {}\n\nfn private() {}\nimpl Header {\n    pub fn id(&self) {}\n}\n";

        // when
        let found: Vec<String> = reference_names(text).collect();

        // then: top-level public items only, not fields, methods or private items
        assert_eq!(found, ["Header", "Seal", "transactions_root"]);
    }

    #[test]
    fn check_core_source__when_code_names_reference_items__then_reports_each_line() {
        // given
        let text = format!(
            "{HEADER}use poa_ports::{{BlockHeight, SealedBlock}};\n\nfn f(h: &Header) {{}}\nfn g() {{ let _ = adapter_chain::block::transactions_root(&[]); }}\n"
        );

        // when
        let violations = check_core_source(cycle_rs(), &text, &names());

        // then: the import, the parameter, and the module and the function of the path
        let lines: Vec<usize> = violations.iter().map(|violation| violation.line).collect();
        assert_eq!(lines, [3, 5, 6, 6], "{violations:?}");
        assert!(
            violations[0].message.starts_with("`SealedBlock`"),
            "{violations:?}"
        );
    }

    #[test]
    fn check_core_source__when_code_names_the_chain_s_associated_types__then_no_violation() {
        // given: associated types, longer names, comments and the test module
        let text = format!(
            "{HEADER}/// Imports a `SealedBlock`.\nfn f(h: &C::Header, b: Vec<Self::SealedBlock>, d: &Chain::Header) {{}}\nfn g(v: &dyn SealedBlockView, h: HeaderView) {{}}\ntrait Chain {{\n    type Header: HeaderView;\n}}\n\n#[cfg(test)]\nmod tests {{\n    use poa_ports::SealedBlock;\n}}\n"
        );

        // when
        let violations = check_core_source(cycle_rs(), &text, &names());

        // then
        assert_eq!(violations, []);
    }

    #[test]
    fn applies_to__when_the_file_is_poa_core_s_test_code_or_another_crate__then_false() {
        assert!(applies_to(cycle_rs()));
        assert!(!applies_to(Path::new(
            "crates/poa-core/src/service/tests.rs"
        )));
        assert!(!applies_to(Path::new(
            "crates/poa-core/src/service/tests/history.rs"
        )));
        assert!(!applies_to(Path::new(
            "crates/adapter-chain/src/importer.rs"
        )));
        assert!(applies_to(Path::new("crates/adapter-redis/src/publish.rs")));
        assert!(applies_to(Path::new("crates/poa-ports/src/chain.rs")));
    }
}
