//! Restore and export jobs (portal): start, list, follow, cancel, download. A portal user
//! restores and exports only paths of their own accounts, restores only into their own
//! accounts, and sees only the jobs they started (`access.rs` decides).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::OpenApi;

use super::browse::{attachment_disposition, blocking, repo_of, run_at, stream_reader};
use super::{ApiError, AppState, Caller};
use crate::jobs::{ExportFormat, Job, JobKind, JobProgress, JobState};
use crate::restore::{Conflict, RestoreRequest};
use crate::task::TaskSpec;
use backhome_store::{Repository, RunId};

/// The most paths one job may select.
const MAX_PATHS: usize = 1000;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/{name}/restores", web::post().to(start_restore))
        .route("/tasks/{name}/exports", web::post().to(start_export))
        .route("/jobs", web::get().to(list))
        .route("/jobs/{id}", web::get().to(get))
        .route("/jobs/{id}/cancel", web::post().to(cancel))
        .route("/jobs/{id}/download", web::get().to(download));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(start_restore, start_export, list, get, cancel, download),
    components(schemas(
        Job,
        JobKind,
        JobState,
        JobProgress,
        ExportFormat,
        RestoreBody,
        ExportBody
    ))
)]
pub struct Doc;

/// A restore to start.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// A run id or an RFC 3339 time (default: the newest run).
    pub at: Option<serde_json::Value>,
    /// Backup paths: items, folders, workloads or accounts.
    pub paths: Vec<String>,
    /// Restore into this account (user principal name) instead of the original one.
    pub target_user: Option<String>,
    /// Restore under a new folder of this name instead of the original place.
    pub target_folder: Option<String>,
    /// `skip` (default), `overwrite` or `keep-both`.
    pub conflict: Option<String>,
}

/// An export to start.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// A run id or an RFC 3339 time (default: the newest run).
    pub at: Option<serde_json::Value>,
    /// Backup paths.
    pub paths: Vec<String>,
    /// `zip` or `mbox`.
    pub format: ExportFormat,
}

fn at_text(at: Option<&serde_json::Value>) -> Result<Option<String>, ApiError> {
    match at {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "at: {other} is neither a run id nor a time"
        ))),
    }
}

/// The task `name` for a job over `paths`, when the caller may open the task and every path.
fn selected_task(
    state: &AppState,
    caller: &Caller,
    name: &str,
    paths: &[String],
) -> Result<TaskSpec, ApiError> {
    let spec = caller.task(state, name)?;
    check_paths(paths)?;
    for p in paths {
        caller.check_path(state, &spec, p)?;
    }
    Ok(spec)
}

/// The repository and run for `at`, when every one of `paths` exists at that run.
fn selection_at(
    state: &AppState,
    spec: &TaskSpec,
    at: Option<&serde_json::Value>,
    paths: &[String],
) -> Result<(Repository, RunId), ApiError> {
    let repo = repo_of(state, spec)?;
    let run = run_at(&repo, at_text(at)?.as_deref())?;
    for p in paths {
        crate::cli::browse::resolve(&repo, run, p).map_err(super::browse::browse_error)?;
    }
    Ok((repo, run))
}

fn check_paths(paths: &[String]) -> Result<(), ApiError> {
    if paths.is_empty() {
        return Err(ApiError::BadRequest("paths: give at least one path".into()));
    }
    if paths.len() > MAX_PATHS {
        return Err(ApiError::BadRequest(format!(
            "paths: at most {MAX_PATHS} paths per job"
        )));
    }
    Ok(())
}

/// Starts a restore. Portal users: every path and the target account must be theirs.
#[utoipa::path(post, path = "/api/v1/tasks/{name}/restores", tag = "jobs",
    params(("name" = String, Path, description = "the task")), request_body = RestoreBody,
    responses((status = 202, body = Job), (status = 400, description = "bad request"),
        (status = 403, description = "target account not the caller's"), (status = 404, description = "no such task, path or run")))]
async fn start_restore(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<RestoreBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let job = blocking(move || {
        let spec = selected_task(&state, &caller, &name, &body.paths)?;
        let target_user = body.target_user.filter(|u| !u.trim().is_empty());
        if let Some(u) = &target_user {
            caller.check_restore_target(&state, &spec, u)?;
        }
        let conflict: Conflict = body
            .conflict
            .as_deref()
            .unwrap_or("skip")
            .parse()
            .map_err(ApiError::BadRequest)?;
        let target_folder = body.target_folder.filter(|f| !f.is_empty());
        if let Some(f) = &target_folder
            && (f.trim().is_empty() || f.contains('/') || f.contains('\\'))
        {
            return Err(ApiError::BadRequest(format!(
                "target_folder: one name without slashes, not {f:?}"
            )));
        }
        let (repo, run) = selection_at(&state, &spec, body.at.as_ref(), &body.paths)?;
        let creds = state.tasks()?.credentials(&spec.name)?;
        let req = RestoreRequest {
            target_user,
            target_folder,
            conflict,
            ..RestoreRequest::new(run, body.paths)
        };
        Ok(state
            .jobs
            .start_restore(caller.user(), &spec, creds, repo, req))
    })
    .await?;
    Ok(HttpResponse::Accepted().json(job))
}

/// Starts an export (a ZIP, or MBOX of the selection's mail).
#[utoipa::path(post, path = "/api/v1/tasks/{name}/exports", tag = "jobs",
    params(("name" = String, Path, description = "the task")), request_body = ExportBody,
    responses((status = 202, body = Job), (status = 400, description = "bad request"),
        (status = 404, description = "no such task, path or run")))]
async fn start_export(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<ExportBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let job = blocking(move || {
        let spec = selected_task(&state, &caller, &name, &body.paths)?;
        let (repo, run) = selection_at(&state, &spec, body.at.as_ref(), &body.paths)?;
        Ok(state
            .jobs
            .start_export(caller.user(), &spec, repo, run, body.paths, body.format))
    })
    .await?;
    Ok(HttpResponse::Accepted().json(job))
}

/// The job `id` if the caller may see it.
fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    state
        .jobs
        .get(id)
        .filter(|j| caller.may_see_job(state, j))
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// The caller's jobs, newest first (administrators: every job).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, body = Vec<Job>)))]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let jobs = blocking(move || {
        Ok(state
            .jobs
            .list()
            .into_iter()
            .filter(|j| caller.may_see_job(&state, j))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(jobs))
}

/// A job with its progress, and its report when done.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "the job")),
    responses((status = 200, body = Job), (status = 404, description = "no such job")))]
async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = blocking(move || visible(&state, &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(job))
}

/// Cancels a running job (a restore stops between items; items restored stay).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "the job")),
    responses((status = 202, body = Job), (status = 404, description = "no such job"),
        (status = 409, description = "the job is not running")))]
async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = blocking(move || {
        let job = visible(&state, &caller, &id)?;
        if !state.jobs.cancel(&id) {
            return Err(ApiError::Conflict(format!("job {id} is not running")));
        }
        Ok(job)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(job))
}

/// The export file, streamed.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/download", tag = "jobs",
    params(("id" = String, Path, description = "the job")),
    responses((status = 200, description = "the file"), (status = 404, description = "no such job, or no file (any more)")))]
async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let (file, name, ct, len) = blocking(move || {
        visible(&st, &caller, &id)?;
        let (path, name, ct) = st.jobs.download(&id).ok_or_else(|| {
            ApiError::NotFound(format!("job {id} has no file to download (any more)"))
        })?;
        let file = std::fs::File::open(&path)
            .map_err(|e| ApiError::NotFound(format!("the export file is gone: {e}")))?;
        let len = file.metadata().map_err(ApiError::internal)?.len();
        Ok((file, name, ct, len))
    })
    .await?;
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, ct))
        .insert_header((header::CONTENT_DISPOSITION, attachment_disposition(&name)))
        .no_chunking(len);
    Ok(resp.streaming(stream_reader(&state.runtime, file)))
}
