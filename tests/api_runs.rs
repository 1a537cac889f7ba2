//! The runs API against a running service and the simulator: start (409 on a second start),
//! live progress as JSON and as Server-Sent Events, run history with per-item errors, cancel and
//! resume, the logs route with its filters, and notifications of failed runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use backhome::config::Config;
use backhome::task::{Credentials, Service as Workload, TaskStore};
use common::service;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn wait_idle(s: &service::Session, task: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (st, body) = s.get(&format!("/api/v1/tasks/{task}/progress")).await;
        if st == StatusCode::NOT_FOUND {
            let (_, runs) = s.get(&format!("/api/v1/tasks/{task}/runs")).await;
            return runs[0].clone();
        }
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_progress_cancel_logs_and_notices() {
    let env = common::env(&[Workload::Mail]).await;
    let log_dir = env.dir.path().join("log");
    let notices = env.dir.path().join("notices");
    let script = env.dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" >> {}\necho >> {}\n",
            notices.display(),
            notices.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let data = env.dir.path().join("data");
    let log_config = Config {
        log_dir: Some(log_dir.clone()),
        syslog: false,
        log_level: "info".into(),
        ..Config::default()
    };
    backhome::logging::install(&log_config, &data).unwrap();
    let (ld, sc) = (log_dir.clone(), script.clone());
    let s = service::start_with(env, move |c| {
        c.log_dir = Some(ld);
        c.notify_program = Some(sc);
        c.max_concurrent_runs = 1;
    })
    .await;
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;

    // Portal users may not touch runs; nothing runs yet.
    let (st, _) = alice.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = alice.get("/api/v1/logs").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = admin.get("/api/v1/tasks/t/progress").await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (st, _) = admin.post("/api/v1/tasks/t/cancel", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = admin.post("/api/v1/tasks/nope/runs", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, runs) = admin.get("/api/v1/tasks/t/runs").await;
    assert_eq!((st, runs), (StatusCode::OK, json!([])));

    // Slow Graph down so the run is observable; two message downloads fail.
    s.env
        .control(Method::POST, "latency", Some(json!({"ms": 150})))
        .await;
    // Two messages whose downloads are always throttled: two item errors, and throttling counted.
    let snap = s
        .env
        .control(Method::GET, "snapshot?content=false", None)
        .await;
    let broken: Vec<String> = snap["mail"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|folders| folders.as_object().unwrap().values())
        .flat_map(|msgs| msgs.as_object().unwrap().keys().cloned())
        .take(2)
        .collect();
    for id in &broken {
        s.env
            .control(
                Method::POST,
                "faults",
                Some(json!({"pattern": format!("{id}/$value"), "kind": "too_many_requests", "retry_after": 0.01})),
            )
            .await;
    }
    let (st, run) = admin.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{run}");
    assert_eq!(
        (run["id"].as_i64(), run["status"].as_str()),
        (Some(1), Some("running"))
    );
    let (st, body) = admin.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (st, p) = admin.get("/api/v1/tasks/t/progress").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(p["run"], 1);
    let (_, view) = admin.get("/api/v1/tasks/t").await;
    assert!(
        ["running", "queued"].contains(&view["state"].as_str().unwrap()),
        "{view}"
    );

    // Server-Sent Events: progress that moves, then done with the run.
    let resp = admin
        .request(Method::GET, "/api/v1/tasks/t/progress/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if text.contains("event: done") && text.ends_with("\n\n") {
            break;
        }
    }
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().trim_start_matches("event: ");
            let data = lines.next().unwrap().trim_start_matches("data: ");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    let progress: Vec<u64> = events
        .iter()
        .filter(|(n, _)| *n == "progress")
        .map(|(_, v)| v["items_added"].as_u64().unwrap())
        .collect();
    assert!(progress.len() >= 2, "{text}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.last() > progress.first(),
        "progress did not move: {progress:?}"
    );
    let (last_name, done) = events.last().unwrap();
    assert_eq!(*last_name, "done");
    assert_eq!(done["status"], "partial", "{done}");
    assert_eq!(done["item_errors"], 2);
    assert!(done["graph_requests"].as_u64().unwrap() > 0);
    assert!(done["throttled"].as_u64().unwrap() >= 2, "{done}");

    // History and per-item errors.
    let (_, runs) = admin.get("/api/v1/tasks/t/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "partial");
    let (st, d) = admin.get("/api/v1/tasks/t/runs/1").await;
    assert_eq!(st, StatusCode::OK);
    let errors = d["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{d}");
    let upns = service::upns(&s.env);
    assert!(
        upns.contains(&errors[0]["object"].as_str().unwrap().to_owned()),
        "{d}"
    );
    assert!(errors[0]["path"].as_str().unwrap().starts_with("/users/"));
    assert!(!errors[0]["message"].as_str().unwrap().is_empty());
    let (st, _) = admin.get("/api/v1/tasks/t/runs/99").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, view) = admin.get("/api/v1/tasks/t").await;
    assert_eq!(
        (view["state"].as_str(), view["last_run"]["id"].as_i64()),
        (Some("idle"), Some(1))
    );
    let (_, accounts) = admin.get("/api/v1/tasks/t/accounts").await;
    let accounts = accounts.as_array().unwrap();
    assert!(!accounts.is_empty());
    assert!(
        accounts.iter().any(|a| a["items"].as_u64().unwrap() > 0),
        "{accounts:?}"
    );
    // The warning went to the administrators.
    let n = std::fs::read_to_string(&notices).unwrap();
    assert!(
        n.starts_with("@administrators|Backhome backup finished with errors|"),
        "{n}"
    );

    eprintln!("first run: {done}");
    s.env.control(Method::DELETE, "faults", None).await;

    // Cancel: the run stops as cancelled; the next one resumes it and completes.
    s.env
        .control(
            Method::POST,
            "mutate",
            Some(json!(
                (0..40)
                    .map(|_| json!({"op": "add_message", "user": upns[0]}))
                    .collect::<Vec<_>>()
            )),
        )
        .await;
    s.env
        .control(Method::POST, "latency", Some(json!({"ms": 150})))
        .await;
    let (st, run) = admin.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(run["id"], 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (st, c) = admin.post("/api/v1/tasks/t/cancel", json!({})).await;
    assert_eq!((st, c["run"].as_i64()), (StatusCode::ACCEPTED, Some(2)));
    let end = wait_idle(&admin, "t").await;
    assert_eq!(
        (end["id"].as_i64(), end["status"].as_str()),
        (Some(2), Some("cancelled")),
        "{end}"
    );
    s.env
        .control(Method::POST, "latency", Some(json!({"ms": 0})))
        .await;
    let (_, run) = admin.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(
        (run["id"].as_i64(), run["resumed"].as_bool()),
        (Some(2), Some(true)),
        "{run}"
    );
    let end = wait_idle(&admin, "t").await;
    assert_eq!(
        (end["id"].as_i64(), end["status"].as_str()),
        (Some(2), Some("complete")),
        "{end}"
    );

    // A run that cannot sign in fails with its reason, and the administrators are told.
    let mut bad = s.env.spec.clone();
    bad.name = "bad".into();
    bad.repo = s.env.dir.path().join("repo-bad");
    TaskStore::open(&s.data)
        .unwrap()
        .create(
            &bad,
            &Credentials {
                pfx: s.env.creds.pfx.clone(),
                password: "wrong-password".into(),
            },
        )
        .unwrap();
    let (st, _) = admin.post("/api/v1/tasks/bad/runs", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let end = wait_idle(&admin, "bad").await;
    assert_eq!(end["status"], "failed");
    assert!(end["error"].as_str().unwrap().contains("password"), "{end}");
    let n = std::fs::read_to_string(&notices).unwrap();
    assert!(n.contains("Backhome backup failed|Task bad"), "{n}");

    // Logs: filtered by task, run, level, text and account.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, logs) = admin.get("/api/v1/logs?task=t&run=1").await;
    assert_eq!(st, StatusCode::OK);
    let logs = logs.as_array().unwrap();
    assert!(
        logs.iter().all(|l| l["task"] == "t" && l["run"] == 1),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l["message"].as_str().unwrap().contains("backup finished")),
        "{logs:?}"
    );
    let (_, warn) = admin.get("/api/v1/logs?task=t&level=warn").await;
    let warn = warn.as_array().unwrap();
    assert!(warn.len() >= 2, "{warn:?}");
    assert!(
        warn.iter()
            .all(|l| ["warn", "error"].contains(&l["level"].as_str().unwrap()))
    );
    let object = errors[0]["object"].as_str().unwrap();
    let (_, by_object) = admin
        .get(&format!("/api/v1/logs?object={object}&level=warn"))
        .await;
    assert!(!by_object.as_array().unwrap().is_empty(), "{by_object}");
    let (_, text) = admin.get("/api/v1/logs?q=cancel&task=t").await;
    assert!(!text.as_array().unwrap().is_empty());
    let (_, failed) = admin.get("/api/v1/logs?task=bad&level=error").await;
    assert!(!failed.as_array().unwrap().is_empty());
    let (_, one) = admin.get("/api/v1/logs?limit=1").await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (_, older) = admin
        .get(&format!("/api/v1/logs?limit=5&before={}", one[0]["id"]))
        .await;
    assert!(
        older
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["id"].as_i64() < one[0]["id"].as_i64())
    );
    let (st, _) = admin.get("/api/v1/logs?level=loud").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // No secret reached the log file.
    let file = std::fs::read_to_string(log_dir.join("backhome.log")).unwrap();
    assert!(file.contains("backup finished"));
    assert!(!file.contains(&s.env.creds.password));
}
