//! Backups under Exchange-like throttling with injected faults, and backups killed at random
//! moments: each ends with every message stored byte-identical and nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use backhome::task::{Service, TaskStore};
use backhome_store::RunId;
use common::{assert_mail_matches, env_with};
use graph_sim::{Profile, SimOptions};
use serde_json::json;

#[actix_web::test]
async fn throttled_faulty_tenant_is_backed_up_completely_within_mailbox_limits() {
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.throttle.enabled = true;
    opts.throttle.retry_after = 0.1;
    opts.latency_ms = 2;
    let e = env_with(&[Service::Mail, Service::Onedrive], opts).await;
    // About 10 % of Graph answers fail in one of the ways real tenants fail.
    for (pattern, kind) in [
        ("/users/", "service_unavailable"),
        ("/users/", "gateway_timeout"),
        ("/users/", "connection_reset"),
        ("/users/", "truncated_body"),
        ("/users/", "malformed_json"),
        ("/drives/", "truncated_body"),
    ] {
        e.control(
            reqwest::Method::POST,
            "faults",
            Some(json!({"pattern": pattern, "kind": kind, "probability": 0.02})),
        )
        .await;
    }
    let s = e.backup().await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let counters = e.control(reqwest::Method::GET, "counters", None).await;
    assert!(
        counters["faults"].as_u64().unwrap() > 0,
        "faults were injected: {counters}"
    );
    for (mailbox, peak) in counters["max_concurrency_by_mailbox"].as_object().unwrap() {
        assert!(
            peak.as_u64().unwrap() <= 4,
            "mailbox {mailbox} saw {peak} concurrent requests"
        );
    }
    e.control(reqwest::Method::DELETE, "faults", None).await;
    assert_mail_matches(&e, RunId(s.run_id)).await;
}

#[actix_web::test]
async fn killed_backups_resume_and_end_complete() {
    let mut opts = SimOptions::new(Profile::Tiny);
    // Slow enough that a run lasts several seconds, so that kills land in the middle of it.
    opts.latency_ms = 20;
    let e = env_with(&[Service::Mail, Service::Onedrive, Service::Contacts], opts).await;
    let upn = e
        .control(reqwest::Method::GET, "snapshot?content=false", None)
        .await["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let data = e.dir.path().join("data");
    TaskStore::open(&data)
        .unwrap()
        .create(&e.spec, &e.creds)
        .unwrap();
    let backhome = env!("CARGO_BIN_EXE_backhome");
    let run = |json: bool| {
        let mut c = Command::new(backhome);
        c.arg("--data-dir")
            .arg(&data)
            .args(["backup", "--task", &e.spec.name]);
        if json {
            c.arg("--json");
        }
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        c
    };
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut killed = 0;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // New mail between kills, so that every run has something to download.
        let add = json!([
            {"op": "add_message", "user": upn, "folder": "inbox"},
            {"op": "add_message", "user": upn, "folder": "inbox"},
        ]);
        e.control(reqwest::Method::POST, "mutate", Some(add)).await;
        let mut child = run(false).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(50 + seed % 900)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        // The repository opens and is sound after every kill.
        let repo = backhome_store::Repository::open(&e.spec.repo, None).unwrap();
        assert!(
            repo.verify(backhome_store::VerifyMode::Quick)
                .unwrap()
                .is_ok()
        );
    }
    eprintln!("{killed} of 20 runs were killed in the middle");
    assert!(killed >= 10, "only {killed} runs were interrupted");
    let mut last = run(true);
    let out = tokio::task::spawn_blocking(move || last.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let repo = backhome_store::Repository::open(&e.spec.repo, None).unwrap();
    let env = common::Env { repo, ..e };
    assert_mail_matches(&env, RunId(summary["run_id"].as_i64().unwrap())).await;
}
