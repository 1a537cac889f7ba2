//! A request to Graph, described before it is sent (and re-sent on retries).

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::Error;

/// A request: method, path (or absolute Graph URL), resource key, headers, body.
///
/// Paths are relative to the versioned root (`/users/{id}/mailFolders` →
/// `https://graph.microsoft.com/v1.0/users/{id}/mailFolders`); absolute URLs (such as an
/// `@odata.nextLink`) must be on the configured Graph host.
#[derive(Clone, Debug)]
pub struct Call {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) resource: Option<String>,
    pub(crate) exchange: Option<bool>,
    pub(crate) prefer: Vec<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Option<(HeaderValue, Bytes)>,
    /// A pre-authenticated URL on another host: sent without the bearer token.
    pub(crate) pre_authenticated: bool,
    /// Whether sending twice is harmless; `None`: by method.
    pub(crate) idempotent: Option<bool>,
    /// Resource permits the request takes (a `$batch` runs several requests at once).
    pub(crate) weight: u32,
}

impl Call {
    /// A request with the given method.
    #[must_use]
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        Self {
            method,
            target: target.into(),
            resource: None,
            exchange: None,
            prefer: Vec::new(),
            headers: Vec::new(),
            body: None,
            pre_authenticated: false,
            idempotent: None,
            weight: 1,
        }
    }

    /// `GET target`.
    #[must_use]
    pub fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }

    /// `POST target` with a JSON body.
    pub fn post_json(target: impl Into<String>, body: &impl Serialize) -> Result<Self, Error> {
        Self::new(Method::POST, target).json(body)
    }

    /// `PATCH target` with a JSON body.
    pub fn patch_json(target: impl Into<String>, body: &impl Serialize) -> Result<Self, Error> {
        Self::new(Method::PATCH, target).json(body)
    }

    /// `DELETE target`.
    #[must_use]
    pub fn delete(target: impl Into<String>) -> Self {
        Self::new(Method::DELETE, target)
    }

    /// A request to a pre-authenticated URL (download or upload host): no bearer token.
    #[must_use]
    pub fn pre_authenticated(method: Method, url: impl Into<String>) -> Self {
        let mut call = Self::new(method, url);
        call.pre_authenticated = true;
        call
    }

    /// Counts the request against the concurrency limit of `key` (a mailbox, drive or site id).
    #[must_use]
    pub fn resource(mut self, key: impl Into<String>) -> Self {
        self.resource = Some(key.into());
        self
    }

    /// Forces (`true`) or suppresses (`false`) `Prefer: IdType="ImmutableId"`; by default it is
    /// sent on Exchange routes (mail, calendar, contacts of users and groups).
    #[must_use]
    pub fn exchange(mut self, yes: bool) -> Self {
        self.exchange = Some(yes);
        self
    }

    /// Adds a `Prefer` preference, e.g. `odata.maxpagesize=50`.
    #[must_use]
    pub fn prefer(mut self, preference: impl Into<String>) -> Self {
        self.prefer.push(preference.into());
        self
    }

    /// Declares whether the request may be sent twice. By default `GET`, `HEAD`, `PUT` and
    /// `DELETE` are, `POST` and `PATCH` are not: those are not re-sent after a broken connection
    /// or a timeout (they may have been carried out), only after answers that say they were not
    /// (429, 5xx).
    #[must_use]
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = Some(yes);
        self
    }

    /// Whether the request may be sent twice.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
            .unwrap_or(!matches!(self.method, Method::POST | Method::PATCH))
    }

    /// `Prefer: odata.maxpagesize=n`.
    #[must_use]
    pub fn max_page_size(self, n: u32) -> Self {
        self.prefer(format!("odata.maxpagesize={n}"))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| Error::InvalidRequest(format!("header name {name:?}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| Error::InvalidRequest(format!("header {name}: {e}")))?;
        self.headers.push((name, value));
        Ok(self)
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: &impl Serialize) -> Result<Self, Error> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::InvalidRequest(format!("body: {e}")))?;
        self.body = Some((
            HeaderValue::from_static("application/json"),
            Bytes::from(bytes),
        ));
        Ok(self)
    }

    /// Sets a raw body with its content type.
    pub fn body(mut self, content_type: &str, bytes: Bytes) -> Result<Self, Error> {
        let ct = HeaderValue::from_str(content_type)
            .map_err(|e| Error::InvalidRequest(format!("content type: {e}")))?;
        self.body = Some((ct, bytes));
        Ok(self)
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path or URL.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The resource key, if any.
    #[must_use]
    pub fn resource_key(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// A copy with another target and no body (to follow a link with the same settings).
    #[must_use]
    pub fn follow(&self, target: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            target: target.into(),
            body: None,
            ..self.clone()
        }
    }
}

/// Segments of Outlook (Exchange) resources under `/users/{id}` or `/groups/{id}`.
const EXCHANGE_SEGMENTS: &[&str] = &[
    "messages",
    "mailfolders",
    "childfolders",
    "events",
    "calendar",
    "calendars",
    "calendarview",
    "calendargroups",
    "contacts",
    "contactfolders",
    "mailboxsettings",
    "attachments",
    "conversations",
    "threads",
    "inferenceclassification",
    "outlook",
    "translateexchangeids",
];

/// Segments that make a path not Exchange even under `/users` or `/groups`.
const NON_EXCHANGE_SEGMENTS: &[&str] = &[
    "drive", "drives", "team", "channels", "sites", "onenote", "planner", "chats",
];

/// Whether a Graph path (after the version segment) addresses Exchange data.
#[must_use]
pub fn is_exchange_path(path: &str) -> bool {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.split('(').next().unwrap_or(s).to_ascii_lowercase())
        .collect();
    let rest = match segments.first().map(String::as_str) {
        Some("v1.0" | "beta") => &segments[1..],
        _ => &segments[..],
    };
    if !matches!(
        rest.first().map(String::as_str),
        Some("users" | "groups" | "me")
    ) {
        return false;
    }
    if rest
        .iter()
        .any(|s| NON_EXCHANGE_SEGMENTS.contains(&s.as_str()))
    {
        return false;
    }
    rest.iter().any(|s| EXCHANGE_SEGMENTS.contains(&s.as_str()))
}

/// Percent-encodes one path segment (a file name, a UPN) for use in a Graph path.
#[must_use]
pub fn encode_segment(segment: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'@')
        .remove(b'!')
        .remove(b'$')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b',')
        .remove(b';')
        .remove(b'=');
    percent_encoding::utf8_percent_encode(segment, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_routes() {
        assert!(is_exchange_path(
            "/v1.0/users/u1/mailFolders/inbox/messages/delta"
        ));
        assert!(is_exchange_path("/users/u1/messages/abc/$value"));
        assert!(is_exchange_path("/v1.0/users/u1/calendarView/delta"));
        assert!(is_exchange_path("/v1.0/groups/g1/events"));
        assert!(is_exchange_path(
            "/v1.0/users/u1/mailFolders('inbox')/messages"
        ));
        assert!(!is_exchange_path("/v1.0/users"));
        assert!(!is_exchange_path("/v1.0/users/u1"));
        assert!(!is_exchange_path("/v1.0/users/u1/drive/root/delta"));
        assert!(!is_exchange_path("/v1.0/teams/t/channels/c/messages"));
        assert!(!is_exchange_path("/v1.0/groups/g/team/channels/c/messages"));
        assert!(!is_exchange_path("/v1.0/drives/d/items/i/content"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a b/c%d#e?.txt"), "a%20b%2Fc%25d%23e%3F.txt");
        assert_eq!(encode_segment("user@contoso.com"), "user@contoso.com");
        assert_eq!(encode_segment("Grüße"), "Gr%C3%BC%C3%9Fe");
    }
}
