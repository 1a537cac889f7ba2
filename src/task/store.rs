//! Task definitions and their sealed secrets, kept in the data dir's SQLite database.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::spec::TaskSpec;
use crate::secrets::{Sealer, SecretError};

/// Why the task list could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    /// The database failed.
    #[error("task database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A stored task could not be decoded.
    #[error("task '{name}' is stored in a form this version cannot read: {source}")]
    Decode {
        /// The task.
        name: String,
        /// The decoding failure.
        source: serde_json::Error,
    },
    /// No task has that name.
    #[error("no task named '{0}'")]
    NotFound(String),
    /// A task of that name exists already.
    #[error("a task named '{0}' exists already")]
    Exists(String),
    /// The data dir could not be created.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The database was written by a newer Backhome.
    #[error(
        "the data dir was written by a newer Backhome (schema {found}, this version knows {known})"
    )]
    TooNew {
        /// Schema version found.
        found: i64,
        /// Newest schema version this build knows.
        known: i64,
    },
}

/// The app's certificate as uploaded by the admin.
#[derive(Clone)]
pub struct Credentials {
    /// The PKCS#12 (.pfx) file's bytes.
    pub pfx: Vec<u8>,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ pfx: {} bytes, password: <hidden> }}",
            self.pfx.len()
        )
    }
}

const MIGRATIONS: &[&str] = &["CREATE TABLE tasks (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        pfx BLOB NOT NULL,
        password BLOB NOT NULL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );"];

/// The data dir's task database.
pub struct TaskStore {
    conn: Connection,
    sealer: Sealer,
}

impl TaskStore {
    /// Opens (creating when needed) the task database in `data_dir`.
    ///
    /// # Errors
    /// Fails when the data dir or database cannot be created or opened.
    pub fn open(data_dir: &Path) -> Result<Self, TaskStoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| TaskStoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let sealer = Sealer::open_or_create(data_dir)?;
        let mut conn = Connection::open(data_dir.join("backhome.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Self { conn, sealer })
    }

    /// Adds a new task.
    ///
    /// # Errors
    /// [`TaskStoreError::Exists`] when the name is taken.
    pub fn create(&self, spec: &TaskSpec, creds: &Credentials) -> Result<(), TaskStoreError> {
        let json = serde_json::to_string(spec).map_err(|source| TaskStoreError::Decode {
            name: spec.name.clone(),
            source,
        })?;
        let pfx = self.sealer.seal(&creds.pfx)?;
        let pw = self.sealer.seal(creds.password.as_bytes())?;
        match self.conn.execute(
            "INSERT INTO tasks (name, spec, pfx, password) VALUES (?1, ?2, ?3, ?4)",
            params![spec.name, json, pfx, pw],
        ) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(TaskStoreError::Exists(spec.name.clone()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Replaces a task's definition, and its credentials when given.
    ///
    /// # Errors
    /// [`TaskStoreError::NotFound`] when there is no such task.
    pub fn update(
        &self,
        spec: &TaskSpec,
        creds: Option<&Credentials>,
    ) -> Result<(), TaskStoreError> {
        let json = serde_json::to_string(spec).map_err(|source| TaskStoreError::Decode {
            name: spec.name.clone(),
            source,
        })?;
        let n = match creds {
            Some(c) => self.conn.execute(
                "UPDATE tasks SET spec = ?2, pfx = ?3, password = ?4 WHERE name = ?1",
                params![
                    spec.name,
                    json,
                    self.sealer.seal(&c.pfx)?,
                    self.sealer.seal(c.password.as_bytes())?
                ],
            )?,
            None => self.conn.execute(
                "UPDATE tasks SET spec = ?2 WHERE name = ?1",
                params![spec.name, json],
            )?,
        };
        if n == 0 {
            Err(TaskStoreError::NotFound(spec.name.clone()))
        } else {
            Ok(())
        }
    }

    /// Every task, by name.
    ///
    /// # Errors
    /// Fails when the database fails or a task cannot be decoded.
    pub fn list(&self) -> Result<Vec<TaskSpec>, TaskStoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, spec FROM tasks ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (name, json) = row?;
            serde_json::from_str(&json).map_err(|source| TaskStoreError::Decode { name, source })
        })
        .collect()
    }

    /// One task.
    ///
    /// # Errors
    /// [`TaskStoreError::NotFound`] when there is no such task.
    pub fn get(&self, name: &str) -> Result<TaskSpec, TaskStoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT spec FROM tasks WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let json = json.ok_or_else(|| TaskStoreError::NotFound(name.to_owned()))?;
        serde_json::from_str(&json).map_err(|source| TaskStoreError::Decode {
            name: name.to_owned(),
            source,
        })
    }

    /// A task's credentials, opened.
    ///
    /// # Errors
    /// [`TaskStoreError::NotFound`] when there is no such task; a secret error when they cannot be opened.
    pub fn credentials(&self, name: &str) -> Result<Credentials, TaskStoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT pfx, password FROM tasks WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (pfx, pw) = row.ok_or_else(|| TaskStoreError::NotFound(name.to_owned()))?;
        let password =
            String::from_utf8(self.sealer.open(&pw)?).map_err(|_| SecretError::Damaged)?;
        Ok(Credentials {
            pfx: self.sealer.open(&pfx)?,
            password,
        })
    }

    /// Removes a task's definition and secrets (its repository is left alone).
    ///
    /// # Errors
    /// [`TaskStoreError::NotFound`] when there is no such task.
    pub fn delete(&self, name: &str) -> Result<(), TaskStoreError> {
        let n = self
            .conn
            .execute("DELETE FROM tasks WHERE name = ?1", [name])?;
        if n == 0 {
            Err(TaskStoreError::NotFound(name.to_owned()))
        } else {
            Ok(())
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), TaskStoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(TaskStoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::spec::{Service, TaskSpec};

    fn spec(name: &str) -> TaskSpec {
        TaskSpec::new(
            name,
            "t",
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            "/tmp/r".into(),
        )
        .with_services(&[Service::Mail])
    }

    #[test]
    fn create_list_get_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::open(dir.path()).unwrap();
        let creds = Credentials {
            pfx: vec![1, 2, 3],
            password: "pw".into(),
        };
        store.create(&spec("b"), &creds).unwrap();
        store.create(&spec("a"), &creds).unwrap();
        assert!(matches!(
            store.create(&spec("a"), &creds),
            Err(TaskStoreError::Exists(_))
        ));
        assert_eq!(
            store
                .list()
                .unwrap()
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let mut s = store.get("a").unwrap();
        s.portal = true;
        store.update(&s, None).unwrap();
        assert!(store.get("a").unwrap().portal);
        assert_eq!(store.credentials("a").unwrap().pfx, vec![1, 2, 3]);
        store.delete("a").unwrap();
        assert!(matches!(store.get("a"), Err(TaskStoreError::NotFound(_))));
        assert!(matches!(
            store.delete("a"),
            Err(TaskStoreError::NotFound(_))
        ));
        // Reopening keeps the data and the secrets readable; the password is not stored in clear.
        drop(store);
        let again = TaskStore::open(dir.path()).unwrap();
        assert_eq!(again.credentials("b").unwrap().password, "pw");
        let raw = std::fs::read(dir.path().join("backhome.db")).unwrap();
        assert!(!raw.windows(3).any(|w| w == [1, 2, 3]));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(TaskStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("backhome.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            TaskStore::open(dir.path()),
            Err(TaskStoreError::TooNew { found: 99, .. })
        ));
    }
}
