//! Full-text search across a task's catalog (portal), with filters: account, workload, time
//! range and sender. A portal user's search covers only the accounts they may open.

use actix_web::{HttpResponse, web};
use backhome_store::{ObjectId, ObjectKind, SearchFilter};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::OpenApi;

use super::browse::{blocking, object_path, object_segment, repo_of, rfc3339, run_at, store_error};
use super::{ApiError, AppState, Caller};

/// Hits returned when `limit` is absent.
const DEFAULT_LIMIT: usize = 50;
/// The most hits one request returns.
const MAX_LIMIT: usize = 500;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/{name}/search", web::get().to(search));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(paths(search), components(schemas(Hit)))]
pub struct Doc;

/// `?q=&account=&workload=&from=&to=&sender=&at=&limit=`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Words to find (all of them; the last may be the start of a word).
    pub q: Option<String>,
    /// Only this account (its address, as in paths).
    pub account: Option<String>,
    /// Only this workload (`mail`, `calendar`, `contacts`, `onedrive`, a library, `channels`).
    pub workload: Option<String>,
    /// Only items modified at or after this time (RFC 3339 or `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only items modified at or before this time (RFC 3339 or `YYYY-MM-DD`, the whole day).
    pub to: Option<String>,
    /// Only mail from this sender (address or name).
    pub sender: Option<String>,
    /// A run id or an RFC 3339 time (default: the newest run).
    pub at: Option<String>,
    /// At most this many hits (default 50, at most 500).
    pub limit: Option<usize>,
}

/// A search hit.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// Its backup path.
    pub path: String,
    /// Its name.
    pub name: String,
    /// `message`, `file`, `event`, …
    pub kind: String,
    /// The account it belongs to.
    pub account: String,
    /// The workload root (`mail`, `onedrive`, …).
    pub workload: String,
    /// Last modified (RFC 3339).
    pub modified: Option<String>,
    /// The matching text with the match in `[` `]`.
    pub snippet: String,
}

fn parse_time(name: &str, s: &str, end_of_day: bool) -> Result<OffsetDateTime, ApiError> {
    let rfc = time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &rfc) {
        return Ok(t);
    }
    let day = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name}: {s:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"
            ))
        })?;
    let t = if end_of_day {
        day.with_hms(23, 59, 59).map_err(ApiError::internal)?
    } else {
        day.midnight()
    };
    Ok(t.assume_utc())
}

/// Full-text search with filters, best matches first.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/search", tag = "browse",
    params(("name" = String, Path, description = "the task"), SearchQuery),
    responses((status = 200, body = Vec<Hit>), (status = 400, description = "nothing to search for"),
        (status = 404, description = "no such task or account")))]
async fn search(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let hits = blocking(move || {
        let spec = caller.task(&state, &name)?;
        let filter = SearchFilter {
            words: q
                .q
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            sender: q.sender.clone().filter(|s| !s.trim().is_empty()),
            objects: None,
            workload: q.workload.clone().filter(|s| !s.is_empty()),
            from: q
                .from
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_time("from", s, false))
                .transpose()?,
            to: q
                .to
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_time("to", s, true))
                .transpose()?,
            limit: q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        };
        if filter.words.is_empty() && filter.sender.is_none() {
            return Err(ApiError::BadRequest(
                "give words to search for (q) or a sender".into(),
            ));
        }
        let account = q.account.clone().filter(|s| !s.is_empty());
        if let Some(a) = &account
            && !caller.may_open(&state, &spec, a)
        {
            return Err(ApiError::NotFound(format!("no account {a}")));
        }
        let repo = repo_of(&state, &spec)?;
        let run = run_at(&repo, q.at.as_deref())?;
        let objects = repo.objects().map_err(store_error)?;
        let allowed: Vec<_> = objects
            .iter()
            .filter(|o| {
                let seg = object_segment(o);
                account.as_ref().is_none_or(|a| seg.eq_ignore_ascii_case(a))
                    && (caller.is_admin()
                        || (o.info.kind == ObjectKind::User
                            && caller.may_open(&state, &spec, &seg)))
            })
            .collect();
        if allowed.is_empty() {
            return match account {
                Some(a) if caller.is_admin() => Err(ApiError::NotFound(format!("no account {a}"))),
                _ => Ok(Vec::new()),
            };
        }
        let restrict = account.is_some() || !caller.is_admin();
        let filter = SearchFilter {
            objects: restrict.then(|| allowed.iter().map(|o| o.id).collect::<Vec<ObjectId>>()),
            ..filter
        };
        let found = repo.search_filtered(&filter, run).map_err(store_error)?;
        Ok(found
            .into_iter()
            .filter_map(|h| {
                let o = allowed.iter().find(|o| o.id == h.hit.version.object)?;
                let v = &h.hit.version;
                Some(Hit {
                    path: object_path(o, &h.names),
                    name: v.name.clone(),
                    kind: v.kind.as_str().to_owned(),
                    account: object_segment(o),
                    workload: h.names.first().cloned().unwrap_or_default(),
                    modified: v.modified.and_then(rfc3339),
                    snippet: h.hit.snippet,
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(hits))
}
