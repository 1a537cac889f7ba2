//! Errors of the Graph client.
//!
//! Policy:
//! - One `thiserror` enum per concern: [`CredentialError`] (the `.pfx`), [`AuthError`] (Entra ID's
//!   token endpoint), [`ConfigError`] (clouds, endpoints, CA files), [`GraphError`] (an answer from
//!   Graph), gathered in the crate's [`Error`].
//! - Text is written for the admin who has to fix the problem: what is wrong and what to do.
//! - Text never contains the certificate password, an access token, a client assertion or a
//!   pre-authenticated download URL (reqwest errors are stripped of their URL).
//! - Every error is classed ([`ErrorClass`]) so callers know whether to retry, skip or resync;
//!   the client itself already retried temporary failures before returning one.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// What a caller should do about an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later (network trouble, 5xx); the client already retried.
    Temporary,
    /// Will fail the same way again until something is changed.
    Permanent,
    /// The item or container does not exist (any more).
    NotFound,
    /// Graph is throttling; wait at least `retry_after` if given.
    Throttled {
        /// How long Graph asked to wait.
        retry_after: Option<Duration>,
    },
    /// The user has no Exchange Online mailbox (`MailboxNotEnabledForRESTAPI`).
    MailboxNotEnabled,
    /// Missing permission, missing consent or blocked by a policy.
    AccessDenied,
    /// A delta token expired: list the container again from scratch.
    Resync,
}

/// An error answer from Microsoft Graph, parsed from its error JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status.
    pub status: u16,
    /// `error.code` (may be empty: some services send none).
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `request-id` from the error body or the response headers, for Microsoft support.
    pub request_id: Option<String>,
    /// Codes of nested `innerError`s, outermost first.
    pub inner_codes: Vec<String>,
    /// `Retry-After` of the response, if any.
    pub retry_after: Option<Duration>,
    /// `Location` header (410 resync answers carry a fresh start link there).
    pub location: Option<String>,
}

impl GraphError {
    /// Parses an error response; tolerates bodies that are not Graph's error JSON.
    #[must_use]
    pub fn from_parts(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut err = GraphError {
            status,
            code: String::new(),
            message: String::new(),
            request_id: header("request-id"),
            inner_codes: Vec::new(),
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::retry::parse_retry_after),
            location: header("location"),
        };
        match serde_json::from_slice::<Value>(body) {
            Ok(json) => err.fill_from_json(&json),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                err.message = text.chars().take(300).collect::<String>().trim().to_owned();
            }
        }
        err
    }

    /// Fills code, message, inner codes and request id from `{"error": {...}}`.
    pub(crate) fn fill_from_json(&mut self, json: &Value) {
        let Some(error) = json.get("error") else {
            return;
        };
        if let Some(code) = error.get("code").and_then(Value::as_str) {
            self.code = code.to_owned();
        }
        if let Some(message) = error.get("message").and_then(Value::as_str) {
            self.message = message.to_owned();
        }
        let mut inner = error.get("innerError").or_else(|| error.get("innererror"));
        while let Some(node) = inner {
            if let Some(code) = node.get("code").and_then(Value::as_str) {
                self.inner_codes.push(code.to_owned());
            }
            if self.request_id.is_none() {
                self.request_id = node
                    .get("request-id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            inner = node.get("innerError").or_else(|| node.get("innererror"));
        }
    }

    /// Whether `code` or one of the inner codes equals `wanted` (case-insensitively).
    #[must_use]
    pub fn has_code(&self, wanted: &str) -> bool {
        std::iter::once(&self.code)
            .chain(&self.inner_codes)
            .any(|c| c.eq_ignore_ascii_case(wanted))
    }

    fn has_code_prefix(&self, prefix: &str) -> bool {
        std::iter::once(&self.code)
            .chain(&self.inner_codes)
            .any(|c| c.to_ascii_lowercase().starts_with(prefix))
    }

    /// How to treat this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        if self.has_code("MailboxNotEnabledForRESTAPI")
            || self.has_code("MailboxNotSupportedForRESTAPI")
        {
            return ErrorClass::MailboxNotEnabled;
        }
        if self.status == 410
            || self.has_code_prefix("resync")
            || self.has_code("syncStateNotFound")
            || self.has_code("syncStateInvalid")
        {
            return ErrorClass::Resync;
        }
        if self.status == 429
            || ((self.status == 503 || self.status == 504) && self.retry_after.is_some())
        {
            return ErrorClass::Throttled {
                retry_after: self.retry_after,
            };
        }
        if self.status == 404
            || [
                "itemNotFound",
                "ErrorItemNotFound",
                "ResourceNotFound",
                "Request_ResourceNotFound",
            ]
            .iter()
            .any(|c| self.has_code(c))
        {
            return ErrorClass::NotFound;
        }
        if self.status == 401 || self.status == 403 {
            return ErrorClass::AccessDenied;
        }
        if self.status >= 500 || self.status == 408 {
            return ErrorClass::Temporary;
        }
        ErrorClass::Permanent
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Microsoft Graph answered HTTP {}", self.status)?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

/// Why a `.pfx` certificate file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file could not be read.
    #[error("cannot read the certificate file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not PKCS#12.
    #[error(
        "the certificate file is not a PKCS#12 (.pfx/.p12) file; export the certificate with its private key as .pfx"
    )]
    NotPkcs12,
    /// MAC verification failed.
    #[error(
        "wrong password for the certificate file (the .pfx could not be opened with the given password)"
    )]
    WrongPassword,
    /// An algorithm of the file is not available.
    #[error(
        "the certificate file uses an encryption this system cannot read ({detail}); re-export it with AES-256 (or with 3DES/SHA1)"
    )]
    Unsupported {
        /// OpenSSL's reason.
        detail: String,
    },
    /// The file holds no private key.
    #[error(
        "the certificate file contains no private key; export the certificate together with its private key"
    )]
    NoPrivateKey,
    /// The file holds no certificate.
    #[error("the certificate file contains a private key but no certificate")]
    NoCertificate,
    /// The key is not RSA.
    #[error(
        "the certificate's key is {kind}, but Microsoft Entra ID app certificates must use an RSA key"
    )]
    KeyNotRsa {
        /// The key type found.
        kind: String,
    },
    /// The key and the certificate do not belong together.
    #[error("the private key in the certificate file does not belong to its certificate")]
    KeyMismatch,
    /// `notAfter` is in the past.
    #[error(
        "the certificate expired on {not_after} (it was valid from {not_before}); create a new certificate and upload it to the app registration"
    )]
    Expired {
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// `notBefore` is in the future.
    #[error(
        "the certificate is not valid yet: it is valid from {not_before} until {not_after}; check the NAS clock"
    )]
    NotYetValid {
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// Any other OpenSSL failure.
    #[error("cannot use the certificate: {detail}")]
    Openssl {
        /// OpenSSL's reason.
        detail: String,
    },
}

/// Why Entra ID refused to issue a token (or could not be reached).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// AADSTS700016.
    #[error(
        "the application {app_id} was not found in tenant {tenant} (AADSTS700016): check the tenant id and the application (client) id, and that an administrator of this tenant granted consent"
    )]
    AppNotFound {
        /// Application id.
        app_id: String,
        /// Tenant.
        tenant: String,
    },
    /// AADSTS90002.
    #[error(
        "tenant {tenant} was not found (AADSTS90002): check the tenant id or domain and the chosen cloud"
    )]
    TenantNotFound {
        /// Tenant.
        tenant: String,
    },
    /// AADSTS700027 and relatives.
    #[error(
        "Microsoft Entra ID rejected the certificate (AADSTS{code}): the certificate with SHA-1 thumbprint {thumbprint} is not registered on the application, or it expired or was removed; upload the certificate (.cer) under Certificates & secrets"
    )]
    CertificateRejected {
        /// The AADSTS number.
        code: u64,
        /// Hex SHA-1 thumbprint, as the Entra portal shows it.
        thumbprint: String,
    },
    /// AADSTS7000112.
    #[error(
        "the application {app_id} is disabled in this tenant (AADSTS7000112): an administrator must enable it"
    )]
    AppDisabled {
        /// Application id.
        app_id: String,
    },
    /// AADSTS700024 / 500133.
    #[error(
        "Microsoft Entra ID says the sign-in request is outside its valid time range (AADSTS{code}): the NAS clock is probably wrong; enable NTP time synchronisation"
    )]
    ClockSkew {
        /// The AADSTS number.
        code: u64,
    },
    /// AADSTS90038 and other cross-cloud codes.
    #[error(
        "the tenant belongs to another Microsoft cloud (AADSTS{code}): choose the right cloud (global, usgov, usgovdod, china) for this tenant"
    )]
    WrongCloud {
        /// The AADSTS number.
        code: u64,
    },
    /// AADSTS53003.
    #[error(
        "sign-in was blocked by a Conditional Access policy (AADSTS53003): exclude the backup application from the policy"
    )]
    ConditionalAccess,
    /// AADSTS70011 / 700022 / 700023.
    #[error(
        "Microsoft Entra ID rejected the requested scope (AADSTS{code}): check the Graph endpoint of the chosen cloud"
    )]
    InvalidScope {
        /// The AADSTS number.
        code: u64,
    },
    /// A temporary failure of the token service.
    #[error("Microsoft Entra ID is temporarily unavailable ({detail}); will retry")]
    Temporary {
        /// Status and codes.
        detail: String,
    },
    /// Any other refusal.
    #[error("Microsoft Entra ID refused to issue a token: {error} {codes} {description}")]
    Other {
        /// HTTP status.
        status: u16,
        /// The `error` field.
        error: String,
        /// The AADSTS codes, formatted.
        codes: String,
        /// First line of `error_description`.
        description: String,
    },
    /// Could not reach the token endpoint.
    #[error("cannot reach the Microsoft sign-in service at {host}: {source}")]
    Unreachable {
        /// Login host.
        host: String,
        /// The cause (URL removed).
        source: reqwest::Error,
    },
    /// The token endpoint answered something that is not a token.
    #[error("the Microsoft sign-in service answered with an unreadable response: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// Signing the client assertion failed.
    #[error("cannot sign the client assertion: {detail}")]
    Signing {
        /// OpenSSL's reason.
        detail: String,
    },
}

impl AuthError {
    /// Whether retrying later may help.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            AuthError::Temporary { .. } | AuthError::Unreachable { .. }
        )
    }
}

/// A configuration mistake: cloud name, endpoint URL, CA file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unknown cloud name.
    #[error(
        "unknown cloud {0:?}: use one of global, usgov, usgovdod, china (or give explicit login and Graph endpoints)"
    )]
    UnknownCloud(String),
    /// A URL that does not parse.
    #[error("invalid {what} URL {url:?}: {reason}")]
    BadUrl {
        /// Which endpoint.
        what: &'static str,
        /// The text given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Plain HTTP to a non-loopback host.
    #[error(
        "the {what} endpoint {url} uses plain http://, which is only allowed for loopback addresses (127.0.0.0/8, ::1, localhost); use https://"
    )]
    InsecureHttp {
        /// Which endpoint.
        what: &'static str,
        /// The URL.
        url: String,
    },
    /// Tenant id with characters no tenant id or domain has.
    #[error(
        "invalid tenant id {0:?}: give the tenant's GUID or its domain (contoso.onmicrosoft.com)"
    )]
    BadTenant(String),
    /// Application id that is empty or has odd characters.
    #[error("invalid application (client) id {0:?}")]
    BadAppId(String),
    /// The extra CA certificate could not be read.
    #[error("cannot use the CA certificate {path}: {reason}")]
    CaCertificate {
        /// The PEM file.
        path: String,
        /// Why.
        reason: String,
    },
    /// reqwest refused the HTTP client configuration.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Any error of the Graph client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate file.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Token acquisition.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An error answer from Graph.
    #[error(transparent)]
    Graph(Box<GraphError>),
    /// Graph answered 403 and the token carries no application permissions.
    #[error(
        "access denied, and the application's token carries no application permissions: an administrator has not granted admin consent for the application's Microsoft Graph permissions (Graph said: {graph})"
    )]
    ConsentMissing {
        /// Graph's answer.
        graph: Box<GraphError>,
    },
    /// A delta token expired or was reset.
    #[error(
        "the change-tracking state expired ({code}); the container must be listed again from scratch"
    )]
    Resync {
        /// Graph's code (`resyncRequired`, `syncStateNotFound`, or `410`).
        code: String,
        /// A fresh start link Graph sent in `Location`, if any.
        location: Option<String>,
    },
    /// Network failure (after retries).
    #[error("network error talking to {host}: {source}")]
    Transport {
        /// Host.
        host: String,
        /// The cause (URL removed).
        source: reqwest::Error,
    },
    /// No answer in time (after retries).
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        what: String,
        /// Timeout.
        after: Duration,
    },
    /// A 2xx answer whose body could not be understood (after retries).
    #[error("unreadable response from Microsoft Graph for {what}: {detail}")]
    Malformed {
        /// The request (path only).
        what: String,
        /// Why.
        detail: String,
    },
    /// A link (nextLink, Location) pointing away from the configured Graph host.
    #[error(
        "refusing to follow a link to {host}, which is not the configured Microsoft Graph host {graph_host}"
    )]
    ForeignLink {
        /// Host of the link.
        host: String,
        /// Configured Graph host.
        graph_host: String,
    },
    /// A request the caller built wrongly.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A download broke off and could not be resumed.
    #[error(
        "the download of {what} broke off after {received} bytes and cannot be resumed: {reason}"
    )]
    Interrupted {
        /// The request (path only).
        what: String,
        /// Bytes received.
        received: u64,
        /// Why it could not resume.
        reason: String,
    },
    /// An upload session vanished or expired: upload again from the start.
    #[error("the upload session expired or was lost; the upload must start again")]
    UploadSessionLost,
    /// Local I/O (upload source).
    #[error("local I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Self {
        Error::Graph(Box::new(e))
    }
}

impl Error {
    /// How to treat this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Graph(g) => g.class(),
            Error::ConsentMissing { .. } => ErrorClass::AccessDenied,
            Error::Resync { .. } => ErrorClass::Resync,
            Error::Auth(a) if a.is_temporary() => ErrorClass::Temporary,
            Error::Transport { .. }
            | Error::Timeout { .. }
            | Error::Malformed { .. }
            | Error::Interrupted { .. }
            | Error::UploadSessionLost => ErrorClass::Temporary,
            Error::Credential(_)
            | Error::Auth(_)
            | Error::Config(_)
            | Error::ForeignLink { .. }
            | Error::InvalidRequest(_)
            | Error::Io(_) => ErrorClass::Permanent,
        }
    }

    /// The Graph error, if this is one.
    #[must_use]
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Graph(g) | Error::ConsentMissing { graph: g } => Some(g),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> GraphError {
        GraphError::from_parts(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn throttled_example_parses() {
        let body = include_str!("../tests/data/error-throttled.json");
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2.128".parse().unwrap());
        let e = GraphError::from_parts(429, &headers, body.as_bytes());
        assert_eq!(e.code, "TooManyRequests");
        assert_eq!(e.inner_codes, vec!["429"]);
        assert_eq!(
            e.request_id.as_deref(),
            Some("94fb3b52-452a-4535-a601-69e0a90e3aa2")
        );
        assert_eq!(
            e.class(),
            ErrorClass::Throttled {
                retry_after: Some(Duration::from_millis(2128))
            }
        );
    }

    #[test]
    fn classes() {
        assert_eq!(
            parse(
                404,
                r#"{"error":{"code":"MailboxNotEnabledForRESTAPI","message":"x"}}"#
            )
            .class(),
            ErrorClass::MailboxNotEnabled
        );
        assert_eq!(
            parse(400, r#"{"error":{"code":"MailboxNotEnabledForRESTAPI"}}"#).class(),
            ErrorClass::MailboxNotEnabled
        );
        assert_eq!(
            parse(410, r#"{"error":{"code":"resyncRequired"}}"#).class(),
            ErrorClass::Resync
        );
        assert_eq!(
            parse(400, r#"{"error":{"code":"SyncStateNotFound"}}"#).class(),
            ErrorClass::Resync
        );
        assert_eq!(
            parse(404, r#"{"error":{"code":"itemNotFound"}}"#).class(),
            ErrorClass::NotFound
        );
        assert_eq!(
            parse(403, r#"{"error":{"code":"accessDenied"}}"#).class(),
            ErrorClass::AccessDenied
        );
        assert_eq!(
            parse(502, "<html>bad gateway</html>").class(),
            ErrorClass::Temporary
        );
        assert_eq!(
            parse(400, r#"{"error":{"code":"invalidRequest"}}"#).class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn nested_inner_codes_are_walked() {
        let e = parse(
            400,
            r#"{"error":{"code":"x","innerError":{"code":"y","innerError":{"code":"resyncApplyDifferences"}}}}"#,
        );
        assert_eq!(e.inner_codes, vec!["y", "resyncApplyDifferences"]);
        assert_eq!(e.class(), ErrorClass::Resync);
    }

    #[test]
    fn non_json_body_becomes_message() {
        let e = parse(500, "upstream exploded");
        assert_eq!(e.message, "upstream exploded");
        assert!(e.to_string().contains("HTTP 500"));
    }
}
