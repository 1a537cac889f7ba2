//! Content snapshots as hashes, so tests can compare a restored tenant with the original:
//! mail folder path → message id → BLAKE3 of the MIME, drive path → BLAKE3 of the bytes,
//! events/contacts id → BLAKE3 of their canonical JSON, channel → message id → hash.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::content::fill_file;
use crate::state::SimState;
use crate::tenant::{FileContent, UserKind};

/// What to include.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only this user (id or UPN).
    pub user: Option<String>,
    /// Only this drive id.
    pub drive: Option<String>,
    /// Hash file bytes (otherwise sizes only).
    pub file_content: bool,
}

fn hex(h: blake3::Hash) -> String {
    h.to_hex().to_string()
}

/// Hashes generated or stored file content without holding it in memory.
#[must_use]
pub fn hash_file(content: &FileContent, size: u64) -> String {
    match content {
        FileContent::Stored(b) => hex(blake3::hash(b)),
        FileContent::Spooled(f) => f.hash_hex(),
        FileContent::Generated { seed, text } => {
            let mut h = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0;
            while pos < size {
                let n = usize::try_from((size - pos).min(buf.len() as u64)).unwrap_or(0);
                fill_file(*seed, *text, pos, &mut buf[..n]);
                h.update(&buf[..n]);
                pos += n as u64;
            }
            hex(h.finalize())
        }
    }
}

/// Builds the snapshot.
#[must_use]
pub fn snapshot(state: &SimState, scope: &Scope) -> Value {
    let t = &state.tenant;
    let users: Vec<(u32, String, UserKind)> = {
        let dir = t.dir.read();
        dir.users
            .iter()
            .filter(|u| !u.deleted)
            .map(|u| (u.idx, u.upn.clone(), u.kind))
            .collect()
    };
    let mut mail = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut contacts = BTreeMap::new();
    for (idx, upn, kind) in &users {
        if kind == &UserKind::NoMailbox {
            continue;
        }
        if let Some(u) = &scope.user {
            let id = t
                .dir
                .read()
                .users
                .get(*idx as usize)
                .map(|x| x.id.to_string())
                .unwrap_or_default();
            if !u.eq_ignore_ascii_case(upn) && !u.eq_ignore_ascii_case(&id) {
                continue;
            }
        }
        let Some(cell) = t.mailbox(*idx) else {
            continue;
        };
        let owner = crate::mail::owner(state, *idx);
        t.with_mailbox(&cell, |mb| {
            let mut folders: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for f in mb.folders.iter().flatten().filter(|f| f.parent.is_some()) {
                folders.entry(mb.folder_path(f.serial)).or_default();
            }
            for m in mb.messages.iter().flatten() {
                let sent = mb.folder(m.folder).and_then(|f| f.well_known) == Some("sentitems");
                let v = crate::mail::view(state, &owner, m, sent, true);
                folders.entry(mb.folder_path(m.folder)).or_default().insert(
                    crate::mail::message_id(state, mb.idx, m, true),
                    hex(blake3::hash(&v.mime)),
                );
            }
            mail.insert(upn.clone(), folders);
            let (ev, co) = crate::calendar::snapshot_items(state, mb, &owner);
            events.insert(
                upn.clone(),
                ev.into_iter()
                    .map(|(id, v)| (id, hex(blake3::hash(v.to_string().as_bytes()))))
                    .collect::<BTreeMap<_, _>>(),
            );
            contacts.insert(
                upn.clone(),
                co.into_iter()
                    .map(|(id, v)| (id, hex(blake3::hash(v.to_string().as_bytes()))))
                    .collect::<BTreeMap<_, _>>(),
            );
        });
    }
    if scope.user.is_none() && scope.drive.is_none() {
        let groups: Vec<(
            std::sync::Arc<crate::tenant::MailboxCell>,
            crate::content::Person,
        )> = {
            let dir = t.dir.read();
            dir.groups
                .iter()
                .filter(|g| !g.deleted)
                .map(|g| {
                    (
                        g.mailbox.clone(),
                        crate::content::Person {
                            name: g.display_name.clone(),
                            address: format!("{}@{}", g.nickname, t.domain),
                        },
                    )
                })
                .collect()
        };
        for (cell, owner) in groups {
            t.with_mailbox(&cell, |mb| {
                let (ev, _) = crate::calendar::snapshot_items(state, mb, &owner);
                events.insert(
                    owner.address.clone(),
                    ev.into_iter()
                        .map(|(id, v)| (id, hex(blake3::hash(v.to_string().as_bytes()))))
                        .collect::<BTreeMap<_, _>>(),
                );
            });
        }
    }
    let mut drives = BTreeMap::new();
    let drive_list: Vec<(u32, String)> = t
        .dir
        .read()
        .drives
        .iter()
        .filter(|d| !d.deleted)
        .map(|d| (d.idx, d.id.clone()))
        .collect();
    for (idx, id) in drive_list {
        if scope.drive.as_ref().is_some_and(|d| d != &id)
            || (scope.user.is_some() && scope.drive.is_none())
        {
            continue;
        }
        let Some(cell) = t.drive(idx) else { continue };
        let files = t.with_drive(&cell, |d| {
            let mut out = BTreeMap::new();
            for i in d.items.iter().flatten().filter(|i| i.parent.is_some()) {
                let value = match i.current() {
                    None => "folder".to_string(),
                    Some(v) if scope.file_content => hash_file(&v.content, v.size),
                    Some(v) => format!("size:{}", v.size),
                };
                out.insert(d.path(i.serial), value);
            }
            out
        });
        drives.insert(id, files);
    }
    let conversations = if scope.user.is_none() && scope.drive.is_none() {
        crate::conversations::snapshot(state)
    } else {
        json!({})
    };
    json!({"mail": mail, "drives": drives, "events": events, "contacts": contacts, "conversations": conversations})
}
