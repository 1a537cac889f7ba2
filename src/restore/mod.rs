//! Restore to Microsoft 365: any selection of a run (an item, a folder, a workload, an account)
//! back to its original place, into a new "Restored …" folder, or into another account.
//!
//! A restore is a job: [`run`] walks the selection at the chosen run, recreates the folder tree
//! under it, and recreates every item through Graph (mail from its MIME, files by upload, events
//! and contacts from their JSON, channel conversations into migration-mode channels or as HTML
//! transcripts), streaming content from the repository. Progress is counted in a
//! shared [`RestoreProgress`]; a cancel flag stops it between items. The [`RestoreReport`] lists
//! every item restored, skipped or failed with why. What Graph cannot keep is written down in
//! `docs/restore-limits.md`.

mod files;
mod mail;
mod mail_attach;
mod mail_json;
mod outlook;
mod source;
mod teams;
mod tree;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use backhome_graph::{Client, ErrorClass, encode_segment};
use backhome_store::{NodeKind, ObjectKind, ObjectRecord, Repository, RunId, VersionRecord};
use serde::Serialize;

use crate::cli::browse::{self, BrowseError, Target};
use crate::paths;

pub use source::RepoSource;

/// What to do when the item already exists at the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conflict {
    /// Leave the existing item alone (never destroys data).
    #[default]
    Skip,
    /// Replace the existing item with the restored one.
    Overwrite,
    /// Restore next to it (files get a new name; mail, events and contacts a second copy).
    KeepBoth,
}

impl std::str::FromStr for Conflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "overwrite" => Ok(Self::Overwrite),
            "keep-both" | "keep_both" => Ok(Self::KeepBoth),
            _ => Err(format!(
                "unknown conflict policy {s:?} (skip, overwrite or keep-both)"
            )),
        }
    }
}

/// What to restore, from which run, to where.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The run whose state is restored.
    pub run: RunId,
    /// Backup paths (as `ls` prints them): items, folders, workloads or accounts.
    pub paths: Vec<String>,
    /// Restore into this account (UPN) instead of the original one.
    pub target_user: Option<String>,
    /// Restore under a new folder of this name at the top of the workload (e.g.
    /// "Restored 2026-11-24 14:30") instead of the original place.
    pub target_folder: Option<String>,
    /// What to do with items that already exist.
    pub conflict: Conflict,
}

impl RestoreRequest {
    /// Restores `paths` of `run` to their original place, skipping what exists.
    pub fn new(run: RunId, paths: Vec<String>) -> Self {
        Self {
            run,
            paths,
            target_user: None,
            target_folder: None,
            conflict: Conflict::Skip,
        }
    }
}

/// What happened to one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Recreated (or replaced, with [`Conflict::Overwrite`]).
    Restored,
    /// It already existed and the policy was [`Conflict::Skip`].
    Skipped,
    /// It could not be restored (see the reason in [`RestoreReport::failed`]).
    Failed,
}

/// One item of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemResult {
    /// Its backup path.
    pub path: String,
    /// What happened.
    pub outcome: Outcome,
}

/// One item that could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// Its backup path.
    pub path: String,
    /// Why, in words an admin understands.
    pub reason: String,
}

/// The result of a restore job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Items recreated.
    pub restored: u64,
    /// Items left alone because they existed.
    pub skipped: u64,
    /// Items that failed, with why.
    pub failed: Vec<ItemFailure>,
    /// Every item with its outcome, in the order handled.
    pub items: Vec<ItemResult>,
    /// Requests sent to Graph during the job.
    pub graph_requests: u64,
}

/// Live counters of a restore job.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    /// Items found in the selection so far.
    pub items_total: AtomicU64,
    /// Items restored.
    pub restored: AtomicU64,
    /// Items skipped.
    pub skipped: AtomicU64,
    /// Items failed.
    pub failed: AtomicU64,
    /// Content bytes sent to Graph.
    pub bytes_uploaded: AtomicU64,
}

impl RestoreProgress {
    /// Items handled so far (restored, skipped or failed).
    pub fn done(&self) -> u64 {
        self.restored.load(Ordering::Relaxed)
            + self.skipped.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

/// Why a restore job stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A path of the selection is malformed or not in the run.
    #[error(transparent)]
    Browse(#[from] BrowseError),
    /// The repository failed.
    #[error("repository: {0}")]
    Store(#[from] backhome_store::StoreError),
    /// Graph failed in a way that stops the whole job (sign-in, consent …).
    #[error("{0}")]
    Graph(#[from] backhome_graph::Error),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// The job was cancelled.
    #[error("the restore was cancelled")]
    Cancelled,
    /// A blocking task died.
    #[error("internal failure: {0}")]
    Internal(String),
}

/// Why one item failed (the job goes on).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ItemError {
    #[error("{0}")]
    Graph(#[from] backhome_graph::Error),
    #[error("repository: {0}")]
    Store(#[from] backhome_store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// Whether a Graph error stops the whole job rather than one item.
fn is_fatal(e: &backhome_graph::Error) -> bool {
    matches!(e.class(), ErrorClass::AccessDenied)
        || matches!(
            e,
            backhome_graph::Error::Auth(_)
                | backhome_graph::Error::Credential(_)
                | backhome_graph::Error::Config(_)
        ) && !matches!(e.class(), ErrorClass::Temporary)
}

/// One item to restore: its version at the run, its backup path, and the names of the
/// containers between the workload root and it.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub version: VersionRecord,
    pub path: String,
    pub folders: Vec<String>,
    /// The graph ids of those containers (first: the top one).
    pub folder_ids: Vec<String>,
}

/// The workload a selection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Workload {
    Mail,
    Calendar,
    Contacts,
    Drive,
    Channels,
}

/// Shared state of one job.
pub(crate) struct Job {
    pub client: Client,
    pub repo: Repository,
    pub req: RestoreRequest,
    pub progress: Arc<RestoreProgress>,
    cancel: Arc<AtomicBool>,
    report: Mutex<RestoreReport>,
}

impl Job {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Records the outcome of one item.
    pub fn record(
        &self,
        path: &str,
        result: Result<Outcome, ItemError>,
    ) -> Result<(), RestoreError> {
        let (outcome, reason) = match result {
            Ok(o) => (o, None),
            Err(ItemError::Graph(e)) if is_fatal(&e) => return Err(e.into()),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        let p = &self.progress;
        let counter = match outcome {
            Outcome::Restored => &p.restored,
            Outcome::Skipped => &p.skipped,
            Outcome::Failed => &p.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut r = self
            .report
            .lock()
            .map_err(|_| RestoreError::Internal("report poisoned".into()))?;
        match outcome {
            Outcome::Restored => r.restored += 1,
            Outcome::Skipped => r.skipped += 1,
            Outcome::Failed => {
                let reason = reason.unwrap_or_default();
                tracing::warn!(path, %reason, "item not restored");
                r.failed.push(ItemFailure {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
        r.items.push(ItemResult {
            path: path.to_owned(),
            outcome,
        });
        Ok(())
    }

    /// The metadata of an item's version: not kept in the selection (a mailbox of 100,000
    /// messages would hold all their Graph JSON in memory), read when the item is restored.
    pub async fn metadata(&self, v: &VersionRecord) -> Result<serde_json::Value, ItemError> {
        if !v.metadata.is_null() {
            return Ok(v.metadata.clone());
        }
        let (repo, node, run) = (self.repo.clone(), v.node, self.req.run);
        let found = tokio::task::spawn_blocking(move || repo.get_version(node, run))
            .await
            .map_err(|e| ItemError::Other(e.to_string()))??;
        Ok(found.map(|f| f.metadata).unwrap_or_default())
    }

    /// Reads a whole stored content (mail MIME, event or contact JSON: bounded by Exchange).
    pub async fn read_all(&self, v: &VersionRecord) -> Result<Vec<u8>, ItemError> {
        let Some(content) = v.content else {
            return Err(ItemError::Other(
                "the backup holds no content for it".into(),
            ));
        };
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = repo.read_content(content.id)?;
            let mut buf = Vec::with_capacity(usize::try_from(content.size).unwrap_or(0));
            std::io::Read::read_to_end(&mut r, &mut buf)
                .map_err(|e| ItemError::Other(format!("reading the backup: {e}")))?;
            Ok(buf)
        })
        .await
        .map_err(|e| ItemError::Other(e.to_string()))?
    }

    /// The Graph path of the target account (`/users/{id or upn}`) for an object.
    pub fn account_base(&self, obj: &ObjectRecord) -> String {
        match (&self.req.target_user, obj.info.kind) {
            (Some(upn), _) => format!("/users/{}", encode_segment(upn)),
            (None, ObjectKind::Group | ObjectKind::Team) => {
                format!("/groups/{}", encode_segment(&obj.info.graph_id))
            }
            (None, _) => format!("/users/{}", encode_segment(&obj.info.graph_id)),
        }
    }
}

/// A selection grouped by protected object and workload.
pub(crate) struct Selection {
    pub object: ObjectRecord,
    pub workload: Workload,
    /// The root node's graph id (`root:mail`, `root:lib:{drive}` …).
    pub root_gid: String,
    pub items: Vec<Item>,
}

/// Runs one restore job to its end.
///
/// # Errors
/// Job-stopping failures: a path not in the run, sign-in or consent, the repository, cancel.
/// Item failures are listed in the report and never stop the job.
pub async fn run(
    client: Client,
    repo: Repository,
    req: RestoreRequest,
    progress: Arc<RestoreProgress>,
    cancel: Arc<AtomicBool>,
) -> Result<RestoreReport, RestoreError> {
    if req.paths.is_empty() {
        return Err(RestoreError::Invalid(
            "nothing to restore: give at least one path".into(),
        ));
    }
    if let Some(f) = &req.target_folder
        && (f.trim().is_empty() || f.contains('/') || f.contains('\\'))
    {
        return Err(RestoreError::Invalid(format!(
            "the target folder must be one non-empty name without slashes: {f:?}"
        )));
    }
    let requests_before = client.stats().requests;
    let r = repo.clone();
    let (run, paths) = (req.run, req.paths.clone());
    let selections = tokio::task::spawn_blocking(move || select(&r, run, &paths))
        .await
        .map_err(|e| RestoreError::Internal(e.to_string()))??;
    let total: usize = selections.iter().map(|s| s.items.len()).sum();
    progress.items_total.store(total as u64, Ordering::Relaxed);
    let job = Job {
        client,
        repo,
        req,
        progress,
        cancel,
        report: Mutex::default(),
    };
    for s in &selections {
        if job.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        match s.workload {
            Workload::Mail => mail::restore(&job, s).await?,
            Workload::Drive => files::restore(&job, s).await?,
            Workload::Calendar => outlook::restore_events(&job, s).await?,
            Workload::Contacts => outlook::restore_contacts(&job, s).await?,
            Workload::Channels => teams::restore(&job, s).await?,
        }
    }
    if job.cancelled() {
        return Err(RestoreError::Cancelled);
    }
    let mut report = job
        .report
        .into_inner()
        .map_err(|_| RestoreError::Internal("report poisoned".into()))?;
    report.graph_requests = job.client.stats().requests.saturating_sub(requests_before);
    Ok(report)
}

/// Resolves every path at `run` and walks its subtree into items, grouped by object and workload.
fn select(
    repo: &Repository,
    run: RunId,
    paths_in: &[String],
) -> Result<Vec<Selection>, RestoreError> {
    let objects: HashMap<_, _> = repo.objects()?.into_iter().map(|o| (o.id, o)).collect();
    let mut out: Vec<Selection> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut queue: Vec<String> = paths_in.iter().rev().cloned().collect();
    while let Some(path) = queue.pop() {
        match browse::resolve(repo, run, &path)? {
            Target::Virtual(entries) => {
                if entries.is_empty() {
                    return Err(RestoreError::Invalid(format!(
                        "{path} holds nothing at run {run}"
                    )));
                }
                queue.extend(entries.into_iter().rev().map(|e| e.path));
            }
            Target::Node(v) => {
                let mut chain: Vec<VersionRecord> = Vec::new();
                let mut parent = v.parent;
                while let Some(p) = parent {
                    let pv = repo.get_version(p, run)?.ok_or_else(|| {
                        RestoreError::Invalid(format!(
                            "{path}: a parent folder is missing at run {run}"
                        ))
                    })?;
                    parent = pv.parent;
                    chain.push(pv);
                }
                chain.reverse();
                let (root, folders) = match (v.kind, chain.split_first()) {
                    (NodeKind::Root, _) => ((*v).clone(), Vec::new()),
                    (_, Some((root, rest))) if root.kind == NodeKind::Root => {
                        (root.clone(), rest.to_vec())
                    }
                    _ => {
                        return Err(RestoreError::Invalid(format!(
                            "{path}: not under a workload of an account"
                        )));
                    }
                };
                let workload = workload_of(&root.graph_id).ok_or_else(|| {
                    RestoreError::Invalid(if root.graph_id == "root:conversations" {
                        format!(
                            "{path}: group conversations cannot be restored: Microsoft Graph lets \
                             only a signed-in user, not an application, post to a group; export \
                             the thread instead"
                        )
                    } else {
                        format!("{path}: unknown workload {}", root.graph_id)
                    })
                })?;
                let object = objects
                    .get(&v.object)
                    .cloned()
                    .ok_or_else(|| RestoreError::Invalid(format!("{path}: unknown account")))?;
                let idx = match out
                    .iter()
                    .position(|s| s.object.id == object.id && s.root_gid == root.graph_id)
                {
                    Some(i) => i,
                    None => {
                        out.push(Selection {
                            object,
                            workload,
                            root_gid: root.graph_id.clone(),
                            items: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                let names: Vec<String> = folders.iter().map(|f| f.name.clone()).collect();
                let ids: Vec<String> = folders.iter().map(|f| f.graph_id.clone()).collect();
                let base = paths::split(&path).map_err(BrowseError::BadPath)?;
                let items = &mut out[idx].items;
                collect(repo, run, &v, base, names, ids, items, &mut seen)?;
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn collect(
    repo: &Repository,
    run: RunId,
    v: &VersionRecord,
    path: Vec<String>,
    folders: Vec<String>,
    folder_ids: Vec<String>,
    out: &mut Vec<Item>,
    seen: &mut std::collections::HashSet<backhome_store::NodeId>,
) -> Result<(), RestoreError> {
    if !seen.insert(v.node) {
        return Ok(());
    }
    let container = matches!(
        v.kind,
        NodeKind::Root
            | NodeKind::MailFolder
            | NodeKind::Calendar
            | NodeKind::ContactFolder
            | NodeKind::Drive
            | NodeKind::DriveFolder
            | NodeKind::Channel
    );
    if !container {
        let mut version = v.clone();
        // Read again when the item is restored (see `Job::metadata`).
        version.metadata = serde_json::Value::Null;
        out.push(Item {
            version,
            path: paths::join(&path),
            folders,
            folder_ids,
        });
        return Ok(());
    }
    let (mut sub, mut sub_ids) = (folders, folder_ids);
    if v.kind != NodeKind::Root {
        sub.push(v.name.clone());
        sub_ids.push(v.graph_id.clone());
        if v.kind == NodeKind::DriveFolder || v.kind == NodeKind::MailFolder {
            // Empty folders are recreated too: the folder itself is an item.
            out.push(Item {
                version: v.clone(),
                path: paths::join(&path),
                folders: sub.clone(),
                folder_ids: sub_ids.clone(),
            });
        }
    }
    for c in repo.list_children(v.node, run)? {
        let mut p = path.clone();
        p.push(c.name.clone());
        collect(repo, run, &c, p, sub.clone(), sub_ids.clone(), out, seen)?;
    }
    Ok(())
}

fn workload_of(root_gid: &str) -> Option<Workload> {
    match root_gid {
        "root:mail" => Some(Workload::Mail),
        "root:calendar" => Some(Workload::Calendar),
        "root:contacts" => Some(Workload::Contacts),
        "root:onedrive" | "root:files" => Some(Workload::Drive),
        "root:channels" => Some(Workload::Channels),
        g if g.starts_with("root:lib:") => Some(Workload::Drive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_parse() {
        assert_eq!("skip".parse::<Conflict>(), Ok(Conflict::Skip));
        assert_eq!("overwrite".parse::<Conflict>(), Ok(Conflict::Overwrite));
        assert_eq!("keep-both".parse::<Conflict>(), Ok(Conflict::KeepBoth));
        assert!("merge".parse::<Conflict>().is_err());
        assert_eq!(Conflict::default(), Conflict::Skip);
    }

    #[test]
    fn workloads_from_roots() {
        assert_eq!(workload_of("root:mail"), Some(Workload::Mail));
        assert_eq!(workload_of("root:lib:b!x"), Some(Workload::Drive));
        assert_eq!(workload_of("root:files"), Some(Workload::Drive));
        assert_eq!(workload_of("elsewhere"), None);
    }
}
