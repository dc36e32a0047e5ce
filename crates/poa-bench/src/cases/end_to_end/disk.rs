//! The disk's own floor under a durable commit: rewriting one 4 KiB page of a file next to the
//! chains and `fdatasync`ing it, one sample after another. The page is rewritten in place, so
//! no size change forces a metadata flush: a commit with one fsync per block can be no faster
//! than this on the same disk. Owns the file and its timing, nothing else.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::stats::Latencies;

/// Bytes written before each `fdatasync`: one page, the least a commit writes.
pub(crate) const PAGE_BYTES: usize = 4096;

/// A file in the chains' directory and the `fdatasync` latencies measured on it so far.
#[derive(Debug)]
pub(crate) struct FsyncProbe {
    file: File,
    latencies: Latencies,
}

impl FsyncProbe {
    /// Creates the probe's file in `dir` with its one page already on disk.
    ///
    /// # Errors
    /// Fails when the file cannot be created or synced.
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        let path = dir.join("fsync-probe");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all_at(&[0; PAGE_BYTES], 0)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            file,
            latencies: Latencies::new(),
        })
    }

    /// Takes `samples` more samples on the blocking pool (the probe moves there and back).
    ///
    /// # Errors
    /// Fails when a write or an `fdatasync` fails.
    pub(crate) async fn sample(mut self, samples: u64) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            let mut page = [0_u8; PAGE_BYTES];
            for sample in 0..samples {
                // A new content every time, so no layer can skip the write as unchanged.
                page[..8].copy_from_slice(&sample.to_be_bytes());
                let started = Instant::now();
                self.file
                    .write_all_at(&page, 0)
                    .context("cannot write the probe's page")?;
                self.file
                    .sync_data()
                    .context("cannot fdatasync the probe")?;
                self.latencies.record(started.elapsed());
            }
            Ok(self)
        })
        .await
        .context("the fsync probe task failed")?
    }

    /// The latencies measured so far.
    pub(crate) fn latencies(&self) -> &Latencies {
        &self.latencies
    }
}
