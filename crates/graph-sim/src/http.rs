//! The simulator's own request/response types, independent of actix, so that `$batch` can
//! dispatch inner requests through the same code as outer ones.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::auth::Claims;

/// An HTTP method the Graph surface knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// Anything else.
    Other,
}

impl Method {
    /// Parses a method name.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => Self::Other,
        }
    }
}

/// A Graph request after authentication.
#[derive(Clone, Debug)]
pub struct GraphRequest {
    /// Method.
    pub method: Method,
    /// Path after `/v1.0`, still percent-encoded, starting with `/`.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// The caller's token.
    pub claims: Claims,
}

impl GraphRequest {
    /// A query parameter (names compared case-insensitively, with or without `$`).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    /// A header value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All `Prefer` preferences, lower-cased names with their values.
    #[must_use]
    pub fn prefer(&self, name: &str) -> Option<String> {
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("prefer") {
                continue;
            }
            for part in v.split(',') {
                let mut kv = part.splitn(2, '=');
                let key = kv.next().unwrap_or("").trim();
                if key.eq_ignore_ascii_case(name) {
                    return Some(kv.next().unwrap_or("").trim().trim_matches('"').to_string());
                }
            }
        }
        None
    }

    /// `Prefer: IdType="ImmutableId"` was sent.
    #[must_use]
    pub fn immutable_ids(&self) -> bool {
        self.prefer("IdType")
            .is_some_and(|v| v.eq_ignore_ascii_case("ImmutableId"))
    }

    /// Page size from `Prefer: odata.maxpagesize` only.
    #[must_use]
    pub fn prefer_page(&self) -> Option<usize> {
        self.prefer("odata.maxpagesize")
            .and_then(|v| v.parse().ok())
    }

    /// Page size from `Prefer: odata.maxpagesize`, else `$top`, else `default`, capped at `max`.
    #[must_use]
    pub fn page_size(&self, default: usize, max: usize) -> usize {
        self.prefer("odata.maxpagesize")
            .and_then(|v| v.parse().ok())
            .or_else(|| self.param("top").and_then(|v| v.parse().ok()))
            .unwrap_or(default)
            .clamp(1, max)
    }

    /// The JSON body.
    ///
    /// # Errors
    /// A 400 response when the body is not JSON.
    pub fn json(&self) -> Result<Value, GraphResponse> {
        serde_json::from_slice(&self.body).map_err(|e| {
            GraphResponse::error(
                400,
                "BadRequest",
                &format!("Unable to read JSON request payload: {e}"),
            )
        })
    }
}

/// A network-level misbehaviour applied when the response is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetFault {
    /// Drop the connection without a response.
    Reset,
    /// Send headers, then half the body, then drop the connection.
    Truncate,
    /// Wait this many milliseconds before answering.
    Stall(u64),
}

/// A response body.
#[derive(Clone, Debug)]
pub enum Body {
    /// JSON.
    Json(Value),
    /// Raw bytes with a content type.
    Raw(Bytes, String),
    /// No body.
    Empty,
}

/// A Graph response.
#[derive(Clone, Debug)]
pub struct GraphResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body,
    /// Network fault to apply.
    pub fault: Option<NetFault>,
}

impl GraphResponse {
    /// A JSON response.
    #[must_use]
    pub fn json(status: u16, value: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Json(value),
            fault: None,
        }
    }

    /// A 200 JSON response.
    #[must_use]
    pub fn ok(value: Value) -> Self {
        Self::json(200, value)
    }

    /// A response without a body.
    #[must_use]
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            fault: None,
        }
    }

    /// Raw bytes.
    #[must_use]
    pub fn raw(status: u16, bytes: Bytes, content_type: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Raw(bytes, content_type.to_string()),
            fault: None,
        }
    }

    /// Graph's error JSON.
    #[must_use]
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, error_body(code, message, None))
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// 404 `itemNotFound` (OneDrive spelling) .
    #[must_use]
    pub fn item_not_found() -> Self {
        Self::error(404, "itemNotFound", "The resource could not be found.")
    }

    /// 404 `ErrorItemNotFound` (Exchange spelling).
    #[must_use]
    pub fn exchange_not_found() -> Self {
        Self::error(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 404 for unknown directory objects.
    #[must_use]
    pub fn resource_not_found(what: &str) -> Self {
        Self::error(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// 400 for a URL the simulator does not know.
    #[must_use]
    pub fn bad_url(path: &str) -> Self {
        Self::error(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{path}'."),
        )
    }
}

/// Graph's error object. `innerError` gets `date`, `request-id` and `client-request-id`.
#[must_use]
pub fn error_body(code: &str, message: &str, request_id: Option<&str>) -> Value {
    let rid = request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let date = crate::time_fmt::iso(crate::time_fmt::now());
    json!({"error": {"code": code, "message": message, "innerError": {
        "date": date.trim_end_matches('Z'), "request-id": rid, "client-request-id": rid}}})
}

/// Percent-decodes one path segment.
#[must_use]
pub fn decode_segment(seg: &str) -> String {
    percent_decode(seg)
}

/// Percent-decodes a string (no `+` handling: paths keep `+`).
#[must_use]
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path segment.
#[must_use]
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
