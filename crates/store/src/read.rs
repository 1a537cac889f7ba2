//! Point-in-time reads: what a container held at run R, any version of any node, and content
//! streams. Only committed runs are visible.

use std::fs::File;
use std::io::{self, Read};

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use crate::error::{DbContext, Result, StoreError};
use crate::id::{BlobId, ContentHash, ContentId, NodeId, ObjectId, PackId, RunId, VersionId};
use crate::model::{
    ContentRef, CurrentVersion, ObjectInfo, ObjectRecord, RunInfo, RunStatus, SearchHit,
    VersionRecord, from_unix, to_unix,
};
use crate::repo::Repository;

pub(crate) const VERSION_COLS: &str =
    "v.id, v.node, n.object, n.graph_id, n.kind, v.parent, v.name, v.content,
    v.size, v.modified, v.version_tag, v.metadata, v.first_run, v.last_run,
    coalesce(c.hash, (SELECT b.hash FROM content_chunks cc JOIN blobs b ON b.id = cc.blob
                      WHERE cc.content = c.id AND cc.seq = 0))";
const VERSION_FROM: &str =
    "node_versions v JOIN nodes n ON n.id = v.node LEFT JOIN contents c ON c.id = v.content";
const VISIBLE_AT: &str = "v.first_run <= ?1 AND (v.last_run IS NULL OR v.last_run >= ?1)";

pub(crate) fn version_row(r: &Row<'_>) -> rusqlite::Result<VersionRecord> {
    let kind: String = r.get(4)?;
    let content: Option<i64> = r.get(7)?;
    let size: i64 = r.get(8)?;
    let hash: Option<Vec<u8>> = r.get(14)?;
    let meta: Option<String> = r.get(11)?;
    Ok(VersionRecord {
        id: VersionId(r.get(0)?),
        node: NodeId(r.get(1)?),
        object: ObjectId(r.get(2)?),
        graph_id: r.get(3)?,
        kind: kind.parse().map_err(|e: StoreError| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        parent: r.get::<_, Option<i64>>(5)?.map(NodeId),
        name: r.get(6)?,
        content: content.map(|id| ContentRef {
            id: ContentId(id),
            size: size as u64,
            hash: ContentHash(
                hash.as_deref()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .unwrap_or([0; 32]),
            ),
        }),
        size: size as u64,
        modified: r.get::<_, Option<i64>>(9)?.map(from_unix),
        version_tag: r.get(10)?,
        metadata: meta
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or(serde_json::Value::Null),
        first_run: RunId(r.get(12)?),
        last_run: r.get::<_, Option<i64>>(13)?.map(RunId),
    })
}

fn query_versions(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<VersionRecord>> {
    let sql = format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE {filter}");
    let mut st = conn.prepare_cached(&sql).ctx("reading versions")?;
    let rows = st.query_map(p, version_row).ctx("reading versions")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .ctx("reading versions")
}

/// The path of `node` as of run `at` (no check that `at` is committed).
pub(crate) fn path_at(c: &Connection, node: NodeId, at: RunId) -> Result<Option<String>> {
    let mut parts = Vec::new();
    let mut cur = Some(node);
    while let Some(n) = cur {
        if parts.len() > 256 {
            return Err(StoreError::Invalid("the node tree has a cycle".into()));
        }
        let Some(v) = query_versions(
            c,
            &format!("{VISIBLE_AT} AND v.node = ?2"),
            params![at.0, n.0],
        )?
        .into_iter()
        .next() else {
            return Ok(None);
        };
        parts.push(v.name);
        cur = v.parent;
    }
    parts.reverse();
    Ok(Some(parts.join("/")))
}

pub(crate) fn open_version(conn: &Connection, node: NodeId) -> Result<Option<VersionRecord>> {
    Ok(
        query_versions(conn, "v.node = ?1 AND v.last_run IS NULL", [node.0])?
            .into_iter()
            .next(),
    )
}

/// The children of `parent` by their open versions: what the repository holds now, including
/// what an unfinished run wrote (on the writer's own connection, also what it has not
/// checkpointed yet).
pub(crate) fn open_children(conn: &Connection, parent: NodeId) -> Result<Vec<VersionRecord>> {
    query_versions(
        conn,
        "v.parent = ?1 AND v.last_run IS NULL ORDER BY v.name, v.id",
        [parent.0],
    )
}

/// The root nodes of `object` by their open versions (see [`open_children`]).
pub(crate) fn open_roots(conn: &Connection, object: ObjectId) -> Result<Vec<VersionRecord>> {
    query_versions(
        conn,
        "n.object = ?1 AND v.parent IS NULL AND v.last_run IS NULL ORDER BY v.name, v.id",
        [object.0],
    )
}

pub(crate) fn current_version(
    conn: &Connection,
    object: ObjectId,
    graph_id: &str,
) -> Result<Option<CurrentVersion>> {
    conn.prepare_cached(
        "SELECT v.node, v.id, v.version_tag, v.size, v.content FROM nodes n
         JOIN node_versions v ON v.node = n.id AND v.last_run IS NULL
         WHERE n.object = ?1 AND n.key = ?3 AND n.graph_id = ?2",
    )
    .and_then(|mut s| {
        s.query_row(
            params![object.0, graph_id, crate::schema::node_key(graph_id)],
            |r| {
                Ok(CurrentVersion {
                    node: NodeId(r.get(0)?),
                    version: VersionId(r.get(1)?),
                    version_tag: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    content: r.get::<_, Option<i64>>(4)?.map(ContentId),
                })
            },
        )
        .optional()
    })
    .ctx("reading the current version")
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunInfo> {
    let status: String = r.get(3)?;
    let counters: Option<String> = r.get(4)?;
    Ok(RunInfo {
        id: RunId(r.get(0)?),
        started: from_unix(r.get(1)?),
        finished: r.get::<_, Option<i64>>(2)?.map(from_unix),
        status: status.parse().unwrap_or(RunStatus::Failed),
        counters: counters
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(serde_json::Value::Null),
        snapshot: r.get(5)?,
    })
}

impl Repository {
    fn check_run(conn: &Connection, run: RunId) -> Result<()> {
        let status: Option<String> = conn
            .query_row("SELECT status FROM runs WHERE id = ?1", [run.0], |r| {
                r.get(0)
            })
            .optional()
            .ctx("reading a run")?;
        match status.as_deref() {
            Some("committed") => Ok(()),
            _ => Err(StoreError::UnknownRun(run.0)),
        }
    }

    /// All runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        self.with_conn(|c| {
            let mut st = c
                .prepare("SELECT id, started, finished, status, counters, snapshot FROM runs ORDER BY id")
                .ctx("listing runs")?;
            let rows = st.query_map([], run_row).ctx("listing runs")?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx("listing runs")
        })
    }

    /// The newest committed run.
    pub fn latest_run(&self) -> Result<Option<RunId>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT max(id) FROM runs WHERE status = 'committed'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .ctx("reading the latest run")
            .map(|o| o.map(RunId))
        })
    }

    /// The newest committed run finished at or before `t` ("the backup as of `t`").
    pub fn run_at(&self, t: OffsetDateTime) -> Result<Option<RunId>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT max(id) FROM runs WHERE status = 'committed' AND finished <= ?1",
                [to_unix(t)],
                |r| r.get::<_, Option<i64>>(0),
            )
            .ctx("mapping a time to a run")
            .map(|o| o.map(RunId))
        })
    }

    /// The protected objects known to the repository.
    pub fn objects(&self) -> Result<Vec<ObjectRecord>> {
        self.with_conn(|c| {
            let mut st = c
                .prepare("SELECT id, kind, graph_id, name, address, extra FROM objects ORDER BY id")
                .ctx("listing objects")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })
                .ctx("listing objects")?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, graph_id, name, address, extra) = row.ctx("listing objects")?;
                out.push(ObjectRecord {
                    id: ObjectId(id),
                    info: ObjectInfo {
                        kind: kind.parse()?,
                        graph_id,
                        name,
                        address,
                        extra: extra
                            .and_then(|e| serde_json::from_str(&e).ok())
                            .unwrap_or(serde_json::Value::Null),
                    },
                });
            }
            Ok(out)
        })
    }

    /// The root nodes (workload roots) of `object` as they were at run `at`.
    pub fn roots(&self, object: ObjectId, at: RunId) -> Result<Vec<VersionRecord>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            query_versions(
                c,
                &format!(
                    "{VISIBLE_AT} AND n.object = ?2 AND v.parent IS NULL ORDER BY v.name, v.id"
                ),
                params![at.0, object.0],
            )
        })
    }

    /// The children of `parent` as they were at run `at`.
    pub fn list_children(&self, parent: NodeId, at: RunId) -> Result<Vec<VersionRecord>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            query_versions(
                c,
                &format!("{VISIBLE_AT} AND v.parent = ?2 ORDER BY v.name, v.id"),
                params![at.0, parent.0],
            )
        })
    }

    /// The child of `parent` named `name` at run `at` (the first by id if several share it).
    pub fn lookup_child_by_name(
        &self,
        parent: NodeId,
        name: &str,
        at: RunId,
    ) -> Result<Option<VersionRecord>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            Ok(query_versions(
                c,
                &format!("{VISIBLE_AT} AND v.parent = ?2 AND v.name = ?3 ORDER BY v.id LIMIT 1"),
                params![at.0, parent.0, name],
            )?
            .into_iter()
            .next())
        })
    }

    /// The version of `node` visible at run `at`, if it existed then.
    pub fn get_version(&self, node: NodeId, at: RunId) -> Result<Option<VersionRecord>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            Ok(query_versions(
                c,
                &format!("{VISIBLE_AT} AND v.node = ?2"),
                params![at.0, node.0],
            )?
            .into_iter()
            .next())
        })
    }

    /// Every committed version of `node`, oldest first.
    pub fn history(&self, node: NodeId) -> Result<Vec<VersionRecord>> {
        self.with_conn(|c| {
            query_versions(
                c,
                "v.node = ?1 AND EXISTS (SELECT 1 FROM runs r WHERE r.status = 'committed'
                     AND r.id >= v.first_run AND (v.last_run IS NULL OR r.id <= v.last_run))
                 ORDER BY v.first_run",
                [node.0],
            )
        })
    }

    /// The node `(object, graph_id)`, if the repository knows it.
    pub fn find_node(&self, object: ObjectId, graph_id: &str) -> Result<Option<NodeId>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT id FROM nodes WHERE object = ?1 AND key = ?3 AND graph_id = ?2",
                params![object.0, graph_id, crate::schema::node_key(graph_id)],
                |r| r.get(0),
            )
            .optional()
            .ctx("finding a node")
            .map(|o| o.map(NodeId))
        })
    }

    /// The newest version of `(object, graph_id)`, including what an unfinished (killed) run
    /// already wrote: what the engine compares with the source before downloading.
    pub fn current_version(
        &self,
        object: ObjectId,
        graph_id: &str,
    ) -> Result<Option<CurrentVersion>> {
        self.with_conn(|c| current_version(c, object, graph_id))
    }

    /// The last committed delta token of `(object, scope)`.
    pub fn delta_token(&self, object: ObjectId, scope: &str) -> Result<Option<String>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT d.token FROM delta_tokens d JOIN runs r ON r.id = d.run
                 WHERE d.object = ?1 AND d.scope = ?2 AND r.status = 'committed'
                 ORDER BY d.run DESC LIMIT 1",
                params![object.0, scope],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading a delta token")
        })
    }

    /// The path of `node` at run `at`: names from its root down, joined by `/`.
    pub fn path_of(&self, node: NodeId, at: RunId) -> Result<Option<String>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            path_at(c, node, at)
        })
    }

    /// Full-text search (FTS5 query syntax) among versions visible at run `at`, optionally
    /// within one object.
    pub fn search(
        &self,
        query: &str,
        at: RunId,
        object: Option<ObjectId>,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        self.with_conn(|c| {
            Self::check_run(c, at)?;
            let sql = format!(
                "SELECT {VERSION_COLS}, (SELECT t.packed FROM search_text t WHERE t.id = v.id) FROM search
                 JOIN node_versions v ON v.id = search.rowid JOIN nodes n ON n.id = v.node
                 LEFT JOIN contents c ON c.id = v.content
                 WHERE search MATCH ?2 AND {VISIBLE_AT} AND (?3 IS NULL OR n.object = ?3)
                 ORDER BY rank LIMIT ?4"
            );
            let mut st = c.prepare(&sql).ctx("searching")?;
            let rows = st
                .query_map(
                    params![at.0, query, object.map(|o| o.0), limit as i64],
                    |r| {
                        Ok(SearchHit {
                            version: version_row(r)?,
                            snippet: r
                                .get::<_, Option<Vec<u8>>>(15)?
                                .map(|p| crate::search_text::snippet(query, &p))
                                .unwrap_or_default(),
                        })
                    },
                )
                .map_err(|e| StoreError::Invalid(format!("search query: {e}")))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| StoreError::Invalid(format!("search query: {e}")))
        })
    }

    /// Streams a stored content. Every blob is checked against its id as it is read.
    pub fn read_content(&self, content: ContentId) -> Result<ContentReader> {
        let blobs = self.with_conn(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT b.hash, p.name, b.offset, b.length, b.raw_length, b.flags
                     FROM content_chunks cc LEFT JOIN blobs b ON b.id = cc.blob
                     LEFT JOIN packs p ON p.id = b.pack WHERE cc.content = ?1 ORDER BY cc.seq",
                )
                .ctx("reading a content")?;
            let rows = st
                .query_map([content.0], |r| {
                    Ok((
                        r.get::<_, Option<Vec<u8>>>(0)?,
                        r.get::<_, Option<Vec<u8>>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })
                .ctx("reading a content")?;
            let mut out = Vec::new();
            for row in rows {
                let (h, p, o, l, rl, f) = row.ctx("reading a content")?;
                let (Some(h), Some(p), Some(o), Some(l), Some(rl), Some(f)) = (h, p, o, l, rl, f)
                else {
                    return Err(StoreError::MissingBlob(format!("in content {content}")));
                };
                out.push(BlobLoc {
                    id: BlobId::from_slice(&h)
                        .ok_or_else(|| StoreError::Invalid("bad blob id".into()))?,
                    pack: PackId(
                        <[u8; 16]>::try_from(p.as_slice())
                            .map_err(|_| StoreError::Invalid("bad pack id".into()))?,
                    ),
                    offset: o as u64,
                    len: l as u32,
                    raw_len: rl as usize,
                    flags: f as u8,
                });
            }
            let exists: bool = c
                .query_row(
                    "SELECT count(*) FROM contents WHERE id = ?1",
                    [content.0],
                    |r| r.get::<_, i64>(0),
                )
                .ctx("reading a content")?
                > 0;
            if !exists {
                return Err(StoreError::NotFound {
                    kind: "content",
                    id: content.to_string(),
                });
            }
            Ok(out)
        })?;
        Ok(ContentReader {
            repo: self.clone(),
            blobs: blobs.into_iter(),
            buf: Vec::new(),
            pos: 0,
            file: None,
        })
    }
}

pub(crate) struct BlobLoc {
    pub id: BlobId,
    pub pack: PackId,
    pub offset: u64,
    pub len: u32,
    pub raw_len: usize,
    pub flags: u8,
}

/// A stored content as a stream (`impl Read`); holds one blob in memory at a time.
pub struct ContentReader {
    repo: Repository,
    blobs: std::vec::IntoIter<BlobLoc>,
    buf: Vec<u8>,
    pos: usize,
    file: Option<(PackId, File)>,
}

impl std::fmt::Debug for ContentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentReader").finish_non_exhaustive()
    }
}

impl ContentReader {
    fn load(&mut self, b: &BlobLoc) -> Result<()> {
        let path = crate::pack::pack_path(self.repo.root(), &b.pack);
        if self.file.as_ref().is_none_or(|(p, _)| *p != b.pack) {
            let f = File::open(&path).map_err(|e| StoreError::DamagedPack {
                pack: b.pack.to_hex(),
                reason: format!("cannot open: {e}"),
            })?;
            self.file = Some((b.pack, f));
        }
        let Some((_, f)) = self.file.as_mut() else {
            return Err(StoreError::Invalid("no pack open".into()));
        };
        let stored =
            crate::pack::read_stored(f, b.offset, b.len).map_err(|e| StoreError::DamagedPack {
                pack: b.pack.to_hex(),
                reason: format!("cannot read blob at {}: {e}", b.offset),
            })?;
        self.buf = self
            .repo
            .inner
            .codec
            .open(&b.id, b.flags, b.raw_len, &stored)
            .map_err(|reason| StoreError::DamagedBlob {
                blob: b.id.to_hex(),
                pack: b.pack.to_hex(),
                reason,
            })?;
        self.pos = 0;
        Ok(())
    }
}

impl Read for ContentReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            let Some(b) = self.blobs.next() else {
                return Ok(0);
            };
            self.load(&b).map_err(io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
