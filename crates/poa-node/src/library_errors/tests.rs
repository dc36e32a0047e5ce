//! The mapping of library errors to flags: every Redis configuration error names a flag this
//! binary has, says it in the operator's words (no library field names), and startup errors
//! name the flag of the file or URL at fault.

use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;

use super::*;
use crate::cli::Cli;

/// One error of each kind the Redis adapter's validation returns.
fn every_redis_config_error() -> Vec<ConfigError> {
    let url = || "redis://127.0.0.1:1".to_owned();
    vec![
        ConfigError::NoUrls,
        ConfigError::UnsupportedUrl {
            url: "http://127.0.0.1:1".to_owned(),
            list: UrlList::Urls,
        },
        ConfigError::InvalidUrl {
            url: url(),
            list: UrlList::Urls,
            reason: "invalid port number".to_owned(),
        },
        ConfigError::UrlPartIgnored {
            url: url(),
            list: UrlList::Urls,
            part: "path",
        },
        ConfigError::DuplicateUrl {
            url: url(),
            list: UrlList::Urls,
        },
        ConfigError::DuplicateUrl {
            url: url(),
            list: UrlList::NextUrls,
        },
        ConfigError::PasswordInUrl {
            url: url(),
            list: UrlList::Urls,
        },
        ConfigError::EmptyUsername,
        ConfigError::ConflictingUsername {
            username: "poa".to_owned(),
        },
        ConfigError::ConflictingUrlUsernames {
            first: url(),
            first_list: UrlList::Urls,
            first_user: "alice".to_owned(),
            second: "redis://127.0.0.1:2".to_owned(),
            second_list: UrlList::NextUrls,
            second_user: "bob".to_owned(),
        },
        ConfigError::UsernameWithoutPassword,
        ConfigError::EmptyPassword,
        ConfigError::TlsFileWithoutTls {
            file: SecurityFile::CaFile,
        },
        ConfigError::TlsFileWithoutTls {
            file: SecurityFile::ClientCert,
        },
        ConfigError::TlsFileWithoutTls {
            file: SecurityFile::ClientKey,
        },
        ConfigError::IncompleteClientIdentity,
        ConfigError::EmptyLeaseKey,
        ConfigError::ZeroLeaseTtl,
        ConfigError::ZeroNodeTimeout,
        ConfigError::ZeroRetryDelay,
        ConfigError::LeaseTtlNotAboveNodeTimeout {
            lease_ttl: Duration::from_millis(100),
            node_timeout: Duration::from_millis(200),
        },
        ConfigError::ZeroMaxAttempts,
        ConfigError::StreamMaxLenTooSmall {
            stream_max_len: 1,
            min: 2,
        },
        ConfigError::AcquisitionOutlastsLease {
            max_attempts: 3,
            retry_delay: Duration::from_secs(1),
            max_retry_delay_offset: Duration::from_millis(100),
            node_timeout: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(3),
        },
        ConfigError::BudgetTooLarge {
            budget: 2,
            nodes: 3,
            max_budget: 1,
        },
    ]
}

/// Every `--long` flag of the command line.
fn command_line_flags() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|argument| argument.get_long())
        .map(|long| format!("--{long}"))
        .collect()
}

#[test]
fn redis_setting__for_every_config_error__then_names_a_flag_of_the_command_line_and_no_field() {
    // given
    let flags = command_line_flags();

    for error in every_redis_config_error() {
        let library_message = error.to_string();

        // when
        let setting = redis_setting(error);

        // then
        assert!(
            flags.iter().any(|flag| flag == setting.flag),
            "`{library_message}` maps to {}, which is not a flag",
            setting.flag
        );
        assert!(
            setting.reason.contains(setting.flag),
            "`{}` does not name {}",
            setting.reason,
            setting.flag
        );
        let library_words: Vec<&str> = setting
            .reason
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .filter(|word| word.contains('_') && *word != REDIS_PASSWORD_ENV)
            .collect();
        assert_eq!(library_words, Vec::<&str>::new(), "{}", setting.reason);
    }
}

#[test]
fn redis_setting__when_lease_ttl_is_not_above_node_timeout__then_names_both_flags_and_the_fix() {
    // given
    let error = ConfigError::LeaseTtlNotAboveNodeTimeout {
        lease_ttl: Duration::from_millis(100),
        node_timeout: Duration::from_millis(200),
    };

    // when
    let setting = redis_setting(error);

    // then
    assert_eq!(
        setting.to_string(),
        "invalid --lease-ttl: --lease-ttl (100ms) must be larger than --node-timeout (200ms): raise the ttl or lower the timeout"
    );
}

#[test]
fn redis_setting__when_a_tls_file_is_set_without_tls__then_names_the_flag_of_that_file() {
    for (file, flag) in [
        (SecurityFile::CaFile, "--redis-ca-file"),
        (SecurityFile::ClientCert, "--redis-client-cert"),
        (SecurityFile::ClientKey, "--redis-client-key"),
    ] {
        // when
        let setting = redis_setting(ConfigError::TlsFileWithoutTls { file });

        // then
        assert_eq!(setting.flag, flag);
        assert_eq!(
            setting.reason,
            format!("{flag} needs at least one rediss:// --redis-url")
        );
    }
}

#[test]
fn redis_startup__when_a_tls_file_is_unusable__then_names_its_flag_and_the_file() {
    // given
    let error = adapter_redis::Error::TlsFile {
        file: SecurityFile::ClientKey,
        path: PathBuf::from("/etc/poa/client.key"),
        reason: "no private key".to_owned(),
    };

    // when
    let failure = redis_startup(error);

    // then
    assert_eq!(
        format!("{failure:#}"),
        "cannot use --redis-client-key /etc/poa/client.key: no private key"
    );
}

#[test]
fn redis_startup__when_two_urls_reach_one_server__then_names_the_flag_and_both_urls() {
    // given
    let error = adapter_redis::Error::SameServerTwice {
        first: "redis://127.0.0.1:6379".to_owned(),
        first_list: UrlList::Urls,
        second: "redis://localhost:6379".to_owned(),
        second_list: UrlList::Urls,
        run_id: "abc".to_owned(),
    };

    // when
    let failure = redis_startup(error);

    // then
    assert_eq!(
        format!("{failure:#}"),
        "--redis-url redis://127.0.0.1:6379 and --redis-url redis://localhost:6379 reach the same redis server (run_id abc): list every server once"
    );
}

#[test]
fn redis_startup__when_a_next_url_reaches_a_server_of_the_current_list__then_names_each_urls_flag()
{
    // given
    let error = adapter_redis::Error::SameServerTwice {
        first: "redis://127.0.0.1:6379".to_owned(),
        first_list: UrlList::Urls,
        second: "redis://localhost:6379".to_owned(),
        second_list: UrlList::NextUrls,
        run_id: "abc".to_owned(),
    };

    // when
    let failure = redis_startup(error);

    // then
    assert_eq!(
        format!("{failure:#}"),
        "--redis-url redis://127.0.0.1:6379 and --next-redis-url redis://localhost:6379 reach the same redis server (run_id abc): list every server once"
    );
}

#[test]
fn redis_setting__when_a_next_url_names_another_user__then_names_the_next_list_flag_and_both_urls()
{
    // given
    let error = ConfigError::ConflictingUrlUsernames {
        first: "redis://127.0.0.1:1".to_owned(),
        first_list: UrlList::Urls,
        first_user: "alice".to_owned(),
        second: "redis://127.0.0.1:2".to_owned(),
        second_list: UrlList::NextUrls,
        second_user: "bob".to_owned(),
    };

    // when
    let setting = redis_setting(error);

    // then
    assert_eq!(setting.flag, "--next-redis-url");
    assert_eq!(
        setting.reason,
        "--redis-url redis://127.0.0.1:1 names user alice and --next-redis-url redis://127.0.0.1:2 names user bob: every node uses one user, set it with --redis-username"
    );
}

#[test]
fn redis_startup__when_the_config_is_invalid__then_names_the_flag() {
    // given
    let error = adapter_redis::Error::Config(ConfigError::StreamMaxLenTooSmall {
        stream_max_len: 1,
        min: 2,
    });

    // when
    let failure = redis_startup(error);

    // then
    assert_eq!(
        format!("{failure:#}"),
        "invalid --stream-max-len: --stream-max-len 1 must be at least 2"
    );
}

#[test]
fn peer_setting__when_a_peer_url_is_unusable__then_names_the_flag() {
    // given
    let error = PeerConfigError::Duplicate {
        url: "http://127.0.0.1:4000".to_owned(),
    };

    // when
    let setting = peer_setting(error);

    // then
    assert_eq!(
        setting.to_string(),
        "invalid --peer: peer url http://127.0.0.1:4000 is listed twice"
    );
}

#[test]
fn service_setting__for_every_zero_duration__then_names_a_flag_of_the_command_line() {
    // given
    let flags = command_line_flags();

    for setting in [
        ServiceSetting::BlockTime,
        ServiceSetting::RetryPeriod,
        ServiceSetting::ReleaseTimeout,
    ] {
        // when
        let message = service_setting(ServiceError::ZeroDuration { setting }).to_string();

        // then
        assert!(
            flags
                .iter()
                .any(|flag| message.contains(&format!("{flag} "))
                    || message.contains(&format!("{flag}:"))),
            "{message}"
        );
        assert!(message.contains("greater than zero"), "{message}");
        assert!(!message.contains(&setting.to_string()), "{message}");
    }
}
