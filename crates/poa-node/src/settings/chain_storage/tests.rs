//! The chain database's settings: defaults, the file under the flags, errors naming the flag.

use std::io::Write;
use std::time::Duration;

use adapter_chain::{OpenCheck, StoreOptions};
use clap::Parser;

use crate::cli::Cli;
use crate::settings::{InvalidSetting, Settings};

fn resolve(args: &[&str]) -> Result<Settings, InvalidSetting> {
    let cli = Cli::try_parse_from(std::iter::once("poa-node").chain(args.iter().copied())).unwrap();
    Settings::resolve(cli.run)
}

#[test]
fn resolve__when_no_chain_storage_flags__then_uses_the_documented_defaults() {
    // when
    let settings = resolve(&[]).unwrap().chain_storage;

    // then
    assert_eq!(settings.cache_size_bytes, 64 * 1024 * 1024);
    assert_eq!(
        settings.cache_size_bytes,
        StoreOptions::DEFAULT_CACHE_SIZE_BYTES
    );
    assert_eq!(settings.recovery.give_up_after, Duration::from_secs(60));
    assert_eq!(settings.open_check, OpenCheck::Full);
}

#[test]
fn resolve__when_the_config_file_sets_chain_storage__then_flags_override_it_and_it_fills_the_rest()
{
    // given
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "chain-cache-mib = 16\nchain-recovery-window = \"5s\"\nchain-open-check = \"quick\""
    )
    .unwrap();
    let path = file.path().to_str().unwrap();

    // when
    let settings = resolve(&["--config", path, "--chain-cache-mib", "32"])
        .unwrap()
        .chain_storage;

    // then
    assert_eq!(settings.cache_size_bytes, 32 * 1024 * 1024);
    assert_eq!(settings.recovery.give_up_after, Duration::from_secs(5));
    assert_eq!(settings.open_check, OpenCheck::Quick);
}

#[test]
fn resolve__when_a_chain_storage_setting_is_invalid__then_names_the_flag() {
    let cases: [(&[&str], &str); 3] = [
        (&["--chain-cache-mib", "0"], "--chain-cache-mib"),
        (&["--chain-cache-mib", "99999999"], "--chain-cache-mib"),
        (
            &["--chain-recovery-window", "10ms"],
            "--chain-recovery-window",
        ),
    ];
    for (args, flag) in cases {
        // when
        let refused = resolve(args).expect_err("settings should be refused");

        // then
        assert_eq!(refused.flag, flag, "{args:?}");
        assert!(refused.to_string().contains(flag), "{refused}");
    }
}
