//! The tasks API against a running service and the simulator: list, connection tests with their
//! diagnoses, the directory search, create, edit, delete with and without data, repositories
//! found under a folder, and relink with its tenant check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use backhome::task::Service as Workload;
use base64::Engine as _;
use common::service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A PKCS#12 file whose certificate expired yesterday.
fn expired_pfx(password: &str) -> Vec<u8> {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "expired").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    b.set_not_before(&Asn1Time::from_unix(now - 10 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    openssl::pkcs12::Pkcs12::builder()
        .name("expired")
        .pkey(&key)
        .cert(&cert)
        .build2(password)
        .unwrap()
        .to_der()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_connections_and_relink() {
    let s = service::start(&[Workload::Mail]).await;
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;
    let r = s.env.sim.ready().clone();
    let conn = |cert: Value| {
        json!({
            "cloud": "custom",
            "login_endpoint": r.login_endpoint,
            "graph_endpoint": r.graph_endpoint,
            "tenant_id": r.tenant_id,
            "app_id": r.app_id,
            "certificate": cert,
        })
    };
    let good_cert = json!({"pfx_base64": b64(&s.env.creds.pfx), "password": s.env.creds.password});
    let good = conn(good_cert.clone());

    // Admins only.
    let (st, _) = alice.get("/api/v1/tasks").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = alice
        .post("/api/v1/tasks/test-connection", good.clone())
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The list: task t, idle, its certificate, never run, manual.
    let (st, tasks) = admin.get("/api/v1/tasks").await;
    assert_eq!(st, StatusCode::OK);
    let t = &tasks[0];
    assert_eq!(
        (t["name"].as_str(), t["state"].as_str()),
        (Some("t"), Some("idle"))
    );
    assert_eq!(
        (t["last_run"].clone(), t["next_run"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        t["certificate"]["thumbprint"].as_str().unwrap().len(),
        40,
        "{t}"
    );
    assert!(t["certificate"]["expires_in_days"].as_i64().unwrap() > 30);
    assert!(t.get("pfx").is_none() && !t.to_string().contains(&s.env.creds.password));

    // Connection tests: a working one, then each diagnosis.
    let (st, ok) = admin
        .post("/api/v1/tasks/test-connection", good.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{ok}");
    assert_eq!(ok["ok"], true);
    assert!(ok["sample_user"]["userPrincipalName"].is_string(), "{ok}");
    let diagnosis = |body: Value| {
        let admin = &admin;
        async move {
            let (st, b) = admin.post("/api/v1/tasks/test-connection", body).await;
            assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            (
                b["error"]["code"].as_str().unwrap().to_owned(),
                b["error"]["message"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (code, msg) = diagnosis(conn(
        json!({"pfx_base64": b64(&s.env.creds.pfx), "password": "nope"}),
    ))
    .await;
    assert_eq!(code, "bad_password", "{msg}");
    assert!(!msg.contains("nope"));
    let (code, _) = diagnosis(conn(json!({"pfx_base64": b64(b"hello"), "password": "x"}))).await;
    assert_eq!(code, "bad_certificate");
    let (code, msg) = diagnosis(conn(
        json!({"pfx_base64": b64(&expired_pfx("pw-expired")), "password": "pw-expired"}),
    ))
    .await;
    assert_eq!(code, "expired_certificate", "{msg}");
    let mut wrong_tenant = good.clone();
    wrong_tenant["tenant_id"] = json!("nosuchtenant.onmicrosoft.com");
    let (code, msg) = diagnosis(wrong_tenant).await;
    assert_eq!(code, "wrong_tenant", "{msg}");
    let mut unknown_app = good.clone();
    unknown_app["app_id"] = json!("0badc0de-0000-4000-8000-000000000000");
    assert_eq!(diagnosis(unknown_app).await.0, "unknown_app");
    let app = s
        .env
        .control(
            Method::POST,
            "apps",
            Some(json!({"roles": [], "password": "pw-no-consent"})),
        )
        .await;
    let mut no_consent = conn(json!({
        "pfx_base64": b64(&std::fs::read(app["cert_pfx"].as_str().unwrap()).unwrap()),
        "password": "pw-no-consent"}));
    no_consent["app_id"] = app["app_id"].clone();
    let (code, msg) = diagnosis(no_consent).await;
    assert_eq!(code, "no_consent", "{msg}");
    assert!(msg.contains("consent"), "{msg}");
    let mut unreachable = good.clone();
    unreachable["login_endpoint"] = json!("http://127.0.0.1:9");
    unreachable["graph_endpoint"] = json!("http://127.0.0.1:9");
    assert_eq!(diagnosis(unreachable).await.0, "unreachable");
    let (st, b) = admin
        .post("/api/v1/tasks/test-connection", json!({"tenant_id": "x"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");

    // Directory search for the wizard's pickers.
    let upns = service::upns(&s.env);
    let mut q = good.clone();
    q["kind"] = json!("users");
    q["q"] = json!(&upns[0][..3]);
    let (st, hits) = admin.post("/api/v1/directory", q.clone()).await;
    assert_eq!(st, StatusCode::OK, "{hits}");
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .any(|h| h["address"] == upns[0]),
        "{hits}"
    );
    q["q"] = json!("");
    q["top"] = json!(2);
    let (_, hits) = admin.post("/api/v1/directory", q.clone()).await;
    assert_eq!(hits.as_array().unwrap().len(), 2);
    for kind in ["groups", "sites"] {
        q["kind"] = json!(kind);
        let (st, hits) = admin.post("/api/v1/directory", q.clone()).await;
        assert_eq!(st, StatusCode::OK, "{kind}: {hits}");
        assert!(hits.as_array().unwrap().iter().all(|h| h["id"].is_string()));
    }
    q["kind"] = json!("printers");
    let (st, _) = admin.post("/api/v1/directory", q.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Create: tested, repository created and labelled; fixed schedule → a next run.
    let shared = s.env.dir.path().join("shared");
    let repo = shared.join("backhome/t2");
    let mut create = good.clone();
    let fields = json!({
        "name": "t2", "services": ["mail"], "repo": repo, "portal": true,
        "schedule": {"kind": "fixed", "days": [0, 1, 2, 3, 4, 5, 6], "times": ["03:00"]},
        "retention": {"kind": "runs", "runs": 3},
        "exclude_users": [upns[1]],
    });
    for (k, v) in fields.as_object().unwrap() {
        create[k] = v.clone();
    }
    let (st, t2) = admin.post("/api/v1/tasks", create.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{t2}");
    assert_eq!(
        (t2["name"].as_str(), t2["portal"].as_bool()),
        (Some("t2"), Some(true))
    );
    assert_eq!(t2["retention"], json!({"kind": "runs", "runs": 3}));
    assert!(t2["next_run"].is_string(), "{t2}");
    assert!(repo.join("config.json").is_file());
    let label: Value =
        serde_json::from_slice(&std::fs::read(repo.join("backhome-task.json")).unwrap()).unwrap();
    assert_eq!(label["tenant_id"], r.tenant_id);
    assert!(!label.to_string().contains(&s.env.creds.password));
    let (st, b) = admin.post("/api/v1/tasks", create.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    let mut bad = create.clone();
    bad["name"] = json!("t3");
    bad["repo"] = json!(shared.join("t3"));
    bad["colour"] = json!("blue");
    let (st, b) = admin.post("/api/v1/tasks", bad.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("colour"),
        "{b}"
    );
    bad.as_object_mut().unwrap().remove("colour");
    bad["services"] = json!([]);
    let (st, b) = admin.post("/api/v1/tasks", bad.clone()).await;
    assert!(
        st == StatusCode::BAD_REQUEST
            && b["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("services"),
        "{b}"
    );
    bad["services"] = json!(["mail"]);
    bad["certificate"]["password"] = json!("wrong");
    let (st, b) = admin.post("/api/v1/tasks", bad).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_password"))
    );

    // Edit.
    let (st, e) = admin
        .send(
            Method::PATCH,
            "/api/v1/tasks/t2",
            Some(json!({"portal": false, "schedule": {"kind": "continuous"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{e}");
    assert_eq!(
        (e["portal"].as_bool(), e["schedule"]["kind"].as_str()),
        (Some(false), Some("continuous"))
    );
    let (st, _) = admin
        .send(
            Method::PATCH,
            "/api/v1/tasks/t2",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, b) = admin
        .send(
            Method::PATCH,
            "/api/v1/tasks/t2",
            Some(json!({"certificate": {"pfx_base64": b64(&s.env.creds.pfx), "password": "bad"}})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_password"))
    );
    let (st, e) = admin
        .send(
            Method::PATCH,
            "/api/v1/tasks/t2",
            Some(json!({"certificate": good_cert, "schedule": {"kind": "manual"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{e}");
    let (st, _) = admin
        .send(
            Method::PATCH,
            "/api/v1/tasks/none",
            Some(json!({"portal": true})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // One backup of t2, so its repository has history to keep.
    let (st, _) = admin.post("/api/v1/tasks/t2/runs", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let t0 = Instant::now();
    while admin.get("/api/v1/tasks/t2/progress").await.0 == StatusCode::OK {
        assert!(t0.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, runs) = admin.get("/api/v1/tasks/t2/runs").await;
    assert_eq!(runs[0]["status"], "complete", "{runs}");

    // Delete keeping the data; the repository is found under the shared folder.
    let (st, _) = admin.delete("/api/v1/tasks/t2?delete_data=false").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = admin.get("/api/v1/tasks/t2").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(repo.join("config.json").is_file());
    let root = shared.display().to_string();
    let (st, found) = admin
        .get(&format!("/api/v1/repositories?root={root}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{found}");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(
        (found[0]["runs"].as_u64(), found[0]["task"].clone()),
        (Some(1), Value::Null)
    );
    assert_eq!(found[0]["tenant_id"], r.tenant_id);
    let (st, _) = admin.get("/api/v1/repositories?root=/no/such/folder").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Relink: another tenant is refused; the same tenant gets its history back.
    let mut relink = good.clone();
    relink["name"] = json!("again");
    relink["repo"] = json!(repo);
    let mut other = relink.clone();
    other["tenant_id"] = json!("other.onmicrosoft.com");
    let (st, b) = admin.post("/api/v1/tasks/relink", other).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("other_tenant")),
        "{b}"
    );
    let mut unlabelled = relink.clone();
    unlabelled["repo"] = json!(s.env.spec.repo);
    let (st, b) = admin.post("/api/v1/tasks/relink", unlabelled).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_label")),
        "{b}"
    );
    let (st, again) = admin.post("/api/v1/tasks/relink", relink.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{again}");
    assert_eq!(
        again["exclude_users"],
        json!([upns[1]]),
        "the task's settings come back: {again}"
    );
    assert!(again["accounts"].as_u64().unwrap() > 0, "{again}");
    let (_, runs) = admin.get("/api/v1/tasks/again/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "history kept: {runs}");
    let (st, _) = admin
        .post("/api/v1/tasks/relink", {
            let mut r2 = relink.clone();
            r2["name"] = json!("twice");
            r2
        })
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // An incremental run on the relinked task downloads nothing new (delta tokens kept).
    let (st, run) = admin.post("/api/v1/tasks/again/runs", json!({})).await;
    assert_eq!((st, run["id"].as_i64()), (StatusCode::ACCEPTED, Some(2)));
    let t0 = Instant::now();
    while admin.get("/api/v1/tasks/again/progress").await.0 == StatusCode::OK {
        assert!(t0.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, runs) = admin.get("/api/v1/tasks/again/runs").await;
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["items_added"].as_u64()),
        (Some("complete"), Some(0)),
        "{runs}"
    );

    // Delete with the data.
    let (st, _) = admin.delete("/api/v1/tasks/again?delete_data=true").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(!repo.exists());
    let (st, _) = admin.delete("/api/v1/tasks/again").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The OpenAPI document lists the routes.
    let (_, doc) = admin.get("/api/v1/openapi.json").await;
    for p in [
        "/api/v1/tasks",
        "/api/v1/tasks/relink",
        "/api/v1/tasks/{name}/runs",
        "/api/v1/logs",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
}
