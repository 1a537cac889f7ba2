//! Upload sessions for large message attachments (3–150 MB):
//! `POST …/messages/{id}/attachments/createUploadSession` with an `AttachmentItem`, then
//! sequential `PUT`s of byte ranges of at most 4 MB to the session's `uploadUrl`. Graph answers
//! each partial range with `200` and `nextExpectedRanges`, and the last one with `201 Created`, an
//! empty body and a `Location` header naming the new attachment.
//!
//! Graph's `uploadUrl` is on the Outlook host with an `authtoken` in the query and takes no
//! bearer token. The simulator serves it outside its Graph paths, at
//! `/_attup/{session}?authtoken=…`: the token must match, and a request that carries an
//! `Authorization` header is refused, as Graph asks clients not to send one. Ranges, order,
//! sizes and the final answer follow Graph's documentation. A fragment that repeats bytes
//! already received (a retry after a lost answer) is answered with the current progress instead
//! of an error.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::http::{GraphRequest, GraphResponse, Method};
use crate::time_fmt::{iso_ms, now};

/// Largest file an upload session takes (Graph: 150 MB).
pub const SESSION_MAX: u64 = 150 * 1024 * 1024;
/// Largest fragment per `PUT` (Graph: 4 MB).
pub const FRAGMENT_MAX: u64 = 4 * 1024 * 1024;
/// Lifetime of a session in seconds.
const LIFETIME: i64 = 15 * 60;

/// One attachment being uploaded.
pub struct Session {
    /// Mailbox number.
    pub mailbox: u32,
    /// The message's id as the client named it when it opened the session.
    pub message_id: String,
    /// The `authtoken` of the upload URL.
    pub token: String,
    /// `name`, `contentType`, `isInline`, `contentId` of the attachment.
    pub item: Value,
    /// Declared size.
    pub size: u64,
    /// Bytes received so far.
    pub data: Vec<u8>,
    /// Expiry (Unix seconds).
    pub expires: i64,
}

/// Sessions of every simulator in the process, by their random id (so they never collide).
static SESSIONS: LazyLock<Mutex<HashMap<String, Session>>> = LazyLock::new(Mutex::default);

/// The message an upload session belongs to.
pub struct Target<'a> {
    /// Mailbox number.
    pub mailbox: u32,
    /// The message's id as given in the request path.
    pub message_id: &'a str,
    /// Whether the message was created from JSON (only those take attachments).
    pub json_body: bool,
}

/// Validates an `AttachmentItem` and opens a session for message `target`; answers the
/// `uploadSession`, whose URL is under the simulator's root `root`.
pub fn create(graph: &str, root: &str, req: &GraphRequest, target: &Target<'_>) -> GraphResponse {
    let json_body = target.json_body;
    if !json_body {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "Attachments can only be added to messages created from JSON.",
        );
    }
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    // Graph accepts the property in either case.
    let item = body
        .get("AttachmentItem")
        .or_else(|| body.get("attachmentItem"))
        .cloned()
        .unwrap_or(Value::Null);
    let kind = item["attachmentType"].as_str().unwrap_or("file");
    if !kind.eq_ignore_ascii_case("file") {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "Only file attachments can be uploaded in a session.",
        );
    }
    let Some(name) = item["name"].as_str().filter(|n| !n.is_empty()) else {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "The attachment item needs a name.",
        );
    };
    let Some(size) = item["size"].as_u64() else {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "The attachment item needs its size.",
        );
    };
    if size > SESSION_MAX {
        return GraphResponse::error(
            413,
            "ErrorAttachmentSizeLimitExceeded",
            "The attachment exceeds the 150 MB limit of upload sessions.",
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let expires = now() + LIFETIME;
    let content_type = item["contentType"].as_str().map_or_else(
        || crate::content::mime_type(name).to_string(),
        str::to_string,
    );
    let token = uuid::Uuid::new_v4().simple().to_string();
    SESSIONS.lock().insert(
        id.clone(),
        Session {
            mailbox: target.mailbox,
            message_id: target.message_id.to_owned(),
            token: token.clone(),
            item: json!({
                "name": name,
                "contentType": content_type,
                "isInline": item["isInline"].as_bool().unwrap_or(false),
                "contentId": item["contentId"].clone(),
            }),
            size,
            data: Vec::new(),
            expires,
        },
    );
    GraphResponse::json(
        201,
        json!({
            "@odata.context": format!("{graph}/$metadata#microsoft.graph.uploadSession"),
            "uploadUrl": format!("{root}/_attup/{id}?authtoken={token}"),
            "expirationDateTime": iso_ms(expires * 1000),
            "nextExpectedRanges": ["0-"],
        }),
    )
}

/// What a fragment did.
pub enum Fragment {
    /// An answer to send back as is.
    Answer(GraphResponse),
    /// The last range arrived: the attachment JSON (with `contentBytes`) to add to message
    /// `message_id` of mailbox `mailbox`.
    Done {
        /// Mailbox number.
        mailbox: u32,
        /// The message's id as the client named it.
        message_id: String,
        /// The attachment.
        item: Value,
    },
}

/// One request to an upload URL.
pub struct Put<'a> {
    /// Method.
    pub method: Method,
    /// The `authtoken` query parameter.
    pub token: &'a str,
    /// The `Content-Range` header.
    pub range: Option<&'a str>,
    /// Body.
    pub body: &'a [u8],
}

fn progress(s: &Session) -> Value {
    json!({
        "expirationDateTime": iso_ms(s.expires * 1000),
        "nextExpectedRanges": [format!("{}", s.data.len())],
    })
}

/// Handles `PUT`/`GET`/`DELETE` on upload session `session`.
pub fn fragment(req: &Put<'_>, session: &str) -> Fragment {
    let answer = Fragment::Answer;
    let mut sessions = SESSIONS.lock();
    let t = now();
    sessions.retain(|_, s| s.expires >= t);
    let Some(s) = sessions.get_mut(session).filter(|s| s.token == req.token) else {
        return answer(GraphResponse::error(
            404,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        ));
    };
    match req.method {
        Method::Get => return answer(GraphResponse::ok(progress(s))),
        Method::Delete => {
            sessions.remove(session);
            return answer(GraphResponse::empty(204));
        }
        Method::Put => {}
        _ => {
            return answer(GraphResponse::error(
                405,
                "ErrorInvalidRequest",
                "Method not allowed.",
            ));
        }
    }
    let parsed = req
        .range
        .and_then(|r| r.trim().strip_prefix("bytes "))
        .and_then(|r| {
            let (span, total) = r.split_once('/')?;
            let (a, b) = span.split_once('-')?;
            Some((
                a.trim().parse::<u64>().ok()?,
                b.trim().parse::<u64>().ok()?,
                total.trim().parse::<u64>().ok()?,
            ))
        });
    let Some((start, end, total)) = parsed.filter(|(a, b, _)| a <= b) else {
        return answer(GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "A Content-Range header 'bytes start-end/total' is required.",
        ));
    };
    let len = end - start + 1;
    if total != s.size || end >= total {
        return answer(GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "The range does not fit the size given when the session was created.",
        ));
    }
    if req.body.len() as u64 != len {
        return answer(GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "The body length does not match Content-Range.",
        ));
    }
    if len > FRAGMENT_MAX {
        return answer(GraphResponse::error(
            413,
            "ErrorRequestEntityTooLarge",
            "A fragment may hold at most 4 MB.",
        ));
    }
    let have = s.data.len() as u64;
    if end < have {
        // Bytes received already (a retried fragment): the progress, unchanged.
        return answer(GraphResponse::ok(progress(s)));
    }
    if start != have {
        return answer(GraphResponse::error(
            416,
            "ErrorInvalidRequest",
            "Fragments must be uploaded in order, from nextExpectedRanges.",
        ));
    }
    s.data.extend_from_slice(req.body);
    if (s.data.len() as u64) < s.size {
        return answer(GraphResponse::ok(progress(s)));
    }
    let Some(done) = sessions.remove(session) else {
        return answer(GraphResponse::error(
            404,
            "ErrorItemNotFound",
            "The upload session was not found.",
        ));
    };
    let mut item = done.item;
    item["@odata.type"] = json!("#microsoft.graph.fileAttachment");
    item["contentBytes"] = Value::String(STANDARD.encode(&done.data));
    Fragment::Done {
        mailbox: done.mailbox,
        message_id: done.message_id,
        item,
    }
}
