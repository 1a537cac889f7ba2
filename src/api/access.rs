//! Who may open what: the one place that decides. Administrators open everything; a portal user
//! opens only the Microsoft 365 user accounts mapped to them, and only in tasks with the portal
//! on. Everything a portal user may not see answers 404, so nothing reveals that it exists.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller};
use crate::paths;
use crate::task::TaskSpec;

/// The mapping file's name in the data dir.
const FILE_NAME: &str = "portal-mapping.json";

/// One Microsoft 365 account a DSM user may open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MappedAccount {
    /// The task.
    pub task: String,
    /// The account's user principal name.
    pub account: String,
}

/// Mappings the administrators set; users without one are mapped automatically, by their e-mail
/// address matching an account's user principal name.
pub struct Mapping {
    path: PathBuf,
    explicit: RwLock<BTreeMap<String, Vec<MappedAccount>>>,
}

impl Mapping {
    /// Reads the mapping file in `data_dir` (none yet: nobody is mapped explicitly).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(data_dir: &Path) -> Result<Self, ApiError> {
        let path = data_dir.join(FILE_NAME);
        let explicit = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(ApiError::Internal(format!("{}: {e}", path.display()))),
        };
        Ok(Self {
            path,
            explicit: RwLock::new(explicit),
        })
    }

    /// Every explicit mapping, by DSM user (lower case).
    #[must_use]
    pub fn all(&self) -> BTreeMap<String, Vec<MappedAccount>> {
        self.explicit.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The explicit mapping of `user`, if an administrator set one.
    #[must_use]
    pub fn explicit(&self, user: &str) -> Option<Vec<MappedAccount>> {
        self.explicit
            .read()
            .ok()
            .and_then(|m| m.get(&user.to_lowercase()).cloned())
    }

    /// Sets (`Some`) or removes (`None`, back to automatic) the mapping of `user`, durably.
    ///
    /// # Errors
    /// The file cannot be written; the mapping is then unchanged.
    pub fn set(&self, user: &str, accounts: Option<Vec<MappedAccount>>) -> Result<(), ApiError> {
        let mut m = self
            .explicit
            .write()
            .map_err(|_| ApiError::Internal("mapping lock poisoned".into()))?;
        let mut next = m.clone();
        match accounts {
            Some(a) => next.insert(user.to_lowercase(), a),
            None => next.remove(&user.to_lowercase()),
        };
        write_atomically(
            &self.path,
            &serde_json::to_vec_pretty(&next).map_err(ApiError::internal)?,
        )
        .map_err(|e| ApiError::Internal(format!("{}: {e}", self.path.display())))?;
        *m = next;
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Caller {
    /// Whether the caller may open user account `upn` of `task`.
    #[must_use]
    pub fn may_open(&self, state: &AppState, task: &TaskSpec, upn: &str) -> bool {
        if self.is_admin() {
            return true;
        }
        if !task.portal {
            return false;
        }
        match state.mapping.explicit(self.user()) {
            Some(accounts) => accounts
                .iter()
                .any(|a| a.task == task.name && a.account.eq_ignore_ascii_case(upn)),
            None => self
                .0
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(upn)),
        }
    }

    /// The task `name`, if the caller may see it at all: administrators see every task, portal
    /// users only tasks with the portal on.
    ///
    /// # Errors
    /// 404 when there is no such task or the caller may not see it.
    pub fn task(&self, state: &AppState, name: &str) -> Result<TaskSpec, ApiError> {
        let not_found = || ApiError::NotFound(format!("no task named '{name}'"));
        let find = || -> Result<Option<TaskSpec>, ApiError> {
            Ok(state.task_specs()?.iter().find(|t| t.name == name).cloned())
        };
        // A task created a moment ago outside the API is not in the cached list yet: read again.
        let spec = match find()? {
            Some(spec) => spec,
            None => {
                state.forget_tasks();
                find()?.ok_or_else(not_found)?
            }
        };
        if self.is_admin() || spec.portal {
            Ok(spec)
        } else {
            Err(not_found())
        }
    }

    /// Checks that the caller may read or restore backup path `path` of `task`.
    ///
    /// # Errors
    /// 400 for a malformed path; 404 when the caller may not open it.
    pub fn check_path(
        &self,
        state: &AppState,
        task: &TaskSpec,
        path: &str,
    ) -> Result<(), ApiError> {
        let names = paths::split(path).map_err(ApiError::BadRequest)?;
        if self.is_admin() {
            return Ok(());
        }
        match names.as_slice() {
            [top, upn, ..] if top == "users" && self.may_open(state, task, upn) => Ok(()),
            _ => Err(ApiError::NotFound(format!("nothing at {path}"))),
        }
    }
}

impl Caller {
    /// Whether the caller may see restore or export job `job`: administrators see every job, a
    /// portal user only the jobs they started, in tasks they can still see.
    #[must_use]
    pub fn may_see_job(&self, state: &AppState, job: &crate::jobs::Job) -> bool {
        self.is_admin()
            || (job.owner.eq_ignore_ascii_case(self.user()) && self.task(state, &job.task).is_ok())
    }

    /// Checks that a restore may write into account `upn` of `task` (another account than the
    /// original): administrators may target any account, portal users only their own.
    ///
    /// # Errors
    /// 403 when the caller may not restore into that account.
    pub fn check_restore_target(
        &self,
        state: &AppState,
        task: &TaskSpec,
        upn: &str,
    ) -> Result<(), ApiError> {
        if self.may_open(state, task, upn) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "you may restore only into your own account".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_persists_and_clear_reverts() {
        let d = tempfile::tempdir().unwrap();
        let m = Mapping::load(d.path()).unwrap();
        assert!(m.explicit("Bob").is_none());
        let a = vec![MappedAccount {
            task: "t".into(),
            account: "bob@contoso.com".into(),
        }];
        m.set("Bob", Some(a.clone())).unwrap();
        assert_eq!(Mapping::load(d.path()).unwrap().explicit("bob"), Some(a));
        m.set("bob", None).unwrap();
        assert!(Mapping::load(d.path()).unwrap().explicit("bob").is_none());
        std::fs::write(d.path().join(FILE_NAME), "{not json").unwrap();
        assert!(Mapping::load(d.path()).is_err());
    }
}
