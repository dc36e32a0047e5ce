//! The local chain database's settings: flags first, then the `--config` file, then the
//! defaults, validated with the flag named in every error.

use adapter_chain::{OpenCheck, RecoveryPolicy, StoreOptions};

use super::InvalidSetting;
use crate::cli::{ChainOpenCheck, RunArgs};

/// The local chain database's validated settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainStorageSettings {
    /// Reopening after an I/O error, and when to give up.
    pub(crate) recovery: RecoveryPolicy,
    /// How the database is checked at startup.
    pub(crate) open_check: OpenCheck,
    /// Upper bound of the database's page cache, in bytes.
    pub(crate) cache_size_bytes: usize,
}

/// One MiB.
const MIB: u64 = 1024 * 1024;

/// The largest cache accepted: beyond it a typo (a size in bytes given as MiB) would ask for
/// more memory than any host has.
const MAX_CACHE_MIB: u64 = 1024 * 1024;

/// Checks the settings (flags over the file), with the defaults for what neither sets.
pub(super) fn resolve(args: &RunArgs) -> Result<ChainStorageSettings, InvalidSetting> {
    let defaults = RecoveryPolicy::default();
    let window = args.chain_recovery_window.unwrap_or(defaults.give_up_after);
    if window < defaults.retry_every {
        return Err(InvalidSetting::new(
            "--chain-recovery-window",
            format!(
                "must be at least {} (one reopen attempt), e.g. 60s",
                humantime::format_duration(defaults.retry_every)
            ),
        ));
    }
    let open_check = match args.chain_open_check {
        None | Some(ChainOpenCheck::Full) => OpenCheck::Full,
        Some(ChainOpenCheck::Quick) => OpenCheck::Quick,
    };
    let default_cache_mib = StoreOptions::DEFAULT_CACHE_SIZE_BYTES as u64 / MIB;
    let cache_mib = args.chain_cache_mib.unwrap_or(default_cache_mib);
    if cache_mib == 0 || cache_mib > MAX_CACHE_MIB {
        return Err(InvalidSetting::new(
            "--chain-cache-mib",
            format!(
                "must be between 1 and {MAX_CACHE_MIB} (MiB), e.g. {default_cache_mib}; found {cache_mib}"
            ),
        ));
    }
    let cache_size_bytes = usize::try_from(cache_mib * MIB).map_err(|_| {
        InvalidSetting::new(
            "--chain-cache-mib",
            format!("{cache_mib} MiB does not fit this platform's address space"),
        )
    })?;
    Ok(ChainStorageSettings {
        recovery: RecoveryPolicy {
            retry_every: defaults.retry_every,
            give_up_after: window,
        },
        open_check,
        cache_size_bytes,
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
