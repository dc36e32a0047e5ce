//! `poa-node config`: the configuration a node would run with, one line per setting, each with
//! where its value came from (a flag, a `POA_*` variable, the `--config` file, or the default
//! `--help` documents), then whether it is valid. Secrets are never printed: the Redis
//! password shows only where it would come from.
//!
//! Owns the presentation; which value wins is `settings::layered`'s, and validation is
//! `Settings::resolve`'s.

use std::fmt::Write as _;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

use crate::cli::{Cli, RunArgs};
use crate::settings::{self, InvalidSetting, REDIS_PASSWORD_ENV, Settings};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Flag(String),
    Environment(String),
    File(String),
    Default,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Self::Flag(flag) => format!("flag {flag}"),
            Self::Environment(variable) => format!("env {variable}"),
            Self::File(path) => format!("file {path}"),
            Self::Default => "default".to_owned(),
        }
    }
}

/// The report `poa-node config` prints for `args` (as clap parsed them, `matches` telling a
/// flag from a variable), and the settings' verdict.
///
/// # Errors
///
/// [`InvalidSetting`] when the file cannot be read or the settings are invalid; the report up
/// to that point is returned with it.
pub(crate) fn report(args: RunArgs, matches: &ArgMatches) -> (String, Result<(), InvalidSetting>) {
    let mut out = String::new();
    let given = table_of(&args);
    let merged = match settings::layered(args.clone()) {
        Ok(merged) => merged,
        Err(invalid) => return (out, Err(invalid)),
    };
    let file = merged
        .config
        .as_ref()
        .map(|path| path.display().to_string());
    let command = Cli::command();
    let set = table_of(&merged);
    for (key, value) in &set {
        let id = key.replace('-', "_");
        let source = if given.contains_key(key) {
            let argument = command
                .get_arguments()
                .find(|argument| argument.get_id() == id.as_str());
            match matches.value_source(&id) {
                Some(ValueSource::EnvVariable) => Source::Environment(
                    argument
                        .and_then(clap::Arg::get_env)
                        .map(|variable| variable.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => Source::Flag(format!(
                    "--{}",
                    argument.and_then(clap::Arg::get_long).unwrap_or(&id)
                )),
            }
        } else {
            Source::File(file.clone().unwrap_or_default())
        };
        let _ = writeln!(out, "{key} = {value}  # {}", source.describe());
    }
    for argument in command.get_arguments() {
        let id = argument.get_id().as_str();
        let key = id.replace('_', "-");
        if id == "config" || set.contains_key(&key) || argument.get_long().is_none() {
            continue;
        }
        let help = argument
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        let takes_value = argument.get_action().takes_values();
        let documented =
            documented_default(&help).unwrap_or(if takes_value { "unset" } else { "off" });
        let _ = writeln!(
            out,
            "# {key}: {documented}  # {}",
            Source::Default.describe()
        );
    }
    let password = if std::env::var_os(REDIS_PASSWORD_ENV).is_some() {
        format!("<redacted>  # env {REDIS_PASSWORD_ENV}")
    } else if merged.redis_password_file.is_some() {
        "<redacted>  # read from redis-password-file".to_owned()
    } else {
        "unset".to_owned()
    };
    let _ = writeln!(out, "# redis password: {password}");
    let verdict = Settings::resolve(merged).map(|_| ());
    (out, verdict)
}

fn table_of(args: &RunArgs) -> toml::Table {
    toml::Table::try_from(args).unwrap_or_default()
}

/// The `[default: ...]` a setting's help documents, if any.
fn documented_default(help: &str) -> Option<&str> {
    let start = help.find("[default: ")? + "[default: ".len();
    let end = start + help[start..].find(']')?;
    Some(&help[start..end])
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn documented_default__when_the_help_names_one__then_returns_it() {
        assert_eq!(
            documented_default("Lease time to live [default: 3s]."),
            Some("3s")
        );
        assert_eq!(documented_default("Produce blocks only on demand."), None);
    }
}
