//! `/api/v1/session`: who is signed in, and (static backend only) signing in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::OpenApi;

use super::auth::{Identity, SESSION_COOKIE};
use super::caller::request_info;
use super::{ApiError, AppState, Caller};

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/session")
            .route(web::get().to(current))
            .route(web::post().to(sign_in))
            .route(web::delete().to(sign_out)),
    );
}

/// The routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(current, sign_in, sign_out),
    components(schemas(Identity, SignIn))
)]
pub struct Doc;

/// Who is signed in; the UI reads `csrf_token` here and sends it as `X-SYNO-TOKEN`.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = Identity), (status = 401, description = "not signed in")))]
async fn current(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(caller.0)
}

/// A password sign-in (static-users backend only).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Signs in with a password (static-users backend; DSM signs people in itself: 404).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn,
    responses((status = 200, body = Identity), (status = 401, description = "wrong user name or password"),
        (status = 404, description = "the DSM backend has no password sign-in")))]
async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let auth = state.auth.clone();
    let SignIn { user, password } = body.into_inner();
    let (identity, session) = web::block(move || auth.sign_in(&user, &password)).await??;
    tracing::info!(user = %identity.user, admin = identity.admin, "signed in");
    let secure = req.connection_info().scheme() == "https";
    let cookie = Cookie::build(SESSION_COOKIE, session)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(identity))
}

/// Signs out (static-users backend).
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "signed out")))]
async fn sign_out(state: web::Data<AppState>, req: HttpRequest, _caller: Caller) -> HttpResponse {
    state.auth.sign_out(&request_info(&req));
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    HttpResponse::NoContent().cookie(gone).finish()
}
