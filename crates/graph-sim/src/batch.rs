//! JSON batching: up to 20 requests, `dependsOn` sequencing (424 when a dependency failed),
//! per-request status including 429 with its own `Retry-After`.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::http::{Body, GraphRequest, GraphResponse, Method};
use crate::state::SimState;

/// Maximum requests per batch.
pub const MAX_REQUESTS: usize = 20;

/// Handles `POST /v1.0/$batch`.
pub async fn handle(state: &SimState, outer: GraphRequest) -> GraphResponse {
    let body = match outer.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(requests) = body["requests"].as_array() else {
        return GraphResponse::error(400, "BadRequest", "Invalid batch payload format.");
    };
    if requests.len() > MAX_REQUESTS {
        return GraphResponse::error(
            400,
            "BadRequest",
            "The number of batch requests exceeds the limit of 20.",
        );
    }
    let mut ids = Vec::new();
    for r in requests {
        let Some(id) = r["id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| r["id"].as_i64().map(|n| n.to_string()))
        else {
            return GraphResponse::error(400, "BadRequest", "Each batch request needs an id.");
        };
        if ids.contains(&id) {
            return GraphResponse::error(
                400,
                "BadRequest",
                &format!("Batch request id '{id}' is duplicated."),
            );
        }
        if r["method"].as_str().is_none() || r["url"].as_str().is_none() {
            return GraphResponse::error(
                400,
                "BadRequest",
                "Each batch request needs a method and a url.",
            );
        }
        ids.push(id);
    }
    for r in requests {
        for d in r["dependsOn"].as_array().into_iter().flatten() {
            if !d.as_str().is_some_and(|d| ids.iter().any(|i| i == d)) {
                return GraphResponse::error(
                    400,
                    "BadRequest",
                    "A dependsOn id does not name a request of the batch.",
                );
            }
        }
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut out = Vec::new();
    // Run in an order that satisfies dependsOn (stable otherwise).
    let mut pending: Vec<usize> = (0..requests.len()).collect();
    while !pending.is_empty() {
        let Some(pos) = pending.iter().position(|i| {
            requests[*i]["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|d| d.as_str().is_some_and(|d| statuses.contains_key(d)))
        }) else {
            return GraphResponse::error(400, "BadRequest", "The dependsOn graph has a cycle.");
        };
        let i = pending.remove(pos);
        let r = &requests[i];
        let id = ids[i].clone();
        let failed_dep = r["dependsOn"].as_array().into_iter().flatten().any(|d| {
            d.as_str()
                .and_then(|d| statuses.get(d))
                .is_some_and(|s| *s >= 400)
        });
        let resp = if failed_dep {
            GraphResponse::error(
                424,
                "FailedDependency",
                "A request this one depends on failed.",
            )
        } else {
            let inner = inner_request(&outer, r);
            match inner {
                Ok(req) => crate::router::handle(state, req).await,
                Err(e) => e,
            }
        };
        statuses.insert(id.clone(), resp.status);
        out.push(response_json(&id, resp));
    }
    GraphResponse::ok(json!({"responses": out}))
}

fn inner_request(outer: &GraphRequest, r: &Value) -> Result<GraphRequest, GraphResponse> {
    let url = r["url"].as_str().unwrap_or("");
    let url = url
        .strip_prefix("https://graph.microsoft.com")
        .unwrap_or(url);
    let url = url.strip_prefix("/v1.0").unwrap_or(url);
    let url = if url.starts_with('/') {
        url.to_string()
    } else {
        format!("/{url}")
    };
    let (path, query) = url
        .split_once('?')
        .map_or((url.clone(), String::new()), |(p, q)| {
            (p.to_string(), q.to_string())
        });
    if path == "/$batch" {
        return Err(GraphResponse::error(
            400,
            "BadRequest",
            "Batches cannot be nested.",
        ));
    }
    let mut headers: Vec<(String, String)> = outer
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .cloned()
        .collect();
    if let Some(h) = r["headers"].as_object() {
        for (k, v) in h {
            headers.push((k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()));
        }
    }
    let body = match &r["body"] {
        Value::Null => Bytes::new(),
        b => {
            if !headers.iter().any(|(k, _)| k == "content-type") {
                return Err(GraphResponse::error(
                    400,
                    "BadRequest",
                    "A Content-Type header is required when a body is present.",
                ));
            }
            let json_ct = headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.contains("json"));
            match (b, json_ct) {
                (Value::String(s), false) => {
                    Bytes::from(STANDARD.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec()))
                }
                _ => Bytes::from(b.to_string()),
            }
        }
    };
    Ok(GraphRequest {
        method: Method::parse(r["method"].as_str().unwrap_or("GET")),
        path,
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        headers,
        body,
        claims: outer.claims.clone(),
    })
}

fn response_json(id: &str, resp: GraphResponse) -> Value {
    let mut headers = Map::new();
    headers.insert("Cache-Control".into(), json!("no-cache"));
    headers.insert("OData-Version".into(), json!("4.0"));
    headers.insert("x-ms-resource-unit".into(), json!("1"));
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), Value::String(v.clone()));
    }
    let body = match resp.body {
        Body::Json(v) => {
            headers.insert("Content-Type".into(), json!("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"));
            v
        }
        Body::Raw(b, t) => {
            headers.insert("Content-Type".into(), Value::String(t));
            Value::String(STANDARD.encode(&b))
        }
        Body::Empty => Value::Null,
    };
    let mut item = json!({"id": id, "status": resp.status, "headers": headers});
    if !body.is_null() {
        item["body"] = body;
    }
    item
}
