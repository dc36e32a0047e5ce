//! The manifest rules of `tidy`, read with a line-based reader of the TOML that manifests use.
//!
//! A member manifest is named after its directory, inherits the workspace lints, takes every
//! dependency from `[workspace.dependencies]` (`name.workspace = true`, never its own `version`,
//! `path` or `git`), and, for a library crate, keeps `anyhow` out of `[dependencies]`.
//! `rust-toolchain.toml` pins the project's toolchain.
//!
//! The reader understands tables, dotted keys, one-line inline tables, quoted keys and arrays
//! that span lines, which is all a cargo manifest needs. It is not a TOML validator and need not
//! be: cargo rejects a malformed manifest long before tidy's verdict matters.

use std::collections::BTreeMap;
use std::path::Path;

use super::Violation;

/// The toolchain every machine and CI job uses.
const TOOLCHAIN_CHANNEL: &str = "1.95.0";

/// The rules for one member manifest at `path` whose directory (and so package) is `dir_name`.
pub(crate) fn check_manifest(
    path: &Path,
    dir_name: &str,
    is_library: bool,
    text: &str,
) -> Vec<Violation> {
    let entries = entries(text);
    let mut violations = Vec::new();

    match find(&entries, &["package", "name"]) {
        Some(entry) if unquote(&entry.value) == dir_name => {}
        Some(entry) => violations.push(Violation::new(
            path,
            entry.line,
            format!(
                "package `{}` lives in `{dir_name}/`: the directory is the package name",
                unquote(&entry.value)
            ),
        )),
        None => violations.push(Violation::new(
            path,
            1,
            format!("no `[package] name`: expected `name = \"{dir_name}\"`"),
        )),
    }

    if find(&entries, &["lints", "workspace"]).is_none_or(|entry| entry.value != "true") {
        violations.push(Violation::new(
            path,
            1,
            "missing `[lints] workspace = true`: every member uses the workspace lint policy",
        ));
    }

    for ((table, name), dependency) in dependencies(&entries) {
        if let Some(line) = dependency.own_source_line {
            violations.push(Violation::new(
                path,
                line,
                format!(
                    "`{name}` in [{table}] declares its own version or source: declare it once \
                     in [workspace.dependencies] and write `{name}.workspace = true`"
                ),
            ));
        } else if !dependency.from_workspace {
            violations.push(Violation::new(
                path,
                dependency.line,
                format!(
                    "`{name}` in [{table}] is not inherited from the workspace: write \
                     `{name}.workspace = true`"
                ),
            ));
        }
        let is_anyhow = name == "anyhow" || dependency.package.as_deref() == Some("anyhow");
        if is_library && dependency.kind == Kind::Normal && is_anyhow {
            violations.push(Violation::new(
                path,
                dependency.line,
                format!(
                    "library crate `{dir_name}` lists `anyhow` in [{table}]: return the crate's \
                     thiserror `Error` (anyhow is for poa-node, xtask and tests)"
                ),
            ));
        }
    }

    violations
}

/// The rule for `rust-toolchain.toml` at `path`: it pins the project's channel.
pub(crate) fn check_toolchain(path: &Path, text: &str) -> Vec<Violation> {
    let entries = entries(text);
    match find(&entries, &["toolchain", "channel"]) {
        Some(entry) if unquote(&entry.value) == TOOLCHAIN_CHANNEL => Vec::new(),
        Some(entry) => vec![Violation::new(
            path,
            entry.line,
            format!(
                "toolchain channel is `{}`: the project pins `{TOOLCHAIN_CHANNEL}`",
                unquote(&entry.value)
            ),
        )],
        None => vec![Violation::new(
            path,
            1,
            format!("no `[toolchain] channel`: the project pins `{TOOLCHAIN_CHANNEL}`"),
        )],
    }
}

/// One `key = value` of the manifest, its key made absolute (`[dependencies] tokio.workspace`
/// becomes `dependencies.tokio.workspace`).
#[derive(Debug)]
struct Entry {
    line: usize,
    key: Vec<String>,
    value: String,
}

/// Which dependency table a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

/// What the manifest says about one dependency in one table.
#[derive(Debug)]
struct Dependency {
    kind: Kind,
    /// Where the dependency is first mentioned.
    line: usize,
    from_workspace: bool,
    /// The first `version`, `path`, `git` or bare version string, if any.
    own_source_line: Option<usize>,
    /// The real package name when the dependency is renamed.
    package: Option<String>,
}

fn find<'a>(entries: &'a [Entry], key: &[&str]) -> Option<&'a Entry> {
    entries.iter().find(|entry| entry.key == key)
}

/// Every dependency, keyed by its table (`dependencies`, `target.'cfg(unix)'.dev-dependencies`,
/// ...) and name.
fn dependencies(entries: &[Entry]) -> BTreeMap<(String, String), Dependency> {
    let mut dependencies: BTreeMap<(String, String), Dependency> = BTreeMap::new();
    for entry in entries {
        let Some((kind, table, name, attribute)) = dependency_key(&entry.key) else {
            continue;
        };
        let attributes = match attribute {
            Some(attribute) => vec![(attribute.to_owned(), entry.value.clone())],
            None if entry.value.starts_with('{') => inline_table(&entry.value),
            // `name = "1.0"` is shorthand for `name = { version = "1.0" }`.
            None => vec![("version".to_owned(), entry.value.clone())],
        };
        let dependency = dependencies
            .entry((table, name.to_owned()))
            .or_insert(Dependency {
                kind,
                line: entry.line,
                from_workspace: false,
                own_source_line: None,
                package: None,
            });
        for (attribute, value) in attributes {
            match attribute.as_str() {
                "workspace" => dependency.from_workspace |= value == "true",
                "version" | "path" | "git" => {
                    dependency.own_source_line.get_or_insert(entry.line);
                }
                "package" => dependency.package = Some(unquote(&value).to_owned()),
                _ => {}
            }
        }
    }
    dependencies
}

/// Splits an absolute key into (kind, table, dependency name, attribute) when it is inside a
/// dependency table.
fn dependency_key(key: &[String]) -> Option<(Kind, String, &str, Option<&str>)> {
    let table_len = if key.first().is_some_and(|first| first == "target") {
        3
    } else {
        1
    };
    let table = key.get(..table_len)?;
    let kind = match table.last()?.as_str() {
        "dependencies" => Kind::Normal,
        "dev-dependencies" | "dev_dependencies" => Kind::Dev,
        "build-dependencies" | "build_dependencies" => Kind::Build,
        _ => return None,
    };
    match &key[table_len..] {
        [name] => Some((kind, table.join("."), name.as_str(), None)),
        [name, attribute, ..] => Some((
            kind,
            table.join("."),
            name.as_str(),
            Some(attribute.as_str()),
        )),
        [] => None,
    }
}

/// Every `key = value` in `text`, with keys made absolute by the table headers above them.
fn entries(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut table: Vec<String> = Vec::new();
    // Open brackets of a value that continues on the next lines (a multi-line array).
    let mut open_brackets = 0_i32;
    for (index, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if open_brackets > 0 {
            open_brackets += bracket_balance(line);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            let header = line.trim_start_matches('[').trim_end_matches(']');
            table = split_outside_quotes(header, '.');
            continue;
        }
        let Some((key, value)) = split_once_outside_quotes(line, '=') else {
            continue;
        };
        let value = value.trim().to_owned();
        open_brackets = bracket_balance(&value);
        let mut key_path = table.clone();
        key_path.extend(split_outside_quotes(key, '.'));
        entries.push(Entry {
            line: index + 1,
            key: key_path,
            value,
        });
    }
    entries
}

/// The `key = value` pairs of a one-line inline table such as `{ workspace = true }`.
fn inline_table(value: &str) -> Vec<(String, String)> {
    let inner = value.trim().trim_start_matches('{').trim_end_matches('}');
    split_top_level(inner, ',')
        .iter()
        .filter_map(|pair| split_once_outside_quotes(pair, '='))
        .map(|(key, value)| (unquote(key).to_owned(), value.trim().to_owned()))
        .collect()
}

/// `line` without a trailing `# comment` (a `#` inside a string is not a comment).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (index, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '#') => return &line[..index],
            _ => {}
        }
    }
    line
}

/// Opening minus closing brackets and braces outside strings.
fn bracket_balance(text: &str) -> i32 {
    let mut quote = None;
    let mut balance = 0;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '[' | '{') => balance += 1,
            (None, ']' | '}') => balance -= 1,
            _ => {}
        }
    }
    balance
}

/// Splits `text` at `separator`s outside strings, brackets and braces; parts trimmed and unquoted.
fn split_top_level(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut depth = 0_i32;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, _) if c == separator && depth == 0 => {
                parts.push(text[start..index].trim().to_owned());
                start = index + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim().to_owned());
    parts.retain(|part| !part.is_empty());
    parts
}

/// A dotted key or table header split into its unquoted parts.
fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    split_top_level(text, separator)
        .iter()
        .map(|part| unquote(part).to_owned())
        .collect()
}

/// `text` split at its first `separator` outside strings.
fn split_once_outside_quotes(text: &str, separator: char) -> Option<(&str, &str)> {
    let mut quote = None;
    for (index, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, _) if c == separator => {
                return Some((&text[..index], &text[index + c.len_utf8()..]));
            }
            _ => {}
        }
    }
    None
}

/// A string value or key without its quotes.
fn unquote(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .or_else(|| {
            text.strip_prefix('\'')
                .and_then(|rest| rest.strip_suffix('\''))
        })
        .unwrap_or(text)
}
