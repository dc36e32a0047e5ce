//! glibc's malloc arena limit. glibc gives threads up to eight arenas per core and keeps freed
//! memory in each; a producer's runtime and blocking threads spread their allocations over
//! them, and the soak in docs/benchmarks.md measured the resident memory that costs against two
//! arenas (docs/operations.md, memory). Two is the limit this process runs with unless its
//! environment names one.
//!
//! glibc reads the limit from the environment (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max`
//! in `GLIBC_TUNABLES`) when it first allocates, before `main`, and the only call that sets it
//! later (`mallopt`) is unsafe code, which this workspace forbids. So when the environment names
//! no limit, the process replaces itself (`exec` of `/proc/self/exe`, the same process id and
//! arguments) with the variable set, before it starts a thread or opens a file. An operator's
//! own setting always wins, and `MALLOC_ARENA_MAX=8` per core gives glibc's default back.

/// The variable glibc reads.
pub(crate) const ARENA_MAX_VARIABLE: &str = "MALLOC_ARENA_MAX";
/// The limit this process applies when the environment names none.
pub(crate) const DEFAULT_ARENA_MAX: &str = "2";
/// glibc's tunables variable, and the tunable in it that also sets the limit.
const TUNABLES_VARIABLE: &str = "GLIBC_TUNABLES";
const ARENA_MAX_TUNABLE: &str = "glibc.malloc.arena_max=";

/// How the arena limit was settled, for the startup log.
#[derive(Debug)]
pub(crate) enum ArenaLimit {
    /// The environment names the limit (the operator's, or this process's own re-execution).
    Set {
        /// `MALLOC_ARENA_MAX`, or `GLIBC_TUNABLES`.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The re-execution failed; glibc's default limit stands.
    NotApplied {
        /// Why `exec` failed.
        error: std::io::Error,
    },
}

/// Applies [`DEFAULT_ARENA_MAX`] by re-executing the process when the environment names no
/// limit; returns how the limit stands (it returns at all only when no re-execution happened).
/// Call first in `main`, before any thread or file exists.
pub(crate) fn limit_arenas() -> ArenaLimit {
    if let Some(limit) = configured(
        std::env::var(ARENA_MAX_VARIABLE).ok().as_deref(),
        std::env::var(TUNABLES_VARIABLE).ok().as_deref(),
    ) {
        return limit;
    }
    ArenaLimit::NotApplied {
        error: re_execute(),
    }
}

/// The limit the environment already names, if any: `MALLOC_ARENA_MAX` first, then the
/// tunable, as glibc itself reads them.
fn configured(arena_max: Option<&str>, tunables: Option<&str>) -> Option<ArenaLimit> {
    if let Some(value) = arena_max {
        return Some(ArenaLimit::Set {
            variable: ARENA_MAX_VARIABLE,
            value: value.to_owned(),
        });
    }
    let tunable = tunables?
        .split(':')
        .find_map(|entry| entry.strip_prefix(ARENA_MAX_TUNABLE))?;
    Some(ArenaLimit::Set {
        variable: TUNABLES_VARIABLE,
        value: tunable.to_owned(),
    })
}

/// Replaces the process with itself, the limit set; returns only the error of a failed `exec`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn re_execute() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // `/proc/self/exe` is the running binary even when its file was replaced since it started.
    let mut arguments = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(program) = arguments.next() {
        command.arg0(program);
    }
    command
        .args(arguments)
        .env(ARENA_MAX_VARIABLE, DEFAULT_ARENA_MAX)
        .exec()
}

/// Not glibc: no arenas to limit.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn re_execute() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the arena limit is a glibc setting",
    )
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    fn value(limit: Option<ArenaLimit>) -> Option<(&'static str, String)> {
        match limit? {
            ArenaLimit::Set { variable, value } => Some((variable, value)),
            ArenaLimit::NotApplied { .. } => None,
        }
    }

    #[test]
    fn configured__when_the_variable_or_the_tunable_is_set__then_that_limit() {
        // given / when / then
        assert_eq!(
            value(configured(Some("4"), Some("glibc.malloc.arena_max=3"))),
            Some((ARENA_MAX_VARIABLE, "4".to_owned()))
        );
        assert_eq!(
            value(configured(
                None,
                Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=3")
            )),
            Some((TUNABLES_VARIABLE, "3".to_owned()))
        );
    }

    #[test]
    fn configured__when_nothing_names_a_limit__then_none() {
        // given / when / then
        assert!(configured(None, None).is_none());
        assert!(configured(None, Some("glibc.malloc.tcache_count=0")).is_none());
    }
}
