//! What this NAS remembers of the apps it registered: the application's object id (a proof of
//! possession names it, so renewing a key needs it) and its tenant, in
//! `app-registrations.json` in the data dir. Written through a temporary file and a rename.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::RegisterError;

const FILE: &str = "app-registrations.json";

/// One registered application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// The application's object id.
    pub object_id: String,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

fn record_err(p: &Path, detail: impl std::fmt::Display) -> RegisterError {
    RegisterError::Record {
        path: p.display().to_string(),
        detail: detail.to_string(),
    }
}

fn load(data_dir: &Path) -> Result<BTreeMap<String, AppRecord>, RegisterError> {
    let p = path(data_dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| record_err(&p, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(record_err(&p, e)),
    }
}

/// The record of `app_id`, if this NAS registered it.
///
/// # Errors
/// The file exists but cannot be read.
pub fn get(data_dir: &Path, app_id: &str) -> Result<Option<AppRecord>, RegisterError> {
    Ok(load(data_dir)?.remove(&app_id.to_lowercase()))
}

/// Remembers `app_id`.
///
/// # Errors
/// The file cannot be read or written.
pub fn put(data_dir: &Path, app_id: &str, record: AppRecord) -> Result<(), RegisterError> {
    let mut all = load(data_dir)?;
    all.insert(app_id.to_lowercase(), record);
    let p = path(data_dir);
    std::fs::create_dir_all(data_dir).map_err(|e| record_err(&p, e))?;
    let json = serde_json::to_vec_pretty(&all).map_err(|e| record_err(&p, e))?;
    let mut tmp = tempfile_in(data_dir).map_err(|e| record_err(&p, e))?;
    tmp.1.write_all(&json).map_err(|e| record_err(&p, e))?;
    tmp.1.sync_all().map_err(|e| record_err(&p, e))?;
    std::fs::rename(&tmp.0, &p).map_err(|e| record_err(&p, e))?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(".{FILE}.{}.tmp", uuid::Uuid::new_v4());
    let p = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)?;
    Ok((p, f))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_round_trip_and_are_case_insensitive() {
        let dir = std::env::temp_dir().join(format!("backhome-record-{}", uuid::Uuid::new_v4()));
        assert_eq!(get(&dir, "A").unwrap(), None);
        let r = AppRecord {
            tenant_id: "t".into(),
            object_id: "o".into(),
        };
        put(&dir, "ABC", r.clone()).unwrap();
        put(&dir, "def", r.clone()).unwrap();
        assert_eq!(get(&dir, "abc").unwrap(), Some(r));
        std::fs::write(dir.join(FILE), b"{broken").unwrap();
        assert!(get(&dir, "abc").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
