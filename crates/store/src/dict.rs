//! Compression dictionaries for small blobs.
//!
//! zstd compresses a 20 KB e-mail poorly on its own: every blob starts with an empty history.
//! A repository therefore trains one dictionary from the first few MiB of small blobs a run
//! writes (zstd's dictionary builder) and compresses every later blob up to
//! [`DICT_BLOB_LIMIT`] with it; on mail-like data that is about 6 % smaller, and faster.
//!
//! A dictionary lives in `<repo>/dict/<id>.zdict` (the id is zstd's dictionary id, also written
//! in every frame compressed with it): `"BHDICT\0\x01"`, then the dictionary stored like a blob
//! (id, flags, raw length, stored bytes: compressed, and sealed with the repository key when the
//! repository is encrypted, so the dictionary's text is protected like the blobs'). It is
//! written atomically (temp file, fsync, rename, folder fsync) before the first blob that uses
//! it, and never removed: blobs flagged [`crate::crypto::FLAG_DICT`] need it to be read. Since
//! every small blob after it depends on that one file, it is written twice (`<id>.zdict` and
//! `<id>.zdict.copy`); a reader that finds one damaged (its content no longer hashes to the id
//! it carries) or missing uses the other. The
//! first dictionary raises `config.json`'s format to 2, so older versions refuse the repository
//! instead of failing on its blobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::crypto::Codec;
use crate::error::{IoContext, Result, StoreError};
use crate::id::BlobId;

/// Folder of the dictionaries in the repository.
pub(crate) const DICT_DIR: &str = "dict";
/// Blobs up to this length are compressed with the dictionary.
pub(crate) const DICT_BLOB_LIMIT: usize = 128 * 1024;
const MAGIC: &[u8; 8] = b"BHDICT\0\x01";
/// Name ending of a dictionary file, and of its second copy after it.
const SUFFIX: &str = ".zdict";
const COPY_SUFFIX: &str = ".copy";
/// Largest dictionary trained.
const DICT_SIZE: usize = 112 * 1024;

/// One dictionary, prepared for compression at the repository's level and for decompression.
pub(crate) struct Dict {
    pub(crate) id: u32,
    pub(crate) enc: EncoderDictionary<'static>,
    pub(crate) dec: DecoderDictionary<'static>,
}

/// The dictionaries of a repository: the one new blobs use, and every one read so far.
#[derive(Default)]
pub(crate) struct Dicts {
    dir: Option<PathBuf>,
    current: RwLock<Option<Arc<Dict>>>,
    known: RwLock<HashMap<u32, Arc<Dict>>>,
}

impl Dicts {
    /// Dictionaries kept in `<root>/dict`.
    pub(crate) fn in_repository(root: &Path) -> Self {
        Self {
            dir: Some(root.join(DICT_DIR)),
            ..Self::default()
        }
    }

    /// The dictionary new small blobs are compressed with.
    pub(crate) fn current(&self) -> Option<Arc<Dict>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    fn remember(&self, d: &Arc<Dict>) {
        if let Ok(mut k) = self.known.write() {
            k.insert(d.id, d.clone());
        }
    }

    fn path(&self, id: u32) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{id:08x}{SUFFIX}")))
    }

    /// The second copy of a dictionary.
    fn copy_path(&self, id: u32) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{id:08x}{SUFFIX}{COPY_SUFFIX}")))
    }
}

fn prepare(raw: &[u8], level: i32) -> std::result::Result<Dict, String> {
    let id = zstd::zstd_safe::get_dict_id_from_dict(raw)
        .ok_or("not a zstd dictionary (no dictionary id)")?
        .get();
    Ok(Dict {
        id,
        enc: EncoderDictionary::copy(raw, level),
        dec: DecoderDictionary::copy(raw),
    })
}

impl Codec {
    /// The dictionary with id `id`, read from the repository the first time. The error is a
    /// human-readable reason (it ends up in verify's report of the blobs that need it).
    pub(crate) fn dict(&self, id: u32) -> std::result::Result<Arc<Dict>, String> {
        if let Some(d) = self
            .dicts()
            .known
            .read()
            .ok()
            .and_then(|k| k.get(&id).cloned())
        {
            return Ok(d);
        }
        let paths = [self.dicts().path(id), self.dicts().copy_path(id)];
        let mut reasons = Vec::new();
        for path in paths.into_iter().flatten() {
            match self.read_dict(&path, id) {
                Ok(d) => {
                    let d = Arc::new(d);
                    self.dicts().remember(&d);
                    return Ok(d);
                }
                Err(e) => reasons.push(format!("{}: {e}", path.display())),
            }
        }
        if reasons.is_empty() {
            return Err(format!("compression dictionary {id:08x} unknown"));
        }
        Err(format!("compression dictionary {}", reasons.join("; ")))
    }

    /// One copy of dictionary `id`, checked against the id it carries and the one asked for.
    fn read_dict(&self, path: &Path, id: u32) -> std::result::Result<Dict, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let d = self
            .decode_dict(&bytes)
            .and_then(|raw| prepare(&raw, self.level()))?;
        if d.id != id {
            return Err(format!("holds id {:08x}", d.id));
        }
        Ok(d)
    }

    fn decode_dict(&self, bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("not a dictionary file")?;
        if rest.len() < 37 {
            return Err("dictionary file too short".into());
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&rest[..32]);
        let flags = rest[32];
        let raw_len = u32::from_le_bytes([rest[33], rest[34], rest[35], rest[36]]) as usize;
        self.open(&BlobId(id), flags, raw_len, &rest[37..])
    }

    /// Makes the repository's dictionary (if it has one) the one new blobs use. A dictionary
    /// that cannot be read is logged and not used: blobs compressed with it fail to read with
    /// the reason, and new blobs are compressed without it.
    pub(crate) fn load_current_dict(&self) -> Result<()> {
        let Some(dir) = self.dicts().dir.clone() else {
            return Ok(());
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut ids = Vec::new();
        for e in entries {
            let name = e.at(&dir)?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_suffix(COPY_SUFFIX)
                .unwrap_or(&name)
                .strip_suffix(SUFFIX)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        // One dictionary per repository normally (another is trained only when it could not be
        // read); the highest id that reads is used.
        for &id in ids.iter().rev() {
            match self.dict(id) {
                Ok(d) => {
                    if let Ok(mut c) = self.dicts().current.write() {
                        *c = Some(d);
                    }
                    break;
                }
                Err(reason) => tracing::warn!(%reason, "compression dictionary not used"),
            }
        }
        Ok(())
    }

    /// Stores a trained dictionary in the repository (durably, before any blob uses it) and
    /// makes it the current one.
    pub(crate) fn install_dict(&self, raw: &[u8]) -> Result<u32> {
        let dir = self
            .dicts()
            .dir
            .clone()
            .ok_or_else(|| StoreError::Invalid("no dictionary folder".into()))?;
        let d = Arc::new(prepare(raw, self.level()).map_err(StoreError::Invalid)?);
        let id = self.blob_id(raw);
        let sealed = self.seal_plain(&id, raw)?;
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| StoreError::Invalid("dictionary too large".into()))?;
        let mut file = Vec::with_capacity(MAGIC.len() + 37 + sealed.bytes.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&id.0);
        file.push(sealed.flags);
        file.extend_from_slice(&raw_len.to_le_bytes());
        file.extend_from_slice(&sealed.bytes);
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).at(&dir)?;
        if created && let Some(root) = dir.parent() {
            crate::fsutil::sync_dir(root)?;
        }
        for path in [self.dicts().copy_path(d.id), self.dicts().path(d.id)] {
            let path = path.ok_or_else(|| StoreError::Invalid("no dictionary folder".into()))?;
            crate::fsutil::write_atomic(&path, &file)?;
        }
        self.dicts().remember(&d);
        if let Ok(mut c) = self.dicts().current.write() {
            *c = Some(d.clone());
        }
        Ok(d.id)
    }
}

/// Collects small blobs of a run until there are enough to train a dictionary.
pub(crate) struct Sampler {
    samples: Vec<Vec<u8>>,
    bytes: usize,
    /// Train once this many bytes of samples are collected…
    pub(crate) want_bytes: usize,
    /// …from at least this many blobs.
    pub(crate) want_samples: usize,
}

impl Sampler {
    /// 8 MiB of samples from at least 256 blobs: about 70 times the dictionary's size, what
    /// zstd's builder needs for a good dictionary, trained in about a second.
    pub(crate) fn new() -> Self {
        Self {
            samples: Vec::new(),
            bytes: 0,
            want_bytes: 8 << 20,
            want_samples: 256,
        }
    }

    /// Adds a blob (if small enough to be compressed with a dictionary); true when enough
    /// samples are collected.
    pub(crate) fn add(&mut self, raw: &[u8]) -> bool {
        if raw.len() >= 64 && raw.len() <= DICT_BLOB_LIMIT {
            self.samples.push(raw.to_vec());
            self.bytes += raw.len();
        }
        self.bytes >= self.want_bytes && self.samples.len() >= self.want_samples
    }

    /// Trains a dictionary from the samples.
    pub(crate) fn train(self) -> std::result::Result<Vec<u8>, String> {
        zstd::dict::from_samples(&self.samples, DICT_SIZE).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{FLAG_DICT, Keys};

    fn mail(i: usize) -> Vec<u8> {
        let words = [
            "budget", "meeting", "report", "attached", "regards", "invoice",
        ];
        let mut m = format!(
            "From: user{}@example.com\r\nSubject: weekly {i}\r\nMessage-ID: <{i}@example.com>\r\n\r\n",
            i % 7
        );
        let mut s = i as u64 | 1;
        while m.len() < 3000 + (i % 5) * 700 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            m.push_str(words[(s % words.len() as u64) as usize]);
            m.push(if s.is_multiple_of(11) { '\n' } else { ' ' });
        }
        m.into_bytes()
    }

    #[test]
    fn trained_dictionary_shrinks_small_blobs_and_survives_reopening() {
        for keys in [None, Some(Keys::random())] {
            let dir = tempfile::tempdir().unwrap();
            let codec = Codec::new(keys.clone()).with_dicts(dir.path());
            let mut sampler = Sampler::new();
            sampler.want_bytes = 400_000;
            let mut i = 0;
            while !sampler.add(&mail(i)) {
                i += 1;
            }
            let trained = sampler.train().unwrap();
            let probe = mail(10_001);
            let id = codec.blob_id(&probe);
            let before = codec.seal(&id, &probe).unwrap();
            assert_eq!(before.flags & FLAG_DICT, 0);
            let dict_id = codec.install_dict(&trained).unwrap();
            let after = codec.seal(&id, &probe).unwrap();
            assert_ne!(after.flags & FLAG_DICT, 0);
            assert!(
                after.bytes.len() < before.bytes.len(),
                "{} with the dictionary, {} without",
                after.bytes.len(),
                before.bytes.len()
            );
            // The file keeps the dictionary's text only sealed in an encrypted repository.
            let file = std::fs::read(dir.path().join(format!("dict/{dict_id:08x}.zdict"))).unwrap();
            let needle = b"budget";
            let visible = file.windows(needle.len()).any(|w| w == needle)
                || zstd::bulk::decompress(&file[45..], trained.len())
                    .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle));
            assert_eq!(visible, keys.is_none());
            // A new codec (another process) reads the blob through the stored dictionary.
            let fresh = Codec::new(keys.clone()).with_dicts(dir.path());
            assert_eq!(
                fresh
                    .open(&id, after.flags, probe.len(), &after.bytes)
                    .unwrap(),
                probe
            );
            fresh.load_current_dict().unwrap();
            assert_eq!(fresh.dicts().current().map(|d| d.id), Some(dict_id));
            // Without one file, its copy serves; without both, the blob fails with a reason
            // naming the dictionary.
            std::fs::remove_file(dir.path().join(format!("dict/{dict_id:08x}.zdict"))).unwrap();
            let copy = Codec::new(keys.clone()).with_dicts(dir.path());
            assert_eq!(
                copy.open(&id, after.flags, probe.len(), &after.bytes)
                    .unwrap(),
                probe
            );
            copy.load_current_dict().unwrap();
            assert_eq!(copy.dicts().current().map(|d| d.id), Some(dict_id));
            std::fs::remove_file(dir.path().join(format!("dict/{dict_id:08x}.zdict.copy")))
                .unwrap();
            let lost = Codec::new(keys).with_dicts(dir.path());
            let err = lost
                .open(&id, after.flags, probe.len(), &after.bytes)
                .unwrap_err();
            assert!(err.contains("dictionary"), "{err}");
        }
    }
}
