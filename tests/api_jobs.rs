//! Restore and export jobs over HTTP: a portal user restores a deleted message of their own
//! account and the simulator has it again; they cannot restore another account's data or into
//! another account; an administrator exports a folder as ZIP and as MBOX, downloads both and
//! reads them back with Python's `zipfile` and `mailbox`; jobs are private to their owner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use backhome::task::Service;
use common::service::{self, Session, upns};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn wait(s: &Session, id: &str) -> Value {
    for _ in 0..600 {
        let (st, job) = s.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(st, StatusCode::OK, "{job}");
        if job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

fn sha256_hex(b: &[u8]) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const READ_ZIP: &str = r"
import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
for i in z.infolist():
    if i.filename.endswith('.eml'):
        print(hashlib.sha256(z.read(i)).hexdigest())
";

const READ_MBOX: &str = r"
import email.header, mailbox, sys
for m in mailbox.mbox(sys.argv[1]):
    print(str(email.header.make_header(email.header.decode_header(m['subject'] or ''))))
";

fn python(script: &str, file: &std::path::Path) -> Vec<String> {
    let out = Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_export_jobs() {
    let s = service::start(&[Service::Mail]).await;
    let users = upns(&s.env);
    let (alice_upn, bob_upn) = (users[0].clone(), users[1].clone());
    let backup = s.env.backup().await;
    assert!(backup.errors.is_empty(), "{:?}", backup.errors);
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;
    let bob = s.sign_in("bob").await;

    let inbox = format!("/users/{alice_upn}/mail/Inbox");
    let (_, listing) = alice
        .get(&format!("/api/v1/tasks/t/browse?path={}", q(&inbox)))
        .await;
    let messages: Vec<Value> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .cloned()
        .collect();
    assert!(messages.len() >= 2);
    let victim = &messages[0];
    let victim_path = victim["path"].as_str().unwrap().to_owned();
    let victim_bytes = alice
        .request(
            Method::GET,
            &format!("/api/v1/tasks/t/item/content?path={}", q(&victim_path)),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!victim_bytes.is_empty(), "alice reads her own message");

    // The message is deleted in Microsoft 365; alice restores it to its place. A restored
    // message is a new one (new id, MIME written by Exchange; tests/restore.rs compares what it
    // shows), so here the victim's folder is followed: one message fewer, then one new again.
    let snap_path = format!("snapshot?user={}", q(&alice_upn));
    let folder_of = |snap: &Value| -> (String, Vec<String>) {
        let (name, ids) = snap["mail"][&alice_upn]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, f)| f.get(victim["graph_id"].as_str().unwrap()).is_some())
            .expect("the victim's folder");
        (
            name.clone(),
            ids.as_object().unwrap().keys().cloned().collect(),
        )
    };
    let (folder, before) = folder_of(&s.env.control(Method::GET, &snap_path, None).await);
    let ids_in = |snap: &Value| -> Vec<String> {
        snap["mail"][&alice_upn][&folder]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    s.env
        .control(
            Method::POST,
            "mutate",
            Some(json!({"op": "delete_message", "user": alice_upn, "id": victim["graph_id"]})),
        )
        .await;
    let deleted = ids_in(&s.env.control(Method::GET, &snap_path, None).await);
    assert_eq!(deleted.len() + 1, before.len());
    let (st, job) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [victim_path], "conflict": "skip"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        (job["kind"].as_str(), job["owner"].as_str()),
        (Some("restore"), Some("alice"))
    );
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait(&alice, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["restored"], 1, "{done}");
    assert_eq!(done["progress"]["done"], 1);
    let restored = ids_in(&s.env.control(Method::GET, &snap_path, None).await);
    assert_eq!(restored.len(), before.len(), "one message back in {folder}");
    assert!(
        restored.iter().any(|id| !before.contains(id)),
        "as a new message"
    );

    // Into a new folder of her own account, explicitly named as the target: allowed.
    let (st, job) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [victim_path], "target_user": alice_upn,
                   "target_folder": "Restored by test", "at": backup.run_id}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let done = wait(&alice, job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "done", "{done}");
    let snap = s.env.control(Method::GET, &snap_path, None).await;
    assert!(
        snap["mail"][&alice_upn]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("Restored by test")),
        "{snap}"
    );

    // Not into bob's account, and not bob's data.
    let (st, body) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [victim_path], "target_user": bob_upn}),
        )
        .await;
    assert!(
        matches!(st, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{st} {body}"
    );
    let (st, _) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [format!("/users/{bob_upn}/mail/Inbox")]}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = alice
        .post(
            "/api/v1/tasks/t/exports",
            json!({"paths": [format!("/users/{bob_upn}/mail")], "format": "zip"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [], "conflict": "skip"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = alice
        .post(
            "/api/v1/tasks/t/restores",
            json!({"paths": [victim_path], "conflict": "clobber"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Exports of a mail folder without subfolders as ZIP and MBOX, downloaded and read back.
    let (_, mailbox) = admin
        .get(&format!(
            "/api/v1/tasks/t/browse?path={}&at={}",
            q(&format!("/users/{alice_upn}/mail")),
            backup.run_id
        ))
        .await;
    let mut leaf = None;
    for f in mailbox["entries"].as_array().unwrap() {
        let (_, l) = admin
            .get(&format!(
                "/api/v1/tasks/t/browse?path={}&at={}",
                q(f["path"].as_str().unwrap()),
                backup.run_id
            ))
            .await;
        let entries = l["entries"].as_array().unwrap().clone();
        if entries.iter().any(|e| e["kind"] == "message")
            && entries.iter().all(|e| e["kind"] == "message")
        {
            leaf = Some((f["path"].as_str().unwrap().to_owned(), entries));
            break;
        }
    }
    let (folder, messages) = leaf.expect("a mail folder with messages and no subfolder");
    let mut hashes = Vec::new();
    let mut subjects = Vec::new();
    for m in &messages {
        let bytes = admin
            .request(
                Method::GET,
                &format!(
                    "/api/v1/tasks/t/item/content?path={}&at={}",
                    q(m["path"].as_str().unwrap()),
                    backup.run_id
                ),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        hashes.push(sha256_hex(&bytes));
        let (_, item) = admin
            .get(&format!(
                "/api/v1/tasks/t/item?path={}&at={}",
                q(m["path"].as_str().unwrap()),
                backup.run_id
            ))
            .await;
        subjects.push(item["subject"].as_str().unwrap().to_owned());
    }
    hashes.sort();
    subjects.sort();
    let dir = tempfile::tempdir().unwrap();
    for (format, ext) in [("zip", "zip"), ("mbox", "mbox")] {
        let (st, job) = admin
            .post(
                "/api/v1/tasks/t/exports",
                json!({"paths": [folder], "format": format, "at": backup.run_id}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        let done = wait(&admin, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["result"]["items"], messages.len(), "{done}");
        assert_eq!(done["download"], format!("api/v1/jobs/{id}/download"));
        let resp = admin
            .request(Method::GET, &format!("/api/v1/jobs/{id}/download"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let disposition = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.contains(&format!(".{ext}\"")), "{disposition}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            bytes.len() as u64,
            done["progress"]["bytes"].as_u64().unwrap()
        );
        let file = dir.path().join(format!("export.{ext}"));
        std::fs::write(&file, &bytes).unwrap();
        if ext == "zip" {
            assert_eq!(python(READ_ZIP, &file), hashes);
        } else {
            assert_eq!(python(READ_MBOX, &file), subjects);
        }
        // Someone else's job is invisible to a portal user.
        let (st, _) = alice.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let resp = bob
            .request(Method::GET, &format!("/api/v1/jobs/{id}/download"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    // Job lists: alice sees her two restores, bob none, the admin all four.
    let (_, mine) = alice.get("/api/v1/jobs").await;
    assert_eq!(mine.as_array().unwrap().len(), 2, "{mine}");
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|j| j["owner"] == "alice")
    );
    let (_, none) = bob.get("/api/v1/jobs").await;
    assert_eq!(none.as_array().unwrap().len(), 0);
    let (_, all) = admin.get("/api/v1/jobs").await;
    assert_eq!(all.as_array().unwrap().len(), 4);
    let (st, _) = admin
        .post(
            &format!(
                "/api/v1/jobs/{id}/cancel",
                id = all[0]["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a finished job cannot be cancelled"
    );

    // After a restart the jobs are listed again; their export files are gone.
    let data = s.data.clone();
    let jobs = backhome::jobs::Jobs::open(&data, tokio::runtime::Handle::current()).unwrap();
    let again = jobs.list();
    assert_eq!(again.len(), 4);
    assert!(
        again
            .iter()
            .all(|j| j.download.is_none() && j.state != backhome::jobs::JobState::Running)
    );
    assert_eq!(std::fs::read_dir(data.join("exports")).unwrap().count(), 0);
}
