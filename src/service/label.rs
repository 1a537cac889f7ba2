//! The label a repository carries in its root (`backhome-task.json`): the tenant and the task's
//! definition without secrets. It lets a task be relinked to its repository after a reinstall or
//! a move to another NAS, and lets a shared folder be searched for repositories.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::task::TaskSpec;

/// The label file's name in the repository root.
pub const FILE_NAME: &str = "backhome-task.json";

/// What the label says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Label {
    /// The tenant the repository's data came from.
    pub tenant_id: String,
    /// The task's definition (no secrets).
    pub task: TaskSpec,
}

/// Why a label could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a label.
    #[error("{path} is not a Backhome task label: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Writes the label of `spec` into its repository (through a temporary file and a rename).
///
/// # Errors
/// The file cannot be written.
pub fn write(spec: &TaskSpec) -> Result<(), LabelError> {
    let path = spec.repo.join(FILE_NAME);
    let io = |source| LabelError::Io {
        path: path.clone(),
        source,
    };
    let label = Label {
        tenant_id: spec.tenant_id.clone(),
        task: spec.clone(),
    };
    let json = serde_json::to_vec_pretty(&label).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = spec.repo.join(format!(".{FILE_NAME}.tmp"));
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Reads the label of the repository at `repo`; `None` when it has none.
///
/// # Errors
/// The file exists but cannot be read or is not a label.
pub fn read(repo: &Path) -> Result<Option<Label>, LabelError> {
    let path = repo.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| LabelError::Invalid { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LabelError::Io { path, source }),
    }
}

/// Repositories with a label under `root`, at most `depth` folders down (snapshot folders are
/// skipped).
#[must_use]
pub fn find(root: &Path, depth: usize) -> Vec<(PathBuf, Label)> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), 0usize)];
    while let Some((dir, d)) = stack.pop() {
        if dir.join("config.json").is_file()
            && let Ok(Some(label)) = read(&dir)
        {
            out.push((dir, label));
            continue;
        }
        if d >= depth {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('#') || name == "snapshots" {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), d + 1));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_found() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("a/b/repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("config.json"), "{}").unwrap();
        let spec = TaskSpec::new(
            "t",
            "tenant-1",
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            repo.clone(),
        );
        assert!(read(&repo).unwrap().is_none());
        write(&spec).unwrap();
        let l = read(&repo).unwrap().unwrap();
        assert_eq!((l.tenant_id.as_str(), l.task), ("tenant-1", spec));
        let found = find(d.path(), 3);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, repo);
        assert!(find(d.path(), 1).is_empty());
        std::fs::write(repo.join(FILE_NAME), "nonsense").unwrap();
        assert!(read(&repo).is_err());
    }
}
