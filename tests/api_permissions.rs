//! Every route of the OpenAPI document called by portal user `bob` with parameters that point at
//! `alice`'s data (her paths, her account, her job) answers 403 or 404, and admin-only routes
//! answer 403; the few routes a portal user may call for their own data return only bob's own
//! things; a task with the portal off is invisible to portal users. Routes added later are
//! covered automatically because the list comes from `/api/v1/openapi.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backhome::task::{Service, TaskSpec, TaskStore};
use common::service::{self, Session, upns};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Routes a portal user may call (docs/api.md marks them *portal*); everything else is for
/// administrators and must answer 403.
const PORTAL: [&str; 15] = [
    "/api/v1/session",
    "/api/v1/me/accounts",
    "/api/v1/tasks/{name}/points",
    "/api/v1/tasks/{name}/browse",
    "/api/v1/tasks/{name}/item",
    "/api/v1/tasks/{name}/item/content",
    "/api/v1/tasks/{name}/item/render",
    "/api/v1/tasks/{name}/search",
    "/api/v1/tasks/{name}/restores",
    "/api/v1/tasks/{name}/exports",
    "/api/v1/jobs",
    "/api/v1/jobs/{id}",
    "/api/v1/jobs/{id}/cancel",
    "/api/v1/jobs/{id}/download",
    "/api/v1/health",
];

/// Routes bob may call for his own things, checked separately below (method, path).
const ALLOWED: [(&str, &str); 7] = [
    ("get", "/api/v1/health"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/me/accounts"),
    ("get", "/api/v1/jobs"),
];

/// Task-level routes that show no account's data: allowed for a task with the portal on.
const TASK_LEVEL: [(&str, &str); 1] = [("get", "/api/v1/tasks/{name}/points")];

/// A well-formed body, so that the answer is about permission (actix answers a malformed body
/// before the sign-in check completes): alice's paths for the data routes, otherwise a minimal
/// instance of the route's request schema.
fn body_for(doc: &Value, op: &Value, path: &str, alice_path: &str, alice_upn: &str) -> Value {
    if path.ends_with("/restores") {
        json!({"paths": [alice_path], "conflict": "skip"})
    } else if path.ends_with("/exports") {
        json!({"paths": [alice_path], "format": "zip"})
    } else if path.starts_with("/api/v1/mapping") {
        json!({"accounts": [{"task": "t", "account": alice_upn}]})
    } else {
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            json!({})
        } else {
            instance(doc, schema, 0)
        }
    }
}

/// A minimal JSON value valid for `schema` (required properties only).
fn instance(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 12 {
        return Value::Null;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return instance(doc, &doc["components"]["schemas"][name], depth + 1);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[key].as_array().and_then(|a| a.first()) {
            if key == "allOf" {
                let mut out = serde_json::Map::new();
                for part in schema[key].as_array().unwrap() {
                    if let Value::Object(o) = instance(doc, part, depth + 1) {
                        out.extend(o);
                    }
                }
                return Value::Object(out);
            }
            return instance(doc, first, depth + 1);
        }
    }
    if let Some(v) = schema["enum"].as_array().and_then(|a| a.first()) {
        return v.clone();
    }
    let ty = match &schema["type"] {
        Value::Array(a) => a
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match ty.as_str() {
        Some("string") => json!("x"),
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("null") => Value::Null,
        _ => {
            let mut out = serde_json::Map::new();
            for r in schema["required"].as_array().into_iter().flatten() {
                let k = r.as_str().unwrap();
                out.insert(
                    k.to_owned(),
                    instance(doc, &schema["properties"][k], depth + 1),
                );
            }
            Value::Object(out)
        }
    }
}

async fn walk(
    bob: &Session,
    doc: &Value,
    task: &str,
    alice_path: &str,
    alice_upn: &str,
    alice_job: &str,
) -> usize {
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let m = method.as_str();
            if ALLOWED.contains(&(m, template.as_str())) {
                continue;
            }
            let task_level = TASK_LEVEL.contains(&(m, template.as_str()));
            if task_level && task == "t" {
                continue;
            }
            // Path parameters: the task, alice's job (an integer id elsewhere: a run), alice.
            let mut url = template.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                if p["in"] != "path" {
                    continue;
                }
                let integer = p["schema"]["type"] == "integer";
                let v = match name {
                    "name" => task.to_owned(),
                    "user" => "alice".to_owned(),
                    "id" if !integer => alice_job.to_owned(),
                    _ => match instance(doc, &p["schema"], 0) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                };
                url = url.replace(&format!("{{{name}}}"), &v);
            }
            let url = regex_free_fill(&url);
            let mut url = format!(
                "{url}?path={}&account={}&q=a&sender=a&task={task}&object={}&user=alice",
                q(alice_path),
                q(alice_upn),
                q(alice_upn)
            );
            // Other required query parameters get a well-formed value (actix answers a
            // malformed query before the sign-in check completes).
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                let fixed = ["path", "account", "q", "sender", "task", "object", "user"];
                if p["in"] == "query" && p["required"] == true && !fixed.contains(&name) {
                    let v = match instance(doc, &p["schema"], 0) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    url.push_str(&format!("&{name}={}", q(&v)));
                }
            }
            let method: Method = m.to_uppercase().parse().unwrap();
            let body = body_for(doc, op, template, alice_path, alice_upn);
            let (st, answer) = bob.send(method, &url, Some(body)).await;
            let portal = PORTAL.contains(&template.as_str());
            if portal {
                assert!(
                    matches!(st, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                    "{m} {url} as bob answered {st}: {answer}"
                );
            } else {
                assert_eq!(
                    st,
                    StatusCode::FORBIDDEN,
                    "admin-only {m} {url} as bob answered {st}: {answer}"
                );
            }
            checked += 1;
        }
    }
    checked
}

/// Replaces any remaining `{param}` by a plausible value.
fn regex_free_fill(url: &str) -> String {
    let mut out = String::new();
    let mut rest = url;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        out.push('1');
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_users_reach_only_their_own_data() {
    let s = service::start(&[Service::Mail]).await;
    let users = upns(&s.env);
    let (alice_upn, bob_upn) = (users[0].clone(), users[1].clone());
    let backup = s.env.backup().await;
    assert!(backup.errors.is_empty(), "{:?}", backup.errors);
    // A second task over the same repository with the portal off.
    let hidden = TaskSpec {
        name: "p".into(),
        portal: false,
        ..s.env.spec.clone()
    };
    TaskStore::open(&s.data)
        .unwrap()
        .create(&hidden, &s.env.creds)
        .unwrap();

    let alice = s.sign_in("alice").await;
    let bob = s.sign_in("bob").await;
    let alice_path = format!("/users/{alice_upn}/mail/Inbox");
    let (st, job) = alice
        .post(
            "/api/v1/tasks/t/exports",
            json!({"paths": [alice_path], "format": "mbox"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let alice_job = job["id"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let (_, j) = alice.get(&format!("/api/v1/jobs/{alice_job}")).await;
        if j["state"] != "running" {
            assert_eq!(j["state"], "done", "{j}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (st, doc) = s.anonymous().get("/api/v1/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    let n = walk(&bob, &doc, "t", &alice_path, &alice_upn, &alice_job).await;
    assert!(n >= 12, "only {n} routes walked");
    // The task with the portal off: nothing at all, even for alice's own account.
    let m = walk(&alice, &doc, "p", &alice_path, &alice_upn, "no-such-job").await;
    assert!(m > n, "{m} {n}");
    let (_, accounts) = alice.get("/api/v1/me/accounts").await;
    assert!(
        accounts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["task"] == "t"),
        "{accounts}"
    );

    // The allow-list: bob's own things only.
    let (st, me) = bob.get("/api/v1/session").await;
    assert_eq!((st, me["user"].as_str()), (StatusCode::OK, Some("bob")));
    let (_, accounts) = bob.get("/api/v1/me/accounts").await;
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["account"], bob_upn.as_str());
    let (_, jobs) = bob.get("/api/v1/jobs").await;
    assert_eq!(jobs, json!([]));
    let (st, points) = bob.get("/api/v1/tasks/t/points").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(points[0]["run"], backup.run_id);
    // Search without an account covers only bob's mailbox.
    let (_, listing) = alice
        .get(&format!("/api/v1/tasks/t/browse?path={}", q(&alice_path)))
        .await;
    let subject_word = listing["entries"][0]["name"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.len() > 3 && w.chars().all(char::is_alphanumeric))
        .unwrap()
        .to_owned();
    let (st, hits) = bob
        .get(&format!(
            "/api/v1/tasks/t/search?q={}&limit=500",
            q(&subject_word)
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .all(|h| h["account"] == bob_upn.as_str()),
        "{hits}"
    );
    let (_, alice_hits) = alice
        .get(&format!(
            "/api/v1/tasks/t/search?q={}&limit=500",
            q(&subject_word)
        ))
        .await;
    assert!(!alice_hits.as_array().unwrap().is_empty());
    // Bob's own data is open to him.
    let (st, _) = bob
        .get(&format!(
            "/api/v1/tasks/t/browse?path={}",
            q(&format!("/users/{bob_upn}/mail"))
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    // User mapping: automatic by e-mail address; an explicit mapping changes what bob opens, and
    // clearing it goes back to automatic.
    let admin = s.sign_in("admin").await;
    let (st, mapping) = admin.get("/api/v1/mapping").await;
    assert_eq!(st, StatusCode::OK, "{mapping}");
    let entry = |m: &Value, user: &str| {
        m.as_array()
            .unwrap()
            .iter()
            .find(|e| e["user"] == user)
            .cloned()
            .unwrap_or_else(|| panic!("{user} not in {m}"))
    };
    let a = entry(&mapping, "alice");
    assert_eq!(a["automatic"], true);
    assert_eq!(a["accounts"], json!([{"task": "t", "account": alice_upn}]));
    let inbox_url = format!("/api/v1/tasks/t/browse?path={}", q(&alice_path));
    let (st, _) = bob.get(&inbox_url).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = admin
        .send(
            Method::PUT,
            "/api/v1/mapping/bob",
            Some(json!({"accounts": [{"task": "t", "account": alice_upn}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["automatic"], false);
    let (st, _) = bob.get(&inbox_url).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "an explicit mapping opens alice's mailbox to bob"
    );
    let (_, accounts) = bob.get("/api/v1/me/accounts").await;
    assert_eq!(accounts[0]["account"], alice_upn.as_str());
    let (st, _) = admin
        .send(
            Method::PUT,
            "/api/v1/mapping/bob",
            Some(json!({"accounts": [{"task": "nope", "account": alice_upn}]})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = admin.delete("/api/v1/mapping/bob").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = bob.get(&inbox_url).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "back to automatic");
    let (_, mapping) = admin.get("/api/v1/mapping").await;
    assert_eq!(entry(&mapping, "bob")["automatic"], true);

    // Signing out works (last: it ends bob's session).
    let (st, _) = bob.delete("/api/v1/session").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}
