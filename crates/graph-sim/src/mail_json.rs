//! Messages created from JSON: what they show as given, their file attachments (posted, or
//! through upload sessions), and the people of messages created from MIME.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{pjson, resolve_message, upload};
use crate::content::{AttachmentSpec, Person};
use crate::http::{GraphRequest, GraphResponse};
use crate::ids::{OutlookKey, OutlookKind};
use crate::state::SimState;
use crate::tenant::{MailboxCell, MessageBody};

/// `sender`, `bccRecipients` and `replyTo` of a message created from MIME, from its headers.
pub(super) fn mime_people(out: &mut Value, raw: &[u8]) {
    let Some(parsed) = crate::mime_parse::parse(raw) else {
        return;
    };
    let list = |h: &str| -> Vec<Value> {
        crate::mime_parse::addresses(parsed.header(h).unwrap_or(""))
            .into_iter()
            .map(|(name, address)| pjson(&Person { name, address }))
            .collect()
    };
    if let Some(sender) = list("sender").into_iter().next() {
        out["sender"] = sender;
    }
    out["bccRecipients"] = Value::Array(list("bcc"));
    out["replyTo"] = Value::Array(list("reply-to"));
}

/// What a message created from JSON shows as given at creation (Graph keeps these).
pub(super) fn json_overrides(out: &mut Value, stored: &Value) {
    if let Some(imid) = stored["internetMessageId"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        out["internetMessageId"] = Value::String(imid.to_string());
    }
    for k in [
        "importance",
        "categories",
        "bccRecipients",
        "replyTo",
        "sender",
    ] {
        if !stored[k].is_null() {
            out[k] = stored[k].clone();
        }
    }
    let flag: serde_json::Map<String, Value> = stored["flag"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "flagStatus")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(o) = out["flag"].as_object_mut() {
        o.extend(flag);
    }
}

/// File attachments given as Graph JSON (`contentBytes` base64).
pub(super) fn json_attachments(v: &Value) -> Vec<AttachmentSpec> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let data = STANDARD.decode(a["contentBytes"].as_str()?).ok()?;
            let name = a["name"].as_str().unwrap_or("attachment").to_string();
            Some(AttachmentSpec {
                content_type: a["contentType"].as_str().map_or_else(
                    || crate::content::mime_type(&name).to_string(),
                    str::to_string,
                ),
                name,
                size: data.len() as u64,
                seed: 0,
                inline: a["isInline"].as_bool().unwrap_or(false),
                content_id: a["contentId"].as_str().map(str::to_string),
                data: Some(Bytes::from(data)),
            })
        })
        .collect()
}

/// `POST …/messages/{id}/attachments`: adds a file attachment to a message created from JSON.
pub(super) fn add_attachment(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    id: &str,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    if body["@odata.type"]
        .as_str()
        .is_some_and(|t| t != "#microsoft.graph.fileAttachment")
    {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "Only file attachments are supported.",
        );
    }
    if json_attachments(&json!([body.clone()])).is_empty() {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "contentBytes must be valid base64.",
        );
    }
    attach(state, cell, id, body, None)
}

/// `PUT|GET|DELETE /_attup/{session}?authtoken=…`: a fragment of a message attachment upload
/// session (Graph's pre-authenticated `uploadUrl`: a bearer token is refused); the last one
/// attaches the file to its message.
pub async fn attachment_upload(
    req: actix_web::HttpRequest,
    body: Bytes,
    state: actix_web::web::Data<SimState>,
) -> actix_web::HttpResponse {
    let rid = uuid::Uuid::new_v4().to_string();
    if req.headers().contains_key("authorization") {
        let resp = GraphResponse::error(
            401,
            "InvalidAuthenticationToken",
            "The upload URL is pre-authenticated: do not send an Authorization header.",
        );
        return crate::server::to_http(&state, resp, &rid).await;
    }
    let session = req.match_info().get("id").unwrap_or_default().to_owned();
    let token = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "authtoken")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let put = upload::Put {
        method: crate::http::Method::parse(req.method().as_str()),
        token: &token,
        range: req
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        body: &body,
    };
    state.counters.request("attachment_upload", None);
    let resp = match upload::fragment(&put, &session) {
        upload::Fragment::Answer(a) => a,
        upload::Fragment::Done {
            mailbox,
            message_id,
            item,
        } => match state.tenant.mailbox(mailbox) {
            Some(cell) => {
                let owner = super::owner(&state, mailbox);
                let prefix = format!(
                    "{}/users/{}/messages/{message_id}/attachments",
                    state.graph(),
                    owner.address
                );
                attach(&state, &cell, &message_id, item, Some(prefix))
            }
            None => GraphResponse::exchange_not_found(),
        },
    };
    crate::server::to_http(&state, resp, &rid).await
}

/// Adds a file attachment (JSON with `contentBytes`) to a message created from JSON; answers the
/// attachment without its bytes, or (with a `location` prefix) `201` with an empty body and a
/// `Location` header.
fn attach(
    state: &SimState,
    cell: &MailboxCell,
    id: &str,
    body: Value,
    location: Option<String>,
) -> GraphResponse {
    let seq = state.tenant.next_seq();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let Some(s) = resolve_message(state, mb, id) else {
            return GraphResponse::exchange_not_found();
        };
        let Some(Some(m)) = mb.messages.get_mut(s as usize) else {
            return GraphResponse::exchange_not_found();
        };
        let MessageBody::Json(stored) = &m.body else {
            return GraphResponse::error(
                400,
                "ErrorInvalidRequest",
                "Attachments can only be added to messages created from JSON.",
            );
        };
        let mut stored = (**stored).clone();
        let mut list = stored["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let index = list.len();
        list.push(body.clone());
        stored["attachments"] = Value::Array(list);
        m.body = MessageBody::Json(Arc::new(stored));
        m.changed_seq = seq;
        let aid = state.tenant.codec.outlook(OutlookKey {
            kind: OutlookKind::Attachment,
            mailbox: mb.idx,
            serial: s,
            sub: u32::try_from(index).unwrap_or(0),
        });
        if let Some(prefix) = location {
            return GraphResponse::empty(201).with_header("Location", format!("{prefix}/{aid}"));
        }
        let mut out = body;
        out["id"] = Value::String(aid);
        if let Some(o) = out.as_object_mut() {
            o.remove("contentBytes");
        }
        GraphResponse::json(201, out)
    })
}
