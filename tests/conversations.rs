//! Group conversations: a full backup stores every thread's posts and attachments identical to
//! the simulator's, an unchanged run reads no posts, a new post is stored alone, and a deleted
//! thread is closed while earlier points in time still show it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use backhome::cli::browse;
use backhome::task::Service;
use backhome_store::{NodeKind, ObjectKind, RunId};
use serde_json::{Value, json};

mod common;
use common::env;

fn read(repo: &backhome_store::Repository, id: backhome_store::ContentId) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::copy(&mut repo.read_content(id).unwrap(), &mut out).unwrap();
    out
}

/// Post id → the simulator's hash recomputed from the repository: the post's Graph JSON (without
/// the fields the engine adds) followed by its attachments' bytes in listed order.
fn stored_hashes(e: &common::Env, run: RunId) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in e.repo.objects().unwrap() {
        if o.info.kind != ObjectKind::Group {
            continue;
        }
        let Some(root) = e
            .repo
            .roots(o.id, run)
            .unwrap()
            .into_iter()
            .find(|r| r.name == "conversations")
        else {
            continue;
        };
        for thread in e.repo.list_children(root.node, run).unwrap() {
            assert_eq!(thread.kind, NodeKind::Channel);
            let children = e.repo.list_children(thread.node, run).unwrap();
            for post in children
                .iter()
                .filter(|c| c.kind == NodeKind::ChannelMessage)
            {
                let mut v: Value =
                    serde_json::from_slice(&read(&e.repo, post.content.unwrap().id)).unwrap();
                let atts = v
                    .as_object_mut()
                    .unwrap()
                    .remove("attachments")
                    .unwrap_or(json!([]));
                v.as_object_mut().unwrap().remove("inReplyTo");
                let mut h = blake3::Hasher::new();
                h.update(v.to_string().as_bytes());
                for a in atts.as_array().unwrap() {
                    let gid = format!("{}/{}", post.graph_id, a["id"].as_str().unwrap());
                    let node = children
                        .iter()
                        .find(|c| c.graph_id == gid)
                        .unwrap_or_else(|| panic!("attachment {gid} missing"));
                    assert_eq!(node.kind, NodeKind::Attachment);
                    h.update(&read(&e.repo, node.content.unwrap().id));
                }
                out.insert(post.graph_id.clone(), h.finalize().to_hex().to_string());
            }
        }
    }
    out
}

fn sim_hashes(snap: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for threads in snap["conversations"].as_object().unwrap().values() {
        for posts in threads.as_object().unwrap().values() {
            for (id, h) in posts.as_object().unwrap() {
                out.insert(id.clone(), h.as_str().unwrap().to_owned());
            }
        }
    }
    out
}

fn posts_read(counters: &Value) -> u64 {
    counters["requests_by_kind"]["conversation_posts"]
        .as_u64()
        .unwrap_or(0)
}

#[actix_web::test]
async fn conversations_full_incremental_and_deleted() {
    let e = env(&[Service::Groups]).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run1 = RunId(first.run_id);
    let snap = e.control(reqwest::Method::GET, "snapshot", None).await;
    let expected = sim_hashes(&snap);
    assert!(expected.len() > 5, "{expected:?}");
    assert_eq!(stored_hashes(&e, run1), expected);

    // Paths: every entry `ls` prints opens as is, posts in delivery order.
    let group = snap["conversations"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let threads = browse::list(
        &e.repo,
        run1,
        &format!("/groups/{group}/conversations"),
        false,
    )
    .unwrap();
    assert!(!threads.is_empty());
    let mut with_attachment = false;
    for t in &threads {
        let inside = browse::list(&e.repo, run1, &t.path, false).unwrap();
        let posts: Vec<_> = inside
            .iter()
            .filter(|x| x.kind == "channel_message")
            .collect();
        assert!(!posts.is_empty(), "{}", t.path);
        let mut names: Vec<&str> = posts.iter().map(|p| p.name.as_str()).collect();
        let listed = names.clone();
        names.sort_unstable();
        assert_eq!(names, listed, "posts sort in delivery order");
        for x in &inside {
            let browse::Target::Node(v) = browse::resolve(&e.repo, run1, &x.path).unwrap() else {
                panic!("{} is not a node", x.path);
            };
            assert!(v.content.is_some(), "{}", x.path);
            with_attachment |= x.kind == "attachment";
        }
    }
    let all: Vec<_> = snap["conversations"]
        .as_object()
        .unwrap()
        .keys()
        .flat_map(|g| {
            browse::list(&e.repo, run1, &format!("/groups/{g}/conversations"), true).unwrap()
        })
        .collect();
    assert!(
        with_attachment || all.iter().any(|x| x.kind == "attachment"),
        "some posts have attachments"
    );

    // No change: no post is read again, nothing is added.
    e.control(reqwest::Method::POST, "counters/reset", None)
        .await;
    let second = e.backup().await;
    let run2 = RunId(second.run_id);
    assert_eq!(
        (
            second.items_added,
            second.items_changed,
            second.items_deleted,
            second.bytes_downloaded
        ),
        (0, 0, 0, 0),
        "{second:?}"
    );
    let c = e.control(reqwest::Method::GET, "counters", None).await;
    assert_eq!(posts_read(&c), 0, "{c}");

    // A new post with an attachment: exactly it is stored, in its thread.
    let groups = e.control(reqwest::Method::GET, "snapshot", None).await;
    let (gnick, gthreads) = groups["conversations"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let tid = gthreads.as_object().unwrap().keys().next().unwrap().clone();
    let gid = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.info.address.as_deref() == Some(gnick.as_str()))
        .unwrap()
        .info
        .graph_id;
    let added = e
        .control(
            reqwest::Method::POST,
            "mutate",
            Some(json!({"op": "add_post", "group": gid, "thread": tid, "text": "Neuer Beitrag ✓", "attachment_size": 70_000})),
        )
        .await;
    let pid = added["results"][0]["id"].as_str().unwrap().to_owned();
    e.control(reqwest::Method::POST, "counters/reset", None)
        .await;
    let third = e.backup().await;
    let run3 = RunId(third.run_id);
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    // The post and its attachment are new; the thread is a new version.
    assert_eq!(
        (third.items_added, third.items_changed, third.items_deleted),
        (2, 1, 0),
        "{third:?}"
    );
    let c = e.control(reqwest::Method::GET, "counters", None).await;
    // One listing of the thread's posts and one of the new post's attachments.
    assert_eq!(posts_read(&c), 2, "{c}");
    let snap3 = e.control(reqwest::Method::GET, "snapshot", None).await;
    assert_eq!(stored_hashes(&e, run3), sim_hashes(&snap3));
    assert!(e.items(NodeKind::ChannelMessage, run3).contains_key(&pid));
    assert!(!e.items(NodeKind::ChannelMessage, run2).contains_key(&pid));

    // A deleted thread: closed with its posts now, still there at the earlier run.
    let before: Vec<String> = gthreads.as_object().unwrap()[&tid]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "delete_thread", "group": gid, "thread": tid})),
    )
    .await;
    let fourth = e.backup().await;
    let run4 = RunId(fourth.run_id);
    assert!(
        fourth.items_deleted >= before.len() as u64 + 2,
        "{fourth:?}"
    );
    assert!(!e.items(NodeKind::Channel, run4).contains_key(&tid));
    assert!(e.items(NodeKind::Channel, run3).contains_key(&tid));
    let posts4 = e.items(NodeKind::ChannelMessage, run4);
    let posts3 = e.items(NodeKind::ChannelMessage, run3);
    for p in before.iter().chain(std::iter::once(&pid)) {
        assert!(!posts4.contains_key(p) && posts3.contains_key(p), "{p}");
    }
    let snap4 = e.control(reqwest::Method::GET, "snapshot", None).await;
    assert_eq!(stored_hashes(&e, run4), sim_hashes(&snap4));
}

/// Entry name → text (for `.html`) or byte count, read back by Python's `zipfile`.
fn zip_entries(zip: &[u8]) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zip");
    std::fs::write(&path, zip).unwrap();
    let script = r#"
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
out = {}
for i in z.infolist():
    if i.is_dir():
        continue
    data = z.read(i)
    out[i.filename] = data.decode("utf-8") if i.filename.endswith(".html") else len(data)
print(json.dumps(out))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[actix_web::test]
async fn a_thread_exports_as_one_transcript_with_its_attachments() {
    let e = env(&[Service::Groups]).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run = RunId(first.run_id);
    let snap = e.control(reqwest::Method::GET, "snapshot", None).await;
    // A thread with an attachment, from any group.
    let thread = snap["conversations"]
        .as_object()
        .unwrap()
        .keys()
        .flat_map(|g| {
            browse::list(&e.repo, run, &format!("/groups/{g}/conversations"), false).unwrap()
        })
        .find(|t| {
            browse::list(&e.repo, run, &t.path, false)
                .unwrap()
                .iter()
                .any(|x| x.kind == "attachment")
        })
        .expect("a thread with an attachment");
    let inside = browse::list(&e.repo, run, &thread.path, false).unwrap();
    let mut zip = Vec::new();
    let report =
        backhome::export::export_zip(&e.repo, run, std::slice::from_ref(&thread.path), &mut zip)
            .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let entries = zip_entries(&zip);

    // One transcript named after the thread, holding every post's author and body in order.
    let html: Vec<_> = entries.keys().filter(|k| k.ends_with(".html")).collect();
    assert_eq!(html.len(), 1, "{entries:?}");
    let page = entries[html[0]].as_str().unwrap();
    assert!(!page.contains("(unknown)"), "{page}");
    assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
    let mut at = 0;
    for p in inside.iter().filter(|x| x.kind == "channel_message") {
        let browse::Target::Node(v) = browse::resolve(&e.repo, run, &p.path).unwrap() else {
            panic!("{} is not a node", p.path);
        };
        let post: Value = serde_json::from_slice(&read(&e.repo, v.content.unwrap().id)).unwrap();
        let from = &post["from"]["emailAddress"];
        let author = from["name"].as_str().or(from["address"].as_str()).unwrap();
        let escaped = backhome::export::html::escape(author);
        let found = page[at..]
            .find(&escaped)
            .unwrap_or_else(|| panic!("{author} (post {}) not in order in {page}", p.name));
        at += found + escaped.len();
    }

    // The attachments beside it, in a folder named like the thread, with their sizes.
    let files: Vec<_> = entries
        .iter()
        .filter(|(k, _)| !k.ends_with(".html"))
        .collect();
    let attachments: Vec<_> = inside.iter().filter(|x| x.kind == "attachment").collect();
    assert_eq!(files.len(), attachments.len(), "{entries:?}");
    for (name, size) in files {
        assert!(name.contains('/'), "{name} is in the thread's folder");
        assert!(
            attachments.iter().any(|a| a.size == size.as_u64().unwrap()),
            "{name}"
        );
    }
    assert_eq!(report.items as usize, 1 + attachments.len());
}
