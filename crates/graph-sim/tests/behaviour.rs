//! Throttling, fault injection, `$batch`, directory delta, counters and snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use graph_sim::Profile;
use serde_json::{Value, json};

#[tokio::test]
async fn throttling_per_mailbox_concurrency_and_budget() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.latency_ms = 150;
    o.throttle.enabled = true;
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let url = h.url(&format!("/users/{upn}/mailFolders/inbox"));
    let futs: Vec<_> = (0..8)
        .map(|_| h.http.get(&url).bearer_auth(&h.token).send())
        .collect();
    let results = futures_util::future::join_all(futs).await;
    let mut throttled = 0;
    for r in results {
        let r = r.unwrap();
        if r.status().as_u16() == 429 {
            throttled += 1;
            assert!(r.headers().contains_key("retry-after"));
            let v: Value = r.json().await.unwrap();
            let mut m = Vec::new();
            common::shape_mismatches(&common::example("error-throttled"), &v, "", &mut m);
            assert!(m.is_empty(), "{m:?}");
        }
    }
    assert!(throttled >= 4, "{throttled} throttled of 8");
    let (_, c) = h.control(reqwest::Method::GET, "counters", None).await;
    assert!(c["throttled"].as_u64().unwrap() >= 4);
    assert!(
        c["max_concurrency_by_mailbox"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.as_u64().unwrap() <= 4),
        "{c}"
    );
    // Another mailbox is not affected; a request budget per window applies.
    let (s, _) = h.control(reqwest::Method::PUT, "throttle", Some(json!({"enabled": true, "mailbox_requests": 3, "window_ms": 60000, "retry_after": 2.5}))).await;
    assert_eq!(s, 204);
    h.control(reqwest::Method::POST, "latency", Some(json!({"ms": 0})))
        .await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        let r = h.http.get(&url).bearer_auth(&h.token).send().await.unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    // Off by default.
    let plain = common::start(Profile::Tiny).await;
    let upn = plain.first_user().await;
    for _ in 0..20 {
        assert_eq!(
            plain
                .get(&format!("/users/{upn}/mailFolders/inbox"))
                .await
                .0,
            200
        );
    }
    h.sim.stop().await;
    plain.sim.stop().await;
}

#[tokio::test]
async fn faults_are_injected_per_pattern() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let path = format!("/users/{upn}/mailFolders");
    let set = |rule: Value| {
        let h = &h;
        async move {
            let (s, v) = h
                .control(
                    reqwest::Method::PUT,
                    "faults",
                    Some(json!({"seed": 7, "rules": [rule]})),
                )
                .await;
            assert_eq!(s, 204, "{v}");
        }
    };
    for (kind, status, retry) in [
        ("service_unavailable", 503, Some(3.0)),
        ("service_unavailable", 503, None),
        ("gateway_timeout", 504, Some(1.5)),
        ("too_many_requests", 429, Some(2.0)),
        ("item_not_found", 404, None),
    ] {
        set(json!({"pattern": "mailFolders", "kind": kind, "retry_after": retry})).await;
        let r = h
            .http
            .get(h.url(&path))
            .bearer_auth(&h.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{kind}");
        assert_eq!(
            r.headers().get("retry-after").is_some(),
            retry.is_some(),
            "{kind}"
        );
    }
    set(json!({"pattern": "delta", "kind": "resync_required"})).await;
    let r = h
        .http
        .get(h.url(&format!("{path}/inbox/messages/delta")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert!(r.headers().contains_key("location"));
    set(json!({"pattern": "mailFolders", "kind": "malformed_json"})).await;
    let r = h
        .http
        .get(h.url(&path))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    set(json!({"pattern": "mailFolders", "kind": "truncated_body"})).await;
    let r = h.http.get(h.url(&path)).bearer_auth(&h.token).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "truncated body must fail to read");
    set(json!({"pattern": "mailFolders", "kind": "connection_reset"})).await;
    let r = h.http.get(h.url(&path)).bearer_auth(&h.token).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "reset must fail");
    set(json!({"pattern": "mailFolders", "kind": "stall", "stall_ms": 3000})).await;
    let r = h
        .http
        .get(h.url(&path))
        .bearer_auth(&h.token)
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(r.is_err(), "stalled response must time out");
    // Probability and reproducibility: same seed → same sequence.
    let mut runs = Vec::new();
    for _ in 0..2 {
        set(json!({"pattern": "mailFolders", "kind": "service_unavailable", "probability": 0.5}))
            .await;
        let mut seq = Vec::new();
        for _ in 0..16 {
            seq.push(h.get(&path).await.0);
        }
        runs.push(seq);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&503) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
    // Other endpoints unaffected.
    assert_eq!(h.get("/users").await.0, 200);
    h.control(reqwest::Method::DELETE, "faults", None).await;
    assert_eq!(h.get(&path).await.0, 200);
    h.sim.stop().await;
}

#[tokio::test]
async fn batch_runs_requests_with_dependencies_and_per_item_status() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.throttle.enabled = true;
    o.throttle.mailbox_requests = 2;
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$top=2"},
        {"id": "2", "method": "GET", "url": format!("/users/{upn}/mailFolders/inbox")},
        {"id": "3", "method": "GET", "url": format!("/users/{upn}/mailFolders/nonexistent")},
        {"id": "4", "method": "GET", "url": "/users", "dependsOn": ["3"]},
        {"id": "5", "method": "GET", "url": format!("/users/{upn}/mailFolders/inbox")},
        {"id": "6", "method": "GET", "url": format!("/users/{upn}/mailFolders/inbox")},
        {"id": "7", "method": "POST", "url": format!("/users/{upn}/mailFolders"), "headers": {"Content-Type": "application/json"}, "body": {"displayName": "From batch"}},
    ]});
    let (s, v) = h.send(reqwest::Method::POST, "/$batch", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let status = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status("1"), 200);
    assert_eq!(status("2"), 200);
    assert_eq!(status("3"), 404);
    assert_eq!(status("4"), 424);
    assert!(status("5") == 429 || status("6") == 429);
    let throttled = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap();
    assert!(throttled["headers"]["Retry-After"].is_string());
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("batch-response")["responses"][0],
        &v["responses"][0],
        "",
        &mut m,
    );
    m.retain(|x| !x.contains("/body/"));
    assert!(m.is_empty(), "{m:?}");
    // Limits: 21 requests, duplicate ids.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_eq!(
        h.send(
            reqwest::Method::POST,
            "/$batch",
            Some(json!({"requests": many}))
        )
        .await
        .0,
        400
    );
    let dup = json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/users"}]});
    assert_eq!(
        h.send(reqwest::Method::POST, "/$batch", Some(dup)).await.0,
        400
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn users_paging_filter_select_and_delta() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.users = Some(9);
    let h = common::start_with(o).await;
    let (s, v) = h.get("/users?$top=4").await;
    assert_eq!(s, 200);
    let mut m = Vec::new();
    common::shape_mismatches(&common::example("user-list"), &v, "", &mut m);
    assert!(m.is_empty(), "{m:?}");
    let mut all = v["value"].as_array().unwrap().clone();
    let mut next = v["@odata.nextLink"].as_str().map(str::to_string);
    assert!(next.as_deref().unwrap().contains("$skiptoken="));
    while let Some(n) = next {
        let (_, p) = h.get(&n).await;
        all.extend(p["value"].as_array().unwrap().iter().cloned());
        next = p["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), 9);
    let name = all[0]["displayName"].as_str().unwrap();
    let (s, f) = h
        .get(&format!(
            "/users?$filter=displayName eq '{}'&$select=id,displayName",
            name.replace('\'', "''")
        ))
        .await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["value"].as_array().unwrap().len(), 1);
    assert!(f["value"][0].get("mail").is_none());
    let (s, f) = h
        .get(&format!(
            "/users?$filter=startswith(displayName,'{}')",
            name.chars().next().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert!(!f["value"].as_array().unwrap().is_empty());
    assert_eq!(
        h.get("/users?$filter=contains(displayName,'a')").await.0,
        400
    );
    let (_, counted) = h.get("/users?$count=true&$top=2").await;
    assert_eq!(counted["@odata.count"], 9);
    assert_eq!(h.get("/me").await.0, 400);
    let (s, u) = h
        .get(&format!("/users/{}", all[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!((s, u["id"].clone()), (200, all[0]["id"].clone()));

    let (items, delta, _) = h.delta_round("/users/delta", &[]).await;
    assert_eq!(items.len(), 9);
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("user-delta")["value"][0],
        &items[0],
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    let added = h
        .mutate(json!({"op": "add_user", "display_name": "Neue Nutzerin", "upn_local": "neue"}))
        .await;
    h.mutate(json!({"op": "delete_user", "user": all[1]["id"]}))
        .await;
    h.mutate(json!({"op": "modify_user", "user": all[2]["id"], "display_name": "Renamed"}))
        .await;
    let (round, _, _) = h.delta_round(&delta, &[]).await;
    assert!(round.iter().any(|u| u["id"] == added["id"]));
    assert!(
        round
            .iter()
            .any(|u| u["id"] == all[1]["id"] && u["@removed"]["reason"] == "changed")
    );
    assert!(
        round
            .iter()
            .any(|u| u["id"] == all[2]["id"] && u["displayName"] == "Renamed")
    );
    assert_eq!(round.len(), 3, "{round:?}");
    // Groups delta.
    let (groups, gdelta, _) = h.delta_round("/groups/delta", &[]).await;
    assert!(!groups.is_empty() && groups[0].get("members@delta").is_some());
    h.mutate(json!({"op": "delete_group", "group": groups[0]["id"]}))
        .await;
    let (round, _, _) = h.delta_round(&gdelta, &[]).await;
    assert_eq!(round.len(), 1);
    assert!(round[0].get("@removed").is_some());
    h.sim.stop().await;
}

#[tokio::test]
async fn snapshot_counters_and_determinism() {
    let a = common::start(Profile::Tiny).await;
    let b = common::start(Profile::Tiny).await;
    let (s, snap_a) = a.control(reqwest::Method::GET, "snapshot", None).await;
    assert_eq!(s, 200);
    let (_, snap_b) = b.control(reqwest::Method::GET, "snapshot", None).await;
    assert_eq!(snap_a, snap_b, "same seed and profile give the same tenant");
    let upn = a.first_user().await;
    let inbox = &snap_a["mail"][&upn]["Inbox"];
    assert!(
        inbox.as_object().is_some_and(|o| !o.is_empty()),
        "{}",
        snap_a["mail"]
    );
    assert!(snap_a["drives"].as_object().unwrap().values().any(|d| {
        d.as_object()
            .unwrap()
            .values()
            .any(|h| h.as_str().unwrap().len() == 64)
    }));
    // A change shows in the snapshot.
    let (_, list) = a
        .get(&format!("/users/{upn}/mailFolders/inbox/messages?$top=1"))
        .await;
    a.mutate(json!({"op": "delete_message", "user": upn, "id": list["value"][0]["id"]}))
        .await;
    let (_, after) = a.control(reqwest::Method::GET, "snapshot", None).await;
    assert_ne!(after["mail"][&upn]["Inbox"], snap_a["mail"][&upn]["Inbox"]);
    assert_eq!(after["drives"], snap_a["drives"]);
    // Counters.
    a.control(reqwest::Method::POST, "counters/reset", None)
        .await;
    a.get("/users").await;
    a.get(&format!("/users/{upn}/mailFolders")).await;
    let (_, c) = a.control(reqwest::Method::GET, "counters", None).await;
    assert_eq!(c["requests"], 2, "{c}");
    assert_eq!(c["requests_by_kind"]["mail"], 1);
    assert_eq!(c["requests_by_mailbox"].as_object().unwrap().len(), 1);
    assert!(c["bytes_served"].as_u64().unwrap() > 0);
    // A different seed gives a different tenant.
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.seed = 2;
    let other = common::start_with(o).await;
    assert_ne!(other.first_user().await, upn);
    for h in [a, b, other] {
        h.sim.stop().await;
    }
}

#[tokio::test]
async fn malformed_requests_get_errors_not_crashes() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (_, d) = h.get(&format!("/users/{upn}/drive")).await;
    let d = d["id"].as_str().unwrap().to_string();
    let paths = [
        "/".to_string(),
        "/users/".to_string(),
        "/users/nobody@nowhere".to_string(),
        format!("/users/{upn}/mailFolders/AAMkAAAA/messages"),
        format!("/users/{upn}/messages/%ZZ"),
        format!("/users/{upn}/messages/AAMkA==/attachments/xyz/$value"),
        format!("/users/{upn}/mailFolders/inbox/messages/delta?$deltatoken=garbage"),
        format!("/users/{upn}/mailFolders/inbox/messages/delta?$skiptoken=eyJ9"),
        format!("/users/{upn}/calendarView/delta?startDateTime=x&endDateTime=y"),
        format!("/users/{upn}/events/0/attachments/1/$value"),
        format!("/drives/{d}/items/01ZZZZ/children"),
        format!("/drives/{d}/root:/a/b/c:/content"),
        format!("/drives/{d}/root:/:/content"),
        format!("/drives/{d}/root/delta?token=%00"),
        format!("/drives/{d}/items/root/versions/x/content"),
        "/drives/b!AAAA/root".to_string(),
        "/teams/00000000-0000-0000-0000-000000000000/channels".to_string(),
        "/groups/xyz/team/channels/19:x@thread.tacv2/messages/1/replies".to_string(),
        "/sites/a,b,c/drives".to_string(),
        "/users?$top=-5".to_string(),
        "/users?$top=abc&$skiptoken=%%%".to_string(),
    ];
    for p in &paths {
        let (s, _) = h.get(p).await;
        assert!((200..500).contains(&s), "{p}: {s}");
    }
    for (m, p, body) in [
        (
            reqwest::Method::POST,
            format!("/users/{upn}/mailFolders"),
            "not json",
        ),
        (
            reqwest::Method::PATCH,
            format!("/users/{upn}/messages/abc"),
            "{}",
        ),
        (
            reqwest::Method::POST,
            "/$batch".to_string(),
            "{\"requests\": 5}",
        ),
        (
            reqwest::Method::POST,
            "/$batch".to_string(),
            "{\"requests\": [{\"id\": \"1\", \"method\": \"GET\", \"url\": \"/users\", \"dependsOn\": [\"9\"]}]}",
        ),
        (
            reqwest::Method::PUT,
            format!("/drives/{d}/items/root:/a%2Fb:/content"),
            "x",
        ),
        (
            reqwest::Method::POST,
            format!("/users/{upn}/calendar/events"),
            "{\"subject\": 1}",
        ),
    ] {
        let r = h
            .http
            .request(m, h.url(&p))
            .bearer_auth(&h.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            (400..500).contains(&r.status().as_u16()),
            "{p}: {}",
            r.status()
        );
    }
    // The server is still healthy.
    assert_eq!(h.get("/users").await.0, 200);
    h.sim.stop().await;
}

#[tokio::test]
async fn sharepoint_resource_units_and_ratelimit_headers() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.throttle.enabled = true;
    o.throttle.file_units_per_minute = 10;
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let (_, d) = h.get(&format!("/users/{upn}/drive")).await;
    let d = d["id"].as_str().unwrap().to_string();
    let mut saw_header = false;
    let mut last = 0;
    for _ in 0..12 {
        let r = h
            .http
            .get(h.url(&format!("/drives/{d}/root")))
            .bearer_auth(&h.token)
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
        if r.headers().contains_key("ratelimit-remaining") && last == 200 {
            saw_header = true;
        }
        if last == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(r.headers()["ratelimit-remaining"], "0");
            break;
        }
    }
    assert!(saw_header, "RateLimit headers once 80 % is used");
    assert_eq!(last, 429);
    h.sim.stop().await;
}

#[tokio::test]
async fn exchange_upload_budget_per_mailbox() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.throttle.enabled = true;
    o.throttle.mailbox_upload_bytes = 1500;
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let body = json!({"subject": "x".repeat(600), "body": {"contentType": "text", "content": "y"}});
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/messages"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/messages"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/messages"),
            Some(body),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("TooManyRequests"))
    );
    // Reads still pass.
    assert_eq!(
        h.get(&format!("/users/{upn}/mailFolders/inbox")).await.0,
        200
    );
    h.sim.stop().await;
}
