//! Contacts: contact folders, contacts, their delta, creation, updates and deletion.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::content::contact_json;
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::ids::{OutlookKey, OutlookKind};
use crate::odata::{LiveEntry, page};
use crate::state::SimState;
use crate::tenant::{Contact, Mailbox, MailboxCell, Removed};
use crate::time_fmt::{iso, now};

fn oid(state: &SimState, kind: OutlookKind, mb: u32, serial: u32, sub: u32) -> String {
    state.tenant.codec.outlook(OutlookKey {
        kind,
        mailbox: mb,
        serial,
        sub,
    })
}

pub(crate) fn contact_folder_serial(state: &SimState, mb: &Mailbox, key: &str) -> Option<u32> {
    let k = state.tenant.codec.decode_outlook(key)?;
    (k.kind == OutlookKind::ContactFolder
        && k.mailbox == mb.idx
        && mb
            .contact_folders
            .get(k.serial as usize)
            .is_some_and(Option::is_some))
    .then_some(k.serial)
}

pub(crate) fn contact_folder_json(state: &SimState, mb: &Mailbox, serial: u32) -> Value {
    let f = mb
        .contact_folders
        .get(serial as usize)
        .and_then(Option::as_ref);
    json!({"id": oid(state, OutlookKind::ContactFolder, mb.idx, serial, 0),
        "displayName": f.map_or("", |f| f.name.as_str()),
        "parentFolderId": oid(state, OutlookKind::ContactFolder, mb.idx, u32::MAX, 0)})
}

pub(crate) fn contact_json_full(state: &SimState, mb: &Mailbox, c: &Contact) -> Value {
    let mut v = match &c.json {
        Some(j) => (**j).clone(),
        None => contact_json(c.seed, &state.tenant.domain),
    };
    let display = v["displayName"].as_str().unwrap_or("").to_string();
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.etag".into(),
            json!(format!(
                "W/\"EQAAABYAAA{}\"",
                STANDARD.encode(c.changed_seq.to_be_bytes())
            )),
        );
        m.insert(
            "id".into(),
            json!(oid(state, OutlookKind::Contact, mb.idx, c.serial, 0)),
        );
        m.insert("createdDateTime".into(), json!(iso(c.modified)));
        m.insert("lastModifiedDateTime".into(), json!(iso(c.modified)));
        m.insert(
            "changeKey".into(),
            json!(STANDARD.encode(c.changed_seq.to_be_bytes())),
        );
        m.insert("categories".into(), json!([]));
        m.insert(
            "parentFolderId".into(),
            json!(oid(state, OutlookKind::ContactFolder, mb.idx, c.folder, 0)),
        );
        m.entry("fileAs").or_insert(json!(display));
        m.entry("initials").or_insert(json!(
            display
                .chars()
                .next()
                .map(|c| c.to_string())
                .unwrap_or_default()
        ));
        for k in [
            "middleName",
            "nickName",
            "title",
            "yomiGivenName",
            "yomiSurname",
            "yomiCompanyName",
            "generation",
            "department",
            "officeLocation",
            "profession",
            "manager",
            "assistantName",
            "spouseName",
        ] {
            m.entry(k).or_insert(Value::Null);
        }
        for k in ["imAddresses", "homePhones", "children"] {
            m.entry(k).or_insert(json!([]));
        }
        for k in ["homeAddress", "businessAddress", "otherAddress"] {
            m.entry(k).or_insert(json!({}));
        }
        for k in ["emailAddresses", "businessPhones"] {
            m.entry(k).or_insert(json!([]));
        }
    }
    v
}

pub(crate) fn list_contacts(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    folder: Option<&str>,
    url: &str,
) -> GraphResponse {
    let graph = state.graph();
    state.tenant.with_mailbox(cell, |mb| {
        let f = match folder {
            Some(f) => match contact_folder_serial(state, mb, f) {
                Some(s) => Some(s),
                None => return GraphResponse::exchange_not_found(),
            },
            None => Some(0),
        };
        let items = mb
            .contacts
            .iter()
            .flatten()
            .filter(|c| f.is_none_or(|f| c.folder == f))
            .map(|c| contact_json_full(state, mb, c))
            .collect();
        page(
            req,
            url,
            &format!("{graph}/$metadata#Collection(contact)"),
            items,
            10,
            1000,
        )
    })
}

pub(crate) fn contacts_delta(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    folder: &str,
    url: &str,
) -> GraphResponse {
    let graph = state.graph();
    let cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 10, 1000) {
        Ok(c) => c,
        Err(e) => return e,
    };
    state.tenant.with_mailbox(cell, |mb| {
        let Some(f) = contact_folder_serial(state, mb, folder) else { return GraphResponse::exchange_not_found() };
        let Some(fo) = mb.contact_folders[f as usize].as_ref() else { return GraphResponse::exchange_not_found() };
        let removed = fo.log.since(cursor.since).map(|it| {
            it.map(|r| (i64::from(r.serial), json!({"@odata.type": "#microsoft.graph.contact", "id": r.id, "@removed": {"reason": "deleted"}}))).collect::<Vec<_>>()
        });
        let live: Vec<LiveEntry<'_>> = mb
            .contacts
            .iter()
            .flatten()
            .filter(|c| c.folder == f)
            .map(|c| {
                let r: Box<dyn Fn() -> Value + '_> = Box::new(move || {
                    let mut v = contact_json_full(state, mb, c);
                    v["@odata.type"] = json!("#microsoft.graph.contact");
                    v
                });
                (i64::from(c.serial), c.changed_seq, r)
            })
            .collect();
        crate::odata::run_delta(url, &format!("{graph}/$metadata#Collection(contact)"), cursor, live, removed, "syncStateNotFound")
    })
}

pub(crate) fn create_contact(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    folder: Option<&str>,
) -> GraphResponse {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let seq = state.tenant.next_seq();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let f = match folder {
            Some(f) => match contact_folder_serial(state, mb, f) {
                Some(s) => s,
                None => return GraphResponse::exchange_not_found(),
            },
            None => 0,
        };
        let serial = u32::try_from(mb.contacts.len()).unwrap_or(u32::MAX);
        let mut stored = body.clone();
        if stored["displayName"].as_str().is_none_or(str::is_empty) {
            let name = format!(
                "{} {}",
                body["givenName"].as_str().unwrap_or(""),
                body["surname"].as_str().unwrap_or("")
            )
            .trim()
            .to_string();
            stored["displayName"] = json!(name);
        }
        mb.contacts.push(Some(Contact {
            serial,
            folder: f,
            changed_seq: seq,
            seed: seq,
            json: Some(Arc::new(stored)),
            modified: now(),
        }));
        match mb.contacts[serial as usize].as_ref() {
            Some(c) => GraphResponse::json(201, contact_json_full(state, mb, c)),
            None => GraphResponse::exchange_not_found(),
        }
    })
}

pub(crate) fn contact_item(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    id: &str,
) -> GraphResponse {
    let resolve = |mb: &Mailbox| {
        state
            .tenant
            .codec
            .decode_outlook(id)
            .filter(|k| {
                k.kind == OutlookKind::Contact
                    && k.mailbox == mb.idx
                    && mb
                        .contacts
                        .get(k.serial as usize)
                        .is_some_and(Option::is_some)
            })
            .map(|k| k.serial)
    };
    match req.method {
        Method::Get => state.tenant.with_mailbox(cell, |mb| {
            match resolve(mb).and_then(|s| mb.contacts[s as usize].as_ref()) {
                Some(c) => GraphResponse::ok(contact_json_full(state, mb, c)),
                None => GraphResponse::exchange_not_found(),
            }
        }),
        Method::Delete => {
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| match resolve(mb) {
                Some(s) => {
                    delete_contact(state, mb, s, seq);
                    GraphResponse::empty(204)
                }
                None => GraphResponse::exchange_not_found(),
            })
        }
        Method::Patch => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| {
                let Some(s) = resolve(mb) else {
                    return GraphResponse::exchange_not_found();
                };
                let mut cur = mb.contacts[s as usize]
                    .as_ref()
                    .map(|c| contact_json_full(state, mb, c))
                    .unwrap_or_default();
                if let (Value::Object(m), Value::Object(b)) = (&mut cur, &body) {
                    for (k, v) in b {
                        m.insert(k.clone(), v.clone());
                    }
                }
                if let Some(Some(c)) = mb.contacts.get_mut(s as usize) {
                    c.json = Some(Arc::new(cur));
                    c.changed_seq = seq;
                    c.modified = now();
                }
                match mb.contacts[s as usize].as_ref() {
                    Some(c) => GraphResponse::ok(contact_json_full(state, mb, c)),
                    None => GraphResponse::exchange_not_found(),
                }
            })
        }
        _ => GraphResponse::bad_url(id),
    }
}

/// Deletes a contact and logs it.
pub(crate) fn delete_contact(state: &SimState, mb: &mut Mailbox, serial: u32, seq: u64) {
    if let Some(c) = mb.contacts.get_mut(serial as usize).and_then(Option::take) {
        let id = oid(state, OutlookKind::Contact, mb.idx, serial, 0);
        if let Some(Some(f)) = mb.contact_folders.get_mut(c.folder as usize) {
            f.log.push(Removed {
                seq,
                serial,
                sub: 0,
                id,
                name: String::new(),
            });
        }
    }
}
