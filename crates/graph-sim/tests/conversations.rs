//! Group conversations: shapes against the documented examples (fixtures written from Graph's
//! v1.0 reference pages), paging, `$filter`, posts with `inReplyTo` and attachments, app-only
//! posting refused as Graph documents, control API changes, snapshots and throttling counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use graph_sim::Profile;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn check(example: &Value, actual: &Value) {
    let mut m = Vec::new();
    common::shape_mismatches(example, actual, "", &mut m);
    assert!(m.is_empty(), "{m:?}\n{actual:#}");
}

async fn all(h: &common::Harness, url: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut next = url.to_string();
    let mut pages = 0;
    loop {
        let (s, v) = h.get(&next).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        out.extend(v["value"].as_array().unwrap().iter().cloned());
        match v["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => return (out, pages),
        }
    }
}

#[tokio::test]
async fn threads_posts_and_attachments_match_the_documented_shapes() {
    let h = common::start(Profile::Tiny).await;
    let (_, groups) = h.get("/groups").await;
    let gid = groups["value"][0]["id"].as_str().unwrap().to_string();

    // Threads: shape, newest first, paging with $top.
    let (s, first) = h.get(&format!("/groups/{gid}/threads")).await;
    assert_eq!(s, 200, "{first}");
    let doc = fixture("group-threads");
    assert_eq!(
        first["@odata.context"].as_str().unwrap(),
        format!("{}/$metadata#groups('{gid}')/threads", h.graph)
    );
    check(&doc["value"][0], &first["value"][0]);
    let (threads, pages) = all(&h, &format!("/groups/{gid}/threads?$top=2")).await;
    assert!(
        threads.len() >= 2 && pages >= 2,
        "{} threads",
        threads.len()
    );
    let times: Vec<&str> = threads
        .iter()
        .map(|t| t["lastDeliveredDateTime"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(
        times[0].ends_with('Z') && times[0].len() == 20,
        "{}",
        times[0]
    );
    // The same tenant is generated again from the same seed.
    let h2 = common::start(Profile::Tiny).await;
    let (_, again) = h2.get(&format!("/groups/{gid}/threads?$top=100")).await;
    assert_eq!(again["value"].as_array().unwrap().len(), threads.len());
    assert_eq!(again["value"][0]["id"], threads[0]["id"]);

    // $filter on lastDeliveredDateTime and hasAttachments.
    let cut = times[times.len() / 2];
    let (newer, _) = all(
        &h,
        &format!("/groups/{gid}/threads?$filter=lastDeliveredDateTime gt {cut}"),
    )
    .await;
    assert_eq!(newer.len(), times.iter().filter(|t| **t > cut).count());
    let (with_att, _) = all(
        &h,
        &format!("/groups/{gid}/threads?$filter=hasAttachments eq true"),
    )
    .await;
    assert!(with_att.iter().all(|t| t["hasAttachments"] == true));

    // Conversations and their threads.
    let (s, convs) = h.get(&format!("/groups/{gid}/conversations")).await;
    assert_eq!(s, 200);
    check(
        &fixture("group-conversations")["value"][0],
        &convs["value"][0],
    );
    let cid = convs["value"][0]["id"].as_str().unwrap();
    let (s, ct) = h
        .get(&format!("/groups/{gid}/conversations/{cid}/threads"))
        .await;
    assert_eq!(s, 200, "{ct}");
    let tid = ct["value"][0]["id"].as_str().unwrap();
    let (s, via_conv) = h
        .get(&format!("/groups/{gid}/conversations/{cid}/threads/{tid}"))
        .await;
    assert_eq!(s, 200);
    let (_, direct) = h.get(&format!("/groups/{gid}/threads/{tid}")).await;
    assert_eq!(via_conv, direct);

    // Posts: shape, order, conversation ids, inReplyTo by $expand.
    let mut found_attachment = false;
    let mut found_reply = false;
    for t in &threads {
        let tid = t["id"].as_str().unwrap();
        let (s, posts) = h
            .get(&format!(
                "/groups/{gid}/threads/{tid}/posts?$expand=inReplyTo"
            ))
            .await;
        assert_eq!(s, 200, "{posts}");
        let list = posts["value"].as_array().unwrap();
        check(&fixture("conversationthread-posts")["value"][0], &list[0]);
        assert_eq!(list[0]["conversationThreadId"], t["id"]);
        let received: Vec<&str> = list
            .iter()
            .map(|p| p["receivedDateTime"].as_str().unwrap())
            .collect();
        assert!(received.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*received.last().unwrap(), t["lastDeliveredDateTime"]);
        for p in list.iter().skip(1) {
            assert!(p["inReplyTo"]["id"].is_string(), "{p}");
            found_reply = true;
        }
        for p in list.iter().filter(|p| p["hasAttachments"] == true) {
            let pid = p["id"].as_str().unwrap();
            let (s, atts) = h
                .get(&format!(
                    "/groups/{gid}/threads/{tid}/posts/{pid}/attachments"
                ))
                .await;
            assert_eq!(s, 200);
            let a = &atts["value"][0];
            // The documented single-attachment answer, less the context a list item lacks.
            let mut doc = common::example("attachment-file");
            doc.as_object_mut().unwrap().remove("@odata.context");
            check(&doc, a);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(a["contentBytes"].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len() as u64, a["size"].as_u64().unwrap());
            let aid = a["id"].as_str().unwrap();
            let raw = h
                .http
                .get(h.url(&format!(
                    "/groups/{gid}/threads/{tid}/posts/{pid}/attachments/{aid}/$value"
                )))
                .bearer_auth(&h.token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(raw.as_ref(), bytes.as_slice());
            found_attachment = true;
        }
    }
    assert!(found_reply && found_attachment);
    let all_text = serde_json::to_string(&threads).unwrap();
    assert!(
        !all_text.is_ascii(),
        "generated topics include non-ASCII text"
    );

    // Unknown ids are Exchange's 404.
    let (s, e) = h
        .get(&format!("/groups/{gid}/threads/AAQkADnope==/posts"))
        .await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn posting_is_delegated_only_and_control_changes_show_in_listings() {
    let h = common::start(Profile::Tiny).await;
    let (_, groups) = h.get("/groups").await;
    let gid = groups["value"][0]["id"].as_str().unwrap().to_string();
    let (threads, _) = all(&h, &format!("/groups/{gid}/threads")).await;
    let tid = threads[0]["id"].as_str().unwrap().to_string();

    // Graph documents creating threads and replying as not supported for applications.
    let (s, e) = h
        .send(
            reqwest::Method::POST,
            &format!("/groups/{gid}/threads"),
            Some(
                json!({"topic": "x", "posts": [{"body": {"contentType": "html", "content": "y"}}]}),
            ),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(e["error"]["code"], "ErrorAccessDenied");
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/groups/{gid}/threads/{tid}/reply"),
            Some(json!({"post": {"body": {"contentType": "text", "content": "y"}}})),
        )
        .await;
    assert_eq!(s, 403);

    // Control API: a post added to a thread moves its lastDeliveredDateTime and shows first.
    let (_, before) = h.get(&format!("/groups/{gid}/threads/{tid}/posts")).await;
    let n = before["value"].as_array().unwrap().len();
    let snap1 = h.control(reqwest::Method::GET, "snapshot", None).await.1;
    let added = h
        .mutate(json!({"op": "add_post", "group": gid, "thread": tid, "text": "Ça marche 👍", "attachment_size": 5000}))
        .await;
    let (_, after) = h.get(&format!("/groups/{gid}/threads/{tid}/posts")).await;
    let list = after["value"].as_array().unwrap();
    assert_eq!(list.len(), n + 1);
    assert_eq!(list[n]["id"], added["id"]);
    assert_eq!(list[n]["hasAttachments"], true);
    let (_, t) = h.get(&format!("/groups/{gid}/threads/{tid}")).await;
    assert_eq!(t["lastDeliveredDateTime"], list[n]["receivedDateTime"]);
    assert!(t["lastDeliveredDateTime"].as_str() > threads[0]["lastDeliveredDateTime"].as_str());
    let snap2 = h.control(reqwest::Method::GET, "snapshot", None).await.1;
    assert_ne!(snap1["conversations"], snap2["conversations"]);

    // A new thread, then deleting it.
    let new = h
        .mutate(json!({"op": "add_thread", "group": gid, "topic": "Neues Thema – 新しい"}))
        .await;
    let (listed, _) = all(&h, &format!("/groups/{gid}/threads")).await;
    assert_eq!(listed.len(), threads.len() + 1);
    assert_eq!(listed[0]["id"], new["id"]);
    h.mutate(json!({"op": "delete_thread", "group": gid, "thread": new["id"]}))
        .await;
    let (listed, _) = all(&h, &format!("/groups/{gid}/threads")).await;
    assert_eq!(listed.len(), threads.len());
    let (s, _) = h
        .get(&format!(
            "/groups/{gid}/threads/{}",
            new["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 404);

    // Counted against the group mailbox, posts separately from thread listings.
    let (_, c) = h.control(reqwest::Method::GET, "counters", None).await;
    assert!(c.to_string().contains("conversation_posts"), "{c}");
    assert!(c.to_string().contains("\"conversations\""), "{c}");
}
