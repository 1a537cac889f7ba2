//! Backhome's repository: content-addressed, deduplicated, compressed (optionally encrypted)
//! storage of backup data with a SQLite catalog, crash-safe runs, point-in-time reads, verify,
//! retention with garbage collection, and read-only btrfs snapshots of committed runs.
//!
//! ```
//! use backhome_store::{CreateOptions, NewVersion, NodeKind, ObjectInfo, ObjectKind, Repository};
//! use std::io::Read;
//!
//! # fn main() -> Result<(), backhome_store::StoreError> {
//! let dir = tempfile::tempdir().map_err(|e| backhome_store::StoreError::Invalid(e.to_string()))?;
//! let repo = Repository::create(dir.path().join("repo"), &CreateOptions::default())?;
//!
//! // A run: an object, a folder, a message with content, then commit.
//! let mut run = repo.begin_run()?;
//! let ann = run.upsert_object(&ObjectInfo {
//!     kind: ObjectKind::User,
//!     graph_id: "u-1".into(),
//!     name: "Ann".into(),
//!     address: Some("ann@example.com".into()),
//!     extra: serde_json::Value::Null,
//! })?;
//! let inbox = run.node(ann, "inbox", NodeKind::MailFolder)?;
//! run.put_version(inbox, &NewVersion { name: "Inbox".into(), ..NewVersion::default() })?;
//! let msg = run.node(ann, "m-1", NodeKind::Message)?;
//! let stored = run.put_bytes(b"Subject: hello\r\n\r\nHi!")?;
//! run.put_version(msg, &NewVersion {
//!     parent: Some(inbox),
//!     name: "hello".into(),
//!     content: Some(stored.content),
//!     version_tag: Some("ck-1".into()),
//!     ..NewVersion::default()
//! })?;
//! let report = run.commit(&serde_json::json!({ "items": 1 }))?;
//!
//! // Point-in-time read.
//! let children = repo.list_children(inbox, report.run)?;
//! assert_eq!(children[0].name, "hello");
//! let mut body = String::new();
//! repo.read_content(stored.content.id)?
//!     .read_to_string(&mut body)
//!     .map_err(|e| backhome_store::StoreError::Invalid(e.to_string()))?;
//! assert!(body.ends_with("Hi!"));
//! # Ok(())
//! # }
//! ```

mod catalog_crypt;
mod chunker;
mod crypto;
mod dict;
mod error;
mod fsutil;
mod gc;
mod id;
mod model;
mod pace;
mod pack;
mod read;
mod repo;
mod retention;
mod schema;
mod search_text;
mod snapshot;
mod space;
mod stats;
mod verify;
mod writer;

pub use chunker::{ChunkParams, Chunker, cut_point};
pub use crypto::KdfParams;
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use id::{BlobId, ContentHash, ContentId, NodeId, ObjectId, PackId, RunId, VersionId};
pub use model::{
    ContentRef, CurrentVersion, NewVersion, NodeKind, ObjectInfo, ObjectKind, ObjectRecord,
    RunInfo, RunStatus, SearchHit, SearchText, StoredContent, VersionOutcome, VersionRecord,
};
pub use pace::GcPacing;
pub use read::ContentReader;
pub use repo::{CreateOptions, FORMAT_VERSION, Repository};
pub use retention::{RetentionPolicy, RetentionReport, kept_runs};
pub use schema::LATEST as CATALOG_VERSION;
pub use snapshot::{FsKind, SnapshotInfo, SnapshotPrune, SnapshotState, fs_kind, is_subvolume};
pub use space::SpaceReport;
pub use stats::{PathHit, RunGrowth, SearchFilter, StorageTotals, WorkloadUsage};
pub use verify::{AffectedVersion, DamagedBlob, DamagedPack, VerifyMode, VerifyReport};
pub use writer::{CheckpointPolicy, CommitReport, RunWriter, WriteStats};
