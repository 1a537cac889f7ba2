//! OneDrive and SharePoint document libraries: drives, items, children, delta, versions,
//! pre-authenticated streamed downloads with ranges, simple uploads and upload sessions.

use actix_web::body::SizedStream;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Value, json};

use crate::content::fill_file;
use crate::http::{GraphRequest, GraphResponse, Method, error_body};
use crate::odata::{LiveEntry, apply_select, page};
use crate::state::{SimState, UploadSession};
use crate::tenant::{Drive, DriveItem, DriveOwner, FileContent, FileVersion, Removed};
use crate::time_fmt::{iso, now};

/// Id shown for the account that modified generated items.
const SYSTEM_ACCOUNT: &str = "c3e5e0a2-6f7b-4d55-9c1e-0b5a2f1d7e11";

/// Largest simple upload (bytes).
pub const SIMPLE_UPLOAD_MAX: usize = 4 * 1024 * 1024;
/// Upload-session fragments must be multiples of this (except the last).
pub const FRAGMENT_UNIT: u64 = 320 * 1024;

/// JSON of a drive.
pub fn drive_json(state: &SimState, idx: u32) -> Option<Value> {
    let dir = state.tenant.dir.read();
    let d = dir.drives.get(idx as usize).filter(|d| !d.deleted)?;
    let (owner, web, dtype) = match d.owner {
        DriveOwner::User(u) => {
            let user = dir.users.get(u as usize)?;
            (
                json!({"user": {"id": user.id.to_string(), "displayName": user.display_name, "email": user.upn}}),
                format!(
                    "https://contoso-my.sharepoint.com/personal/{}/Documents",
                    user.upn.replace(['@', '.'], "_")
                ),
                "business",
            )
        }
        DriveOwner::Site(s) => {
            let site = dir.sites.get(s as usize)?;
            let group = site.group.and_then(|g| dir.groups.get(g as usize));
            let owner = match group {
                Some(g) => {
                    json!({"group": {"id": g.id.to_string(), "displayName": g.display_name, "email": format!("{}@{}", g.nickname, state.tenant.domain)}})
                }
                None => json!({"user": {"id": SYSTEM_ACCOUNT, "displayName": "System Account"}}),
            };
            (
                owner,
                format!(
                    "https://{}/sites/{}/{}",
                    site.id.split(',').next().unwrap_or(""),
                    site.name,
                    crate::http::encode_segment(&d.name)
                ),
                "documentLibrary",
            )
        }
    };
    Some(json!({
        "id": d.id, "driveType": dtype, "name": d.name, "description": "",
        "createdDateTime": iso(crate::tenant::BASE_TIME - 700 * 86_400), "lastModifiedDateTime": iso(crate::tenant::BASE_TIME),
        "webUrl": web, "owner": owner,
        "quota": {"deleted": 0, "remaining": 1_099_511_627_776u64, "state": "normal", "total": 1_099_511_627_776u64, "used": 0},
    }))
}

/// `GET` of a drive.
pub fn drive_response(state: &SimState, idx: u32) -> GraphResponse {
    match drive_json(state, idx) {
        Some(mut v) => {
            v["@odata.context"] =
                Value::String(format!("{}/$metadata#drives/$entity", state.graph()));
            GraphResponse::ok(v)
        }
        None => GraphResponse::item_not_found(),
    }
}

/// `/users/{u}/drive…`.
pub fn user_drive(state: &SimState, req: &GraphRequest, user: u32, rest: &[&str]) -> GraphResponse {
    let drive = state
        .tenant
        .dir
        .read()
        .users
        .get(user as usize)
        .and_then(|u| u.drive);
    match drive {
        None => GraphResponse::error(404, "ResourceNotFound", "User's mysite not found."),
        Some(d) if rest.is_empty() && req.method == Method::Get => drive_response(state, d),
        Some(d) => route(state, req, d, rest),
    }
}

fn item_id(state: &SimState, drive: u32, serial: u32) -> String {
    state.tenant.codec.drive_item(drive, serial)
}

fn item_json(
    state: &SimState,
    d: &Drive,
    drive_id: &str,
    item: &DriveItem,
    with_url: bool,
) -> Value {
    let id = item_id(state, d.idx, item.serial);
    let etag = format!("\"{{{}}},{}\"", &id[2..], item.etag);
    let ctag = format!("\"c:{{{}}},{}\"", &id[2..], item.ctag);
    let mut v = json!({
        "@odata.type": "#microsoft.graph.driveItem",
        "id": id, "name": if item.parent.is_none() { "root".to_string() } else { item.name.clone() },
        "eTag": etag, "cTag": ctag,
        "createdDateTime": iso(item.created), "lastModifiedDateTime": iso(item.modified),
        "webUrl": format!("https://contoso.sharepoint.com/{}", crate::http::encode_segment(&d.path(item.serial))),
        "size": item.current().map_or(0, |v| v.size),
        "createdBy": {"user": {"id": SYSTEM_ACCOUNT, "displayName": "System Account"}},
        "lastModifiedBy": {"user": {"id": SYSTEM_ACCOUNT, "displayName": "System Account"}},
        "fileSystemInfo": {"createdDateTime": iso(item.fs_created), "lastModifiedDateTime": iso(item.fs_modified)},
    });
    if let Some(p) = item.parent {
        let path = d.path(p);
        v["parentReference"] = json!({"driveType": "business", "driveId": drive_id, "id": item_id(state, d.idx, p),
            "path": if path.is_empty() { "/drive/root:".to_string() } else { format!("/drive/root:/{path}") }});
    } else {
        v["root"] = json!({});
        v["parentReference"] = json!({"driveType": "business", "driveId": drive_id});
    }
    if item.is_folder {
        let count = d
            .items
            .iter()
            .flatten()
            .filter(|c| c.parent == Some(item.serial))
            .count();
        v["folder"] = json!({"childCount": count});
    } else if let Some(cur) = item.current() {
        v["file"] = json!({"mimeType": crate::content::mime_type(&item.name), "hashes": {"quickXorHash": URL_SAFE_NO_PAD.encode(crate::rng::mix(cur.size, u64::from(item.ctag)).to_le_bytes())}});
        if with_url {
            v["@microsoft.graph.downloadUrl"] =
                Value::String(download_url(state, d.idx, item.serial, cur.number));
        }
    }
    v
}

/// A pre-authenticated, expiring download URL.
pub fn download_url(state: &SimState, drive: u32, serial: u32, version: u32) -> String {
    let exp = now() + 3600;
    let payload = format!("{drive}.{serial}.{version}.{exp}");
    let sig = sign(state, payload.as_bytes());
    format!(
        "{}/_dl/{}.{}",
        state.base,
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(&sig[..16])
    )
}

fn sign(state: &SimState, data: &[u8]) -> Vec<u8> {
    let mut h = blake3::Hasher::new_keyed(&key32(&state.url_key));
    h.update(data);
    h.finalize().as_bytes().to_vec()
}

fn key32(k: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in k.iter().take(32).enumerate() {
        out[i] = *b;
    }
    out
}

/// Resolves `items/{id}`, `root`, `root:/path:` and `items/{id}:/path:` addressing to a serial;
/// returns the serial and how many segments were consumed. For a path that does not exist yet,
/// returns the parent and the missing name.
fn resolve(
    state: &SimState,
    d: &Drive,
    segs: &[&str],
) -> Result<(u32, usize, Option<String>), GraphResponse> {
    let (mut serial, mut used) = match segs {
        ["root", ..] => (0, 1),
        ["items", id, ..] => match state.tenant.codec.decode_drive_item(id) {
            Some((dr, s)) if dr == d.idx && d.item(s).is_some() => (s, 2),
            _ if *id == "root" => (0, 2),
            _ => return Err(GraphResponse::item_not_found()),
        },
        _ => return Err(GraphResponse::bad_url(segs.first().copied().unwrap_or(""))),
    };
    if let Some(path) = segs.get(used).and_then(|s| s.strip_prefix(':')) {
        used += 1;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            match d.child(serial, part) {
                Some(c) => serial = c.serial,
                None if i + 1 == parts.len() => {
                    return Ok((serial, used, Some((*part).to_string())));
                }
                None => return Err(GraphResponse::item_not_found()),
            }
        }
    }
    Ok((serial, used, None))
}

/// Routes `/drives/{d}/…`.
pub fn route(state: &SimState, req: &GraphRequest, drive: u32, rest: &[&str]) -> GraphResponse {
    if rest.is_empty() {
        return if req.method == Method::Get {
            drive_response(state, drive)
        } else {
            GraphResponse::bad_url("drive")
        };
    }
    let Some(cell) = state.tenant.drive(drive) else {
        return GraphResponse::item_not_found();
    };
    let drive_id = state.tenant.codec.drive(drive);
    let graph = state.graph();
    if req.method != Method::Get {
        return write(state, req, drive, rest);
    }
    state.tenant.with_drive(&cell, |d| {
        let (serial, used, missing) = match resolve(state, d, rest) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if missing.is_some() {
            return GraphResponse::item_not_found();
        }
        let Some(item) = d.item(serial) else { return GraphResponse::item_not_found() };
        let tail: Vec<&str> = rest[used..].to_vec();
        match tail.as_slice() {
            [] => {
                let mut v = item_json(state, d, &drive_id, item, true);
                apply_select(&mut v, req.param("select"));
                GraphResponse::ok(v)
            }
            ["children"] => {
                let items: Vec<Value> = d.items.iter().flatten().filter(|c| c.parent == Some(serial)).map(|c| item_json(state, d, &drive_id, c, true)).collect();
                page(req, &format!("{graph}/drives/{drive_id}/items/{}/children", item_id(state, drive, serial)), &format!("{graph}/$metadata#drives('{drive_id}')/items"), items, 200, 999)
            }
            ["content"] => match item.current() {
                Some(v) => GraphResponse::empty(302).with_header("Location", download_url(state, drive, serial, v.number)),
                None => GraphResponse::error(400, "invalidRequest", "Folders have no content."),
            },
            ["versions"] => {
                let items: Vec<Value> = item
                    .versions
                    .iter()
                    .rev()
                    .map(|v| json!({"@microsoft.graph.downloadUrl": download_url(state, drive, serial, v.number), "id": format!("{}.0", v.number),
                        "lastModifiedBy": {"user": {"id": SYSTEM_ACCOUNT, "displayName": "System Account"}}, "lastModifiedDateTime": iso(v.modified), "size": v.size}))
                    .collect();
                page(req, &format!("{graph}/drives/{drive_id}/items/{}/versions", item_id(state, drive, serial)), &format!("{graph}/$metadata#drives('{drive_id}')/items('{}')/versions", item_id(state, drive, serial)), items, 200, 999)
            }
            ["versions", vid, "content"] => {
                let n: u32 = vid.trim_end_matches(".0").parse().unwrap_or(0);
                match item.versions.iter().find(|v| v.number == n) {
                    Some(v) => GraphResponse::empty(302).with_header("Location", download_url(state, drive, serial, v.number)),
                    None => GraphResponse::item_not_found(),
                }
            }
            ["delta"] => delta(state, req, d, &drive_id),
            _ => GraphResponse::bad_url(tail.last().copied().unwrap_or("")),
        }
    })
}

fn delta(state: &SimState, req: &GraphRequest, d: &Drive, drive_id: &str) -> GraphResponse {
    let graph = state.graph();
    let url = format!("{graph}/drives/{drive_id}/root/delta");
    let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 200, 999) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let removed = d.log.since(cursor.since).map(|it| {
        it.map(|r| (i64::from(r.serial), json!({"@odata.type": "#microsoft.graph.driveItem", "id": r.id, "name": r.name, "deleted": {"state": "deleted"},
            "parentReference": {"driveId": drive_id, "driveType": "business"}, "file": {}})))
            .collect::<Vec<_>>()
    });
    let live: Vec<LiveEntry<'_>> = d
        .items
        .iter()
        .flatten()
        .map(|i| {
            let f: Box<dyn Fn() -> Value + '_> = Box::new(move || {
                let mut v = item_json(state, d, drive_id, i, false);
                // Delta does not carry parentReference.path.
                if let Some(p) = v.get_mut("parentReference").and_then(Value::as_object_mut) {
                    p.remove("path");
                }
                v
            });
            (i64::from(i.serial), i.changed_seq, f)
        })
        .collect();
    let mut resp = crate::odata::run_delta(
        &url,
        &format!("{graph}/$metadata#Collection(driveItem)"),
        cursor,
        live,
        removed,
        "resyncRequired",
    );
    // Drive delta links use `token=` as OneDrive prints them.
    if let crate::http::Body::Json(Value::Object(m)) = &mut resp.body {
        for k in ["@odata.nextLink", "@odata.deltaLink"] {
            if let Some(Value::String(s)) = m.get_mut(k) {
                *s = s.replace("?$deltatoken=", "?token=");
            }
        }
    }
    resp
}

fn write(state: &SimState, req: &GraphRequest, drive: u32, rest: &[&str]) -> GraphResponse {
    let Some(cell) = state.tenant.drive(drive) else {
        return GraphResponse::item_not_found();
    };
    let drive_id = state.tenant.codec.drive(drive);
    let seq = state.tenant.next_seq();
    state.tenant.with_drive_mut(&cell, |d| {
        let (serial, used, missing) = match resolve(state, d, rest) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let tail: Vec<&str> = rest[used..].to_vec();
        match (req.method, tail.as_slice()) {
            (Method::Put, ["content"]) => {
                if req.body.len() > SIMPLE_UPLOAD_MAX {
                    return GraphResponse::error(413, "requestTooLarge", "Simple uploads are limited to 4 MiB; use an upload session.");
                }
                let conflict = req.param("@microsoft.graph.conflictBehavior").unwrap_or("replace").to_string();
                let (parent, name) = match missing {
                    Some(n) => (serial, n),
                    None => match d.item(serial) {
                        Some(i) if !i.is_folder => (i.parent.unwrap_or(0), i.name.clone()),
                        _ => return GraphResponse::error(400, "invalidRequest", "Cannot upload content to a folder."),
                    },
                };
                match put_file(d, parent, &name, &conflict, FileContent::Stored(req.body.clone()), req.body.len() as u64, (None, None), seq) {
                    Ok((s, created)) => match d.item(s) {
                        Some(i) => GraphResponse::json(if created { 201 } else { 200 }, item_json(state, d, &drive_id, i, true)),
                        None => GraphResponse::item_not_found(),
                    },
                    Err(e) => e,
                }
            }
            (Method::Post, ["createUploadSession"]) => {
                let body: Value = if req.body.is_empty() { json!({}) } else { req.json().unwrap_or_else(|_| json!({})) };
                let item = &body["item"];
                let conflict = item["@microsoft.graph.conflictBehavior"].as_str().unwrap_or("replace").to_string();
                let (parent, name) = match missing {
                    Some(n) => (serial, n),
                    None => match d.item(serial) {
                        Some(i) if !i.is_folder => (i.parent.unwrap_or(0), i.name.clone()),
                        _ => return GraphResponse::error(400, "invalidRequest", "An upload session needs a file name."),
                    },
                };
                if conflict == "fail" && d.child(parent, &name).is_some() {
                    return GraphResponse::error(409, "nameAlreadyExists", "The specified item name already exists.");
                }
                let fs = &item["fileSystemInfo"];
                let fs_info = (fs["createdDateTime"].as_str().and_then(crate::time_fmt::parse_iso), fs["lastModifiedDateTime"].as_str().and_then(crate::time_fmt::parse_iso));
                let spool = match crate::spool::SpoolWriter::create(&state.spool_dir) {
                    Ok(s) => s,
                    Err(e) => return GraphResponse::error(500, "generalException", &format!("The upload could not be started: {e}")),
                };
                let id = uuid::Uuid::new_v4().simple().to_string();
                let expires = now() + 3600;
                state.uploads.lock().insert(id.clone(), UploadSession {
                    drive, parent, name, conflict,
                    total: item["fileSize"].as_u64(), data: spool, expires, fs_info,
                });
                GraphResponse::ok(json!({"uploadUrl": format!("{}/_up/{id}", state.base), "expirationDateTime": crate::time_fmt::iso_ms(expires * 1000), "nextExpectedRanges": ["0-"]}))
            }
            (Method::Post, ["children"]) => {
                let body = match req.json() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let Some(name) = body["name"].as_str().filter(|n| valid_name(n)) else {
                    return GraphResponse::error(400, "invalidRequest", "Invalid name.");
                };
                let conflict = body["@microsoft.graph.conflictBehavior"].as_str().unwrap_or("fail");
                if let Some(existing) = d.child(serial, name) {
                    if conflict == "fail" {
                        return GraphResponse::error(409, "nameAlreadyExists", "The specified item name already exists.");
                    }
                    if existing.is_folder && conflict == "replace" {
                        let s = existing.serial;
                        return match d.item(s) {
                            Some(i) => GraphResponse::json(201, item_json(state, d, &drive_id, i, false)),
                            None => GraphResponse::item_not_found(),
                        };
                    }
                }
                let name = free_name(d, serial, name, conflict);
                let s = add_item(d, serial, &name, true, Vec::new(), seq, (None, None));
                match d.item(s) {
                    Some(i) => GraphResponse::json(201, item_json(state, d, &drive_id, i, false)),
                    None => GraphResponse::item_not_found(),
                }
            }
            (Method::Patch, []) => {
                let body = match req.json() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let new_parent = body["parentReference"]["id"].as_str().and_then(|p| state.tenant.codec.decode_drive_item(p)).map(|(_, s)| s);
                let Some(Some(item)) = d.items.get_mut(serial as usize) else { return GraphResponse::item_not_found() };
                if let Some(n) = body["name"].as_str() {
                    item.name = n.to_string();
                }
                if let Some(p) = new_parent {
                    item.parent = Some(p);
                }
                let fs = &body["fileSystemInfo"];
                if let Some(t) = fs["createdDateTime"].as_str().and_then(crate::time_fmt::parse_iso) {
                    item.fs_created = t;
                }
                if let Some(t) = fs["lastModifiedDateTime"].as_str().and_then(crate::time_fmt::parse_iso) {
                    item.fs_modified = t;
                }
                item.changed_seq = seq;
                item.etag += 1;
                item.modified = now();
                match d.item(serial) {
                    Some(i) => GraphResponse::ok(item_json(state, d, &drive_id, i, false)),
                    None => GraphResponse::item_not_found(),
                }
            }
            (Method::Delete, []) => {
                if serial == 0 {
                    return GraphResponse::error(403, "accessDenied", "The root cannot be deleted.");
                }
                delete_item(state, d, serial, seq);
                GraphResponse::empty(204)
            }
            _ => GraphResponse::bad_url(tail.last().copied().unwrap_or("")),
        }
    })
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && !n.contains(['/', '\\', ':', '*', '?', '"', '<', '>', '|'])
}

fn free_name(d: &Drive, parent: u32, name: &str, conflict: &str) -> String {
    if conflict != "rename" || d.child(parent, name).is_none() {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(p) if p > 0 => (&name[..p], &name[p..]),
        _ => (name, ""),
    };
    (1..)
        .map(|n| format!("{stem} {n}{ext}"))
        .find(|c| d.child(parent, c).is_none())
        .unwrap_or_else(|| name.to_string())
}

/// Adds an item; returns its serial.
pub fn add_item(
    d: &mut Drive,
    parent: u32,
    name: &str,
    folder: bool,
    versions: Vec<FileVersion>,
    seq: u64,
    fs: (Option<i64>, Option<i64>),
) -> u32 {
    let serial = u32::try_from(d.items.len()).unwrap_or(u32::MAX);
    let t = now();
    d.items.push(Some(DriveItem {
        serial,
        parent: Some(parent),
        name: name.to_string(),
        created: t,
        modified: t,
        fs_created: fs.0.unwrap_or(t),
        fs_modified: fs.1.unwrap_or(t),
        changed_seq: seq,
        etag: 1,
        ctag: 1,
        versions,
        is_folder: folder,
    }));
    touch_ancestors(d, parent, seq);
    serial
}

fn touch_ancestors(d: &mut Drive, mut serial: u32, seq: u64) {
    loop {
        let Some(Some(i)) = d.items.get_mut(serial as usize) else {
            return;
        };
        i.changed_seq = seq;
        match i.parent {
            Some(p) => serial = p,
            None => return,
        }
    }
}

/// Writes a file (new or new version) honouring the conflict behaviour; returns (serial, created).
///
/// # Errors
/// 409 `nameAlreadyExists` for `fail` when the name is taken.
#[allow(clippy::too_many_arguments)]
pub fn put_file(
    d: &mut Drive,
    parent: u32,
    name: &str,
    conflict: &str,
    content: FileContent,
    size: u64,
    fs: (Option<i64>, Option<i64>),
    seq: u64,
) -> Result<(u32, bool), GraphResponse> {
    if !valid_name(name) {
        return Err(GraphResponse::error(
            400,
            "invalidRequest",
            "The name contains invalid characters.",
        ));
    }
    let existing = d.child(parent, name).map(|i| (i.serial, i.is_folder));
    match (existing, conflict) {
        (Some(_), "fail") => Err(GraphResponse::error(
            409,
            "nameAlreadyExists",
            "The specified item name already exists.",
        )),
        (Some((s, false)), "replace") => {
            let t = now();
            if let Some(Some(i)) = d.items.get_mut(s as usize) {
                let number = i.versions.last().map_or(1, |v| v.number + 1);
                i.versions.push(FileVersion {
                    number,
                    size,
                    modified: t,
                    content,
                });
                i.modified = t;
                i.fs_modified = fs.1.unwrap_or(t);
                if let Some(c) = fs.0 {
                    i.fs_created = c;
                }
                i.changed_seq = seq;
                i.etag += 1;
                i.ctag += 1;
            }
            if let Some(p) = d.item(s).and_then(|i| i.parent) {
                touch_ancestors(d, p, seq);
            }
            Ok((s, false))
        }
        _ => {
            let name = free_name(
                d,
                parent,
                name,
                if existing.is_some() {
                    "rename"
                } else {
                    conflict
                },
            );
            let t = now();
            let s = add_item(
                d,
                parent,
                &name,
                false,
                vec![FileVersion {
                    number: 1,
                    size,
                    modified: fs.1.unwrap_or(t),
                    content,
                }],
                seq,
                fs,
            );
            Ok((s, true))
        }
    }
}

/// Deletes an item and its descendants, logging each removal.
pub fn delete_item(state: &SimState, d: &mut Drive, serial: u32, seq: u64) {
    let children: Vec<u32> = d
        .items
        .iter()
        .flatten()
        .filter(|c| c.parent == Some(serial))
        .map(|c| c.serial)
        .collect();
    for c in children {
        delete_item(state, d, c, seq);
    }
    if let Some(item) = d.items.get_mut(serial as usize).and_then(Option::take) {
        let id = state.tenant.codec.drive_item(d.idx, serial);
        d.log.push(Removed {
            seq,
            serial,
            sub: 0,
            id,
            name: item.name,
        });
        if let Some(p) = item.parent {
            touch_ancestors(d, p, seq);
        }
    }
}

fn parse_range(h: Option<&str>, size: u64) -> Option<(u64, u64)> {
    let spec = h?.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return (n > 0 && size > 0).then(|| (size.saturating_sub(n), size - 1));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        size.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

/// `GET /_dl/{token}`: streams file bytes; no bearer token needed.
pub async fn download(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let token = req.match_info().get("token").unwrap_or("");
    let Some((payload, sig)) = token.split_once('.') else {
        return not_found();
    };
    let Ok(payload) = URL_SAFE_NO_PAD.decode(payload) else {
        return not_found();
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return not_found();
    };
    if sign(&state, &payload)[..16] != sig[..] {
        return HttpResponse::Unauthorized().json(error_body(
            "unauthenticated",
            "The download URL is not valid.",
            None,
        ));
    }
    let text = String::from_utf8_lossy(&payload).to_string();
    let parts: Vec<i64> = text.split('.').filter_map(|p| p.parse().ok()).collect();
    let [drive, serial, version, exp] = parts[..] else {
        return not_found();
    };
    if exp < now() {
        return HttpResponse::Unauthorized().json(error_body(
            "unauthenticated",
            "The download URL has expired.",
            None,
        ));
    }
    let (Ok(drive), Ok(serial)) = (u32::try_from(drive), u32::try_from(serial)) else {
        return not_found();
    };
    let Some(cell) = state.tenant.drive(drive) else {
        return not_found();
    };
    let found = state.tenant.with_drive(&cell, |d| {
        d.item(serial).and_then(|i| {
            i.versions
                .iter()
                .find(|v| i64::from(v.number) == version)
                .map(|v| (v.clone(), i.name.clone()))
        })
    });
    let Some((v, name)) = found else {
        return not_found();
    };
    state.counters.request("download", None);
    let range = req.headers().get("range").and_then(|h| h.to_str().ok());
    let (start, end, status) = match (range, parse_range(range, v.size)) {
        (Some(_), Some((s, e))) => (s, e, actix_web::http::StatusCode::PARTIAL_CONTENT),
        (Some(_), None) if v.size > 0 => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header(("Content-Range", format!("bytes */{}", v.size)))
                .finish();
        }
        _ => (0, v.size.saturating_sub(1), actix_web::http::StatusCode::OK),
    };
    let len = if v.size == 0 { 0 } else { end - start + 1 };
    let mut b = HttpResponse::build(status);
    b.insert_header(("Content-Type", crate::content::mime_type(&name)));
    b.insert_header(("Accept-Ranges", "bytes"));
    if status == actix_web::http::StatusCode::PARTIAL_CONTENT {
        b.insert_header(("Content-Range", format!("bytes {start}-{end}/{}", v.size)));
    }
    if req.method() == actix_web::http::Method::HEAD {
        return b
            .insert_header(("Content-Length", len.to_string()))
            .finish();
    }
    state.counters.content(len);
    state.counters.bytes(len);
    match v.content {
        FileContent::Stored(bytes) => {
            let s = usize::try_from(start).unwrap_or(0);
            let e = usize::try_from(start + len).unwrap_or(0).min(bytes.len());
            b.body(bytes.slice(s.min(e)..e))
        }
        FileContent::Spooled(file) => {
            const CHUNK: u64 = 256 * 1024;
            // The file stays while a download reads it, even if a new version replaces it.
            let stream = stream::unfold(start, move |pos| {
                let file = file.clone();
                async move {
                    if pos >= start + len {
                        return None;
                    }
                    let n = CHUNK.min(start + len - pos);
                    let read = tokio::task::spawn_blocking(move || {
                        file.read_at(pos, usize::try_from(n).unwrap_or(0))
                    })
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                    match read {
                        Ok(buf) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), pos + n)),
                        // Ends the stream after the error: the client sees a broken body.
                        Err(e) => Some((Err(e), start + len)),
                    }
                }
            });
            b.body(SizedStream::new(len, stream))
        }
        FileContent::Generated { seed, text } => {
            const CHUNK: u64 = 256 * 1024;
            let stream = stream::unfold(start, move |pos| async move {
                if pos >= start + len {
                    return None;
                }
                let n = CHUNK.min(start + len - pos);
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
                fill_file(seed, text, pos, &mut buf);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), pos + n))
            });
            b.body(SizedStream::new(len, stream))
        }
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(error_body(
        "itemNotFound",
        "The resource could not be found.",
        None,
    ))
}

/// `PUT|GET|DELETE /_up/{id}`: upload session fragments (no bearer token; sending one is 401).
pub async fn upload_fragment(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<SimState>,
) -> HttpResponse {
    let id = req.match_info().get("id").unwrap_or("").to_string();
    let graph_err = |status: u16, code: &str, msg: &str| {
        HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .json(error_body(code, msg, None))
    };
    if req.headers().contains_key("authorization") {
        return graph_err(
            401,
            "unauthenticated",
            "Do not send an Authorization header to the upload URL.",
        );
    }
    let method = req.method().as_str().to_string();
    let mut sessions = state.uploads.lock();
    let Some(session) = sessions.get_mut(&id) else {
        return graph_err(404, "itemNotFound", "The upload session was not found.");
    };
    if session.expires < now() {
        if let Some(s) = sessions.remove(&id) {
            s.data.discard();
        }
        return graph_err(404, "itemNotFound", "The upload session has expired.");
    }
    let progress = |s: &UploadSession| json!({"expirationDateTime": crate::time_fmt::iso_ms(s.expires * 1000), "nextExpectedRanges": [format!("{}-", s.data.len())]});
    match method.as_str() {
        "GET" => return HttpResponse::Ok().json(progress(session)),
        "DELETE" => {
            if let Some(s) = sessions.remove(&id) {
                s.data.discard();
            }
            return HttpResponse::NoContent().finish();
        }
        "PUT" => {}
        _ => return graph_err(405, "invalidRequest", "Method not allowed."),
    }
    let Some(range) = req
        .headers()
        .get("content-range")
        .and_then(|h| h.to_str().ok())
    else {
        return graph_err(400, "invalidRange", "Content-Range header is required.");
    };
    let parsed = range.trim().strip_prefix("bytes ").and_then(|r| {
        let (span, total) = r.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((
            a.parse::<u64>().ok()?,
            b.parse::<u64>().ok()?,
            total.parse::<u64>().ok(),
        ))
    });
    let Some((start, end, total)) = parsed else {
        return graph_err(
            400,
            "invalidRange",
            "The Content-Range header is malformed.",
        );
    };
    let total = total.or(session.total);
    let Some(total) = total else {
        return graph_err(400, "invalidRange", "The total size is required.");
    };
    if session.total.is_some_and(|t| t != total) {
        return graph_err(
            400,
            "invalidRange",
            "The declared total size changed between fragments.",
        );
    }
    session.total = Some(total);
    let len = end.saturating_sub(start) + 1;
    if body.len() as u64 != len {
        return graph_err(
            400,
            "fragmentLengthMismatch",
            "The fragment length does not match Content-Range.",
        );
    }
    let have = session.data.len();
    if start < have {
        return graph_err(
            416,
            "invalidRange",
            "Uploaded fragment overlaps with existing data.",
        );
    }
    if start > have {
        return graph_err(
            416,
            "fragmentOutOfOrder",
            "Fragments must be uploaded in order.",
        );
    }
    if end + 1 > total {
        return graph_err(
            416,
            "invalidRange",
            "The fragment ends beyond the declared size.",
        );
    }
    if end + 1 < total && len % FRAGMENT_UNIT != 0 {
        return graph_err(
            416,
            "invalidRange",
            "Fragments must be multiples of 320 KiB except the last one.",
        );
    }
    if len > 60 * 1024 * 1024 {
        return graph_err(
            413,
            "requestTooLarge",
            "Fragments must be smaller than 60 MiB.",
        );
    }
    if let Err(e) = session.data.append(&body) {
        return graph_err(
            507,
            "insufficientStorage",
            &format!("The fragment could not be stored: {e}"),
        );
    }
    if session.data.len() < total {
        return HttpResponse::Accepted().json(progress(session));
    }
    let Some(done) = sessions.remove(&id) else {
        return graph_err(404, "itemNotFound", "The upload session was not found.");
    };
    drop(sessions);
    let Some(cell) = state.tenant.drive(done.drive) else {
        return graph_err(404, "itemNotFound", "The drive was deleted.");
    };
    let seq = state.tenant.next_seq();
    let drive_id = state.tenant.codec.drive(done.drive);
    let size = done.data.len();
    let result = state.tenant.with_drive_mut(&cell, |d| {
        put_file(
            d,
            done.parent,
            &done.name,
            &done.conflict,
            FileContent::Spooled(std::sync::Arc::new(done.data.finish())),
            size,
            done.fs_info,
            seq,
        )
        .map(|(s, created)| {
            (
                d.item(s).map(|i| item_json(&state, d, &drive_id, i, false)),
                created,
            )
        })
    });
    match result {
        Ok((Some(v), created)) => HttpResponse::build(if created {
            actix_web::http::StatusCode::CREATED
        } else {
            actix_web::http::StatusCode::OK
        })
        .json(v),
        Ok((None, _)) => graph_err(404, "itemNotFound", "The item vanished."),
        Err(e) => {
            let status = actix_web::http::StatusCode::from_u16(e.status)
                .unwrap_or(actix_web::http::StatusCode::CONFLICT);
            match e.body {
                crate::http::Body::Json(v) => HttpResponse::build(status).json(v),
                _ => HttpResponse::build(status).finish(),
            }
        }
    }
}
