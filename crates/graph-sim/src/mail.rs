//! Mail: folders, messages, MIME, attachments, delta, creation and updates.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::content::{AttachmentSpec, MessageSpec, Person, message_spec, mime, preview};
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::ids::{IMMUTABLE, OutlookKey, OutlookKind};
use crate::odata::{Cursor, apply_select, page};
use crate::state::SimState;
use crate::tenant::{MailFolder, Mailbox, MailboxCell, Message, MessageBody, Removed, UserKind};
use crate::time_fmt::{iso, now, parse_iso, parse_rfc2822};

#[path = "mail_json.rs"]
mod json_body;
#[path = "mail_upload.rs"]
mod upload;

pub use json_body::attachment_upload;
use json_body::{add_attachment, json_attachments, json_overrides, mime_people};

/// 404 for users without an Exchange Online mailbox.
#[must_use]
pub fn no_mailbox() -> GraphResponse {
    GraphResponse::error(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

/// What a message shows, whatever its origin.
pub struct View {
    /// Spec (subject, people, bodies, generated attachments).
    pub spec: MessageSpec,
    /// Attachments as (name, content type, bytes, inline, content id).
    pub files: Vec<(String, String, Vec<u8>, bool, Option<String>)>,
    /// MIME bytes.
    pub mime: Vec<u8>,
}

/// The mailbox owner as a person.
pub fn owner(state: &SimState, idx: u32) -> Person {
    let dir = state.tenant.dir.read();
    dir.users.get(idx as usize).map_or_else(
        || Person {
            name: String::new(),
            address: String::new(),
        },
        |u| Person {
            name: u.display_name.clone(),
            address: u.upn.clone(),
        },
    )
}

fn person_list(v: &Value) -> Vec<Person> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| Person {
                    name: r["emailAddress"]["name"].as_str().unwrap_or("").to_string(),
                    address: r["emailAddress"]["address"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Computes the view of a message (generates MIME when asked).
pub fn view(
    state: &SimState,
    owner: &Person,
    m: &Message,
    sent_folder: bool,
    with_mime: bool,
) -> View {
    match &m.body {
        MessageBody::Generated => {
            let spec = message_spec(
                state.tenant.seed,
                &state.tenant.domain,
                owner,
                m.seed,
                sent_folder,
            );
            let files = spec
                .attachments
                .iter()
                .map(|a: &AttachmentSpec| {
                    (
                        a.name.clone(),
                        a.content_type.clone(),
                        if with_mime { a.bytes() } else { Vec::new() },
                        a.inline,
                        a.content_id.clone(),
                    )
                })
                .collect();
            let files = if with_mime {
                files
            } else {
                spec.attachments
                    .iter()
                    .map(|a| {
                        (
                            a.name.clone(),
                            a.content_type.clone(),
                            Vec::new(),
                            a.inline,
                            a.content_id.clone(),
                        )
                    })
                    .collect()
            };
            let mime = if with_mime {
                mime(&spec, m.sent)
            } else {
                Vec::new()
            };
            View { spec, files, mime }
        }
        MessageBody::Mime(raw) => {
            let parsed = crate::mime_parse::parse(raw).unwrap_or_default();
            let first = |h: &str| {
                crate::mime_parse::addresses(parsed.header(h).unwrap_or(""))
                    .into_iter()
                    .map(|(n, a)| Person {
                        name: n,
                        address: a,
                    })
                    .collect::<Vec<_>>()
            };
            let spec = MessageSpec {
                subject: parsed.header("subject").unwrap_or("").to_string(),
                from: first("from").into_iter().next().unwrap_or(Person {
                    name: String::new(),
                    address: String::new(),
                }),
                to: first("to"),
                cc: first("cc"),
                text: parsed.text().unwrap_or_default(),
                html: parsed.html().unwrap_or_default(),
                attachments: Vec::new(),
                message_id: parsed
                    .header("message-id")
                    .unwrap_or("")
                    .trim_matches(['<', '>'])
                    .to_string(),
                conversation: m.seed,
            };
            let files = parsed
                .attachments()
                .into_iter()
                .map(|p| {
                    (
                        p.name.clone().unwrap_or_else(|| "attachment".into()),
                        p.content_type.clone(),
                        p.data.clone(),
                        p.inline,
                        p.content_id.clone(),
                    )
                })
                .collect();
            View {
                spec,
                files,
                mime: raw.to_vec(),
            }
        }
        MessageBody::Json(v) => {
            let body = &v["body"];
            let is_html = body["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("html"));
            let content = body["content"].as_str().unwrap_or("").to_string();
            let spec = MessageSpec {
                subject: v["subject"].as_str().unwrap_or("").to_string(),
                from: person_list(&json!([v["from"].clone()]))
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| owner.clone()),
                to: person_list(&v["toRecipients"]),
                cc: person_list(&v["ccRecipients"]),
                text: if is_html {
                    String::new()
                } else {
                    content.clone()
                },
                html: if is_html { content } else { String::new() },
                attachments: json_attachments(&v["attachments"]),
                message_id: format!("{:016x}@{}", m.seed, state.tenant.domain),
                conversation: m.seed,
            };
            let mime = if with_mime {
                mime(&spec, m.sent)
            } else {
                Vec::new()
            };
            let files = spec
                .attachments
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        a.content_type.clone(),
                        a.bytes(),
                        a.inline,
                        a.content_id.clone(),
                    )
                })
                .collect();
            View { spec, files, mime }
        }
    }
}

fn pjson(p: &Person) -> Value {
    json!({"emailAddress": {"name": p.name, "address": p.address}})
}

/// The id clients see for a message.
pub fn message_id(state: &SimState, mb: u32, m: &Message, immutable: bool) -> String {
    state.tenant.codec.outlook(OutlookKey {
        kind: OutlookKind::Message,
        mailbox: mb,
        serial: m.serial,
        sub: if immutable { IMMUTABLE } else { m.generation },
    })
}

fn folder_id(state: &SimState, mb: u32, serial: u32) -> String {
    state.tenant.codec.outlook(OutlookKey {
        kind: OutlookKind::Folder,
        mailbox: mb,
        serial,
        sub: 0,
    })
}

fn etag(m: &Message) -> String {
    let tag = STANDARD.encode(
        [
            m.serial.to_be_bytes(),
            u32::try_from(m.changed_seq & 0xFFFF_FFFF)
                .unwrap_or(0)
                .to_be_bytes(),
        ]
        .concat(),
    );
    format!("W/\"CQAAABYAAA{tag}\"")
}

/// Message JSON.
pub fn message_json(
    state: &SimState,
    mb: &Mailbox,
    owner: &Person,
    m: &Message,
    immutable: bool,
) -> Value {
    let sent_folder = mb.folder(m.folder).and_then(|f| f.well_known) == Some("sentitems");
    let v = view(state, owner, m, sent_folder, false);
    let (ctype, content) = if v.spec.html.is_empty() {
        ("text", v.spec.text.clone())
    } else {
        ("html", v.spec.html.clone())
    };
    let flag = match m.flag {
        1 => json!({"flagStatus": "flagged"}),
        2 => json!({"flagStatus": "complete"}),
        _ => json!({"flagStatus": "notFlagged"}),
    };
    let mut out = json!({
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": etag(m),
        "id": message_id(state, mb.idx, m, immutable),
        "createdDateTime": iso(m.received),
        "lastModifiedDateTime": iso(m.modified),
        "changeKey": etag(m).trim_start_matches("W/\"").trim_end_matches('"'),
        "categories": [],
        "receivedDateTime": iso(m.received),
        "sentDateTime": iso(m.sent),
        "hasAttachments": v.files.iter().any(|f| !f.3),
        "internetMessageId": format!("<{}>", v.spec.message_id),
        "subject": v.spec.subject,
        "bodyPreview": preview(if v.spec.text.is_empty() { &v.spec.html } else { &v.spec.text }),
        "importance": "normal",
        "parentFolderId": folder_id(state, mb.idx, m.folder),
        "conversationId": STANDARD.encode(v.spec.conversation.to_be_bytes()),
        "conversationIndex": STANDARD.encode([v.spec.conversation.to_be_bytes(), m.seed.to_be_bytes()].concat()),
        "isDeliveryReceiptRequested": false,
        "isReadReceiptRequested": false,
        "isRead": m.is_read,
        "isDraft": m.is_draft,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", message_id(state, mb.idx, m, immutable)),
        "inferenceClassification": "focused",
        "body": {"contentType": ctype, "content": content},
        "sender": pjson(&v.spec.from),
        "from": pjson(&v.spec.from),
        "toRecipients": v.spec.to.iter().map(pjson).collect::<Vec<_>>(),
        "ccRecipients": v.spec.cc.iter().map(pjson).collect::<Vec<_>>(),
        "bccRecipients": [],
        "replyTo": [],
        "flag": flag,
    });
    match &m.body {
        MessageBody::Json(stored) => json_overrides(&mut out, stored),
        MessageBody::Mime(raw) => mime_people(&mut out, raw),
        MessageBody::Generated => {}
    }
    out
}

fn folder_json(state: &SimState, mb: &Mailbox, f: &MailFolder) -> Value {
    let children = mb
        .folders
        .iter()
        .flatten()
        .filter(|c| c.parent == Some(f.serial))
        .count();
    let (mut total, mut unread) = (0, 0);
    for m in mb
        .messages
        .iter()
        .flatten()
        .filter(|m| m.folder == f.serial)
    {
        total += 1;
        if !m.is_read {
            unread += 1;
        }
    }
    json!({
        "id": folder_id(state, mb.idx, f.serial),
        "displayName": f.name,
        "parentFolderId": f.parent.map_or(Value::Null, |p| Value::String(folder_id(state, mb.idx, p))),
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": total * 20_000,
        "isHidden": f.hidden,
    })
}

fn resolve_folder(state: &SimState, mb: &Mailbox, key: &str) -> Option<u32> {
    if let Some(s) = mb.well_known(key) {
        return Some(s);
    }
    let k = state.tenant.codec.decode_outlook(key)?;
    (k.kind == OutlookKind::Folder && k.mailbox == mb.idx && mb.folder(k.serial).is_some())
        .then_some(k.serial)
}

fn resolve_message(state: &SimState, mb: &Mailbox, key: &str) -> Option<u32> {
    let k = state.tenant.codec.decode_outlook(key)?;
    let m = mb.message(k.serial)?;
    (k.kind == OutlookKind::Message
        && k.mailbox == mb.idx
        && (k.sub == IMMUTABLE || k.sub == m.generation))
        .then_some(k.serial)
}

/// Routes `/users/{u}/mailFolders…` and `/users/{u}/messages…`.
pub fn route(state: &SimState, req: &GraphRequest, idx: u32, rest: &[&str]) -> GraphResponse {
    let kind = state
        .tenant
        .dir
        .read()
        .users
        .get(idx as usize)
        .map(|u| u.kind);
    if kind == Some(UserKind::NoMailbox) {
        return no_mailbox();
    }
    let Some(cell) = state.tenant.mailbox(idx) else {
        return no_mailbox();
    };
    let owner = owner(state, idx);
    let lower: Vec<String> = rest.iter().map(|s| s.to_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (req.method, l.as_slice()) {
        (Method::Get, ["mailfolders"]) => list_folders(state, req, &cell, idx, None),
        (Method::Post, ["mailfolders"]) => create_folder(state, req, &cell, idx, None),
        (Method::Get, ["mailfolders", "delta"]) => folder_delta(state, req, &cell, idx, &owner),
        (Method::Get, ["mailfolders", _]) => state.tenant.with_mailbox(&cell, |mb| {
            match resolve_folder(state, mb, rest[1]).and_then(|s| mb.folder(s)) {
                Some(f) => GraphResponse::ok(folder_json(state, mb, f)),
                None => GraphResponse::exchange_not_found(),
            }
        }),
        (Method::Get, ["mailfolders", _, "childfolders"]) => {
            list_folders(state, req, &cell, idx, Some(rest[1]))
        }
        (Method::Post, ["mailfolders", _, "childfolders"]) => {
            create_folder(state, req, &cell, idx, Some(rest[1]))
        }
        (Method::Get, ["mailfolders", _, "messages"]) => {
            list_messages(state, req, &cell, &owner, Some(rest[1]))
        }
        (Method::Post, ["mailfolders", _, "messages"]) => {
            create_message(state, req, &cell, &owner, Some(rest[1]))
        }
        (Method::Get, ["mailfolders", _, "messages", "delta"]) => {
            delta(state, req, &cell, &owner, rest[1])
        }
        (Method::Post, ["messages"]) => create_message(state, req, &cell, &owner, None),
        (Method::Get, ["mailboxsettings"]) => GraphResponse::ok(json!({
            "@odata.context": format!("{}/$metadata#users('{}')/mailboxSettings", state.graph(), owner.address),
            "archiveFolder": state.tenant.with_mailbox(&cell, |mb| mb.well_known("archive").map(|s| folder_id(state, idx, s))),
            "timeZone": "UTC", "delegateMeetingMessageDeliveryOptions": "sendToDelegateOrInformationOnly",
            "dateFormat": "yyyy-MM-dd", "timeFormat": "HH:mm", "userPurpose": if kind == Some(UserKind::Shared) { "shared" } else { "user" },
            "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all", "internalReplyMessage": "", "externalReplyMessage": "",
                "scheduledStartDateTime": {"dateTime": "2026-01-01T00:00:00.0000000", "timeZone": "UTC"}, "scheduledEndDateTime": {"dateTime": "2026-01-02T00:00:00.0000000", "timeZone": "UTC"}},
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000", "timeZone": {"name": "UTC"}},
        })),
        (Method::Get, ["messages"]) => list_messages(state, req, &cell, &owner, None),
        (_, ["mailfolders", _, "messages", _, ..]) => {
            message_route(state, req, &cell, &owner, rest[3], &rest[4..])
        }
        (_, ["messages", _, ..]) => message_route(state, req, &cell, &owner, rest[1], &rest[2..]),
        _ => GraphResponse::bad_url(rest.last().copied().unwrap_or("")),
    }
}

fn list_folders(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    idx: u32,
    parent: Option<&str>,
) -> GraphResponse {
    let hidden = req
        .param("includeHiddenFolders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let graph = state.graph();
    let user = state
        .tenant
        .dir
        .read()
        .users
        .get(idx as usize)
        .map(|u| u.id.to_string())
        .unwrap_or_default();
    state.tenant.with_mailbox(cell, |mb| {
        let parent_serial = match parent {
            None => 0,
            Some(p) => match resolve_folder(state, mb, p) {
                Some(s) => s,
                None => return GraphResponse::exchange_not_found(),
            },
        };
        let items: Vec<Value> = mb
            .folders
            .iter()
            .flatten()
            .filter(|f| f.parent == Some(parent_serial) && (hidden || !f.hidden))
            .map(|f| folder_json(state, mb, f))
            .collect();
        let url = match parent {
            None => format!("{graph}/users/{user}/mailFolders"),
            Some(p) => format!("{graph}/users/{user}/mailFolders/{p}/childFolders"),
        };
        page(
            req,
            &url,
            &format!("{graph}/$metadata#users('{user}')/mailFolders"),
            items,
            10,
            1000,
        )
    })
}

fn create_folder(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    _idx: u32,
    parent: Option<&str>,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(name) = body["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
    else {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "The displayName property is required.",
        );
    };
    let hidden = body["isHidden"].as_bool().unwrap_or(false);
    let seq = state.tenant.next_seq();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let parent_serial = match parent {
            None => 0,
            Some(p) => match resolve_folder(state, mb, p) {
                Some(s) => s,
                None => return GraphResponse::exchange_not_found(),
            },
        };
        if mb
            .folders
            .iter()
            .flatten()
            .any(|f| f.parent == Some(parent_serial) && f.name.eq_ignore_ascii_case(name))
        {
            return GraphResponse::error(
                409,
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            );
        }
        let serial = u32::try_from(mb.folders.len()).unwrap_or(u32::MAX);
        let f = MailFolder {
            serial,
            parent: Some(parent_serial),
            name: name.to_string(),
            well_known: None,
            hidden,
            changed_seq: seq,
            log: Default::default(),
        };
        mb.folders.push(Some(f));
        match mb.folder(serial) {
            Some(f) => GraphResponse::json(201, folder_json(state, mb, f)),
            None => GraphResponse::exchange_not_found(),
        }
    })
}

fn list_messages(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    folder: Option<&str>,
) -> GraphResponse {
    let immutable = req.immutable_ids();
    let graph = state.graph();
    state.tenant.with_mailbox(cell, |mb| {
        let f = match folder {
            Some(key) => match resolve_folder(state, mb, key) {
                Some(f) => Some(f),
                None => return GraphResponse::exchange_not_found(),
            },
            None => None,
        };
        let mut msgs: Vec<&Message> = mb
            .messages
            .iter()
            .flatten()
            .filter(|m| f.is_none_or(|f| m.folder == f))
            .collect();
        msgs.sort_by_key(|m| std::cmp::Reverse(m.received));
        // Only render the requested page: list ids first, then render.
        let items: Vec<Value> = msgs
            .iter()
            .map(|m| json!({"@sim.serial": m.serial}))
            .collect();
        let mut resp = page(
            req,
            &match folder {
                Some(key) => format!("{graph}/users/{}/mailFolders/{key}/messages", owner.address),
                None => format!("{graph}/users/{}/messages", owner.address),
            },
            &format!("{graph}/$metadata#Collection(message)"),
            items,
            10,
            1000,
        );
        if let crate::http::Body::Json(Value::Object(body)) = &mut resp.body {
            if let Some(Value::Array(values)) = body.get_mut("value") {
                for v in values.iter_mut() {
                    let serial = v["@sim.serial"]
                        .as_u64()
                        .and_then(|s| u32::try_from(s).ok())
                        .unwrap_or(0);
                    if let Some(m) = mb.message(serial) {
                        let mut full = message_json(state, mb, owner, m, immutable);
                        apply_select(&mut full, req.param("select"));
                        *v = full;
                    }
                }
            }
        }
        resp
    })
}

fn delta(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    folder: &str,
) -> GraphResponse {
    let immutable = req.immutable_ids();
    let graph = state.graph();
    let url = format!(
        "{graph}/users/{}/mailFolders/{folder}/messages/delta",
        owner.address
    );
    let cursor = match delta_cursor(req, state.tenant.current_seq(), 10, 1000) {
        Ok(c) => c,
        Err(e) => return e,
    };
    state.tenant.with_mailbox(cell, |mb| {
        let Some(f) = resolve_folder(state, mb, folder) else { return GraphResponse::exchange_not_found() };
        let Some(fo) = mb.folder(f) else { return GraphResponse::exchange_not_found() };
        let removed = fo.log.since(cursor.since).map(|it| {
            it.map(|r| {
                let id = state.tenant.codec.outlook(OutlookKey { kind: OutlookKind::Message, mailbox: mb.idx, serial: r.serial, sub: if immutable { IMMUTABLE } else { r.sub } });
                (i64::from(r.serial), json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}}))
            })
            .collect::<Vec<_>>()
        });
        let live: Vec<(i64, u64, Box<dyn Fn() -> Value + '_>)> = mb
            .messages
            .iter()
            .flatten()
            .filter(|m| m.folder == f)
            .map(|m| {
                let render: Box<dyn Fn() -> Value + '_> = Box::new(move || message_json(state, mb, owner, m, immutable));
                (i64::from(m.serial), m.changed_seq, render)
            })
            .collect();
        crate::odata::run_delta(&url, &format!("{graph}/$metadata#Collection(message)"), cursor, live, removed, "syncStateNotFound")
    })
}

/// A delta cursor from `$skiptoken` / `$deltatoken`, or a new round.
///
/// # Errors
/// 400 for tokens that are not ours.
pub fn delta_cursor(
    req: &GraphRequest,
    current: u64,
    default: usize,
    max: usize,
) -> Result<Cursor, GraphResponse> {
    crate::odata::delta_cursor(req, current, default, max)
}

fn message_route(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    id: &str,
    tail: &[&str],
) -> GraphResponse {
    let immutable = req.immutable_ids();
    let tail_l: Vec<String> = tail.iter().map(|s| s.to_lowercase()).collect();
    let t: Vec<&str> = tail_l.iter().map(String::as_str).collect();
    match (req.method, t.as_slice()) {
        (Method::Get, []) => state.tenant.with_mailbox(cell, |mb| {
            match resolve_message(state, mb, id).and_then(|s| mb.message(s)) {
                Some(m) => {
                    let mut v = message_json(state, mb, owner, m, immutable);
                    apply_select(&mut v, req.param("select"));
                    GraphResponse::ok(v)
                }
                None => GraphResponse::exchange_not_found(),
            }
        }),
        (Method::Get, ["$value"]) => state.tenant.with_mailbox(cell, |mb| {
            match resolve_message(state, mb, id).and_then(|s| mb.message(s)) {
                Some(m) => {
                    let sent = mb.folder(m.folder).and_then(|f| f.well_known) == Some("sentitems");
                    let v = view(state, owner, m, sent, true);
                    state.counters.content(v.mime.len() as u64);
                    GraphResponse::raw(200, Bytes::from(v.mime), "message/rfc822")
                }
                None => GraphResponse::exchange_not_found(),
            }
        }),
        (Method::Get, ["attachments", ..]) => attachments(state, req, cell, owner, id, &tail[1..]),
        (Method::Post, ["attachments"]) => add_attachment(state, req, cell, id),
        (Method::Post, ["attachments", "createuploadsession"]) => {
            let graph = state.graph();
            state.tenant.with_mailbox(cell, |mb| {
                match resolve_message(state, mb, id).and_then(|s| mb.message(s)) {
                    Some(m) => upload::create(
                        &graph,
                        &state.base,
                        req,
                        &upload::Target {
                            mailbox: mb.idx,
                            message_id: id,
                            json_body: matches!(m.body, MessageBody::Json(_)),
                        },
                    ),
                    None => GraphResponse::exchange_not_found(),
                }
            })
        }
        (Method::Patch, []) => patch_message(state, req, cell, owner, id),
        (Method::Delete, []) => {
            let seq = state.tenant.next_seq();
            state
                .tenant
                .with_mailbox_mut(cell, |mb| match resolve_message(state, mb, id) {
                    Some(s) => {
                        delete_message(mb, s, seq);
                        GraphResponse::empty(204)
                    }
                    None => GraphResponse::exchange_not_found(),
                })
        }
        (Method::Post, ["move"]) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let dest = body["destinationId"].as_str().unwrap_or("").to_string();
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| {
                let (Some(s), Some(d)) = (
                    resolve_message(state, mb, id),
                    resolve_folder(state, mb, &dest),
                ) else {
                    return GraphResponse::exchange_not_found();
                };
                move_message(mb, s, d, seq);
                match mb.message(s) {
                    Some(m) => {
                        GraphResponse::json(201, message_json(state, mb, owner, m, immutable))
                    }
                    None => GraphResponse::exchange_not_found(),
                }
            })
        }
        _ => GraphResponse::bad_url(tail.last().copied().unwrap_or(id)),
    }
}

/// Deletes a message, logging the removal in its folder.
pub fn delete_message(mb: &mut Mailbox, serial: u32, seq: u64) {
    if let Some(m) = mb.messages.get_mut(serial as usize).and_then(Option::take) {
        if let Some(Some(f)) = mb.folders.get_mut(m.folder as usize) {
            f.log.push(Removed {
                seq,
                serial,
                sub: m.generation,
                id: String::new(),
                name: String::new(),
            });
        }
    }
}

/// Moves a message: removed from the source folder's delta, new (with a new non-immutable id)
/// in the destination's.
pub fn move_message(mb: &mut Mailbox, serial: u32, dest: u32, seq: u64) {
    let Some(Some(m)) = mb.messages.get_mut(serial as usize) else {
        return;
    };
    if m.folder == dest {
        return;
    }
    let (from, generation) = (m.folder, m.generation);
    m.folder = dest;
    m.generation += 1;
    m.changed_seq = seq;
    if let Some(Some(f)) = mb.folders.get_mut(from as usize) {
        f.log.push(Removed {
            seq,
            serial,
            sub: generation,
            id: String::new(),
            name: String::new(),
        });
    }
}

fn attachments(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    id: &str,
    rest: &[&str],
) -> GraphResponse {
    let graph = state.graph();
    state.tenant.with_mailbox(cell, |mb| {
        let Some(m) = resolve_message(state, mb, id).and_then(|s| mb.message(s)) else { return GraphResponse::exchange_not_found() };
        let sent = mb.folder(m.folder).and_then(|f| f.well_known) == Some("sentitems");
        let v = view(state, owner, m, sent, true);
        let att_json = |i: usize, f: &(String, String, Vec<u8>, bool, Option<String>), with_bytes: bool| {
            let aid = state.tenant.codec.outlook(OutlookKey { kind: OutlookKind::Attachment, mailbox: mb.idx, serial: m.serial, sub: u32::try_from(i).unwrap_or(0) });
            let mut j = json!({"@odata.type": "#microsoft.graph.fileAttachment", "@odata.mediaContentType": f.1, "id": aid, "lastModifiedDateTime": iso(m.received), "name": f.0,
                "contentType": f.1, "size": f.2.len(), "isInline": f.3, "contentId": f.4, "contentLocation": null});
            if with_bytes {
                j["contentBytes"] = Value::String(STANDARD.encode(&f.2));
            }
            j
        };
        match rest {
            [] => {
                let items: Vec<Value> = v.files.iter().enumerate().map(|(i, f)| att_json(i, f, true)).collect();
                page(req, &format!("{graph}/users/{}/messages/{id}/attachments", owner.address), &format!("{graph}/$metadata#users('{}')/messages('{id}')/attachments", owner.address), items, 100, 1000)
            }
            [aid, tail @ ..] => {
                let Some(k) = state.tenant.codec.decode_outlook(aid).filter(|k| k.kind == OutlookKind::Attachment && k.serial == m.serial && k.mailbox == mb.idx) else {
                    return GraphResponse::exchange_not_found();
                };
                let Some(f) = v.files.get(k.sub as usize) else { return GraphResponse::exchange_not_found() };
                if tail.first().is_some_and(|t| *t == "$value") {
                    state.counters.content(f.2.len() as u64);
                    return GraphResponse::raw(200, Bytes::from(f.2.clone()), &f.1);
                }
                let mut j = att_json(k.sub as usize, f, true);
                j["@odata.context"] = Value::String(format!("{graph}/$metadata#users('{}')/messages('{id}')/attachments/$entity", owner.address));
                GraphResponse::ok(j)
            }
        }
    })
}

fn patch_message(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    id: &str,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let seq = state.tenant.next_seq();
    let immutable = req.immutable_ids();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let Some(s) = resolve_message(state, mb, id) else {
            return GraphResponse::exchange_not_found();
        };
        if let Some(Some(m)) = mb.messages.get_mut(s as usize) {
            if let Some(r) = body["isRead"].as_bool() {
                m.is_read = r;
            }
            if let Some(fs) = body["flag"]["flagStatus"].as_str() {
                m.flag = match fs {
                    "flagged" => 1,
                    "complete" => 2,
                    _ => 0,
                };
            }
            apply_ext_props(m, &body["singleValueExtendedProperties"], false);
            m.changed_seq = seq;
            m.modified = now();
        }
        match mb.message(s) {
            Some(m) => GraphResponse::ok(message_json(state, mb, owner, m, immutable)),
            None => GraphResponse::exchange_not_found(),
        }
    })
}

/// Applies PR_MESSAGE_FLAGS (0x0E07, creation only), PR_MESSAGE_DELIVERY_TIME (0x0E06) and
/// PR_CLIENT_SUBMIT_TIME (0x0039).
fn apply_ext_props(m: &mut Message, props: &Value, creating: bool) {
    for p in props.as_array().into_iter().flatten() {
        let id = p["id"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .replace(' ', "");
        let value = p["value"].as_str().unwrap_or("");
        if id == "integer0x0e07" && creating {
            if let Ok(flags) = value.parse::<u32>() {
                m.is_read = flags & 1 != 0;
                m.is_draft = flags & 8 != 0;
            }
        } else if id == "systemtime0x0e06" {
            if let Some(t) = parse_iso(value) {
                m.received = t;
            }
        } else if id == "systemtime0x0039" {
            if let Some(t) = parse_iso(value) {
                m.sent = t;
            }
        }
    }
}

fn create_message(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    folder: Option<&str>,
) -> GraphResponse {
    let is_mime = req
        .header("content-type")
        .is_some_and(|c| c.to_lowercase().starts_with("text/plain"));
    let now = now();
    let seq = state.tenant.next_seq();
    let seed = crate::rng::mix(state.tenant.seed ^ 0xC4EA7E, seq);
    let mut m = Message {
        serial: 0,
        folder: 0,
        generation: 0,
        changed_seq: seq,
        seed,
        received: now,
        sent: now,
        modified: now,
        is_read: true,
        is_draft: true,
        flag: 0,
        body: MessageBody::Generated,
    };
    if is_mime {
        let clean: Vec<u8> = req
            .body
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let Ok(raw) = STANDARD.decode(&clean) else {
            return GraphResponse::error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            );
        };
        let Some(parsed) = crate::mime_parse::parse(&raw) else {
            return GraphResponse::error(
                400,
                "ErrorMimeContentInvalid",
                "The MIME content is invalid.",
            );
        };
        if let Some(d) = parsed.header("date").and_then(parse_rfc2822) {
            m.sent = d;
        }
        m.body = MessageBody::Mime(Bytes::from(raw));
    } else {
        let body = match req.json() {
            Ok(b) => b,
            Err(e) => return e,
        };
        if let Some(r) = body["isRead"].as_bool() {
            m.is_read = r;
        }
        m.flag = match body["flag"]["flagStatus"].as_str() {
            Some("flagged") => 1,
            Some("complete") => 2,
            _ => 0,
        };
        apply_ext_props(&mut m, &body["singleValueExtendedProperties"], true);
        let mut stored = body.clone();
        if let Value::Object(o) = &mut stored {
            o.remove("singleValueExtendedProperties");
        }
        m.body = MessageBody::Json(Arc::new(stored));
    }
    let immutable = req.immutable_ids();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let target = match folder {
            Some(f) => resolve_folder(state, mb, f),
            None => mb.well_known("drafts"),
        };
        let Some(target) = target else {
            return GraphResponse::exchange_not_found();
        };
        m.folder = target;
        m.serial = u32::try_from(mb.messages.len()).unwrap_or(u32::MAX);
        let serial = m.serial;
        mb.messages.push(Some(m));
        match mb.message(serial) {
            Some(m) => {
                let mut v = message_json(state, mb, owner, m, immutable);
                v["@odata.context"] = Value::String(format!(
                    "{}/$metadata#users('{}')/messages/$entity",
                    state.graph(),
                    owner.address
                ));
                GraphResponse::json(201, v)
            }
            None => GraphResponse::exchange_not_found(),
        }
    })
}

/// `GET /users/{u}/mailFolders/delta`: the whole folder hierarchy, flattened.
fn folder_delta(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    idx: u32,
    owner: &Person,
) -> GraphResponse {
    let graph = state.graph();
    let url = format!("{graph}/users/{}/mailFolders/delta", owner.address);
    let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 100, 1000) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let hidden = req
        .param("includeHiddenFolders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    state.tenant.with_mailbox(cell, |mb| {
        let removed = mb.folder_log.since(cursor.since).map(|it| {
            it.map(|r| (i64::from(r.serial), json!({"@odata.type": "#microsoft.graph.mailFolder", "id": folder_id(state, idx, r.serial), "@removed": {"reason": "deleted"}})))
                .collect::<Vec<_>>()
        });
        let live: Vec<crate::odata::LiveEntry<'_>> = mb
            .folders
            .iter()
            .flatten()
            .filter(|f| f.parent.is_some() && (hidden || !f.hidden))
            .map(|f| {
                let r: Box<dyn Fn() -> Value + '_> = Box::new(move || {
                    let mut v = folder_json(state, mb, f);
                    v["@odata.type"] = json!("#microsoft.graph.mailFolder");
                    v
                });
                (i64::from(f.serial), f.changed_seq, r)
            })
            .collect();
        crate::odata::run_delta(&url, &format!("{graph}/$metadata#Collection(mailFolder)"), cursor, live, removed, "syncStateNotFound")
    })
}
