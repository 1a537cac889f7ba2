//! The extractors every protected handler takes: [`Caller`] (anyone signed in) and [`Admin`]
//! (DSM administrators). They authenticate the request, enforce CSRF protection on
//! state-changing methods, and reject cross-origin writes.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::auth::{Identity, RequestInfo};
use super::{ApiError, AppState};

/// A signed-in caller.
#[derive(Clone, Debug)]
pub struct Caller(pub Identity);

/// A signed-in administrator.
#[derive(Clone, Debug)]
pub struct Admin(pub Identity);

impl Caller {
    /// Whether the caller is an administrator.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.0.admin
    }

    /// The caller's user name.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.0.user
    }
}

/// The parts of a request the authenticators look at.
#[must_use]
pub fn request_info(req: &HttpRequest) -> RequestInfo {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let token = header("x-syno-token").or_else(|| {
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "SynoToken")
            .map(|(_, v)| v.into_owned())
    });
    let syno_headers = req
        .headers()
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k.starts_with("x-syno-") && k != "x-syno-token"
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    RequestInfo {
        cookie: header("cookie"),
        token,
        remote_addr: header("x-real-ip").or_else(|| req.peer_addr().map(|a| a.ip().to_string())),
        unsafe_method: !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS),
        syno_headers,
    }
}

/// Rejects a state-changing request whose `Origin` is not the host it was sent to.
fn check_origin(req: &HttpRequest, info: &RequestInfo) -> Result<(), ApiError> {
    if !info.unsafe_method {
        return Ok(());
    }
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get("x-forwarded-host")
        .or_else(|| req.headers().get("host"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "cross-origin request from {origin} refused"
        )))
    }
}

/// Authenticates `req`.
///
/// # Errors
/// Not signed in, a missing CSRF token, or a cross-origin write.
pub async fn authenticate(req: &HttpRequest) -> Result<Identity, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("service state missing".into()))?;
    let info = request_info(req);
    check_origin(req, &info)?;
    let auth = state.auth.clone();
    let id = if auth.blocking() {
        web::block(move || auth.authenticate(&info)).await??
    } else {
        auth.authenticate(&info)?
    };
    Ok(id)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(Caller) })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let id = authenticate(&req).await?;
            if id.admin {
                Ok(Admin(id))
            } else {
                Err(ApiError::Forbidden(
                    "only DSM administrators may do this".into(),
                ))
            }
        })
    }
}
