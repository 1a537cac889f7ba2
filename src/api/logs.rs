//! `/api/v1/logs` (admin): the service's log records, filterable by task, run, level, account
//! and text, newest first.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::OpenApi;

use super::{Admin, ApiError, AppState};
use crate::logging::{LogQuery, LogRecord, LogStore, STORE_FILE, log_dir};

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/logs", web::get().to(logs));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(paths(logs), components(schemas(LogRecord)))]
pub struct Doc;

/// The filters.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct LogParams {
    /// Only this task.
    pub task: Option<String>,
    /// Only this run.
    pub run: Option<i64>,
    /// This level and more serious ones: `error`, `warn`, `info`, `debug`, `trace`.
    pub level: Option<String>,
    /// Only this account (UPN, group, site).
    pub object: Option<String>,
    /// Text the message contains.
    pub q: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only records older than this: a record id or an RFC 3339 time.
    pub before: Option<String>,
}

/// Log records, newest first.
#[utoipa::path(get, path = "/api/v1/logs", tag = "logs", params(LogParams),
    responses((status = 200, body = [LogRecord]), (status = 400, description = "a bad filter (named)")))]
async fn logs(
    state: web::Data<AppState>,
    _admin: Admin,
    p: web::Query<LogParams>,
) -> Result<HttpResponse, ApiError> {
    let p = p.into_inner();
    let level = match p.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some(l) => Some(l.parse::<tracing::Level>().map_err(|_| {
            ApiError::BadRequest(format!(
                "level: '{l}' is not error, warn, info, debug or trace"
            ))
        })?),
    };
    let (mut before, mut before_time) = (None, None);
    if let Some(b) = p.before.as_deref().filter(|b| !b.is_empty()) {
        if let Ok(id) = b.parse::<i64>() {
            before = Some(id);
        } else {
            before_time = Some(
                time::OffsetDateTime::parse(b, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        ApiError::BadRequest(format!(
                            "before: '{b}' is neither a record id nor an RFC 3339 time"
                        ))
                    })?,
            );
        }
    }
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let query = LogQuery {
        task: nonempty(p.task),
        run: p.run,
        level,
        object: nonempty(p.object),
        text: nonempty(p.q),
        limit: p.limit.unwrap_or(100),
        before,
        before_time,
    };
    let path = log_dir(&state.config, &state.data_dir).join(STORE_FILE);
    let records = web::block(move || {
        if !path.exists() {
            return Ok(Vec::new());
        }
        LogStore::open(&path)?.query(&query)
    })
    .await?
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(records))
}
