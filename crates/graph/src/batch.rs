//! JSON batching (`POST /$batch`, up to 20 requests), with per-item retries of throttled items.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{Call, is_exchange_path};
use crate::client::{Client, parse_json};
use crate::error::{Error, GraphError};
use crate::retry::{RetryState, parse_retry_after};
use crate::stats::Stats;

/// Most requests Graph accepts in one batch.
pub const MAX_BATCH: usize = 20;

/// One request inside a batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// Unique id within the batch.
    pub id: String,
    /// `GET`, `POST`…
    pub method: String,
    /// Path relative to the version root, e.g. `/users/{id}/mailFolders`.
    pub url: String,
    /// Headers (required with a body: `Content-Type`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Ids this request waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl BatchRequest {
    /// A `GET` of `url` with id `id`.
    #[must_use]
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            method: "GET".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
            depends_on: Vec::new(),
        }
    }

    /// Adds a dependency.
    #[must_use]
    pub fn depends_on(mut self, id: impl Into<String>) -> Self {
        self.depends_on.push(id.into());
        self
    }
}

/// One answer inside a batch.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BatchResponse {
    /// The request's id.
    pub id: String,
    /// HTTP status of the item.
    pub status: u16,
    /// Headers of the item.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// Body of the item (JSON, or a base64 string for binary bodies).
    #[serde(default)]
    pub body: Value,
}

impl BatchResponse {
    /// Whether the item succeeded.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The item's error, if it failed.
    #[must_use]
    pub fn error(&self) -> Option<GraphError> {
        if self.is_success() {
            return None;
        }
        let mut err = GraphError {
            status: self.status,
            code: String::new(),
            message: String::new(),
            request_id: self.header("request-id").map(str::to_owned),
            inner_codes: Vec::new(),
            retry_after: self.header("retry-after").and_then(parse_retry_after),
            location: self.header("location").map(str::to_owned),
        };
        err.fill_from_json(&self.body);
        Some(err)
    }

    /// Parses the body of a successful item, or returns its error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if let Some(err) = self.error() {
            return Err(err.into());
        }
        T::deserialize(&self.body).map_err(|e| Error::Malformed {
            what: format!("batch item {}", self.id),
            detail: e.to_string(),
        })
    }

    /// A header, case-insensitively.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
struct BatchEnvelope {
    #[serde(default)]
    responses: Vec<BatchResponse>,
}

impl Client {
    /// Sends up to [`MAX_BATCH`] requests in one `$batch`. Items answered 429 (or 503/504 with
    /// `Retry-After`) are sent again, in a new batch, after the longest `Retry-After`, together
    /// with items that failed 424 because of them. Returns one answer per request, in request order.
    pub async fn batch(
        &self,
        requests: Vec<BatchRequest>,
        resource: Option<&str>,
    ) -> Result<Vec<BatchResponse>, Error> {
        if requests.len() > MAX_BATCH {
            return Err(Error::InvalidRequest(format!(
                "a batch holds at most {MAX_BATCH} requests, not {}",
                requests.len()
            )));
        }
        let mut seen = HashSet::new();
        for r in &requests {
            if !seen.insert(r.id.as_str()) {
                return Err(Error::InvalidRequest(format!(
                    "duplicate batch id {:?}",
                    r.id
                )));
            }
            if !r.url.starts_with('/') || r.url.starts_with("//") {
                return Err(Error::InvalidRequest(format!(
                    "batch url {:?} must be a path relative to the Graph root",
                    r.url
                )));
            }
        }
        let order: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let mut done: HashMap<String, BatchResponse> = HashMap::new();
        let mut pending: Vec<BatchRequest> = requests
            .into_iter()
            .map(|mut r| {
                if is_exchange_path(r.url.split('?').next().unwrap_or_default())
                    && !r.headers.keys().any(|k| k.eq_ignore_ascii_case("prefer"))
                {
                    r.headers
                        .insert("Prefer".into(), "IdType=\"ImmutableId\"".into());
                }
                r
            })
            .collect();
        let mut state = RetryState::new(&self.inner.retry);
        while !pending.is_empty() {
            state.start_attempt();
            let mut call = Call::post_json("/$batch", &serde_json::json!({ "requests": pending }))?
                .idempotent(pending.iter().all(|r| r.method.eq_ignore_ascii_case("GET")));
            if let Some(key) = resource {
                call = call.resource(key);
                // Exchange runs up to 4 requests of a batch at once on the mailbox.
                call.weight = u32::try_from(pending.len().min(4)).unwrap_or(4);
            }
            let envelope: BatchEnvelope =
                self.run(&call, &[], |_, _, body| parse_json(&body)).await?;
            let mut answers: HashMap<String, BatchResponse> = envelope
                .responses
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            let mut retry_ids: HashSet<String> = HashSet::new();
            let mut wait: Option<Duration> = None;
            for r in &pending {
                let Some(answer) = answers.get(&r.id) else {
                    continue;
                };
                let throttled = answer.status == 429
                    || (matches!(answer.status, 503 | 504)
                        && answer.header("retry-after").is_some());
                if throttled {
                    if answer.status == 429 {
                        Stats::add(&self.inner.stats.throttled, 1);
                    }
                    retry_ids.insert(r.id.clone());
                    let ra = answer.header("retry-after").and_then(parse_retry_after);
                    wait = wait.max(ra).or(ra);
                }
            }
            // Dependents that failed because a retried item was throttled go again too.
            let mut grew = true;
            while grew {
                grew = false;
                for r in &pending {
                    let failed_dep = answers.get(&r.id).is_some_and(|a| a.status == 424);
                    if failed_dep
                        && !retry_ids.contains(&r.id)
                        && r.depends_on.iter().any(|d| retry_ids.contains(d))
                    {
                        retry_ids.insert(r.id.clone());
                        grew = true;
                    }
                }
            }
            let mut still = Vec::new();
            for r in pending {
                match answers.remove(&r.id) {
                    Some(answer) if !retry_ids.contains(&r.id) => {
                        done.insert(r.id.clone(), answer);
                    }
                    Some(answer) => {
                        // Keep the last answer in case we give up.
                        done.insert(r.id.clone(), answer);
                        still.push(r);
                    }
                    None => {
                        return Err(Error::Malformed {
                            what: "$batch".into(),
                            detail: format!("no answer for request {}", r.id),
                        });
                    }
                }
            }
            if still.is_empty() {
                break;
            }
            // Dependencies on items that are already done are dropped.
            let ids: HashSet<String> = still.iter().map(|r| r.id.clone()).collect();
            for r in &mut still {
                r.depends_on.retain(|d| ids.contains(d));
            }
            let Some(delay) = state.next_delay(wait) else {
                break;
            };
            Stats::add(&self.inner.stats.retries, still.len() as u64);
            tracing::debug!(
                "{} batch items throttled; retrying in {delay:?}",
                still.len()
            );
            if let (Some(key), Some(_)) = (resource, wait) {
                self.inner.limiter.pause(key, delay);
            }
            tokio::time::sleep(delay).await;
            pending = still;
        }
        order
            .into_iter()
            .map(|id| {
                done.remove(&id).ok_or_else(|| Error::Malformed {
                    what: "$batch".into(),
                    detail: format!("no answer for request {id}"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_response_parses() {
        let env: BatchEnvelope =
            serde_json::from_str(include_str!("../tests/data/batch-response.json")).unwrap();
        assert_eq!(env.responses.len(), 5);
        let forbidden = env.responses.iter().find(|r| r.id == "2").unwrap();
        let err = forbidden.error().unwrap();
        assert_eq!(err.status, 403);
        assert_eq!(
            err.request_id.as_deref(),
            Some("93b6f17e-c05d-4f45-ad2a-6665c708d8a0")
        );
        assert!(env.responses[0].is_success());
    }

    #[test]
    fn request_serialises_like_graph_wants() {
        let r = BatchRequest::get("2", "/me/messages").depends_on("1");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":"2","method":"GET","url":"/me/messages","dependsOn":["1"]})
        );
    }
}
