//! Shared set-up of the restore tests: restores of a backup run, and what the simulated tenant
//! holds (message fingerprints, drive and item hashes) to compare before and after.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome::restore::{self, Conflict, RestoreProgress, RestoreReport, RestoreRequest};
use backhome_store::RunId;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::Env;

/// What a message shows through Graph, with its attachments' content hashes (ids change on
/// restore, and a message rebuilt from JSON has other MIME than the original; none of this
/// may change).
pub async fn fingerprint(client: &backhome_graph::Client, upn: &str, id: &str) -> Value {
    let m: Value = client
        .json(backhome_graph::Call::get(format!(
            "/users/{upn}/messages/{id}"
        )))
        .await
        .unwrap();
    let list: Value = client
        .json(backhome_graph::Call::get(format!(
            "/users/{upn}/messages/{id}/attachments"
        )))
        .await
        .unwrap();
    let mut attachments: Vec<Value> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(a["contentBytes"].as_str().unwrap())
                .unwrap();
            json!({"name": a["name"], "contentType": a["contentType"], "isInline": a["isInline"],
                "contentId": a["contentId"], "size": bytes.len(), "hash": blake3::hash(&bytes).to_hex().to_string()})
        })
        .collect();
    attachments.sort_by_key(Value::to_string);
    let mut f = json!({"attachments": attachments});
    for k in [
        "subject",
        "body",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "internetMessageId",
        "importance",
        "categories",
        "isRead",
        "isDraft",
        "receivedDateTime",
        "sentDateTime",
    ] {
        f[k] = m[k].clone();
    }
    f["flagStatus"] = m["flag"]["flagStatus"].clone();
    f
}

/// Folder path → sorted message fingerprints of one mailbox.
pub async fn mail_of(e: &Env, snap: &Value, upn: &str) -> BTreeMap<String, Vec<String>> {
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let mut out = BTreeMap::new();
    for (f, msgs) in snap["mail"][upn].as_object().unwrap() {
        let mut v = Vec::new();
        for id in msgs.as_object().unwrap().keys() {
            v.push(fingerprint(&client, upn, id).await.to_string());
        }
        v.sort();
        out.insert(f.clone(), v);
    }
    out
}

pub async fn snapshot(e: &Env) -> Value {
    e.control(Method::GET, "snapshot", None).await
}

pub async fn restore(e: &Env, run: RunId, paths: &[String], conflict: Conflict) -> RestoreReport {
    restore_to(e, run, paths, conflict, None, None).await
}

pub async fn restore_to(
    e: &Env,
    run: RunId,
    paths: &[String],
    conflict: Conflict,
    user: Option<&str>,
    folder: Option<&str>,
) -> RestoreReport {
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let progress = Arc::new(RestoreProgress::default());
    let report = restore::run(
        client,
        e.repo.clone(),
        RestoreRequest {
            run,
            paths: paths.to_vec(),
            target_user: user.map(str::to_owned),
            target_folder: folder.map(str::to_owned),
            conflict,
        },
        Arc::clone(&progress),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert_eq!(progress.done(), report.items.len() as u64);
    assert_eq!(
        report.restored + report.skipped + report.failed.len() as u64,
        report.items.len() as u64
    );
    report
}

/// The first user with at least two messages in one folder: (upn, folder path, message ids).
pub fn busy_mailbox(snap: &Value) -> (String, String, Vec<String>) {
    for (upn, folders) in snap["mail"].as_object().unwrap() {
        for (f, msgs) in folders.as_object().unwrap() {
            let ids: Vec<String> = msgs.as_object().unwrap().keys().cloned().collect();
            if ids.len() >= 2 {
                return (upn.clone(), f.clone(), ids);
            }
        }
    }
    panic!("no mailbox with two messages in a folder");
}

pub fn mail_path(upn: &str, folder: &str) -> String {
    let mut names = vec!["users".to_owned(), upn.to_owned(), "mail".to_owned()];
    names.extend(
        folder
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    backhome::paths::join(&names)
}

/// Drive path → content hash of one drive.
pub fn drive_of(snap: &Value, drive: &str) -> BTreeMap<String, String> {
    snap["drives"][drive]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, h)| (p.clone(), h.as_str().unwrap().to_owned()))
        .collect()
}

/// Sorted content hashes of a user's events or contacts (ids change on restore).
pub fn hashes(snap: &Value, what: &str, upn: &str) -> Vec<String> {
    let mut h: Vec<String> = snap[what][upn]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    h.sort();
    h
}
