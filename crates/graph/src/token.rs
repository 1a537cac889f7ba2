//! Client-credentials tokens: the signed client assertion, the token request, the cache.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::credential::Credential;
use crate::error::AuthError;
use crate::retry::{RetryPolicy, RetryState, parse_retry_after};
use crate::stats::Stats;

/// Lifetime of a client assertion.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Refresh a token this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Builds the RS256 client assertion JWT for the token endpoint `audience`.
pub fn client_assertion(
    credential: &Credential,
    app_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, AuthError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": URL_SAFE_NO_PAD.encode(credential.sha1_thumbprint()),
        "x5t#S256": URL_SAFE_NO_PAD.encode(credential.sha256_thumbprint()),
    });
    let claims = json!({
        "aud": audience,
        "iss": app_id,
        "sub": app_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut signer = Signer::new(MessageDigest::sha256(), credential.key())?;
        signer.update(signing_input.as_bytes())?;
        signer.sign_to_vec()
    };
    let signature = sign().map_err(|e| AuthError::Signing {
        detail: e.to_string(),
    })?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The application permissions (`roles`) in an access token, if it is a readable JWT.
/// `None` for opaque tokens; `Some(empty)` for a JWT without roles.
#[must_use]
pub fn token_roles(access_token: &str) -> Option<Vec<String>> {
    let payload = access_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    if !claims.is_object() {
        return None;
    }
    Some(
        claims
            .get("roles")
            .and_then(Value::as_array)
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// A cached access token.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) secret: Arc<str>,
    pub(crate) expires_at: Instant,
    pub(crate) refresh_at: Instant,
    pub(crate) lifetime: Duration,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a successful sign-in gave: for checks in the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Lifetime Entra ID granted (`expires_in`).
    pub lifetime: Duration,
    /// Application permissions granted (`roles`); `None` if the token is not a readable JWT.
    pub roles: Option<Vec<String>>,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    http: reqwest::Client,
    endpoint: String,
    login_host: String,
    scope: String,
    tenant: String,
    app_id: String,
    credential: Credential,
    retry: RetryPolicy,
    stats: Arc<Stats>,
    /// The cached token (read without waiting on a refresh in progress).
    current: std::sync::RwLock<Option<AccessToken>>,
    /// Held while fetching, so that concurrent callers share one token request.
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        http: reqwest::Client,
        endpoint: String,
        login_host: String,
        scope: String,
        tenant: String,
        app_id: String,
        credential: Credential,
        retry: RetryPolicy,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            http,
            endpoint,
            login_host,
            scope,
            tenant,
            app_id,
            credential,
            retry,
            stats,
            current: std::sync::RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// A valid token; fetched if none is cached or the cached one is about to expire.
    /// Concurrent callers wait for one fetch.
    pub(crate) async fn get(&self) -> Result<AccessToken, AuthError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let token = self.fetch_with_retries().await?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    fn fresh(&self) -> Option<AccessToken> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
            .cloned()
    }

    /// Forgets `secret` if it is still the cached token (after a 401).
    pub(crate) fn invalidate(&self, secret: &str) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|t| &*t.secret == secret) {
            *current = None;
        }
    }

    async fn fetch_with_retries(&self) -> Result<AccessToken, AuthError> {
        let mut state = RetryState::new(&self.retry);
        loop {
            state.start_attempt();
            match self.fetch().await {
                Ok(token) => return Ok(token),
                Err((err, retry_after)) if err.is_temporary() => {
                    let Some(delay) = state.next_delay(retry_after) else {
                        return Err(err);
                    };
                    tracing::warn!("token request failed, retrying in {delay:?}: {err}");
                    Stats::add(&self.stats.retries, 1);
                    tokio::time::sleep(delay).await;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    async fn fetch(&self) -> Result<AccessToken, (AuthError, Option<Duration>)> {
        let assertion = client_assertion(
            &self.credential,
            &self.app_id,
            &self.endpoint,
            SystemTime::now(),
        )
        .map_err(|e| (e, None))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.app_id)
            .append_pair("scope", &self.scope)
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &assertion)
            .append_pair("grant_type", "client_credentials")
            .finish();
        Stats::add(&self.stats.token_requests, 1);
        let unreachable = |source: reqwest::Error| {
            (
                AuthError::Unreachable {
                    host: self.login_host.clone(),
                    source: source.without_url(),
                },
                None,
            )
        };
        let started = Instant::now();
        let response = self
            .http
            .post(&self.endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !(200..300).contains(&status) {
            return Err((
                map_entra_error(status, &bytes, &self.app_id, &self.tenant, &self.credential),
                retry_after,
            ));
        }
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
            (
                AuthError::Temporary {
                    detail: format!("unreadable token response: {e}"),
                },
                None,
            )
        })?;
        let secret = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                (
                    AuthError::Malformed {
                        detail: "no access_token in the answer".into(),
                    },
                    None,
                )
            })?;
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            (
                AuthError::Malformed {
                    detail: "no valid expires_in in the answer".into(),
                },
                None,
            )
        })?;
        let lifetime = Duration::from_secs(expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(AccessToken {
            secret: secret.into(),
            expires_at: started + lifetime,
            refresh_at: started + lifetime - margin,
            lifetime,
        })
    }
}

/// Maps an Entra ID error answer to an admin-friendly error.
pub(crate) fn map_entra_error(
    status: u16,
    body: &[u8],
    app_id: &str,
    tenant: &str,
    credential: &Credential,
) -> AuthError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = json
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let codes: Vec<u64> = json
        .get("error_codes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let description = match json.get("error_description").and_then(Value::as_str) {
        Some(d) => d.lines().next().unwrap_or("").trim().to_owned(),
        // Not Entra's JSON: probably a wrong login endpoint.
        None if !json.is_object() => format!(
            "(not an answer of the Microsoft sign-in service; check the login endpoint: {})",
            String::from_utf8_lossy(body)
                .chars()
                .take(120)
                .collect::<String>()
                .trim()
        ),
        None => String::new(),
    };
    let known = codes.iter().find_map(|&code| {
        Some(match code {
            700016 => AuthError::AppNotFound {
                app_id: app_id.to_owned(),
                tenant: tenant.to_owned(),
            },
            90002 => AuthError::TenantNotFound {
                tenant: tenant.to_owned(),
            },
            700027 | 7000214 | 1000502 | 7000274 => AuthError::CertificateRejected {
                code,
                thumbprint: credential.thumbprint_hex(),
            },
            7000112 => AuthError::AppDisabled {
                app_id: app_id.to_owned(),
            },
            700024 | 500133 => AuthError::ClockSkew { code },
            90038 | 900432 | 900382 | 900384 | 90051 | 900439 => AuthError::WrongCloud { code },
            53003 => AuthError::ConditionalAccess,
            70011 | 700022 | 700023 => AuthError::InvalidScope { code },
            90055 | 90006 | 90024 | 90033 | 90090 => AuthError::Temporary {
                detail: format!("HTTP {status}, AADSTS{code}"),
            },
            _ => return None,
        })
    });
    if let Some(err) = known {
        return err;
    }
    if status >= 500 || status == 429 || error == "temporarily_unavailable" {
        return AuthError::Temporary {
            detail: format!("HTTP {status} {error}").trim().to_owned(),
        };
    }
    AuthError::Other {
        status,
        error: if error.is_empty() {
            format!("HTTP {status}")
        } else {
            error
        },
        codes: codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect::<Vec<_>>()
            .join(","),
        description,
    }
}
