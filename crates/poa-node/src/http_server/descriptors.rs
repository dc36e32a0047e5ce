//! The process's limit of open file descriptors: raised at startup to what the HTTP limits need
//! (a login session or a service manager often leaves the soft limit at 1,024), or a refusal to
//! start that says which setting needs more than the hard limit allows.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::info;

/// The soft limit is raised at least to this (within the hard limit), for headroom.
const DESIRED_SOFT_LIMIT: u64 = 65_536;

/// The descriptor limit cannot cover what the settings need.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DescriptorLimitError {
    /// The hard limit is below what is needed.
    #[error(
        "{needed} open file descriptors are needed but the hard limit is {hard}: lower the setting or raise the limit (ulimit -Hn, LimitNOFILE= in a systemd unit)"
    )]
    BelowNeed {
        /// Descriptors the settings need.
        needed: u64,
        /// The hard limit.
        hard: u64,
    },
    /// The limit cannot be read or changed.
    #[error("the open file descriptor limit cannot be read or raised: {source}")]
    System {
        /// The system's error.
        #[source]
        source: nix::Error,
    },
}

/// Makes sure the soft limit covers `needed` descriptors, raising it towards the hard limit;
/// returns the soft limit in force.
///
/// # Errors
///
/// [`DescriptorLimitError::BelowNeed`] when the hard limit is below `needed`.
pub(crate) fn ensure_descriptors(needed: u64) -> Result<u64, DescriptorLimitError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|source| DescriptorLimitError::System { source })?;
    if hard < needed {
        return Err(DescriptorLimitError::BelowNeed { needed, hard });
    }
    if soft >= needed {
        return Ok(soft);
    }
    let target = needed.max(DESIRED_SOFT_LIMIT).min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)
        .map_err(|source| DescriptorLimitError::System { source })?;
    info!(
        from = soft,
        to = target,
        needed,
        "open file descriptor limit raised"
    );
    Ok(target)
}
