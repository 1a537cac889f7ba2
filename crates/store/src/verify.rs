//! Verify: quick (every referenced blob is indexed, every pack file is there with its size) and
//! full (every blob re-read, authenticated, decompressed and re-hashed), naming what is damaged
//! and which node versions it affects.

use std::collections::BTreeMap;
use std::fs::File;

use rusqlite::params;

use crate::error::{DbContext, Result};
use crate::id::{BlobId, NodeId, ObjectId, PackId, RunId, VersionId};
use crate::pack::{pack_path, read_stored, read_trailer};
use crate::repo::Repository;

/// How thorough a verify is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// Index and pack files present with the right sizes.
    Quick,
    /// Every blob re-read and re-hashed.
    Full,
}

/// A damaged or missing blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedBlob {
    /// The blob (`None` if even its index entry is missing).
    pub blob: Option<BlobId>,
    /// Its pack, if known.
    pub pack: Option<PackId>,
    /// What is wrong.
    pub reason: String,
}

/// A damaged or missing pack file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedPack {
    /// The pack.
    pub pack: PackId,
    /// What is wrong.
    pub reason: String,
}

/// A node version whose content is affected by damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffectedVersion {
    /// The version.
    pub version: VersionId,
    /// Its node.
    pub node: NodeId,
    /// The node's object.
    pub object: ObjectId,
    /// The node's Graph id.
    pub graph_id: String,
    /// The version's name.
    pub name: String,
    /// Its path (names from the root), when it can be resolved.
    pub path: Option<String>,
    /// First run of the version.
    pub first_run: RunId,
    /// Last run of the version (`None`: current).
    pub last_run: Option<RunId>,
}

/// What a verify found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Quick or full.
    pub mode: VerifyMode,
    /// Packs looked at.
    pub packs_checked: u64,
    /// Blobs looked at.
    pub blobs_checked: u64,
    /// Bytes read (full verify).
    pub bytes_read: u64,
    /// Damaged packs.
    pub damaged_packs: Vec<DamagedPack>,
    /// Damaged blobs.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Versions whose content is affected.
    pub affected: Vec<AffectedVersion>,
}

impl VerifyReport {
    /// Whether nothing is damaged.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.damaged_packs.is_empty() && self.damaged_blobs.is_empty()
    }
}

struct BlobRow {
    row: i64,
    id: Option<BlobId>,
    offset: u64,
    len: u32,
    raw_len: usize,
    flags: u8,
}

impl Repository {
    /// Verifies the repository.
    pub fn verify(&self, mode: VerifyMode) -> Result<VerifyReport> {
        let conn = self.open_connection()?;
        let mut report = VerifyReport {
            mode,
            packs_checked: 0,
            blobs_checked: 0,
            bytes_read: 0,
            damaged_packs: Vec::new(),
            damaged_blobs: Vec::new(),
            affected: Vec::new(),
        };
        let mut bad_rows: Vec<i64> = Vec::new();
        // Chunks whose blob has no index entry.
        {
            let mut st = conn
                .prepare("SELECT DISTINCT cc.blob FROM content_chunks cc LEFT JOIN blobs b ON b.id = cc.blob WHERE b.id IS NULL")
                .ctx("verifying the index")?;
            let rows = st
                .query_map([], |r| r.get::<_, i64>(0))
                .ctx("verifying the index")?;
            for r in rows {
                let row = r.ctx("verifying the index")?;
                bad_rows.push(row);
                report.damaged_blobs.push(DamagedBlob {
                    blob: None,
                    pack: None,
                    reason: format!("index entry {row} missing"),
                });
            }
        }
        let packs: Vec<(i64, Vec<u8>, i64)> = {
            let mut st = conn
                .prepare("SELECT id, name, size FROM packs ORDER BY id")
                .ctx("listing packs")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .ctx("listing packs")?;
            rows.collect::<rusqlite::Result<_>>().ctx("listing packs")?
        };
        let mut blob_st = conn
            .prepare("SELECT id, hash, offset, length, raw_length, flags FROM blobs WHERE pack = ?1 ORDER BY offset")
            .ctx("listing blobs")?;
        for (prow, name, size) in packs {
            let Some(pack) = <[u8; 16]>::try_from(name.as_slice()).ok().map(PackId) else {
                continue;
            };
            report.packs_checked += 1;
            let blobs: Vec<BlobRow> = blob_st
                .query_map([prow], |r| {
                    Ok(BlobRow {
                        row: r.get(0)?,
                        id: BlobId::from_slice(&r.get::<_, Vec<u8>>(1)?),
                        offset: r.get::<_, i64>(2)? as u64,
                        len: r.get::<_, i64>(3)? as u32,
                        raw_len: r.get::<_, i64>(4)? as usize,
                        flags: r.get::<_, i64>(5)? as u8,
                    })
                })
                .ctx("listing blobs")?
                .collect::<rusqlite::Result<_>>()
                .ctx("listing blobs")?;
            report.blobs_checked += blobs.len() as u64;
            let path = pack_path(self.root(), &pack);
            let whole_pack_bad = |report: &mut VerifyReport, bad: &mut Vec<i64>, reason: String| {
                report.damaged_packs.push(DamagedPack {
                    pack,
                    reason: reason.clone(),
                });
                for b in &blobs {
                    bad.push(b.row);
                    report.damaged_blobs.push(DamagedBlob {
                        blob: b.id,
                        pack: Some(pack),
                        reason: reason.clone(),
                    });
                }
            };
            let actual = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) => {
                    whole_pack_bad(
                        &mut report,
                        &mut bad_rows,
                        format!("pack file missing: {e}"),
                    );
                    continue;
                }
            };
            if actual != size as u64 {
                whole_pack_bad(
                    &mut report,
                    &mut bad_rows,
                    format!("pack file has {actual} bytes, the index says {size}"),
                );
                if mode == VerifyMode::Quick {
                    continue;
                }
            }
            if mode == VerifyMode::Quick {
                continue;
            }
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    whole_pack_bad(&mut report, &mut bad_rows, format!("cannot open pack: {e}"));
                    continue;
                }
            };
            if actual == size as u64
                && let Err(reason) = read_trailer(actual, &mut f)
            {
                let (found, stop) = crate::pack::scan_records(&mut f, actual);
                let scan = stop.map_or_else(
                    || format!("{} blob headers intact", found.len()),
                    |s| format!("{} blob headers intact, then {s}", found.len()),
                );
                report.damaged_packs.push(DamagedPack {
                    pack,
                    reason: format!("trailer: {reason}; {scan}"),
                });
            }
            for b in &blobs {
                let Some(id) = b.id else {
                    bad_rows.push(b.row);
                    report.damaged_blobs.push(DamagedBlob {
                        blob: None,
                        pack: Some(pack),
                        reason: "malformed blob id in the index".into(),
                    });
                    continue;
                };
                let res = read_stored(&mut f, b.offset, b.len)
                    .map_err(|e| format!("unreadable at {}: {e}", b.offset))
                    .and_then(|stored| {
                        report.bytes_read += stored.len() as u64;
                        self.inner
                            .codec
                            .open(&id, b.flags, b.raw_len, &stored)
                            .map(|_| ())
                    });
                if let Err(reason) = res {
                    bad_rows.push(b.row);
                    if !report.damaged_blobs.iter().any(|d| d.blob == Some(id)) {
                        report.damaged_blobs.push(DamagedBlob {
                            blob: Some(id),
                            pack: Some(pack),
                            reason,
                        });
                    }
                }
            }
        }
        drop(blob_st);
        report.affected = affected_versions(&conn, &bad_rows)?;
        Ok(report)
    }
}

fn affected_versions(
    conn: &rusqlite::Connection,
    bad_rows: &[i64],
) -> Result<Vec<AffectedVersion>> {
    let mut out = BTreeMap::new();
    let latest: Option<i64> = conn
        .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .ctx("reading runs")?;
    let mut st = conn
        .prepare(
            "SELECT v.id, v.node, n.object, n.graph_id, v.name, v.first_run, v.last_run
             FROM content_chunks cc JOIN node_versions v ON v.content = cc.content
             JOIN nodes n ON n.id = v.node WHERE cc.blob = ?1",
        )
        .ctx("finding affected versions")?;
    for &row in bad_rows {
        let rows = st
            .query_map(params![row], |r| {
                Ok(AffectedVersion {
                    version: VersionId(r.get(0)?),
                    node: NodeId(r.get(1)?),
                    object: ObjectId(r.get(2)?),
                    graph_id: r.get(3)?,
                    name: r.get(4)?,
                    path: None,
                    first_run: RunId(r.get(5)?),
                    last_run: r.get::<_, Option<i64>>(6)?.map(RunId),
                })
            })
            .ctx("finding affected versions")?;
        for a in rows {
            let a = a.ctx("finding affected versions")?;
            out.insert(a.version, a);
        }
    }
    let mut v: Vec<AffectedVersion> = out.into_values().collect();
    for a in &mut v {
        let at = a.last_run.map_or(latest.unwrap_or(a.first_run.0), |r| r.0);
        a.path = crate::read::path_at(conn, a.node, RunId(at)).ok().flatten();
    }
    Ok(v)
}
