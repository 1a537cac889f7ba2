//! Backups under Exchange-like throttling with injected faults, and backups killed at random
//! moments: each ends with every message stored byte-identical and nothing lost; a killed first
//! run, once resumed, drops what was deleted in the tenant since it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backhome::task::Service;
use backhome_store::{NodeKind, RunId};
use common::cli::{backup_command, backup_summary, task_data};
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
    let upn = e.first_upn().await;
    let data = task_data(&e);
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
        let mut child = backup_command(&data, &e.spec.name, false).spawn().unwrap();
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
    let summary = backup_summary(&data, &e.spec.name).await;
    let repo = backhome_store::Repository::open(&e.spec.repo, None).unwrap();
    let env = common::Env { repo, ..e };
    assert_mail_matches(&env, RunId(summary["run_id"].as_i64().unwrap())).await;
}

/// Those of `ids` (Graph ids) that the repository holds, including what an unfinished run
/// checkpointed.
fn held(repo: &backhome_store::Repository, ids: &[String]) -> Vec<String> {
    let objects = repo.objects().unwrap();
    ids.iter()
        .filter(|id| {
            objects
                .iter()
                .any(|o| repo.current_version(o.id, id).unwrap().is_some())
        })
        .cloned()
        .collect()
}

#[actix_web::test]
async fn resumed_first_run_prunes_what_was_deleted_since_the_stop() {
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.users = Some(2);
    // A mailbox takes 4 requests at once and a drive's files are fetched 4 at once: with 100 ms a
    // request, the 300 messages and 300 files added below keep the first run busy for 7.5 s at
    // least, well past its first checkpoint (after 5 s).
    opts.latency_ms = 100;
    let e = env_with(&[Service::Mail, Service::Onedrive], opts).await;
    let upns = e.upns().await;
    let (mail_user, drive_user) = (&upns[0], &upns[1]);
    let adds: Vec<_> = (0..300)
        .map(|_| json!({"op": "add_message", "user": mail_user, "folder": "inbox"}))
        .collect();
    e.control(reqwest::Method::POST, "mutate", Some(json!(adds)))
        .await;
    let adds: Vec<_> = (0..300)
        .map(|i| json!({"op": "add_file", "drive": drive_user, "name": format!("f{i:03}.bin"), "size": 2000}))
        .collect();
    let files: Vec<String> = e
        .control(reqwest::Method::POST, "mutate", Some(json!(adds)))
        .await["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let messages: Vec<String> = e
        .control(
            reqwest::Method::GET,
            &format!("snapshot?user={mail_user}&content=false"),
            None,
        )
        .await["mail"][mail_user.as_str()]
    .as_object()
    .unwrap()
    .values()
    .flat_map(|folder| folder.as_object().unwrap().keys().cloned())
    .collect();
    assert!(messages.len() > 300);

    // The task's first run is killed once it has checkpointed a message and a file, with the
    // mailbox and the drive both unfinished (so no delta token of theirs was recorded).
    let data = task_data(&e);
    let mut child = backup_command(&data, &e.spec.name, false).spawn().unwrap();
    let started = std::time::Instant::now();
    let (message, file) = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run checkpointed no message and file"
        );
        let m = held(&e.repo, &messages).into_iter().next();
        let f = held(&e.repo, &files).into_iter().next();
        if let (Some(m), Some(f)) = (m, f) {
            break (m, f);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap();
    eprintln!("first run killed after {:?}", started.elapsed());
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        e.repo.latest_run().unwrap(),
        None,
        "the first run was committed before it was killed"
    );
    let kept = held(&e.repo, &[message.clone(), file.clone()]);
    assert_eq!(kept.len(), 2, "the killed run kept what it checkpointed");

    // Both are deleted in the tenant; the next run resumes the killed one and lists everything.
    let del = json!([
        {"op": "delete_message", "user": mail_user, "id": message},
        {"op": "delete_file", "drive": drive_user, "id": file},
    ]);
    e.control(reqwest::Method::POST, "mutate", Some(del)).await;
    e.control(reqwest::Method::POST, "latency", Some(json!({"ms": 0})))
        .await;
    let summary = backup_summary(&data, &e.spec.name).await;
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(summary["resumed"], true, "{summary}");
    assert_eq!(summary["items_deleted"], 2, "{summary}");
    let run = RunId(summary["run_id"].as_i64().unwrap());

    let repo = backhome_store::Repository::open(&e.spec.repo, None).unwrap();
    let env = common::Env { repo, ..e };
    let stored = env.items(NodeKind::Message, run);
    assert!(
        !stored.contains_key(&message),
        "the message deleted since the stop is still in the run"
    );
    assert_mail_matches(&env, run).await;
    let stored = env.items(NodeKind::File, run);
    assert!(
        !stored.contains_key(&file),
        "the file deleted since the stop is still in the run"
    );
    let missing: Vec<_> = files
        .iter()
        .filter(|f| **f != file && !stored.contains_key(*f))
        .collect();
    assert!(missing.is_empty(), "files missing: {missing:?}");
    // Every file of the two OneDrives is there, and nothing else.
    assert_eq!(
        stored.len(),
        drive_files(&env, &upns).await,
        "files at {run:?}"
    );

    // A later run whose inbox and drive tokens expired (410) lists both again from scratch and
    // prunes what the committed run holds there and the tenant no longer has.
    let client = backhome::connect::client(&env.spec, &env.creds).unwrap();
    let inbox: serde_json::Value = client
        .get_json(&format!("/users/{mail_user}/mailFolders/inbox"), None)
        .await
        .unwrap();
    let drive = drive_id(&env, drive_user).await;
    let inbox = inbox["id"].as_str().unwrap();
    let snap = env
        .control(
            reqwest::Method::GET,
            &format!("snapshot?user={mail_user}&content=false"),
            None,
        )
        .await;
    let message = snap["mail"][mail_user.as_str()]
        .as_object()
        .unwrap()
        .iter()
        .find(|(folder, _)| folder.trim_start_matches('/') == "Inbox")
        .and_then(|(_, m)| m.as_object().unwrap().keys().next().cloned())
        .unwrap();
    let file = files.iter().find(|f| stored.contains_key(*f)).unwrap();
    let ops = json!([
        {"op": "delete_message", "user": mail_user, "id": message},
        {"op": "delete_file", "drive": drive_user, "id": file},
    ]);
    env.control(reqwest::Method::POST, "mutate", Some(ops))
        .await;
    for pattern in [
        format!("/mailFolders/{inbox}/messages/delta"),
        format!("/drives/{drive}/root/delta"),
    ] {
        let rule = json!({"pattern": pattern, "kind": "resync_required", "probability": 1.0, "remaining": 1});
        env.control(reqwest::Method::POST, "faults", Some(rule))
            .await;
    }
    env.control(reqwest::Method::POST, "counters/reset", None)
        .await;
    let s = env.backup().await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let counters = env.control(reqwest::Method::GET, "counters", None).await;
    assert_eq!(counters["faults"], 2, "both tokens expired: {counters}");
    assert_eq!(s.items_deleted, 2);
    let run = RunId(s.run_id);
    assert!(!env.items(NodeKind::Message, run).contains_key(&message));
    assert_mail_matches(&env, run).await;
    let stored = env.items(NodeKind::File, run);
    assert!(!stored.contains_key(file));
    assert_eq!(
        stored.len(),
        drive_files(&env, &upns).await,
        "files at {run:?}"
    );
}

/// The Graph id of the OneDrive of `upn`.
async fn drive_id(e: &common::Env, upn: &str) -> String {
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let drive: serde_json::Value = client
        .get_json(&format!("/users/{upn}/drive"), None)
        .await
        .unwrap();
    drive["id"].as_str().unwrap().to_owned()
}

/// How many files the OneDrives of `upns` hold in the simulated tenant.
async fn drive_files(e: &common::Env, upns: &[String]) -> usize {
    let mut n = 0;
    for upn in upns {
        let id = &drive_id(e, upn).await;
        let snap = e
            .control(
                reqwest::Method::GET,
                &format!("snapshot?drive={id}&content=false"),
                None,
            )
            .await;
        n += snap["drives"][id]
            .as_object()
            .unwrap()
            .values()
            .filter(|v| *v != "folder")
            .count();
    }
    n
}
