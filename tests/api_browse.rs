//! Browsing over HTTP: accounts, points in time, listings at an older point after a change,
//! item details, content byte-identical to the simulator, hostile mail rendered safely, search
//! with filters, and storage figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use backhome::task::Service;
use base64::Engine;
use common::service::{self, Session, upns};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn list(s: &Session, path: &str, at: Option<i64>) -> (StatusCode, Value) {
    let at = at.map(|a| format!("&at={a}")).unwrap_or_default();
    s.get(&format!("/api/v1/tasks/t/browse?path={}{at}", q(path)))
        .await
}

async fn raw(s: &Session, path: &str) -> reqwest::Response {
    s.request(Method::GET, path).send().await.unwrap()
}

const HOSTILE: &str = "From: Mallory <mallory@evil.example>\r\nTo: someone@contoso.com\r\n\
Subject: Quarterly zanzibar report\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><script>alert('x')</script>\
<p onclick=\"steal()\">Numbers inside</p><img src=\"https://tracker.evil.example/p.gif\" onerror=\"steal()\">\
<div style=\"background:url(http://tracker.evil.example/bg.png)\">bg</div></body></html>\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_item_content_render_search_and_storage() {
    let s = service::start(&[Service::Mail, Service::Onedrive]).await;
    let users = upns(&s.env);
    let (alice_upn, bob_upn) = (users[0].clone(), users[1].clone());
    let first = s.env.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run1 = first.run_id;
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;

    // The accounts alice may open: hers only; the admin sees every account.
    let (st, mine) = alice.get("/api/v1/me/accounts").await;
    assert_eq!(st, StatusCode::OK);
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["account"], alice_upn.as_str());
    assert_eq!(mine[0]["path"], format!("/users/{alice_upn}"));
    let (_, all) = admin.get("/api/v1/me/accounts").await;
    assert!(all.as_array().unwrap().len() >= users.len(), "{all}");

    // Her mailbox at the first run.
    let inbox = format!("/users/{alice_upn}/mail/Inbox");
    let (st, before) = list(&alice, &inbox, None).await;
    assert_eq!(st, StatusCode::OK, "{before}");
    assert_eq!(before["run"], run1);
    let messages: Vec<Value> = before["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .cloned()
        .collect();
    assert!(messages.len() >= 2, "{before}");
    let victim = messages[0].clone();
    let victim_path = victim["path"].as_str().unwrap().to_owned();

    // A change in the simulator: the victim deleted, a hostile message added.
    s.env
        .control(
            Method::POST,
            "mutate",
            Some(json!({"op": "delete_message", "user": alice_upn, "id": victim["graph_id"]})),
        )
        .await;
    let added = s
        .env
        .control(
            Method::POST,
            "mutate",
            Some(
                json!({"op": "add_message", "user": alice_upn, "folder": "inbox",
                "mime_base64": base64::engine::general_purpose::STANDARD.encode(HOSTILE)}),
            ),
        )
        .await;
    let hostile_id = added["results"][0]["immutable_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Run times are kept to the second: the second run must end in a later second than the
    // first for "the backup as of the first run's time" to mean the first run.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = s.env.backup().await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let run2 = second.run_id;

    // Now: gone; at the first run: still there, also when named by time.
    let (_, now) = list(&alice, &inbox, None).await;
    assert_eq!(now["run"], run2);
    let now_entries = now["entries"].as_array().unwrap();
    assert!(
        !now_entries
            .iter()
            .any(|e| e["graph_id"] == victim["graph_id"])
    );
    let hostile = now_entries
        .iter()
        .find(|e| e["graph_id"] == hostile_id.as_str())
        .expect("the new message is listed")
        .clone();
    let (st, then) = list(&alice, &inbox, Some(run1)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(then["entries"], before["entries"]);
    let (_, points) = alice.get("/api/v1/tasks/t/points").await;
    let points = points.as_array().unwrap();
    assert_eq!(points[0]["run"], run2);
    let t1 = points.iter().find(|p| p["run"] == run1).unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, by_time) = alice
        .get(&format!(
            "/api/v1/tasks/t/browse?path={}&at={}",
            q(&inbox),
            q(&t1)
        ))
        .await;
    assert_eq!(by_time["run"], run1);
    let (st, _) = list(&alice, &victim_path, Some(run2)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = list(&alice, &inbox, Some(9999)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Item detail of the deleted message at the first run.
    let (st, item) = alice
        .get(&format!(
            "/api/v1/tasks/t/item?path={}&at={run1}",
            q(&victim_path)
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{item}");
    assert_eq!(item["entry"]["kind"], "message");
    assert!(!item["subject"].as_str().unwrap().is_empty(), "{item}");
    let sender = item["from"].as_str().unwrap().to_owned();
    assert!(
        item["to"].is_array() && item["attachments"].is_array(),
        "{item}"
    );
    assert_eq!(item["versions"][0]["run"], run1);
    assert!(item["metadata"].is_object());

    // Its content is byte-identical to what the simulator served.
    let snap = s
        .env
        .control(
            Method::GET,
            &format!("snapshot?user={}", q(&alice_upn)),
            None,
        )
        .await;
    let resp = raw(
        &alice,
        &format!(
            "/api/v1/tasks/t/item/content?path={}&at={run1}&download=1",
            q(&victim_path)
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/rfc822");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, victim["size"].as_u64().unwrap());
    let hostile_bytes = raw(
        &alice,
        &format!(
            "/api/v1/tasks/t/item/content?path={}",
            q(hostile["path"].as_str().unwrap())
        ),
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(
        &hostile_bytes[..],
        HOSTILE.as_bytes(),
        "stored MIME byte-identical"
    );
    let expected_hash = snap["mail"][&alice_upn]
        .as_object()
        .unwrap()
        .values()
        .find_map(|f| f.get(hostile_id.as_str()))
        .expect("the simulator lists the new message")
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        blake3::hash(&hostile_bytes).to_hex().as_str(),
        expected_hash
    );

    // The hostile message renders without scripts, handlers or remote content.
    let resp = raw(
        &alice,
        &format!(
            "/api/v1/tasks/t/item/render?path={}",
            q(hostile["path"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("Numbers inside"), "{html}");
    for bad in [
        "<script",
        "onclick",
        "onerror",
        "tracker.evil.example",
        "alert(",
    ] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }
    let (st, _) = alice
        .get(&format!(
            "/api/v1/tasks/t/item/render?path={}",
            q(&format!("/users/{alice_upn}/mail"))
        ))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Search: words, sender, workload, time range; alice sees only her own mailbox.
    let search = |sess: &Session, query: String| {
        let sess = Session {
            base: sess.base.clone(),
            cookie: sess.cookie.clone(),
            csrf: sess.csrf.clone(),
            http: sess.http.clone(),
        };
        async move { sess.get(&format!("/api/v1/tasks/t/search?{query}")).await }
    };
    let (st, hits) = search(&alice, "q=zanzibar".into()).await;
    assert_eq!(st, StatusCode::OK, "{hits}");
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["path"], hostile["path"]);
    assert_eq!(hits[0]["workload"], "mail");
    assert_eq!(hits[0]["account"], alice_upn.as_str());
    let (_, hits) = search(&alice, "q=zanz&workload=onedrive".into()).await;
    assert_eq!(hits.as_array().unwrap().len(), 0);
    let (_, hits) = search(&alice, "q=zanzibar&from=2100-01-01".into()).await;
    assert_eq!(hits.as_array().unwrap().len(), 0);
    let (_, hits) = search(&alice, "q=zanzibar&to=2100-01-01&from=2000-01-01".into()).await;
    assert_eq!(hits.as_array().unwrap().len(), 1);
    let (_, hits) = search(&alice, "sender=mallory%40evil.example".into()).await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    let addr = sender
        .rsplit_once('<')
        .map_or(sender.as_str(), |(_, a)| a.trim_end_matches('>'))
        .to_owned();
    let (_, hits) = search(&admin, format!("sender={}&limit=500&at={run1}", q(&addr))).await;
    let hits = hits.as_array().unwrap();
    assert!(!hits.is_empty(), "sender {addr}");
    assert!(hits.iter().all(|h| h["kind"] == "message"));
    let (_, mine) = search(&alice, format!("sender={}&limit=500&at={run1}", q(&addr))).await;
    let mine = mine.as_array().unwrap();
    assert!(mine.len() <= hits.len());
    assert!(
        mine.iter().all(|h| h["account"] == alice_upn.as_str()),
        "{mine:?}"
    );
    assert!(
        mine.iter().any(|h| h["path"] == victim_path.as_str()),
        "{mine:?}"
    );
    let (st, _) = search(&alice, format!("q=zanzibar&account={}", q(&bob_upn))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = search(&alice, "q=".into()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = search(&alice, "q=x&from=yesterday".into()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Storage (admin): totals, per account and workload, growth per run.
    let (st, storage) = admin.get("/api/v1/tasks/t/storage").await;
    assert_eq!(st, StatusCode::OK, "{storage}");
    assert!(storage["repository_bytes"].as_u64().unwrap() > 0);
    assert!(
        storage["logical_bytes"].as_u64().unwrap() >= storage["unique_bytes"].as_u64().unwrap()
    );
    assert!(storage["dedup_ratio"].as_f64().unwrap() >= 1.0);
    assert!(storage["compression_ratio"].as_f64().unwrap() > 0.0);
    let per_run = storage["per_run"].as_array().unwrap();
    assert_eq!(per_run.len(), 2);
    assert!(per_run[1]["total_bytes"].as_u64() >= per_run[0]["total_bytes"].as_u64());
    let mail = storage["per_account"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == alice_upn.as_str() && a["workload"] == "mail")
        .unwrap()
        .clone();
    assert!(mail["items"].as_u64().unwrap() >= messages.len() as u64);
    let (st, _) = alice.get("/api/v1/tasks/t/storage").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}
