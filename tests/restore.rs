//! Restores to the simulated tenant: files (small, 200 MB, site libraries), calendars, contacts
//! and channels round trip against the simulator's content hashes; other targets, restores under
//! faults and throttling, cancellation, older runs and the command line. Mail restores are in
//! `restore_mail.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome::cli::browse::Target;
use backhome::restore::{self, Conflict, Outcome, RestoreProgress, RestoreRequest};
use backhome::task::Service;
use backhome_store::RunId;
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::restore::{
    busy_mailbox, drive_of, hashes, mail_of, mail_path, restore, restore_to, snapshot,
};
use common::{env, env_with};

#[actix_web::test]
async fn files_round_trip_with_large_file_and_conflict_policies() {
    let e = env(&[Service::Onedrive]).await;
    let before0 = snapshot(&e).await;
    let upn = before0["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let drive_resp: Value = {
        let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
        client
            .json(backhome_graph::Call::get(format!(
                "/users/{upn}/drive?$select=id"
            )))
            .await
            .unwrap()
    };
    let drive = drive_resp["id"].as_str().unwrap().to_owned();
    // A folder with a small file and one above the simple-upload limit.
    let folder = e
        .control(
            Method::POST,
            "mutate",
            Some(json!({"op": "add_drive_folder", "drive": drive, "name": "Projects"})),
        )
        .await["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = e
        .control(
            Method::POST,
            "mutate",
            Some(json!([
                {"op": "add_file", "drive": drive, "parent": folder, "name": "big.bin", "size": 9 * 1024 * 1024 + 17},
                {"op": "add_file", "drive": drive, "parent": folder, "name": "notes.txt", "content": "hello restore"},
            ])),
        )
        .await["results"]
        .clone();
    let run = RunId(e.backup().await.run_id);
    let before = drive_of(&snapshot(&e).await, &drive);

    e.control(
        Method::POST,
        "mutate",
        Some(json!([
            {"op": "delete_file", "drive": drive, "id": folder},
        ])),
    )
    .await;
    assert_ne!(drive_of(&snapshot(&e).await, &drive), before);
    let path = format!("/users/{upn}/onedrive/Projects");
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 3, "{report:?}");
    assert_eq!(drive_of(&snapshot(&e).await, &drive), before);

    // Modified time kept.
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let now: Value = client
        .json(backhome_graph::Call::get(format!(
            "/drives/{drive}/root:/Projects/notes.txt"
        )))
        .await
        .unwrap();
    let Target::Node(stored) =
        backhome::cli::browse::resolve(&e.repo, run, &format!("{path}/notes.txt")).unwrap()
    else {
        panic!("not a node")
    };
    assert_eq!(
        now["fileSystemInfo"]["lastModifiedDateTime"],
        stored.metadata["fileSystemInfo"]["lastModifiedDateTime"]
    );

    // A changed file: skip leaves it, overwrite puts the backed-up bytes back.
    let notes_id = now["id"].as_str().unwrap().to_owned();
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "modify_file", "drive": drive, "id": notes_id, "size": 300})),
    )
    .await;
    let changed = drive_of(&snapshot(&e).await, &drive);
    assert_ne!(changed, before);
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    assert_eq!(report.restored, 0, "{report:?}");
    assert_eq!(drive_of(&snapshot(&e).await, &drive), changed);
    let report = restore(&e, run, &[format!("{path}/notes.txt")], Conflict::Overwrite).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1);
    assert_eq!(drive_of(&snapshot(&e).await, &drive), before);

    // Keep both: a second file under another name, same bytes.
    let report = restore(&e, run, &[format!("{path}/notes.txt")], Conflict::KeepBoth).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = drive_of(&snapshot(&e).await, &drive);
    assert_eq!(after.len(), before.len() + 1);
    let h = &before["Projects/notes.txt"];
    assert_eq!(after.values().filter(|v| *v == h).count(), 2);
    let _ = ids;
}

#[actix_web::test]
async fn files_into_another_onedrive_under_a_restored_folder() {
    let e = env(&[Service::Onedrive]).await;
    let run = RunId(e.backup().await.run_id);
    let snap = snapshot(&e).await;
    let users: Vec<String> = snap["mail"].as_object().unwrap().keys().cloned().collect();
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let mut with_drive = Vec::new();
    for u in &users {
        let d: Result<Value, _> = client
            .json(backhome_graph::Call::get(format!(
                "/users/{u}/drive?$select=id"
            )))
            .await;
        if let Ok(d) = d {
            with_drive.push((u.clone(), d["id"].as_str().unwrap().to_owned()));
        }
    }
    let ((from, d_from), (to, d_to)) = (with_drive[0].clone(), with_drive[1].clone());
    let source = drive_of(&snap, &d_from);
    assert!(!source.is_empty());
    let report = restore_to(
        &e,
        run,
        &[format!("/users/{from}/onedrive")],
        Conflict::Skip,
        Some(&to),
        Some("Restored 2026-11-24 14:30"),
    )
    .await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let theirs = drive_of(&snapshot(&e).await, &d_to);
    for (p, h) in &source {
        assert_eq!(
            // OneDrive names cannot hold ':'.
            theirs.get(&format!("Restored 2026-11-24 14.30/{p}")),
            Some(h),
            "{p}"
        );
    }
}

#[actix_web::test]
async fn events_and_contacts_are_recreated_once() {
    let e = env(&[Service::Calendar, Service::Contacts]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, events) = before["events"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(u, v)| {
            u.contains('@')
                && v.as_object().unwrap().len() >= 2
                && !before["contacts"][u.as_str()]
                    .as_object()
                    .unwrap()
                    .is_empty()
        })
        .map(|(u, v)| (u.clone(), v.as_object().unwrap().clone()))
        .unwrap();
    let contacts = before["contacts"][&upn].as_object().unwrap().clone();
    let ev_id = events.keys().next().unwrap().clone();
    let co_id = contacts.keys().next().unwrap().clone();
    e.control(
        Method::POST,
        "mutate",
        Some(json!([
            {"op": "delete_event", "user": upn, "id": ev_id},
            {"op": "delete_contact", "user": upn, "id": co_id},
        ])),
    )
    .await;
    let paths = [
        format!("/users/{upn}/calendar"),
        format!("/users/{upn}/contacts"),
    ];
    let report = restore(&e, run, &paths, Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 2, "{report:?}");
    let after = snapshot(&e).await;
    assert_eq!(
        after["events"][&upn].as_object().unwrap().len(),
        events.len()
    );
    assert_eq!(
        after["contacts"][&upn].as_object().unwrap().len(),
        contacts.len()
    );
    // Idempotent.
    let again = restore(&e, run, &paths, Conflict::Skip).await;
    assert_eq!(again.restored, 0, "{again:?}");
    assert_eq!(snapshot(&e).await, after);
}

#[actix_web::test]
async fn restore_under_faults_and_throttling_completes_without_duplicates() {
    let mut opts = graph_sim::SimOptions::new(graph_sim::Profile::Tiny);
    opts.throttle.enabled = true;
    opts.throttle.retry_after = 0.1;
    let e = env_with(&[Service::Mail, Service::Onedrive], opts).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, folder, ids) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    let ops: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": "delete_message", "user": upn, "id": id}))
        .collect();
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;

    // Answers that say "not done, try again": everything is restored in one go.
    for kind in [
        "service_unavailable",
        "too_many_requests",
        "gateway_timeout",
    ] {
        e.control(
            Method::POST,
            "faults",
            Some(json!({"pattern": "/users/", "kind": kind, "probability": 0.08, "retry_after": 0.05})),
        )
        .await;
    }
    let path = mail_path(&upn, &folder);
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let counters = e.control(Method::GET, "counters", None).await;
    assert!(counters["faults"].as_u64().unwrap() > 0, "{counters}");
    for (mailbox, peak) in counters["max_concurrency_by_mailbox"].as_object().unwrap() {
        assert!(
            peak.as_u64().unwrap() <= 4,
            "mailbox {mailbox} saw {peak} concurrent requests"
        );
    }
    e.control(Method::DELETE, "faults", None).await;
    assert_eq!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );

    // Connections dropped after the request: some items may fail; a second run completes
    // them and nothing is duplicated.
    let ops: Vec<Value> = snapshot(&e).await["mail"][&upn][&folder]
        .as_object()
        .unwrap()
        .keys()
        .map(|id| json!({"op": "delete_message", "user": upn, "id": id}))
        .collect();
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;
    e.control(
        Method::POST,
        "faults",
        Some(json!({"pattern": "/messages", "kind": "connection_reset", "probability": 0.3})),
    )
    .await;
    let _first = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    e.control(Method::DELETE, "faults", None).await;
    let second = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );

    // A whole OneDrive, every file deleted, restored under faults of the drive endpoints.
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let d: Value = client
        .json(backhome_graph::Call::get(format!(
            "/users/{upn}/drive?$select=id"
        )))
        .await
        .unwrap();
    let drive = d["id"].as_str().unwrap().to_owned();
    let files = drive_of(&before, &drive);
    let ops: Vec<Value> = files
        .keys()
        .filter(|p| !p.contains('/'))
        .map(|p| json!({"op": "delete_file", "drive": drive, "id": p}))
        .collect();
    assert!(!ops.is_empty());
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;
    for kind in [
        "service_unavailable",
        "too_many_requests",
        "gateway_timeout",
    ] {
        e.control(
            Method::POST,
            "faults",
            Some(json!({"pattern": "/drives/", "kind": kind, "probability": 0.08, "retry_after": 0.05})),
        )
        .await;
    }
    let report = restore(&e, run, &[format!("/users/{upn}/onedrive")], Conflict::Skip).await;
    e.control(Method::DELETE, "faults", None).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(drive_of(&snapshot(&e).await, &drive), files);
}

#[actix_web::test]
async fn bad_requests_are_refused_and_cancel_stops() {
    let e = env(&[Service::Mail]).await;
    let run = RunId(e.backup().await.run_id);
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let go = |paths: Vec<String>, folder: Option<&str>, cancel: bool| {
        let (client, repo) = (client.clone(), e.repo.clone());
        let folder = folder.map(str::to_owned);
        async move {
            restore::run(
                client,
                repo,
                RestoreRequest {
                    target_folder: folder,
                    ..RestoreRequest::new(run, paths)
                },
                Arc::default(),
                Arc::new(AtomicBool::new(cancel)),
            )
            .await
        }
    };
    assert!(go(vec![], None, false).await.is_err());
    assert!(
        go(vec!["/users/nobody@example.com".into()], None, false)
            .await
            .is_err()
    );
    let snap = snapshot(&e).await;
    let upn = snap["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(
        go(vec![format!("/users/{upn}/mail")], Some("a/b"), false)
            .await
            .is_err()
    );
    assert!(matches!(
        go(vec![format!("/users/{upn}/mail")], None, true).await,
        Err(restore::RestoreError::Cancelled)
    ));
    assert_eq!(snapshot(&e).await, snap, "nothing was written");
    let _ = Outcome::Restored;
}

#[actix_web::test]
async fn a_cancelled_restore_run_again_completes_without_duplicates() {
    let mut opts = graph_sim::SimOptions::new(graph_sim::Profile::Tiny);
    opts.latency_ms = 5;
    let e = env_with(&[Service::Mail], opts).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, _, _) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    let ops: Vec<Value> = before["mail"][&upn]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().keys().cloned().collect::<Vec<_>>())
        .map(|id| json!({"op": "delete_message", "user": upn, "id": id}))
        .collect();
    let total = ops.len();
    assert!(
        total >= 8,
        "enough messages to cancel in the middle: {total}"
    );
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;

    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let progress = Arc::new(RestoreProgress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let (p, c) = (Arc::clone(&progress), Arc::clone(&cancel));
    let watcher = tokio::spawn(async move {
        while p.restored.load(std::sync::atomic::Ordering::Relaxed) < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        c.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let result = restore::run(
        client,
        e.repo.clone(),
        RestoreRequest::new(run, vec![format!("/users/{upn}/mail")]),
        Arc::clone(&progress),
        cancel,
    )
    .await;
    watcher.abort();
    assert!(
        matches!(result, Err(restore::RestoreError::Cancelled)),
        "{result:?}"
    );
    let partial: usize = mail_of(&e, &snapshot(&e).await, &upn)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert!(partial >= 2 && partial < total, "{partial} of {total}");

    let again = restore(&e, run, &[format!("/users/{upn}/mail")], Conflict::Skip).await;
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert_eq!(again.restored as usize, total - partial);
    assert_eq!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );
}

/// Runs the binary on a blocking thread, so that the in-process simulator keeps serving.
async fn backhome_cli(data: &std::path::Path, args: Vec<String>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_backhome"));
    cmd.arg("--data-dir").arg(data).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[actix_web::test]
async fn command_line_restore_and_its_exit_codes() {
    let e = env(&[Service::Mail]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, folder, ids) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "delete_message", "user": upn, "id": ids[0]})),
    )
    .await;
    let data = e.dir.path().join("data");
    backhome::task::TaskStore::open(&data)
        .unwrap()
        .create(&e.spec, &e.creds)
        .unwrap();
    let path = mail_path(&upn, &folder);
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "restore",
            "--task",
            "t",
            "--at",
            &run.0.to_string(),
            "--json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let o = backhome_cli(&data, args(&["--conflict", "skip", &path])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["restored"], 1, "{report}");
    assert_eq!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );

    // Items that fail: exit code 2, each listed with its reason.
    let o = backhome_cli(&data, args(&["--to-user", "nobody@contoso.invalid", &path])).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["failed"][0]["reason"].as_str().unwrap().len() > 5);

    // A path that is not in the backup, or a bad policy: exit code 1, nothing written.
    let o = backhome_cli(&data, args(&["/users/nobody@contoso.invalid/mail"])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such path"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = backhome_cli(&data, args(&["--conflict", "merge", &path])).await;
    assert_eq!(o.status.code(), Some(2), "clap refuses bad values with 2");
    assert_eq!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );
}

#[actix_web::test]
async fn whole_calendars_and_contacts_round_trip_identically() {
    let e = env(&[Service::Calendar, Service::Contacts]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let upn = before["events"]
        .as_object()
        .unwrap()
        .keys()
        .find(|u| {
            u.contains('@')
                && !before["events"][u.as_str()].as_object().unwrap().is_empty()
                && !before["contacts"][u.as_str()]
                    .as_object()
                    .unwrap()
                    .is_empty()
        })
        .unwrap()
        .clone();
    let mut ops: Vec<Value> = Vec::new();
    for (what, op) in [("events", "delete_event"), ("contacts", "delete_contact")] {
        for id in before[what][&upn].as_object().unwrap().keys() {
            ops.push(json!({"op": op, "user": upn, "id": id}));
        }
    }
    let n = ops.len();
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;
    let paths = [format!("/users/{upn}"), format!("/users/{upn}/calendar")];
    let report = restore(&e, run, &paths, Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored as usize, n, "{report:?}");
    let after = snapshot(&e).await;
    for what in ["events", "contacts"] {
        assert_eq!(
            hashes(&after, what, &upn),
            hashes(&before, what, &upn),
            "{what}"
        );
    }
}

/// Every team's channels (id, name) and their root posts (createdDateTime, author, reply count).
async fn team_channels(
    client: &backhome_graph::Client,
    team: &str,
) -> BTreeMap<String, Vec<(String, String, usize)>> {
    use futures_util::TryStreamExt;
    let mut out = BTreeMap::new();
    let channels: Vec<Value> = client
        .items(backhome_graph::Call::get(format!("/teams/{team}/channels")))
        .try_collect()
        .await
        .unwrap();
    for c in channels {
        let cid = c["id"].as_str().unwrap();
        let posts: Vec<Value> = client
            .items(backhome_graph::Call::get(format!(
                "/teams/{team}/channels/{cid}/messages"
            )))
            .try_collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for p in posts {
            let replies: Vec<Value> = client
                .items(backhome_graph::Call::get(format!(
                    "/teams/{team}/channels/{cid}/messages/{}/replies",
                    p["id"].as_str().unwrap()
                )))
                .try_collect()
                .await
                .unwrap();
            let live = replies
                .iter()
                .filter(|r| r["deletedDateTime"].is_null())
                .count();
            rows.push((
                // To the second: the simulator keeps whole seconds of imported times.
                p["createdDateTime"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(19)
                    .collect(),
                p["from"]["user"]["displayName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                live,
            ));
        }
        rows.sort();
        out.insert(c["displayName"].as_str().unwrap().to_owned(), rows);
    }
    out
}

#[actix_web::test]
async fn channels_are_imported_into_migration_mode_channels_with_authors_and_times() {
    let e = env(&[Service::Teams]).await;
    let run = RunId(e.backup().await.run_id);
    let team = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.info.extra["team"] == json!(true))
        .unwrap();
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let before = team_channels(&client, &team.info.graph_id).await;
    let nick = team.info.address.clone().unwrap();
    let report = restore(&e, run, &[format!("/teams/{nick}")], Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.restored > 0);
    let after = team_channels(&client, &team.info.graph_id).await;
    for (name, posts) in &before {
        let restored = after
            .get(&format!("{name} (restored)"))
            .unwrap_or_else(|| panic!("{name} not restored: {:?}", after.keys()));
        assert_eq!(
            restored, posts,
            "{name}: original times, authors and replies"
        );
    }
    // Again with skip: nothing new.
    let again = restore(&e, run, &[format!("/teams/{nick}")], Conflict::Skip).await;
    assert_eq!(again.restored, 0, "{again:?}");
    assert_eq!(team_channels(&client, &team.info.graph_id).await, after);
}

#[actix_web::test]
async fn without_the_migration_permission_channels_become_transcripts_in_the_library() {
    let e = env(&[Service::Teams]).await;
    let run = RunId(e.backup().await.run_id);
    let app = e
        .control(
            Method::POST,
            "apps",
            Some(json!({"roles": ["User.Read.All", "Group.Read.All", "Sites.ReadWrite.All", "Files.ReadWrite.All", "ChannelMessage.Read.All"], "password": "pw"})),
        )
        .await;
    let mut spec = e.spec.clone();
    spec.app_id = app["app_id"].as_str().unwrap().to_owned();
    let creds = backhome::task::Credentials {
        pfx: std::fs::read(app["cert_pfx"].as_str().unwrap()).unwrap(),
        password: app["cert_password"].as_str().unwrap().to_owned(),
    };
    let team = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.info.extra["team"] == json!(true))
        .unwrap();
    let nick = team.info.address.clone().unwrap();
    let client = backhome::connect::client(&spec, &creds).unwrap();
    let report = restore::run(
        client,
        e.repo.clone(),
        RestoreRequest::new(run, vec![format!("/teams/{nick}")]),
        Arc::default(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.restored > 0);
    let snap = snapshot(&e).await;
    let transcripts: usize = snap["drives"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|d| d.as_object().unwrap().keys())
        .filter(|p| p.starts_with("Restored conversations/") && p.ends_with(".html"))
        .count();
    assert_eq!(transcripts as u64, report.restored, "{report:?}");
}

#[actix_web::test]
async fn a_200_mb_file_round_trips_through_an_upload_session() {
    let e = env(&[Service::Onedrive]).await;
    let snap = snapshot(&e).await;
    let upn = snap["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let d: Value = client
        .json(backhome_graph::Call::get(format!(
            "/users/{upn}/drive?$select=id"
        )))
        .await
        .unwrap();
    let drive = d["id"].as_str().unwrap().to_owned();
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "add_file", "drive": drive, "name": "big.bin", "size": 200u64 * 1024 * 1024})),
    )
    .await;
    let run = RunId(e.backup().await.run_id);
    let before = drive_of(&snapshot(&e).await, &drive);
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "delete_file", "drive": drive, "id": "big.bin"})),
    )
    .await;
    let report = restore(
        &e,
        run,
        &[format!("/users/{upn}/onedrive/big.bin")],
        Conflict::Skip,
    )
    .await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1);
    assert_eq!(drive_of(&snapshot(&e).await, &drive), before);
}

#[actix_web::test]
async fn site_libraries_and_group_files_round_trip() {
    let e = env(&[Service::Sharepoint, Service::Groups]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    // Every library of every site, and every group's files: (backup path, drive id).
    let mut targets: Vec<(String, String)> = Vec::new();
    for top in ["/sites", "/groups"] {
        for obj in backhome::cli::browse::list(&e.repo, run, top, false).unwrap() {
            for root in backhome::cli::browse::list(&e.repo, run, &obj.path, false).unwrap() {
                let drive = if let Some(d) = root.graph_id.strip_prefix("root:lib:") {
                    d.to_owned()
                } else if root.graph_id == "root:files" {
                    let o = e
                        .repo
                        .objects()
                        .unwrap()
                        .into_iter()
                        .find(|o| obj.path.ends_with(o.info.address.as_deref().unwrap_or("-")))
                        .unwrap();
                    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
                    let d: Value = client
                        .json(backhome_graph::Call::get(format!(
                            "/groups/{}/drive?$select=id",
                            o.info.graph_id
                        )))
                        .await
                        .unwrap();
                    d["id"].as_str().unwrap().to_owned()
                } else {
                    continue;
                };
                if before["drives"][&drive]
                    .as_object()
                    .is_some_and(|f| f.keys().any(|p| !p.contains('/')))
                {
                    targets.push((root.path.clone(), drive));
                }
            }
        }
    }
    assert!(
        targets.iter().any(|(p, _)| p.starts_with("/sites/")),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|(p, _)| p.starts_with("/groups/")),
        "{targets:?}"
    );
    let mut ops = Vec::new();
    let drives: std::collections::BTreeSet<&String> = targets.iter().map(|(_, d)| d).collect();
    for drive in drives {
        for p in before["drives"][drive]
            .as_object()
            .unwrap()
            .keys()
            .filter(|p| !p.contains('/'))
        {
            ops.push(json!({"op": "delete_file", "drive": drive, "id": p}));
        }
    }
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;
    let paths: Vec<String> = targets.iter().map(|(p, _)| p.clone()).collect();
    let report = restore(&e, run, &paths, Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = snapshot(&e).await;
    for (path, drive) in &targets {
        // Names OneDrive and SharePoint refuse (here a '"') come back with '_' instead.
        let expected: BTreeMap<String, String> = drive_of(&before, drive)
            .into_iter()
            .map(|(p, h)| (p.replace('"', "_"), h))
            .collect();
        assert_eq!(drive_of(&after, drive), expected, "{path}");
    }
}

#[actix_web::test]
async fn an_event_comes_back_with_its_attachments() {
    let e = env(&[Service::Calendar]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    // A backed-up event with attachments: (upn, path, graph id).
    let mut found = None;
    'users: for upn in before["events"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|u| u.contains('@'))
    {
        let Ok(entries) =
            backhome::cli::browse::list(&e.repo, run, &format!("/users/{upn}/calendar"), true)
        else {
            continue;
        };
        for entry in entries.into_iter().filter(|x| x.kind == "event") {
            let Target::Node(v) =
                backhome::cli::browse::resolve(&e.repo, run, &entry.path).unwrap()
            else {
                continue;
            };
            let mut json = Vec::new();
            std::io::Read::read_to_end(
                &mut e.repo.read_content(v.content.unwrap().id).unwrap(),
                &mut json,
            )
            .unwrap();
            let json: Value = serde_json::from_slice(&json).unwrap();
            if json["attachments"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                found = Some((upn.clone(), entry.path.clone(), v.graph_id.clone()));
                break 'users;
            }
        }
    }
    let (upn, path, id) = found.expect("the tenant has an event with attachments");
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "delete_event", "user": upn, "id": id})),
    )
    .await;
    let report = restore(&e, run, &[path], Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1);
    assert_eq!(
        hashes(&snapshot(&e).await, "events", &upn),
        hashes(&before, "events", &upn),
        "the event and its attachments are identical"
    );
}

#[actix_web::test]
async fn an_older_run_is_restored_as_it_was() {
    let e = env(&[Service::Onedrive]).await;
    let snap = snapshot(&e).await;
    let upn = snap["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let d: Value = client
        .json(backhome_graph::Call::get(format!(
            "/users/{upn}/drive?$select=id"
        )))
        .await
        .unwrap();
    let drive = d["id"].as_str().unwrap().to_owned();
    e.control(
        Method::POST,
        "mutate",
        Some(
            json!({"op": "add_file", "drive": drive, "name": "plan.txt", "content": "version one"}),
        ),
    )
    .await;
    let run1 = RunId(e.backup().await.run_id);
    let at_run1 = drive_of(&snapshot(&e).await, &drive);
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "modify_file", "drive": drive, "id": "plan.txt", "size": 5000})),
    )
    .await;
    let run2 = RunId(e.backup().await.run_id);
    assert!(run2 > run1);
    assert_ne!(drive_of(&snapshot(&e).await, &drive), at_run1);
    let path = format!("/users/{upn}/onedrive/plan.txt");
    let report = restore(&e, run1, &[path], Conflict::Overwrite).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1);
    assert_eq!(drive_of(&snapshot(&e).await, &drive), at_run1);
}
