//! Downloads too large for memory go to a spool file on the repository's volume first, so the run
//! writer is held only while they are stored, never while they arrive over the network.
//!
//! Spool files are anonymous where the file system allows it (`O_TMPFILE` on btrfs and ext4): a
//! killed process leaves nothing behind. Anything a named fallback left is removed when the next
//! run opens the spool.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backhome_graph::Download;
use backhome_store::StoreError;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::RunError;
use crate::backup::progress::Progress;

/// The folder of a repository that holds spool files.
const SPOOL_DIR: &str = "spool";

/// Where a run spools its large downloads.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool of the repository at `root`. Leftovers of an earlier process are removed (a
    /// repository has one run at a time, so none of them is in use).
    #[must_use]
    pub fn open(root: &Path) -> Self {
        let dir = root.join(SPOOL_DIR);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "spool leftover not removed");
                }
            }
        }
        Self { dir }
    }

    /// Writes `prefix`, then the rest of `download`, to a new spool file, counting the
    /// downloaded bytes into `progress`; answers the file, rewound.
    ///
    /// # Errors
    /// [`RunError::Graph`] when the download breaks off; [`RunError::Store`] when the spool
    /// cannot be written (a full volume is [`StoreError::VolumeFull`]).
    pub async fn fill(
        &self,
        prefix: Vec<u8>,
        mut download: Download,
        progress: &Arc<Progress>,
    ) -> Result<File, RunError> {
        let dir = self.dir.clone();
        let io = |e: std::io::Error| RunError::Store(StoreError::io(&self.dir, e));
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            tempfile::tempfile_in(&dir)
        })
        .await
        .map_err(|e| RunError::Internal(e.to_string()))?
        .map_err(io)?;
        let mut out = tokio::fs::File::from_std(file);
        out.write_all(&prefix).await.map_err(io)?;
        drop(prefix);
        while let Some(chunk) = download.next().await {
            let chunk = chunk?;
            Progress::add(&progress.bytes_downloaded, chunk.len() as u64);
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        let mut file = out.into_std().await;
        tokio::task::spawn_blocking(move || file.seek(SeekFrom::Start(0)).map(|_| file))
            .await
            .map_err(|e| RunError::Internal(e.to_string()))?
            .map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_removed_when_the_spool_is_opened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(SPOOL_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".tmpLEFT"), b"from a killed run").unwrap();
        let spool = Spool::open(root.path());
        assert_eq!(std::fs::read_dir(&spool.dir).unwrap().count(), 0);
    }
}
