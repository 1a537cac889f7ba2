//! Garbage collection: plan, log, then delete. Contents no version references are dropped, packs
//! whose blobs are all garbage are deleted, packs that are mostly garbage are repacked. Blobs and
//! contents of an unfinished run are never garbage (grace). Each pack is handled in its own
//! step — new pack durable, catalog committed, old file deleted — so a kill loses nothing.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::error::{DbContext, IoContext, Result, StoreError};
use crate::id::{BlobId, PackId};
use crate::pace::{GcPacing, Tranquilizer};
use crate::pack::{PackWriter, pack_path, read_stored};
use crate::repo::Repository;

/// Share of garbage above which a pack is repacked.
const REPACK_THRESHOLD: f64 = 0.3;
/// Repacking pauses (when paced) after about this many bytes read and written.
const PACE_UNIT_BYTES: u64 = 2 << 20;

/// What a garbage collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Contents dropped.
    pub contents_removed: u64,
    /// Blobs dropped.
    pub blobs_removed: u64,
    /// Packs deleted because all their blobs were garbage.
    pub packs_deleted: u64,
    /// Packs rewritten without their garbage.
    pub packs_repacked: u64,
    /// Bytes of pack files freed.
    pub bytes_freed: u64,
    /// Leftover files of killed writers removed.
    pub orphans_removed: u64,
    /// Stopped early on request; the rest is collected next time.
    pub interrupted: bool,
    /// Time spent deleting and repacking packs (each such unit of work is followed by a pause).
    pub worked: Duration,
    /// Time spent asleep to pace the work ([`GcPacing`]).
    pub paced: Duration,
}

struct PackPlan {
    row: i64,
    pack: PackId,
    size: u64,
    live: u64,
    garbage: u64,
}

impl Repository {
    /// Collects garbage (takes the writer lock), unpaced.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with_stop(&AtomicBool::new(false))
    }

    /// Collects garbage unpaced, stopping between two packs once `stop` is set (for a shutdown
    /// or to give the NAS back to users); every step done so far is durable.
    pub fn gc_with_stop(&self, stop: &AtomicBool) -> Result<GcReport> {
        self.gc_paced(stop, GcPacing::NONE)
    }

    /// Collects garbage paced by `pacing` (sleeping between units of work so that the NAS
    /// stays responsive), stopping early once `stop` is set; a stop request also ends a pause.
    pub fn gc_paced(&self, stop: &AtomicBool, pacing: GcPacing) -> Result<GcReport> {
        let _lock = self.lock_writer()?;
        let conn = self.open_connection()?;
        self.gc_locked(&conn, stop, pacing)
    }

    pub(crate) fn gc_locked(
        &self,
        conn: &Connection,
        stop: &AtomicBool,
        pacing: GcPacing,
    ) -> Result<GcReport> {
        let mut pace = Tranquilizer::new(pacing, stop);
        let mut report = self.gc_steps(conn, stop, &mut pace)?;
        // Catalogs created with auto_vacuum=INCREMENTAL give the pages of dropped rows back to
        // the volume (a no-op for older catalogs).
        // (Stepped to the end: each step of the pragma frees one page.)
        {
            let mut st = conn
                .prepare("PRAGMA incremental_vacuum")
                .ctx("returning free catalog pages")?;
            let mut rows = st.query([]).ctx("returning free catalog pages")?;
            while rows.next().ctx("returning free catalog pages")?.is_some() {}
        }
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .ctx("returning free catalog pages")?;
        report.worked = pace.worked;
        report.paced = pace.slept;
        Ok(report)
    }

    fn gc_steps(
        &self,
        conn: &Connection,
        stop: &AtomicBool,
        pace: &mut Tranquilizer<'_>,
    ) -> Result<GcReport> {
        let mut report = GcReport {
            orphans_removed: self.sweep_orphans(conn)? as u64,
            ..GcReport::default()
        };
        // Grace: nothing created after the newest committed run is garbage.
        let horizon: i64 = conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'committed'",
                [],
                |r| r.get(0),
            )
            .ctx("reading runs")?;
        let running: Option<i64> = conn
            .query_row(
                "SELECT min(id) FROM runs WHERE status = 'running'",
                [],
                |r| r.get(0),
            )
            .ctx("reading runs")?;
        let horizon = running.map_or(horizon, |r| horizon.min(r - 1));
        report.contents_removed = conn
            .execute(
                "DELETE FROM contents WHERE created_run <= ?1
                 AND NOT EXISTS (SELECT 1 FROM node_versions v WHERE v.content = contents.id)",
                [horizon],
            )
            .ctx("dropping unreferenced contents")? as u64;
        let plans: Vec<PackPlan> = {
            let mut st = conn
                .prepare(
                    "SELECT p.id, p.name, p.size,
                        coalesce(sum(CASE WHEN EXISTS (SELECT 1 FROM content_chunks cc WHERE cc.blob = b.id) THEN b.length END), 0),
                        coalesce(sum(CASE WHEN NOT EXISTS (SELECT 1 FROM content_chunks cc WHERE cc.blob = b.id) THEN b.length END), 0)
                     FROM packs p LEFT JOIN blobs b ON b.pack = p.id
                     WHERE p.created_run <= ?1 GROUP BY p.id",
                )
                .ctx("planning garbage collection")?;
            let rows = st
                .query_map([horizon], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .ctx("planning garbage collection")?;
            let mut v = Vec::new();
            for r in rows {
                let (row, name, size, live, garbage) = r.ctx("planning garbage collection")?;
                let Some(pack) = <[u8; 16]>::try_from(name.as_slice()).ok().map(PackId) else {
                    continue;
                };
                v.push(PackPlan {
                    row,
                    pack,
                    size: size as u64,
                    live: live as u64,
                    garbage: garbage as u64,
                });
            }
            v
        };
        let delete: Vec<&PackPlan> = plans.iter().filter(|p| p.live == 0).collect();
        let repack: Vec<&PackPlan> = plans
            .iter()
            .filter(|p| {
                p.live > 0 && p.garbage as f64 > REPACK_THRESHOLD * (p.live + p.garbage) as f64
            })
            .collect();
        tracing::info!(
            contents_removed = report.contents_removed,
            packs_to_delete = delete.len(),
            packs_to_repack = repack.len(),
            "garbage collection planned"
        );
        for p in delete {
            if stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                return Ok(report);
            }
            let blobs = conn
                .execute("DELETE FROM blobs WHERE pack = ?1", [p.row])
                .ctx("dropping garbage blobs")?;
            conn.execute("DELETE FROM packs WHERE id = ?1", [p.row])
                .ctx("dropping a pack")?;
            remove_pack_file(self, &p.pack)?;
            report.blobs_removed += blobs as u64;
            report.packs_deleted += 1;
            report.bytes_freed += p.size;
            pace.pause();
        }
        for p in repack {
            if stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                return Ok(report);
            }
            let (freed, removed) = self.repack(conn, p, horizon, pace)?;
            report.blobs_removed += removed;
            report.bytes_freed += freed;
            report.packs_repacked += 1;
            pace.pause();
        }
        Ok(report)
    }

    /// Rewrites the live blobs of one pack into a new pack; returns (bytes freed, blobs removed).
    fn repack(
        &self,
        conn: &Connection,
        p: &PackPlan,
        horizon: i64,
        pace: &mut Tranquilizer<'_>,
    ) -> Result<(u64, u64)> {
        let path = pack_path(self.root(), &p.pack);
        let mut f = File::open(&path).at(&path)?;
        let live: Vec<(i64, Vec<u8>, i64, i64, i64, i64)> = {
            let mut st = conn
                .prepare(
                    "SELECT b.id, b.hash, b.offset, b.length, b.raw_length, b.flags FROM blobs b
                     WHERE b.pack = ?1 AND EXISTS (SELECT 1 FROM content_chunks cc WHERE cc.blob = b.id)
                     ORDER BY b.offset",
                )
                .ctx("listing live blobs")?;
            let rows = st
                .query_map([p.row], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .ctx("listing live blobs")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("listing live blobs")?
        };
        let mut w = PackWriter::create(self.root())?;
        let mut moved = Vec::with_capacity(live.len());
        for (row, hash, offset, len, raw_len, flags) in &live {
            let id = BlobId::from_slice(hash)
                .ok_or_else(|| StoreError::Invalid("bad blob id".into()))?;
            let stored = read_stored(&mut f, *offset as u64, *len as u32).at(&path)?;
            // Never copy damage into a new pack silently.
            self.inner
                .codec
                .open(&id, *flags as u8, *raw_len as usize, &stored)
                .map_err(|reason| StoreError::DamagedBlob {
                    blob: id.to_hex(),
                    pack: p.pack.to_hex(),
                    reason,
                })?;
            let new_offset = w.add(&id, *flags as u8, *raw_len as u32, &stored)?;
            moved.push((*row, new_offset));
            // Read once, written once.
            pace.add_bytes(2 * stored.len() as u64);
            if pace.pending_bytes() >= PACE_UNIT_BYTES {
                pace.pause();
            }
        }
        let new_id = w.id();
        let (_, new_size, entries) = w.finish()?;
        let tx = conn.unchecked_transaction().ctx("repacking")?;
        let new_row: i64 = tx
            .query_row(
                "INSERT INTO packs(name, size, blob_count, created_run) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![&new_id.0[..], new_size as i64, entries.len() as i64, horizon],
                |r| r.get(0),
            )
            .ctx("recording the new pack")?;
        for (row, off) in &moved {
            tx.execute(
                "UPDATE blobs SET pack = ?2, offset = ?3 WHERE id = ?1",
                params![row, new_row, *off as i64],
            )
            .ctx("moving a blob")?;
        }
        let removed = tx
            .execute("DELETE FROM blobs WHERE pack = ?1", [p.row])
            .ctx("dropping garbage blobs")? as u64;
        tx.execute("DELETE FROM packs WHERE id = ?1", [p.row])
            .ctx("dropping a pack")?;
        tx.commit().ctx("repacking")?;
        remove_pack_file(self, &p.pack)?;
        Ok((p.size.saturating_sub(new_size), removed))
    }
}

fn remove_pack_file(repo: &Repository, pack: &PackId) -> Result<()> {
    let path = pack_path(repo.root(), pack);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&path, e)),
    }
}
