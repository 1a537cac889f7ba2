//! Crash-safe file writes, spelled out once: temp file in the target folder (removed on drop),
//! `sync_all`, `rename`, fsync of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// A temporary file next to its final path; removed on drop unless persisted.
pub(crate) struct TempFile {
    pub(crate) file: File,
    tmp: PathBuf,
    done: bool,
}

impl TempFile {
    /// Creates `<target>.tmp` (truncating a leftover of a killed process).
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let tmp = tmp_path(target);
        if let Some(dir) = tmp.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        Ok(Self {
            file,
            tmp,
            done: false,
        })
    }

    /// Flushes to disk and renames onto `target`, then syncs the folder.
    pub(crate) fn persist(mut self, target: &Path) -> Result<()> {
        self.file.sync_all().at(&self.tmp)?;
        fs::rename(&self.tmp, target).at(target)?;
        self.done = true;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `<path>.tmp`.
pub(crate) fn tmp_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsyncs a folder so that a rename or a new file in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut t = TempFile::create(path)?;
    t.file.write_all(bytes).at(path)?;
    t.persist(path)
}
