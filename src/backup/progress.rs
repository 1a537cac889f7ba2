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
    /// Protected objects (accounts, groups, sites) the run will back up, once discovered.
    pub objects_total: AtomicU64,
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
    /// Containers (mail folders, calendars, contact folders, drives, libraries, channels) of
    /// the object: those listed so far plus one for each workload not listed yet.
    pub containers_total: u64,
    /// Containers walked to the end.
    pub containers_done: u64,
    /// Workloads whose containers are not listed yet; 0 once `containers_total` is final.
    pub containers_pending: u64,
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
    /// Protected objects the run will back up (0 until discovery is done).
    pub objects_total: u64,
    /// Protected objects finished.
    pub objects_done: u64,
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
            // Called for every item: look the object up before allocating its name.
            if !m.contains_key(object) {
                m.insert(object.to_owned(), ObjectProgress::default());
            }
            if let Some(o) = m.get_mut(object) {
                o.items += 1;
                o.bytes += bytes;
            }
        }
    }

    /// Records how many protected objects the run will back up.
    pub fn objects_planned(&self, n: u64) {
        self.objects_total.store(n, Ordering::Relaxed);
    }

    /// Starts an object with `workloads` workloads whose containers are not listed yet (each
    /// counts as one container until it is).
    pub fn object_start(&self, object: &str, workloads: u64) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            o.containers_pending += workloads;
            o.containers_total += workloads;
        }
    }

    /// One workload of an object listed its `n` containers.
    pub fn containers_listed(&self, object: &str, n: u64) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            if o.containers_pending > 0 {
                o.containers_pending -= 1;
                o.containers_total -= 1;
            }
            o.containers_total += n;
        }
    }

    /// One container of an object was walked to the end.
    pub fn container_done(&self, object: &str) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            o.containers_done += 1;
            o.containers_total = o.containers_total.max(o.containers_done);
        }
    }

    /// Marks an object finished. Workloads that never listed containers (nothing to back up)
    /// leave the total.
    pub fn object_done(&self, object: &str) {
        if let Ok(mut m) = self.objects.lock() {
            let o = m.entry(object.to_owned()).or_default();
            o.done = true;
            o.activity.clear();
            o.containers_total -= o.containers_pending.min(o.containers_total);
            o.containers_pending = 0;
        }
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let objects = self.objects.lock().map(|m| m.clone()).unwrap_or_default();
        ProgressSnapshot {
            items_added: load(&self.items_added),
            items_changed: load(&self.items_changed),
            items_deleted: load(&self.items_deleted),
            items_unchanged: load(&self.items_unchanged),
            bytes_downloaded: load(&self.bytes_downloaded),
            item_errors: load(&self.item_errors),
            objects_total: load(&self.objects_total),
            objects_done: objects.values().filter(|o| o.done).count() as u64,
            objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_replace_their_workload_placeholders() {
        let p = Progress::default();
        p.objects_planned(2);
        p.object_start("a", 3);
        let o = |p: &Progress| p.snapshot().objects["a"].clone();
        assert_eq!((o(&p).containers_total, o(&p).containers_pending), (3, 3));
        p.containers_listed("a", 4);
        assert_eq!((o(&p).containers_total, o(&p).containers_pending), (6, 2));
        p.container_done("a");
        p.containers_listed("a", 0);
        assert_eq!((o(&p).containers_done, o(&p).containers_total), (1, 5));
        p.object_done("a");
        assert_eq!((o(&p).containers_total, o(&p).containers_pending), (4, 0));
        let s = p.snapshot();
        assert_eq!((s.objects_total, s.objects_done), (2, 1));
    }
}
