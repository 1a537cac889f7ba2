//! Domain types of the catalog: protected objects, nodes, versions, runs.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::id::{ContentHash, ContentId, NodeId, ObjectId, RunId, VersionId};

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $v,)* }

        impl $name {
            /// The stable text form stored in the catalog.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s,)* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(StoreError::Invalid(format!(concat!("unknown ", stringify!($name), " {:?}"), s))),
                }
            }
        }
    };
}

str_enum!(
    /// What a protected object is.
    ObjectKind {
        /// A user (mailbox, OneDrive).
        User = "user",
        /// A Microsoft 365 group.
        Group = "group",
        /// A SharePoint site.
        Site = "site",
        /// A team.
        Team = "team",
    }
);

str_enum!(
    /// What a node of the catalog tree is.
    NodeKind {
        /// The root of one workload of an object (mailbox, calendar, contacts, drive, …).
        Root = "root",
        /// A mail folder.
        MailFolder = "mail_folder",
        /// A message.
        Message = "message",
        /// A calendar.
        Calendar = "calendar",
        /// An event.
        Event = "event",
        /// A contact folder.
        ContactFolder = "contact_folder",
        /// A contact.
        Contact = "contact",
        /// A drive or document library.
        Drive = "drive",
        /// A folder of a drive.
        DriveFolder = "drive_folder",
        /// A file.
        File = "file",
        /// A Teams channel.
        Channel = "channel",
        /// A message in a channel.
        ChannelMessage = "channel_message",
        /// An attachment stored as its own node.
        Attachment = "attachment",
    }
);

str_enum!(
    /// The state of a run.
    RunStatus {
        /// Being written (or killed and waiting to be resumed).
        Running = "running",
        /// Committed: visible to point-in-time reads.
        Committed = "committed",
        /// Failed: its catalog changes were rolled back.
        Failed = "failed",
        /// Removed by retention.
        Pruned = "pruned",
    }
);

/// A protected object as given by the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// User, group, site or team.
    pub kind: ObjectKind,
    /// Its Graph id.
    pub graph_id: String,
    /// Display name.
    pub name: String,
    /// E-mail address or URL.
    pub address: Option<String>,
    /// Anything else worth keeping.
    pub extra: serde_json::Value,
}

/// A protected object stored in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Its id in the catalog.
    pub id: ObjectId,
    /// What it is.
    pub info: ObjectInfo,
}

/// A stored content: its catalog id, length and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRef {
    /// Catalog id.
    pub id: ContentId,
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3 over the whole stream (keyed when encrypted).
    pub hash: ContentHash,
}

/// What storing a content did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredContent {
    /// The content.
    pub content: ContentRef,
    /// Whether the whole content already existed.
    pub deduplicated: bool,
    /// Plain bytes of its blobs that were not stored before (0 when fully deduplicated).
    pub new_bytes: u64,
}

/// Text indexed for full-text search with a version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchText {
    /// Subject or name.
    pub subject: String,
    /// Sender.
    pub sender: String,
    /// Recipients.
    pub recipients: String,
    /// Plain-text body.
    pub body: String,
    /// Path of the item.
    pub path: String,
}

/// A version of a node as written by a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewVersion {
    /// Parent node (`None` for a root).
    pub parent: Option<NodeId>,
    /// Name (folder name, subject, file name).
    pub name: String,
    /// Stored content, if the node has one.
    pub content: Option<ContentRef>,
    /// Size in bytes (taken from the content when there is one).
    pub size: u64,
    /// Last modified time at the source.
    pub modified: Option<OffsetDateTime>,
    /// Version tag at the source (eTag, changeKey).
    pub version_tag: Option<String>,
    /// Metadata (JSON).
    pub metadata: serde_json::Value,
    /// Text for search, if the version is to be searchable.
    pub search: Option<SearchText>,
}

/// What [`crate::RunWriter::put_version`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOutcome {
    /// The node had no open version: a new one was created.
    Created(VersionId),
    /// The open version is identical: nothing was written.
    Unchanged(VersionId),
    /// The open version was closed and a new one created.
    Replaced(VersionId),
    /// The open version was written earlier in the same run and was updated in place.
    Updated(VersionId),
}

/// A node version as read from the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// The version.
    pub id: VersionId,
    /// Its node.
    pub node: NodeId,
    /// The node's object.
    pub object: ObjectId,
    /// The node's Graph id.
    pub graph_id: String,
    /// The node's kind.
    pub kind: NodeKind,
    /// Parent node.
    pub parent: Option<NodeId>,
    /// Name.
    pub name: String,
    /// Content.
    pub content: Option<ContentRef>,
    /// Size.
    pub size: u64,
    /// Modified time at the source.
    pub modified: Option<OffsetDateTime>,
    /// Version tag at the source.
    pub version_tag: Option<String>,
    /// Metadata.
    pub metadata: serde_json::Value,
    /// First run that saw this version.
    pub first_run: RunId,
    /// Last run that saw it (`None`: still the current version).
    pub last_run: Option<RunId>,
}

/// The newest version of a node, including what an unfinished run already wrote: what the
/// engine compares with the source to decide whether to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentVersion {
    /// The node.
    pub node: NodeId,
    /// The version.
    pub version: VersionId,
    /// Version tag at the source.
    pub version_tag: Option<String>,
    /// Size.
    pub size: u64,
    /// Content id.
    pub content: Option<ContentId>,
}

/// A run as recorded in the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The run.
    pub id: RunId,
    /// When it started.
    pub started: OffsetDateTime,
    /// When it was committed or failed.
    pub finished: Option<OffsetDateTime>,
    /// Its state.
    pub status: RunStatus,
    /// Counters given at commit.
    pub counters: serde_json::Value,
    /// The snapshot state recorded at commit (JSON of [`crate::SnapshotState`]).
    pub snapshot: Option<String>,
}

/// A full-text search hit.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The version found.
    pub version: VersionRecord,
    /// Snippet of the matching text.
    pub snippet: String,
}

pub(crate) fn to_unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_unix(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
