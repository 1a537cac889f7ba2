//! A backup run: discover the tenant, decide what is included, walk every protected object's
//! containers with delta queries, store new, changed and deleted items as versions, commit.
//!
//! Item failures are recorded and retried next run; they never fail the run. A killed or
//! cancelled run leaves its checkpointed work in the repository, and the next run resumes it
//! without downloading again what was stored.

pub mod context;
pub mod conversations;
pub mod delta;
pub mod discover;
pub mod drive;
pub mod mail;
pub mod outlook;
pub mod progress;
pub mod teams;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome_graph::models::{Drive, Group, Site, User};
use backhome_graph::{Call, Client, encode_segment};
use backhome_store::{
    NewVersion, NodeId, NodeKind, ObjectId, ObjectInfo, ObjectKind, Repository, VersionOutcome,
};
use futures_util::StreamExt;
use serde::Serialize;

pub use context::{Ctx, ItemError, RunError};
pub use progress::{Progress, ProgressSnapshot};

use crate::task::{Service, TaskSpec};

/// How many protected objects are backed up at once. Exchange limits each mailbox (4 requests at
/// once, a request budget per window), not the app, so a run's throughput grows with the
/// mailboxes it works on side by side; the Graph client's global limit is this times the
/// per-resource limit (see `connect.rs`), enough to keep every one of them busy. Memory per
/// object is bounded by its queue, not by the number of its items.
pub const OBJECTS_AT_ONCE: usize = 64;

/// What a finished run reports (the `backup --json` summary).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The run.
    pub run_id: i64,
    /// `complete`, `complete_with_errors`.
    pub status: String,
    /// Items seen for the first time.
    pub items_added: u64,
    /// Items stored as a new version.
    pub items_changed: u64,
    /// Deletions recorded.
    pub items_deleted: u64,
    /// Content bytes downloaded from Graph.
    pub bytes_downloaded: u64,
    /// Requests sent to Graph (and the login endpoint).
    pub graph_requests: u64,
    /// Items that failed, with why.
    pub errors: Vec<ItemError>,
    /// What happened with the run's btrfs snapshot.
    pub snapshot: String,
    /// Whether this run continued one that was interrupted.
    pub resumed: bool,
}

/// Runs one backup of `spec` into `repo` to its end.
///
/// # Errors
/// Run-stopping failures: sign-in, consent, the repository. The work done so far stays
/// checkpointed and the next run resumes it.
pub async fn run(
    client: Client,
    repo: Repository,
    spec: &TaskSpec,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
) -> Result<Summary, RunError> {
    let requests_before = client.stats().requests;
    let r = repo.clone();
    let writer = tokio::task::spawn_blocking(move || r.begin_run())
        .await
        .map_err(|e| RunError::Internal(e.to_string()))??;
    let resumed = writer.is_resumed();
    let run_id = writer.run_id();
    let r = repo.clone();
    let latest = tokio::task::spawn_blocking(move || r.latest_run())
        .await
        .map_err(|e| RunError::Internal(e.to_string()))??;
    let ctx = Ctx::new(client.clone(), writer, progress, cancel, repo, latest);
    tracing::info!(task = %spec.name, run = %run_id, resumed, "backup started");

    let mut found = discover::discover(&client, spec).await?;
    let r = ctx.repo.clone();
    let known: HashSet<String> = tokio::task::spawn_blocking(move || r.objects())
        .await
        .map_err(|e| RunError::Internal(e.to_string()))??
        .into_iter()
        .map(|o| o.info.graph_id)
        .collect();
    discover::apply_auto_discovery(&mut found, spec, &known);
    let listed = found.listed.clone();
    let mut jobs: Vec<Job> = Vec::new();
    jobs.extend(found.users.into_iter().map(Job::User));
    jobs.extend(found.groups.into_iter().map(Job::Group));
    jobs.extend(found.sites.into_iter().map(Job::Site));
    ctx.progress.objects_planned(jobs.len() as u64);
    let results: Vec<Result<(), RunError>> = futures_util::stream::iter(jobs)
        .map(|job| job.run(&ctx, spec))
        .buffer_unordered(OBJECTS_AT_ONCE)
        .collect()
        .await;
    if let Some(e) = results
        .into_iter()
        .find_map(Result::err)
        .or_else(|| ctx.check_cancel().err())
    {
        if matches!(e, RunError::Cancelled) {
            // A cancelled run keeps what it stored: the next run resumes from this checkpoint.
            ctx.w(|w| w.checkpoint()).await?;
            tracing::info!(run = %run_id, "backup cancelled at a checkpoint");
        }
        return Err(e);
    }
    close_deleted_objects(&ctx, &listed).await?;

    let snap = ctx.progress.snapshot();
    let errors = ctx.errors();
    let counters = serde_json::json!({
        "items_added": snap.items_added,
        "items_changed": snap.items_changed,
        "items_deleted": snap.items_deleted,
        "items_unchanged": snap.items_unchanged,
        "bytes_downloaded": snap.bytes_downloaded,
        "item_errors": errors.len(),
        "errors": errors.iter().take(1000).collect::<Vec<_>>(),
    });
    let writer = ctx.into_writer()?;
    let report = tokio::task::spawn_blocking(move || writer.commit(&counters))
        .await
        .map_err(|e| RunError::Internal(e.to_string()))??;
    tracing::info!(run = %report.run, snapshot = ?report.snapshot, "backup committed");
    Ok(Summary {
        run_id: report.run.0,
        status: if errors.is_empty() {
            "complete".into()
        } else {
            "complete_with_errors".into()
        },
        items_added: snap.items_added,
        items_changed: snap.items_changed,
        items_deleted: snap.items_deleted,
        bytes_downloaded: snap.bytes_downloaded,
        graph_requests: client.stats().requests.saturating_sub(requests_before),
        errors,
        snapshot: format!("{:?}", report.snapshot),
        resumed,
    })
}

enum Job {
    User(User),
    Group(Group),
    Site(Site),
}

impl Job {
    async fn run(self, ctx: &Ctx, spec: &TaskSpec) -> Result<(), RunError> {
        let wants = |s: Service| spec.services.contains(&s);
        match self {
            Job::User(u) => {
                let upn = u
                    .user_principal_name
                    .clone()
                    .unwrap_or_else(|| u.id.clone());
                let info = ObjectInfo {
                    kind: ObjectKind::User,
                    graph_id: u.id.clone(),
                    name: u.display_name.clone().unwrap_or_else(|| upn.clone()),
                    address: Some(upn.clone()),
                    extra: serde_json::json!({ "mail": u.mail, "upn": upn }),
                };
                let obj = ctx.w(move |w| w.upsert_object(&info)).await?;
                let base = format!("/users/{}", encode_segment(&u.id));
                let workloads = [
                    Service::Mail,
                    Service::Calendar,
                    Service::Contacts,
                    Service::Onedrive,
                ];
                let planned = workloads.into_iter().filter(|s| wants(*s)).count();
                ctx.progress.object_start(&upn, planned as u64);
                if wants(Service::Mail) {
                    let root = root_node(ctx, obj, "mail").await?;
                    let mb = mail::Mailbox::new(ctx, obj, &upn, base.clone(), root);
                    if !mb.run().await? {
                        tracing::info!(user = %upn, "no mailbox");
                    }
                }
                if wants(Service::Calendar) {
                    let root = root_node(ctx, obj, "calendar").await?;
                    outlook::calendars(ctx, obj, &upn, &base, root).await?;
                }
                if wants(Service::Contacts) {
                    let root = root_node(ctx, obj, "contacts").await?;
                    outlook::contacts(ctx, obj, &upn, &base, root).await?;
                }
                if wants(Service::Onedrive) {
                    match ctx
                        .client
                        .json::<Drive>(Call::get(format!("{base}/drive?$select=id,name,driveType")))
                        .await
                    {
                        Ok(d) => {
                            let root = root_node(ctx, obj, "onedrive").await?;
                            ctx.progress.containers_listed(&upn, 1);
                            drive_job(ctx, obj, &upn, d.id, root).await?;
                            ctx.progress.container_done(&upn);
                        }
                        Err(e) if matches!(e.class(), backhome_graph::ErrorClass::NotFound) => {
                            ctx.progress.containers_listed(&upn, 0);
                            tracing::info!(user = %upn, "no OneDrive");
                        }
                        Err(e) if !delta::is_fatal(&e) => {
                            ctx.progress.containers_listed(&upn, 0);
                            ctx.item_error(format!("/users/{upn}/onedrive"), e.to_string())
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                ctx.progress.object_done(&upn);
            }
            Job::Group(g) => {
                let nick = g.mail_nickname.clone().unwrap_or_else(|| g.id.clone());
                let is_team = g.resource_provisioning_options.iter().any(|o| o == "Team");
                let info = ObjectInfo {
                    kind: ObjectKind::Group,
                    graph_id: g.id.clone(),
                    name: g.display_name.clone().unwrap_or_else(|| nick.clone()),
                    address: Some(nick.clone()),
                    extra: serde_json::json!({ "mail": g.mail, "team": is_team }),
                };
                let obj = ctx.w(move |w| w.upsert_object(&info)).await?;
                let base = format!("/groups/{}", encode_segment(&g.id));
                let teams = u64::from(wants(Service::Teams) && is_team);
                ctx.progress
                    .object_start(&nick, 2 * u64::from(wants(Service::Groups)) + teams);
                if wants(Service::Groups) {
                    let root = root_node(ctx, obj, "calendar").await?;
                    outlook::group_calendar(ctx, obj, &nick, &base, root).await?;
                    let root = root_node(ctx, obj, "conversations").await?;
                    conversations::group(ctx, obj, &nick, &base, root).await?;
                    match ctx
                        .client
                        .json::<Drive>(Call::get(format!("{base}/drive?$select=id,name,driveType")))
                        .await
                    {
                        Ok(d) => {
                            let root = root_node(ctx, obj, "files").await?;
                            ctx.progress.containers_listed(&nick, 1);
                            drive_job(ctx, obj, &nick, d.id, root).await?;
                            ctx.progress.container_done(&nick);
                        }
                        Err(e) if !delta::is_fatal(&e) => {
                            ctx.progress.containers_listed(&nick, 0);
                            ctx.item_error(format!("/groups/{nick}/files"), e.to_string())
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if wants(Service::Teams) && is_team {
                    let root = root_node(ctx, obj, "channels").await?;
                    teams::team(ctx, obj, &nick, &g.id, root).await?;
                }
                ctx.progress.object_done(&nick);
            }
            Job::Site(s) => {
                let label = s.web_url.clone().unwrap_or_else(|| s.id.clone());
                let info = ObjectInfo {
                    kind: ObjectKind::Site,
                    graph_id: s.id.clone(),
                    name: s
                        .display_name
                        .clone()
                        .or_else(|| s.name.clone())
                        .unwrap_or_else(|| s.id.clone()),
                    address: s.web_url.clone(),
                    extra: serde_json::json!({ "name": s.name }),
                };
                let obj = ctx.w(move |w| w.upsert_object(&info)).await?;
                ctx.progress.object_start(&label, 1);
                let url = format!(
                    "/sites/{}/drives?$select=id,name,driveType,webUrl",
                    encode_segment(&s.id)
                );
                let drives: Result<Vec<Drive>, _> =
                    futures_util::TryStreamExt::try_collect(ctx.client.items(Call::get(url))).await;
                match drives {
                    Ok(drives) => {
                        ctx.progress.containers_listed(&label, drives.len() as u64);
                        let mut seen = HashSet::new();
                        for d in drives {
                            let name = d.name.clone().unwrap_or_else(|| d.id.clone());
                            let gid = format!("root:lib:{}", d.id);
                            seen.insert(gid.clone());
                            let root = named_root(ctx, obj, &gid, &name).await?;
                            drive_job(ctx, obj, &format!("{label}/{name}"), d.id, root).await?;
                            ctx.progress.container_done(&label);
                        }
                    }
                    Err(e) if !delta::is_fatal(&e) => {
                        ctx.progress.containers_listed(&label, 0);
                        ctx.item_error(label.clone(), format!("libraries could not be listed: {e}"))
                    }
                    Err(e) => return Err(e.into()),
                }
                ctx.progress.object_done(&label);
            }
        }
        Ok(())
    }
}

async fn drive_job(
    ctx: &Ctx,
    obj: ObjectId,
    label: &str,
    drive_id: String,
    root: NodeId,
) -> Result<(), RunError> {
    drive::DriveJob {
        ctx,
        object: obj,
        label,
        drive_id,
        root,
        root_item: std::sync::OnceLock::new(),
    }
    .run()
    .await
}

/// The root node of a workload (`mail`, `calendar`, `onedrive` …) of an object.
async fn root_node(ctx: &Ctx, obj: ObjectId, workload: &str) -> Result<NodeId, RunError> {
    named_root(ctx, obj, &format!("root:{workload}"), workload).await
}

async fn named_root(
    ctx: &Ctx,
    obj: ObjectId,
    graph_id: &str,
    name: &str,
) -> Result<NodeId, RunError> {
    let (gid, name) = (graph_id.to_owned(), name.to_owned());
    ctx.w(move |w| {
        let n = w.node(obj, &gid, NodeKind::Root)?;
        w.put_version(
            n,
            &NewVersion {
                name,
                ..NewVersion::default()
            },
        )?;
        Ok(n)
    })
    .await
}

/// A JSON item (event, contact, conversation) to store as a version of its node.
pub struct JsonVersion {
    /// The container node.
    pub parent: NodeId,
    /// Display name.
    pub name: String,
    /// The item's JSON, as stored.
    pub bytes: Vec<u8>,
    /// Last modification time.
    pub modified: Option<time::OffsetDateTime>,
    /// What tells a changed item from an unchanged one.
    pub version_tag: Option<String>,
    /// Text for the search index.
    pub search: backhome_store::SearchText,
}

/// Stores `v` as the content of a new version of `node` and counts it.
///
/// # Errors
/// Store failures.
pub async fn put_json_version(
    ctx: &Ctx,
    node: NodeId,
    v: JsonVersion,
    existed: bool,
) -> Result<(), RunError> {
    let outcome = ctx
        .w(move |w| {
            let stored = w.put_bytes(&v.bytes)?;
            w.put_version(
                node,
                &NewVersion {
                    parent: Some(v.parent),
                    name: v.name,
                    content: Some(stored.content),
                    size: stored.content.size,
                    modified: v.modified,
                    version_tag: v.version_tag,
                    metadata: serde_json::Value::Null,
                    search: Some(v.search),
                },
            )
        })
        .await?;
    count(ctx, outcome, existed);
    Ok(())
}

/// A Graph date-time property (`lastModifiedDateTime` …) of a JSON item.
#[must_use]
pub fn graph_time(item: &serde_json::Value, key: &str) -> Option<time::OffsetDateTime> {
    let s = item.get(key)?.as_str()?;
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Counts a stored version in the run's progress.
pub fn count(ctx: &Ctx, outcome: VersionOutcome, existed: bool) {
    let p = &ctx.progress;
    match outcome {
        VersionOutcome::Created(_) if !existed => Progress::add(&p.items_added, 1),
        VersionOutcome::Created(_) | VersionOutcome::Replaced(_) | VersionOutcome::Updated(_) => {
            Progress::add(&p.items_changed, 1)
        }
        VersionOutcome::Unchanged(_) => Progress::add(&p.items_unchanged, 1),
    }
}

/// After a full listing of a container: children of `kind` that the repository holds under
/// `parent` (committed by an earlier run, or stored by the stopped run this one resumes) and
/// that Graph no longer listed were deleted.
///
/// # Errors
/// Store failures.
pub async fn prune_children(
    ctx: &Ctx,
    obj: ObjectId,
    parent: NodeId,
    kind: NodeKind,
    seen: HashSet<String>,
) -> Result<(), RunError> {
    let gone = gone_children(ctx, obj, parent, kind, &seen).await?;
    delete_nodes(ctx, gone).await
}

/// The children of `kind` and `obj` that the repository holds under `parent` and that Graph no
/// longer listed (`seen` holds what it listed).
async fn gone_children(
    ctx: &Ctx,
    obj: ObjectId,
    parent: NodeId,
    kind: NodeKind,
    seen: &HashSet<String>,
) -> Result<Vec<NodeId>, RunError> {
    Ok(ctx
        .held_children(parent)
        .await?
        .into_iter()
        .filter(|c| c.kind == kind && c.object == obj && !seen.contains(&c.graph_id))
        .map(|c| c.node)
        .collect())
}

/// After a full listing of a drive: every node the repository holds under `root` that Graph no
/// longer listed was deleted.
///
/// # Errors
/// Store failures.
pub async fn prune_subtree(ctx: &Ctx, root: NodeId, seen: HashSet<String>) -> Result<(), RunError> {
    if !ctx.may_hold_items() {
        return Ok(());
    }
    let gone: Vec<NodeId> = ctx
        .w(move |w| {
            let mut gone = Vec::new();
            let mut stack = vec![root];
            while let Some(n) = stack.pop() {
                for c in w.open_children(n)? {
                    if !seen.contains(&c.graph_id) {
                        gone.push(c.node);
                    }
                    stack.push(c.node);
                }
            }
            Ok(gone)
        })
        .await?;
    delete_nodes(ctx, gone).await
}

/// Accounts the last run had and the tenant no longer lists were deleted: everything of theirs
/// is recorded as deleted, so earlier points in time still show it.
async fn close_deleted_objects(
    ctx: &Ctx,
    listed: &std::collections::HashMap<ObjectKind, HashSet<String>>,
) -> Result<(), RunError> {
    if !ctx.may_hold_items() {
        return Ok(());
    }
    let repo = ctx.repo.clone();
    let listed = listed.clone();
    let gone: Vec<(ObjectId, String)> = tokio::task::spawn_blocking(move || {
        let mut gone = Vec::new();
        for o in repo.objects()? {
            let Some(ids) = listed.get(&o.info.kind) else {
                continue;
            };
            if !ids.contains(&o.info.graph_id) {
                gone.push((o.id, o.info.name));
            }
        }
        Ok::<_, backhome_store::StoreError>(gone)
    })
    .await
    .map_err(|e| RunError::Internal(e.to_string()))??;
    if gone.is_empty() {
        return Ok(());
    }
    let roots: Vec<NodeId> = ctx
        .w(move |w| {
            let mut roots = Vec::new();
            for (object, name) in gone {
                let held = w.open_roots(object)?;
                if !held.is_empty() {
                    tracing::info!(object = %name, "account no longer in the tenant");
                }
                roots.extend(held.into_iter().map(|v| v.node));
            }
            Ok(roots)
        })
        .await?;
    for root in roots {
        prune_subtree(ctx, root, HashSet::new()).await?;
        delete_nodes(ctx, vec![root]).await?;
    }
    Ok(())
}

/// Records the deletion of the items with these Graph ids (those the repository holds).
///
/// # Errors
/// Store failures.
pub async fn delete_graph_ids(ctx: &Ctx, obj: ObjectId, ids: Vec<String>) -> Result<(), RunError> {
    if ids.is_empty() {
        return Ok(());
    }
    let n = ctx
        .w(move |w| {
            let mut n = 0u64;
            for id in ids {
                if let Some(cur) = w.current_version(obj, &id)? {
                    n += u64::from(w.delete_node(cur.node)?);
                }
            }
            Ok(n)
        })
        .await?;
    Progress::add(&ctx.progress.items_deleted, n);
    Ok(())
}

async fn delete_nodes(ctx: &Ctx, nodes: Vec<NodeId>) -> Result<(), RunError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let n = ctx
        .w(move |w| {
            let mut n = 0u64;
            for node in nodes {
                n += u64::from(w.delete_node(node)?);
            }
            Ok(n)
        })
        .await?;
    Progress::add(&ctx.progress.items_deleted, n);
    Ok(())
}
