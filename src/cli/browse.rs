//! Point-in-time browsing of a repository by path: what `ls` and `cat` print.

use backhome_store::{
    NodeId, ObjectKind, ObjectRecord, Repository, RunId, StoreError, VersionRecord,
};
use serde::Serialize;

use crate::paths;

/// One entry of a listing.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Display name.
    pub name: String,
    /// Full path, accepted as is by `cat`, `restore` and `export`.
    pub path: String,
    /// `dir` for the synthetic top levels, else the node kind (`message`, `file`, `mail_folder` …).
    pub kind: String,
    /// Graph id (empty for synthetic entries).
    pub graph_id: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time (RFC 3339), when known.
    pub modified: Option<String>,
}

/// Why a path could not be browsed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The path does not exist at that point in time.
    #[error("no such path at run {run}: {path}")]
    NotFound {
        /// The path.
        path: String,
        /// The run.
        run: i64,
    },
    /// The path is malformed.
    #[error("{0}")]
    BadPath(String),
    /// The repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a path leads.
pub enum Target {
    /// A synthetic folder (`/`, `/users`, an object): its entries.
    Virtual(Vec<Entry>),
    /// A node.
    Node(Box<VersionRecord>),
}

const TOP: [(&str, ObjectKind); 4] = [
    ("users", ObjectKind::User),
    ("groups", ObjectKind::Group),
    ("sites", ObjectKind::Site),
    ("teams", ObjectKind::Group),
];

/// The path segment of an object: its address, or a site's name (as `ls` prints it).
pub fn object_segment(o: &ObjectRecord) -> String {
    match o.info.kind {
        ObjectKind::Site => o
            .info
            .extra
            .get("name")
            .and_then(|v| v.as_str())
            .map_or_else(|| o.info.name.clone(), str::to_owned),
        _ => o
            .info
            .address
            .clone()
            .unwrap_or_else(|| o.info.graph_id.clone()),
    }
}

fn entry(v: &VersionRecord, path: String) -> Entry {
    Entry {
        name: v.name.clone(),
        path,
        kind: v.kind.as_str().to_owned(),
        graph_id: v.graph_id.clone(),
        size: v.size,
        modified: v.modified.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
    }
}

fn dir(name: &str, path: String) -> Entry {
    Entry {
        name: name.to_owned(),
        path,
        kind: "dir".into(),
        graph_id: String::new(),
        size: 0,
        modified: None,
    }
}

/// Resolves `path` at run `at`.
///
/// # Errors
/// [`BrowseError::NotFound`] when nothing is there at that run.
pub fn resolve(repo: &Repository, at: RunId, path: &str) -> Result<Target, BrowseError> {
    let names = paths::split(path).map_err(BrowseError::BadPath)?;
    let not_found = || BrowseError::NotFound {
        path: path.to_owned(),
        run: at.0,
    };
    let Some(top) = names.first() else {
        return Ok(Target::Virtual(
            TOP.iter()
                .map(|(t, _)| dir(t, paths::join(&[*t])))
                .collect(),
        ));
    };
    let (_, kind) = TOP.iter().find(|(t, _)| t == top).ok_or_else(not_found)?;
    let teams = top == "teams";
    let objects: Vec<ObjectRecord> = repo
        .objects()?
        .into_iter()
        .filter(|o| {
            o.info.kind == *kind
                && (!teams
                    || o.info
                        .extra
                        .get("team")
                        .and_then(serde_json::Value::as_bool)
                        == Some(true))
        })
        .collect();
    let Some(obj_name) = names.get(1) else {
        let mut out = Vec::new();
        for o in &objects {
            if !repo.roots(o.id, at)?.is_empty() {
                let seg = object_segment(o);
                out.push(dir(&seg, paths::join(&[top.as_str(), seg.as_str()])));
            }
        }
        return Ok(Target::Virtual(out));
    };
    let obj = objects
        .iter()
        .find(|o| object_segment(o).eq_ignore_ascii_case(obj_name))
        .ok_or_else(not_found)?;
    let mut roots = repo.roots(obj.id, at)?;
    if teams {
        roots.retain(|r| r.name == "channels");
    } else if *kind == ObjectKind::Group {
        roots.retain(|r| r.name != "channels");
    }
    let prefix = vec![top.clone(), object_segment(obj)];
    let mut rest = names[2..].iter();
    let mut current: VersionRecord = if teams {
        let root = roots.into_iter().next().ok_or_else(not_found)?;
        match rest.next() {
            None => return Ok(Target::Node(Box::new(root))),
            Some(n) => repo
                .lookup_child_by_name(root.node, n, at)?
                .ok_or_else(not_found)?,
        }
    } else {
        match rest.next() {
            None => {
                let out = roots
                    .iter()
                    .map(|r| {
                        let mut p = prefix.clone();
                        p.push(r.name.clone());
                        entry(r, paths::join(&p))
                    })
                    .collect();
                return Ok(Target::Virtual(out));
            }
            Some(n) => roots
                .into_iter()
                .find(|r| &r.name == n)
                .ok_or_else(not_found)?,
        }
    };
    for n in rest {
        current = repo
            .lookup_child_by_name(current.node, n, at)?
            .ok_or_else(not_found)?;
    }
    Ok(Target::Node(Box::new(current)))
}

/// The entries under `path` at run `at`: its children, or with `recursive` its whole subtree.
///
/// # Errors
/// As [`resolve`].
pub fn list(
    repo: &Repository,
    at: RunId,
    path: &str,
    recursive: bool,
) -> Result<Vec<Entry>, BrowseError> {
    let base = paths::split(path).map_err(BrowseError::BadPath)?;
    match resolve(repo, at, path)? {
        Target::Virtual(entries) => {
            if !recursive {
                return Ok(entries);
            }
            let mut out = Vec::new();
            for e in entries {
                let sub = if e.kind == "dir" || e.graph_id.starts_with("root:") {
                    list(repo, at, &e.path, true)?
                } else {
                    Vec::new()
                };
                out.push(e);
                out.extend(sub);
            }
            Ok(out)
        }
        Target::Node(v) => {
            let mut out = Vec::new();
            walk(repo, at, v.node, &base, recursive, &mut out)?;
            Ok(out)
        }
    }
}

fn walk(
    repo: &Repository,
    at: RunId,
    node: NodeId,
    prefix: &[String],
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Result<(), BrowseError> {
    for c in repo.list_children(node, at)? {
        let mut p = prefix.to_vec();
        p.push(c.name.clone());
        out.push(entry(&c, paths::join(&p)));
        if recursive {
            walk(repo, at, c.node, &p, true, out)?;
        }
    }
    Ok(())
}
