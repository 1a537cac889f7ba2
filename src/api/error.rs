//! Errors as the API returns them: a status and `{"error": {"code", "message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::auth::AuthError;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a value is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Not signed in, or a state-changing request without its CSRF token (401 / 403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Signed in, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there, or nothing the caller may see (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state, e.g. a run already going (409).
    #[error("{0}")]
    Conflict(String),
    /// Understood but cannot be done, with a diagnosis for the admin (422).
    #[error("{message}")]
    Unprocessable {
        /// A stable machine-readable code.
        code: &'static str,
        /// What went wrong and what to do.
        message: String,
    },
    /// Something failed on our side (500); the message is logged and returned.
    #[error("{0}")]
    Internal(String),
    /// A dependency is temporarily unavailable (503).
    #[error("{0}")]
    Unavailable(String),
}

/// The body of an error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`not_found`, `forbidden`, …).
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Auth(AuthError::NotSignedIn) => "not_signed_in",
            Self::Auth(AuthError::BadCsrfToken) => "bad_csrf_token",
            Self::Auth(AuthError::BadCredentials) => "bad_credentials",
            Self::Auth(AuthError::NoPasswordSignIn) => "no_password_sign_in",
            Self::Auth(AuthError::Unavailable(_)) => "auth_unavailable",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Unprocessable { code, .. } => code,
            Self::Internal(_) => "internal",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Auth(AuthError::BadCsrfToken) => StatusCode::FORBIDDEN,
            Self::Auth(AuthError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Auth(AuthError::NoPasswordSignIn) => StatusCode::NOT_FOUND,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self, Self::Internal(_)) {
            tracing::error!(error = %self, "request failed");
        }
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        })
    }
}

impl From<crate::task::TaskStoreError> for ApiError {
    fn from(e: crate::task::TaskStoreError) -> Self {
        use crate::task::TaskStoreError as E;
        match e {
            E::NotFound(_) => Self::NotFound(e.to_string()),
            E::Exists(_) => Self::Conflict(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}
