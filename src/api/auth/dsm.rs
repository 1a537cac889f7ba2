//! DSM sessions: the browser already signed in to DSM, so each request carries DSM's session
//! cookie and SynoToken. DSM's own `authenticate.cgi` says whose session it is; `login.cgi` hands
//! out the SynoToken for a session; DSM's `administrators` group makes an administrator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AuthError, Authenticator, Identity, RequestInfo};
use crate::config::AuthConfig;

/// The DSM backend.
pub struct DsmAuth {
    authenticate_cgi: Option<PathBuf>,
    login_cgi: Option<PathBuf>,
    group_file: PathBuf,
    cache_for: Duration,
    cache: Mutex<HashMap<String, (Identity, Instant)>>,
    webapi: Option<url::Url>,
}

impl DsmAuth {
    /// A backend using the first programs of `config` that exist.
    #[must_use]
    pub fn new(config: &AuthConfig) -> Self {
        let first = |list: &[PathBuf]| list.iter().find(|p| p.exists()).cloned();
        Self {
            authenticate_cgi: first(&config.dsm_authenticate_cgi),
            login_cgi: first(&config.dsm_login_cgi),
            group_file: config.dsm_group_file.clone(),
            cache_for: Duration::from_secs(config.dsm_cache_seconds),
            cache: Mutex::new(HashMap::new()),
            webapi: url::Url::parse(&config.dsm_webapi_url).ok(),
        }
    }

    /// The signed-in user's e-mail address, as DSM's personal settings hold it
    /// (`SYNO.Core.NormalUser` `get`, asked with the user's own session).
    fn email(&self, req: &RequestInfo, token: Option<&str>) -> Option<String> {
        let url = self.webapi.as_ref()?;
        let addr = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        let mut query = "api=SYNO.Core.NormalUser&version=1&method=get".to_owned();
        if let Some(t) = token {
            query.push_str("&SynoToken=");
            query.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
        }
        let request = format!(
            "GET {}?{query} HTTP/1.0\r\nHost: {addr}\r\nCookie: {}\r\n{}\r\n",
            url.path(),
            req.cookie
                .as_deref()
                .unwrap_or("")
                .replace(['\r', '\n'], ""),
            token.map_or(String::new(), |t| format!(
                "X-SYNO-TOKEN: {}\r\n",
                t.replace(['\r', '\n'], "")
            )),
        );
        let timeout = Duration::from_secs(3);
        let sock: std::net::SocketAddr = addr.parse().ok()?;
        let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        std::io::Write::write_all(&mut stream, request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut stream, 1 << 20), &mut reply)
            .ok()?;
        let reply = String::from_utf8_lossy(&reply);
        let (_, body) = reply.split_once("\r\n\r\n")?;
        let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
        v["data"]["email"]
            .as_str()
            .map(str::trim)
            .filter(|e| e.contains('@'))
            .map(str::to_owned)
    }

    fn cgi_env(req: &RequestInfo, token: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![
            ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
            ("REQUEST_METHOD".into(), "GET".into()),
            ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
            ("SERVER_ADDR".into(), "127.0.0.1".into()),
            ("HTTP_COOKIE".into(), req.cookie.clone().unwrap_or_default()),
            (
                "REMOTE_ADDR".into(),
                req.remote_addr
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1".into()),
            ),
        ];
        for (k, v) in &req.syno_headers {
            env.push((
                format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")),
                v.clone(),
            ));
        }
        if let Some(t) = token {
            env.push(("HTTP_X_SYNO_TOKEN".into(), t.to_owned()));
            env.push(("QUERY_STRING".into(), format!("SynoToken={t}")));
        }
        env
    }

    fn run(program: &Path, env: &[(String, String)]) -> Result<String, AuthError> {
        let out = Command::new(program)
            .env_clear()
            .env(
                "PATH",
                "/usr/bin:/bin:/usr/sbin:/sbin:/usr/syno/bin:/usr/syno/sbin",
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| AuthError::Unavailable(format!("{}: {e}", program.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The SynoToken of the session in `req`, from `login.cgi`.
    fn fetch_token(&self, req: &RequestInfo) -> Result<Option<String>, AuthError> {
        let Some(login) = &self.login_cgi else {
            return Ok(None);
        };
        let out = Self::run(login, &Self::cgi_env(req, None))?;
        // CGI output may start with headers; the JSON body follows the blank line.
        let body = out
            .split_once("\r\n\r\n")
            .or_else(|| out.split_once("\n\n"))
            .map_or(out.as_str(), |(_, b)| b);
        let token = serde_json::from_str::<serde_json::Value>(body.trim())
            .ok()
            .and_then(|v| {
                v.get("SynoToken")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            });
        Ok(token)
    }

    fn is_admin(&self, user: &str) -> bool {
        if let Ok(groups) = std::fs::read_to_string(&self.group_file) {
            for line in groups.lines() {
                let mut f = line.split(':');
                if f.next() == Some("administrators") {
                    let members = f.nth(2).unwrap_or("");
                    if members.split(',').any(|m| m.trim() == user) {
                        return true;
                    }
                }
            }
        }
        Command::new("id")
            .arg("-Gn")
            .arg(user)
            .output()
            .ok()
            .is_some_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|g| g == "administrators")
            })
    }
}

impl Authenticator for DsmAuth {
    fn name(&self) -> &'static str {
        "dsm"
    }

    fn authenticate(&self, req: &RequestInfo) -> Result<Identity, AuthError> {
        let Some(cgi) = &self.authenticate_cgi else {
            return Err(AuthError::Unavailable(
                "DSM's authenticate.cgi was not found; is this a Synology NAS?".into(),
            ));
        };
        if req.cookie.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::NotSignedIn);
        }
        if req.unsafe_method && req.token.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::BadCsrfToken);
        }
        let key = format!(
            "{}\u{0}{}\u{0}{}",
            req.cookie.as_deref().unwrap_or(""),
            req.token.as_deref().unwrap_or(""),
            req.remote_addr.as_deref().unwrap_or("")
        );
        if let Ok(cache) = self.cache.lock()
            && let Some((id, at)) = cache.get(&key)
            && at.elapsed() < self.cache_for
        {
            return Ok(id.clone());
        }
        let token = match &req.token {
            Some(t) if !t.is_empty() => Some(t.clone()),
            _ => self.fetch_token(req)?,
        };
        let user = Self::run(cgi, &Self::cgi_env(req, token.as_deref()))?;
        let user = user.lines().last().unwrap_or("").trim().to_owned();
        if user.is_empty() {
            return Err(if req.unsafe_method {
                AuthError::BadCsrfToken
            } else {
                AuthError::NotSignedIn
            });
        }
        let identity = Identity {
            admin: self.is_admin(&user),
            email: self.email(req, token.as_deref()),
            user,
            csrf_token: token.unwrap_or_default(),
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, (identity.clone(), Instant::now()));
        }
        Ok(identity)
    }

    fn sign_in(&self, _user: &str, _password: &str) -> Result<(Identity, String), AuthError> {
        Err(AuthError::NoPasswordSignIn)
    }

    fn sign_out(&self, _req: &RequestInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn asks_dsm_whose_session_it_is() {
        let d = tempfile::tempdir().unwrap();
        // Like DSM: a valid `id` cookie and, when given, the matching SynoToken.
        let auth = script(
            d.path(),
            "authenticate.cgi",
            r#"case "$HTTP_COOKIE" in *id=good*) ;; *) exit 0;; esac
case "$QUERY_STRING" in SynoToken=tok) echo alice;; *) ;; esac"#,
        );
        let login = script(
            d.path(),
            "login.cgi",
            r#"echo 'Content-Type: application/json'; echo; echo '{"SynoToken":"tok","success":true}'"#,
        );
        let group = d.path().join("group");
        std::fs::write(&group, "users:x:100:\nadministrators:x:101:admin,alice\n").unwrap();
        // DSM's web API, answering `SYNO.Core.NormalUser` for the session it is given.
        let webapi = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = webapi.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for s in webapi.incoming().take(1) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.contains("Cookie: id=good") && req.contains("SynoToken=tok") {
                    r#"{"success":true,"data":{"username":"alice","email":"Alice@Contoso.com"}}"#
                } else {
                    r#"{"success":false,"error":{"code":119}}"#
                };
                write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"
                )
                .unwrap();
            }
        });
        let cfg = AuthConfig {
            dsm_webapi_url: format!("http://127.0.0.1:{port}/webapi/entry.cgi"),
            dsm_authenticate_cgi: vec![d.path().join("missing"), auth],
            dsm_login_cgi: vec![login],
            dsm_group_file: group,
            ..AuthConfig::default()
        };
        let b = DsmAuth::new(&cfg);
        let mut req = RequestInfo {
            cookie: Some("id=good".into()),
            ..RequestInfo::default()
        };
        let id = b.authenticate(&req).unwrap();
        assert_eq!(
            (id.user.as_str(), id.admin, id.csrf_token.as_str()),
            ("alice", true, "tok")
        );
        assert_eq!(id.email.as_deref(), Some("Alice@Contoso.com"));
        req.unsafe_method = true;
        assert!(matches!(b.authenticate(&req), Err(AuthError::BadCsrfToken)));
        req.token = Some("wrong".into());
        assert!(matches!(b.authenticate(&req), Err(AuthError::BadCsrfToken)));
        req.token = Some("tok".into());
        assert!(b.authenticate(&req).is_ok());
        req.cookie = Some("id=bad".into());
        req.unsafe_method = false;
        req.token = None;
        assert!(matches!(b.authenticate(&req), Err(AuthError::NotSignedIn)));
        let none = DsmAuth::new(&AuthConfig {
            dsm_authenticate_cgi: vec![d.path().join("missing")],
            ..AuthConfig::default()
        });
        assert!(matches!(
            none.authenticate(&req),
            Err(AuthError::Unavailable(_))
        ));
    }
}
