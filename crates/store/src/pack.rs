//! Pack files: many blobs appended to one file, so a million e-mails are not a million files.
//!
//! Layout (all integers little-endian):
//! ```text
//! "BHPACK\0\x01"                                          8 bytes
//! per blob:  "BHBL" | id[32] | flags u8 | raw_len u32 | stored_len u32 | check[4] | stored bytes
//! trailer:   entries (id[32] | offset u64 | stored_len u32 | raw_len u32 | flags u8) × n
//!            | n u32 | check[8] | "BHPKEND\x01"
//! ```
//! `check` is the start of BLAKE3 over the bytes it follows. The trailer lets verify and an index
//! rebuild list a pack without the catalog; the per-blob headers still let a scan recover the
//! blobs of a pack whose trailer is lost.

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
const ENTRY: usize = 49;

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
        let mut h = Vec::with_capacity(BLOB_HEADER as usize);
        h.extend_from_slice(BLOB_MAGIC);
        h.extend_from_slice(&id.0);
        h.push(flags);
        h.extend_from_slice(&raw_len.to_le_bytes());
        h.extend_from_slice(&stored_len.to_le_bytes());
        let c = check4(&h);
        h.extend_from_slice(&c);
        self.out.write_all(&h).at(&self.path)?;
        self.out.write_all(stored).at(&self.path)?;
        let offset = self.pos + BLOB_HEADER;
        self.pos = offset + u64::from(stored_len);
        self.entries.push(PackEntry {
            id: *id,
            offset,
            stored_len,
            raw_len,
            flags,
        });
        Ok(offset)
    }

    /// Writes the trailer, syncs and renames the pack into place. Returns its final size.
    pub(crate) fn finish(mut self) -> Result<(PackId, u64, Vec<PackEntry>)> {
        let mut t = Vec::with_capacity(self.entries.len() * ENTRY + 20);
        for e in &self.entries {
            t.extend_from_slice(&e.id.0);
            t.extend_from_slice(&e.offset.to_le_bytes());
            t.extend_from_slice(&e.stored_len.to_le_bytes());
            t.extend_from_slice(&e.raw_len.to_le_bytes());
            t.push(e.flags);
        }
        let n = u32::try_from(self.entries.len())
            .map_err(|_| StoreError::Invalid("too many blobs in a pack".into()))?;
        t.extend_from_slice(&n.to_le_bytes());
        let c = blake3::hash(&t);
        t.extend_from_slice(&c.as_bytes()[..8]);
        t.extend_from_slice(END_MAGIC);
        self.out.write_all(&t).at(&self.path)?;
        self.out.flush().at(&self.path)?;
        self.pos += t.len() as u64;
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

/// Lists a pack from its trailer. Errors name what is wrong.
pub(crate) fn read_trailer(
    bytes_len: u64,
    file: &mut File,
) -> std::result::Result<Vec<PackEntry>, String> {
    if bytes_len < (PACK_MAGIC.len() + 20) as u64 {
        return Err("pack too short".into());
    }
    let mut tail = [0u8; 20];
    file.seek(SeekFrom::Start(bytes_len - 20))
        .map_err(|e| e.to_string())?;
    file.read_exact(&mut tail).map_err(|e| e.to_string())?;
    if &tail[12..] != END_MAGIC {
        return Err("trailer magic missing".into());
    }
    let n = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    let tlen = n * ENTRY as u64;
    if tlen + 20 + PACK_MAGIC.len() as u64 > bytes_len {
        return Err("trailer longer than the pack".into());
    }
    let mut t = vec![0u8; tlen as usize];
    file.seek(SeekFrom::Start(bytes_len - 20 - tlen))
        .map_err(|e| e.to_string())?;
    file.read_exact(&mut t).map_err(|e| e.to_string())?;
    let mut h = blake3::Hasher::new();
    h.update(&t);
    h.update(&tail[..4]);
    if h.finalize().as_bytes()[..8] != tail[4..12] {
        return Err("trailer checksum mismatch".into());
    }
    Ok(t.chunks_exact(ENTRY).map(parse_entry).collect())
}

fn parse_entry(c: &[u8]) -> PackEntry {
    let mut id = [0u8; 32];
    id.copy_from_slice(&c[..32]);
    let u64le = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    };
    let u32le = |b: &[u8]| {
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        u32::from_le_bytes(a)
    };
    PackEntry {
        id: BlobId(id),
        offset: u64le(&c[32..40]),
        stored_len: u32le(&c[40..44]),
        raw_len: u32le(&c[44..48]),
        flags: c[48],
    }
}

/// Scans a pack's blob headers front to back (for packs whose trailer is damaged). Stops at the
/// first header that does not check out; returns what it found and why it stopped, if early.
pub(crate) fn scan_records(file: &mut File, len: u64) -> (Vec<PackEntry>, Option<String>) {
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
    while pos + BLOB_HEADER <= len {
        if file.seek(SeekFrom::Start(pos)).is_err() || file.read_exact(&mut h).is_err() {
            return (out, Some(format!("unreadable at {pos}")));
        }
        if &h[..4] != BLOB_MAGIC {
            // The trailer starts here (or the pack is damaged).
            let rest = len - pos;
            if rest >= 20 && (rest - 20).is_multiple_of(ENTRY as u64) {
                return (out, None);
            }
            return (out, Some(format!("no blob header at {pos}")));
        }
        if check4(&h[..45]) != h[45..49] {
            return (out, Some(format!("damaged blob header at {pos}")));
        }
        let mut e =
            parse_entry(&[&h[4..36], &[0u8; 8][..], &h[41..45], &h[37..41], &h[36..37]].concat());
        e.offset = pos + BLOB_HEADER;
        pos = e.offset + u64::from(e.stored_len);
        if pos > len {
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
        let (scanned, err) = scan_records(&mut f, size);
        assert_eq!(err, None);
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
