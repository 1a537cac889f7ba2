//! Uploaded bytes spooled to files under the state directory, so that uploading a file of
//! several gigabytes into the simulator (a restore) costs disk, not memory. Content hashes are
//! computed while the bytes arrive; reads seek to any offset (`Range`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes being received (an upload session), appended in order.
#[derive(Clone, Debug)]
pub struct SpoolWriter {
    path: PathBuf,
    len: u64,
    hasher: blake3::Hasher,
}

impl SpoolWriter {
    /// Creates an empty spool file under `dir/spool/`.
    ///
    /// # Errors
    /// The directory or the file cannot be created.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let dir = dir.join("spool");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::File::create(&path)?;
        Ok(Self {
            path,
            len: 0,
            hasher: blake3::Hasher::new(),
        })
    }

    /// Appends `data`.
    ///
    /// # Errors
    /// The write failed (the spool is unchanged in length then).
    pub fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes received so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was received yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The complete content.
    #[must_use]
    pub fn finish(self) -> SpoolFile {
        SpoolFile {
            hash: self.hasher.finalize(),
            path: self.path.clone(),
            len: self.len,
        }
    }

    /// Removes the file of an abandoned upload.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A complete spooled content; its file goes when the last reference does.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    len: u64,
    hash: blake3::Hash,
}

impl SpoolFile {
    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the content is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// BLAKE3 of the content, as hex.
    #[must_use]
    pub fn hash_hex(&self) -> String {
        self.hash.to_hex().to_string()
    }

    /// Reads `len` bytes from `offset`.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_hash_and_reads_at_offsets_then_cleans_up() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut w = SpoolWriter::create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        w.append(b"hello ").unwrap_or_else(|e| panic!("{e}"));
        w.append(b"world").unwrap_or_else(|e| panic!("{e}"));
        let f = w.finish();
        assert_eq!(f.len(), 11);
        assert_eq!(
            f.hash_hex(),
            blake3::hash(b"hello world").to_hex().to_string()
        );
        assert_eq!(f.read_at(6, 5).unwrap_or_default(), b"world");
        let path = f.path.clone();
        drop(f);
        assert!(!path.exists());
    }
}
