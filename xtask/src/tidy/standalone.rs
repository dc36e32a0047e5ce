//! The repository stands alone: everything its code and documents cite is inside it.
//!
//! - no path that climbs out of the checkout and no citation of the protocol's first draft,
//!   which lives outside it (the project's specification is `docs/protocol.md`);
//! - no issue or pull-request numbers: a reader without the tracker cannot follow them;
//! - every relative Markdown link names a file of the repository and, with a `#fragment`, a
//!   heading of that file; no Markdown link leaves the repository;
//! - every test a document names (a backticked `subject__when__then` name) is a function of the
//!   workspace, so renaming or deleting a test cannot leave a document pointing at nothing.
//!
//! The rules' own spellings are assembled from pieces so this file and its tests pass them.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::Violation;

/// Spellings that point outside the repository, with the fix.
const OUTSIDE: &[(&str, &str)] = &[
    (
        concat!("../", "shared"),
        "the repository stands alone: no path outside the checkout",
    ),
    (
        concat!("PROTOCOL", ".md"),
        "cite docs/protocol.md, the project's own specification",
    ),
];

/// Words that, followed by a number, cite a tracker entry.
const TRACKER_WORDS: &[&str] = &["issue", "issues", "pr", "pull request", "ticket"];

/// The rules for any text file: no path out of the repository, no tracker numbers.
pub(crate) fn check_text(path: &Path, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (pattern, advice) in OUTSIDE {
            if line.contains(pattern) {
                violations.push(Violation::new(
                    path,
                    index + 1,
                    format!("`{pattern}`: {advice}"),
                ));
            }
        }
        if let Some(citation) = tracker_citation(line) {
            violations.push(Violation::new(
                path,
                index + 1,
                format!(
                    "`{citation}`: say what the change is about, not which tracker entry asked \
                     for it"
                ),
            ));
        }
    }
    violations
}

/// The rules for a Markdown file at `path` (relative to `root`): links resolve inside the
/// repository, and the tests it names exist among `functions`.
pub(crate) fn check_markdown(
    root: &Path,
    path: &Path,
    text: &str,
    functions: &HashSet<String>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, line) in prose_lines(text) {
        for target in link_targets(line) {
            if let Some(problem) = link_problem(root, path, target) {
                violations.push(Violation::new(path, index + 1, problem));
            }
        }
        for name in named_tests(line) {
            if !functions.contains(name) {
                violations.push(Violation::new(
                    path,
                    index + 1,
                    format!("`{name}` names no function of the workspace: rename or remove it"),
                ));
            }
        }
    }
    violations
}

/// The names of every `fn` item in `text`.
pub(crate) fn function_names(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("fn ").filter_map(|(start, _)| {
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &text[start + 3..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    })
}

/// The first tracker citation in `line` (the word "issue" or "PR" followed by a number, or a
/// hash and a number in parentheses), if any.
fn tracker_citation(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    for word in TRACKER_WORDS {
        for (start, _) in lower.match_indices(word) {
            let glued_left = lower[..start]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
            let rest = &lower[start + word.len()..];
            let number = rest
                .strip_prefix(' ')
                .map(|rest| rest.strip_prefix('#').unwrap_or(rest))
                .or_else(|| rest.strip_prefix(" #"))
                .or_else(|| rest.strip_prefix('#'));
            if !glued_left && number.is_some_and(starts_with_number) {
                let end = start + word.len() + 1 + digits_after(&rest[1..]);
                return Some(line[start..end.min(line.len())].to_owned());
            }
        }
    }
    lower
        .match_indices("(#")
        .find(|(start, _)| starts_with_number(&lower[start + 2..]))
        .map(|(start, _)| line[start..start + 2 + digits_after(&lower[start + 2..])].to_owned())
}

/// Whether `text` starts with a number that ends the word (`7`, `7)`, `7,`; not `7z`).
fn starts_with_number(text: &str) -> bool {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && !text[digits..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The length of `text`'s leading `#` and digits.
fn digits_after(text: &str) -> usize {
    text.chars()
        .take_while(|c| *c == '#' || c.is_ascii_digit())
        .count()
}

/// The lines outside fenced code blocks, with their 0-based index.
fn prose_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    text.lines().enumerate().filter(move |(_, line)| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The parts of `line` outside inline code spans.
fn outside_code(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').step_by(2)
}

/// The targets of the inline links `[text](target)` in `line`, outside code spans.
fn link_targets(line: &str) -> Vec<&str> {
    outside_code(line)
        .flat_map(|part| {
            part.match_indices("](").filter_map(move |(start, _)| {
                let rest = &part[start + 2..];
                rest.find(')').map(|end| rest[..end].trim())
            })
        })
        .collect()
}

/// The test names `line` cites: inline code spans holding one identifier (possibly a path)
/// whose last segment has the `__` of the workspace's test names.
fn named_tests(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            !span.is_empty()
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
        .map(|span| span.rsplit("::").next().unwrap_or(span))
        .filter(|name| name.contains("__") && !name.starts_with('_') && !name.ends_with('_'))
        .collect()
}

/// What is wrong with the link `target` in the document at `path`, if anything.
fn link_problem(root: &Path, path: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return Some(format!(
            "`{target}`: the link leaves the repository; describe what it says instead"
        ));
    }
    let (file, fragment) = match target.split_once('#') {
        Some((file, fragment)) => (file, Some(fragment)),
        None => (target, None),
    };
    let linked = if file.is_empty() {
        path.to_path_buf()
    } else {
        let Some(linked) = normalize(&path.parent().unwrap_or(Path::new("")).join(file)) else {
            return Some(format!("`{target}`: the link climbs out of the repository"));
        };
        linked
    };
    let on_disk = root.join(&linked);
    if !on_disk.exists() {
        return Some(format!(
            "`{target}`: {} does not exist in the repository",
            linked.display()
        ));
    }
    let fragment = fragment.filter(|fragment| !fragment.is_empty())?;
    let headings = std::fs::read_to_string(&on_disk).ok()?;
    let anchors: HashSet<String> = prose_lines(&headings)
        .filter_map(|(_, line)| line.strip_prefix('#'))
        .map(|heading| anchor_of(heading.trim_start_matches('#')))
        .collect();
    (!anchors.contains(fragment)).then(|| {
        format!(
            "`{target}`: {} has no heading with the anchor `{fragment}`",
            linked.display()
        )
    })
}

/// `path` with `.` and `..` resolved, or `None` when it climbs above the repository root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces as
/// hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(non_snake_case)]

    use super::*;

    fn doc() -> &'static Path {
        Path::new("docs/guide.md")
    }

    fn functions(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn root_with(files: &[(&str, &str)]) -> tempfile_free::Dir {
        tempfile_free::Dir::with(files)
    }

    /// A scratch directory under the system's temporary directory, removed on drop; xtask
    /// takes no dependencies, so this is the few lines it needs.
    mod tempfile_free {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub(super) struct Dir(PathBuf);

        impl Dir {
            pub(super) fn with(files: &[(&str, &str)]) -> Self {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let dir = std::env::temp_dir().join(format!(
                    "xtask-standalone-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                for (name, text) in files {
                    let path = dir.join(name);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, text).unwrap();
                }
                std::fs::create_dir_all(&dir).unwrap();
                Self(dir)
            }

            pub(super) fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn check_text__when_a_path_climbs_out_or_cites_the_first_draft__then_names_both() {
        // given
        let text = format!(
            "see {}/notes\nas {} says\nclean line\n",
            concat!("../", "shared"),
            concat!("PROTOCOL", ".md")
        );

        // when
        let violations = check_text(doc(), &text);

        // then
        let lines: Vec<usize> = violations.iter().map(|violation| violation.line).collect();
        assert_eq!(lines, vec![1, 2]);
    }

    #[test]
    fn check_text__when_a_tracker_number_is_cited__then_names_it_and_spares_plain_words() {
        // given
        let cited = [
            format!("fixed in {} 3", "issue"),
            format!("see {} #12", "PR"),
            format!("the fix ({}31)", "#"),
            format!("{} 5, and more", "Issues"),
        ];
        let spared = [
            "the issue's goal",
            "7.3 step 4",
            "start #3 redis_restart",
            "tissue 4",
            "issue 4x",
            "{:#?}",
        ];

        // when / then
        for line in &cited {
            assert_eq!(check_text(doc(), line).len(), 1, "{line}");
        }
        for line in spared {
            assert!(check_text(doc(), line).is_empty(), "{line}");
        }
    }

    #[test]
    fn check_markdown__when_links_resolve_to_files_and_headings__then_no_violation() {
        // given
        let text = "[ops](ops.md) [p](ops.md#55-what-a-202-promises) [r](../README.md) \
                    [here](#local)\n\n## Local\n";
        let root = root_with(&[
            ("docs/guide.md", text),
            ("docs/ops.md", "# Ops\n\n## 5.5 What a `202` promises\n"),
            ("README.md", ""),
        ]);

        // when
        let violations = check_markdown(root.path(), doc(), text, &functions(&[]));

        // then
        assert_eq!(violations, vec![]);
    }

    #[test]
    fn check_markdown__when_a_link_is_missing_external_or_has_no_heading__then_names_each() {
        // given
        let root = root_with(&[("docs/ops.md", "# Ops\n")]);
        let text = "[a](gone.md)\n[b](https://example.org)\n[c](ops.md#nowhere)\n\
                    [d](../../outside.md)\n`[not](a-link.md)`\n```\n[code](block.md)\n```\n";

        // when
        let violations = check_markdown(root.path(), doc(), text, &functions(&[]));

        // then
        let lines: Vec<usize> = violations.iter().map(|violation| violation.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
    }

    #[test]
    fn check_markdown__when_a_named_test_is_not_a_function__then_names_it() {
        // given
        let root = root_with(&[]);
        let text = "`run__when_x__then_y` and `it::run__when_z__then_w`, `__dunder__`, `a_b`\n";
        let known = functions(&["run__when_x__then_y"]);

        // when
        let violations = check_markdown(root.path(), doc(), text, &known);

        // then
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("run__when_z__then_w"));
    }

    #[test]
    fn function_names__when_items_and_lookalikes__then_only_the_items() {
        // given
        let text = "pub fn open() {}\nasync fn run__when_x__then_y() {}\nlet define = 1;\n";

        // when
        let names: Vec<&str> = function_names(text).collect();

        // then
        assert_eq!(names, vec!["open", "run__when_x__then_y"]);
    }
}
