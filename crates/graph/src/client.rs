//! The client: authentication, limits, retries, and the request loop every API goes through.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

use crate::call::{Call, is_exchange_path};
use crate::cloud::{Cloud, check_scheme};
use crate::config::{ClientConfig, Timeouts, user_agent};
use crate::credential::Credential;
use crate::error::{ConfigError, Error, ErrorClass, GraphError};
use crate::limits::{Limiter, Permits};
use crate::retry::{RetryPolicy, RetryState};
use crate::stats::{ClientStats, Stats};
use crate::token::{TokenCache, TokenInfo, token_roles};

/// A Microsoft Graph client for one tenant and application. Cheap to clone (an `Arc` inside).
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) cloud: Cloud,
    /// `https://graph.microsoft.com/v1.0`, no trailing slash.
    pub(crate) graph_root: String,
    pub(crate) graph_url: Url,
    pub(crate) tokens: TokenCache,
    pub(crate) limiter: Limiter,
    pub(crate) stats: Arc<Stats>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeouts: Timeouts,
    pub(crate) upload_chunk_size: usize,
}

/// A buffered response.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// Parses the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Malformed {
            what: "response".into(),
            detail: e.to_string(),
        })
    }
}

/// Why an attempt failed.
pub(crate) enum Failure {
    /// Worth another attempt after `retry_after` or a backoff.
    Retry {
        error: Error,
        retry_after: Option<Duration>,
    },
    /// 401: refresh the token once and retry.
    Unauthorized { error: Error, token: Arc<str> },
    /// Give up.
    Fatal(Error),
}

/// What a body parser says about a 2xx body.
pub(crate) enum BodyFail {
    /// Malformed or truncated: ask again.
    Retry(String),
    /// Give up.
    Fatal(Error),
}

/// A successful attempt with its body not yet read.
pub(crate) struct Opened {
    pub(crate) response: reqwest::Response,
    pub(crate) permits: Permits,
    pub(crate) url: Url,
}

impl Client {
    /// Builds a client. Does not contact Microsoft yet (see [`Client::sign_in`]).
    pub fn new(config: ClientConfig, credential: Credential) -> Result<Self, Error> {
        config.validate()?;
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeouts.connect)
            .read_timeout(config.timeouts.stall)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(path) = &config.extra_ca_pem {
            let ca_err = |reason: String| ConfigError::CaCertificate {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate in the file".into()).into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        let cloud = config.cloud.clone();
        let graph_root = cloud.graph_v1();
        let graph_url = Url::parse(&graph_root).map_err(|e| ConfigError::BadUrl {
            what: "Graph",
            url: graph_root.clone(),
            reason: e.to_string(),
        })?;
        check_scheme("Graph", &graph_url)?;
        let token_endpoint = cloud.token_endpoint(config.tenant_id.trim());
        let login_url = Url::parse(&token_endpoint).map_err(|e| ConfigError::BadUrl {
            what: "login",
            url: token_endpoint.clone(),
            reason: e.to_string(),
        })?;
        check_scheme("login", &login_url)?;
        let stats = Arc::new(Stats::default());
        let tokens = TokenCache::new(
            http.clone(),
            token_endpoint,
            login_url.host_str().unwrap_or_default().to_owned(),
            config.scope.clone().unwrap_or_else(|| cloud.scope()),
            config.tenant_id.trim().to_owned(),
            config.app_id.trim().to_owned(),
            credential,
            config.retry.clone(),
            stats.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                cloud,
                graph_root,
                graph_url,
                tokens,
                limiter: Limiter::new(config.limits, stats.clone()),
                stats,
                retry: config.retry,
                timeouts: config.timeouts,
                upload_chunk_size: (config.upload_chunk_size / crate::config::UPLOAD_FRAGMENT_UNIT)
                    .max(1)
                    * crate::config::UPLOAD_FRAGMENT_UNIT,
            }),
        })
    }

    /// The cloud this client talks to.
    #[must_use]
    pub fn cloud(&self) -> &Cloud {
        &self.inner.cloud
    }

    /// The versioned Graph root, e.g. `https://graph.microsoft.com/v1.0`.
    #[must_use]
    pub fn graph_root(&self) -> &str {
        &self.inner.graph_root
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Gets a token now (from the cache if fresh): checks certificate, tenant, app and consent.
    pub async fn sign_in(&self) -> Result<TokenInfo, Error> {
        let token = self.inner.tokens.get().await?;
        Ok(TokenInfo {
            lifetime: token.lifetime,
            roles: token_roles(&token.secret),
        })
    }

    /// Sends a request and returns the buffered response (2xx and 3xx; errors become [`Error`]).
    pub async fn send(&self, call: Call) -> Result<Response, Error> {
        self.run(&call, &[], |status, headers, body| {
            Ok(Response {
                status,
                headers: headers.clone(),
                body,
            })
        })
        .await
    }

    /// Sends a request and parses the JSON answer; malformed JSON is asked for again.
    /// An empty answer (`204 No Content`) parses as JSON `null` (so `()` or `Option<T>` work).
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        self.run(&call, &[], |status, _, body| {
            if status == 204 || body.is_empty() {
                return T::deserialize(serde_json::Value::Null).map_err(|e| {
                    BodyFail::Fatal(Error::Malformed {
                        what: "response".into(),
                        detail: format!("empty answer (HTTP {status}): {e}"),
                    })
                });
            }
            parse_json(&body)
        })
        .await
    }

    /// `GET path` parsed as JSON, counted against `resource` if given.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        resource: Option<&str>,
    ) -> Result<T, Error> {
        let mut call = Call::get(path);
        if let Some(r) = resource {
            call = call.resource(r);
        }
        self.json(call).await
    }

    /// Resolves a call's target to a URL, refusing links away from the Graph host.
    pub(crate) fn resolve(&self, call: &Call) -> Result<Url, Error> {
        let target = call.target.trim();
        let absolute = target.starts_with("https://") || target.starts_with("http://");
        if call.pre_authenticated {
            let url = Url::parse(target)
                .map_err(|e| Error::InvalidRequest(format!("pre-authenticated URL: {e}")))?;
            check_scheme("download/upload", &url)?;
            return Ok(url);
        }
        if absolute {
            let url =
                Url::parse(target).map_err(|e| Error::InvalidRequest(format!("link: {e}")))?;
            self.check_graph_host(&url)?;
            return Ok(url);
        }
        let url = Url::parse(&format!(
            "{}/{}",
            self.inner.graph_root,
            target.trim_start_matches('/')
        ))
        .map_err(|e| Error::InvalidRequest(format!("path {target:?}: {e}")))?;
        Ok(url)
    }

    /// Fails unless `url` has the Graph host's scheme, host and port.
    pub(crate) fn check_graph_host(&self, url: &Url) -> Result<(), Error> {
        let g = &self.inner.graph_url;
        if url.scheme() == g.scheme()
            && url.host_str() == g.host_str()
            && url.port_or_known_default() == g.port_or_known_default()
        {
            Ok(())
        } else {
            Err(Error::ForeignLink {
                host: url.host_str().unwrap_or("(none)").to_owned(),
                graph_host: g.host_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// One attempt: permits, token, send, classify the status. Bodies of 2xx/3xx are not read.
    async fn attempt(
        &self,
        call: &Call,
        url: &Url,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Opened, Failure> {
        let inner = &self.inner;
        let permits = inner
            .limiter
            .acquire(call.resource.as_deref(), call.weight)
            .await;
        let mut request = inner.http.request(call.method.clone(), url.clone());
        let mut token_used: Option<Arc<str>> = None;
        if !call.pre_authenticated {
            let token = inner
                .tokens
                .get()
                .await
                .map_err(|e| Failure::Fatal(e.into()))?;
            request = request
                .header(AUTHORIZATION, format!("Bearer {}", token.secret))
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            token_used = Some(token.secret);
            let mut prefer: Vec<String> = Vec::new();
            if call
                .exchange
                .unwrap_or_else(|| is_exchange_path(url.path()))
            {
                prefer.push("IdType=\"ImmutableId\"".to_owned());
            }
            prefer.extend(call.prefer.iter().cloned());
            if !prefer.is_empty() {
                request = request.header("Prefer", prefer.join(", "));
            }
        }
        for (name, value) in call.headers.iter().chain(extra) {
            request = request.header(name, value);
        }
        if let Some((content_type, body)) = &call.body {
            Stats::add(&inner.stats.bytes_sent, body.len() as u64);
            request = request
                .header(CONTENT_TYPE, content_type)
                .body(body.clone());
        } else if matches!(
            call.method,
            reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
        ) {
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        Stats::add(&inner.stats.requests, 1);
        let what = describe(url, call.pre_authenticated);
        let response = match tokio::time::timeout(inner.timeouts.request, request.send()).await {
            Err(_) => {
                return Err(Failure::Retry {
                    error: Error::Timeout {
                        what,
                        after: inner.timeouts.request,
                    },
                    retry_after: None,
                });
            }
            Ok(Err(e)) => {
                return Err(Failure::Retry {
                    error: Error::Transport {
                        host: url.host_str().unwrap_or_default().to_owned(),
                        source: e.without_url(),
                    },
                    retry_after: None,
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(Opened {
                response,
                permits,
                url: url.clone(),
            });
        }
        let headers = response.headers().clone();
        let body = tokio::time::timeout(inner.timeouts.request, response.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Stats::add(&inner.stats.bytes_received, body.len() as u64);
        drop(permits);
        let graph = GraphError::from_parts(status.as_u16(), &headers, &body);
        Err(self.classify(call, graph, token_used))
    }

    fn classify(&self, call: &Call, graph: GraphError, token: Option<Arc<str>>) -> Failure {
        let status = graph.status;
        if status == 401 {
            if let Some(token) = token {
                return Failure::Unauthorized {
                    error: graph.into(),
                    token,
                };
            }
            return Failure::Fatal(graph.into());
        }
        if status == 403
            && let Some(token) = &token
        {
            // A JWT without roles means no application permission was consented.
            if token_roles(token).is_some_and(|roles| roles.is_empty()) {
                return Failure::Fatal(Error::ConsentMissing {
                    graph: Box::new(graph),
                });
            }
            return Failure::Fatal(graph.into());
        }
        match graph.class() {
            ErrorClass::Resync => {
                let code = if graph.code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    graph.code.clone()
                };
                Failure::Fatal(Error::Resync {
                    code,
                    location: graph.location.clone(),
                })
            }
            ErrorClass::Throttled { retry_after } => {
                if status == 429 {
                    Stats::add(&self.inner.stats.throttled, 1);
                }
                if let (Some(key), Some(delay)) = (&call.resource, retry_after) {
                    self.inner.limiter.pause(key, delay);
                }
                Failure::Retry {
                    error: graph.into(),
                    retry_after,
                }
            }
            ErrorClass::Temporary => Failure::Retry {
                error: graph.into(),
                retry_after: None,
            },
            _ => Failure::Fatal(graph.into()),
        }
    }

    /// The retry loop up to a successful status, without reading the body (for streams).
    pub(crate) async fn open(
        &self,
        call: &Call,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Opened, Error> {
        let url = self.resolve(call)?;
        let mut state = RetryState::new(&self.inner.retry);
        let mut refreshed = false;
        loop {
            state.start_attempt();
            if state.attempts > 1 {
                Stats::add(&self.inner.stats.retries, 1);
            }
            let failure = match self.attempt(call, &url, extra).await {
                Ok(opened) => return Ok(opened),
                Err(f) => f,
            };
            self.after_failure(call, failure, &mut state, &mut refreshed)
                .await?;
        }
    }

    /// The retry loop including reading the whole body and parsing it.
    pub(crate) async fn run<T>(
        &self,
        call: &Call,
        extra: &[(HeaderName, HeaderValue)],
        parse: impl Fn(u16, &HeaderMap, Bytes) -> Result<T, BodyFail>,
    ) -> Result<T, Error> {
        let url = self.resolve(call)?;
        let mut state = RetryState::new(&self.inner.retry);
        let mut refreshed = false;
        loop {
            state.start_attempt();
            if state.attempts > 1 {
                Stats::add(&self.inner.stats.retries, 1);
            }
            let failure = match self.attempt(call, &url, extra).await {
                Ok(opened) => match self.read_body(opened).await {
                    Ok((status, headers, body)) => match parse(status, &headers, body) {
                        Ok(value) => return Ok(value),
                        Err(BodyFail::Fatal(e)) => return Err(e),
                        Err(BodyFail::Retry(detail)) => Failure::Retry {
                            error: Error::Malformed {
                                what: describe(&url, call.pre_authenticated),
                                detail,
                            },
                            retry_after: None,
                        },
                    },
                    Err(error) => Failure::Retry {
                        error,
                        retry_after: None,
                    },
                },
                Err(f) => f,
            };
            self.after_failure(call, failure, &mut state, &mut refreshed)
                .await?;
        }
    }

    async fn read_body(&self, opened: Opened) -> Result<(u16, HeaderMap, Bytes), Error> {
        let Opened {
            response,
            permits,
            url,
        } = opened;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let after = self.inner.timeouts.request;
        let body = match tokio::time::timeout(after, response.bytes()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: describe(&url, false),
                    after,
                });
            }
            Ok(Err(e)) => {
                return Err(Error::Transport {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    source: e.without_url(),
                });
            }
            Ok(Ok(b)) => b,
        };
        drop(permits);
        Stats::add(&self.inner.stats.bytes_received, body.len() as u64);
        Ok((status, headers, body))
    }

    /// Decides what to do after a failed attempt: `Ok` to try again (after sleeping), `Err` to stop.
    async fn after_failure(
        &self,
        call: &Call,
        failure: Failure,
        state: &mut RetryState<'_>,
        refreshed: &mut bool,
    ) -> Result<(), Error> {
        match failure {
            Failure::Retry { error, .. }
                if !call.is_idempotent()
                    && matches!(
                        error,
                        Error::Transport { .. } | Error::Timeout { .. } | Error::Malformed { .. }
                    ) =>
            {
                // The request may have been carried out: sending it again could do it twice.
                Err(error)
            }
            Failure::Fatal(e) => Err(e),
            Failure::Unauthorized { error, token } => {
                if *refreshed {
                    return Err(error);
                }
                *refreshed = true;
                tracing::debug!("Graph answered 401; refreshing the token once");
                self.inner.tokens.invalidate(&token);
                Ok(())
            }
            Failure::Retry { error, retry_after } => match state.next_delay(retry_after) {
                None => Err(error),
                Some(delay) => {
                    tracing::debug!("retrying in {delay:?} after: {error}");
                    tokio::time::sleep(delay).await;
                    Ok(())
                }
            },
        }
    }
}

/// Parses JSON; syntax errors and truncation are retried, shape mismatches are not.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyFail> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            BodyFail::Retry(format!("malformed JSON: {e}"))
        } else {
            BodyFail::Fatal(Error::Malformed {
                what: "response".into(),
                detail: e.to_string(),
            })
        }
    })
}

/// A URL for messages: Graph paths in full, pre-authenticated URLs by host only.
pub(crate) fn describe(url: &Url, pre_authenticated: bool) -> String {
    if pre_authenticated {
        format!(
            "a download/upload on {}",
            url.host_str().unwrap_or_default()
        )
    } else {
        url.path().to_owned()
    }
}
