//! The local chain database's settings: flags first, then the `--config` file, then the
//! defaults, validated with the flag named in every error.

use adapter_chain::{OpenCheck, RecoveryPolicy};

use super::{FileSettings, InvalidSetting};
use crate::cli::{ChainOpenCheck, ChainStorageArgs};

/// The local chain database's validated settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainStorageSettings {
    /// Reopening after an I/O error, and when to give up.
    pub(crate) recovery: RecoveryPolicy,
    /// How the database is checked at startup.
    pub(crate) open_check: OpenCheck,
}

/// Merges the flags over the file and checks them.
pub(super) fn resolve(
    args: &ChainStorageArgs,
    file: &FileSettings,
) -> Result<ChainStorageSettings, InvalidSetting> {
    let defaults = RecoveryPolicy::default();
    let window = args
        .chain_recovery_window
        .or(file.chain_recovery_window)
        .unwrap_or(defaults.give_up_after);
    if window < defaults.retry_every {
        return Err(InvalidSetting::new(
            "--chain-recovery-window",
            format!(
                "must be at least {} (one reopen attempt), e.g. 60s",
                humantime::format_duration(defaults.retry_every)
            ),
        ));
    }
    let open_check = match args.chain_open_check.or(file.chain_open_check) {
        None | Some(ChainOpenCheck::Full) => OpenCheck::Full,
        Some(ChainOpenCheck::Quick) => OpenCheck::Quick,
    };
    Ok(ChainStorageSettings {
        recovery: RecoveryPolicy {
            retry_every: defaults.retry_every,
            give_up_after: window,
        },
        open_check,
    })
}
