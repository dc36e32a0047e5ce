//! Resolves the transaction pool's settings (`--transaction-ttl`): flag, then file, then the
//! default of [`PoolLimits::standard`]; the age must be larger than zero.

use super::InvalidSetting;
use crate::cli::RunArgs;
use adapter_chain::PoolLimits;

/// The pool's bounds from `args` (flags over the file), else the standard ones.
///
/// # Errors
///
/// [`InvalidSetting`] naming `--transaction-ttl` when it is zero.
pub(super) fn resolve(args: &RunArgs) -> Result<PoolLimits, InvalidSetting> {
    let standard = PoolLimits::standard();
    let max_age = args.transaction_ttl.unwrap_or(standard.max_age);
    if max_age.is_zero() {
        return Err(InvalidSetting::new(
            "--transaction-ttl",
            "must be larger than zero, e.g. 1h",
        ));
    }
    Ok(PoolLimits {
        max_age,
        ..standard
    })
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn resolve__when_the_ttl_is_given_or_not__then_sets_the_pool_age_or_keeps_the_standard() {
        // given: the setting as the file spells it (the flag and the variable are the same field)
        let from_file: RunArgs = toml::from_str("transaction-ttl = \"10m\"").unwrap();

        // when / then
        assert_eq!(
            resolve(&RunArgs::default()).unwrap(),
            PoolLimits::standard()
        );
        assert_eq!(
            resolve(&from_file).unwrap().max_age,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn resolve__when_the_ttl_is_zero__then_names_the_flag() {
        // given
        let args = RunArgs {
            transaction_ttl: Some(Duration::ZERO),
            ..RunArgs::default()
        };

        // when
        let error = resolve(&args).unwrap_err();

        // then
        assert_eq!(error.flag, "--transaction-ttl");
    }
}
