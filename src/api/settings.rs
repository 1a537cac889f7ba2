//! `/api/v1/settings/notifications` (admin): which events send a DSM desktop notification and to
//! whom, and a test notice. The settings live in `notifications.json` in the data dir; the run
//! manager's notifier reads them at every event.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::OpenApi;

use super::browse::blocking;
use super::{Admin, ApiError, AppState};
use crate::notify::{NotificationSettings, NotifyError};

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/settings/notifications")
            .route(web::get().to(get))
            .route(web::put().to(put)),
    )
    .route("/settings/notifications/test", web::post().to(test));
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(get, put, test),
    components(schemas(NotificationSettings, NotificationsView, TestResult))
)]
pub struct Doc;

/// The settings and how notices are delivered here.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationsView {
    /// The settings.
    pub settings: NotificationSettings,
    /// Whether a desktop notification program (DSM's `synodsmnotify`) was found; without it
    /// notices go to the log only.
    pub desktop: bool,
}

/// A test notice that was sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// The DSM users and groups it was sent to.
    pub recipients: Vec<String>,
}

fn settings_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::Invalid(m) => ApiError::BadRequest(m),
        NotifyError::NoProgram => ApiError::Unprocessable {
            code: "no_notifier",
            message: e.to_string(),
        },
        NotifyError::Delivery { .. } => ApiError::Unprocessable {
            code: "notification_failed",
            message: e.to_string(),
        },
        other => ApiError::internal(other),
    }
}

/// The settings of a PUT body: fields left out take their defaults; an unknown field or a value
/// of the wrong type is refused with the field's name.
fn parse(body: &Value) -> Result<NotificationSettings, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let fields = body
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object".into()))?;
    let mut s = NotificationSettings::default();
    for (k, v) in fields {
        let flag = match k.as_str() {
            "run_failed" => &mut s.run_failed,
            "run_partial" => &mut s.run_partial,
            "run_succeeded" => &mut s.run_succeeded,
            "retention_failed" => &mut s.retention_failed,
            "certificate_expiring" => &mut s.certificate_expiring,
            "certificate_days" => {
                s.certificate_days =
                    v.as_u64()
                        .and_then(|d| u32::try_from(d).ok())
                        .ok_or_else(|| {
                            bad(format!(
                                "certificate_days must be a whole number of days, not {v}"
                            ))
                        })?;
                continue;
            }
            "recipients" => {
                s.recipients = v
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|r| r.as_str().map(|r| r.trim().to_owned()))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| bad(format!("recipients must be a list of names, not {v}")))?;
                continue;
            }
            other => {
                return Err(bad(format!(
                    "unknown field '{other}' (known: run_failed, run_partial, run_succeeded, retention_failed, certificate_expiring, certificate_days, recipients)"
                )));
            }
        };
        *flag = v
            .as_bool()
            .ok_or_else(|| bad(format!("{k} must be true or false, not {v}")))?;
    }
    Ok(s)
}

fn view(state: &AppState) -> Result<NotificationsView, ApiError> {
    Ok(NotificationsView {
        settings: NotificationSettings::load(&state.data_dir).map_err(settings_error)?,
        desktop: state.runs.notifier().has_program(),
    })
}

/// The notification settings (the defaults until they are saved).
#[utoipa::path(get, path = "/api/v1/settings/notifications", tag = "settings",
    responses((status = 200, body = NotificationsView)))]
async fn get(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let v = blocking(move || view(&state)).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Replaces the notification settings; fields left out take their defaults.
#[utoipa::path(put, path = "/api/v1/settings/notifications", tag = "settings",
    request_body = NotificationSettings,
    responses((status = 200, body = NotificationsView),
        (status = 400, description = "an unknown field or a bad value, named in the message")))]
async fn put(
    state: web::Data<AppState>,
    admin: Admin,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let settings = parse(&body)?;
    let v = blocking(move || {
        settings.save(&state.data_dir).map_err(settings_error)?;
        tracing::info!(by = %admin.0.user, ?settings, "notification settings changed");
        view(&state)
    })
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Sends a test notice to the configured recipients, whichever events are on.
#[utoipa::path(post, path = "/api/v1/settings/notifications/test", tag = "settings",
    responses((status = 200, body = TestResult),
        (status = 422, description = "`no_notifier` (no synodsmnotify here) or `notification_failed`")))]
async fn test(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let recipients = blocking(move || state.runs.notifier().test().map_err(settings_error)).await?;
    Ok(HttpResponse::Ok().json(TestResult { recipients }))
}
