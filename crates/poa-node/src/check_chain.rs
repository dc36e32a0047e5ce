//! `poa-node check-chain`: verifies a data directory offline (page checksums, then every block
//! from genesis to the head: ids, parent links, transaction roots, seals, indexes) with a
//! progress bar on a terminal, and exits 0 when it is sound, 1 when it is not.

use std::path::Path;
use std::process::ExitCode;

use adapter_chain::{AuthorityPublicKey, check_chain};
use indicatif::{ProgressBar, ProgressStyle};

/// Checks the chain in `data_dir`; prints the result on stdout, problems on stderr.
pub(crate) fn run(data_dir: &Path, authority: Option<AuthorityPublicKey>) -> ExitCode {
    // A panic here is the storage library's on a damaged file: the check catches it and
    // reports it as the damage it is, so the default backtrace on stderr would only mislead.
    std::panic::set_hook(Box::new(|_| {}));
    // indicatif draws nothing when stderr is not a terminal, so scripts see only the result.
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} blocks ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("checking");
    let checked = check_chain(data_dir, authority, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match checked {
        Ok(report) => {
            println!(
                "chain ok: {} (chain id {}, authority {}): {} blocks up to height {} (head {}), {} transactions",
                report.path.display(),
                report.spec.chain_id,
                report.spec.authority,
                report.head.get() + 1,
                report.head,
                report.head_id,
                report.transactions
            );
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("error: {problem}");
            ExitCode::FAILURE
        }
    }
}
