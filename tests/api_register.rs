//! The app registration routes over HTTP: registering through the admin's sign-in and polling,
//! the `.cer` and the guide, checking an imported `.pfx`, a task made from the result, its
//! certificate expiry and renewal, and who may call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use backhome::task::{Service as Workload, TaskSpec, TaskStore};
use base64::Engine as _;
use common::service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn sim_control(s: &service::Service, path: &str, body: Value) {
    let url = format!("{}/{path}", s.env.sim.ready().control_endpoint);
    let resp = reqwest::Client::new()
        .request(Method::PUT, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

async fn approve(s: &service::Service, code: &str, roles: &[&str]) {
    let url = format!("{}/device/approve", s.env.sim.ready().control_endpoint);
    let resp = reqwest::Client::new()
        .post(url)
        .json(&json!({"user_code": code, "roles": roles}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "approve: {}", resp.status());
}

async fn poll_until_finished(admin: &service::Session, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (st, v) = admin.get(&format!("/api/v1/registrations/{id}")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if v["state"] == "done" || v["state"] == "failed" {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_over_http_then_renew_the_task_certificate() {
    let s = service::start(&[Workload::Mail]).await;
    sim_control(&s, "registration", json!({"device_interval": 1})).await;
    let r = s.env.sim.ready().clone();
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;
    let anon = s.anonymous();

    // Admin only.
    let (st, _) = alice.get("/api/v1/registrations/permissions").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = anon.get("/api/v1/registrations/permissions").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, perms) = admin.get("/api/v1/registrations/permissions").await;
    assert_eq!(st, StatusCode::OK);
    let perms = perms.as_array().unwrap();
    assert_eq!(perms.len(), backhome::register::permissions::REQUIRED.len());
    assert!(perms.iter().all(|p| !p["why"].as_str().unwrap().is_empty()));

    let start = json!({"cloud": "custom", "login_endpoint": r.login_endpoint, "graph_endpoint": r.graph_endpoint});
    let (st, _) = alice.post("/api/v1/registrations", start.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, bad) = admin
        .post(
            "/api/v1/registrations",
            json!({"login_endpoint": "http://127.0.0.1:1"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");

    // Register for me: a code to show, then the state as it goes.
    let (st, job) = admin.post("/api/v1/registrations", start.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "waiting_for_sign_in");
    let id = job["id"].as_str().unwrap().to_owned();
    let code = job["sign_in"]["user_code"].as_str().unwrap().to_owned();
    assert_eq!(
        job["sign_in"]["verification_uri"],
        "https://microsoft.com/devicelogin"
    );
    assert!(job["sign_in"].get("device_code").is_none(), "{job}");
    let thumbprint = job["certificate"]["thumbprint"]
        .as_str()
        .unwrap()
        .to_owned();

    // The .cer and the guide are there from the start.
    let cer = admin
        .request(
            Method::GET,
            &format!("/api/v1/registrations/{id}/certificate"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cer.status(), StatusCode::OK);
    assert!(
        cer.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("backhome.cer")
    );
    let pem = cer.text().await.unwrap();
    let der = openssl::x509::X509::from_pem(pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let sha1: String = openssl::sha::sha1(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(sha1, thumbprint);
    let guide = admin
        .request(Method::GET, &format!("/api/v1/registrations/{id}/guide"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(guide.contains(&thumbprint));
    assert!(guide.contains("Teamwork.Migrate.All"));

    approve(&s, &code, &["Global Administrator"]).await;
    let done = poll_until_finished(&admin, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["tenant_id"], r.tenant_id.as_str());
    let app_id = done["result"]["app_id"].as_str().unwrap().to_owned();
    assert!(done["result"].get("credentials").is_none());

    // The result makes a task by reference (the certificate never travelled).
    let (creds, reg) =
        backhome::api::register::registration_credentials(uuid::Uuid::parse_str(&id).unwrap())
            .unwrap();
    assert_eq!(reg.unwrap().app_id, app_id);
    let spec = TaskSpec::new(
        "registered",
        r.tenant_id.clone(),
        app_id.clone(),
        s.env.dir.path().join("repo-registered"),
    )
    .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
    .with_services(&[Workload::Mail]);
    TaskStore::open(&s.data)
        .unwrap()
        .create(&spec, &creds)
        .unwrap();

    // Its certificate: expiry and state; then a renewal replaces it.
    let (st, cert) = admin.get("/api/v1/tasks/registered/certificate").await;
    assert_eq!(st, StatusCode::OK, "{cert}");
    assert_eq!(cert["thumbprint"], thumbprint.as_str());
    assert_eq!(cert["state"], "valid");
    assert!(cert["days_left"].as_i64().unwrap() > 700);
    let (st, _) = alice
        .post("/api/v1/tasks/registered/certificate/renew", json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, renewed) = admin
        .post(
            "/api/v1/tasks/registered/certificate/renew",
            json!({"wait_seconds": 30}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["old_thumbprint"], thumbprint.as_str());
    assert_eq!(renewed["old_removed"], true);
    let (_, cert) = admin.get("/api/v1/tasks/registered/certificate").await;
    assert_eq!(cert["thumbprint"], renewed["thumbprint"]);
    assert_ne!(cert["thumbprint"], thumbprint.as_str());
    let (st, missing) = admin.get("/api/v1/tasks/nope/certificate").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{missing}");

    // The simulator's pre-registered app was not registered here: its object id is needed.
    let (st, err) = admin
        .post("/api/v1/tasks/t/certificate/renew", json!({}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "object_id_unknown");

    // Forgetting a registration.
    let (st, _) = admin.delete(&format!("/api/v1/registrations/{id}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin.get(&format!("/api/v1/registrations/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = admin.get("/api/v1/registrations/not-a-uuid").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_manual_mode_and_imports_over_http() {
    let s = service::start(&[Workload::Mail]).await;
    sim_control(&s, "registration", json!({"device_interval": 1})).await;
    let r = s.env.sim.ready().clone();
    let admin = s.sign_in("admin").await;
    let start = json!({"cloud": "custom", "login_endpoint": r.login_endpoint, "graph_endpoint": r.graph_endpoint});

    // Not an admin: the job fails with a code the wizard can switch on.
    let (_, job) = admin.post("/api/v1/registrations", start.clone()).await;
    let id = job["id"].as_str().unwrap().to_owned();
    approve(&s, job["sign_in"]["user_code"].as_str().unwrap(), &[]).await;
    let failed = poll_until_finished(&admin, &id).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["code"], "not_admin", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("Global Administrator")
    );
    let (st, _) = admin
        .post(&format!("/api/v1/registrations/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "nothing was created to check again"
    );

    // I'll do it myself: a certificate and a guide, no sign-in.
    let (st, manual) = admin
        .post("/api/v1/registrations", json!({"mode": "manual"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{manual}");
    assert_eq!(manual["state"], "manual");
    assert!(manual["sign_in"].is_null());
    let mid = manual["id"].as_str().unwrap();
    let guide = admin
        .request(
            Method::GET,
            &format!("/api/v1/registrations/{mid}/guide?cloud=usgov"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(guide.contains("entra.microsoft.us"));
    let (creds, reg) =
        backhome::api::register::registration_credentials(uuid::Uuid::parse_str(mid).unwrap())
            .unwrap();
    assert!(reg.is_none());

    // Importing a .pfx: checked, with the wrong password refused.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&creds.pfx);
    let (st, info) = admin
        .post(
            "/api/v1/registrations/import",
            json!({"pfx_base64": b64, "password": creds.password}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{info}");
    assert_eq!(info["thumbprint"], manual["certificate"]["thumbprint"]);
    let (st, err) = admin
        .post(
            "/api/v1/registrations/import",
            json!({"pfx_base64": b64, "password": "wrong"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "certificate");
    let (st, _) = admin
        .post(
            "/api/v1/registrations/import",
            json!({"pfx_base64": "%%%", "password": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
