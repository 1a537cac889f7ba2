//! Users listed in `config.toml`, signed in with a password: the demo and tests. Never active in
//! the package unless an administrator configures it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    AuthError, Authenticator, Identity, RequestInfo, SESSION_COOKIE, cookie_value, random_token,
    same_secret,
};
use crate::config::StaticUser;

/// How long a session lives without use.
const IDLE: Duration = Duration::from_secs(12 * 3600);

struct Session {
    user: usize,
    csrf: String,
    last_used: Instant,
}

/// The static-users backend.
pub struct StaticUsers {
    users: Vec<StaticUser>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl StaticUsers {
    /// A backend for `users`.
    #[must_use]
    pub fn new(users: Vec<StaticUser>) -> Self {
        Self {
            users,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn identity(&self, user: usize, csrf: &str) -> Option<Identity> {
        let u = self.users.get(user)?;
        Some(Identity {
            user: u.name.clone(),
            admin: u.admin,
            email: u.email.clone(),
            csrf_token: csrf.to_owned(),
        })
    }
}

impl Authenticator for StaticUsers {
    fn name(&self) -> &'static str {
        "static"
    }

    fn blocking(&self) -> bool {
        false
    }

    fn authenticate(&self, req: &RequestInfo) -> Result<Identity, AuthError> {
        let id = req
            .cookie
            .as_deref()
            .and_then(|c| cookie_value(c, SESSION_COOKIE))
            .ok_or(AuthError::NotSignedIn)?;
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| AuthError::Unavailable("session table poisoned".into()))?;
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < IDLE);
        let s = sessions.get_mut(id).ok_or(AuthError::NotSignedIn)?;
        if req.unsafe_method
            && !req
                .token
                .as_deref()
                .is_some_and(|t| same_secret(t, &s.csrf))
        {
            return Err(AuthError::BadCsrfToken);
        }
        s.last_used = now;
        self.identity(s.user, &s.csrf).ok_or(AuthError::NotSignedIn)
    }

    fn sign_in(&self, user: &str, password: &str) -> Result<(Identity, String), AuthError> {
        let idx = self
            .users
            .iter()
            .position(|u| u.name.eq_ignore_ascii_case(user))
            .filter(|&i| same_secret(&self.users[i].password, password))
            .ok_or(AuthError::BadCredentials)?;
        let session = random_token();
        let csrf = random_token();
        let identity = self.identity(idx, &csrf).ok_or(AuthError::BadCredentials)?;
        self.sessions
            .lock()
            .map_err(|_| AuthError::Unavailable("session table poisoned".into()))?
            .insert(
                session.clone(),
                Session {
                    user: idx,
                    csrf,
                    last_used: Instant::now(),
                },
            );
        Ok((identity, session))
    }

    fn sign_out(&self, req: &RequestInfo) {
        if let Some(id) = req
            .cookie
            .as_deref()
            .and_then(|c| cookie_value(c, SESSION_COOKIE))
            && let Ok(mut s) = self.sessions.lock()
        {
            s.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> StaticUsers {
        StaticUsers::new(vec![StaticUser {
            name: "alice".into(),
            password: "correct horse".into(),
            admin: false,
            email: Some("alice@example.com".into()),
        }])
    }

    #[test]
    fn sign_in_session_and_csrf() {
        let b = backend();
        assert!(matches!(
            b.sign_in("alice", "wrong"),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            b.sign_in("bob", "correct horse"),
            Err(AuthError::BadCredentials)
        ));
        let (id, session) = b.sign_in("Alice", "correct horse").unwrap();
        assert_eq!(id.user, "alice");
        let mut req = RequestInfo {
            cookie: Some(format!("x=1; {SESSION_COOKIE}={session}")),
            ..RequestInfo::default()
        };
        assert_eq!(b.authenticate(&req).unwrap().user, "alice");
        req.unsafe_method = true;
        assert!(matches!(b.authenticate(&req), Err(AuthError::BadCsrfToken)));
        req.token = Some("nope".into());
        assert!(matches!(b.authenticate(&req), Err(AuthError::BadCsrfToken)));
        req.token = Some(id.csrf_token.clone());
        assert!(b.authenticate(&req).is_ok());
        b.sign_out(&req);
        assert!(matches!(b.authenticate(&req), Err(AuthError::NotSignedIn)));
    }
}
