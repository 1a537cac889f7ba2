//! Open repository handles per task, shared by browsing, search and jobs. A handle is reused
//! while the task's repository is the same one (same folder, same `config.json`), and reopened
//! when the task points elsewhere or the repository was replaced. Reads use SQLite's WAL, so
//! they go on while a backup writes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use backhome_store::{Repository, StoreError};

use crate::task::TaskSpec;

struct Cached {
    root: PathBuf,
    stamp: (SystemTime, u64),
    repo: Repository,
}

/// Repository handles by task name.
#[derive(Default)]
pub struct RepoCache {
    open: Mutex<HashMap<String, Cached>>,
}

impl RepoCache {
    /// The repository of `task`, opened once and reused while it is unchanged. Blocking.
    ///
    /// # Errors
    /// [`StoreError::NotARepository`] when the task has no repository yet; other open failures.
    pub fn get(&self, task: &TaskSpec) -> Result<Repository, StoreError> {
        let config = task.repo.join("config.json");
        let stamp = match std::fs::metadata(&config) {
            Ok(m) => (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
            Err(_) => {
                self.forget(&task.name);
                return Err(StoreError::NotARepository {
                    path: task.repo.clone(),
                });
            }
        };
        if let Ok(map) = self.open.lock()
            && let Some(c) = map.get(&task.name)
            && c.root == task.repo
            && c.stamp == stamp
        {
            return Ok(c.repo.clone());
        }
        let repo = Repository::open(&task.repo, None)?;
        if let Ok(mut map) = self.open.lock() {
            map.insert(
                task.name.clone(),
                Cached {
                    root: task.repo.clone(),
                    stamp,
                    repo: repo.clone(),
                },
            );
        }
        Ok(repo)
    }

    /// Drops the handle of `task` (the task was deleted or moved).
    pub fn forget(&self, task: &str) {
        if let Ok(mut map) = self.open.lock() {
            map.remove(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_while_unchanged_reopened_when_replaced() {
        let d = tempfile::tempdir().unwrap();
        let spec = TaskSpec::new("t", "tenant", "app", d.path().join("r"));
        let cache = RepoCache::default();
        assert!(matches!(
            cache.get(&spec),
            Err(StoreError::NotARepository { .. })
        ));
        Repository::create(&spec.repo, &backhome_store::CreateOptions::default()).unwrap();
        let a = cache.get(&spec).unwrap();
        let b = cache.get(&spec).unwrap();
        assert!(std::ptr::eq(a.root(), b.root()), "handle reused");
        std::fs::remove_dir_all(&spec.repo).unwrap();
        assert!(cache.get(&spec).is_err());
        Repository::create(&spec.repo, &backhome_store::CreateOptions::default()).unwrap();
        let c = cache.get(&spec).unwrap();
        assert!(
            !std::ptr::eq(a.root(), c.root()),
            "a new handle for a new repository"
        );
    }
}
