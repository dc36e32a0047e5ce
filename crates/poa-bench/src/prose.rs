//! The report's prose, kept as prose: Markdown files under `templates/`, one per case and one
//! for the report's frame, compiled in with `include_str!`. A case names a section and hands
//! it the values it measured; this module fills them in. It owns no wording and no measuring.
//!
//! A template file is a preamble for its readers, then sections, each under a `## name` line.
//! A section's paragraphs are separated by blank lines; a paragraph's lines are joined with
//! single spaces (so the files wrap where they like and the report gets one line per
//! paragraph), except fenced code blocks and tables, which are kept line by line.
//! `{name}` stands for a value as `{}` shows it; `{name:.1}` gives a number a precision
//! (`{name:+.2}` with its sign). A section
//! that asks for a value it is not given, or is given one it does not use, is an error: the
//! prose and the code cannot drift apart unnoticed.

use std::fmt::{Display, Write as _};

use anyhow::{Context, Result, anyhow, bail};

/// Fills a section of a [`Prose`] file: `fill!(PROSE, "method", rounds = 12, window = "1 s")`;
/// each value is anything that implements `Display`. Returns `anyhow::Result<String>`.
macro_rules! fill {
    ($prose:expr, $section:expr $(, $name:ident = $value:expr)* $(,)?) => {
        $prose.fill(
            $section,
            &[$((stringify!($name), &$value as &dyn ::std::fmt::Display)),*],
        )
    };
}
pub(crate) use fill;

/// One template file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prose {
    /// The file's name under `templates/`, for errors.
    file: &'static str,
    text: &'static str,
}

impl Prose {
    /// The template `text`, read from `templates/<file>`.
    pub(crate) const fn new(file: &'static str, text: &'static str) -> Self {
        Self { file, text }
    }

    /// The section `name` with no value to fill in.
    ///
    /// # Errors
    /// As [`Self::fill`].
    pub(crate) fn text(&self, name: &str) -> Result<String> {
        self.fill(name, &[])
    }

    /// The section `name`, every `{placeholder}` replaced by its value from `values`.
    ///
    /// # Errors
    /// Fails when the file has no such section, a placeholder has no value or is malformed, or
    /// a value is not used.
    pub(crate) fn fill(&self, name: &str, values: &[(&str, &dyn Display)]) -> Result<String> {
        let section = self
            .section(name)
            .ok_or_else(|| anyhow!("templates/{} has no section `{name}`", self.file))?;
        let mut used = vec![false; values.len()];
        let filled = substitute(&unwrap(section), values, &mut used)
            .with_context(|| format!("templates/{}, section `{name}`", self.file))?;
        if let Some(((unused, _), _)) = values.iter().zip(&used).find(|(_, used)| !**used) {
            bail!(
                "templates/{}, section `{name}`: the value `{unused}` is not used",
                self.file
            );
        }
        Ok(filled)
    }

    /// The names of every section, in file order.
    #[cfg(test)]
    pub(crate) fn section_names(&self) -> Vec<&'static str> {
        self.text
            .lines()
            .filter_map(|line| line.strip_prefix("## "))
            .map(str::trim)
            .collect()
    }

    /// The raw lines of section `name`, up to the next section or the end of the file.
    fn section(&self, name: &str) -> Option<Vec<&'static str>> {
        let mut lines = self.text.lines();
        lines.find(|line| line.strip_prefix("## ").map(str::trim) == Some(name))?;
        Some(lines.take_while(|line| !line.starts_with("## ")).collect())
    }
}

/// The section's paragraphs, each on one line (fenced blocks and tables line by line),
/// separated by one blank line.
fn unwrap(lines: Vec<&str>) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut verbatim = false;
    let mut in_fence = false;
    let mut close = |current: &mut Vec<&str>, verbatim: bool| {
        if !current.is_empty() {
            let separator = if verbatim { "\n" } else { " " };
            paragraphs.push(current.join(separator));
            current.clear();
        }
    };
    for line in lines {
        let trimmed = line.trim();
        if in_fence {
            current.push(line.trim_end());
            in_fence = !trimmed.starts_with("```");
            continue;
        }
        if trimmed.is_empty() {
            close(&mut current, verbatim);
            continue;
        }
        if current.is_empty() {
            verbatim = trimmed.starts_with("```") || trimmed.starts_with('|');
            in_fence = trimmed.starts_with("```");
        }
        current.push(if verbatim { line.trim_end() } else { trimmed });
    }
    close(&mut current, verbatim);
    paragraphs.join("\n\n")
}

/// `text` with every placeholder replaced; marks in `used` the values it took.
fn substitute(text: &str, values: &[(&str, &dyn Display)], used: &mut [bool]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| anyhow!("a `{{` without its `}}`: `{}`", excerpt(&rest[open..])))?;
        let placeholder = &after[..close];
        let (name, spec) = placeholder
            .split_once(':')
            .map_or((placeholder, None), |(name, spec)| (name, Some(spec)));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("`{{{placeholder}}}` is not a placeholder: a name of letters, digits and `_`");
        }
        let index = values
            .iter()
            .position(|(given, _)| *given == name)
            .ok_or_else(|| anyhow!("no value for `{{{name}}}`"))?;
        used[index] = true;
        render(&mut out, values[index].1, spec)
            .with_context(|| format!("the value of `{{{placeholder}}}`"))?;
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `value` as `spec` (`None`, `.N` or `+.N`) asks.
fn render(out: &mut String, value: &dyn Display, spec: Option<&str>) -> Result<()> {
    let Some(spec) = spec else {
        let _ = write!(out, "{value}");
        return Ok(());
    };
    let (sign, digits) = spec
        .strip_prefix('+')
        .map_or((false, spec), |digits| (true, digits));
    let precision: usize = digits
        .strip_prefix('.')
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| anyhow!("`{spec}` is not a precision such as `.1` or `+.2`"))?;
    let _ = if sign {
        write!(out, "{value:+.precision$}")
    } else {
        write!(out, "{value:.precision$}")
    };
    Ok(())
}

/// The start of `text`, for an error message.
fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "\
Read by people: this preamble is no section.

## method

Method: {rounds} rounds of
  {window} each, {ratio:.2}x
the baseline ({change:+.1} %).

A second paragraph.

## table

| a | b |
|---|---|
| {rounds} | x |

## fixed
No values here.
";
    const PROSE: Prose = Prose::new("test.md", TEMPLATE);

    #[test]
    fn fill__when_every_value_is_given__then_paragraphs_on_one_line_each() {
        // given / when
        let text = fill!(
            PROSE,
            "method",
            rounds = 12_u64,
            window = "1 s",
            ratio = 1.234_f64,
            change = 2.0_f64
        )
        .unwrap();

        // then
        assert_eq!(
            text,
            "Method: 12 rounds of 1 s each, 1.23x the baseline (+2.0 %).\n\nA second paragraph."
        );
    }

    #[test]
    fn fill__when_a_table__then_its_lines_are_kept() {
        // given / when
        let text = fill!(PROSE, "table", rounds = 3_u64).unwrap();

        // then
        assert_eq!(text, "| a | b |\n|---|---|\n| 3 | x |");
    }

    #[test]
    fn fill__when_a_value_is_missing_or_unused__then_an_error_naming_it() {
        // given / when
        let missing = fill!(PROSE, "table").unwrap_err();
        let unused = fill!(PROSE, "fixed", rounds = 3_u64).unwrap_err();

        // then
        assert!(
            format!("{missing:#}").contains("no value for `{rounds}`"),
            "{missing:#}"
        );
        assert!(
            format!("{unused:#}").contains("`rounds` is not used"),
            "{unused:#}"
        );
    }

    #[test]
    fn substitute__when_a_precision_is_malformed__then_an_error() {
        // given
        let values: [(&str, &dyn Display); 1] = [("ratio", &2.5_f64)];

        // when
        let malformed = substitute("{ratio:2}", &values, &mut [false]);
        let as_is = substitute("{ratio}", &values, &mut [false]);

        // then
        assert!(malformed.is_err());
        assert_eq!(as_is.unwrap(), "2.5");
    }

    #[test]
    fn text__when_the_section_is_unknown__then_an_error_naming_the_file() {
        // given / when
        let error = PROSE.text("nowhere").unwrap_err();

        // then
        assert!(error.to_string().contains("templates/test.md"), "{error}");
        assert_eq!(PROSE.text("fixed").unwrap(), "No values here.");
    }

    #[test]
    fn section_names__when_read__then_in_file_order() {
        // given / when / then
        assert_eq!(PROSE.section_names(), ["method", "table", "fixed"]);
    }

    #[test]
    fn unwrap__when_a_fenced_block_holds_a_blank_line__then_kept_whole() {
        // given
        let lines = vec!["Before", "", "```sh", "one", "", "two", "```", "", "After"];

        // when
        let text = unwrap(lines);

        // then
        assert_eq!(text, "Before\n\n```sh\none\n\ntwo\n```\n\nAfter");
    }
}
