//! `/api/v1/tasks/{name}/runs…` (admin): start a backup now, cancel it, list runs with their
//! per-item errors, and follow a run's progress as JSON or as Server-Sent Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use serde::Serialize;
use utoipa::OpenApi;

use super::{Admin, ApiError, AppState};
use crate::service::history::object_of;
use crate::service::{LiveRun, ProgressView, RunItemError, RunRecord, RunStatus, StartError};
use crate::task::TaskStore;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tasks/{name}/runs")
            .route(web::get().to(list))
            .route(web::post().to(start)),
    )
    .route("/tasks/{name}/runs/{id}", web::get().to(detail))
    .route("/tasks/{name}/cancel", web::post().to(cancel))
    .route("/tasks/{name}/progress", web::get().to(progress))
    .route("/tasks/{name}/progress/stream", web::get().to(stream));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(start, cancel, list, detail, progress, stream),
    components(schemas(
        RunRecord,
        RunStatus,
        RunItemError,
        RunDetail,
        ProgressView,
        crate::service::LiveState
    ))
)]
pub struct Doc;

/// A run with its item errors.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Items that failed.
    pub errors: Vec<RunItemError>,
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::Busy(_) => ApiError::Conflict(e.to_string()),
        StartError::ShuttingDown => ApiError::Unavailable(e.to_string()),
        StartError::Task(t) => t.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Starts a backup of the task now.
#[utoipa::path(post, path = "/api/v1/tasks/{name}/runs", tag = "runs",
    params(("name" = String, Path, description = "task")),
    responses((status = 202, body = RunRecord), (status = 404, description = "no such task"),
        (status = 409, description = "a backup of the task is running or queued")))]
async fn start(
    state: web::Data<AppState>,
    admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let live = state.runs.start(&name).await.map_err(start_error)?;
    tracing::info!(task = %name, by = %admin.0.user, "backup started by hand");
    Ok(HttpResponse::Accepted().json(live.record()))
}

/// Cancels the task's running backup; its checkpointed work is kept and the next run resumes it.
#[utoipa::path(post, path = "/api/v1/tasks/{name}/cancel", tag = "runs",
    params(("name" = String, Path, description = "task")),
    responses((status = 202, description = "cancelling: `{run}`"), (status = 404, description = "no backup of the task is running")))]
async fn cancel(
    state: web::Data<AppState>,
    admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(live) = state.runs.live(&name) else {
        return Err(ApiError::NotFound(format!(
            "no backup of task '{name}' is running"
        )));
    };
    live.cancel();
    tracing::info!(task = %name, by = %admin.0.user, "backup cancelled by hand");
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "run": live.record().id })))
}

/// A repository run the service has no record of (a command-line run, a relinked repository).
fn from_repository(task: &str, r: &backhome_store::RunInfo) -> Option<RunRecord> {
    let c = &r.counters;
    let n = |k: &str| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let status = match r.status {
        backhome_store::RunStatus::Committed if n("item_errors") > 0 => RunStatus::Partial,
        backhome_store::RunStatus::Committed => RunStatus::Complete,
        backhome_store::RunStatus::Failed => RunStatus::Failed,
        backhome_store::RunStatus::Running => RunStatus::Interrupted,
        backhome_store::RunStatus::Pruned => return None,
    };
    Some(RunRecord {
        id: r.id.0,
        task: task.to_owned(),
        started_at: r.started,
        ended_at: r.finished,
        status,
        items_added: n("items_added"),
        items_changed: n("items_changed"),
        items_deleted: n("items_deleted"),
        bytes_downloaded: n("bytes_downloaded"),
        graph_requests: n("graph_requests"),
        item_errors: n("item_errors"),
        resumed: false,
        throttled: n("throttled"),
        error: None,
    })
}

/// The task's runs: the service's records, the repository's other runs, the live run.
fn all_runs(
    state: &AppState,
    name: &str,
) -> Result<(Vec<RunRecord>, Option<backhome_store::Repository>), ApiError> {
    let spec = TaskStore::open(&state.data_dir)?.get(name)?;
    let mut by_id: BTreeMap<i64, RunRecord> = BTreeMap::new();
    let repo = if spec.repo.join("config.json").exists() {
        backhome_store::Repository::open_read_only(&spec.repo, None).ok()
    } else {
        None
    };
    if let Some(repo) = &repo {
        for r in repo.runs().map_err(ApiError::internal)? {
            if let Some(rec) = from_repository(name, &r) {
                by_id.insert(rec.id, rec);
            }
        }
    }
    let recorded = state
        .runs
        .history()
        .map_err(ApiError::internal)?
        .runs(name)
        .map_err(ApiError::internal)?;
    for r in recorded {
        by_id.insert(r.id, r);
    }
    if let Some(l) = state.runs.live(name) {
        let r = l.record();
        if r.id > 0 {
            by_id.insert(r.id, r);
        }
    }
    Ok((by_id.into_values().rev().collect(), repo))
}

/// The task's runs, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/runs", tag = "runs",
    params(("name" = String, Path, description = "task")),
    responses((status = 200, body = [RunRecord]), (status = 404, description = "no such task")))]
async fn list(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let runs = web::block(move || all_runs(&state, &name).map(|r| r.0)).await??;
    Ok(HttpResponse::Ok().json(runs))
}

/// One run with its per-item errors.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/runs/{id}", tag = "runs",
    params(("name" = String, Path, description = "task"), ("id" = i64, Path, description = "run id")),
    responses((status = 200, body = RunDetail), (status = 404, description = "no such task or run")))]
async fn detail(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    // Parsed here, not by the extractor, so that a portal user gets 403 before any 400.
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("task '{name}' has no run {id}")))?;
    let detail = web::block(move || {
        let (runs, repo) = all_runs(&state, &name)?;
        let run = runs
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("task '{name}' has no run {id}")))?;
        let mut errors = state
            .runs
            .history()
            .map_err(ApiError::internal)?
            .errors(&name, id)
            .map_err(ApiError::internal)?;
        if errors.is_empty()
            && run.item_errors > 0
            && let Some(repo) = repo
            && let Some(r) = repo
                .runs()
                .map_err(ApiError::internal)?
                .into_iter()
                .find(|r| r.id.0 == id)
        {
            errors = r.counters["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            let path = e["path"].as_str().unwrap_or_default().to_owned();
                            RunItemError {
                                object: object_of(&path),
                                path,
                                message: e["reason"].as_str().unwrap_or_default().to_owned(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        Ok::<_, ApiError>(RunDetail { run, errors })
    })
    .await??;
    Ok(HttpResponse::Ok().json(detail))
}

fn live_or_404(state: &AppState, name: &str) -> Result<Arc<LiveRun>, ApiError> {
    state
        .runs
        .live(name)
        .ok_or_else(|| ApiError::NotFound(format!("no backup of task '{name}' is running")))
}

/// The live progress of the task's backup.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/progress", tag = "runs",
    params(("name" = String, Path, description = "task")),
    responses((status = 200, body = ProgressView), (status = 404, description = "no backup of the task is running")))]
async fn progress(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(live_or_404(&state, &name)?.view()))
}

fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The live progress as Server-Sent Events: `progress` every second, `done` with the run at the
/// end.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/progress/stream", tag = "runs",
    params(("name" = String, Path, description = "task")),
    responses((status = 200, description = "`text/event-stream`"), (status = 404, description = "no backup of the task is running")))]
async fn stream(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let live = live_or_404(&state, &name)?;
    let rx = live.subscribe();
    let first = true;
    let s = futures_util::stream::unfold(
        (live, rx, first, false),
        |(live, mut rx, first, finished)| async move {
            if finished {
                return None;
            }
            if !first {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            let done = rx.borrow().clone();
            let (chunk, finished) = match done {
                Some(record) => (event("done", &record), true),
                None => (event("progress", &live.view()), false),
            };
            Some((
                Ok::<_, actix_web::Error>(chunk),
                (live, rx, false, finished),
            ))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(s))
}
