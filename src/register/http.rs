//! HTTP for registration: form posts to the sign-in service, and Graph calls with the admin's
//! delegated token. The token lives only in a [`Delegated`] value and is dropped with it: it is
//! never stored, logged or shown.

use std::path::Path;
use std::time::Duration;

use backhome_graph::{Cloud, GraphError};
use serde_json::Value;

use super::error::RegisterError;

/// An HTTP client for one cloud.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) cloud: Cloud,
}

impl Http {
    /// A client trusting `extra_ca` (PEM) besides the system's roots.
    pub(crate) fn new(cloud: Cloud, extra_ca: Option<&Path>) -> Result<Self, RegisterError> {
        let mut b = reqwest::Client::builder()
            .user_agent(backhome_graph::user_agent())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(120));
        if let Some(path) = extra_ca {
            let ca_err = |reason: String| backhome_graph::ConfigError::CaCertificate {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            for cert in
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        let client = b
            .build()
            .map_err(|e| backhome_graph::ConfigError::HttpClient(e.to_string()))?;
        Ok(Self { client, cloud })
    }

    fn host(url: &str) -> String {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Posts a form to the sign-in service; the status and the JSON answer.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Value), RegisterError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| RegisterError::Unreachable {
                host: Self::host(url),
                source: e.without_url(),
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| RegisterError::Unreachable {
            host: Self::host(url),
            source: e.without_url(),
        })?;
        let json = serde_json::from_slice(&bytes).map_err(|e| RegisterError::Malformed {
            what: "the Microsoft sign-in service",
            detail: format!("HTTP {status}: {e}"),
        })?;
        Ok((status, json))
    }
}

/// Graph with the admin's delegated token. Dropping it discards the token.
pub(crate) struct Delegated {
    http: Http,
    root: String,
    token: String,
    /// The signed-in account, for messages.
    pub(crate) account: String,
}

impl std::fmt::Debug for Delegated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegated")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// What a failed Graph call gives back: Graph's error, or a transport failure.
pub(crate) enum CallError {
    /// Graph answered with an error.
    Graph(Box<GraphError>),
    /// Anything else.
    Other(RegisterError),
}

impl CallError {
    /// As a registration error for `step`.
    pub(crate) fn during(self, step: &'static str) -> RegisterError {
        match self {
            CallError::Graph(graph) => RegisterError::Graph { step, graph },
            CallError::Other(e) => e,
        }
    }
}

impl Delegated {
    pub(crate) fn new(http: Http, token: String) -> Self {
        let root = http.cloud.graph_v1();
        Self {
            http,
            root,
            token,
            account: String::new(),
        }
    }

    /// Sends a Graph request; 2xx answers parse as JSON (`null` when empty). 429 and 5xx are
    /// tried again up to four times, waiting `Retry-After` or a growing pause.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.root);
        let mut pause = Duration::from_millis(500);
        for attempt in 0..5 {
            let mut req = self
                .http
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.token)
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| {
                CallError::Other(RegisterError::Unreachable {
                    host: Http::host(&url),
                    source: e.without_url(),
                })
            })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| {
                CallError::Other(RegisterError::Unreachable {
                    host: Http::host(&url),
                    source: e.without_url(),
                })
            })?;
            if (200..300).contains(&status) {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_slice(&bytes).map_err(|e| {
                    CallError::Other(RegisterError::Malformed {
                        what: "Microsoft Graph",
                        detail: e.to_string(),
                    })
                });
            }
            let err = GraphError::from_parts(status, &headers, &bytes);
            if (status == 429 || status >= 500) && attempt < 4 {
                let wait = err
                    .retry_after
                    .unwrap_or(pause)
                    .min(Duration::from_secs(30));
                tokio::time::sleep(wait).await;
                pause *= 2;
                continue;
            }
            return Err(CallError::Graph(Box::new(err)));
        }
        Err(CallError::Other(RegisterError::Malformed {
            what: "Microsoft Graph",
            detail: "no answer after retries".into(),
        }))
    }
}
