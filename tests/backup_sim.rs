//! Backups of a simulated tenant: complete and byte-identical, incremental with no change,
//! and each change captured while earlier points in time keep the old state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use backhome::cli::browse;
use backhome::task::Service;
use backhome_store::{NodeKind, ObjectKind, RunId};
use serde_json::json;

mod common;
use common::{env, hex_of};

#[actix_web::test]
async fn full_backup_is_complete_and_byte_identical() {
    let e = env(&Service::ALL).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.items_added > 50, "{first:?}");
    let run = RunId(first.run_id);
    let snap = e.control(reqwest::Method::GET, "snapshot", None).await;

    // Mail: every message of every folder, MIME byte-identical.
    let messages = e.items(NodeKind::Message, run);
    let mut expected = 0;
    for (upn, folders) in snap["mail"].as_object().unwrap() {
        for (folder, msgs) in folders.as_object().unwrap() {
            for (id, hash) in msgs.as_object().unwrap() {
                expected += 1;
                let obj = e
                    .repo
                    .objects()
                    .unwrap()
                    .into_iter()
                    .find(|o| o.info.address.as_deref() == Some(upn.as_str()))
                    .unwrap();
                let cur = e
                    .repo
                    .current_version(obj.id, id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{upn} {folder} {id} missing"));
                assert_eq!(
                    &hex_of(&e.repo, cur.content.unwrap()),
                    hash.as_str().unwrap(),
                    "{upn} {folder} {id}"
                );
            }
        }
    }
    assert_eq!(messages.len(), expected);

    // Files: every file of every drive, byte-identical.
    let files: HashSet<String> = {
        let mut s = HashSet::new();
        for o in e.repo.objects().unwrap() {
            let mut stack: Vec<_> = e
                .repo
                .roots(o.id, run)
                .unwrap()
                .into_iter()
                .map(|v| v.node)
                .collect();
            while let Some(n) = stack.pop() {
                for c in e.repo.list_children(n, run).unwrap() {
                    stack.push(c.node);
                    if c.kind == NodeKind::File {
                        s.insert(hex_of(&e.repo, c.content.unwrap().id));
                    }
                }
            }
        }
        s
    };
    let mut sim_files = 0;
    for (drive, paths) in snap["drives"].as_object().unwrap() {
        for (path, h) in paths.as_object().unwrap() {
            let h = h.as_str().unwrap();
            if h == "folder" || h.starts_with("size:") {
                continue;
            }
            sim_files += 1;
            assert!(files.contains(h), "file {drive}{path} missing or different");
        }
    }
    assert!(sim_files > 0);

    // Events and contacts: every id is there.
    for (what, kind) in [("events", NodeKind::Event), ("contacts", NodeKind::Contact)] {
        let ours = e.items(kind, run);
        for (upn, ids) in snap[what].as_object().unwrap() {
            for id in ids.as_object().unwrap().keys() {
                assert!(ours.contains_key(id), "{what} {upn} {id} missing");
            }
        }
    }
    assert!(!e.items(NodeKind::ChannelMessage, run).is_empty());
    assert!(
        e.repo
            .objects()
            .unwrap()
            .iter()
            .any(|o| o.info.kind == ObjectKind::Site)
    );
}

#[actix_web::test]
async fn no_change_run_downloads_nothing_and_changes_are_captured() {
    let e = env(&[Service::Mail, Service::Onedrive]).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run1 = RunId(first.run_id);

    let second = e.backup().await;
    assert_eq!(second.bytes_downloaded, 0, "{second:?}");
    assert_eq!(
        (
            second.items_added,
            second.items_changed,
            second.items_deleted
        ),
        (0, 0, 0),
        "{second:?}"
    );
    let objects = e.repo.objects().unwrap().len() as u64;
    let containers =
        (e.items(NodeKind::MailFolder, run1).len() + e.items(NodeKind::Drive, run1).len()) as u64;
    let drives = objects; // one OneDrive per user at most
    // Discovery (users) + per object: folder listings, the drive, its root; one delta request per container.
    let bound = 2 + containers * 2 + drives * 3 + objects * 2;
    assert!(
        second.graph_requests <= bound,
        "{} requests > bound {bound}",
        second.graph_requests
    );
    let run2 = RunId(second.run_id);

    // Change the tenant: a new message, a deleted one, a moved one.
    let upn = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .filter(|o| o.info.kind == ObjectKind::User)
        .find_map(|o| {
            let inbox = browse::list(
                &e.repo,
                run2,
                &format!("/users/{}/mail/Inbox", o.info.address.clone()?),
                false,
            )
            .ok()?;
            (inbox.iter().filter(|x| x.kind == "message").count() >= 2)
                .then(|| o.info.address.clone().unwrap())
        })
        .expect("a user with two messages in the inbox");
    let inbox_path = format!("/users/{upn}/mail/Inbox");
    let before = browse::list(&e.repo, run2, &inbox_path, false).unwrap();
    let msgs: Vec<_> = before.iter().filter(|x| x.kind == "message").collect();
    let victim = msgs[0].graph_id.clone();
    let moved = msgs[1].graph_id.clone();
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "add_message", "user": upn, "folder": "inbox"})),
    )
    .await;
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "delete_message", "user": upn, "id": victim})),
    )
    .await;
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "move_message", "user": upn, "id": moved, "destination": "archive"})),
    )
    .await;

    let third = e.backup().await;
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    assert_eq!(third.items_added, 1, "{third:?}");
    assert!(third.items_deleted >= 1, "{third:?}");
    let run3 = RunId(third.run_id);
    let after = browse::list(&e.repo, run3, &inbox_path, false).unwrap();
    assert!(!after.iter().any(|x| x.graph_id == victim));
    assert!(!after.iter().any(|x| x.graph_id == moved));
    assert_eq!(after.len(), before.len() - 1);
    let archive =
        browse::list(&e.repo, run3, &format!("/users/{upn}/mail/Archive"), false).unwrap();
    assert!(
        archive.iter().any(|x| x.graph_id == moved),
        "moved message not in Archive"
    );
    // The earlier point in time still shows the old inbox.
    let then = browse::list(&e.repo, run2, &inbox_path, false).unwrap();
    assert_eq!(then, before);
}

#[actix_web::test]
async fn new_and_deleted_accounts_are_captured() {
    let e = env(&[Service::Mail, Service::Onedrive, Service::Sharepoint]).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run1 = RunId(first.run_id);
    let users = browse::list(&e.repo, run1, "/users", false).unwrap();
    let sites = browse::list(&e.repo, run1, "/sites", false).unwrap();
    let gone_user = users[0].name.clone();
    let site_obj = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.info.kind == ObjectKind::Site)
        .unwrap();

    let added = e
        .control(reqwest::Method::POST, "mutate", Some(json!({"op": "add_user", "display_name": "Zoë Newcomer", "upn_local": "zoe.newcomer"})))
        .await;
    let new_upn = added["results"][0]["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "delete_user", "user": gone_user})),
    )
    .await;
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "delete_site", "site": site_obj.info.graph_id})),
    )
    .await;

    let second = e.backup().await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert!(second.items_deleted > 0, "{second:?}");
    let run2 = RunId(second.run_id);
    let now: HashSet<String> = browse::list(&e.repo, run2, "/users", false)
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert!(now.contains(&new_upn), "{new_upn} not backed up: {now:?}");
    assert!(!now.contains(&gone_user), "deleted user still shown");
    let sites2 = browse::list(&e.repo, run2, "/sites", false).unwrap();
    assert_eq!(
        sites2.len(),
        sites.len() - 1,
        "{sites:?} {sites2:?} {}",
        site_obj.info.name
    );
    // The earlier point in time still has the deleted user's mail.
    let then = browse::list(&e.repo, run1, &format!("/users/{gone_user}/mail"), true).unwrap();
    assert!(then.iter().any(|x| x.kind == "message"));
}

#[actix_web::test]
async fn without_auto_discovery_new_users_wait_for_the_admin() {
    let mut e = env(&[Service::Mail]).await;
    e.spec.auto_discovery.users = false;
    let first = e.backup().await;
    let before = browse::list(&e.repo, RunId(first.run_id), "/users", false)
        .unwrap()
        .len();
    let added = e
        .control(
            reqwest::Method::POST,
            "mutate",
            Some(
                json!({"op": "add_user", "display_name": "Late Comer", "upn_local": "late.comer"}),
            ),
        )
        .await;
    let upn = added["results"][0]["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = e.backup().await;
    let users: HashSet<String> = browse::list(&e.repo, RunId(second.run_id), "/users", false)
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(
        users.len(),
        before,
        "a new user joined although auto-discovery is off"
    );
    assert!(!users.contains(&upn));
    // Named in the include list, the user joins.
    e.spec.include_users = users.iter().cloned().chain([upn.clone()]).collect();
    let third = e.backup().await;
    let users: HashSet<String> = browse::list(&e.repo, RunId(third.run_id), "/users", false)
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert!(users.contains(&upn));
}

#[actix_web::test]
async fn a_folder_thirty_levels_deep_is_backed_up() {
    let e = env(&[Service::Mail]).await;
    let upn = e.first_upn().await;
    let mut parent = "inbox".to_owned();
    for level in 1..=30 {
        let op = json!({"op": "add_folder", "user": upn, "parent": parent, "name": format!("Level {level}")});
        let r = e.control(reqwest::Method::POST, "mutate", Some(op)).await;
        parent = r["results"][0]["id"].as_str().unwrap().to_owned();
    }
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "add_message", "user": upn, "folder": parent})),
    )
    .await;
    let s = e.backup().await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let deep: Vec<String> = (1..=30).map(|l| format!("Level {l}")).collect();
    let path = format!("/users/{upn}/mail/Inbox/{}", deep.join("/"));
    let leaf = browse::list(&e.repo, RunId(s.run_id), &path, false).unwrap();
    assert_eq!(
        leaf.iter().filter(|x| x.kind == "message").count(),
        1,
        "{path}"
    );
}
