//! Deterministic generation of the directory (eager) and of mailboxes and drives (lazy).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{
    Calendar, ChangeLog, Channel, ChannelMessage, Contact, ContactFolder, Directory, Drive,
    DriveCell, DriveItem, DriveOwner, DriveRef, Event, FileContent, FileVersion, Group, MailFolder,
    Mailbox, MailboxCell, Message, MessageBody, Site, Sizes, Team, Tenant, User, UserKind,
};
use crate::ids::{IdCodec, guid};
use crate::rng::{Rng, mix};
use crate::words;

/// The reference "now" of generated content: 2026-11-24T14:30:00Z.
pub const BASE_TIME: i64 = 1_795_530_600;

const DAY: i64 = 86_400;

pub(super) fn directory(seed: u64, sizes: &Sizes, codec: &IdCodec, domain: &str) -> Directory {
    let mut dir = Directory::default();
    let mut rng = Rng::new(mix(seed, 0xD1));
    let n = sizes.users;
    for i in 0..n {
        let (name, local, kind) = if n >= 3 && i == n - 1 {
            (
                "Shared Support".to_string(),
                "support".to_string(),
                UserKind::Shared,
            )
        } else if n >= 4 && i == n - 2 {
            (
                "Conf Room Adams".to_string(),
                "confroom.adams".to_string(),
                UserKind::NoMailbox,
            )
        } else {
            let given = *rng.pick(words::GIVEN);
            let surname = *rng.pick(words::SURNAMES);
            let local = format!("{}.{}{}", ascii_fold(given), ascii_fold(surname), i);
            (format!("{given} {surname}"), local, UserKind::Member)
        };
        let messages = if kind == UserKind::NoMailbox {
            0
        } else {
            sizes.messages_per_user
        };
        let files = if kind == UserKind::Member {
            sizes.files_per_user
        } else {
            0
        };
        let idx = add_user(
            seed, codec, domain, &mut dir, &name, &local, kind, messages, files, 1,
        );
        if let Some(u) = dir.users.get_mut(idx as usize) {
            let mut names = name.splitn(2, ' ');
            if kind == UserKind::Member {
                u.given_name = names.next().map(str::to_string);
                u.surname = names.next().map(str::to_string);
                u.job_title = Some((*rng.pick(words::JOBS)).to_string());
                u.office = Some(format!("{}/{}", 10 + rng.below(20), 1000 + rng.below(2000)));
            }
        }
        let _ = (sizes.events_per_user, sizes.contacts_per_user);
    }
    // Events and contacts per mailbox come from sizes.
    for u in &mut dir.users {
        if u.kind != UserKind::NoMailbox {
            u.mailbox = Arc::new(MailboxCell::new(
                u.idx,
                u.mailbox.seed,
                u.mailbox.messages,
                sizes.events_per_user,
                sizes.contacts_per_user,
            ));
        }
    }
    let host = format!("contoso{}.sharepoint.com", seed % 100_000);
    for g in 0..sizes.groups {
        let name = format!(
            "{} {}",
            words::TEAMS[g % words::TEAMS.len()],
            g / words::TEAMS.len() + 1
        );
        let nickname = ascii_fold(&name).replace(['.', ' ', '&'], "");
        let gid = guid(seed, 0x6A, g as u64);
        let site_idx = u32::try_from(dir.sites.len()).unwrap_or(u32::MAX);
        let members: Vec<u32> = dir
            .users
            .iter()
            .filter(|u| u.kind == UserKind::Member && (u.idx as usize + g).is_multiple_of(2))
            .map(|u| u.idx)
            .collect();
        let created = BASE_TIME - 400 * DAY + i64::try_from(g).unwrap_or(0) * DAY;
        let group_idx = u32::try_from(g).unwrap_or(u32::MAX);
        add_site(
            seed,
            codec,
            &host,
            &mut dir,
            &nickname,
            &name,
            &["Documents"],
            Some(group_idx),
            sizes,
            created,
        );
        let team =
            (g % 4 != 3).then(|| Arc::new(RwLock::new(team(seed, group_idx, sizes, created))));
        dir.groups.push(Group {
            idx: group_idx,
            id: gid,
            display_name: name.clone(),
            nickname,
            description: format!("Microsoft 365 group for {name}"),
            members,
            site: Some(site_idx),
            team,
            mailbox: Arc::new(MailboxCell::new(
                super::GROUP_MAILBOX_BASE + group_idx,
                mix(seed, 0x6B0C + u64::from(group_idx)),
                0,
                sizes.events_per_user,
                0,
            )),
            conversations: Arc::new(crate::conversations::ConversationsCell::new(
                crate::conversations::seed(seed, group_idx),
                (sizes.channel_messages + 1).clamp(2, 30),
            )),
            changed_seq: 1,
            deleted: false,
            created,
        });
    }
    for s in 0..sizes.sites {
        let title = format!("Intranet {}", s + 1);
        let created = BASE_TIME - 600 * DAY;
        add_site(
            seed,
            codec,
            &host,
            &mut dir,
            &format!("intranet{}", s + 1),
            &title,
            &["Documents", "Verträge & Richtlinien", "Site Assets"],
            None,
            sizes,
            created,
        );
    }
    dir
}

#[allow(clippy::too_many_arguments)]
fn add_site(
    seed: u64,
    codec: &IdCodec,
    host: &str,
    dir: &mut Directory,
    url_name: &str,
    title: &str,
    libraries: &[&str],
    group: Option<u32>,
    sizes: &Sizes,
    created: i64,
) {
    let idx = u32::try_from(dir.sites.len()).unwrap_or(u32::MAX);
    let id = format!(
        "{host},{},{}",
        guid(seed, 0x51, u64::from(idx)),
        guid(seed, 0x52, u64::from(idx))
    );
    let mut drives = Vec::new();
    for lib in libraries {
        let d = u32::try_from(dir.drives.len()).unwrap_or(u32::MAX);
        dir.drives.push(DriveRef {
            idx: d,
            id: codec.drive(d),
            name: (*lib).to_string(),
            owner: DriveOwner::Site(idx),
            deleted: false,
            cell: Arc::new(DriveCell::new(
                d,
                mix(seed, 0xD000 + u64::from(d)),
                sizes.files_per_user,
            )),
        });
        drives.push(d);
    }
    dir.sites.push(Site {
        idx,
        id,
        name: url_name.to_string(),
        display_name: title.to_string(),
        drives,
        group,
        changed_seq: 1,
        deleted: false,
        created,
    });
}

/// Adds a user (and its mailbox and OneDrive cells); returns the index.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_user(
    seed: u64,
    codec: &IdCodec,
    domain: &str,
    dir: &mut Directory,
    display_name: &str,
    upn_local: &str,
    kind: UserKind,
    messages: usize,
    files: usize,
    seq: u64,
) -> u32 {
    let idx = u32::try_from(dir.users.len()).unwrap_or(u32::MAX);
    let drive = (kind == UserKind::Member).then(|| {
        let d = u32::try_from(dir.drives.len()).unwrap_or(u32::MAX);
        dir.drives.push(DriveRef {
            idx: d,
            id: codec.drive(d),
            name: "OneDrive".to_string(),
            owner: DriveOwner::User(idx),
            deleted: false,
            cell: Arc::new(DriveCell::new(d, mix(seed, 0xD000 + u64::from(d)), files)),
        });
        d
    });
    dir.users.push(User {
        idx,
        id: guid(seed, 0x05E, u64::from(idx)),
        upn: format!("{upn_local}@{domain}"),
        display_name: display_name.to_string(),
        given_name: None,
        surname: None,
        job_title: None,
        office: None,
        kind,
        changed_seq: seq,
        deleted: false,
        drive,
        mailbox: Arc::new(MailboxCell::new(
            idx,
            mix(seed, 0x3A11 + u64::from(idx)),
            messages,
            0,
            0,
        )),
    });
    idx
}

/// Folds a name to ASCII for e-mail addresses.
#[must_use]
pub fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = match c {
                'à'..='å' | 'À'..='Å' => 'a',
                'è'..='ë' | 'É' => 'e',
                'ì'..='ï' => 'i',
                'ò'..='ö' | 'ø' | 'Ø' | 'Ö' => 'o',
                'ù'..='ü' => 'u',
                'ñ' => 'n',
                'ç' => 'c',
                'ł' => 'l',
                'ß' => 's',
                c if c.is_ascii_alphanumeric() || c == ' ' || c == '.' => c,
                _ => return None,
            };
            Some(c.to_ascii_lowercase())
        })
        .collect::<String>()
        .replace(' ', ".")
        .trim_matches('.')
        .to_string()
        .chars()
        .take(30)
        .collect::<String>()
        .if_empty("user")
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() {
            other.to_string()
        } else {
            self
        }
    }
}

const FOLDERS: &[(&str, Option<&str>, bool, u32)] = &[
    (
        "Top of Information Store",
        Some("msgfolderroot"),
        false,
        u32::MAX,
    ),
    ("Inbox", Some("inbox"), false, 0),
    ("Sent Items", Some("sentitems"), false, 0),
    ("Deleted Items", Some("deleteditems"), false, 0),
    ("Drafts", Some("drafts"), false, 0),
    ("Archive", Some("archive"), false, 0),
    ("Junk Email", Some("junkemail"), false, 0),
    ("Outbox", Some("outbox"), false, 0),
    (
        "Conversation History",
        Some("conversationhistory"),
        false,
        0,
    ),
    ("Conversation Action Settings", None, true, 0),
    ("Projects", None, false, 1),
    ("2026", None, false, 10),
    ("Q4 – Übersicht", None, false, 11),
    ("Reports.", None, false, 12),
    ("Newsletters 📰", None, false, 1),
];

/// Folder serials messages are spread over, with weights.
const SPREAD: &[(u32, u64)] = &[
    (1, 40),
    (10, 5),
    (11, 5),
    (12, 5),
    (13, 5),
    (2, 15),
    (5, 10),
    (3, 5),
    (4, 3),
    (14, 7),
];

pub(super) fn mailbox(tenant: &Tenant, cell: &MailboxCell) -> Mailbox {
    let mut mb = Mailbox {
        idx: cell.idx,
        ..Mailbox::default()
    };
    for (serial, (name, wk, hidden, parent)) in FOLDERS.iter().enumerate() {
        mb.folders.push(Some(MailFolder {
            serial: u32::try_from(serial).unwrap_or(0),
            parent: (*parent != u32::MAX).then_some(*parent),
            name: (*name).to_string(),
            well_known: *wk,
            hidden: *hidden,
            changed_seq: 1,
            log: ChangeLog::default(),
        }));
    }
    let total: u64 = SPREAD.iter().map(|(_, w)| w).sum();
    for i in 0..cell.messages {
        let seed = mix(cell.seed, i as u64);
        let mut rng = Rng::new(seed);
        let mut roll = rng.below(total);
        let mut folder = 1;
        for (f, w) in SPREAD {
            if roll < *w {
                folder = *f;
                break;
            }
            roll -= w;
        }
        let received = BASE_TIME - i64::try_from(rng.below(730 * 86_400)).unwrap_or(0);
        let sent = received - i64::try_from(rng.below(600)).unwrap_or(0);
        mb.messages.push(Some(Message {
            serial: u32::try_from(i).unwrap_or(u32::MAX),
            folder,
            generation: 0,
            changed_seq: 1,
            seed,
            received,
            sent,
            modified: received,
            is_read: folder == 2 || rng.chance(0.7),
            is_draft: folder == 4,
            flag: if rng.chance(0.1) { 1 } else { 0 },
            body: MessageBody::Generated,
        }));
    }
    mb.calendars.push(Some(Calendar {
        serial: 0,
        name: "Calendar".into(),
        is_default: true,
        log: ChangeLog::default(),
    }));
    mb.calendars.push(Some(Calendar {
        serial: 1,
        name: "Projekt-Kalender".into(),
        is_default: false,
        log: ChangeLog::default(),
    }));
    for i in 0..cell.events {
        let seed = mix(cell.seed ^ 0xE7E7, i as u64);
        mb.events.push(Some(Event {
            serial: u32::try_from(i).unwrap_or(u32::MAX),
            calendar: u32::from(i % 5 == 4),
            changed_seq: 1,
            seed,
            json: None,
            modified: BASE_TIME - 30 * DAY,
        }));
    }
    mb.contact_folders.push(Some(ContactFolder {
        serial: 0,
        parent: None,
        name: "Contacts".into(),
        log: ChangeLog::default(),
    }));
    mb.contact_folders.push(Some(ContactFolder {
        serial: 1,
        parent: None,
        name: "Família & Freunde".into(),
        log: ChangeLog::default(),
    }));
    for i in 0..cell.contacts {
        mb.contacts.push(Some(Contact {
            serial: u32::try_from(i).unwrap_or(u32::MAX),
            folder: u32::from(i % 4 == 3),
            changed_seq: 1,
            seed: mix(cell.seed ^ 0xC0C0, i as u64),
            json: None,
            modified: BASE_TIME - 60 * DAY,
        }));
    }
    let _ = tenant;
    mb
}

pub(super) fn drive(tenant: &Tenant, cell: &DriveCell) -> Drive {
    let mut rng = Rng::new(cell.seed);
    let mut drive = Drive {
        idx: cell.idx,
        ..Drive::default()
    };
    let created = BASE_TIME - 700 * DAY;
    let root = DriveItem {
        serial: 0,
        parent: None,
        name: "root".into(),
        created,
        modified: created,
        fs_created: created,
        fs_modified: created,
        changed_seq: 1,
        etag: 1,
        ctag: 1,
        versions: Vec::new(),
        is_folder: true,
    };
    drive.items.push(Some(root));
    let mut taken: HashSet<(u32, String)> = HashSet::new();
    let mut folders = vec![0u32];
    let folder_count = 2 + cell.files / 8;
    for _ in 0..folder_count.min(40) {
        let parent = *rng.pick(&folders);
        let name = unique_name(
            &mut taken,
            parent,
            words::FOLDER_NAMES[rng.index(words::FOLDER_NAMES.len())],
        );
        let serial = u32::try_from(drive.items.len()).unwrap_or(u32::MAX);
        let when = created + i64::try_from(rng.below(300 * 86_400)).unwrap_or(0);
        drive.items.push(Some(DriveItem {
            serial,
            parent: Some(parent),
            name,
            created: when,
            modified: when,
            fs_created: when,
            fs_modified: when,
            changed_seq: 1,
            etag: 1,
            ctag: 1,
            versions: Vec::new(),
            is_folder: true,
        }));
        folders.push(serial);
    }
    let max = tenant.sizes.max_file_size.max(1);
    for i in 0..cell.files {
        let parent = *rng.pick(&folders);
        let name = unique_name(
            &mut taken,
            parent,
            words::FILE_NAMES[rng.index(words::FILE_NAMES.len())],
        );
        let roll = rng.below(100);
        let size = match roll {
            0..=39 => rng.below(1024),
            40..=69 => 1024 + rng.below(100 * 1024),
            70..=89 => 100 * 1024 + rng.below(5 * 1024 * 1024),
            90..=98 => rng.below(max / 10 + 1),
            _ => max / 2 + rng.below(max / 2 + 1),
        }
        .min(max);
        let text = name.ends_with(".txt") || name.ends_with(".md") || name.ends_with(".csv");
        let serial = u32::try_from(drive.items.len()).unwrap_or(u32::MAX);
        let when = created + i64::try_from(rng.below(690 * 86_400)).unwrap_or(0);
        let nversions = if rng.chance(0.2) { 2 + rng.below(2) } else { 1 };
        let versions = (0..nversions)
            .map(|v| {
                let vsize = if v + 1 == nversions {
                    size
                } else {
                    size.saturating_sub(rng.below(size / 4 + 1))
                };
                FileVersion {
                    number: u32::try_from(v + 1).unwrap_or(1),
                    size: vsize,
                    modified: when - i64::try_from((nversions - 1 - v) * 86_400).unwrap_or(0),
                    content: FileContent::Generated {
                        seed: mix(cell.seed, (i as u64) << 8 | v),
                        text,
                    },
                }
            })
            .collect();
        drive.items.push(Some(DriveItem {
            serial,
            parent: Some(parent),
            name,
            created: when - 86_400 * 3,
            modified: when,
            fs_created: when - 86_400 * 5,
            fs_modified: when,
            changed_seq: 1,
            etag: 1,
            ctag: 1,
            versions,
            is_folder: false,
        }));
    }
    drive
}

fn unique_name(taken: &mut HashSet<(u32, String)>, parent: u32, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while taken.contains(&(parent, name.to_lowercase())) {
        n += 1;
        name = match base.rfind('.') {
            Some(dot) if dot > 0 && dot + 1 < base.len() => {
                format!("{} ({n}){}", &base[..dot], &base[dot..])
            }
            _ => format!("{base} ({n})"),
        };
    }
    taken.insert((parent, name.to_lowercase()));
    name
}

fn team(seed: u64, group: u32, sizes: &Sizes, created: i64) -> Team {
    let mut rng = Rng::new(mix(seed, 0x7EA0 + u64::from(group)));
    let names = ["General", "Announcements 📢", "Projets en cours"];
    let mut channels = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let serial = u32::try_from(c).unwrap_or(0);
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut messages = Vec::new();
        let mut when_ms = (created + 86_400) * 1000;
        for m in 0..sizes.channel_messages {
            when_ms += i64::try_from(rng.below(3 * 86_400_000)).unwrap_or(0) + 1;
            let top = u32::try_from(messages.len()).unwrap_or(0);
            let replies = rng.below(4);
            let mut last = when_ms;
            let mut entries = vec![(when_ms, None)];
            for _ in 0..replies {
                last += i64::try_from(rng.below(3_600_000)).unwrap_or(0) + 1;
                entries.push((last, Some(top)));
            }
            for (k, (ms, reply_to)) in entries.into_iter().enumerate() {
                let serial = u32::try_from(messages.len()).unwrap_or(0);
                messages.push(Some(ChannelMessage {
                    serial,
                    id: ms.to_string(),
                    reply_to,
                    created_ms: ms,
                    modified_ms: ms,
                    changed_seq: 1,
                    seed: mix(
                        mix(seed, u64::from(group) << 32 | c as u64),
                        (m as u64) << 8 | k as u64,
                    ),
                    json: None,
                    deleted_ms: None,
                }));
            }
            when_ms = last;
        }
        channels.push(Some(Channel {
            serial,
            id: format!("19:{hex}@thread.tacv2"),
            name: (*name).to_string(),
            description: format!("{name} channel"),
            created: created + i64::try_from(c).unwrap_or(0) * 60,
            migrating: false,
            messages,
            log: ChangeLog::default(),
        }));
    }
    Team {
        group,
        channels,
        migrating: false,
    }
}
