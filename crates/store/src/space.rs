//! Where a repository's bytes are: blob data, per-blob and per-pack overhead, the catalog table
//! by table, dictionaries and other files. Read from the catalog and the folder; no pack is
//! opened.

use std::path::Path;

use crate::crypto::FLAG_ENCRYPTED;
use crate::error::{DbContext, Result};
use crate::pack::{BLOB_HEADER, PACK_FRAMING};
use crate::repo::Repository;

/// Bytes a sealed blob carries for its encryption (24-byte nonce, 16-byte tag).
const SEAL_OVERHEAD: u64 = 40;

/// A repository's bytes on disk, by what they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceReport {
    /// Number of pack files.
    pub packs: u64,
    /// Bytes of the pack files.
    pub pack_bytes: u64,
    /// Number of blobs in packs.
    pub blobs: u64,
    /// Blobs compressed with a dictionary.
    pub dict_blobs: u64,
    /// Compressed blob bytes (without encryption overhead).
    pub blob_data: u64,
    /// Blob headers in packs (id, lengths, flags, check).
    pub blob_headers: u64,
    /// Pack magic and trailers.
    pub pack_framing: u64,
    /// Nonces and authentication tags of sealed blobs.
    pub seal_overhead: u64,
    /// Bytes of the catalog database.
    pub catalog_bytes: u64,
    /// Bytes of its write-ahead log.
    pub wal_bytes: u64,
    /// Catalog pages per table (its indexes and, for the search index, its shadow tables
    /// counted with it), largest first; empty if SQLite was built without `dbstat`.
    pub catalog_tables: Vec<(String, u64)>,
    /// Bytes of the compression dictionaries.
    pub dict_bytes: u64,
    /// Every other file (configuration, key, lock).
    pub other_bytes: u64,
}

impl SpaceReport {
    /// Everything: packs, catalog, dictionaries and other files.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.pack_bytes + self.catalog_bytes + self.wal_bytes + self.dict_bytes + self.other_bytes
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn dir_files(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    })
}

impl Repository {
    /// Where the repository's bytes are (see [`SpaceReport`]).
    pub fn space_report(&self) -> Result<SpaceReport> {
        let root = self.root().to_path_buf();
        let mut r = SpaceReport {
            catalog_bytes: file_len(&self.catalog_path()),
            wal_bytes: file_len(&root.join("catalog.db-wal")),
            dict_bytes: dir_files(&root.join(crate::dict::DICT_DIR)),
            ..SpaceReport::default()
        };
        r.other_bytes = dir_files(&root)
            .saturating_sub(r.catalog_bytes)
            .saturating_sub(r.wal_bytes)
            .saturating_sub(file_len(&root.join("catalog.db-shm")));
        self.with_conn(|c| {
            let (packs, pack_bytes): (i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(size), 0) FROM packs",
                    [],
                    |x| Ok((x.get(0)?, x.get(1)?)),
                )
                .ctx("summing packs")?;
            let (blobs, data, sealed, dict): (i64, i64, i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(length), 0),
                        coalesce(sum(flags & ?1 != 0), 0), coalesce(sum(flags & ?2 != 0), 0)
                     FROM blobs",
                    [FLAG_ENCRYPTED, crate::crypto::FLAG_DICT],
                    |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?)),
                )
                .ctx("summing blobs")?;
            let sealed = sealed.max(0) as u64;
            r.packs = packs.max(0) as u64;
            r.pack_bytes = pack_bytes.max(0) as u64;
            r.blobs = blobs.max(0) as u64;
            r.dict_blobs = dict.max(0) as u64;
            r.seal_overhead = sealed * SEAL_OVERHEAD;
            r.blob_data = (data.max(0) as u64).saturating_sub(r.seal_overhead);
            r.blob_headers = r.blobs * BLOB_HEADER;
            r.pack_framing = r.packs * PACK_FRAMING;
            // Each b-tree's pages, indexes and FTS shadow tables counted with their table.
            let tables = c
                .prepare(
                    "SELECT coalesce(m.tbl_name, d.name) t, sum(d.pgsize) FROM dbstat d
                     LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY t",
                )
                .and_then(|mut st| {
                    st.query_map([], |x| Ok((x.get::<_, String>(0)?, x.get::<_, i64>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                });
            if let Ok(mut t) = tables {
                let mut merged: Vec<(String, u64)> = Vec::new();
                for (name, bytes) in t.drain(..) {
                    let name = match name.strip_prefix("search_") {
                        Some(_) => "search".to_string(),
                        None => name,
                    };
                    match merged.iter_mut().find(|(n, _)| *n == name) {
                        Some(e) => e.1 += bytes.max(0) as u64,
                        None => merged.push((name, bytes.max(0) as u64)),
                    }
                }
                merged.sort_by_key(|e| std::cmp::Reverse(e.1));
                r.catalog_tables = merged;
            }
            Ok(())
        })?;
        Ok(r)
    }
}
