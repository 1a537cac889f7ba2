//! Pack files: many blobs appended to one file, so a million e-mails are not a million files.
//!
//! Layout (all integers little-endian):
//! ```text
//! "BHPACK\0\x01"                                          8 bytes
//! per blob:  "BHBL" | id[32] | flags u8 | raw_len u32 | stored_len u32 | check[4] | stored bytes
//! trailer:   n u32 | check[8] | "BHPKEND\x01"
//! ```
//! A blob header's `check` is the start of BLAKE3 over the header bytes before it; the trailer's
//! `check` is the start of BLAKE3 over all blob headers. A pack thus lists itself without the
//! catalog (verify, index rebuild) by walking its headers, a truncated or altered pack is
//! detected, and the walk still recovers the blobs before a damaged spot.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{TempFile, sync_dir};
use crate::id::{BlobId, PackId};

pub(crate) const PACK_MAGIC: &[u8; 8] = b"BHPACK\0\x01";
const BLOB_MAGIC: &[u8; 4] = b"BHBL";
const END_MAGIC: &[u8; 8] = b"BHPKEND\x01";
/// Length of a blob record's header.
pub(crate) const BLOB_HEADER: u64 = 49;
/// Length of the trailer.
const TRAILER: u64 = 20;
/// Bytes of a pack that are neither blob headers nor blobs (magic and trailer).
pub(crate) const PACK_FRAMING: u64 = PACK_MAGIC.len() as u64 + TRAILER;

/// One blob of a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob.
    pub id: BlobId,
    /// Offset of its stored bytes in the pack.
    pub offset: u64,
    /// Length of its stored bytes.
    pub stored_len: u32,
    /// Length of the plain blob.
    pub raw_len: u32,
    /// Compression/encryption flags.
    pub flags: u8,
}

/// Path of a pack in the repository.
pub(crate) fn pack_path(root: &Path, id: &PackId) -> PathBuf {
    let h = id.to_hex();
    root.join("packs").join(&h[..2]).join(format!("{h}.pack"))
}

fn check4(b: &[u8]) -> [u8; 4] {
    let h = blake3::hash(b);
    let mut o = [0; 4];
    o.copy_from_slice(&h.as_bytes()[..4]);
    o
}

fn header_bytes(e: &PackEntry) -> [u8; BLOB_HEADER as usize] {
    let mut h = [0u8; BLOB_HEADER as usize];
    h[..4].copy_from_slice(BLOB_MAGIC);
    h[4..36].copy_from_slice(&e.id.0);
    h[36] = e.flags;
    h[37..41].copy_from_slice(&e.raw_len.to_le_bytes());
    h[41..45].copy_from_slice(&e.stored_len.to_le_bytes());
    let c = check4(&h[..45]);
    h[45..].copy_from_slice(&c);
    h
}

fn headers_check(entries: &[PackEntry]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    for e in entries {
        h.update(&header_bytes(e));
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&h.finalize().as_bytes()[..8]);
    o
}

/// Appends blobs to a new pack through a temp file.
pub(crate) struct PackWriter {
    id: PackId,
    path: PathBuf,
    tmp: Option<TempFile>,
    out: BufWriter<File>,
    pos: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    pub(crate) fn create(root: &Path) -> Result<Self> {
        let id = PackId::random();
        let path = pack_path(root, &id);
        let tmp = TempFile::create(&path)?;
        let f = tmp.file.try_clone().at(&path)?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(PACK_MAGIC).at(&path)?;
        Ok(Self {
            id,
            path,
            tmp: Some(tmp),
            out,
            pos: PACK_MAGIC.len() as u64,
            entries: Vec::new(),
        })
    }

    pub(crate) fn id(&self) -> PackId {
        self.id
    }

    pub(crate) fn size(&self) -> u64 {
        self.pos
    }

    /// Appends a blob; returns the offset of its stored bytes.
    pub(crate) fn add(
        &mut self,
        id: &BlobId,
        flags: u8,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<u64> {
        let stored_len = u32::try_from(stored.len())
            .map_err(|_| StoreError::Invalid("blob larger than 4 GiB".into()))?;
        let entry = PackEntry {
            id: *id,
            offset: self.pos + BLOB_HEADER,
            stored_len,
            raw_len,
            flags,
        };
        self.out.write_all(&header_bytes(&entry)).at(&self.path)?;
        self.out.write_all(stored).at(&self.path)?;
        let offset = entry.offset;
        self.pos = offset + u64::from(stored_len);
        self.entries.push(entry);
        Ok(offset)
    }

    /// Writes the trailer, syncs and renames the pack into place. Returns its final size.
    pub(crate) fn finish(mut self) -> Result<(PackId, u64, Vec<PackEntry>)> {
        let n = u32::try_from(self.entries.len())
            .map_err(|_| StoreError::Invalid("too many blobs in a pack".into()))?;
        let mut t = Vec::with_capacity(TRAILER as usize);
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&headers_check(&self.entries));
        t.extend_from_slice(END_MAGIC);
        self.out.write_all(&t).at(&self.path)?;
        self.out.flush().at(&self.path)?;
        self.pos += TRAILER;
        let tmp = self
            .tmp
            .take()
            .ok_or_else(|| StoreError::Invalid("pack finished twice".into()))?;
        let dir = self.path.parent().map(Path::to_path_buf);
        tmp.persist(&self.path)?;
        if let Some(d) = dir.as_ref().and_then(|d| d.parent()) {
            sync_dir(d)?;
        }
        Ok((self.id, self.pos, std::mem::take(&mut self.entries)))
    }
}

/// Reads the stored bytes of one blob.
pub(crate) fn read_stored(file: &mut File, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; len as usize];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// Lists a pack by walking its blob headers, checked against its trailer. Errors name what is
/// wrong.
pub(crate) fn read_trailer(
    len: u64,
    file: &mut File,
) -> std::result::Result<Vec<PackEntry>, String> {
    if len < PACK_MAGIC.len() as u64 + TRAILER {
        return Err("pack too short".into());
    }
    let mut tail = [0u8; TRAILER as usize];
    file.seek(SeekFrom::Start(len - TRAILER))
        .map_err(|e| e.to_string())?;
    file.read_exact(&mut tail).map_err(|e| e.to_string())?;
    if &tail[12..] != END_MAGIC {
        return Err("trailer missing".into());
    }
    let n = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let (entries, stop) = scan_records(file, len - TRAILER);
    if let Some(stop) = stop {
        return Err(stop);
    }
    if entries.len() != n {
        return Err(format!(
            "{} blobs found, the trailer says {n}",
            entries.len()
        ));
    }
    if headers_check(&entries)[..] != tail[4..12] {
        return Err("trailer checksum mismatch".into());
    }
    Ok(entries)
}

/// Walks a pack's blob headers front to back up to `end` (where the trailer starts, or the file
/// length for a pack whose trailer is lost). Stops at the first header that does not check out;
/// returns what it found and why it stopped, if early.
pub(crate) fn scan_records(file: &mut File, end: u64) -> (Vec<PackEntry>, Option<String>) {
    let mut out = Vec::new();
    let mut magic = [0u8; 8];
    if file.seek(SeekFrom::Start(0)).is_err()
        || file.read_exact(&mut magic).is_err()
        || &magic != PACK_MAGIC
    {
        return (out, Some("pack header missing".into()));
    }
    let mut pos = PACK_MAGIC.len() as u64;
    let mut h = [0u8; BLOB_HEADER as usize];
    while pos < end {
        if pos + BLOB_HEADER > end
            || file.seek(SeekFrom::Start(pos)).is_err()
            || file.read_exact(&mut h).is_err()
        {
            return (out, Some(format!("no complete blob header at {pos}")));
        }
        if &h[..4] != BLOB_MAGIC || check4(&h[..45]) != h[45..49] {
            return (out, Some(format!("damaged blob header at {pos}")));
        }
        let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&h[4..36]);
        let e = PackEntry {
            id: BlobId(id),
            offset: pos + BLOB_HEADER,
            stored_len: u32le(&h[41..45]),
            raw_len: u32le(&h[37..41]),
            flags: h[36],
        };
        pos = e.offset + u64::from(e.stored_len);
        if pos > end {
            return (out, Some(format!("blob at {} runs past the end", e.offset)));
        }
        out.push(e);
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Codec, Keys};
    use proptest::prelude::*;

    fn round_trip(blobs: &[Vec<u8>], codec: &Codec) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path()).unwrap();
        let mut ids = Vec::new();
        for b in blobs {
            let id = codec.blob_id(b);
            let s = codec.seal(&id, b).unwrap();
            w.add(&id, s.flags, b.len() as u32, &s.bytes).unwrap();
            ids.push(id);
        }
        let (pid, size, entries) = w.finish().unwrap();
        let path = pack_path(dir.path(), &pid);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        let mut f = File::open(&path).unwrap();
        let from_trailer = read_trailer(size, &mut f).unwrap();
        assert_eq!(from_trailer, entries);
        let (scanned, err) = scan_records(&mut f, size - TRAILER);
        assert_eq!(err, None);
        assert_eq!(scanned, entries);
        // Without its trailer the walk stops at the trailer bytes but keeps every blob.
        let (scanned, err) = scan_records(&mut f, size);
        assert!(err.is_some());
        assert_eq!(scanned, entries);
        for (e, b) in entries.iter().zip(blobs) {
            let stored = read_stored(&mut f, e.offset, e.stored_len).unwrap();
            assert_eq!(
                &codec
                    .open(&e.id, e.flags, e.raw_len as usize, &stored)
                    .unwrap(),
                b
            );
        }
        assert_eq!(entries.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20), enc in any::<bool>()) {
            let codec = Codec::new(enc.then(Keys::random));
            round_trip(&blobs, &codec);
        }
    }

    #[test]
    fn unfinished_pack_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path()).unwrap();
        w.add(&BlobId::of(b"x"), 0, 1, b"x").unwrap();
        let p = pack_path(dir.path(), &w.id());
        drop(w);
        assert!(!p.exists());
        assert!(!crate::fsutil::tmp_path(&p).exists());
    }
}
