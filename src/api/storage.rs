//! Storage figures of a task's repository (admin): size on disk, deduplication and compression,
//! size per account and workload, growth per run, snapshots. Read from the catalog; no pack is
//! opened.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use backhome_store::FsKind;
use serde::Serialize;
use utoipa::OpenApi;

use super::browse::{blocking, object_path, object_segment, repo_of, rfc3339, store_error};
use super::{Admin, ApiError, AppState};

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/{name}/storage", web::get().to(storage));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(storage),
    components(schemas(Storage, AccountUsage, RunUsage, Snapshot))
)]
pub struct Doc;

/// A repository's storage.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Storage {
    /// Pack files and catalog on disk.
    pub repository_bytes: u64,
    /// Every stored version counted with its full size (what plain copies would take).
    pub logical_bytes: u64,
    /// Distinct data after deduplication, before compression.
    pub unique_bytes: u64,
    /// Distinct data as stored (compressed, encrypted).
    pub stored_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// The file system holding the repository (`btrfs`, `ext4`, …).
    pub filesystem: String,
    /// Items and bytes per account and workload at the newest run.
    pub per_account: Vec<AccountUsage>,
    /// What each run added.
    pub per_run: Vec<RunUsage>,
    /// Read-only snapshots of runs (btrfs).
    pub snapshots: Vec<Snapshot>,
}

/// Items and bytes of one workload of one account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountUsage {
    /// The account's address.
    pub account: String,
    /// Its backup path.
    pub path: String,
    /// The workload.
    pub workload: String,
    /// Items with content.
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What one run added.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunUsage {
    /// The run.
    pub run: i64,
    /// When it finished.
    pub at: Option<String>,
    /// Versions (new or changed items and folders) it wrote.
    pub items: u64,
    /// Bytes of pack files it added.
    pub added_bytes: u64,
    /// Bytes of pack files up to and including it.
    pub total_bytes: u64,
}

/// A snapshot.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The run.
    pub run: i64,
    /// Its folder.
    pub path: String,
    /// When the run was committed (the snapshot follows right after).
    pub created_at: Option<String>,
}

/// The storage figures of a task's repository.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/storage", tag = "storage",
    params(("name" = String, Path, description = "the task")),
    responses((status = 200, body = Storage), (status = 403, description = "administrators only"),
        (status = 404, description = "no such task or no backup yet")))]
async fn storage(
    state: web::Data<AppState>,
    admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::Caller(admin.0);
    let out = blocking(move || {
        let spec = caller.task(&state, &name)?;
        let repo = repo_of(&state, &spec)?;
        let totals = repo.storage_totals().map_err(store_error)?;
        let objects: HashMap<_, _> = repo
            .objects()
            .map_err(store_error)?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let per_account = match repo.latest_run().map_err(store_error)? {
            Some(run) => repo
                .usage_at(run)
                .map_err(store_error)?
                .into_iter()
                .filter_map(|u| {
                    let o = objects.get(&u.object)?;
                    Some(AccountUsage {
                        account: object_segment(o),
                        path: object_path(o, std::slice::from_ref(&u.workload)),
                        workload: u.workload,
                        items: u.items,
                        bytes: u.bytes,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let runs = repo.runs().map_err(store_error)?;
        let per_run = repo
            .growth()
            .map_err(store_error)?
            .into_iter()
            .map(|g| RunUsage {
                run: g.run.0,
                at: g.finished.and_then(rfc3339),
                items: g.versions,
                added_bytes: g.added_bytes,
                total_bytes: g.total_bytes,
            })
            .collect();
        let snapshots = repo
            .snapshots()
            .map_err(store_error)?
            .into_iter()
            .map(|s| {
                let finished = runs.iter().find(|r| r.id == s.run).and_then(|r| r.finished);
                Snapshot {
                    run: s.run.0,
                    path: s.path.display().to_string(),
                    created_at: finished.and_then(rfc3339),
                }
            })
            .collect();
        let filesystem = match backhome_store::fs_kind(&spec.repo) {
            FsKind::Btrfs => "btrfs".to_owned(),
            FsKind::Other(n) => n,
        };
        Ok(Storage {
            repository_bytes: totals.repository_bytes(),
            logical_bytes: totals.logical_bytes,
            unique_bytes: totals.unique_bytes,
            stored_bytes: totals.stored_bytes,
            dedup_ratio: totals.dedup_ratio(),
            compression_ratio: totals.compression_ratio(),
            filesystem,
            per_account,
            per_run,
            snapshots,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}
