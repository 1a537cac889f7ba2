//! Types of the tenant model.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;

use super::ChangeLog;

/// What kind of mailbox a user has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserKind {
    /// A licensed member with a mailbox and a OneDrive.
    Member,
    /// A shared mailbox (disabled account, no licence, no OneDrive).
    Shared,
    /// A user without an Exchange Online mailbox.
    NoMailbox,
}

/// Mailbox numbers of group mailboxes start here (user mailboxes use the user index).
pub const GROUP_MAILBOX_BASE: u32 = 0x4000_0000;

/// A lazily generated mailbox.
pub struct MailboxCell {
    /// Mailbox number (the user's index).
    pub idx: u32,
    /// Seed of its content.
    pub seed: u64,
    /// Number of generated messages.
    pub messages: usize,
    /// Number of generated events.
    pub events: usize,
    /// Number of generated contacts.
    pub contacts: usize,
    cell: OnceLock<RwLock<Mailbox>>,
}

impl MailboxCell {
    /// A cell that generates its content on first use.
    #[must_use]
    pub fn new(idx: u32, seed: u64, messages: usize, events: usize, contacts: usize) -> Self {
        Self {
            idx,
            seed,
            messages,
            events,
            contacts,
            cell: OnceLock::new(),
        }
    }

    pub(super) fn get_or_init(&self, f: impl FnOnce() -> RwLock<Mailbox>) -> &RwLock<Mailbox> {
        self.cell.get_or_init(f)
    }
}

/// A lazily generated drive.
pub struct DriveCell {
    /// Drive number.
    pub idx: u32,
    /// Seed of its content.
    pub seed: u64,
    /// Number of generated files.
    pub files: usize,
    cell: OnceLock<RwLock<Drive>>,
}

impl DriveCell {
    /// A cell that generates its content on first use.
    #[must_use]
    pub fn new(idx: u32, seed: u64, files: usize) -> Self {
        Self {
            idx,
            seed,
            files,
            cell: OnceLock::new(),
        }
    }

    pub(super) fn get_or_init(&self, f: impl FnOnce() -> RwLock<Drive>) -> &RwLock<Drive> {
        self.cell.get_or_init(f)
    }
}

/// Directory objects.
#[derive(Default)]
pub struct Directory {
    /// Users; the index is also the mailbox number.
    pub users: Vec<User>,
    /// Users removed (for `/users/delta`).
    pub user_log: ChangeLog,
    /// Groups.
    pub groups: Vec<Group>,
    /// Groups removed (for `/groups/delta`).
    pub group_log: ChangeLog,
    /// SharePoint sites.
    pub sites: Vec<Site>,
    /// Drives (OneDrives and document libraries).
    pub drives: Vec<DriveRef>,
}

/// A user.
pub struct User {
    /// Index (mailbox number).
    pub idx: u32,
    /// Object id.
    pub id: uuid::Uuid,
    /// User principal name.
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Given name.
    pub given_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Office.
    pub office: Option<String>,
    /// Mailbox kind.
    pub kind: UserKind,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Soft-deleted.
    pub deleted: bool,
    /// OneDrive number.
    pub drive: Option<u32>,
    /// Mailbox cell.
    pub mailbox: Arc<MailboxCell>,
}

/// A Microsoft 365 group.
pub struct Group {
    /// Index.
    pub idx: u32,
    /// Object id.
    pub id: uuid::Uuid,
    /// Display name.
    pub display_name: String,
    /// Mail nickname.
    pub nickname: String,
    /// Description.
    pub description: String,
    /// Member user indexes.
    pub members: Vec<u32>,
    /// Site of the group.
    pub site: Option<u32>,
    /// Team, when the group is team-enabled.
    pub team: Option<Arc<RwLock<Team>>>,
    /// The group mailbox (its calendar; mailbox number [`GROUP_MAILBOX_BASE`] + index).
    pub mailbox: Arc<MailboxCell>,
    /// The group mailbox's conversations, threads and posts.
    pub conversations: Arc<crate::conversations::ConversationsCell>,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Deleted.
    pub deleted: bool,
    /// Creation time.
    pub created: i64,
}

/// A SharePoint site.
pub struct Site {
    /// Index.
    pub idx: u32,
    /// Composite id `host,siteGuid,webGuid`.
    pub id: String,
    /// URL name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Drives (document libraries).
    pub drives: Vec<u32>,
    /// Owning group.
    pub group: Option<u32>,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Deleted.
    pub deleted: bool,
    /// Creation time.
    pub created: i64,
}

/// Who owns a drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriveOwner {
    /// A user's OneDrive.
    User(u32),
    /// A document library of a site.
    Site(u32),
}

/// A drive entry in the directory.
pub struct DriveRef {
    /// Drive number.
    pub idx: u32,
    /// Graph id.
    pub id: String,
    /// Library name.
    pub name: String,
    /// Owner.
    pub owner: DriveOwner,
    /// Deleted.
    pub deleted: bool,
    /// Content cell.
    pub cell: Arc<DriveCell>,
}

/// Content of a message beyond its metadata.
#[derive(Clone, Debug)]
pub enum MessageBody {
    /// Generated from the message seed.
    Generated,
    /// Created from MIME: the bytes as uploaded.
    Mime(Bytes),
    /// Created from JSON: the normalised object.
    Json(Arc<serde_json::Value>),
}

/// A mail folder.
#[derive(Clone, Debug)]
pub struct MailFolder {
    /// Serial (0 is the root, "Top of Information Store").
    pub serial: u32,
    /// Parent folder, `None` for the root.
    pub parent: Option<u32>,
    /// Display name.
    pub name: String,
    /// Well-known name.
    pub well_known: Option<&'static str>,
    /// Hidden folder.
    pub hidden: bool,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Messages removed from this folder.
    pub log: ChangeLog,
}

/// A message (metadata only).
#[derive(Clone, Debug)]
pub struct Message {
    /// Serial in the mailbox.
    pub serial: u32,
    /// Folder serial.
    pub folder: u32,
    /// Move generation (changes the non-immutable id).
    pub generation: u32,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Content seed.
    pub seed: u64,
    /// Received time (Unix seconds).
    pub received: i64,
    /// Sent time (Unix seconds).
    pub sent: i64,
    /// Last modification (Unix seconds).
    pub modified: i64,
    /// Read.
    pub is_read: bool,
    /// Draft.
    pub is_draft: bool,
    /// Follow-up flag: 0 notFlagged, 1 flagged, 2 complete.
    pub flag: u8,
    /// Body source.
    pub body: MessageBody,
}

/// A calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    /// Serial.
    pub serial: u32,
    /// Name.
    pub name: String,
    /// Default calendar.
    pub is_default: bool,
    /// Events removed from the calendar.
    pub log: ChangeLog,
}

/// An event (single instance or series master).
#[derive(Clone, Debug)]
pub struct Event {
    /// Serial.
    pub serial: u32,
    /// Calendar serial.
    pub calendar: u32,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Content seed.
    pub seed: u64,
    /// Created event body, if created through the API.
    pub json: Option<Arc<serde_json::Value>>,
    /// Created/modified time.
    pub modified: i64,
}

/// A contact folder.
#[derive(Clone, Debug)]
pub struct ContactFolder {
    /// Serial.
    pub serial: u32,
    /// Parent folder.
    pub parent: Option<u32>,
    /// Name.
    pub name: String,
    /// Contacts removed.
    pub log: ChangeLog,
}

/// A contact.
#[derive(Clone, Debug)]
pub struct Contact {
    /// Serial.
    pub serial: u32,
    /// Folder serial.
    pub folder: u32,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Content seed.
    pub seed: u64,
    /// Created contact body, if created through the API.
    pub json: Option<Arc<serde_json::Value>>,
    /// Created/modified time.
    pub modified: i64,
}

/// A mailbox with its mail, calendars and contacts.
#[derive(Default)]
pub struct Mailbox {
    /// Mailbox number.
    pub idx: u32,
    /// Folders by serial.
    pub folders: Vec<Option<MailFolder>>,
    /// Messages by serial.
    pub messages: Vec<Option<Message>>,
    /// Folders removed (for `mailFolders/delta`).
    pub folder_log: ChangeLog,
    /// Calendars by serial.
    pub calendars: Vec<Option<Calendar>>,
    /// Events by serial.
    pub events: Vec<Option<Event>>,
    /// Removals of events anywhere in the mailbox (for `calendarView/delta`).
    pub event_log: ChangeLog,
    /// Contact folders by serial.
    pub contact_folders: Vec<Option<ContactFolder>>,
    /// Contacts by serial.
    pub contacts: Vec<Option<Contact>>,
}

impl Mailbox {
    /// A live folder.
    #[must_use]
    pub fn folder(&self, serial: u32) -> Option<&MailFolder> {
        self.folders.get(serial as usize)?.as_ref()
    }

    /// A live message.
    #[must_use]
    pub fn message(&self, serial: u32) -> Option<&Message> {
        self.messages.get(serial as usize)?.as_ref()
    }

    /// Folder serial for a well-known name.
    #[must_use]
    pub fn well_known(&self, name: &str) -> Option<u32> {
        let lower = name.to_ascii_lowercase();
        self.folders
            .iter()
            .flatten()
            .find(|f| f.well_known == Some(lower.as_str()))
            .map(|f| f.serial)
    }

    /// Path of a folder from the root ("Inbox/Projects/2026").
    #[must_use]
    pub fn folder_path(&self, serial: u32) -> String {
        let mut parts = Vec::new();
        let mut cur = self.folder(serial);
        while let Some(f) = cur {
            if f.parent.is_none() {
                break;
            }
            parts.push(f.name.clone());
            cur = f.parent.and_then(|p| self.folder(p));
        }
        parts.reverse();
        parts.join("/")
    }
}

/// Where the bytes of a file version come from.
#[derive(Clone, Debug)]
pub enum FileContent {
    /// Generated from a seed; `text` files are readable words, others random bytes.
    Generated {
        /// Seed.
        seed: u64,
        /// Text or binary.
        text: bool,
    },
    /// Uploaded bytes (small simple uploads and control API content).
    Stored(Bytes),
    /// Uploaded bytes spooled to a file (upload sessions).
    Spooled(Arc<crate::spool::SpoolFile>),
}

/// One version of a file.
#[derive(Clone, Debug)]
pub struct FileVersion {
    /// Version number (`"{n}.0"`).
    pub number: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub modified: i64,
    /// Bytes.
    pub content: FileContent,
}

/// A drive item (file or folder).
#[derive(Clone, Debug)]
pub struct DriveItem {
    /// Serial (0 is the root).
    pub serial: u32,
    /// Parent serial.
    pub parent: Option<u32>,
    /// Name.
    pub name: String,
    /// Service-side creation time.
    pub created: i64,
    /// Service-side modification time.
    pub modified: i64,
    /// Client-side creation time (`fileSystemInfo`).
    pub fs_created: i64,
    /// Client-side modification time (`fileSystemInfo`).
    pub fs_modified: i64,
    /// Sequence number of the last change.
    pub changed_seq: u64,
    /// Bumped on every change (eTag).
    pub etag: u32,
    /// Bumped on content changes (cTag).
    pub ctag: u32,
    /// File versions, oldest first; empty for folders.
    pub versions: Vec<FileVersion>,
    /// Folder or file.
    pub is_folder: bool,
}

impl DriveItem {
    /// The current version of a file.
    #[must_use]
    pub fn current(&self) -> Option<&FileVersion> {
        self.versions.last()
    }
}

/// A drive's items.
#[derive(Default)]
pub struct Drive {
    /// Drive number.
    pub idx: u32,
    /// Items by serial.
    pub items: Vec<Option<DriveItem>>,
    /// Removed items.
    pub log: ChangeLog,
}

impl Drive {
    /// A live item.
    #[must_use]
    pub fn item(&self, serial: u32) -> Option<&DriveItem> {
        self.items.get(serial as usize)?.as_ref()
    }

    /// The child of `parent` called `name` (case-insensitive, as in OneDrive).
    #[must_use]
    pub fn child(&self, parent: u32, name: &str) -> Option<&DriveItem> {
        let lower = name.to_lowercase();
        self.items
            .iter()
            .flatten()
            .find(|i| i.parent == Some(parent) && i.name.to_lowercase() == lower)
    }

    /// Path of an item from the root ("Projects/Report.docx").
    #[must_use]
    pub fn path(&self, serial: u32) -> String {
        let mut parts = Vec::new();
        let mut cur = self.item(serial);
        while let Some(i) = cur {
            if i.parent.is_none() {
                break;
            }
            parts.push(i.name.clone());
            cur = i.parent.and_then(|p| self.item(p));
        }
        parts.reverse();
        parts.join("/")
    }
}

/// A team.
pub struct Team {
    /// Group index.
    pub group: u32,
    /// Channels by serial.
    pub channels: Vec<Option<Channel>>,
    /// Created in migration mode and not completed.
    pub migrating: bool,
}

/// A channel.
pub struct Channel {
    /// Serial.
    pub serial: u32,
    /// Id (`19:…@thread.tacv2`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub created: i64,
    /// In migration mode.
    pub migrating: bool,
    /// Messages (top-level and replies) by serial.
    pub messages: Vec<Option<ChannelMessage>>,
    /// Removed messages.
    pub log: ChangeLog,
}

/// A channel message or reply.
#[derive(Clone, Debug)]
pub struct ChannelMessage {
    /// Serial.
    pub serial: u32,
    /// Id (milliseconds since the epoch, as Teams prints them).
    pub id: String,
    /// Serial of the message this replies to.
    pub reply_to: Option<u32>,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Modification time (Unix milliseconds).
    pub modified_ms: i64,
    /// Sequence number of the last change (of the message or one of its replies).
    pub changed_seq: u64,
    /// Content seed.
    pub seed: u64,
    /// Posted body (imports and control API), if not generated.
    pub json: Option<Arc<serde_json::Value>>,
    /// Soft-deleted (Unix milliseconds).
    pub deleted_ms: Option<i64>,
}
