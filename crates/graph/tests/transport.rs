//! Retries, limits, paging, delta and batching against in-test servers that misbehave on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backhome_graph::models::{Message, User};
use backhome_graph::{BatchRequest, Call, Client, Error, ErrorClass, Limits};
use common::*;
use futures_util::TryStreamExt;
use serde_json::{Value, json};

/// A server whose Graph answers come from `graph(n, req)`, `n` counting Graph requests from 0.
async fn graph_server<F>(graph: F) -> Server
where
    F: Fn(usize, Req) -> Reply + Send + Sync + 'static,
{
    let n = Arc::new(AtomicUsize::new(0));
    let graph = Arc::new(graph);
    serve(move |req| {
        let n = n.clone();
        let graph = graph.clone();
        async move {
            if is_token(&req) {
                token_reply(&["User.Read.All"], 3600)
            } else {
                graph(n.fetch_add(1, Ordering::SeqCst), req)
            }
        }
    })
    .await
}

fn ok_users() -> Reply {
    Reply::json(200, &json!({"value": [{"id": "u1"}]}))
}

#[tokio::test]
async fn throttling_with_fractional_retry_after() {
    let body: Value = serde_json::from_str(include_str!("data/error-throttled.json")).unwrap();
    let server = graph_server(move |n, _| {
        if n == 0 {
            Reply::json(429, &body).header("Retry-After", "0.3")
        } else {
            ok_users()
        }
    })
    .await;
    let client = client(&server);
    let start = Instant::now();
    let v: Value = client.get_json("/users", Some("tenant")).await.unwrap();
    assert_eq!(v["value"][0]["id"], "u1");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "waited Retry-After: {:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    let s = client.stats();
    assert_eq!((s.throttled, s.retries, s.requests), (1, 1, 2));
}

#[tokio::test]
async fn service_unavailable_without_retry_after_backs_off() {
    let server = graph_server(|n, _| {
        if n < 2 {
            Reply::raw(503, "busy")
        } else {
            ok_users()
        }
    })
    .await;
    let client = client(&server);
    client.get_json::<Value>("/users", None).await.unwrap();
    assert_eq!(server.matching("/v1.0/users").len(), 3);
    assert_eq!(client.stats().throttled, 0);
}

#[tokio::test]
async fn reset_truncated_and_malformed_answers_are_retried() {
    let full =
        serde_json::to_vec(&json!({"value": [{"id": "u1", "displayName": "A long enough name"}]}))
            .unwrap();
    let server = graph_server(move |n, _| match n {
        0 => Reply::Reset,
        1 => Reply::Truncated {
            status: 200,
            headers: vec![],
            body: full.clone(),
            send: 10,
        },
        2 => Reply::raw(200, "{\"value\": [{\"id\": "),
        3 => Reply::raw(502, "<html>bad gateway</html>"),
        _ => Reply::raw(200, full.clone()),
    })
    .await;
    let client = client(&server);
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(users[0].display_name.as_deref(), Some("A long enough name"));
    assert_eq!(server.matching("/v1.0/users").len(), 5);
    assert_eq!(client.stats().retries, 4);
}

#[tokio::test]
async fn persistent_failures_give_up_with_a_clear_error() {
    let server = graph_server(|_, _| Reply::raw(200, "not json")).await;
    let client = client(&server);
    let e = client.get_json::<Value>("/users", None).await.unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Temporary);
    assert_eq!(
        server.matching("/v1.0/users").len(),
        5,
        "capped at max_attempts"
    );

    let server = graph_server(|_, _| Reply::json(404, &json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}))).await;
    let e = client_for(&server)
        .get_json::<Value>("/users/u1/mailFolders", None)
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::MailboxNotEnabled);
    assert_eq!(
        server.matching("/v1.0/").len(),
        1,
        "permanent errors are not retried"
    );
}

fn client_for(server: &Server) -> Client {
    client(server)
}

#[tokio::test]
async fn paging_follows_next_links_with_the_same_settings() {
    let base = Arc::new(Mutex::new(String::new()));
    let b2 = base.clone();
    let server = graph_server(move |_, req| {
        let base = b2.lock().unwrap().clone();
        let page = req.target.split("page=").nth(1).and_then(|p| p.split('&').next()).unwrap_or("1").to_owned();
        let next = match page.as_str() {
            "1" => Some(format!("{base}/v1.0/users/u1/messages?page=2&$skiptoken=abc")),
            "2" => Some(format!("{base}/v1.0/users/u1/messages?page=3")),
            _ => None,
        };
        let mut body = json!({"value": [{"id": format!("m{page}a"), "subject": "x"}, {"id": format!("m{page}b"), "unknownField": {"a": 1}}]});
        if let Some(next) = next {
            body["@odata.nextLink"] = json!(next);
        }
        Reply::json(200, &body)
    })
    .await;
    *base.lock().unwrap() = server.base.clone();
    let client = client(&server);
    let messages: Vec<Message> = client
        .items(
            Call::get("/users/u1/messages")
                .resource("u1")
                .max_page_size(2),
        )
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = messages.iter().map(|m| m.meta.id.as_str()).collect();
    assert_eq!(ids, ["m1a", "m1b", "m2a", "m2b", "m3a", "m3b"]);
    let reqs = server.matching("/v1.0/users/u1/messages");
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(
            r.header("prefer"),
            Some("IdType=\"ImmutableId\", odata.maxpagesize=2")
        );
    }
    assert!(reqs[1].target.contains("$skiptoken=abc"));
}

#[tokio::test]
async fn next_links_to_other_hosts_are_refused() {
    let foreign = serve(|_| async { Reply::json(200, &json!({"value": []})) }).await;
    let link = format!("{}/v1.0/users?page=2", foreign.base);
    let server = graph_server(move |_, _| {
        Reply::json(
            200,
            &json!({"value": [{"id": "u1"}], "@odata.nextLink": link.clone()}),
        )
    })
    .await;
    let client = client(&server);
    let e = client
        .items::<User>(Call::get("/users"))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ForeignLink { .. }), "{e:?}");
    assert!(
        foreign.requests().is_empty(),
        "the token never went to another host"
    );
    let e = client
        .json::<Value>(Call::get(format!("{}/v1.0/users", foreign.base)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ForeignLink { .. }), "{e:?}");
    assert!(foreign.requests().is_empty());
}

#[tokio::test]
async fn delta_pages_removed_items_and_resync() {
    let base = Arc::new(Mutex::new(String::new()));
    let b2 = base.clone();
    let server = graph_server(move |_, req| {
        let base = b2.lock().unwrap().clone();
        if req.target.contains("$deltatoken=old") {
            return Reply::json(410, &json!({"error": {"code": "resyncRequired", "message": "Resync required."}}))
                .header("Location", &format!("{base}/v1.0/drives/d/root/delta?token=fresh"));
        }
        if req.target.contains("$deltatoken=expired") {
            return Reply::json(400, &json!({"error": {"code": "SyncStateNotFound", "message": "The sync state generation was not found."}}));
        }
        if req.target.contains("$skiptoken=p2") {
            return Reply::json(
                200,
                &json!({"value": [{"@odata.type": "#microsoft.graph.message", "id": "m3", "subject": "changed"}],
                        "@odata.deltaLink": format!("{base}/v1.0/users/u1/mailFolders/inbox/messages/delta?$deltatoken=new")}),
            );
        }
        Reply::json(
            200,
            &json!({"value": [
                        {"id": "m1", "subject": "hello"},
                        {"@odata.type": "#microsoft.graph.message", "id": "m2", "@removed": {"reason": "deleted"}},
                        {"id": "m4", "@removed": {"reason": "changed"}}],
                    "@odata.nextLink": format!("{base}/v1.0/users/u1/mailFolders/inbox/messages/delta?$skiptoken=p2")}),
        )
    })
    .await;
    *base.lock().unwrap() = server.base.clone();
    let client = client(&server);
    let first = Call::get("/users/u1/mailFolders/inbox/messages/delta")
        .resource("u1")
        .max_page_size(50);
    let p1 = client.delta_page::<Message>(first.clone()).await.unwrap();
    assert_eq!(p1.items.len(), 1);
    assert_eq!(p1.items[0].meta.subject.as_deref(), Some("hello"));
    assert_eq!(p1.removed.len(), 2);
    assert_eq!(
        (p1.removed[0].id.as_str(), p1.removed[0].reason.as_deref()),
        ("m2", Some("deleted"))
    );
    assert!(!p1.is_last());
    let p2 = client
        .delta_page::<Message>(first.follow(p1.next_link.unwrap()))
        .await
        .unwrap();
    assert!(p2.is_last());
    let delta = p2.delta_link.unwrap();
    assert!(delta.ends_with("$deltatoken=new"));
    assert_eq!(
        server.matching("/delta")[0].header("prefer"),
        Some("IdType=\"ImmutableId\", odata.maxpagesize=50")
    );

    let e = client
        .delta_page::<Value>(Call::get(format!(
            "{}/v1.0/drives/d/root/delta?$deltatoken=old",
            server.base
        )))
        .await
        .unwrap_err();
    match &e {
        Error::Resync { code, location } => {
            assert_eq!(code, "resyncRequired");
            assert!(location.as_deref().unwrap().ends_with("token=fresh"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::Resync);
    let e = client
        .delta_page::<Value>(Call::get(format!(
            "{}/v1.0/users/u1/mailFolders/x/messages/delta?$deltatoken=expired",
            server.base
        )))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Resync { .. }), "{e:?}");
}

#[tokio::test]
async fn batch_retries_throttled_items_and_their_dependents() {
    let server = graph_server(|n, req| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let requests = body["requests"].as_array().unwrap().clone();
        let responses: Vec<Value> = requests
            .iter()
            .map(|r| {
                let id = r["id"].as_str().unwrap();
                match (n, id) {
                    (0, "2") => json!({"id": "2", "status": 429, "headers": {"Retry-After": "0.2"}, "body": {"error": {"code": "TooManyRequests", "message": "later"}}}),
                    (0, "3") => json!({"id": "3", "status": 424, "body": {"error": {"code": "FailedDependency", "message": "dep"}}}),
                    (_, "4") => json!({"id": "4", "status": 404, "body": {"error": {"code": "ErrorItemNotFound", "message": "gone"}}}),
                    _ => json!({"id": id, "status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": format!("item{id}"), "url": r["url"]}}),
                }
            })
            .rev()
            .collect();
        Reply::json(200, &json!({ "responses": responses }))
    })
    .await;
    let client = client(&server);
    let requests = vec![
        BatchRequest::get("1", "/users/u1/mailFolders/inbox"),
        BatchRequest::get("2", "/users/u1/mailFolders/sentitems"),
        BatchRequest::get("3", "/users/u1/mailFolders/drafts").depends_on("2"),
        BatchRequest::get("4", "/users/u1/mailFolders/gone"),
    ];
    let start = Instant::now();
    let answers = client.batch(requests, Some("u1")).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    let ids: Vec<&str> = answers.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"], "answers in request order");
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 200, 200, 404]
    );
    assert_eq!(answers[3].error().unwrap().class(), ErrorClass::NotFound);
    let v: Value = answers[1].json().unwrap();
    assert_eq!(v["id"], "item2");

    let batches = server.matching("/v1.0/$batch");
    assert_eq!(batches.len(), 2);
    let second: Value = serde_json::from_slice(&batches[1].body).unwrap();
    let again: Vec<&str> = second["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(again, ["2", "3"]);
    assert_eq!(second["requests"][1]["dependsOn"], json!(["2"]));
    let first: Value = serde_json::from_slice(&batches[0].body).unwrap();
    assert_eq!(
        first["requests"][0]["headers"]["Prefer"],
        "IdType=\"ImmutableId\""
    );
    assert_eq!(client.stats().throttled, 1);

    let too_many: Vec<BatchRequest> = (0..21)
        .map(|i| BatchRequest::get(i.to_string(), "/users"))
        .collect();
    assert!(matches!(
        client.batch(too_many, None).await,
        Err(Error::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_never_exceeds_the_per_resource_limit() {
    let current: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let peak: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let total_now = Arc::new(AtomicUsize::new(0));
    let total_peak = Arc::new(AtomicUsize::new(0));
    let (c2, p2, tn, tp) = (
        current.clone(),
        peak.clone(),
        total_now.clone(),
        total_peak.clone(),
    );
    let server = serve(move |req| {
        let (current, peak, tn, tp) = (c2.clone(), p2.clone(), tn.clone(), tp.clone());
        async move {
            if is_token(&req) {
                return token_reply(&["Mail.Read"], 3600);
            }
            let mailbox = req.path().split('/').nth(3).unwrap_or_default().to_owned();
            {
                let mut cur = current.lock().unwrap();
                let c = cur.entry(mailbox.clone()).or_default();
                *c += 1;
                let mut pk = peak.lock().unwrap();
                let p = pk.entry(mailbox.clone()).or_default();
                *p = (*p).max(*c);
            }
            let t = tn.fetch_add(1, Ordering::SeqCst) + 1;
            tp.fetch_max(t, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            tn.fetch_sub(1, Ordering::SeqCst);
            *current.lock().unwrap().get_mut(&mailbox).unwrap() -= 1;
            Reply::json(200, &json!({"value": []}))
        }
    })
    .await;
    let mut config = config(&server);
    config.limits = Limits {
        global: 10,
        per_resource: 4,
    };
    let client = Client::new(config, credential()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let c = client.clone();
        let mbx = format!("mbx{}", i % 3);
        tasks.push(tokio::spawn(async move {
            c.get_json::<Value>(&format!("/users/{mbx}/messages"), Some(&mbx))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak.lock().unwrap().clone();
    assert_eq!(peak.len(), 3);
    for (mbx, p) in &peak {
        assert!(*p <= 4, "{mbx} saw {p} concurrent requests");
    }
    assert!(
        peak.values().any(|p| *p == 4),
        "the limit is used fully: {peak:?}"
    );
    assert!(total_peak.load(Ordering::SeqCst) <= 10, "global limit");
    assert_eq!(client.stats().in_flight, 0);
}

#[tokio::test]
async fn non_idempotent_requests_are_not_resent_after_a_broken_connection() {
    let server = graph_server(|n, _| {
        if n == 0 {
            Reply::Reset
        } else {
            Reply::json(201, &json!({"id": "m1"}))
        }
    })
    .await;
    let client = client(&server);
    let call = Call::post_json(
        "/users/u1/mailFolders/inbox/messages",
        &json!({"subject": "restored"}),
    )
    .unwrap();
    let e = client.json::<Value>(call.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert_eq!(
        server.matching("/messages").len(),
        1,
        "a POST that may have happened is not sent again"
    );
    // Marked idempotent, it is.
    let v: Value = client.json(call.idempotent(true)).await.unwrap();
    assert_eq!(v["id"], "m1");

    let server = graph_server(|n, _| {
        if n == 0 {
            Reply::raw(503, "busy").header("Retry-After", "0")
        } else {
            Reply::json(201, &json!({"id": "m1"}))
        }
    })
    .await;
    let call = Call::post_json("/users/u1/messages", &json!({})).unwrap();
    client_for(&server).json::<Value>(call).await.unwrap();
    assert_eq!(
        server.matching("/messages").len(),
        2,
        "503 says it was not carried out"
    );
}

#[tokio::test]
async fn mailbox_and_drive_probes() {
    let server = graph_server(|_, req| match req.path() {
        "/v1.0/users/licensed/mailFolders/inbox" => Reply::json(200, &json!({"id": "inbox-id"})),
        "/v1.0/users/unlicensed/mailFolders/inbox" => Reply::json(
            404,
            &json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}),
        ),
        "/v1.0/users/licensed/drive" => Reply::json(200, &json!({"id": "b!drive", "driveType": "business", "name": "OneDrive"})),
        "/v1.0/users/unlicensed/drive" => Reply::json(404, &json!({"error": {"code": "ResourceNotFound", "message": "User's mysite not found."}})),
        _ => Reply::json(403, &json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}})),
    })
    .await;
    let client = client(&server);
    assert!(client.has_mailbox("licensed").await.unwrap());
    assert!(!client.has_mailbox("unlicensed").await.unwrap());
    assert!(
        client.has_mailbox("blocked").await.is_err(),
        "access denied is not 'no mailbox'"
    );
    assert_eq!(
        client
            .user_drive("licensed")
            .await
            .unwrap()
            .unwrap()
            .drive_type
            .as_deref(),
        Some("business")
    );
    assert!(client.user_drive("unlicensed").await.unwrap().is_none());
}

#[tokio::test]
async fn empty_answers_parse_as_null() {
    let server = graph_server(|_, req| {
        if req.method == "DELETE" {
            Reply::status(204)
        } else {
            Reply::raw(200, "")
        }
    })
    .await;
    let client = client(&server);
    client
        .json::<()>(Call::delete("/users/u1/messages/m1"))
        .await
        .unwrap();
    let v: Option<Value> = client
        .json(Call::get("/users/u1/messages/m2"))
        .await
        .unwrap();
    assert_eq!(v, None);
    let e = client
        .json::<User>(Call::delete("/users/u1/messages/m3"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert_eq!(
        server.matching("/m3").len(),
        1,
        "an intentional empty answer is not re-requested"
    );
}
