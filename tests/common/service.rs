//! A running service for HTTP-level tests: the simulator, a task "t" against it with the portal
//! on, static users, and signed-in HTTP sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use actix_web::dev::ServerHandle;
use backhome::api::{AppState, Application};
use backhome::config::{AuthBackend, Config, StaticUser};
use backhome::task::{Service as Workload, TaskSpec, TaskStore};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Env;

/// The password of every test user.
pub const PASSWORD: &str = "test-password";

/// A service on a free loopback port.
pub struct Service {
    /// The simulator, the task's spec and credentials, the repository, the temp dir.
    pub env: Env,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The data dir.
    pub data: std::path::PathBuf,
    /// Stops the server.
    pub handle: ServerHandle,
    /// The shared state.
    pub state: actix_web::web::Data<AppState>,
}

/// The tenant's users' UPNs (the simulator's directory order).
pub fn upns(env: &Env) -> Vec<String> {
    env.sim
        .state()
        .tenant
        .dir
        .read()
        .users
        .iter()
        .map(|u| u.upn.clone())
        .collect()
}

/// Starts a service with users `admin` (administrator), `alice` (portal, mapped by e-mail to the
/// tenant's first user) and `bob` (portal, the second user), and task `t` (portal on) over
/// `workloads`.
pub async fn start(workloads: &[Workload]) -> Service {
    start_with(super::env(workloads).await, |_| {}).await
}

/// As [`start`] on `env`, with a chance to change the configuration.
pub async fn start_with(env: Env, tweak: impl FnOnce(&mut Config)) -> Service {
    let data = env.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let upns = upns(&env);
    let user = |name: &str, admin: bool, email: Option<&String>| StaticUser {
        name: name.into(),
        password: PASSWORD.into(),
        admin,
        email: email.cloned(),
    };
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        syslog: false,
        ..Config::default()
    };
    config.auth.backend = AuthBackend::Static;
    config.auth.users = vec![
        user("admin", true, None),
        user("alice", false, upns.first()),
        user("bob", false, upns.get(1)),
    ];
    tweak(&mut config);
    let spec = TaskSpec {
        portal: true,
        ..env.spec.clone()
    };
    TaskStore::open(&data)
        .unwrap()
        .create(&spec, &env.creds)
        .unwrap();
    let state = AppState::new(data.clone(), config).unwrap();
    let app = Application::build(state).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let state = app.state();
    tokio::spawn(app.run());
    Service {
        env,
        base,
        data,
        handle,
        state,
    }
}

/// An HTTP session signed in as one user.
pub struct Session {
    /// Where the service is.
    pub base: String,
    /// The session cookie header (empty when anonymous).
    pub cookie: String,
    /// The CSRF token sent as `X-SYNO-TOKEN` on writes.
    pub csrf: String,
    /// The client.
    pub http: reqwest::Client,
}

impl Service {
    /// Signs in as `user` with [`PASSWORD`].
    pub async fn sign_in(&self, user: &str) -> Session {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{}/api/v1/session", self.base))
            .json(&serde_json::json!({ "user": user, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "sign-in as {user}");
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ");
        let body: Value = resp.json().await.unwrap();
        Session {
            base: self.base.clone(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            http,
        }
    }

    /// A session that is not signed in.
    pub fn anonymous(&self) -> Session {
        Session {
            base: self.base.clone(),
            cookie: String::new(),
            csrf: String::new(),
            http: reqwest::Client::new(),
        }
    }
}

impl Session {
    /// A request to `path` (`/api/v1/...`) with the cookie and, on writes, the CSRF token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let write = !matches!(method, Method::GET | Method::HEAD);
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if !self.cookie.is_empty() {
            r = r.header("cookie", &self.cookie);
        }
        if write && !self.csrf.is_empty() {
            r = r.header("x-syno-token", &self.csrf);
        }
        r
    }

    /// Sends and returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }
}
