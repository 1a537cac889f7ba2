//! A run writer: records objects, nodes, versions, delta tokens and content for one run, with
//! checkpoints that make its work survive a kill, and a commit that makes it visible.
//!
//! The writer keeps one SQLite write transaction open between checkpoints. A checkpoint first
//! finishes the open pack (fsync, rename, fsync of the folder), then commits the transaction: the
//! catalog never names a pack that is not durable. A kill loses only what came after the last
//! checkpoint; the next [`Repository::begin_run`] resumes the same run.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use crate::error::{DbContext, Result, StoreError};
use crate::id::{BlobId, NodeId, ObjectId, RunId, VersionId};
use crate::model::{
    CurrentVersion, NewVersion, NodeKind, ObjectInfo, StoredContent, VersionOutcome, VersionRecord,
    to_unix,
};
use crate::pack::PackWriter;
use crate::repo::Repository;
use crate::snapshot::SnapshotState;

mod ingest;

/// Target size of a pack file.
const PACK_TARGET: u64 = 12 * 1024 * 1024;

/// When a writer checkpoints.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    /// At most this long between checkpoints.
    pub interval: Duration,
    /// At most this many recorded items between checkpoints.
    pub items: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            items: 5000,
        }
    }
}

/// Counters of what a writer stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Plain bytes given to `put_content`.
    pub bytes_in: u64,
    /// Bytes appended to packs.
    pub bytes_stored: u64,
    /// Blobs written.
    pub blobs_new: u64,
    /// Blobs found already stored.
    pub blobs_dedup: u64,
    /// Versions created or replaced.
    pub versions_written: u64,
    /// Checkpoints taken.
    pub checkpoints: u64,
}

/// What [`RunWriter::commit`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitReport {
    /// The committed run.
    pub run: RunId,
    /// What happened with its btrfs snapshot.
    pub snapshot: SnapshotState,
    /// What the writer stored.
    pub stats: WriteStats,
}

/// Writes one run. Dropping it without [`RunWriter::commit`] or [`RunWriter::fail`] keeps what
/// was checkpointed; the next [`Repository::begin_run`] resumes the run.
pub struct RunWriter {
    repo: Repository,
    conn: Connection,
    _lock: File,
    run: RunId,
    resumed: bool,
    pack: Option<(PackWriter, i64)>,
    policy: CheckpointPolicy,
    last_checkpoint: Instant,
    items: usize,
    stats: WriteStats,
    broken: bool,
    chunk_buf: Vec<u8>,
    sealer: ingest::Sealer,
    /// Content chunks whose blob is still being sealed: (content, seq, blob).
    deferred: Vec<(i64, i64, BlobId)>,
    /// Small blobs collected to train the repository's compression dictionary (while it has
    /// none).
    sampler: Option<crate::dict::Sampler>,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter")
            .field("run", &self.run)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Starts a run, or resumes the unfinished run a killed process left (same run id, its
    /// checkpointed work kept). Fails with [`StoreError::Locked`] while another writer is active.
    pub fn begin_run(&self) -> Result<RunWriter> {
        self.begin_run_with(CheckpointPolicy::default())
    }

    /// [`Repository::begin_run`] with a checkpoint policy.
    pub fn begin_run_with(&self, policy: CheckpointPolicy) -> Result<RunWriter> {
        self.begin_run_inner(policy).map_err(|e| self.refine(e))
    }

    fn begin_run_inner(&self, policy: CheckpointPolicy) -> Result<RunWriter> {
        let lock = self.lock_writer()?;
        let conn = self.open_connection()?;
        self.sweep_orphans(&conn)?;
        let open: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE status = 'running' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx("looking for an unfinished run")?;
        let (run, resumed) = match open {
            Some(id) => (id, true),
            None => {
                let next: i64 = conn
                    .query_row("SELECT coalesce(max(id), 0) + 1 FROM runs", [], |r| {
                        r.get(0)
                    })
                    .ctx("numbering the run")?;
                conn.execute(
                    "INSERT INTO runs(id, started, status) VALUES (?1, ?2, 'running')",
                    params![next, to_unix(OffsetDateTime::now_utc())],
                )
                .ctx("recording the run")?;
                (next, false)
            }
        };
        if resumed {
            tracing::info!(run, "resuming an unfinished run");
        }
        conn.execute_batch("BEGIN IMMEDIATE")
            .ctx("starting the run transaction")?;
        Ok(RunWriter {
            repo: self.clone(),
            conn,
            _lock: lock,
            run: RunId(run),
            resumed,
            pack: None,
            policy,
            last_checkpoint: Instant::now(),
            items: 0,
            stats: WriteStats::default(),
            broken: false,
            chunk_buf: Vec::new(),
            sealer: ingest::Sealer::new(self.inner.codec.clone()),
            deferred: Vec::new(),
            sampler: (!self.has_dictionary()).then(crate::dict::Sampler::new),
        })
    }
}

impl RunWriter {
    /// The run being written.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// Whether this writer resumed a killed run.
    #[must_use]
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// What the writer stored so far (blobs still being sealed count once they are written;
    /// after a checkpoint or a content of several chunks the figures are exact).
    #[must_use]
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    fn guard(&self) -> Result<()> {
        if self.broken {
            return Err(StoreError::Invalid(
                "the run writer stopped after an error; fail or drop it".into(),
            ));
        }
        Ok(())
    }

    /// Marks the writer broken on error: its open transaction and pack are abandoned.
    fn track<T>(&mut self, r: Result<T>) -> Result<T> {
        let r = r.map_err(|e| self.repo.refine(e));
        if r.as_ref().is_err_and(StoreError::breaks_writer) {
            self.broken = true;
            self.pack = None;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        r
    }

    /// Records a protected object (created or its name/address updated).
    pub fn upsert_object(&mut self, info: &ObjectInfo) -> Result<ObjectId> {
        self.guard()?;
        let r = self.conn
            .query_row(
                "INSERT INTO objects(kind, graph_id, name, address, extra) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(kind, graph_id) DO UPDATE SET name = excluded.name,
                     address = excluded.address, extra = excluded.extra
                 RETURNING id",
                params![
                    info.kind.as_str(),
                    info.graph_id,
                    info.name,
                    info.address,
                    info.extra.to_string()
                ],
                |r| r.get(0),
            )
            .ctx("recording an object")
            .map(ObjectId);
        self.track(r)
    }

    /// The node `(object, graph_id)`, created if new.
    pub fn node(&mut self, object: ObjectId, graph_id: &str, kind: NodeKind) -> Result<NodeId> {
        self.guard()?;
        let r = self.node_inner(object, graph_id, kind);
        self.track(r)
    }

    fn node_inner(&self, object: ObjectId, graph_id: &str, kind: NodeKind) -> Result<NodeId> {
        let key = crate::schema::node_key(graph_id);
        let found: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, kind FROM nodes WHERE object = ?1 AND key = ?2 AND graph_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![object.0, key, graph_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .ctx("looking up a node")?;
        match found {
            Some((id, k)) => {
                if k != kind.as_str() {
                    self.conn
                        .prepare_cached("UPDATE nodes SET kind = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![id, kind.as_str()]))
                        .ctx("recording a node")?;
                }
                Ok(NodeId(id))
            }
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO nodes(object, graph_id, kind, key) VALUES (?1, ?2, ?3, ?4)
                     RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_row(params![object.0, graph_id, kind.as_str(), key], |r| {
                        r.get(0)
                    })
                })
                .ctx("recording a node")
                .map(NodeId),
        }
    }

    /// The newest version of `(object, graph_id)`, including what this run already wrote.
    pub fn current_version(
        &self,
        object: ObjectId,
        graph_id: &str,
    ) -> Result<Option<CurrentVersion>> {
        crate::read::current_version(&self.conn, object, graph_id)
    }

    /// The children of `parent` as this run sees them now: their open versions, including what
    /// this run (or the killed run it resumes) wrote and without what it deleted. What a full
    /// listing compares with to find the items deleted at the source.
    pub fn open_children(&self, parent: NodeId) -> Result<Vec<VersionRecord>> {
        crate::read::open_children(&self.conn, parent)
    }

    /// The root nodes of `object` as this run sees them now (see [`RunWriter::open_children`]).
    pub fn open_roots(&self, object: ObjectId) -> Result<Vec<VersionRecord>> {
        crate::read::open_roots(&self.conn, object)
    }

    /// Stores a content from a stream with bounded memory (chunked, deduplicated, compressed).
    pub fn put_content(&mut self, reader: impl Read) -> Result<StoredContent> {
        self.guard()?;
        let r = self.put_content_inner(reader);
        let r = self.track(r);
        if r.is_ok() {
            self.items += 1;
            let c = self.maybe_checkpoint();
            self.track(c)?;
        }
        r
    }

    /// Stores a content held in memory.
    pub fn put_bytes(&mut self, data: &[u8]) -> Result<StoredContent> {
        self.put_content(data)
    }

    /// Records a version of `node`: creates it, or closes the open version and creates a new one
    /// if anything differs, or does nothing when it is identical.
    pub fn put_version(&mut self, node: NodeId, v: &NewVersion) -> Result<VersionOutcome> {
        self.guard()?;
        let r = self.put_version_inner(node, v);
        let r = self.track(r);
        if r.is_ok() {
            self.items += 1;
            let c = self.maybe_checkpoint();
            self.track(c)?;
        }
        r
    }

    fn put_version_inner(&mut self, node: NodeId, v: &NewVersion) -> Result<VersionOutcome> {
        if v.name.contains('\0') {
            return Err(StoreError::Invalid(
                "a name contains a NUL character".into(),
            ));
        }
        let size = v.content.map_or(v.size, |c| c.size);
        let content = v.content.map(|c| c.id.0);
        let modified = v.modified.map(to_unix);
        let meta = (!v.metadata.is_null()).then(|| v.metadata.to_string());
        let open: Option<OpenRow> = self
            .conn
            .prepare_cached(
                "SELECT id, parent, name, content, size, modified, version_tag, metadata, first_run
                 FROM node_versions WHERE node = ?1 AND last_run IS NULL",
            )
            .and_then(|mut s| {
                s.query_row([node.0], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })
                .optional()
            })
            .ctx("reading the open version")?;
        let outcome = match open {
            Some((id, parent, name, c, sz, m, tag, md, first)) => {
                let same = parent == v.parent.map(|p| p.0)
                    && name == v.name
                    && c == content
                    && sz == size as i64
                    && m == modified
                    && tag == v.version_tag
                    && md == meta;
                if same {
                    return Ok(VersionOutcome::Unchanged(VersionId(id)));
                }
                if first == self.run.0 {
                    self.conn
                        .prepare_cached(
                            "UPDATE node_versions SET parent=?2, name=?3, content=?4, size=?5,
                             modified=?6, version_tag=?7, metadata=?8 WHERE id = ?1",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                id,
                                v.parent.map(|p| p.0),
                                v.name,
                                content,
                                size as i64,
                                modified,
                                v.version_tag,
                                meta
                            ])
                        })
                        .ctx("updating a version")?;
                    crate::search_text::unindex(&self.conn, id)?;
                    VersionOutcome::Updated(VersionId(id))
                } else {
                    self.close_version(id)?;
                    VersionOutcome::Replaced(VersionId(self.insert_version(
                        node,
                        v,
                        size,
                        content,
                        modified,
                        meta.as_deref(),
                    )?))
                }
            }
            None => VersionOutcome::Created(VersionId(self.insert_version(
                node,
                v,
                size,
                content,
                modified,
                meta.as_deref(),
            )?)),
        };
        let vid = match outcome {
            VersionOutcome::Created(i)
            | VersionOutcome::Replaced(i)
            | VersionOutcome::Updated(i)
            | VersionOutcome::Unchanged(i) => i,
        };
        if let Some(s) = &v.search {
            crate::search_text::index(&self.conn, vid.0, s)?;
        }
        self.stats.versions_written += 1;
        Ok(outcome)
    }

    fn insert_version(
        &self,
        node: NodeId,
        v: &NewVersion,
        size: u64,
        content: Option<i64>,
        modified: Option<i64>,
        meta: Option<&str>,
    ) -> Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO node_versions(node, parent, name, content, size, modified, version_tag,
                     metadata, first_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![node.0, v.parent.map(|p| p.0), v.name, content, size as i64, modified, v.version_tag, meta, self.run.0],
                    |r| r.get(0),
                )
            })
            .ctx("recording a version")
    }

    /// Closes a version that existed before this run: it was last seen by the run before.
    fn close_version(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE node_versions SET last_run = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, self.run.0 - 1]))
            .ctx("closing a version")?;
        Ok(())
    }

    /// Records that `node` was deleted at the source. Returns whether it had an open version.
    pub fn delete_node(&mut self, node: NodeId) -> Result<bool> {
        self.guard()?;
        let r = self.delete_node_inner(node);
        let r = self.track(r);
        if r.is_ok() {
            self.items += 1;
            let c = self.maybe_checkpoint();
            self.track(c)?;
        }
        r
    }

    fn delete_node_inner(&mut self, node: NodeId) -> Result<bool> {
        let open: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT id, first_run FROM node_versions WHERE node = ?1 AND last_run IS NULL",
                [node.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx("reading the open version")?;
        let Some((id, first)) = open else {
            return Ok(false);
        };
        if first == self.run.0 {
            // Written and deleted within this run: no committed run ever saw it (a trigger
            // takes it out of the search index).
            self.conn
                .execute("DELETE FROM node_versions WHERE id = ?1", [id])
                .ctx("deleting a version")?;
        } else {
            self.close_version(id)?;
        }
        Ok(true)
    }

    /// Records a move or rename: a new version with the new parent and name, same content.
    pub fn move_node(
        &mut self,
        node: NodeId,
        new_parent: Option<NodeId>,
        new_name: &str,
    ) -> Result<VersionOutcome> {
        self.guard()?;
        let cur =
            crate::read::open_version(&self.conn, node)?.ok_or_else(|| StoreError::NotFound {
                kind: "open version of node",
                id: node.to_string(),
            })?;
        let v = NewVersion {
            parent: new_parent,
            name: new_name.to_string(),
            content: cur.content,
            size: cur.size,
            modified: cur.modified,
            version_tag: cur.version_tag,
            metadata: cur.metadata,
            search: None,
        };
        self.put_version(node, &v)
    }

    /// Records the delta token of `(object, scope)`; readers see it once the run is committed.
    pub fn set_delta_token(&mut self, object: ObjectId, scope: &str, token: &str) -> Result<()> {
        self.guard()?;
        let r = self
            .conn
            .execute(
                "INSERT INTO delta_tokens(object, scope, run, token) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(object, scope, run) DO UPDATE SET token = excluded.token",
                params![object.0, scope, self.run.0, token],
            )
            .ctx("recording a delta token")
            .map(|_| ());
        self.track(r)
    }

    /// The delta token of `(object, scope)` as this run sees it: its own, else the last committed.
    pub fn delta_token(&self, object: ObjectId, scope: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT d.token FROM delta_tokens d JOIN runs r ON r.id = d.run
                 WHERE d.object = ?1 AND d.scope = ?2 AND (r.status = 'committed' OR r.id = ?3)
                 ORDER BY d.run DESC LIMIT 1",
                params![object.0, scope, self.run.0],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading a delta token")
    }

    fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.items >= self.policy.items || self.last_checkpoint.elapsed() >= self.policy.interval
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable (it survives a kill), not yet visible.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.guard()?;
        let r = self.checkpoint_inner();
        self.track(r)
    }

    fn checkpoint_inner(&mut self) -> Result<()> {
        self.drain()?;
        if let Some((p, row)) = self.pack.take() {
            let (_, size, entries) = p.finish()?;
            self.conn
                .execute(
                    "UPDATE packs SET size = ?2, blob_count = ?3 WHERE id = ?1",
                    params![row, size as i64, entries.len() as i64],
                )
                .ctx("recording a pack")?;
        }
        self.conn
            .execute_batch("COMMIT; BEGIN IMMEDIATE")
            .ctx("committing a checkpoint")?;
        self.last_checkpoint = Instant::now();
        self.items = 0;
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Commits the run: its versions and delta tokens become visible, then (on btrfs) a
    /// read-only snapshot of the repository is taken.
    pub fn commit(mut self, counters: &serde_json::Value) -> Result<CommitReport> {
        self.guard()?;
        let r = self.commit_inner(counters);
        let run = self.track(r)?;
        let snapshot = crate::snapshot::after_commit(&self.repo, &self.conn, run);
        let state = serde_json::to_string(&snapshot).unwrap_or_default();
        if let Err(e) = self.conn.execute(
            "UPDATE runs SET snapshot = ?2 WHERE id = ?1",
            params![run.0, state],
        ) {
            tracing::warn!(error = %e, "could not record the snapshot state");
        }
        Ok(CommitReport {
            run,
            snapshot,
            stats: self.stats,
        })
    }

    fn commit_inner(&mut self, counters: &serde_json::Value) -> Result<RunId> {
        self.drain()?;
        if let Some((p, row)) = self.pack.take() {
            let (_, size, entries) = p.finish()?;
            self.conn
                .execute(
                    "UPDATE packs SET size = ?2, blob_count = ?3 WHERE id = ?1",
                    params![row, size as i64, entries.len() as i64],
                )
                .ctx("recording a pack")?;
        }
        self.conn
            .execute(
                "UPDATE runs SET status = 'committed', finished = ?2, counters = ?3 WHERE id = ?1",
                params![
                    self.run.0,
                    to_unix(OffsetDateTime::now_utc()),
                    counters.to_string()
                ],
            )
            .ctx("committing the run")?;
        self.conn
            .execute_batch("COMMIT")
            .ctx("committing the run")?;
        Ok(self.run)
    }

    /// Ends the run as failed: its version changes and delta tokens are rolled back (its blobs
    /// stay for the next run to reuse, or for garbage collection).
    pub fn fail(mut self, counters: &serde_json::Value) -> Result<RunId> {
        self.pack = None;
        let _ = self.conn.execute_batch("ROLLBACK");
        let run = self.run.0;
        let tx = self.conn.transaction().ctx("failing the run")?;
        tx.execute("DELETE FROM node_versions WHERE first_run = ?1", [run])
            .ctx("failing the run")?;
        tx.execute(
            "UPDATE node_versions SET last_run = NULL WHERE last_run = ?1 - 1
             AND NOT EXISTS (SELECT 1 FROM node_versions o WHERE o.node = node_versions.node AND o.last_run IS NULL)",
            [run],
        )
        .ctx("failing the run")?;
        tx.execute("DELETE FROM delta_tokens WHERE run = ?1", [run])
            .ctx("failing the run")?;
        tx.execute(
            "UPDATE runs SET status = 'failed', finished = ?2, counters = ?3 WHERE id = ?1",
            params![
                run,
                to_unix(OffsetDateTime::now_utc()),
                counters.to_string()
            ],
        )
        .ctx("failing the run")?;
        tx.commit().ctx("failing the run")?;
        Ok(self.run)
    }
}

/// The open version of a node as read for comparison: id, parent, name, content, size,
/// modified, version tag, metadata, first run.
type OpenRow = (
    i64,
    Option<i64>,
    String,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);
