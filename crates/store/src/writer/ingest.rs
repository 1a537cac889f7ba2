//! The content path of a run writer: chunk and hash on the writer's thread, compress and seal on
//! a second thread (the NAS has two to four cores), append to the pack in order.
//!
//! At most [`MAX_IN_FLIGHT`] blobs are being sealed at a time, which bounds memory. A content's
//! catalog row is written at once; chunk rows whose blob is still being sealed are deferred and
//! written by [`RunWriter::drain`], which every checkpoint and the commit call first, so the
//! catalog never commits a content whose chunks are missing.

use std::io::Read;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use rusqlite::{OptionalExtension, params};

use super::{PACK_TARGET, RunWriter};
use crate::chunker::Chunker;
use crate::crypto::{Codec, Sealed};
use crate::error::{DbContext, Result, StoreError};
use crate::id::{BlobId, ContentId};
use crate::model::{ContentRef, StoredContent};
use crate::pack::{BLOB_HEADER, PackWriter};

/// Blobs being sealed at most at a time.
const MAX_IN_FLIGHT: usize = 4;

type Done = (BlobId, usize, Result<Sealed>);

/// The sealing thread.
pub(crate) struct Sealer {
    jobs: Option<Sender<(BlobId, Vec<u8>)>>,
    done: Receiver<Done>,
    handle: Option<JoinHandle<()>>,
    in_flight: usize,
    pending: std::collections::HashSet<BlobId>,
}

impl Sealer {
    pub(crate) fn new(codec: Codec) -> Self {
        let (jobs, job_rx) = channel::<(BlobId, Vec<u8>)>();
        let (done_tx, done) = channel::<Done>();
        let handle = std::thread::Builder::new()
            .name("backhome-seal".into())
            .spawn(move || {
                for (id, raw) in job_rx {
                    let sealed = codec.seal(&id, &raw);
                    if done_tx.send((id, raw.len(), sealed)).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Self {
            jobs: Some(jobs),
            done,
            handle,
            in_flight: 0,
            pending: std::collections::HashSet::new(),
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A chunk of the content being stored: its blob row, or a blob still being sealed.
enum Chunk {
    Row(i64),
    Pending(BlobId),
}

impl RunWriter {
    fn blob_row(&self, id: &BlobId) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM blobs WHERE substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1",
            )
            .and_then(|mut s| s.query_row([&id.0[..]], |r| r.get(0)).optional())
            .ctx("looking up a blob")
    }

    /// Hands a new blob to the sealing thread (sealing inline if the thread is gone).
    fn submit(&mut self, id: BlobId, raw: &[u8]) -> Result<()> {
        if self.sampler.as_mut().is_some_and(|s| s.add(raw)) {
            self.train_dictionary();
        }
        while self.sealer.in_flight >= MAX_IN_FLIGHT {
            self.finish_one()?;
        }
        let sent = match (&self.sealer.jobs, &self.sealer.handle) {
            (Some(tx), Some(_)) => tx.send((id, raw.to_vec())).is_ok(),
            _ => false,
        };
        if sent {
            self.sealer.in_flight += 1;
            self.sealer.pending.insert(id);
            Ok(())
        } else {
            let sealed = self.repo.inner.codec.seal(&id, raw)?;
            self.append(id, raw.len(), sealed)
        }
    }

    /// Trains the repository's compression dictionary from the collected samples and stores
    /// it; blobs sealed from now on use it. A failure only leaves blobs compressed without one.
    fn train_dictionary(&mut self) {
        let Some(sampler) = self.sampler.take() else {
            return;
        };
        let started = std::time::Instant::now();
        match sampler
            .train()
            .map_err(StoreError::Invalid)
            .and_then(|raw| self.repo.store_dictionary(&raw))
        {
            Ok(id) => tracing::info!(
                dictionary = format!("{id:08x}"),
                ms = started.elapsed().as_millis() as u64,
                "compression dictionary trained for small blobs"
            ),
            Err(e) => tracing::warn!(error = %e, "no compression dictionary: training failed"),
        }
    }

    /// Takes the next sealed blob from the thread and appends it.
    fn finish_one(&mut self) -> Result<()> {
        let (id, raw_len, sealed) = self
            .sealer
            .done
            .recv()
            .map_err(|_| StoreError::Invalid("the sealing thread stopped".into()))?;
        self.sealer.in_flight -= 1;
        self.sealer.pending.remove(&id);
        self.append(id, raw_len, sealed?)
    }

    /// Appends a sealed blob to the open pack and records it.
    fn append(&mut self, id: BlobId, raw_len: usize, sealed: Sealed) -> Result<()> {
        if self.pack.is_none() {
            let w = PackWriter::create(self.repo.root())?;
            let row: i64 = self
                .conn
                .query_row(
                    "INSERT INTO packs(name, size, blob_count, created_run) VALUES (?1, 0, 0, ?2)
                     RETURNING id",
                    params![&w.id().0[..], self.run.0],
                    |r| r.get(0),
                )
                .ctx("recording a pack")?;
            self.pack = Some((w, row));
        }
        let Some((w, prow)) = self.pack.as_mut() else {
            return Err(StoreError::Invalid("no open pack".into()));
        };
        let raw_len32 =
            u32::try_from(raw_len).map_err(|_| StoreError::Invalid("chunk too large".into()))?;
        let offset = w.add(&id, sealed.flags, raw_len32, &sealed.bytes)?;
        let prow = *prow;
        self.conn
            .prepare_cached(
                "INSERT INTO blobs(hash, pack, offset, length, raw_length, flags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &id.0[..],
                    prow,
                    offset as i64,
                    sealed.bytes.len() as i64,
                    raw_len as i64,
                    sealed.flags
                ])
            })
            .ctx("recording a blob")?;
        self.stats.blobs_new += 1;
        self.stats.bytes_stored += sealed.bytes.len() as u64 + BLOB_HEADER;
        Ok(())
    }

    /// Waits for every blob being sealed and writes the deferred chunk rows.
    pub(super) fn drain(&mut self) -> Result<()> {
        while self.sealer.in_flight > 0 {
            self.finish_one()?;
        }
        let deferred = std::mem::take(&mut self.deferred);
        for (content, seq, id) in deferred {
            let row = self
                .blob_row(&id)?
                .ok_or_else(|| StoreError::MissingBlob(id.to_hex()))?;
            self.conn
                .prepare_cached(
                    "INSERT INTO content_chunks(content, seq, blob) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![content, seq, row]))
                .ctx("recording content chunks")?;
        }
        Ok(())
    }

    fn pack_full(&self) -> bool {
        self.pack
            .as_ref()
            .is_some_and(|(p, _)| p.size() >= PACK_TARGET)
    }

    pub(super) fn put_content_inner(&mut self, reader: impl Read) -> Result<StoredContent> {
        let codec = self.repo.inner.codec.clone();
        let buf = std::mem::take(&mut self.chunk_buf);
        let mut chunker = Chunker::with_buffer(reader, self.repo.chunk_params(), buf);
        let mut hasher = codec.hasher();
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let mut new_bytes = 0u64;
        loop {
            let chunk = match chunker.next_chunk() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(source) => return Err(StoreError::Source { source }),
            };
            hasher.update(chunk);
            size += chunk.len() as u64;
            let id = codec.blob_id(chunk);
            if self.sealer.pending.contains(&id) {
                self.stats.blobs_dedup += 1;
                chunks.push(Chunk::Pending(id));
            } else if let Some(row) = self.blob_row(&id)? {
                self.stats.blobs_dedup += 1;
                chunks.push(Chunk::Row(row));
            } else {
                new_bytes += chunk.len() as u64;
                self.submit(id, chunk)?;
                chunks.push(Chunk::Pending(id));
            }
            if self.pack_full() {
                self.checkpoint_inner()?;
            }
        }
        self.chunk_buf = chunker.into_buffer();
        self.stats.bytes_in += size;
        let hash = Codec::content_hash(&hasher);
        // An identical content already stored (found through its first blob).
        let first = match chunks.first() {
            Some(Chunk::Row(r)) => Some(*r),
            _ => None,
        };
        let existing: Option<i64> = match first {
            Some(first) => self
                .conn
                .prepare_cached(
                    "SELECT c.id FROM content_chunks cc JOIN contents c ON c.id = cc.content
                     JOIN blobs b ON b.id = cc.blob
                     WHERE cc.blob = ?1 AND cc.seq = 0 AND c.size = ?2
                         AND coalesce(c.hash, b.hash) = ?3 LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![first, size as i64, &hash.0[..]], |r| r.get(0))
                        .optional()
                })
                .ctx("looking up a content")?,
            None => None,
        };
        if let Some(id) = existing {
            return Ok(StoredContent {
                content: ContentRef {
                    id: ContentId(id),
                    size,
                    hash,
                },
                deduplicated: true,
                new_bytes,
            });
        }
        // A one-blob content's hash is its blob's id: not stored twice.
        let stored_hash = (chunks.len() != 1).then_some(&hash.0[..]);
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO contents(hash, size, created_run) VALUES (?1, ?2, ?3) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(params![stored_hash, size as i64, self.run.0], |r| r.get(0))
            })
            .ctx("recording a content")?;
        for (seq, c) in chunks.iter().enumerate() {
            match c {
                Chunk::Row(row) => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO content_chunks(content, seq, blob) VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut s| s.execute(params![id, seq as i64, row]))
                        .ctx("recording content chunks")?;
                }
                Chunk::Pending(b) => self.deferred.push((id, seq as i64, *b)),
            }
        }
        // Large contents settle at once (bounded deferred list, exact stats); small ones overlap
        // with the next items.
        if chunks.len() > 1 {
            self.drain()?;
        }
        Ok(StoredContent {
            content: ContentRef {
                id: ContentId(id),
                size,
                hash,
            },
            deduplicated: false,
            new_bytes,
        })
    }
}
