//! Browsing backed-up data (portal): the accounts a caller may open, points in time, listings
//! of any path at any point in time, item details, raw content and mail rendered safely.
//!
//! Every handler takes the task through [`Caller::task`] and every path through
//! [`Caller::check_path`] (`access.rs`), so a portal user reaches only their own accounts.

use std::io::Read;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use backhome_store::{
    NodeKind, ObjectKind, ObjectRecord, Repository, RunId, RunStatus, StoreError,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::OpenApi;

use super::{ApiError, AppState, Caller};
use crate::cli::browse::{self, BrowseError, Entry, Target};
use crate::paths;
use crate::render::{self, MailSummary};
use crate::task::TaskSpec;

/// Messages larger than this are not parsed for the detail view or rendered.
const MAX_RENDER_BYTES: u64 = 64 << 20;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/accounts", web::get().to(my_accounts))
        .route("/tasks/{name}/points", web::get().to(points))
        .route("/tasks/{name}/browse", web::get().to(browse_path))
        .route("/tasks/{name}/item", web::get().to(item))
        .route("/tasks/{name}/item/content", web::get().to(content))
        .route("/tasks/{name}/item/render", web::get().to(render_item));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(my_accounts, points, browse_path, item, content, render_item),
    components(schemas(
        Account,
        Point,
        Listing,
        BrowseEntry,
        ItemDetail,
        VersionView,
        MailSummary,
        render::Attachment
    ))
)]
pub struct Doc;

// ---- helpers shared by the data routes ----

/// An API error for a repository failure: unknown runs and missing repositories are 404, bad
/// queries 400, the rest 500.
pub(super) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownRun(r) => ApiError::NotFound(format!("no backup run {r}")),
        StoreError::NotARepository { .. } => {
            ApiError::NotFound("the task has no backup yet".into())
        }
        StoreError::Invalid(m) => ApiError::BadRequest(m),
        other => ApiError::Internal(other.to_string()),
    }
}

/// An API error for a path that cannot be browsed.
pub(super) fn browse_error(e: BrowseError) -> ApiError {
    match e {
        BrowseError::NotFound { .. } => ApiError::NotFound(e.to_string()),
        BrowseError::BadPath(m) => ApiError::BadRequest(m),
        BrowseError::Store(s) => store_error(s),
    }
}

/// The task's repository (cached handle). Blocking.
pub(super) fn repo_of(state: &AppState, spec: &TaskSpec) -> Result<Repository, ApiError> {
    state.repos.get(spec).map_err(store_error)
}

/// The run `at` names (a run id or an RFC 3339 time), or the newest committed run. Blocking.
pub(super) fn run_at(repo: &Repository, at: Option<&str>) -> Result<RunId, ApiError> {
    match at.map(str::trim).filter(|s| !s.is_empty()) {
        None => repo
            .latest_run()
            .map_err(store_error)?
            .ok_or_else(|| ApiError::NotFound("the task has no backup yet".into())),
        Some(s) => {
            if let Ok(n) = s.parse::<i64>() {
                let committed = repo
                    .runs()
                    .map_err(store_error)?
                    .iter()
                    .any(|r| r.id.0 == n && r.status == RunStatus::Committed);
                return if committed {
                    Ok(RunId(n))
                } else {
                    Err(ApiError::NotFound(format!("no backup run {n}")))
                };
            }
            let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "at: {s:?} is neither a run id nor an RFC 3339 time"
                    ))
                })?;
            repo.run_at(t)
                .map_err(store_error)?
                .ok_or_else(|| ApiError::NotFound(format!("no backup had finished at {s}")))
        }
    }
}

/// RFC 3339 text of a time.
pub(super) fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

pub(super) use crate::cli::browse::object_segment;

/// The backup path of the names `names` (workload root first) of object `o`.
pub(super) fn object_path(o: &ObjectRecord, names: &[String]) -> String {
    let seg = object_segment(o);
    let (top, rest) = match o.info.kind {
        ObjectKind::User => ("users", names),
        ObjectKind::Site => ("sites", names),
        ObjectKind::Group | ObjectKind::Team => {
            if names.first().map(String::as_str) == Some("channels") {
                ("teams", &names[1..])
            } else {
                ("groups", names)
            }
        }
    };
    let mut all = vec![top.to_owned(), seg];
    all.extend(rest.iter().cloned());
    paths::join(&all)
}

/// Runs blocking repository work on the web server's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f).await?
}

// ---- bodies ----

/// An account the caller may open.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Account {
    /// The task.
    pub task: String,
    /// The account's address (user principal name for users).
    pub account: String,
    /// Its backup path.
    pub path: String,
    /// Its display name.
    pub name: String,
    /// `user`, `group`, `site` or `team`.
    pub kind: String,
}

/// A point in time.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The run.
    pub run: i64,
    /// When it finished.
    pub at: Option<String>,
    /// `committed` (only committed runs are points in time).
    pub status: String,
}

/// One entry of a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BrowseEntry {
    /// Display name.
    pub name: String,
    /// Its backup path.
    pub path: String,
    /// `dir` for accounts and top levels, else the kind (`message`, `file`, `mail_folder`, …).
    pub kind: String,
    /// Graph id (empty for top levels).
    pub graph_id: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modified (RFC 3339).
    pub modified: Option<String>,
}

impl From<Entry> for BrowseEntry {
    fn from(e: Entry) -> Self {
        Self {
            name: e.name,
            path: e.path,
            kind: e.kind,
            graph_id: e.graph_id,
            size: e.size,
            modified: e.modified,
        }
    }
}

/// A listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Listing {
    /// The path listed.
    pub path: String,
    /// The run it shows.
    pub run: i64,
    /// What the path held then.
    pub entries: Vec<BrowseEntry>,
}

/// A version of an item.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionView {
    /// The run that first saw it.
    pub run: i64,
    /// When that run finished.
    pub at: Option<String>,
    /// Its size.
    pub size: u64,
}

/// An item's detail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemDetail {
    /// The item.
    pub entry: BrowseEntry,
    /// The run shown.
    pub run: i64,
    /// Its Graph metadata as backed up.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Its versions, oldest first.
    pub versions: Vec<VersionView>,
    /// Mail only: subject, from, to, cc, date, attachments (flattened into the item).
    #[serde(flatten)]
    pub mail: Option<MailSummary>,
}

/// `?path=&at=`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PathQuery {
    /// A backup path.
    pub path: Option<String>,
    /// A run id or an RFC 3339 time (default: the newest run).
    pub at: Option<String>,
    /// `1`: offer the content as a download.
    pub download: Option<String>,
}

// ---- handlers ----

/// The accounts the caller may open: a portal user's mapped accounts in tasks with the portal
/// on; for administrators every account of every task.
#[utoipa::path(get, path = "/api/v1/me/accounts", tag = "browse",
    responses((status = 200, body = Vec<Account>)))]
async fn my_accounts(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let out = blocking(move || {
        let mut out = Vec::new();
        for spec in state.tasks()?.list()? {
            if !caller.is_admin() && !spec.portal {
                continue;
            }
            let repo = match state.repos.get(&spec) {
                Ok(r) => r,
                Err(StoreError::NotARepository { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            };
            for o in repo.objects().map_err(store_error)? {
                if !caller.is_admin()
                    && (o.info.kind != ObjectKind::User
                        || !caller.may_open(&state, &spec, &object_segment(&o)))
                {
                    continue;
                }
                out.push(Account {
                    task: spec.name.clone(),
                    account: object_segment(&o),
                    path: object_path(&o, &[]),
                    name: o.info.name.clone(),
                    kind: o.info.kind.as_str().to_owned(),
                });
            }
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The task's points in time (committed runs), newest first.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/points", tag = "browse",
    params(("name" = String, Path, description = "the task")),
    responses((status = 200, body = Vec<Point>), (status = 404, description = "no such task")))]
async fn points(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let out = blocking(move || {
        let spec = caller.task(&state, &name)?;
        let repo = match state.repos.get(&spec) {
            Ok(r) => r,
            Err(StoreError::NotARepository { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(store_error(e)),
        };
        let mut runs = repo.runs().map_err(store_error)?;
        runs.retain(|r| r.status == RunStatus::Committed);
        runs.reverse();
        Ok(runs
            .into_iter()
            .map(|r| Point {
                run: r.id.0,
                at: r.finished.and_then(rfc3339),
                status: "committed".into(),
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Checks the task and the path for the caller and opens the repository at the point in time.
fn open_at(
    state: &AppState,
    caller: &Caller,
    name: &str,
    path: &str,
    at: Option<&str>,
) -> Result<(TaskSpec, Repository, RunId), ApiError> {
    let spec = caller.task(state, name)?;
    caller.check_path(state, &spec, path)?;
    let repo = repo_of(state, &spec)?;
    let run = run_at(&repo, at)?;
    Ok((spec, repo, run))
}

/// What a path held at a point in time.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/browse", tag = "browse",
    params(("name" = String, Path, description = "the task"), PathQuery),
    responses((status = 200, body = Listing), (status = 404, description = "nothing there")))]
async fn browse_path(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<PathQuery>,
) -> Result<HttpResponse, ApiError> {
    let listing = blocking(move || {
        let path = q.path.clone().unwrap_or_else(|| "/".into());
        let (_, repo, run) = open_at(&state, &caller, &name, &path, q.at.as_deref())?;
        let entries = browse::list(&repo, run, &path, false).map_err(browse_error)?;
        Ok(Listing {
            path,
            run: run.0,
            entries: entries.into_iter().map(BrowseEntry::from).collect(),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(listing))
}

/// Resolves an item (a node, not a top level) at the point in time.
fn resolve_item(
    repo: &Repository,
    run: RunId,
    path: &str,
) -> Result<backhome_store::VersionRecord, ApiError> {
    match browse::resolve(repo, run, path).map_err(browse_error)? {
        Target::Node(v) => Ok(*v),
        Target::Virtual(_) => Err(ApiError::BadRequest(format!(
            "{path} is a folder of accounts, not an item"
        ))),
    }
}

fn read_limited(repo: &Repository, v: &backhome_store::VersionRecord) -> Result<Vec<u8>, ApiError> {
    let Some(c) = v.content else {
        return Err(ApiError::BadRequest("the item has no content".into()));
    };
    if c.size > MAX_RENDER_BYTES {
        return Err(ApiError::Unprocessable {
            code: "too_large",
            message: format!("the message is {} bytes; download it instead", c.size),
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(c.size).unwrap_or(0));
    repo.read_content(c.id)
        .map_err(store_error)?
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::Internal(format!("reading the backup: {e}")))?;
    Ok(buf)
}

/// An item: its entry, metadata and versions; messages add their header summary.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/item", tag = "browse",
    params(("name" = String, Path, description = "the task"), PathQuery),
    responses((status = 200, body = ItemDetail), (status = 404, description = "nothing there")))]
async fn item(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<PathQuery>,
) -> Result<HttpResponse, ApiError> {
    let detail = blocking(move || {
        let path = q.path.clone().unwrap_or_default();
        let (_, repo, run) = open_at(&state, &caller, &name, &path, q.at.as_deref())?;
        let v = resolve_item(&repo, run, &path)?;
        let finished: std::collections::HashMap<i64, OffsetDateTime> = repo
            .runs()
            .map_err(store_error)?
            .into_iter()
            .filter_map(|r| Some((r.id.0, r.finished?)))
            .collect();
        let versions = repo
            .history(v.node)
            .map_err(store_error)?
            .into_iter()
            .map(|h| VersionView {
                run: h.first_run.0,
                at: finished.get(&h.first_run.0).copied().and_then(rfc3339),
                size: h.size,
            })
            .collect();
        let mail = if v.kind == NodeKind::Message
            && v.content.is_some_and(|c| c.size <= MAX_RENDER_BYTES)
        {
            render::summary(&read_limited(&repo, &v)?).ok()
        } else {
            None
        };
        let entry = BrowseEntry {
            name: v.name.clone(),
            path: path.clone(),
            kind: v.kind.as_str().to_owned(),
            graph_id: v.graph_id.clone(),
            size: v.size,
            modified: v.modified.and_then(rfc3339),
        };
        Ok(ItemDetail {
            entry,
            run: run.0,
            metadata: v.metadata,
            versions,
            mail,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// The type an item's content is served as. Nothing that a browser would run (HTML, SVG,
/// scripts) is named by its own type.
fn content_type(kind: NodeKind, name: &str) -> &'static str {
    match kind {
        NodeKind::Message => "message/rfc822",
        NodeKind::Event | NodeKind::Contact | NodeKind::ChannelMessage => "application/json",
        _ => {
            let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            match ext.as_deref() {
                Some("pdf") => "application/pdf",
                Some("png") => "image/png",
                Some("jpg" | "jpeg") => "image/jpeg",
                Some("gif") => "image/gif",
                Some("webp") => "image/webp",
                Some("txt" | "csv" | "log" | "md") => "text/plain; charset=utf-8",
                Some("mp4") => "video/mp4",
                Some("mp3") => "audio/mpeg",
                _ => "application/octet-stream",
            }
        }
    }
}

/// A `Content-Disposition: attachment` value for `name`.
pub(super) fn attachment_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The item's raw content, streamed: MIME for mail, the file as stored, JSON for events and
/// contacts.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/item/content", tag = "browse",
    params(("name" = String, Path, description = "the task"), PathQuery),
    responses((status = 200, description = "the content"), (status = 404, description = "nothing there")))]
async fn content(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<PathQuery>,
) -> Result<HttpResponse, ApiError> {
    let download = matches!(q.download.as_deref(), Some("1" | "true"));
    let st = state.clone();
    let (repo, v) = blocking(move || {
        let path = q.path.clone().unwrap_or_default();
        let (_, repo, run) = open_at(&st, &caller, &name, &path, q.at.as_deref())?;
        let v = resolve_item(&repo, run, &path)?;
        Ok((repo, v))
    })
    .await?;
    let Some(c) = v.content else {
        return Err(ApiError::BadRequest(format!("{} has no content", v.name)));
    };
    let reader = blocking(move || repo.read_content(c.id).map_err(store_error)).await?;
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, content_type(v.kind, &v.name)))
        .insert_header(("Content-Security-Policy", "default-src 'none'; sandbox"));
    if download {
        let file = if v.kind == NodeKind::Message {
            format!("{}.eml", v.name)
        } else {
            v.name.clone()
        };
        resp.insert_header((header::CONTENT_DISPOSITION, attachment_disposition(&file)));
    }
    resp.no_chunking(c.size);
    Ok(resp.streaming(stream_reader(&state.runtime, reader)))
}

/// Streams a blocking reader as a response body: a blocking task reads 64 KiB at a time into a
/// small channel.
pub(super) fn stream_reader<R: Read + Send + 'static>(
    runtime: &tokio::runtime::Handle,
    mut reader: R,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + use<R> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    runtime.spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 << 10];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the backup for a download failed");
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// A message as a sanitised HTML document for a sandboxed frame: no scripts, no remote
/// content, no forms; images it carries inlined.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/item/render", tag = "browse",
    params(("name" = String, Path, description = "the task"), PathQuery),
    responses((status = 200, description = "text/html"), (status = 404, description = "nothing there"),
        (status = 400, description = "not a message")))]
async fn render_item(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<PathQuery>,
) -> Result<HttpResponse, ApiError> {
    let html = blocking(move || {
        let path = q.path.clone().unwrap_or_default();
        let (_, repo, run) = open_at(&state, &caller, &name, &path, q.at.as_deref())?;
        let v = resolve_item(&repo, run, &path)?;
        if v.kind != NodeKind::Message {
            return Err(ApiError::BadRequest(format!("{path} is not a message")));
        }
        let mime = read_limited(&repo, &v)?;
        render::render(&mime).map_err(|e| ApiError::Unprocessable {
            code: "not_a_message",
            message: e.to_string(),
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header(("Content-Security-Policy", render::CSP))
        .body(html))
}
