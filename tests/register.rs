//! App registration from the NAS against the simulator: the device code sign-in, the app with
//! its certificate, permissions and consent, a task made from the result and a backup with it;
//! every failure the admin can meet; and certificate renewal without downtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use backhome::backup::{self, Progress};
use backhome::register::{
    self, JobState, RegisterError, RegisterOptions, Registrations, Step, permissions,
};
use backhome::task::{Credentials, Service, TaskSpec, TaskStore};
use backhome_graph::{
    AuthError, Client, ClientConfig, Cloud, Credential, Error as GraphClientError,
};
use backhome_store::{CreateOptions, Repository};
use graph_sim::{Profile, RunningSim, SimOptions, Simulator};
use serde_json::{Value, json};

struct Sim {
    sim: RunningSim,
    dir: tempfile::TempDir,
}

async fn sim() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.state_dir = Some(dir.path().join("sim"));
    let sim = Simulator::start(opts).await.unwrap();
    let s = Sim { sim, dir };
    s.settings(json!({"device_interval": 1})).await;
    s
}

impl Sim {
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{path}", self.sim.ready().control_endpoint);
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn settings(&self, v: Value) {
        self.control(reqwest::Method::PUT, "registration", Some(v))
            .await;
    }

    async fn approve(&self, code: &str, roles: &[&str]) {
        self.control(
            reqwest::Method::POST,
            "device/approve",
            Some(json!({"user_code": code, "roles": roles})),
        )
        .await;
    }

    async fn apps(&self) -> Vec<Value> {
        self.control(reqwest::Method::GET, "applications", None)
            .await["applications"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn cloud(&self) -> Cloud {
        let r = self.sim.ready();
        Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap()
    }

    fn options(&self) -> RegisterOptions {
        let mut o = RegisterOptions::new(self.cloud());
        o.ready_timeout = Duration::from_secs(30);
        o.first_backoff = Duration::from_millis(200);
        o.cert_days = 90;
        o
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// A task using the registration's tenant, app and certificate, stored in the data dir.
    fn task(&self, name: &str, reg: &register::Registration, services: &[Service]) -> TaskSpec {
        let r = self.sim.ready();
        let spec = TaskSpec::new(
            name,
            reg.tenant_id.clone(),
            reg.app_id.clone(),
            self.dir.path().join(format!("repo-{name}")),
        )
        .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
        .with_services(services);
        let store = TaskStore::open(&self.data_dir()).unwrap();
        store.create(&spec, &reg.credentials).unwrap();
        Repository::create(&spec.repo, &CreateOptions::default()).unwrap();
        spec
    }

    /// Registers an app as a Global Administrator.
    async fn register(&self, opts: RegisterOptions) -> register::Registration {
        let pending = register::begin(opts).await.unwrap();
        self.approve(&pending.code().user_code, &["Global Administrator"])
            .await;
        let created = pending
            .create(Some(&self.data_dir()), &|_| {})
            .await
            .unwrap();
        created.wait_ready().await.unwrap()
    }
}

async fn backup_with(data_dir: &Path, name: &str) -> backup::Summary {
    let store = TaskStore::open(data_dir).unwrap();
    let spec = store.get(name).unwrap();
    let creds = store.credentials(name).unwrap();
    drop(store);
    let client = backhome::connect::client(&spec, &creds).unwrap();
    let repo = Repository::open(&spec.repo, None).unwrap();
    backup::run(
        client,
        repo,
        &spec,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap()
}

fn client(sim: &Sim, reg_tenant: &str, app_id: &str, creds: &Credentials) -> Client {
    let mut config = ClientConfig::new(sim.cloud(), reg_tenant, app_id);
    config.retry.max_attempts = 1;
    let cred = Credential::from_pkcs12_der(&creds.pfx, &creds.password).unwrap();
    Client::new(config, cred).unwrap()
}

#[actix_web::test]
async fn register_for_me_then_back_up_with_the_new_app() {
    let s = sim().await;
    s.settings(json!({"device_interval": 1, "replication_delay_ms": 1500}))
        .await;
    let pending = register::begin(s.options()).await.unwrap();
    let code = pending.code().clone();
    assert_eq!(code.verification_uri, "https://microsoft.com/devicelogin");
    assert!(code.message.contains(&code.user_code));
    let thumbprint = pending.certificate().thumbprint.clone();
    // Nobody has signed in yet: the sign-in is pending until the admin approves.
    let listed = s.control(reqwest::Method::GET, "device", None).await;
    assert_eq!(listed[0]["state"], "pending");
    assert!(
        listed[0]["scope"]
            .as_str()
            .unwrap()
            .contains("/AppRoleAssignment.ReadWrite.All")
    );
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = steps.clone();
    let progress = move |st: Step| seen.lock().unwrap().push(st);
    let approve = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.approve(&code.user_code, &["Global Administrator"]).await;
    };
    let data_dir = s.data_dir();
    let (created, ()) = tokio::join!(pending.create(Some(&data_dir), &progress), approve);
    let created = created.unwrap();
    assert_eq!(
        *steps.lock().unwrap(),
        vec![
            Step::CreatingApplication,
            Step::CreatingServicePrincipal,
            Step::GrantingConsent
        ]
    );
    assert_eq!(created.tenant_id, s.sim.ready().tenant_id);
    let started = Instant::now();
    let reg = created.wait_ready().await.unwrap();
    // The app is unknown to the sign-in service until the replication delay passed.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let mut granted = reg.granted.clone();
    granted.sort();
    let mut wanted: Vec<String> = permissions::names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    wanted.sort();
    assert_eq!(granted, wanted);
    assert_eq!(reg.thumbprint, thumbprint);

    // The directory holds exactly one app with one key (ours) and exactly these permissions.
    let apps = s.apps().await;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["app_id"], reg.app_id.as_str());
    assert_eq!(apps[0]["keys"].as_array().unwrap().len(), 1);
    assert_eq!(apps[0]["keys"][0]["thumbprint"], thumbprint.as_str());
    let mut roles: Vec<String> = apps[0]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    roles.sort();
    assert_eq!(roles, wanted);
    // The object id is remembered for renewals; no token is.
    let rec = register::record::get(&s.data_dir(), &reg.app_id)
        .unwrap()
        .unwrap();
    assert_eq!(rec.object_id, reg.object_id);
    for entry in std::fs::read_dir(s.data_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("eyJ"),
            "a token was stored"
        );
    }

    // A task made from the result backs up the whole tenant.
    s.task("registered", &reg, &Service::ALL);
    let summary = backup_with(&s.data_dir(), "registered").await;
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.items_added > 50, "{summary:?}");
}

#[actix_web::test]
async fn a_member_without_admin_roles_is_told_to_sign_in_as_admin_and_nothing_stays() {
    let s = sim().await;
    let pending = register::begin(s.options()).await.unwrap();
    s.approve(&pending.code().user_code, &[]).await;
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, RegisterError::NotAdmin { .. }), "{err}");
    assert_eq!(err.code(), "not_admin");
    assert!(err.to_string().contains("Global Administrator"), "{err}");
    // Members may create apps by default; the half-made app was deleted again.
    assert!(s.apps().await.is_empty());

    // An Application Administrator can create apps but not grant Graph's permissions.
    let pending = register::begin(s.options()).await.unwrap();
    s.approve(&pending.code().user_code, &["Application Administrator"])
        .await;
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, RegisterError::NotAdmin { step, .. } if step.contains("consent")),
        "{err}"
    );
    assert!(s.apps().await.is_empty());

    // Where members may not register apps, the refusal comes at the first step.
    s.settings(json!({"device_interval": 1, "users_can_register_apps": false}))
        .await;
    let pending = register::begin(s.options()).await.unwrap();
    s.approve(&pending.code().user_code, &[]).await;
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegisterError::NotAdmin {
                step: "create applications",
                ..
            }
        ),
        "{err}"
    );
}

#[actix_web::test]
async fn consent_blocked_by_policy_says_what_to_do() {
    let s = sim().await;
    s.settings(json!({"device_interval": 1, "consent_blocked": true}))
        .await;
    let pending = register::begin(s.options()).await.unwrap();
    s.approve(&pending.code().user_code, &["Global Administrator"])
        .await;
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, RegisterError::ConsentBlocked { code: 65001 }),
        "{err}"
    );
    assert!(
        err.to_string().contains("register the app yourself"),
        "{err}"
    );
    assert!(s.apps().await.is_empty());
}

#[actix_web::test]
async fn expired_and_declined_codes_end_the_sign_in() {
    let s = sim().await;
    s.settings(json!({"device_interval": 1, "device_expires_in": 2}))
        .await;
    let pending = register::begin(s.options()).await.unwrap();
    let started = Instant::now();
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, RegisterError::CodeExpired { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    s.settings(json!({"device_interval": 1})).await;
    let pending = register::begin(s.options()).await.unwrap();
    s.control(
        reqwest::Method::POST,
        "device/decline",
        Some(json!({"user_code": pending.code().user_code})),
    )
    .await;
    let err = pending.create(None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, RegisterError::Declined), "{err}");
    assert_eq!(err.code(), "declined");
}

#[actix_web::test]
async fn device_code_polling_follows_the_protocol() {
    let s = sim().await;
    let r = s.sim.ready();
    let http = reqwest::Client::new();
    let form = |pairs: &[(&str, &str)]| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let post = |url: String, body: String| {
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let client_id = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
    let start: Value = post(
        format!("{}/organizations/oauth2/v2.0/devicecode", r.login_endpoint),
        form(&[
            ("client_id", client_id),
            ("scope", "https://graph.microsoft.com/User.Read"),
        ]),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    assert_eq!(start["interval"], 1);
    let poll = || {
        post(
            format!("{}/organizations/oauth2/v2.0/token", r.login_endpoint),
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client_id),
                ("device_code", &device_code),
            ]),
        )
    };
    let first = poll().await.unwrap();
    assert_eq!(first.status(), 400);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["error"], "authorization_pending");
    assert_eq!(first["error_codes"][0], 70016);
    let second: Value = poll().await.unwrap().json().await.unwrap();
    assert_eq!(second["error"], "slow_down");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.approve(start["user_code"].as_str().unwrap(), &["Global Reader"])
        .await;
    let ok = poll().await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["scope"], "User.Read");
    // The delegated token is a user's: /me answers, and it cannot list users (no app role).
    let token = ok["access_token"].as_str().unwrap();
    let me: Value = http
        .get(format!("{}/v1.0/me", r.graph_endpoint))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(me["userPrincipalName"].as_str().unwrap().contains('@'));
    let users = http
        .get(format!("{}/v1.0/users", r.graph_endpoint))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 403);
    // A code is redeemed once; an unknown one is rejected.
    let again: Value = poll().await.unwrap().json().await.unwrap();
    assert_eq!(again["error"], "invalid_grant");
    let bad: Value = post(
        format!("{}/organizations/oauth2/v2.0/token", r.login_endpoint),
        form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", "nope"),
        ]),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(bad["error"], "bad_verification_code");
}

#[actix_web::test]
async fn slow_replication_is_retried_and_a_job_can_check_again() {
    let s = sim().await;
    s.settings(json!({"device_interval": 1, "replication_delay_ms": 600_000}))
        .await;
    let jobs = Registrations::new();
    let mut opts = s.options();
    opts.ready_timeout = Duration::from_secs(2);
    let view = jobs.start(opts, Some(s.data_dir())).await.unwrap();
    assert_eq!(view.state, JobState::WaitingForSignIn);
    assert_eq!(view.permissions.len(), permissions::REQUIRED.len());
    let code = view.sign_in.as_ref().unwrap().user_code.clone();
    assert!(
        jobs.cer(view.id)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(jobs.credentials(view.id).is_err(), "not finished yet");
    s.approve(&code, &["Global Administrator"]).await;
    let done = jobs.wait(view.id, Duration::from_secs(30)).await.unwrap();
    match &done.state {
        JobState::Failed { code, message } => {
            assert_eq!(code, "not_ready", "{message}");
            assert!(message.contains("AADSTS700016"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Checking again too early fails the same way.
    jobs.retry(view.id, &tokio::runtime::Handle::current())
        .unwrap();
    let again = jobs.wait(view.id, Duration::from_secs(30)).await.unwrap();
    assert!(
        matches!(&again.state, JobState::Failed { code, .. } if code == "not_ready"),
        "{:?}",
        again.state
    );
    // Replication catches up: checking again succeeds, and the result makes a task.
    s.control(reqwest::Method::POST, "registration/replicate", None)
        .await;
    jobs.retry(view.id, &tokio::runtime::Handle::current())
        .unwrap();
    let done = jobs.wait(view.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let result = done.result.unwrap();
    let (creds, reg) = jobs.credentials(view.id).unwrap();
    let reg = reg.unwrap();
    assert_eq!(reg.app_id, result.app_id);
    assert_eq!(creds.pfx, reg.credentials.pfx);
    assert_eq!(
        serde_json::to_value(&result).unwrap()["credentials"],
        Value::Null,
        "the .pfx never leaves in a view"
    );
    s.task("retried", &reg, &[Service::Mail]);
    let summary = backup_with(&s.data_dir(), "retried").await;
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(jobs.cancel(view.id));
    assert!(jobs.get(view.id).is_none());
}

#[actix_web::test]
async fn renewal_adds_the_new_key_before_removing_the_old_one() {
    let s = sim().await;
    let reg = s.register(s.options()).await;
    let spec = s.task("renewed", &reg, &[Service::Mail, Service::Onedrive]);
    let first = backup_with(&s.data_dir(), "renewed").await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let old = reg.credentials.clone();

    // New keys take a while to replicate: the old key must keep working meanwhile.
    s.settings(json!({"device_interval": 1, "replication_delay_ms": 3000}))
        .await;
    let data_dir = s.data_dir();
    let renewal = tokio::spawn(async move {
        register::renew_task(&data_dir, "renewed", None, Some(Duration::from_secs(30))).await
    });
    // The new key is added first (key generation takes a moment on a busy machine).
    let waiting = Instant::now();
    while s.apps().await[0]["keys"].as_array().unwrap().len() < 2 {
        assert!(waiting.elapsed() < Duration::from_secs(20), "no new key");
        assert!(!renewal.is_finished(), "renewed without adding a key first");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While it replicates, the task keeps its old credentials and they still sign in.
    assert!(!renewal.is_finished());
    assert_eq!(
        TaskStore::open(&s.data_dir())
            .unwrap()
            .credentials("renewed")
            .unwrap()
            .pfx,
        old.pfx
    );
    client(&s, &reg.tenant_id, &reg.app_id, &old)
        .sign_in()
        .await
        .unwrap();
    // A backup during the renewal works.
    let during = backup_with(&s.data_dir(), "renewed").await;
    assert!(during.errors.is_empty(), "{:?}", during.errors);

    let done = renewal.await.unwrap().unwrap();
    assert!(done.old_removed, "{done:?}");
    assert_eq!(done.old_thumbprint, reg.thumbprint);
    assert_ne!(done.thumbprint, reg.thumbprint);
    let apps = s.apps().await;
    let keys = apps[0]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["thumbprint"], done.thumbprint.as_str());

    // The task switched to the new certificate; the old one no longer signs in.
    let store = TaskStore::open(&s.data_dir()).unwrap();
    let now = store.credentials("renewed").unwrap();
    assert_eq!(store.get("renewed").unwrap(), spec);
    drop(store);
    let status = register::cert::status(&now, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(status.thumbprint, done.thumbprint);
    let err = client(&s, &reg.tenant_id, &reg.app_id, &old)
        .sign_in()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphClientError::Auth(AuthError::CertificateRejected { .. })
        ),
        "{err}"
    );
    let after = backup_with(&s.data_dir(), "renewed").await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
}

#[actix_web::test]
async fn renewal_needs_an_object_id_for_apps_registered_elsewhere() {
    let s = sim().await;
    let r = s.sim.ready().clone();
    let spec = TaskSpec::new(
        "pre",
        r.tenant_id.clone(),
        r.app_id.clone(),
        s.dir.path().join("p"),
    )
    .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone());
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).unwrap(),
        password: r.cert_password.clone(),
    };
    TaskStore::open(&s.data_dir())
        .unwrap()
        .create(&spec, &creds)
        .unwrap();
    let err = register::renew_task(&s.data_dir(), "pre", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegisterError::ObjectIdUnknown { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "object_id_unknown");
    // The task's credentials are untouched.
    let now = TaskStore::open(&s.data_dir())
        .unwrap()
        .credentials("pre")
        .unwrap();
    assert_eq!(now.pfx, creds.pfx);
}

#[actix_web::test]
async fn directory_lag_and_service_hiccups_during_registration_are_retried() {
    let s = sim().await;
    // A 503 on creating the app, and Graph not seeing the new service principal twice.
    s.control(
        reqwest::Method::PUT,
        "faults",
        Some(json!({"rules": [
            {"pattern": "/applications", "method": "POST", "kind": "service_unavailable", "remaining": 1},
            {"pattern": "appRoleAssignedTo", "method": "POST", "kind": "item_not_found", "remaining": 2},
        ]})),
    )
    .await;
    let reg = s.register(s.options()).await;
    let apps = s.apps().await;
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["app_id"], reg.app_id.as_str());
    assert_eq!(
        apps[0]["roles"].as_array().unwrap().len(),
        permissions::REQUIRED.len()
    );
    let left = s.control(reqwest::Method::GET, "faults", None).await;
    for rule in left.as_array().unwrap() {
        assert_eq!(rule["remaining"], 0, "{left}");
    }
}
