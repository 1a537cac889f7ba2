//! btrfs: the repository as a subvolume and a read-only snapshot per committed run.
//!
//! Snapshots live in a sibling folder `<repository>.snapshots/run-<id>`. Everything goes through
//! the `btrfs` command of btrfs-progs. Creating subvolumes and snapshots of a subvolume one owns
//! works without root; deleting them needs root, the `user_subvol_rm_allowed` mount option, or
//! (kernel ≥ 4.18) clearing the read-only flag as owner, emptying the snapshot and removing it
//! with `rmdir`. Whatever the kernel refuses is reported as a state, never hidden, and never
//! fails the run.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::RunId;
use crate::repo::Repository;

/// The kind of filesystem holding a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// btrfs.
    Btrfs,
    /// Anything else (its type name from the mount table).
    Other(String),
}

/// What happened with the snapshot of a committed run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SnapshotState {
    /// A read-only snapshot was created.
    Created {
        /// Where.
        path: PathBuf,
    },
    /// Snapshots are not possible here (not btrfs, not a subvolume).
    Unsupported {
        /// Why.
        reason: String,
    },
    /// The snapshot was attempted and refused or failed; the run is committed regardless.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The outcome of deleting a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SnapshotPrune {
    /// Deleted.
    Deleted,
    /// The kernel or filesystem refused; the snapshot is still there.
    Refused {
        /// Why.
        reason: String,
    },
}

/// A snapshot of a committed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The run.
    pub run: RunId,
    /// Its folder (open it with [`Repository::open_read_only`]).
    pub path: PathBuf,
}

/// The filesystem type of the mount holding `path` (from `/proc/self/mountinfo`).
#[must_use]
pub fn fs_kind(path: &Path) -> FsKind {
    let Ok(abs) = std::fs::canonicalize(path) else {
        return FsKind::Other("unknown".into());
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return FsKind::Other("unknown".into());
    };
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(mp), Some(ty)) = (f.get(4), f.get(sep + 1)) else {
            continue;
        };
        let mp = mp.replace("\\040", " ");
        if abs.starts_with(&mp) && best.as_ref().is_none_or(|(l, _)| mp.len() >= *l) {
            best = Some((mp.len(), (*ty).to_string()));
        }
    }
    match best {
        Some((_, t)) if t == "btrfs" => FsKind::Btrfs,
        Some((_, t)) => FsKind::Other(t),
        None => FsKind::Other("unknown".into()),
    }
}

/// Whether `path` is the root of a btrfs subvolume.
#[must_use]
pub fn is_subvolume(path: &Path) -> bool {
    fs_kind(path) == FsKind::Btrfs && std::fs::metadata(path).is_ok_and(|m| m.ino() == 256)
}

fn run_btrfs(args: &[&std::ffi::OsStr]) -> std::result::Result<(), String> {
    let out = Command::new("btrfs")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run btrfs: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

pub(crate) fn create_subvolume(path: &Path) -> std::result::Result<(), String> {
    run_btrfs(&["subvolume".as_ref(), "create".as_ref(), path.as_os_str()])
}

/// `<repository>.snapshots`.
pub(crate) fn snapshot_dir(root: &Path) -> PathBuf {
    let mut s = root.as_os_str().to_owned();
    s.push(".snapshots");
    PathBuf::from(s)
}

pub(crate) fn after_commit(repo: &Repository, conn: &Connection, run: RunId) -> SnapshotState {
    if !repo.is_subvolume() {
        return SnapshotState::Unsupported {
            reason: match fs_kind(repo.root()) {
                FsKind::Btrfs => "the repository folder is not a btrfs subvolume".into(),
                FsKind::Other(t) => format!("the repository is on {t}, not btrfs"),
            },
        };
    }
    // The snapshot must hold a self-contained catalog: fold the WAL into the database first.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        return SnapshotState::Failed {
            reason: format!("catalog checkpoint failed: {e}"),
        };
    }
    let dir = snapshot_dir(repo.root());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return SnapshotState::Failed {
            reason: format!("cannot create {}: {e}", dir.display()),
        };
    }
    let target = dir.join(format!("run-{}", run.0));
    match run_btrfs(&[
        "subvolume".as_ref(),
        "snapshot".as_ref(),
        "-r".as_ref(),
        repo.root().as_os_str(),
        target.as_os_str(),
    ]) {
        Ok(()) => SnapshotState::Created { path: target },
        Err(reason) => {
            tracing::warn!(%reason, run = run.0, "snapshot refused");
            SnapshotState::Failed { reason }
        }
    }
}

/// Deletes a snapshot subvolume, as root or as its non-root owner where the kernel allows.
pub(crate) fn delete_snapshot(path: &Path) -> SnapshotPrune {
    let first = match run_btrfs(&["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()]) {
        Ok(()) => return SnapshotPrune::Deleted,
        Err(e) => e,
    };
    // Unprivileged owner: clear the read-only flag, empty it, rmdir the empty subvolume.
    if let Err(e) = run_btrfs(&[
        "property".as_ref(),
        "set".as_ref(),
        "-f".as_ref(),
        "-ts".as_ref(),
        path.as_os_str(),
        "ro".as_ref(),
        "false".as_ref(),
    ]) {
        return SnapshotPrune::Refused {
            reason: format!("subvolume delete: {first}; clearing read-only: {e}"),
        };
    }
    let emptied = std::fs::read_dir(path).and_then(|entries| {
        for e in entries {
            let e = e?;
            if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
        std::fs::remove_dir(path)
    });
    match emptied {
        Ok(()) => SnapshotPrune::Deleted,
        Err(e) => {
            let _ = run_btrfs(&[
                "property".as_ref(),
                "set".as_ref(),
                "-ts".as_ref(),
                path.as_os_str(),
                "ro".as_ref(),
                "true".as_ref(),
            ]);
            SnapshotPrune::Refused {
                reason: format!("subvolume delete: {first}; removing as owner: {e}"),
            }
        }
    }
}

impl Repository {
    /// The snapshots of committed runs, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let dir = snapshot_dir(self.root());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("run-").and_then(|n| n.parse().ok()) {
                out.push(SnapshotInfo {
                    run: RunId(id),
                    path: e.path(),
                });
            }
        }
        out.sort_by_key(|s| s.run);
        Ok(out)
    }

    /// Deletes the snapshot of `run`, reporting a refusal as a value.
    pub fn delete_snapshot(&self, run: RunId) -> SnapshotPrune {
        let p = snapshot_dir(self.root()).join(format!("run-{}", run.0));
        if !p.exists() {
            return SnapshotPrune::Deleted;
        }
        delete_snapshot(&p)
    }
}
