//! `/api/v1/registrations` and a task's certificate (admin only): registering the Entra ID app
//! from the NAS, the certificate and guide for registering it by hand, checking an imported
//! `.pfx`, and a task's certificate expiry and renewal.
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/api/v1/registrations/permissions` | the application permissions, each with why |
//! | POST | `/api/v1/registrations` | `{mode: "automatic"\|"manual", cloud, login_endpoint?, graph_endpoint?, display_name?}` → 201 registration: automatic ones carry `sign_in {user_code, verification_uri, expires_at, message}` |
//! | GET | `/api/v1/registrations/{id}` | the registration: `state` `waiting_for_sign_in`, `working {step}`, `done` (with `result {tenant_id, app_id, …}`), `failed {code, message}` or `manual` |
//! | POST | `/api/v1/registrations/{id}/retry` | checks again whether an app that was slow to replicate signs in now |
//! | DELETE | `/api/v1/registrations/{id}` | cancels and forgets it |
//! | GET | `/api/v1/registrations/{id}/certificate` | the certificate as a `.cer` (PEM) download |
//! | GET | `/api/v1/registrations/{id}/guide?cloud=` | the step-by-step guide (Markdown) with the exact permissions and the certificate's thumbprint |
//! | POST | `/api/v1/registrations/import` | `{pfx_base64, password}` → the certificate's thumbprint, subject and validity; 422 `certificate` with what is wrong |
//! | GET | `/api/v1/tasks/{name}/certificate` | `{thumbprint, not_after, days_left, state: "valid"\|"expires_soon"\|"expired"}` (warning 30 days ahead) |
//! | POST | `/api/v1/tasks/{name}/certificate/renew` | `{object_id?}` → the renewal: new key added, task switched once it works, old key removed |
//!
//! A task is created from a finished (or manual) registration by reference: the task routes
//! resolve `{"registration_id": id}` with [`registration_credentials`]. Failures answer 422
//! with the registration error's code (`not_admin`, `consent_blocked`, `code_expired`,
//! `declined`, `not_ready`, `object_id_unknown`, …) and a message that says what to do.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use serde::Deserialize;
use utoipa::OpenApi;

use super::{Admin, ApiError, AppState};
use crate::register::{
    self, JobView, RegisterError, RegisterOptions, Registration, Registrations, permissions,
};
use crate::task::Credentials;

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/registrations/permissions",
        web::get().to(list_permissions),
    )
    .route("/registrations/import", web::post().to(import))
    .route("/registrations", web::post().to(start))
    .service(
        web::resource("/registrations/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(cancel)),
    )
    .route("/registrations/{id}/retry", web::post().to(retry))
    .route(
        "/registrations/{id}/certificate",
        web::get().to(certificate),
    )
    .route("/registrations/{id}/guide", web::get().to(guide))
    .route("/tasks/{name}/certificate", web::get().to(task_certificate))
    .route("/tasks/{name}/certificate/renew", web::post().to(renew));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_permissions,
        start,
        get,
        retry,
        cancel,
        certificate,
        guide,
        import,
        task_certificate,
        renew
    ),
    components(schemas(StartRegistration, Mode, ImportPfx, RenewRequest))
)]
pub struct Doc;

/// The service's registrations, shared by every worker of every service in the process.
fn jobs() -> &'static Registrations {
    static JOBS: OnceLock<Registrations> = OnceLock::new();
    JOBS.get_or_init(Registrations::new)
}

/// The certificate (and, when the app was registered here, the tenant and app ids) of a
/// finished or manual registration, for creating a task by reference.
///
/// # Errors
/// 404 for an unknown or unfinished registration.
pub fn registration_credentials(
    id: uuid::Uuid,
) -> Result<(Credentials, Option<Registration>), ApiError> {
    jobs().credentials(id).map_err(ApiError::from)
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::UnknownJob(_) => Self::NotFound(e.to_string()),
            RegisterError::Task(t) => t.into(),
            RegisterError::Record { .. } => Self::Internal(e.to_string()),
            other => Self::Unprocessable {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

fn parse_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no registration {id}")))
}

fn view(id: uuid::Uuid) -> Result<JobView, ApiError> {
    jobs()
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no registration {id}")))
}

/// The application permissions of Microsoft Graph the app gets, each with why.
#[utoipa::path(get, path = "/api/v1/registrations/permissions", tag = "registration",
    responses((status = 200, description = "`[{name, id, why}]`")))]
async fn list_permissions(_admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(permissions::REQUIRED)
}

/// Who registers the app.
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The NAS registers it through the admin's sign-in (device code).
    #[default]
    Automatic,
    /// The admin registers it by hand with the `.cer` and the guide.
    Manual,
}

/// Starting a registration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StartRegistration {
    /// Automatic (default) or manual.
    #[serde(default)]
    pub mode: Mode,
    /// `global` (default), `usgov`, `usgovdod`, `china` or `custom`.
    #[serde(default)]
    pub cloud: Option<String>,
    /// Login endpoint (with `custom`).
    #[serde(default)]
    pub login_endpoint: Option<String>,
    /// Graph endpoint (with `custom`).
    #[serde(default)]
    pub graph_endpoint: Option<String>,
    /// The new application's display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn options(body: &StartRegistration) -> Result<RegisterOptions, ApiError> {
    let cloud = match (&body.login_endpoint, &body.graph_endpoint) {
        (Some(login), Some(graph)) => backhome_graph::Cloud::custom(login, graph),
        (None, None) => body
            .cloud
            .as_deref()
            .unwrap_or("global")
            .parse::<backhome_graph::Cloud>(),
        _ => {
            return Err(ApiError::BadRequest(
                "give both login_endpoint and graph_endpoint, or neither".into(),
            ));
        }
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut opts = RegisterOptions::new(cloud);
    if let Some(name) = body.display_name.as_deref().map(str::trim) {
        if name.is_empty() || name.len() > 120 || name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(
                "display_name: 1 to 120 characters, no control characters".into(),
            ));
        }
        name.clone_into(&mut opts.display_name);
    }
    Ok(opts)
}

/// Starts a registration: automatic ones answer with the code and page to sign in with.
#[utoipa::path(post, path = "/api/v1/registrations", tag = "registration",
    request_body = StartRegistration,
    responses((status = 201, description = "the registration"),
        (status = 422, description = "the sign-in service refused or could not be reached")))]
async fn start(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<StartRegistration>,
) -> Result<HttpResponse, ApiError> {
    let opts = options(&body)?;
    let v = match body.mode {
        Mode::Automatic => {
            jobs()
                .start_on(opts, Some(state.data_dir.clone()), &state.runtime)
                .await?
        }
        Mode::Manual => jobs().start_manual(&opts).await?,
    };
    Ok(HttpResponse::Created().json(v))
}

/// A registration's state (poll it while the admin signs in).
#[utoipa::path(get, path = "/api/v1/registrations/{id}", tag = "registration",
    params(("id" = String, Path, description = "registration id")),
    responses((status = 200, description = "the registration"), (status = 404, description = "unknown")))]
async fn get(_admin: Admin, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(parse_id(&id)?)?))
}

/// Checks again whether an app that was slow to replicate signs in now.
#[utoipa::path(post, path = "/api/v1/registrations/{id}/retry", tag = "registration",
    params(("id" = String, Path, description = "registration id")),
    responses((status = 200, description = "the registration, checking again"),
        (status = 404, description = "unknown, or nothing to retry")))]
async fn retry(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let v = jobs().retry(parse_id(&id)?, &state.runtime)?;
    Ok(HttpResponse::Ok().json(v))
}

/// Cancels and forgets a registration.
#[utoipa::path(delete, path = "/api/v1/registrations/{id}", tag = "registration",
    params(("id" = String, Path, description = "registration id")),
    responses((status = 204, description = "cancelled"), (status = 404, description = "unknown")))]
async fn cancel(_admin: Admin, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if jobs().cancel(parse_id(&id)?) {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("no registration {id}")))
    }
}

/// The registration's certificate as a `.cer` file, to upload in the Entra admin center.
#[utoipa::path(get, path = "/api/v1/registrations/{id}/certificate", tag = "registration",
    params(("id" = String, Path, description = "registration id")),
    responses((status = 200, description = "PEM certificate", content_type = "application/x-x509-ca-cert"),
        (status = 404, description = "unknown")))]
async fn certificate(_admin: Admin, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let pem = jobs()
        .cer(id)
        .ok_or_else(|| ApiError::NotFound(format!("no registration {id}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-x509-ca-cert")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"backhome.cer\"",
        ))
        .body(pem))
}

/// Which cloud the guide is for.
#[derive(Debug, Deserialize)]
struct GuideQuery {
    #[serde(default)]
    cloud: Option<String>,
}

/// The step-by-step guide for registering the app by hand, with the exact permissions.
#[utoipa::path(get, path = "/api/v1/registrations/{id}/guide", tag = "registration",
    params(("id" = String, Path, description = "registration id"),
        ("cloud" = Option<String>, Query, description = "global (default), usgov, usgovdod, china")),
    responses((status = 200, description = "Markdown", content_type = "text/markdown"),
        (status = 404, description = "unknown")))]
async fn guide(
    _admin: Admin,
    id: web::Path<String>,
    query: web::Query<GuideQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let thumbprint = jobs()
        .thumbprint(id)
        .ok_or_else(|| ApiError::NotFound(format!("no registration {id}")))?;
    let cloud = query
        .cloud
        .as_deref()
        .unwrap_or("global")
        .parse::<backhome_graph::Cloud>()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .body(permissions::guide(&cloud, Some(&thumbprint))))
}

/// A `.pfx` to check before a task uses it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ImportPfx {
    /// The file, base64.
    pub pfx_base64: String,
    /// Its password.
    pub password: String,
}

/// Checks an imported `.pfx` (from Synology's or Microsoft's script): password, RSA key, dates.
#[utoipa::path(post, path = "/api/v1/registrations/import", tag = "registration",
    request_body = ImportPfx,
    responses((status = 200, description = "`{thumbprint, subject, not_before, not_after}`"),
        (status = 422, description = "`certificate`: wrong password, not a .pfx, not RSA, expired")))]
async fn import(_admin: Admin, body: web::Json<ImportPfx>) -> Result<HttpResponse, ApiError> {
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(body.pfx_base64.trim())
        .map_err(|e| ApiError::BadRequest(format!("pfx_base64: {e}")))?;
    let password = body.password.clone();
    let info = web::block(move || register::cert::inspect_pfx(&pfx, &password)).await??;
    Ok(HttpResponse::Ok().json(info))
}

/// A task's certificate: thumbprint, expiry, days left and whether to warn.
#[utoipa::path(get, path = "/api/v1/tasks/{name}/certificate", tag = "registration",
    params(("name" = String, Path, description = "task name")),
    responses((status = 200, description = "`{thumbprint, not_after, days_left, state}`"),
        (status = 404, description = "no such task")))]
async fn task_certificate(
    _admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let data_dir = state.data_dir.clone();
    let name = name.into_inner();
    let status = web::block(move || -> Result<_, ApiError> {
        let creds = crate::task::TaskStore::open(&data_dir)?.credentials(&name)?;
        Ok(register::cert::status(
            &creds,
            time::OffsetDateTime::now_utc(),
        )?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(status))
}

/// Renewing a task's certificate.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RenewRequest {
    /// The application's object id, for apps not registered from this NAS.
    #[serde(default)]
    pub object_id: Option<String>,
    /// How long to wait for the new key to replicate, in seconds (default 300).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Renews a task's certificate without downtime: adds the new key, switches the task once it
/// signs in, removes the old key.
#[utoipa::path(post, path = "/api/v1/tasks/{name}/certificate/renew", tag = "registration",
    params(("name" = String, Path, description = "task name")),
    request_body = RenewRequest,
    responses((status = 200, description = "`{thumbprint, not_after, old_thumbprint, old_removed, note}`"),
        (status = 404, description = "no such task"),
        (status = 422, description = "`object_id_unknown`, `not_ready`, `certificate`, …")))]
async fn renew(
    _admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: Option<web::Json<RenewRequest>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    if let Some(o) = &body.object_id
        && uuid::Uuid::parse_str(o).is_err()
    {
        return Err(ApiError::BadRequest("object_id: not a GUID".into()));
    }
    let data_dir = state.data_dir.clone();
    let name = name.into_inner();
    let wait = body
        .wait_seconds
        .map(|s| Duration::from_secs(s.clamp(1, 900)));
    // The renewal waits on Graph for up to minutes: it runs on the service's runtime.
    let done = state
        .runtime
        .spawn(async move {
            register::renew_task(&data_dir, &name, body.object_id.as_deref(), wait).await
        })
        .await
        .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok().json(done))
}
