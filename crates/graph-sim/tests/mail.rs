//! Mail: folders, paging, delta after each kind of change, MIME, attachments, creation,
//! extended properties, immutable ids, mailbox-less users.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use graph_sim::Profile;
use serde_json::{Value, json};

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn folders_hidden_wellknown_and_nested() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, v) = h.get(&format!("/users/{upn}/mailFolders?$top=100")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Inbox") && !names.contains(&"Conversation Action Settings"),
        "{names:?}"
    );
    let (_, v) = h
        .get(&format!(
            "/users/{upn}/mailFolders?includeHiddenFolders=true&$top=100"
        ))
        .await;
    assert!(
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["isHidden"] == true)
    );
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("mailfolder-list-hidden")["value"][0],
        &v["value"][0],
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    // Default page size 10 with a nextLink.
    let (_, v) = h
        .get(&format!(
            "/users/{upn}/mailFolders?includeHiddenFolders=true"
        ))
        .await;
    assert_eq!(
        v["value"].as_array().unwrap().len(),
        9.min(v["value"].as_array().unwrap().len())
    );
    // Four levels under the inbox.
    let mut path = "inbox".to_string();
    let mut depth = 0;
    loop {
        let (s, v) = h
            .get(&format!("/users/{upn}/mailFolders/{path}/childFolders"))
            .await;
        assert_eq!(s, 200, "{v}");
        let Some(first) = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["childFolderCount"].as_u64().unwrap() > 0 || depth >= 3)
        else {
            break;
        };
        path = first["id"].as_str().unwrap().to_string();
        depth += 1;
        if depth > 6 {
            break;
        }
    }
    assert!(depth >= 3, "nested depth {depth}");
    // Well-known names.
    for wk in ["inbox", "sentitems", "deleteditems", "archive", "drafts"] {
        let (s, v) = h.get(&format!("/users/{upn}/mailFolders/{wk}")).await;
        assert_eq!(s, 200, "{wk}: {v}");
    }
    // Create a folder and a child.
    let (s, f) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/mailFolders"),
            Some(json!({"displayName": "Restored 🗂"})),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!(
                "/users/{upn}/mailFolders/{}/childFolders",
                f["id"].as_str().unwrap()
            ),
            Some(json!({"displayName": "Sub"})),
        )
        .await;
    assert_eq!(s, 201);
    h.sim.stop().await;
}

#[tokio::test]
async fn mailbox_not_enabled_and_shared_mailbox() {
    let h = common::start(Profile::Tiny).await;
    let (_, v) = h
        .get("/users?$select=userPrincipalName,mail,accountEnabled")
        .await;
    let users = v["value"].as_array().unwrap();
    let no_mail = users
        .iter()
        .find(|u| u["mail"].is_null())
        .expect("a user without mailbox");
    let (s, e) = h
        .get(&format!(
            "/users/{}/mailFolders/inbox",
            no_mail["userPrincipalName"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("MailboxNotEnabledForRESTAPI"))
    );
    let (s, e) = h
        .get(&format!(
            "/users/{}/mailboxSettings",
            no_mail["userPrincipalName"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("MailboxNotEnabledForRESTAPI"))
    );
    let shared = users
        .iter()
        .find(|u| u["accountEnabled"] == false)
        .expect("a shared mailbox");
    let (s, _) = h
        .get(&format!(
            "/users/{}/mailFolders/inbox/messages",
            shared["userPrincipalName"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let (s, settings) = h
        .get(&format!(
            "/users/{}/mailboxSettings",
            shared["userPrincipalName"].as_str().unwrap()
        ))
        .await;
    assert_eq!((s, settings["userPurpose"].as_str()), (200, Some("shared")));
    h.sim.stop().await;
}

#[tokio::test]
async fn delta_pages_and_reports_every_change() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.messages_per_user = Some(40);
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let url = format!("/users/{upn}/mailFolders/inbox/messages/delta");
    let pref = [("Prefer", "odata.maxpagesize=3")];
    let (items, delta, pages) = h.delta_round(&url, &pref).await;
    assert!(
        items.len() > 3 && pages > 1,
        "{} items in {pages} pages",
        items.len()
    );
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("message-delta")["value"][0],
        &items[0],
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    assert!(
        items
            .iter()
            .all(|i| i["@odata.type"] == "#microsoft.graph.message")
    );
    // No change: empty round.
    let (again, delta, _) = h.delta_round(&delta, &pref).await;
    assert!(again.is_empty(), "{again:?}");

    // Add, modify, move out, delete.
    let added = h
        .mutate(json!({"op": "add_message", "user": upn, "folder": "inbox"}))
        .await;
    let victim = items[0]["id"].as_str().unwrap().to_string();
    let moved = items[1]["id"].as_str().unwrap().to_string();
    let changed = items[2]["id"].as_str().unwrap().to_string();
    h.mutate(json!({"op": "delete_message", "user": upn, "id": victim}))
        .await;
    let mv = h
        .mutate(json!({"op": "move_message", "user": upn, "id": moved, "destination": "archive"}))
        .await;
    let (s, p) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/users/{upn}/messages/{changed}"),
            Some(json!({"isRead": false, "flag": {"flagStatus": "flagged"}})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["flag"]["flagStatus"], "flagged");
    let (round, _, _) = h.delta_round(&delta, &pref).await;
    let removed: Vec<String> = round
        .iter()
        .filter(|i| i["@removed"]["reason"] == "deleted")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let updated = ids(&round
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .cloned()
        .collect::<Vec<_>>());
    assert!(
        removed.contains(&victim) && removed.contains(&moved),
        "{round:?}"
    );
    assert!(
        updated.contains(&changed) && updated.contains(&added["id"].as_str().unwrap().to_string()),
        "{round:?}"
    );
    let changed_item = round.iter().find(|i| i["id"] == changed.as_str()).unwrap();
    assert_eq!(changed_item["isRead"], false);
    // The moved message has a new id (no ImmutableId) and shows up in the archive's delta.
    assert_ne!(mv["id"].as_str().unwrap(), moved);
    let (old, _) = h.get(&format!("/users/{upn}/messages/{moved}")).await;
    assert_eq!(old, 404);
    let (arch, _, _) = h
        .delta_round(
            &format!("/users/{upn}/mailFolders/archive/messages/delta"),
            &[],
        )
        .await;
    assert!(ids(&arch).contains(&mv["id"].as_str().unwrap().to_string()));
    h.sim.stop().await;
}

#[tokio::test]
async fn immutable_ids_survive_moves() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let imm = [("Prefer", "IdType=\"ImmutableId\"")];
    let (_, v) = h
        .get_with(
            &format!("/users/{upn}/mailFolders/inbox/messages?$top=1"),
            &imm,
        )
        .await;
    let id = v["value"][0]["id"].as_str().unwrap().to_string();
    let (s, moved) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/messages/{id}/move"),
            Some(json!({"destinationId": "archive"})),
        )
        .await;
    assert_eq!(s, 201, "{moved}");
    let (s, again) = h
        .get_with(&format!("/users/{upn}/messages/{id}"), &imm)
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["id"], id.as_str());
    h.sim.stop().await;
}

#[tokio::test]
async fn mime_attachments_and_restore_paths() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.messages_per_user = Some(60);
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let (items, _, _) = h
        .delta_round(
            &format!("/users/{upn}/mailFolders/inbox/messages/delta"),
            &[],
        )
        .await;
    let with_att = items
        .iter()
        .find(|m| m["hasAttachments"] == true)
        .expect("a message with attachments");
    let id = with_att["id"].as_str().unwrap();
    let r = h
        .http
        .get(h.url(&format!("/users/{upn}/messages/{id}/$value")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mime = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&mime);
    assert!(
        text.contains("multipart/mixed") && text.contains("Content-Disposition: attachment"),
        "{}",
        &text[..400.min(text.len())]
    );
    assert_eq!(
        h.get(&format!("/users/{upn}/messages/{id}/$value")).await.0,
        200
    );
    let (s, atts) = h
        .get(&format!("/users/{upn}/messages/{id}/attachments"))
        .await;
    assert_eq!(s, 200);
    let first = &atts["value"][0];
    let mut m = Vec::new();
    let mut ex = common::example("attachment-file");
    ex.as_object_mut().unwrap().remove("@odata.context");
    common::shape_mismatches(&ex, first, "", &mut m);
    assert!(m.is_empty(), "{m:?}");
    let (s, one) = h
        .get(&format!(
            "/users/{upn}/messages/{id}/attachments/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(one["contentBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len() as u64, one["size"].as_u64().unwrap());

    // Restore: MIME create into a folder → draft; JSON create with extended properties → not draft.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mime);
    let r = h
        .http
        .post(h.url(&format!("/users/{upn}/mailFolders/archive/messages")))
        .bearer_auth(&h.token)
        .header("Content-Type", "text/plain")
        .body(b64)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["isDraft"], true);
    assert_eq!(created["subject"], with_att["subject"]);
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("message-create-mime"),
        &created,
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    let r2 = h
        .http
        .get(h.url(&format!(
            "/users/{upn}/messages/{}/$value",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r2.bytes().await.unwrap(), mime);
    let r = h
        .http
        .post(h.url(&format!("/users/{upn}/messages")))
        .bearer_auth(&h.token)
        .header("Content-Type", "text/plain")
        .body("not base64 !!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "ErrorMimeContentInvalidBase64String");
    let (s, j) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/mailFolders/inbox/messages"),
            Some(json!({
            "subject": "Restored ✓", "body": {"contentType": "text", "content": "hello"},
            "toRecipients": [{"emailAddress": {"address": upn}}],
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": "SystemTime 0x0E06", "value": "2024-02-03T04:05:06Z"},
                {"id": "SystemTime 0x0039", "value": "2024-02-03T04:00:00Z"}]})),
        )
        .await;
    assert_eq!(s, 201, "{j}");
    assert_eq!(
        (j["isDraft"].as_bool(), j["isRead"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(j["receivedDateTime"], "2024-02-03T04:05:06Z");
    assert_eq!(j["sentDateTime"], "2024-02-03T04:00:00Z");
    h.sim.stop().await;
}

#[tokio::test]
async fn folder_hierarchy_delta_and_all_messages() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (folders, delta, _) = h
        .delta_round(&format!("/users/{upn}/mailFolders/delta"), &[])
        .await;
    assert!(folders.len() >= 13, "{}", folders.len());
    let added = h
        .mutate(json!({"op": "add_folder", "user": upn, "parent": "inbox", "name": "Neu"}))
        .await;
    let projects = folders
        .iter()
        .find(|f| f["displayName"] == "Projects")
        .unwrap();
    h.mutate(json!({"op": "delete_folder", "user": upn, "id": projects["id"]}))
        .await;
    let (round, _, _) = h.delta_round(&delta, &[]).await;
    assert!(round.iter().any(|f| f["id"] == added["id"]));
    assert!(
        round
            .iter()
            .any(|f| f["id"] == projects["id"] && f.get("@removed").is_some()),
        "{round:?}"
    );
    let (s, all) = h.get(&format!("/users/{upn}/messages?$top=1000")).await;
    assert_eq!(s, 200);
    let (_, inbox) = h
        .get(&format!(
            "/users/{upn}/mailFolders/inbox/messages?$top=1000"
        ))
        .await;
    assert!(all["value"].as_array().unwrap().len() > inbox["value"].as_array().unwrap().len());
    // Site libraries through /sites/{id}/drive.
    let (_, sites) = h.get("/sites").await;
    let site = sites["value"][0]["id"].as_str().unwrap();
    let (s, v) = h.get(&format!("/sites/{site}/drive/root/delta")).await;
    assert_eq!(s, 200, "{v}");
    h.sim.stop().await;
}

#[tokio::test]
async fn json_restore_with_added_attachments() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, m) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/mailFolders/inbox/messages"), Some(json!({
            "subject": "With attachment", "body": {"contentType": "html", "content": "<p>see attached</p>"},
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]})))
        .await;
    assert_eq!(s, 201, "{m}");
    let id = m["id"].as_str().unwrap();
    let bytes = "Grüße aus dem Archiv".as_bytes();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let (s, a) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/messages/{id}/attachments"), Some(json!({
            "@odata.type": "#microsoft.graph.fileAttachment", "name": "notiz.txt", "contentType": "text/plain", "contentBytes": b64})))
        .await;
    assert_eq!(s, 201, "{a}");
    let (_, list) = h
        .get(&format!("/users/{upn}/messages/{id}/attachments"))
        .await;
    assert_eq!(list["value"][0]["contentBytes"], b64.as_str());
    let (_, msg) = h.get(&format!("/users/{upn}/messages/{id}")).await;
    assert_eq!(msg["hasAttachments"], true);
    let r = h
        .http
        .get(h.url(&format!("/users/{upn}/messages/{id}/$value")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    let mime = r.text().await.unwrap();
    assert!(mime.contains("notiz.txt") && mime.contains("multipart/mixed"));
    // Attachments given at creation work too; bad base64 is refused.
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/messages/{id}/attachments"),
            Some(json!({"name": "x", "contentBytes": "!!!"})),
        )
        .await;
    assert_eq!(s, 400);
    h.sim.stop().await;
}

#[tokio::test]
async fn message_listing_with_select_pages_distinct_messages() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, all) = h
        .get(&format!(
            "/users/{upn}/mailFolders/inbox/messages?$top=1000"
        ))
        .await;
    assert_eq!(s, 200);
    let (s, picked) = h
        .get(&format!(
            "/users/{upn}/mailFolders/inbox/messages?$select=internetMessageId&$top=1000"
        ))
        .await;
    assert_eq!(s, 200);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&all), ids(&picked));
    assert!(a.len() > 1);
    assert_eq!(a, b, "$select must not change which messages are listed");
    let distinct: std::collections::HashSet<_> = b.iter().collect();
    assert_eq!(distinct.len(), b.len());
    let first = &picked["value"][0];
    assert!(
        first.get("internetMessageId").is_some() && first.get("subject").is_none(),
        "{first}"
    );
}
