//! The control API under `/_sim/` (loopback only, no token): mutate the tenant, set limits
//! and faults, read and reset counters, snapshot content.
//!
//! | Route | Body / query | Effect |
//! |---|---|---|
//! | `GET health` | | `ok` |
//! | `GET counters` | | requests (total, by kind, by mailbox), highest concurrency per mailbox, 429s, faults, tokens, bytes and content bytes served |
//! | `POST counters/reset` | | zeroes the counters |
//! | `GET`/`PUT throttle` | [`ThrottleConfig`] JSON | limits; `enabled: false` turns throttling off |
//! | `GET`/`PUT`/`POST`/`DELETE faults` | `PUT {"seed": n, "rules": [FaultRule…]}`, `POST FaultRule` | fault injection (kinds: `service_unavailable`, `gateway_timeout`, `too_many_requests`, `connection_reset`, `stall`, `truncated_body`, `malformed_json`, `resync_required`, `item_not_found`) |
//! | `POST latency` | `{"ms": n}` | service time added to each Graph request (makes concurrency observable) |
//! | `POST token-lifetime` | `{"seconds": n}` | lifetime of tokens issued from now on |
//! | `POST apps` | `{"roles": [...], "password": "…"}` | registers another app; answers `app_id`, `cert_pfx`, `cert_password` (empty roles = no consent) |
//! | `POST materialize` | | generates every lazy mailbox and drive now |
//! | `GET snapshot` | `?user=upn&drive=id&content=false` | content hashes: `mail[upn][folder path][immutable id]`, `drives[drive id][path]`, `events[upn][id]`, `contacts[upn][id]` |
//! | `POST mutate` | one operation object or an array | see below; answers `{"results": [...]}` |
//! | `registration`, `device…`, `applications` | | app registration: see the `register_control` module |
//!
//! Operations (`"op"`): `add_message {user, folder?, mime_base64?}`, `modify_message {user, id,
//! isRead?, flag?}`, `move_message {user, id, destination}`, `delete_message {user, id}`,
//! `add_folder {user, parent?, name, hidden?}`, `delete_folder {user, id}`, `add_file {drive,
//! parent?, name, size?, seed?, content?}`, `add_drive_folder {drive, parent?, name}`,
//! `modify_file {drive, id, size?}` (new version), `move_file|rename_file {drive, id, parent?,
//! name?}`, `delete_file {drive, id}`, `add_event|add_contact {user, event?}`,
//! `modify_event|modify_contact|delete_event|delete_contact {user, id}`,
//! `add_channel_message {team, channel, text?}`, `reply_channel_message {team, channel, id,
//! text?}`, `modify_channel_message|delete_channel_message {team, channel, id, text?}`,
//! `add_user {display_name, upn_local, kind?: member|shared|no_mailbox}`, `modify_user {user,
//! display_name?, job_title?}`, `delete_user {user}`, `modify_group|delete_group {group,
//! display_name?}`, `delete_site {site}`, `expire_delta {drive}|{user}` (older delta tokens
//! answer 410). `user` is an id or UPN; `drive` a drive id or a user (their OneDrive); file
//! `parent`/`id` an item id or a path from the root.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::faults::FaultRule;
use crate::ids::{IMMUTABLE, OutlookKey, OutlookKind};
use crate::state::SimState;
use crate::tenant::{FileContent, FileVersion, Message, MessageBody, Removed, UserKind};
use crate::throttle::ThrottleConfig;
use crate::time_fmt::now;

fn bad(msg: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": msg}))
}

/// Handles `/_sim/{tail}`.
pub async fn handle(req: HttpRequest, body: Bytes, state: web::Data<SimState>) -> HttpResponse {
    if !req.peer_addr().is_some_and(|a| a.ip().is_loopback()) {
        return HttpResponse::Forbidden()
            .json(json!({"error": "the control API only answers loopback clients"}));
    }
    let tail = req
        .match_info()
        .get("tail")
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    let method = req.method().as_str().to_string();
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(&format!("invalid JSON: {e}")),
        }
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(resp) = crate::register_control::handle(&state, &method, &tail, &json_body) {
        return resp;
    }
    match (method.as_str(), tail.as_str()) {
        ("GET", "health") => HttpResponse::Ok().body("ok"),
        ("GET", "counters") => HttpResponse::Ok().json(state.counters.snapshot()),
        ("POST", "counters/reset") => {
            state.counters.reset();
            HttpResponse::NoContent().finish()
        }
        ("GET", "throttle") => HttpResponse::Ok().json(state.throttle.config.read().clone()),
        ("PUT" | "POST", "throttle") => match serde_json::from_value::<ThrottleConfig>(json_body) {
            Ok(c) => {
                *state.throttle.config.write() = c;
                state.throttle.reset();
                HttpResponse::NoContent().finish()
            }
            Err(e) => bad(&e.to_string()),
        },
        ("GET", "faults") => HttpResponse::Ok().json(state.faults.list()),
        ("PUT", "faults") => {
            let seed = json_body["seed"].as_u64().unwrap_or(state.tenant.seed);
            match serde_json::from_value::<Vec<FaultRule>>(json_body["rules"].clone()) {
                Ok(rules) => {
                    state.faults.set(rules, seed);
                    HttpResponse::NoContent().finish()
                }
                Err(e) => bad(&e.to_string()),
            }
        }
        ("POST", "faults") => match serde_json::from_value::<FaultRule>(json_body) {
            Ok(rule) => {
                state.faults.add(rule);
                HttpResponse::NoContent().finish()
            }
            Err(e) => bad(&e.to_string()),
        },
        ("DELETE", "faults") => {
            state.faults.set(Vec::new(), state.tenant.seed);
            HttpResponse::NoContent().finish()
        }
        ("POST", "latency") => {
            state
                .latency_ms
                .store(json_body["ms"].as_u64().unwrap_or(0), Ordering::Relaxed);
            HttpResponse::NoContent().finish()
        }
        ("POST", "token-lifetime") => match json_body["seconds"].as_i64() {
            Some(s) if s > 0 => {
                *state.entra.token_lifetime.write() = s;
                HttpResponse::NoContent().finish()
            }
            _ => bad("seconds must be a positive integer"),
        },
        ("POST", "apps") => {
            let roles: Vec<String> = json_body["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let password = json_body["password"]
                .as_str()
                .unwrap_or("extra-app")
                .to_string();
            match state.register_app(roles) {
                Ok((id, ck)) => {
                    let dir =
                        std::env::temp_dir().join(format!("graph-sim-apps-{}", std::process::id()));
                    let path = dir.join(format!("{id}.pfx"));
                    let written = std::fs::create_dir_all(&dir)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            crate::certs::write_pfx(&ck, &password, &path)
                                .map_err(|e| e.to_string())
                        });
                    match written {
                        Ok(()) => HttpResponse::Ok().json(json!({"app_id": id.to_string(), "cert_pfx": path.display().to_string(), "cert_password": password})),
                        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e})),
                    }
                }
                Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
            }
        }
        ("POST", "materialize") => {
            // Generates every lazy mailbox and drive now (warm-up before benchmarks, memory checks).
            let st = state.clone();
            let done = tokio::task::spawn_blocking(move || {
                let (users, drives): (Vec<u32>, Vec<u32>) = {
                    let dir = st.tenant.dir.read();
                    (
                        dir.users.iter().map(|u| u.idx).collect(),
                        dir.drives.iter().map(|d| d.idx).collect(),
                    )
                };
                let mut messages = 0usize;
                for u in users {
                    if let Some(cell) = st.tenant.mailbox(u) {
                        messages += st.tenant.with_mailbox(&cell, |mb| mb.messages.len());
                    }
                }
                let mut items = 0usize;
                for d in drives {
                    if let Some(cell) = st.tenant.drive(d) {
                        items += st.tenant.with_drive(&cell, |dr| dr.items.len());
                    }
                }
                json!({"messages": messages, "drive_items": items})
            })
            .await;
            match done {
                Ok(v) => HttpResponse::Ok().json(v),
                Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
            }
        }
        ("GET", "snapshot") => {
            let scope = crate::snapshot::Scope {
                user: q("user"),
                drive: q("drive"),
                file_content: q("content").as_deref() != Some("false"),
            };
            let st = state.clone();
            match tokio::task::spawn_blocking(move || crate::snapshot::snapshot(&st, &scope)).await
            {
                Ok(v) => HttpResponse::Ok().json(v),
                Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
            }
        }
        ("POST", "mutate") => {
            let ops = match &json_body {
                Value::Array(a) => a.clone(),
                v @ Value::Object(_) => vec![v.clone()],
                _ => return bad("expected an operation object or an array of them"),
            };
            let mut results = Vec::new();
            for op in &ops {
                match mutate(&state, op) {
                    Ok(v) => results.push(v),
                    Err(e) => {
                        return HttpResponse::BadRequest()
                            .json(json!({"error": e, "operation": op, "applied": results}));
                    }
                }
            }
            HttpResponse::Ok().json(json!({"results": results}))
        }
        _ => HttpResponse::NotFound()
            .json(json!({"error": format!("unknown control route {method} /_sim/{tail}")})),
    }
}

fn s<'a>(op: &'a Value, k: &str) -> Result<&'a str, String> {
    op[k]
        .as_str()
        .ok_or_else(|| format!("missing string field '{k}'"))
}

fn user_idx(state: &SimState, op: &Value) -> Result<u32, String> {
    let u = s(op, "user")?;
    state
        .tenant
        .find_user(u)
        .ok_or_else(|| format!("unknown user {u}"))
}

fn folder_serial(state: &SimState, mb: &crate::tenant::Mailbox, key: &str) -> Option<u32> {
    mb.well_known(key).or_else(|| {
        let k = state.tenant.codec.decode_outlook(key)?;
        (k.kind == OutlookKind::Folder && mb.folder(k.serial).is_some()).then_some(k.serial)
    })
}

fn message_serial(state: &SimState, mb: &crate::tenant::Mailbox, id: &str) -> Option<u32> {
    let k = state.tenant.codec.decode_outlook(id)?;
    let m = mb.message(k.serial)?;
    (k.kind == OutlookKind::Message && (k.sub == IMMUTABLE || k.sub == m.generation))
        .then_some(k.serial)
}

fn drive_idx(state: &SimState, op: &Value) -> Result<u32, String> {
    let d = s(op, "drive")?;
    if let Some(i) = state.tenant.codec.decode_drive(d) {
        return Ok(i);
    }
    // A user: their OneDrive.
    let u = state
        .tenant
        .find_user(d)
        .ok_or_else(|| format!("unknown drive {d}"))?;
    state
        .tenant
        .dir
        .read()
        .users
        .get(u as usize)
        .and_then(|u| u.drive)
        .ok_or_else(|| format!("user {d} has no drive"))
}

fn item_serial(state: &SimState, d: &crate::tenant::Drive, key: &str) -> Option<u32> {
    if key.is_empty() || key == "root" || key == "/" {
        return Some(0);
    }
    if let Some((_, s)) = state
        .tenant
        .codec
        .decode_drive_item(key)
        .filter(|(_, s)| d.item(*s).is_some())
    {
        return Some(s);
    }
    let mut cur = 0;
    for part in key.split('/').filter(|p| !p.is_empty()) {
        cur = d.child(cur, part)?.serial;
    }
    Some(cur)
}

#[allow(clippy::too_many_lines)]
fn mutate(state: &SimState, op: &Value) -> Result<Value, String> {
    let t = &state.tenant;
    let kind = s(op, "op")?;
    let seq = t.next_seq();
    match kind {
        "add_message" | "modify_message" | "move_message" | "delete_message" | "add_folder"
        | "delete_folder" => {
            let idx = user_idx(state, op)?;
            let cell = t.mailbox(idx).ok_or("user has no mailbox")?;
            t.with_mailbox_mut(&cell, |mb| match kind {
                "add_message" => {
                    let folder = folder_serial(state, mb, op["folder"].as_str().unwrap_or("inbox")).ok_or("unknown folder")?;
                    let serial = u32::try_from(mb.messages.len()).map_err(|e| e.to_string())?;
                    let n = now();
                    let body = match op["mime_base64"].as_str() {
                        Some(b) => {
                            use base64::Engine as _;
                            MessageBody::Mime(Bytes::from(base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| e.to_string())?))
                        }
                        None => MessageBody::Generated,
                    };
                    mb.messages.push(Some(Message { serial, folder, generation: 0, changed_seq: seq, seed: crate::rng::mix(t.seed ^ 0xADD, seq), received: n, sent: n - 30, modified: n, is_read: false, is_draft: false, flag: 0, body }));
                    Ok(json!({"id": state.tenant.codec.outlook(OutlookKey { kind: OutlookKind::Message, mailbox: idx, serial, sub: 0 }),
                        "immutable_id": state.tenant.codec.outlook(OutlookKey { kind: OutlookKind::Message, mailbox: idx, serial, sub: IMMUTABLE })}))
                }
                "modify_message" => {
                    let sn = message_serial(state, mb, s(op, "id")?).ok_or("unknown message")?;
                    let m = mb.messages.get_mut(sn as usize).and_then(Option::as_mut).ok_or("unknown message")?;
                    m.is_read = op["isRead"].as_bool().unwrap_or(!m.is_read);
                    if let Some(f) = op["flag"].as_str() {
                        m.flag = match f { "flagged" => 1, "complete" => 2, _ => 0 };
                    }
                    m.changed_seq = seq;
                    m.modified = now();
                    Ok(json!({"ok": true}))
                }
                "move_message" => {
                    let sn = message_serial(state, mb, s(op, "id")?).ok_or("unknown message")?;
                    let dest = folder_serial(state, mb, s(op, "destination")?).ok_or("unknown folder")?;
                    crate::mail::move_message(mb, sn, dest, seq);
                    let m = mb.message(sn).ok_or("unknown message")?;
                    Ok(json!({"id": crate::mail::message_id(state, idx, m, false), "immutable_id": crate::mail::message_id(state, idx, m, true)}))
                }
                "delete_message" => {
                    let sn = message_serial(state, mb, s(op, "id")?).ok_or("unknown message")?;
                    crate::mail::delete_message(mb, sn, seq);
                    Ok(json!({"ok": true}))
                }
                "add_folder" => {
                    let parent = folder_serial(state, mb, op["parent"].as_str().unwrap_or("msgfolderroot")).ok_or("unknown parent")?;
                    let serial = u32::try_from(mb.folders.len()).map_err(|e| e.to_string())?;
                    mb.folders.push(Some(crate::tenant::MailFolder { serial, parent: Some(parent), name: s(op, "name")?.to_string(), well_known: None, hidden: op["hidden"].as_bool().unwrap_or(false), changed_seq: seq, log: Default::default() }));
                    Ok(json!({"id": state.tenant.codec.outlook(OutlookKey { kind: OutlookKind::Folder, mailbox: idx, serial, sub: 0 })}))
                }
                _ => {
                    let f = folder_serial(state, mb, s(op, "id")?).ok_or("unknown folder")?;
                    if mb.folder(f).is_some_and(|f| f.well_known.is_some()) {
                        return Err("well-known folders cannot be deleted".to_string());
                    }
                    let mut doomed = vec![f];
                    let mut i = 0;
                    while i < doomed.len() {
                        let p = doomed[i];
                        doomed.extend(mb.folders.iter().flatten().filter(|c| c.parent == Some(p)).map(|c| c.serial));
                        i += 1;
                    }
                    let msgs: Vec<u32> = mb.messages.iter().flatten().filter(|m| doomed.contains(&m.folder)).map(|m| m.serial).collect();
                    for m in msgs {
                        crate::mail::delete_message(mb, m, seq);
                    }
                    for d in doomed {
                        if let Some(slot) = mb.folders.get_mut(d as usize) {
                            *slot = None;
                        }
                        mb.folder_log.push(Removed { seq, serial: d, sub: 0, id: String::new(), name: String::new() });
                    }
                    Ok(json!({"ok": true}))
                }
            })
        }
        "add_file" | "modify_file" | "move_file" | "rename_file" | "delete_file"
        | "add_drive_folder" => {
            let d = drive_idx(state, op)?;
            let cell = t.drive(d).ok_or("unknown drive")?;
            t.with_drive_mut(&cell, |dr| match kind {
                "add_file" | "add_drive_folder" => {
                    let parent = item_serial(state, dr, op["parent"].as_str().unwrap_or("root"))
                        .ok_or("unknown parent")?;
                    let name = s(op, "name")?;
                    if kind == "add_drive_folder" {
                        let sn = crate::files::add_item(
                            dr,
                            parent,
                            name,
                            true,
                            Vec::new(),
                            seq,
                            (None, None),
                        );
                        return Ok(json!({"id": t.codec.drive_item(d, sn)}));
                    }
                    let size = op["size"].as_u64().unwrap_or(1024);
                    let content = match op["content"].as_str() {
                        Some(c) => FileContent::Stored(Bytes::from(c.as_bytes().to_vec())),
                        None => FileContent::Generated {
                            seed: op["seed"]
                                .as_u64()
                                .unwrap_or_else(|| crate::rng::mix(t.seed, seq)),
                            text: false,
                        },
                    };
                    let size = match &content {
                        FileContent::Stored(b) => b.len() as u64,
                        FileContent::Spooled(f) => f.len(),
                        FileContent::Generated { .. } => size,
                    };
                    let (sn, _) = crate::files::put_file(
                        dr,
                        parent,
                        name,
                        "fail",
                        content,
                        size,
                        (None, None),
                        seq,
                    )
                    .map_err(|e| format!("{:?}", e.body))?;
                    Ok(json!({"id": t.codec.drive_item(d, sn)}))
                }
                "modify_file" => {
                    let sn = item_serial(state, dr, s(op, "id")?).ok_or("unknown item")?;
                    let parent = dr.item(sn).and_then(|i| i.parent).ok_or("unknown item")?;
                    let name = dr.item(sn).map(|i| i.name.clone()).ok_or("unknown item")?;
                    let size = op["size"].as_u64().unwrap_or(2048);
                    crate::files::put_file(
                        dr,
                        parent,
                        &name,
                        "replace",
                        FileContent::Generated {
                            seed: crate::rng::mix(t.seed ^ 0xF11E, seq),
                            text: false,
                        },
                        size,
                        (None, None),
                        seq,
                    )
                    .map_err(|e| format!("{:?}", e.body))?;
                    Ok(json!({"id": t.codec.drive_item(d, sn)}))
                }
                "move_file" | "rename_file" => {
                    let sn = item_serial(state, dr, s(op, "id")?).ok_or("unknown item")?;
                    let new_parent = match op["parent"].as_str() {
                        Some(p) => Some(item_serial(state, dr, p).ok_or("unknown parent")?),
                        None => None,
                    };
                    let it = dr
                        .items
                        .get_mut(sn as usize)
                        .and_then(Option::as_mut)
                        .ok_or("unknown item")?;
                    if let Some(p) = new_parent {
                        it.parent = Some(p);
                    }
                    if let Some(n) = op["name"].as_str() {
                        it.name = n.to_string();
                    }
                    it.changed_seq = seq;
                    it.etag += 1;
                    Ok(json!({"id": t.codec.drive_item(d, sn)}))
                }
                _ => {
                    let sn = item_serial(state, dr, s(op, "id")?).ok_or("unknown item")?;
                    if sn == 0 {
                        return Err("the root cannot be deleted".into());
                    }
                    crate::files::delete_item(state, dr, sn, seq);
                    Ok(json!({"ok": true}))
                }
            })
        }
        "add_event" | "modify_event" | "delete_event" | "add_contact" | "modify_contact"
        | "delete_contact" => {
            let idx = user_idx(state, op)?;
            let cell = t.mailbox(idx).ok_or("user has no mailbox")?;
            t.with_mailbox_mut(&cell, |mb| {
                let decode = |id: &str, k: OutlookKind| t.codec.decode_outlook(id).filter(|x| x.kind == k && x.mailbox == idx).map(|x| x.serial);
                match kind {
                    "add_event" => {
                        let serial = u32::try_from(mb.events.len()).map_err(|e| e.to_string())?;
                        let json = op.get("event").cloned().map(std::sync::Arc::new);
                        mb.events.push(Some(crate::tenant::Event { serial, calendar: 0, changed_seq: seq, seed: crate::rng::mix(t.seed ^ 0xE4E, seq), json, modified: now() }));
                        Ok(json!({"id": t.codec.outlook(OutlookKey { kind: OutlookKind::Event, mailbox: idx, serial, sub: 0 })}))
                    }
                    "modify_event" => {
                        let sn = decode(s(op, "id")?, OutlookKind::Event).ok_or("unknown event")?;
                        let e = mb.events.get_mut(sn as usize).and_then(Option::as_mut).ok_or("unknown event")?;
                        e.seed = crate::rng::mix(e.seed, seq);
                        e.changed_seq = seq;
                        e.modified = now();
                        Ok(json!({"ok": true}))
                    }
                    "delete_event" => {
                        let sn = decode(s(op, "id")?, OutlookKind::Event).ok_or("unknown event")?;
                        crate::calendar::delete_event(state, mb, sn, seq);
                        Ok(json!({"ok": true}))
                    }
                    "add_contact" => {
                        let serial = u32::try_from(mb.contacts.len()).map_err(|e| e.to_string())?;
                        mb.contacts.push(Some(crate::tenant::Contact { serial, folder: 0, changed_seq: seq, seed: crate::rng::mix(t.seed ^ 0xC0C, seq), json: None, modified: now() }));
                        Ok(json!({"id": t.codec.outlook(OutlookKey { kind: OutlookKind::Contact, mailbox: idx, serial, sub: 0 })}))
                    }
                    "modify_contact" => {
                        let sn = decode(s(op, "id")?, OutlookKind::Contact).ok_or("unknown contact")?;
                        let c = mb.contacts.get_mut(sn as usize).and_then(Option::as_mut).ok_or("unknown contact")?;
                        c.seed = crate::rng::mix(c.seed, seq);
                        c.changed_seq = seq;
                        c.modified = now();
                        Ok(json!({"ok": true}))
                    }
                    _ => {
                        let sn = decode(s(op, "id")?, OutlookKind::Contact).ok_or("unknown contact")?;
                        crate::contacts::delete_contact(state, mb, sn, seq);
                        Ok(json!({"ok": true}))
                    }
                }
            })
        }
        "add_channel_message"
        | "reply_channel_message"
        | "modify_channel_message"
        | "delete_channel_message" => {
            let which = match kind {
                "add_channel_message" => "add",
                "reply_channel_message" => "reply",
                "modify_channel_message" => "modify",
                _ => "delete",
            };
            crate::teams::control_message(
                state,
                s(op, "team")?,
                s(op, "channel")?,
                which,
                op["id"].as_str(),
                op["text"].as_str(),
            )
            .map(|id| json!({"id": id}))
        }
        "add_thread" | "add_post" | "delete_thread" => {
            crate::conversations::control(state, kind, op)
        }
        "add_user" => {
            let k = match op["kind"].as_str() {
                Some("shared") => UserKind::Shared,
                Some("no_mailbox") => UserKind::NoMailbox,
                _ => UserKind::Member,
            };
            let idx = t.add_user(s(op, "display_name")?, s(op, "upn_local")?, k);
            let dir = t.dir.read();
            let u = dir.users.get(idx as usize).ok_or("user vanished")?;
            Ok(json!({"id": u.id.to_string(), "userPrincipalName": u.upn}))
        }
        "modify_user" | "delete_user" => {
            let idx = user_idx(state, op)?;
            let mut dir = t.dir.write();
            let u = dir.users.get_mut(idx as usize).ok_or("unknown user")?;
            u.changed_seq = seq;
            if kind == "delete_user" {
                u.deleted = true;
                let r = Removed {
                    seq,
                    serial: idx,
                    sub: 0,
                    id: u.id.to_string(),
                    name: String::new(),
                };
                dir.user_log.push(r);
            } else {
                if let Some(n) = op["display_name"].as_str() {
                    u.display_name = n.to_string();
                }
                if let Some(j) = op["job_title"].as_str() {
                    u.job_title = Some(j.to_string());
                }
            }
            Ok(json!({"ok": true}))
        }
        "modify_group" | "delete_group" => {
            let g = t.find_group(s(op, "group")?).ok_or("unknown group")?;
            let mut dir = t.dir.write();
            let grp = dir.groups.get_mut(g as usize).ok_or("unknown group")?;
            grp.changed_seq = seq;
            if kind == "delete_group" {
                grp.deleted = true;
                let r = Removed {
                    seq,
                    serial: g,
                    sub: 0,
                    id: grp.id.to_string(),
                    name: String::new(),
                };
                dir.group_log.push(r);
            } else if let Some(n) = op["display_name"].as_str() {
                grp.display_name = n.to_string();
            }
            Ok(json!({"ok": true}))
        }
        "delete_site" => {
            let id = s(op, "site")?;
            let mut dir = t.dir.write();
            let site = dir
                .sites
                .iter_mut()
                .find(|x| x.id.eq_ignore_ascii_case(id))
                .ok_or("unknown site")?;
            site.deleted = true;
            site.changed_seq = seq;
            let drives = site.drives.clone();
            for d in drives {
                if let Some(dr) = dir.drives.get_mut(d as usize) {
                    dr.deleted = true;
                }
            }
            Ok(json!({"ok": true}))
        }
        "expire_delta" => {
            if let Ok(d) = drive_idx(state, op) {
                let cell = t.drive(d).ok_or("unknown drive")?;
                t.with_drive_mut(&cell, |dr| dr.log.expire_before(seq));
                return Ok(json!({"ok": true}));
            }
            let idx = user_idx(state, op)?;
            let cell = t.mailbox(idx).ok_or("user has no mailbox")?;
            t.with_mailbox_mut(&cell, |mb| {
                for f in mb.folders.iter_mut().flatten() {
                    f.log.expire_before(seq);
                }
                for f in mb.contact_folders.iter_mut().flatten() {
                    f.log.expire_before(seq);
                }
                mb.event_log.expire_before(seq);
            });
            Ok(json!({"ok": true}))
        }
        _ => Err(format!("unknown operation {kind}")),
    }
}

#[allow(dead_code)]
fn unused(_: FileVersion) {}
