//! Who is calling: one [`Authenticator`] trait with two backends — DSM sessions (production) and
//! users listed in the configuration (the demo and tests).

mod dsm;
mod static_users;

pub use dsm::DsmAuth;
pub use static_users::StaticUsers;

use serde::Serialize;

/// A signed-in caller.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Identity {
    /// The DSM (or static) user name.
    pub user: String,
    /// Whether the user is an administrator (DSM's `administrators` group).
    pub admin: bool,
    /// The user's e-mail address when known; it maps the user to their Microsoft 365 account.
    pub email: Option<String>,
    /// The token state-changing requests must carry in `X-SYNO-TOKEN`.
    pub csrf_token: String,
}

/// What an authenticator may look at in a request.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// The `Cookie` header.
    pub cookie: Option<String>,
    /// The CSRF token the request carries (`X-SYNO-TOKEN` header or `SynoToken` query parameter).
    pub token: Option<String>,
    /// The client's address as the reverse proxy reports it.
    pub remote_addr: Option<String>,
    /// Whether the method changes state (anything but GET, HEAD and OPTIONS).
    pub unsafe_method: bool,
    /// Every other `X-SYNO-*` header (newer DSM versions sign desktop sessions with them).
    pub syno_headers: Vec<(String, String)>,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No session, or one that expired.
    #[error("not signed in")]
    NotSignedIn,
    /// A state-changing request without the session's CSRF token.
    #[error("missing or wrong X-SYNO-TOKEN for this session")]
    BadCsrfToken,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// This backend has no sign-in form (DSM signs people in).
    #[error("sign in through DSM")]
    NoPasswordSignIn,
    /// The identity provider could not be asked.
    #[error("cannot check the session: {0}")]
    Unavailable(String),
}

/// Checks a request's session and says who it belongs to.
pub trait Authenticator: Send + Sync {
    /// The backend's name (`dsm` or `static`).
    fn name(&self) -> &'static str;

    /// Who sent `req`. May block (DSM runs a CGI program); call it off the async workers.
    ///
    /// # Errors
    /// [`AuthError::NotSignedIn`] without a valid session; [`AuthError::BadCsrfToken`] when a
    /// state-changing request lacks the session's token.
    fn authenticate(&self, req: &RequestInfo) -> Result<Identity, AuthError>;

    /// Whether [`Authenticator::authenticate`] may block (run a program, wait on I/O), so that
    /// callers move it off the async workers; a backend that only looks up memory says no.
    fn blocking(&self) -> bool {
        true
    }

    /// Signs in with a password, returning the identity and a session cookie value.
    ///
    /// # Errors
    /// [`AuthError::NoPasswordSignIn`] for DSM; [`AuthError::BadCredentials`].
    fn sign_in(&self, user: &str, password: &str) -> Result<(Identity, String), AuthError>;

    /// Ends the session named in `req`, if any.
    fn sign_out(&self, req: &RequestInfo);
}

/// The session cookie of the static backend.
pub const SESSION_COOKIE: &str = "backhome_session";

/// The value of cookie `name` in a `Cookie` header.
#[must_use]
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Compares two secrets in time that does not depend on where they differ.
#[must_use]
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A random token for sessions and CSRF.
#[must_use]
pub fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_secrets() {
        let h = "a=1; backhome_session=xyz; id=abc";
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie_value(h, "id"), Some("abc"));
        assert_eq!(cookie_value(h, "b"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert_ne!(random_token(), random_token());
    }
}
