//! Resolves the bounds of the HTTP listeners (`--http-max-connections`, `--http-header-timeout`,
//! `--http-request-timeout`, `--http-idle-timeout`, `--http-max-bulk-requests`): flag, then
//! file, then default; every bound must be larger than zero. Whether the process may open that many connections is checked at
//! startup against its descriptor limit, not here.

use std::time::Duration;

use super::InvalidSetting;
use crate::cli::RunArgs;
use crate::http_server::HttpLimits;

/// The listeners' bounds from `args` (flags over the file), else [`HttpLimits::DEFAULT`].
///
/// # Errors
///
/// [`InvalidSetting`] naming the first bound that is zero.
pub(super) fn resolve(args: &RunArgs) -> Result<HttpLimits, InvalidSetting> {
    let defaults = HttpLimits::DEFAULT;
    let max_connections = args
        .http_max_connections
        .unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(InvalidSetting::new(
            "--http-max-connections",
            "must be larger than zero, e.g. 1024",
        ));
    }
    let max_bulk_requests = args
        .http_max_bulk_requests
        .unwrap_or(defaults.max_bulk_requests);
    if max_bulk_requests == 0 {
        return Err(InvalidSetting::new(
            "--http-max-bulk-requests",
            "must be larger than zero, e.g. 16",
        ));
    }
    Ok(HttpLimits {
        max_connections,
        max_bulk_requests,
        header_timeout: positive(
            "--http-header-timeout",
            args.http_header_timeout,
            defaults.header_timeout,
        )?,
        request_timeout: positive(
            "--http-request-timeout",
            args.http_request_timeout,
            defaults.request_timeout,
        )?,
        idle_timeout: positive(
            "--http-idle-timeout",
            args.http_idle_timeout,
            defaults.idle_timeout,
        )?,
    })
}

fn positive(
    flag: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, InvalidSetting> {
    match value {
        Some(value) if value.is_zero() => Err(InvalidSetting::new(
            flag,
            "must be larger than zero, e.g. 10s",
        )),
        Some(value) => Ok(value),
        None => Ok(default),
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn resolve__when_nothing_is_given__then_the_defaults() {
        // when
        let limits = resolve(&RunArgs::default()).unwrap();

        // then
        assert_eq!(limits, HttpLimits::DEFAULT);
    }

    #[test]
    fn resolve__when_the_file_sets_bounds__then_they_replace_the_defaults() {
        // given: the settings as the file spells them
        let from_file: RunArgs =
            toml::from_str("http-max-connections = 20\nhttp-idle-timeout = \"5s\"").unwrap();

        // when
        let limits = resolve(&from_file).unwrap();

        // then
        assert_eq!(limits.max_connections, 20);
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.header_timeout, HttpLimits::DEFAULT.header_timeout);
    }

    #[test]
    fn resolve__when_a_bound_is_zero__then_names_its_flag() {
        let zero = Some(Duration::ZERO);
        for (args, flag) in [
            (
                RunArgs {
                    http_max_connections: Some(0),
                    ..RunArgs::default()
                },
                "--http-max-connections",
            ),
            (
                RunArgs {
                    http_header_timeout: zero,
                    ..RunArgs::default()
                },
                "--http-header-timeout",
            ),
            (
                RunArgs {
                    http_request_timeout: zero,
                    ..RunArgs::default()
                },
                "--http-request-timeout",
            ),
            (
                RunArgs {
                    http_idle_timeout: zero,
                    ..RunArgs::default()
                },
                "--http-idle-timeout",
            ),
            (
                RunArgs {
                    http_max_bulk_requests: Some(0),
                    ..RunArgs::default()
                },
                "--http-max-bulk-requests",
            ),
        ] {
            // when
            let error = resolve(&args).unwrap_err();

            // then
            assert_eq!(error.flag, flag);
        }
    }
}
