//! Figures about a repository read from the catalog alone (no pack is opened): how much was
//! backed up and how much it takes on disk, per account and workload, and per run; and a
//! full-text search with filters (accounts, workload, sender, time range) that also gives each
//! hit's path.

use rusqlite::params;
use time::OffsetDateTime;

use crate::error::{DbContext, Result, StoreError};
use crate::id::{ObjectId, RunId};
use crate::model::{SearchHit, to_unix};
use crate::repo::Repository;

/// How much the repository holds and what it takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageTotals {
    /// Bytes of every stored version's content, each version counted (what copies of every
    /// point in time would take).
    pub logical_bytes: u64,
    /// Plain bytes of the distinct blobs (after deduplication, before compression).
    pub unique_bytes: u64,
    /// Bytes of the distinct blobs as stored in packs (after compression and encryption).
    pub stored_bytes: u64,
    /// Bytes of the pack files.
    pub pack_bytes: u64,
    /// Bytes of the catalog files (database and its write-ahead log).
    pub catalog_bytes: u64,
    /// Number of pack files.
    pub packs: u64,
    /// Number of distinct blobs.
    pub blobs: u64,
}

impl StorageTotals {
    /// Pack files plus catalog: the repository's size on disk.
    #[must_use]
    pub fn repository_bytes(&self) -> u64 {
        self.pack_bytes + self.catalog_bytes
    }

    /// Logical bytes per unique byte (1.0 for an empty repository).
    #[must_use]
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// Unique plain bytes per stored byte (1.0 for an empty repository).
    #[must_use]
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.stored_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if a == 0 || b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Items and bytes of one workload of one protected object at a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadUsage {
    /// The object.
    pub object: ObjectId,
    /// The workload root's name (`mail`, `calendar`, `onedrive`, a library, `channels`, …).
    pub workload: String,
    /// Items with content (messages, files, events, …).
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What one committed run added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunGrowth {
    /// The run.
    pub run: RunId,
    /// When it finished.
    pub finished: Option<OffsetDateTime>,
    /// Versions it wrote (new and changed items and folders).
    pub versions: u64,
    /// Bytes of the pack files it wrote (still present).
    pub added_bytes: u64,
    /// Bytes of the pack files written by it and every earlier run (still present).
    pub total_bytes: u64,
}

/// A full-text search with filters.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    /// Words to find (each must occur; the last may be a prefix). Empty: no text condition.
    pub words: Vec<String>,
    /// Only hits whose sender contains this address or name (a phrase).
    pub sender: Option<String>,
    /// Only hits within these objects (`None`: any).
    pub objects: Option<Vec<ObjectId>>,
    /// Only hits under this workload root name (`mail`, `onedrive`, …).
    pub workload: Option<String>,
    /// Only items modified at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only items modified at or before this time.
    pub to: Option<OffsetDateTime>,
    /// At most this many hits.
    pub limit: usize,
}

/// A search hit with its path below its object (`mail/Inbox/Hello [1a2b3c4d]`).
#[derive(Clone, Debug, PartialEq)]
pub struct PathHit {
    /// The hit.
    pub hit: SearchHit,
    /// Names from the workload root down, joined by `/` (names are not escaped).
    pub names: Vec<String>,
}

/// Quotes one word for an FTS5 query: a phrase, so that no character is taken as syntax.
fn phrase(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

impl SearchFilter {
    /// The FTS5 query for the filter's words and sender; `None` when there is nothing to match.
    fn fts_query(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        let n = self.words.len();
        for (i, w) in self.words.iter().enumerate() {
            if w.is_empty() {
                continue;
            }
            if i + 1 == n && w.chars().all(char::is_alphanumeric) {
                parts.push(format!("{}*", phrase(w)));
            } else {
                parts.push(phrase(w));
            }
        }
        if let Some(s) = self
            .sender
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            parts.push(format!("sender : {}", phrase(s)));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

/// The names from the root down to `node` as of run `at` (`None` when a node on the way did
/// not exist then).
fn names_at(
    c: &rusqlite::Connection,
    node: crate::NodeId,
    at: RunId,
) -> Result<Option<Vec<String>>> {
    let mut st = c
        .prepare_cached(
            "SELECT name, parent FROM node_versions WHERE node = ?2
             AND first_run <= ?1 AND (last_run IS NULL OR last_run >= ?1) LIMIT 1",
        )
        .ctx("reading a path")?;
    let mut names = Vec::new();
    let mut cur = Some(node.0);
    while let Some(n) = cur {
        if names.len() > 256 {
            return Err(StoreError::Invalid("the node tree has a cycle".into()));
        }
        let row: Option<(String, Option<i64>)> = rusqlite::OptionalExtension::optional(
            st.query_row(params![at.0, n], |r| Ok((r.get(0)?, r.get(1)?))),
        )
        .ctx("reading a path")?;
        let Some((name, parent)) = row else {
            return Ok(None);
        };
        names.push(name);
        cur = parent;
    }
    names.reverse();
    Ok(Some(names))
}

impl Repository {
    /// Totals of the whole repository.
    pub fn storage_totals(&self) -> Result<StorageTotals> {
        let mut t = self.with_conn(|c| {
            let (logical,): (i64,) = c
                .query_row(
                    "SELECT coalesce(sum(size), 0) FROM node_versions WHERE content IS NOT NULL",
                    [],
                    |r| Ok((r.get(0)?,)),
                )
                .ctx("summing versions")?;
            let (blobs, unique, stored): (i64, i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(raw_length), 0), coalesce(sum(length), 0)
                     FROM blobs",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .ctx("summing blobs")?;
            let (packs, pack_bytes): (i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(size), 0) FROM packs",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ctx("summing packs")?;
            Ok(StorageTotals {
                logical_bytes: logical.max(0) as u64,
                unique_bytes: unique.max(0) as u64,
                stored_bytes: stored.max(0) as u64,
                pack_bytes: pack_bytes.max(0) as u64,
                catalog_bytes: 0,
                packs: packs.max(0) as u64,
                blobs: blobs.max(0) as u64,
            })
        })?;
        let db = self.catalog_path();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(&p) {
                t.catalog_bytes += m.len();
            }
        }
        Ok(t)
    }

    /// Items with content and their bytes per object and workload, as of run `at`.
    pub fn usage_at(&self, at: RunId) -> Result<Vec<WorkloadUsage>> {
        self.with_conn(|c| {
            let mut st = c
                .prepare(
                    "WITH RECURSIVE tree(node, object, workload) AS (
                        SELECT v.node, n.object, v.name FROM node_versions v
                        JOIN nodes n ON n.id = v.node
                        WHERE v.parent IS NULL AND v.first_run <= ?1
                          AND (v.last_run IS NULL OR v.last_run >= ?1)
                        UNION ALL
                        SELECT v.node, t.object, t.workload FROM node_versions v
                        JOIN tree t ON v.parent = t.node
                        WHERE v.first_run <= ?1 AND (v.last_run IS NULL OR v.last_run >= ?1)
                     )
                     SELECT t.object, t.workload, count(v.content), coalesce(sum(CASE WHEN
                        v.content IS NOT NULL THEN v.size END), 0)
                     FROM tree t JOIN node_versions v ON v.node = t.node
                        AND v.first_run <= ?1 AND (v.last_run IS NULL OR v.last_run >= ?1)
                     GROUP BY t.object, t.workload ORDER BY t.object, t.workload",
                )
                .ctx("summing usage")?;
            let rows = st
                .query_map([at.0], |r| {
                    Ok(WorkloadUsage {
                        object: ObjectId(r.get(0)?),
                        workload: r.get(1)?,
                        items: r.get::<_, i64>(2)?.max(0) as u64,
                        bytes: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })
                .ctx("summing usage")?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .ctx("summing usage")
        })
    }

    /// What each committed run added, oldest first.
    pub fn growth(&self) -> Result<Vec<RunGrowth>> {
        self.with_conn(|c| {
            let mut st = c
                .prepare(
                    "SELECT r.id, r.finished,
                        (SELECT count(*) FROM node_versions v WHERE v.first_run = r.id),
                        (SELECT coalesce(sum(p.size), 0) FROM packs p WHERE p.created_run = r.id)
                     FROM runs r WHERE r.status = 'committed' ORDER BY r.id",
                )
                .ctx("reading growth")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .ctx("reading growth")?;
            let mut out = Vec::new();
            // Packs written by runs that were not committed (a resumed run's earlier attempt
            // is the same run id) count towards the next committed run's total.
            let mut total: u64 = 0;
            let mut last: i64 = 0;
            for row in rows {
                let (id, finished, versions, added) = row.ctx("reading growth")?;
                let earlier: i64 = c
                    .query_row(
                        "SELECT coalesce(sum(size), 0) FROM packs
                         WHERE created_run > ?1 AND created_run < ?2",
                        params![last, id],
                        |r| r.get(0),
                    )
                    .ctx("reading growth")?;
                total += (earlier.max(0) + added.max(0)) as u64;
                last = id;
                out.push(RunGrowth {
                    run: RunId(id),
                    finished: finished.map(crate::model::from_unix),
                    versions: versions.max(0) as u64,
                    added_bytes: added.max(0) as u64,
                    total_bytes: total,
                });
            }
            Ok(out)
        })
    }

    /// Full-text search among versions visible at run `at` with the filters of `f`, best
    /// matches first, each hit with its path.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when the filter has neither words nor a sender; an unknown run.
    pub fn search_filtered(&self, f: &SearchFilter, at: RunId) -> Result<Vec<PathHit>> {
        let query = f
            .fts_query()
            .ok_or_else(|| StoreError::Invalid("give words to search for or a sender".into()))?;
        self.with_conn(|c| {
            let status: Option<String> = rusqlite::OptionalExtension::optional(c.query_row(
                "SELECT status FROM runs WHERE id = ?1",
                [at.0],
                |r| r.get(0),
            ))
            .ctx("reading a run")?;
            if status.as_deref() != Some("committed") {
                return Err(StoreError::UnknownRun(at.0));
            }
            let objects = f.objects.as_ref().map(|o| {
                serde_json::Value::from(o.iter().map(|x| x.0).collect::<Vec<_>>()).to_string()
            });
            let sql = format!(
                "SELECT {cols}, (SELECT t.packed FROM search_text t WHERE t.id = v.id) FROM search
                 JOIN node_versions v ON v.id = search.rowid JOIN nodes n ON n.id = v.node
                 LEFT JOIN contents c ON c.id = v.content
                 WHERE search MATCH ?2
                   AND v.first_run <= ?1 AND (v.last_run IS NULL OR v.last_run >= ?1)
                   AND (?3 IS NULL OR n.object IN (SELECT value FROM json_each(?3)))
                   AND (?4 IS NULL OR v.modified >= ?4)
                   AND (?5 IS NULL OR v.modified <= ?5)
                 ORDER BY rank",
                cols = crate::read::VERSION_COLS
            );
            let mut st = c.prepare(&sql).ctx("searching")?;
            let mut rows = st
                .query(params![
                    at.0,
                    query,
                    objects,
                    f.from.map(to_unix),
                    f.to.map(to_unix)
                ])
                .map_err(|e| StoreError::Invalid(format!("search query: {e}")))?;
            let mut out = Vec::new();
            while out.len() < f.limit {
                let Some(r) = rows
                    .next()
                    .map_err(|e| StoreError::Invalid(format!("search query: {e}")))?
                else {
                    break;
                };
                let hit = SearchHit {
                    version: crate::read::version_row(r).ctx("searching")?,
                    snippet: r
                        .get::<_, Option<Vec<u8>>>(15)
                        .ctx("searching")?
                        .map(|p| crate::search_text::snippet(&query, &p))
                        .unwrap_or_default(),
                };
                let Some(names) = names_at(c, hit.version.node, at)? else {
                    continue;
                };
                if let Some(w) = &f.workload
                    && names.first() != Some(w)
                {
                    continue;
                }
                out.push(PathHit { hit, names });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateOptions, NewVersion, NodeKind, ObjectInfo, ObjectKind, SearchText};

    #[test]
    fn totals_usage_growth_and_filtered_search() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
        let mut w = repo.begin_run().unwrap();
        let ann = w
            .upsert_object(&ObjectInfo {
                kind: ObjectKind::User,
                graph_id: "u1".into(),
                name: "Ann".into(),
                address: Some("ann@x.com".into()),
                extra: serde_json::Value::Null,
            })
            .unwrap();
        let mail = w.node(ann, "root:mail", NodeKind::Root).unwrap();
        w.put_version(
            mail,
            &NewVersion {
                name: "mail".into(),
                ..NewVersion::default()
            },
        )
        .unwrap();
        let drive = w.node(ann, "root:onedrive", NodeKind::Root).unwrap();
        w.put_version(
            drive,
            &NewVersion {
                name: "onedrive".into(),
                ..NewVersion::default()
            },
        )
        .unwrap();
        let body = vec![b'a'; 10_000];
        for (i, (root, subject, sender)) in [
            (mail, "Budget plan", "bob@x.com"),
            (mail, "Budget review", "carol@x.com"),
            (drive, "budget.xlsx", ""),
        ]
        .into_iter()
        .enumerate()
        {
            let n = w.node(ann, &format!("i{i}"), NodeKind::Message).unwrap();
            let s = w.put_bytes(&body).unwrap();
            w.put_version(
                n,
                &NewVersion {
                    parent: Some(root),
                    name: subject.into(),
                    content: Some(s.content),
                    modified: Some(
                        OffsetDateTime::from_unix_timestamp(1_000 * (i as i64 + 1)).unwrap(),
                    ),
                    search: Some(SearchText {
                        subject: subject.into(),
                        sender: sender.into(),
                        ..SearchText::default()
                    }),
                    ..NewVersion::default()
                },
            )
            .unwrap();
        }
        let run = w.commit(&serde_json::json!({})).unwrap().run;

        let t = repo.storage_totals().unwrap();
        assert_eq!(t.logical_bytes, 30_000);
        assert_eq!(t.unique_bytes, 10_000);
        assert!((t.dedup_ratio() - 3.0).abs() < 1e-9);
        assert!(t.compression_ratio() > 10.0, "{t:?}");
        assert!(t.catalog_bytes > 0 && t.pack_bytes > 0);

        let usage = repo.usage_at(run).unwrap();
        let get = |w: &str| usage.iter().find(|u| u.workload == w).unwrap();
        assert_eq!((get("mail").items, get("mail").bytes), (2, 20_000));
        assert_eq!((get("onedrive").items, get("onedrive").bytes), (1, 10_000));

        let g = repo.growth().unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].versions, 5);
        assert_eq!(g[0].added_bytes, t.pack_bytes);

        let search = |f: SearchFilter| {
            let mut v: Vec<String> = repo
                .search_filtered(&SearchFilter { limit: 10, ..f }, run)
                .unwrap()
                .into_iter()
                .map(|h| h.names.join("/"))
                .collect();
            v.sort();
            v
        };
        let words = |w: &str| vec![w.to_owned()];
        assert_eq!(
            search(SearchFilter {
                words: words("budg"),
                ..Default::default()
            })
            .len(),
            3
        );
        assert_eq!(
            search(SearchFilter {
                words: words("budget"),
                workload: Some("mail".into()),
                ..Default::default()
            }),
            ["mail/Budget plan", "mail/Budget review"]
        );
        assert_eq!(
            search(SearchFilter {
                sender: Some("carol@x.com".into()),
                ..Default::default()
            }),
            ["mail/Budget review"]
        );
        assert_eq!(
            search(SearchFilter {
                words: words("budget"),
                from: Some(OffsetDateTime::from_unix_timestamp(1_500).unwrap()),
                to: Some(OffsetDateTime::from_unix_timestamp(2_500).unwrap()),
                ..Default::default()
            }),
            ["mail/Budget review"]
        );
        assert!(
            search(SearchFilter {
                words: words("budget"),
                objects: Some(vec![ObjectId(ann.0 + 1)]),
                ..Default::default()
            })
            .is_empty()
        );
        // Syntax characters are words, not query syntax.
        assert!(
            search(SearchFilter {
                words: words("\"(*"),
                ..Default::default()
            })
            .is_empty()
        );
        assert!(repo.search_filtered(&SearchFilter::default(), run).is_err());
    }
}
