//! Progress of a run, readable while it goes (by the service and the command line).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one run. Cheap to update from many tasks at once.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items seen for the first time.
    pub items_added: AtomicU64,
    /// Items stored as a new version of a known item.
    pub items_changed: AtomicU64,
    /// Items whose deletion was recorded.
    pub items_deleted: AtomicU64,
    /// Items looked at and found unchanged.
    pub items_unchanged: AtomicU64,
    /// Content bytes downloaded from Graph.
    pub bytes_downloaded: AtomicU64,
    /// Items that failed (retried next run).
    pub item_errors: AtomicU64,
    objects: Mutex<BTreeMap<String, ObjectProgress>>,
}

/// Progress of one protected object.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ObjectProgress {
    /// Items stored or deleted for this object.
    pub items: u64,
    /// Bytes downloaded for this object.
    pub bytes: u64,
    /// What is being done now (`mail: Inbox`), empty when done.
    pub activity: String,
    /// Whether the object is finished.
    pub done: bool,
}

/// A point-in-time copy of [`Progress`].
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Items seen for the first time.
    pub items_added: u64,
    /// Items stored as a new version.
    pub items_changed: u64,
    /// Deletions recorded.
    pub items_deleted: u64,
    /// Items found unchanged.
    pub items_unchanged: u64,
    /// Content bytes downloaded.
    pub bytes_downloaded: u64,
    /// Items that failed.
    pub item_errors: u64,
    /// Per protected object, by name.
    pub objects: BTreeMap<String, ObjectProgress>,
}

impl Progress {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records what an object is doing now.
    pub fn activity(&self, object: &str, what: &str) {
        if let Ok(mut m) = self.objects.lock() {
            what.clone_into(&mut m.entry(object.to_owned()).or_default().activity);
        }
    }

    /// Counts an item and its bytes for an object.
    pub fn object_item(&self, object: &str, bytes: u64) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            o.items += 1;
            o.bytes += bytes;
        }
    }

    /// Marks an object finished.
    pub fn object_done(&self, object: &str) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            o.done = true;
            o.activity.clear();
        }
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProgressSnapshot {
            items_added: load(&self.items_added),
            items_changed: load(&self.items_changed),
            items_deleted: load(&self.items_deleted),
            items_unchanged: load(&self.items_unchanged),
            bytes_downloaded: load(&self.bytes_downloaded),
            item_errors: load(&self.item_errors),
            objects: self.objects.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}
