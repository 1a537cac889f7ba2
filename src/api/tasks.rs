//! `/api/v1/tasks…` (admin): backup tasks — create with a connection test that diagnoses what is
//! wrong, relink a repository found on a shared folder, edit, delete, list with their state, and
//! the wizard's directory search.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use backhome_graph::{AuthError, Call, ConfigError, CredentialError, Error as GraphErr};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use utoipa::OpenApi;

use super::{Admin, ApiError, AppState};
use crate::service::{RunManager, label, scheduler};
use crate::task::{AutoDiscovery, Credentials, Retention, Schedule, Service, TaskSpec, TaskStore};

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tasks")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .route("/tasks/test-connection", web::post().to(test_connection))
    .route("/tasks/relink", web::post().to(relink))
    .route("/directory", web::post().to(directory))
    .route("/repositories", web::get().to(repositories))
    .service(
        web::resource("/tasks/{name}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .route("/tasks/{name}/accounts", web::get().to(accounts));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        create,
        test_connection,
        relink,
        directory,
        repositories,
        get,
        patch,
        delete,
        accounts
    ),
    components(schemas(
        Connection,
        CertificateInput,
        TaskFields,
        TaskCreate,
        Relink,
        TestResult,
        DirectoryQuery,
        DirectoryEntry,
        RepositoryFound,
        AccountView,
        CertificateView
    ))
)]
pub struct Doc;

/// Where and how to reach a tenant.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Connection {
    /// `global`, `usgov`, `usgovdod`, `china` or `custom`.
    #[serde(default = "global")]
    pub cloud: String,
    /// Login endpoint (required for `custom`).
    #[serde(default)]
    pub login_endpoint: Option<String>,
    /// Graph endpoint (required for `custom`).
    #[serde(default)]
    pub graph_endpoint: Option<String>,
    /// Directory (tenant) id or domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// The application's certificate.
    pub certificate: CertificateInput,
}

fn global() -> String {
    "global".into()
}

/// A certificate: an uploaded `.pfx` with its password, or the result of an app registration.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CertificateInput {
    /// An uploaded PKCS#12 file.
    Pfx {
        /// The `.pfx` bytes, base64.
        pfx_base64: String,
        /// Its password.
        password: String,
    },
    /// A registration made by this service.
    Registration {
        /// The registration's id.
        registration_id: String,
    },
}

/// The task fields of a create or edit (all optional on edit). Bodies are read field by field
/// (unknown fields are refused by name); this type describes them in the OpenAPI document.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TaskFields {
    /// Admin e-mail for notices.
    pub admin_email: Option<String>,
    /// Workloads.
    #[schema(value_type = Option<Vec<String>>)]
    pub services: Option<BTreeSet<Service>>,
    /// Only these users (empty: all).
    pub include_users: Option<Vec<String>>,
    /// Never these users.
    pub exclude_users: Option<Vec<String>>,
    /// Only these groups.
    pub include_groups: Option<Vec<String>>,
    /// Never these groups.
    pub exclude_groups: Option<Vec<String>>,
    /// Only these sites.
    pub include_sites: Option<Vec<String>>,
    /// Never these sites.
    pub exclude_sites: Option<Vec<String>>,
    /// `{users, groups, sites}`.
    #[schema(value_type = Option<Object>)]
    pub auto_discovery: Option<AutoDiscovery>,
    /// `{kind: "manual"}`, `{kind: "continuous"}`, `{kind: "fixed", days, times}`.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Schedule>,
    /// `{kind: "keep_all"}`, `{kind: "days", days}`, `{kind: "runs", runs}`, `{kind: "gfs", …}`.
    #[schema(value_type = Option<Object>)]
    pub retention: Option<Retention>,
    /// Portal on or off.
    pub portal: Option<bool>,
}

/// A new task: a connection, a name, the task fields and where its repository goes (describes the
/// body in the OpenAPI document).
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TaskCreate {
    /// Unique name.
    pub name: String,
    /// The connection.
    #[serde(flatten)]
    pub connection: Connection,
    /// The fields.
    #[serde(flatten)]
    pub fields: TaskFields,
    /// Repository folder (default: under the configured repository root).
    #[schema(value_type = Option<String>)]
    pub repo: Option<PathBuf>,
}

/// A relink: a connection, a name and the repository to attach.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Relink {
    /// The new task's name.
    pub name: String,
    /// The repository folder.
    #[schema(value_type = String)]
    pub repo: PathBuf,
    /// The connection.
    #[serde(flatten)]
    pub connection: Connection,
}

/// A successful connection test.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// Always true (failures answer 422).
    pub ok: bool,
    /// What was checked.
    pub diagnosis: String,
    /// One user of the tenant, as listed.
    #[schema(value_type = Option<Object>)]
    pub sample_user: Option<Value>,
}

/// A directory search.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DirectoryQuery {
    /// The connection.
    #[serde(flatten)]
    pub connection: Connection,
    /// `users`, `groups` or `sites`.
    pub kind: String,
    /// Start of a name or address (empty: the first ones).
    #[serde(default)]
    pub q: String,
    /// At most this many (default 20, at most 100).
    #[serde(default)]
    pub top: Option<u32>,
}

/// A directory search hit.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryEntry {
    /// Graph id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// UPN, mail address or site URL.
    pub address: Option<String>,
}

/// A repository found under a folder.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RepositoryFound {
    /// Its folder.
    pub path: String,
    /// The tenant its data came from.
    pub tenant_id: String,
    /// The task name it was written by.
    pub label_task: String,
    /// Committed runs.
    pub runs: usize,
    /// When its newest run ended.
    pub last_run_at: Option<String>,
    /// The task using it now, if any.
    pub task: Option<String>,
}

/// A protected account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Its backup path.
    pub path: String,
    /// `user`, `group`, `site`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// UPN, mail or URL.
    pub address: Option<String>,
    /// Items at the newest run.
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The task's certificate (never the key or the password).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// Subject.
    pub subject: String,
    /// SHA-1 thumbprint (hex), as the Entra admin center shows it.
    pub thumbprint: String,
    /// End of validity.
    pub not_after: String,
    /// Days until it expires (negative: expired).
    pub expires_in_days: i64,
    /// A warning when it expires within 30 days or has expired.
    pub warning: Option<String>,
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: message.into(),
    }
}

/// A diagnosis for an administrator from a Graph client error.
#[must_use]
pub fn diagnose(e: &GraphErr) -> ApiError {
    let code = match e {
        GraphErr::Credential(CredentialError::WrongPassword) => "bad_password",
        GraphErr::Credential(CredentialError::Expired { .. }) => "expired_certificate",
        GraphErr::Credential(CredentialError::NotYetValid { .. }) => "certificate_not_yet_valid",
        GraphErr::Credential(_) => "bad_certificate",
        GraphErr::Auth(AuthError::AppNotFound { .. }) => "unknown_app",
        GraphErr::Auth(AuthError::TenantNotFound { .. }) => "wrong_tenant",
        GraphErr::Auth(AuthError::CertificateRejected { .. }) => "certificate_rejected",
        GraphErr::Auth(AuthError::AppDisabled { .. }) => "app_disabled",
        GraphErr::Auth(AuthError::ClockSkew { .. }) => "clock_skew",
        GraphErr::Auth(AuthError::WrongCloud { .. }) => "wrong_cloud",
        GraphErr::Auth(AuthError::ConditionalAccess) => "conditional_access",
        GraphErr::Auth(AuthError::Unreachable { .. })
        | GraphErr::Transport { .. }
        | GraphErr::Timeout { .. } => "unreachable",
        GraphErr::Auth(AuthError::Temporary { .. }) => "sign_in_unavailable",
        GraphErr::Auth(_) => "sign_in_refused",
        GraphErr::Config(ConfigError::BadTenant(_)) => "wrong_tenant",
        GraphErr::Config(ConfigError::BadAppId(_)) => "unknown_app",
        GraphErr::Config(_) => "bad_endpoint",
        GraphErr::ConsentMissing { .. } => "no_consent",
        GraphErr::Graph(g) if matches!(g.class(), backhome_graph::ErrorClass::AccessDenied) => {
            "no_consent"
        }
        _ => "graph_error",
    };
    unprocessable(code, e.to_string())
}

impl Connection {
    fn credentials(&self) -> Result<Credentials, ApiError> {
        match &self.certificate {
            CertificateInput::Pfx {
                pfx_base64,
                password,
            } => {
                let pfx = base64::engine::general_purpose::STANDARD
                    .decode(pfx_base64.trim())
                    .map_err(|_| {
                        unprocessable(
                            "bad_certificate",
                            "certificate.pfx_base64 is not base64; upload the .pfx file again",
                        )
                    })?;
                Ok(Credentials {
                    pfx,
                    password: password.clone(),
                })
            }
            CertificateInput::Registration { registration_id } => {
                let id = uuid::Uuid::parse_str(registration_id.trim()).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "certificate.registration_id: '{registration_id}' is not a registration id"
                    ))
                })?;
                Ok(super::register::registration_credentials(id)?.0)
            }
        }
    }

    /// Puts the connection into `spec`.
    fn apply(&self, spec: &mut TaskSpec) {
        spec.cloud = self.cloud.to_ascii_lowercase();
        spec.login_endpoint.clone_from(&self.login_endpoint);
        spec.graph_endpoint.clone_from(&self.graph_endpoint);
        if spec.login_endpoint.is_some() && spec.graph_endpoint.is_some() {
            "custom".clone_into(&mut spec.cloud);
        }
        spec.tenant_id = self.tenant_id.trim().to_owned();
        spec.app_id = self.app_id.trim().to_owned();
    }
}

/// A Graph client for the wizard: the task's client, but giving up after a few quick retries so
/// that a wrong endpoint or a dead network is diagnosed in seconds, not after minutes of backoff.
fn interactive_client(
    spec: &TaskSpec,
    creds: &Credentials,
) -> Result<backhome_graph::Client, GraphErr> {
    let cloud = match (&spec.login_endpoint, &spec.graph_endpoint) {
        (Some(login), Some(graph)) => backhome_graph::Cloud::custom(login, graph)?,
        _ => spec.cloud.parse::<backhome_graph::Cloud>()?,
    };
    let mut config =
        backhome_graph::ClientConfig::new(cloud, spec.tenant_id.clone(), spec.app_id.clone());
    config.extra_ca_pem.clone_from(&spec.ca_cert);
    config.retry.max_attempts = 3;
    config.retry.max_delay = std::time::Duration::from_secs(2);
    config.retry.max_total_wait = std::time::Duration::from_secs(10);
    config.timeouts.connect = std::time::Duration::from_secs(10);
    let credential = backhome_graph::Credential::from_pkcs12_der(&creds.pfx, &creds.password)?;
    backhome_graph::Client::new(config, credential)
}

/// Signs in, checks consent and lists one user: the connection works, or a 422 diagnosis.
///
/// # Errors
/// A 422 with the diagnosis.
pub async fn check_connection(
    spec: &TaskSpec,
    creds: &Credentials,
) -> Result<Option<Value>, ApiError> {
    let client = interactive_client(spec, creds).map_err(|e| diagnose(&e))?;
    let token = client.sign_in().await.map_err(|e| diagnose(&e))?;
    if token.roles.as_ref().is_some_and(Vec::is_empty) {
        return Err(unprocessable(
            "no_consent",
            "the application signs in but has no application permissions: an administrator has \
             not granted admin consent for its Microsoft Graph permissions (Entra admin center → \
             App registrations → API permissions → Grant admin consent)",
        ));
    }
    let page: Value = client
        .json(Call::get(
            "/users?$top=1&$select=id,displayName,userPrincipalName,mail",
        ))
        .await
        .map_err(|e| diagnose(&e))?;
    Ok(page["value"].get(0).cloned())
}

fn spec_error(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Keys a create or edit may carry besides the task fields.
const CONNECTION_KEYS: [&str; 6] = [
    "cloud",
    "login_endpoint",
    "graph_endpoint",
    "tenant_id",
    "app_id",
    "certificate",
];
const FIELD_KEYS: [&str; 12] = [
    "admin_email",
    "services",
    "include_users",
    "exclude_users",
    "include_groups",
    "exclude_groups",
    "include_sites",
    "exclude_sites",
    "auto_discovery",
    "schedule",
    "retention",
    "portal",
];

/// Applies the task fields present in `body` to `spec`; unknown keys are refused by name.
fn apply_fields(
    spec: &TaskSpec,
    body: &Map<String, Value>,
    extra: &[&str],
) -> Result<TaskSpec, ApiError> {
    let mut json = serde_json::to_value(spec).map_err(ApiError::internal)?;
    for (k, v) in body {
        if FIELD_KEYS.contains(&k.as_str()) {
            json[k] = v.clone();
        } else if !extra.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!("{k}: unknown task field")));
        }
    }
    let spec: TaskSpec = serde_json::from_value(json)
        .map_err(|e| ApiError::BadRequest(format!("bad task field: {e}")))?;
    spec.validate().map_err(spec_error)?;
    Ok(spec)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone())
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))
}

/// The certificate summary of stored credentials.
fn certificate_view(creds: &Credentials, now: OffsetDateTime) -> Option<CertificateView> {
    let c =
        backhome_graph::Credential::from_pkcs12_der_unchecked(&creds.pfx, &creds.password).ok()?;
    let not_after = c.not_after();
    let days = (not_after - now).whole_days();
    let stamp = not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let warning = if not_after <= now {
        Some(format!(
            "the certificate expired on {stamp}; backups fail until it is renewed"
        ))
    } else if days < 30 {
        Some(format!(
            "the certificate expires in {days} days ({stamp}); renew it"
        ))
    } else {
        None
    };
    Some(CertificateView {
        subject: c.subject().to_owned(),
        thumbprint: c.thumbprint_hex(),
        not_after: stamp,
        expires_in_days: days,
        warning,
    })
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// A task view (blocking: reads the task database, the history and the repository).
fn view(runs: &RunManager, store: &TaskStore, name: &str) -> Result<Value, ApiError> {
    let spec = store.get(name)?;
    let creds = store.credentials(name)?;
    let clock = runs.clock();
    let now = clock.now();
    let live = runs.live(name);
    let (last, last_slot) = {
        let h = runs.history().map_err(ApiError::internal)?;
        (
            h.last(name).map_err(ApiError::internal)?,
            h.last_slot(name).map_err(ApiError::internal)?,
        )
    };
    let last_run = match &live {
        Some(l) => Some(l.record()),
        None => last.clone(),
    };
    let state = match &live {
        Some(l) => match l.state() {
            crate::service::LiveState::Queued => "queued",
            crate::service::LiveState::Running => "running",
        },
        None => "idle",
    };
    let next = scheduler::next_run(
        &spec.schedule,
        last.as_ref(),
        last_slot,
        live.is_some(),
        now,
        clock.local_offset(),
    )
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let accounts = if spec.repo.join("config.json").exists() {
        backhome_store::Repository::open_read_only(&spec.repo, None)
            .and_then(|r| r.objects())
            .map_or(0, |o| o.len())
    } else {
        0
    };
    let mut v = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    let m = v
        .as_object_mut()
        .ok_or_else(|| ApiError::Internal("task is not an object".into()))?;
    m.insert("certificate".into(), json!(certificate_view(&creds, now)));
    m.insert("state".into(), json!(state));
    m.insert("last_run".into(), json!(last_run));
    m.insert("next_run".into(), json!(next));
    m.insert("accounts".into(), json!(accounts));
    m.insert("repository_bytes".into(), json!(dir_size(&spec.repo)));
    Ok(v)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f).await?
}

/// Runs `f`, which changes task definitions, off the async workers, then drops the cached
/// definitions that access checks read, whether or not `f` succeeded.
async fn change_tasks<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let changed = blocking(f).await;
    state.forget_tasks();
    changed
}

/// Starts the task's fixed schedule from now, so slots before this moment are not "missed".
fn schedule_from_now(runs: &crate::service::RunManager, task: &str) -> Result<(), ApiError> {
    runs.history()
        .map_err(ApiError::internal)?
        .set_last_slot(task, runs.clock().now())
        .map_err(ApiError::internal)
}

/// Every task, with its state, last and next run and certificate expiry.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    responses((status = 200, description = "task views", body = [Object])))]
async fn list(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let (dir, runs) = (state.data_dir.clone(), Arc::clone(&state.runs));
    let views = blocking(move || {
        let store = TaskStore::open(&dir)?;
        store
            .list()?
            .iter()
            .map(|t| view(&runs, &store, &t.name))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(HttpResponse::Ok().json(views))
}

async fn one(state: &AppState, name: String) -> Result<Value, ApiError> {
    let (dir, runs) = (state.data_dir.clone(), Arc::clone(&state.runs));
    blocking(move || view(&runs, &TaskStore::open(&dir)?, &name)).await
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "task")),
    responses((status = 200, description = "task view", body = Object), (status = 404, description = "no such task")))]
async fn get(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(one(&state, name.into_inner()).await?))
}

/// Tests a connection: certificate, sign-in, consent, and listing one user.
#[utoipa::path(post, path = "/api/v1/tasks/test-connection", tag = "tasks", request_body = Connection,
    responses((status = 200, body = TestResult),
        (status = 422, description = "`bad_password`, `bad_certificate`, `expired_certificate`, `no_consent`, `wrong_tenant`, `unknown_app`, `unreachable`, …")))]
async fn test_connection(
    _admin: Admin,
    body: web::Json<Connection>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.credentials()?;
    let mut spec = TaskSpec::new("test", "", "", PathBuf::new());
    body.apply(&mut spec);
    spec.validate().map_err(spec_error)?;
    let user = check_connection(&spec, &creds).await?;
    let who = user
        .as_ref()
        .and_then(|u| u["userPrincipalName"].as_str())
        .unwrap_or("no user listed")
        .to_owned();
    Ok(HttpResponse::Ok().json(TestResult {
        ok: true,
        diagnosis: format!(
            "the certificate is valid, the application signed in to tenant {} with consent, and \
             Microsoft Graph listed a user ({who})",
            spec.tenant_id
        ),
        sample_user: user,
    }))
}

fn repo_root(state: &AppState) -> PathBuf {
    state
        .config
        .repository_root
        .clone()
        .unwrap_or_else(|| state.data_dir.join("repositories"))
}

/// Creates a task: tests the connection, creates the repository and labels it.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = TaskCreate,
    responses((status = 201, description = "task view", body = Object), (status = 400, description = "a field is wrong (named)"),
        (status = 409, description = "the name is taken"), (status = 422, description = "the connection test failed (diagnosis)")))]
async fn create(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let map = object(&body)?;
    let name = map
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("name: is required".into()))?
        .to_owned();
    let conn: Connection = parse(&body)?;
    let creds = conn.credentials()?;
    let repo = match map.get("repo") {
        Some(Value::String(r)) if !r.trim().is_empty() => PathBuf::from(r),
        Some(Value::Null) | None => repo_root(&state).join(&name),
        Some(_) => return Err(ApiError::BadRequest("repo: must be a folder path".into())),
    };
    if !repo.is_absolute() {
        return Err(ApiError::BadRequest(
            "repo: must be an absolute path".into(),
        ));
    }
    let mut base = TaskSpec::new(name.clone(), "", "", repo.clone());
    conn.apply(&mut base);
    let spec = apply_fields(
        &base,
        map,
        &[&CONNECTION_KEYS[..], &["name", "repo"][..]].concat(),
    )?;
    let dir = state.data_dir.clone();
    let n = name.clone();
    blocking(move || match TaskStore::open(&dir)?.get(&n) {
        Ok(_) => Err(ApiError::Conflict(format!(
            "a task named '{n}' exists already"
        ))),
        Err(crate::task::TaskStoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    })
    .await?;
    if repo.join("config.json").exists() {
        return Err(ApiError::Conflict(format!(
            "{} already holds a repository; relink it instead (POST /api/v1/tasks/relink)",
            repo.display()
        )));
    }
    check_connection(&spec, &creds).await?;
    let (dir, runs, s) = (
        state.data_dir.clone(),
        Arc::clone(&state.runs),
        spec.clone(),
    );
    change_tasks(&state, move || {
        if let Some(parent) = s.repo.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                ApiError::BadRequest(format!("repo: cannot create {}: {e}", parent.display()))
            })?;
        }
        backhome_store::Repository::create(&s.repo, &backhome_store::CreateOptions::default())
            .map_err(|e| ApiError::BadRequest(format!("repo: {e}")))?;
        label::write(&s).map_err(ApiError::internal)?;
        TaskStore::open(&dir)?.create(&s, &creds)?;
        schedule_from_now(&runs, &s.name)?;
        Ok(())
    })
    .await?;
    tracing::info!(task = %name, repo = %spec.repo.display(), "task created");
    Ok(HttpResponse::Created().json(one(&state, name).await?))
}

/// Edits a task: any task fields, the connection, a new certificate. A changed connection is
/// tested first.
#[utoipa::path(patch, path = "/api/v1/tasks/{name}", tag = "tasks", request_body = TaskFields,
    params(("name" = String, Path, description = "task")),
    responses((status = 200, description = "task view", body = Object), (status = 400, description = "a field is wrong (named)"),
        (status = 404, description = "no such task"), (status = 422, description = "the new connection does not work")))]
async fn patch(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let map = object(&body)?.clone();
    for fixed in ["name", "repo"] {
        if map.contains_key(fixed) {
            return Err(ApiError::BadRequest(format!(
                "{fixed}: cannot be changed; create or relink a task instead"
            )));
        }
    }
    let (dir, n) = (state.data_dir.clone(), name.clone());
    let (old, old_creds) = blocking(move || {
        let store = TaskStore::open(&dir)?;
        Ok((store.get(&n)?, store.credentials(&n)?))
    })
    .await?;
    let mut base = old.clone();
    for k in &CONNECTION_KEYS[..5] {
        if let Some(v) = map.get(*k) {
            let mut j = serde_json::to_value(&base).map_err(ApiError::internal)?;
            j[*k] = v.clone();
            base =
                serde_json::from_value(j).map_err(|e| ApiError::BadRequest(format!("{k}: {e}")))?;
        }
    }
    let new_creds = match map.get("certificate") {
        Some(c) => Some(
            Connection {
                cloud: String::new(),
                login_endpoint: None,
                graph_endpoint: None,
                tenant_id: String::new(),
                app_id: String::new(),
                certificate: serde_json::from_value(c.clone())
                    .map_err(|e| ApiError::BadRequest(format!("certificate: {e}")))?,
            }
            .credentials()?,
        ),
        None => None,
    };
    let spec = apply_fields(&base, &map, &CONNECTION_KEYS)?;
    let connection_changed = new_creds.is_some()
        || (
            spec.cloud.as_str(),
            &spec.login_endpoint,
            &spec.graph_endpoint,
            &spec.tenant_id,
            &spec.app_id,
        ) != (
            old.cloud.as_str(),
            &old.login_endpoint,
            &old.graph_endpoint,
            &old.tenant_id,
            &old.app_id,
        );
    if connection_changed {
        check_connection(&spec, new_creds.as_ref().unwrap_or(&old_creds)).await?;
    }
    let (dir, runs, s) = (
        state.data_dir.clone(),
        Arc::clone(&state.runs),
        spec.clone(),
    );
    let schedule_changed = spec.schedule != old.schedule;
    change_tasks(&state, move || {
        TaskStore::open(&dir)?.update(&s, new_creds.as_ref())?;
        if s.repo.join("config.json").exists()
            && let Err(e) = label::write(&s)
        {
            tracing::warn!(task = %s.name, error = %e, "task label not updated");
        }
        if schedule_changed {
            schedule_from_now(&runs, &s.name)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(task = %name, "task edited");
    Ok(HttpResponse::Ok().json(one(&state, name).await?))
}

/// `?delete_data=`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Also delete the repository (default false).
    #[serde(default)]
    pub delete_data: bool,
}

/// Deletes a task; its repository too only with `delete_data=true`.
#[utoipa::path(delete, path = "/api/v1/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "task"), DeleteQuery),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such task"),
        (status = 409, description = "a backup is running: cancel it first")))]
async fn delete(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if state.runs.live(&name).is_some() {
        return Err(ApiError::Conflict(format!(
            "a backup of task '{name}' is running or queued; cancel it first"
        )));
    }
    let (dir, runs, n, delete_data) = (
        state.data_dir.clone(),
        Arc::clone(&state.runs),
        name.clone(),
        q.delete_data,
    );
    change_tasks(&state, move || {
        let store = TaskStore::open(&dir)?;
        let spec = store.get(&n)?;
        store.delete(&n)?;
        runs.history()
            .map_err(ApiError::internal)?
            .forget(&n)
            .map_err(ApiError::internal)?;
        if delete_data {
            remove_repository(&spec.repo)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(task = %name, delete_data = q.delete_data, "task deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a repository and its snapshot folder.
fn remove_repository(repo: &Path) -> Result<(), ApiError> {
    let mut snaps = repo.as_os_str().to_owned();
    snaps.push(".snapshots");
    let snaps = PathBuf::from(snaps);
    for dir in [repo, snaps.as_path()] {
        if !dir.exists() {
            continue;
        }
        if backhome_store::is_subvolume(dir) || dir == snaps.as_path() {
            // Read-only btrfs snapshots cannot be removed with plain file deletion.
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if backhome_store::is_subvolume(&e.path()) {
                        let _ = std::process::Command::new("btrfs")
                            .args(["subvolume", "delete"])
                            .arg(e.path())
                            .status();
                    }
                }
            }
        }
        std::fs::remove_dir_all(dir).map_err(|e| {
            ApiError::Internal(format!(
                "the task was deleted but {} could not be removed: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// Attaches an existing repository as a task again, keeping its history and delta tokens.
#[utoipa::path(post, path = "/api/v1/tasks/relink", tag = "tasks", request_body = Relink,
    responses((status = 201, description = "task view", body = Object),
        (status = 409, description = "the name is taken, or a task uses the repository"),
        (status = 422, description = "`other_tenant`, `not_a_repository`, `no_label`, or a connection diagnosis")))]
async fn relink(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<Relink>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let creds = body.connection.credentials()?;
    let repo = body.repo.clone();
    let (dir, r) = (state.data_dir.clone(), repo.clone());
    let (found, users) = blocking(move || {
        if !r.join("config.json").is_file() {
            return Err(unprocessable(
                "not_a_repository",
                format!("{} is not a Backhome repository", r.display()),
            ));
        }
        let label = label::read(&r)
            .map_err(|e| unprocessable("no_label", e.to_string()))?
            .ok_or_else(|| {
                unprocessable(
                    "no_label",
                    format!(
                        "{} has no task label ({}); it cannot be checked against the tenant",
                        r.display(),
                        label::FILE_NAME
                    ),
                )
            })?;
        let users: Vec<String> = TaskStore::open(&dir)?
            .list()?
            .into_iter()
            .filter(|t| same_path(&t.repo, &r))
            .map(|t| t.name)
            .collect();
        Ok((label, users))
    })
    .await?;
    if let Some(t) = users.first() {
        return Err(ApiError::Conflict(format!(
            "task '{t}' already uses {}",
            repo.display()
        )));
    }
    if !found
        .tenant_id
        .trim()
        .eq_ignore_ascii_case(body.connection.tenant_id.trim())
    {
        return Err(unprocessable(
            "other_tenant",
            format!(
                "{} holds backups of tenant {}, not of tenant {}",
                repo.display(),
                found.tenant_id,
                body.connection.tenant_id
            ),
        ));
    }
    let mut spec = found.task;
    spec.name = body.name.clone();
    spec.repo = repo;
    body.connection.apply(&mut spec);
    spec.validate().map_err(spec_error)?;
    check_connection(&spec, &creds).await?;
    let (dir, runs, s) = (
        state.data_dir.clone(),
        Arc::clone(&state.runs),
        spec.clone(),
    );
    change_tasks(&state, move || {
        TaskStore::open(&dir)?.create(&s, &creds)?;
        label::write(&s).map_err(ApiError::internal)?;
        schedule_from_now(&runs, &s.name)?;
        Ok(())
    })
    .await?;
    tracing::info!(task = %spec.name, repo = %spec.repo.display(), "repository relinked");
    Ok(HttpResponse::Created().json(one(&state, spec.name).await?))
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `?root=`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct RootQuery {
    /// The folder to search (a shared folder).
    pub root: String,
}

/// Repositories under a folder (three levels deep), with the task using each.
#[utoipa::path(get, path = "/api/v1/repositories", tag = "tasks", params(RootQuery),
    responses((status = 200, body = [RepositoryFound]), (status = 400, description = "not a folder")))]
async fn repositories(
    state: web::Data<AppState>,
    _admin: Admin,
    q: web::Query<RootQuery>,
) -> Result<HttpResponse, ApiError> {
    let root = PathBuf::from(&q.root);
    if !root.is_dir() {
        return Err(ApiError::BadRequest(format!(
            "root: {} is not a folder",
            root.display()
        )));
    }
    let dir = state.data_dir.clone();
    let found = blocking(move || {
        let tasks = TaskStore::open(&dir)?.list()?;
        let mut out = Vec::new();
        for (path, l) in label::find(&root, 3) {
            let runs = backhome_store::Repository::open_read_only(&path, None)
                .and_then(|r| r.runs())
                .unwrap_or_default();
            let committed: Vec<_> = runs
                .iter()
                .filter(|r| r.status == backhome_store::RunStatus::Committed)
                .collect();
            out.push(RepositoryFound {
                path: path.display().to_string(),
                tenant_id: l.tenant_id,
                label_task: l.task.name,
                runs: committed.len(),
                last_run_at: committed
                    .iter()
                    .filter_map(|r| r.finished)
                    .max()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
                task: tasks
                    .iter()
                    .find(|t| same_path(&t.repo, &path))
                    .map(|t| t.name.clone()),
            });
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(found))
}

/// Searches the tenant's users, groups or sites for the wizard's include/exclude pickers.
#[utoipa::path(post, path = "/api/v1/directory", tag = "tasks", request_body = DirectoryQuery,
    responses((status = 200, body = [DirectoryEntry]), (status = 422, description = "the connection does not work (diagnosis)")))]
async fn directory(
    _admin: Admin,
    body: web::Json<DirectoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.connection.credentials()?;
    let mut spec = TaskSpec::new("directory", "", "", PathBuf::new());
    body.connection.apply(&mut spec);
    spec.validate().map_err(spec_error)?;
    let top = body.top.unwrap_or(20).clamp(1, 100);
    let q = body.q.trim().replace('\'', "''");
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (url, name_key, address_key) = match body.kind.as_str() {
        "users" => {
            let filter = (!q.is_empty()).then(|| {
                format!("startswith(displayName,'{q}') or startswith(userPrincipalName,'{q}') or startswith(mail,'{q}')")
            });
            (
                format!(
                    "/users?$select=id,displayName,userPrincipalName,mail&$top={top}{}",
                    filter
                        .map(|f| format!("&$filter={}", enc(&f)))
                        .unwrap_or_default()
                ),
                "displayName",
                "userPrincipalName",
            )
        }
        "groups" => {
            let filter = (!q.is_empty()).then(|| {
                format!("startswith(displayName,'{q}') or startswith(mail,'{q}') or startswith(mailNickname,'{q}')")
            });
            (
                format!(
                    "/groups?$select=id,displayName,mail,mailNickname&$top={top}{}",
                    filter
                        .map(|f| format!("&$filter={}", enc(&f)))
                        .unwrap_or_default()
                ),
                "displayName",
                "mail",
            )
        }
        "sites" => (
            format!(
                "/sites?search={}&$select=id,displayName,name,webUrl&$top={top}",
                enc(if q.is_empty() { "*" } else { body.q.trim() })
            ),
            "displayName",
            "webUrl",
        ),
        other => {
            return Err(ApiError::BadRequest(format!(
                "kind: '{other}' is not users, groups or sites"
            )));
        }
    };
    let client = interactive_client(&spec, &creds).map_err(|e| diagnose(&e))?;
    let page: Value = client
        .json(Call::get(url))
        .await
        .map_err(|e| diagnose(&e))?;
    let hits: Vec<DirectoryEntry> = page["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(top as usize)
                .map(|v| DirectoryEntry {
                    id: v["id"].as_str().unwrap_or_default().to_owned(),
                    name: v[name_key]
                        .as_str()
                        .or_else(|| v["name"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    address: v[address_key].as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(hits))
}

/// Item kinds counted as items of an account.
const ITEM_KINDS: [&str; 5] = ["message", "event", "contact", "file", "channel_message"];

/// The task's protected accounts with their items and bytes at the newest run.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/accounts", tag = "tasks",
    params(("name" = String, Path, description = "task")),
    responses((status = 200, body = [AccountView]), (status = 404, description = "no such task")))]
async fn accounts(
    state: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (dir, name) = (state.data_dir.clone(), name.into_inner());
    let out = blocking(move || {
        let spec = TaskStore::open(&dir)?.get(&name)?;
        if !spec.repo.join("config.json").exists() {
            return Ok(Vec::new());
        }
        let repo = backhome_store::Repository::open_read_only(&spec.repo, None)
            .map_err(ApiError::internal)?;
        let Some(run) = repo.latest_run().map_err(ApiError::internal)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for top in ["users", "groups", "sites"] {
            let objects = match crate::cli::browse::list(&repo, run, &format!("/{top}"), false) {
                Ok(o) => o,
                Err(crate::cli::browse::BrowseError::NotFound { .. }) => continue,
                Err(e) => return Err(ApiError::internal(e)),
            };
            for o in objects {
                let entries = crate::cli::browse::list(&repo, run, &o.path, true)
                    .map_err(ApiError::internal)?;
                let items = entries
                    .iter()
                    .filter(|e| ITEM_KINDS.contains(&e.kind.as_str()))
                    .count() as u64;
                let bytes = entries.iter().map(|e| e.size).sum();
                out.push((top, o, items, bytes));
            }
        }
        let records = repo.objects().map_err(ApiError::internal)?;
        Ok(out
            .into_iter()
            .map(|(top, o, items, bytes)| {
                let rec = records.iter().find(|r| {
                    r.info.address.as_deref() == Some(o.name.as_str())
                        || r.info.name == o.name
                        || r.info.extra.get("name").and_then(Value::as_str) == Some(o.name.as_str())
                });
                AccountView {
                    path: o.path.clone(),
                    kind: top.trim_end_matches('s').to_owned(),
                    name: rec.map_or_else(|| o.name.clone(), |r| r.info.name.clone()),
                    address: rec.and_then(|r| r.info.address.clone()),
                    items,
                    bytes,
                }
            })
            .collect())
    })
    .await?;
    Ok(HttpResponse::Ok().json(out))
}
