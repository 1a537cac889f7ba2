//! The service's own record of runs (`service.db` in the data dir): each run's outcome and
//! counters, its per-item errors, and the scheduler's memory (the last fixed slot handled per
//! task). The repository keeps the data; this keeps what the API lists after a restart.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;

/// Why the run history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database failed.
    #[error("run history database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// How a run ended (or that it is still going).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Going now.
    Running,
    /// Committed without item errors.
    Complete,
    /// Committed with item errors (retried next run).
    Partial,
    /// Stopped by a run-stopping error.
    Failed,
    /// Cancelled by an administrator; the next run resumes its checkpointed work.
    Cancelled,
    /// Stopped by a shutdown or a crash; resumed at the next start.
    Interrupted,
}

impl RunStatus {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "complete" => Self::Complete,
            "partial" => Self::Partial,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            _ => Self::Failed,
        }
    }
}

/// A run as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// The repository's run id.
    pub id: i64,
    /// The task.
    pub task: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub ended_at: Option<OffsetDateTime>,
    /// How it ended.
    pub status: RunStatus,
    /// Items seen for the first time.
    pub items_added: u64,
    /// Items stored as a new version.
    pub items_changed: u64,
    /// Deletions recorded.
    pub items_deleted: u64,
    /// Content bytes downloaded.
    pub bytes_downloaded: u64,
    /// Requests sent to Graph.
    pub graph_requests: u64,
    /// Items that failed.
    pub item_errors: u64,
    /// Whether it continued an interrupted run.
    pub resumed: bool,
    /// Requests Graph throttled (429).
    pub throttled: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// One item that failed in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunItemError {
    /// The account (`/users/<upn>` → the UPN).
    pub object: String,
    /// The item's path.
    pub path: String,
    /// Why it failed.
    pub message: String,
}

const MIGRATIONS: &[&str] = &["CREATE TABLE runs (
        task TEXT NOT NULL,
        id INTEGER NOT NULL,
        started INTEGER NOT NULL,
        ended INTEGER,
        status TEXT NOT NULL,
        items_added INTEGER NOT NULL DEFAULT 0,
        items_changed INTEGER NOT NULL DEFAULT 0,
        items_deleted INTEGER NOT NULL DEFAULT 0,
        bytes_downloaded INTEGER NOT NULL DEFAULT 0,
        graph_requests INTEGER NOT NULL DEFAULT 0,
        item_errors INTEGER NOT NULL DEFAULT 0,
        resumed INTEGER NOT NULL DEFAULT 0,
        throttled INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (task, id)
    );
    CREATE TABLE run_errors (
        task TEXT NOT NULL,
        run INTEGER NOT NULL,
        object TEXT NOT NULL,
        path TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX run_errors_run ON run_errors(task, run);
    CREATE TABLE schedule (
        task TEXT PRIMARY KEY,
        last_slot INTEGER
    );"];

/// The service database.
pub struct History {
    conn: Connection,
}

fn to_unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_unix(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn n(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl History {
    /// Opens (creating when needed) `service.db` in `data_dir`.
    ///
    /// # Errors
    /// The database cannot be opened or migrated.
    pub fn open(data_dir: &Path) -> Result<Self, HistoryError> {
        let mut conn = Connection::open(data_dir.join("service.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (idx, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i64::try_from(idx + 1).unwrap_or(1))?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }

    /// Records (or replaces) a run's row.
    ///
    /// # Errors
    /// The database failed.
    pub fn put(&self, r: &RunRecord) -> Result<(), HistoryError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO runs (task, id, started, ended, status, items_added,
                items_changed, items_deleted, bytes_downloaded, graph_requests, item_errors,
                resumed, throttled, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                r.task,
                r.id,
                to_unix(r.started_at),
                r.ended_at.map(to_unix),
                r.status.as_str(),
                i(r.items_added),
                i(r.items_changed),
                i(r.items_deleted),
                i(r.bytes_downloaded),
                i(r.graph_requests),
                i(r.item_errors),
                r.resumed,
                i(r.throttled),
                r.error,
            ],
        )?;
        Ok(())
    }

    /// Replaces a run's item errors.
    ///
    /// # Errors
    /// The database failed.
    pub fn put_errors(
        &mut self,
        task: &str,
        run: i64,
        errors: &[RunItemError],
    ) -> Result<(), HistoryError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM run_errors WHERE task = ?1 AND run = ?2",
            params![task, run],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO run_errors (task, run, object, path, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in errors {
                st.execute(params![task, run, e.object, e.path, e.message])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes a run's row and errors.
    ///
    /// # Errors
    /// The database failed.
    pub fn remove_run(&mut self, task: &str, run: i64) -> Result<(), HistoryError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM runs WHERE task = ?1 AND id = ?2",
            params![task, run],
        )?;
        tx.execute(
            "DELETE FROM run_errors WHERE task = ?1 AND run = ?2",
            params![task, run],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A task's runs, newest first.
    ///
    /// # Errors
    /// The database failed.
    pub fn runs(&self, task: &str) -> Result<Vec<RunRecord>, HistoryError> {
        self.query("WHERE task = ?1 ORDER BY id DESC", params![task])
    }

    /// One run.
    ///
    /// # Errors
    /// The database failed.
    pub fn run(&self, task: &str, id: i64) -> Result<Option<RunRecord>, HistoryError> {
        Ok(self
            .query("WHERE task = ?1 AND id = ?2", params![task, id])?
            .pop())
    }

    /// The newest run of a task.
    ///
    /// # Errors
    /// The database failed.
    pub fn last(&self, task: &str) -> Result<Option<RunRecord>, HistoryError> {
        Ok(self
            .query("WHERE task = ?1 ORDER BY id DESC LIMIT 1", params![task])?
            .pop())
    }

    /// Runs still marked running (the service stopped or crashed during them).
    ///
    /// # Errors
    /// The database failed.
    pub fn unfinished(&self) -> Result<Vec<RunRecord>, HistoryError> {
        self.query(
            "WHERE status IN ('running', 'interrupted') ORDER BY task, id",
            params![],
        )
    }

    fn query(&self, tail: &str, p: impl rusqlite::Params) -> Result<Vec<RunRecord>, HistoryError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT task, id, started, ended, status, items_added, items_changed, items_deleted,
                bytes_downloaded, graph_requests, item_errors, resumed, throttled, error
             FROM runs {tail}"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(RunRecord {
                task: r.get(0)?,
                id: r.get(1)?,
                started_at: from_unix(r.get(2)?),
                ended_at: r.get::<_, Option<i64>>(3)?.map(from_unix),
                status: RunStatus::parse(&r.get::<_, String>(4)?),
                items_added: n(r.get(5)?),
                items_changed: n(r.get(6)?),
                items_deleted: n(r.get(7)?),
                bytes_downloaded: n(r.get(8)?),
                graph_requests: n(r.get(9)?),
                item_errors: n(r.get(10)?),
                resumed: r.get(11)?,
                throttled: n(r.get(12)?),
                error: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A run's item errors.
    ///
    /// # Errors
    /// The database failed.
    pub fn errors(&self, task: &str, run: i64) -> Result<Vec<RunItemError>, HistoryError> {
        let mut st = self.conn.prepare(
            "SELECT object, path, message FROM run_errors WHERE task = ?1 AND run = ?2 ORDER BY rowid",
        )?;
        let rows = st.query_map(params![task, run], |r| {
            Ok(RunItemError {
                object: r.get(0)?,
                path: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last fixed-schedule slot handled for a task.
    ///
    /// # Errors
    /// The database failed.
    pub fn last_slot(&self, task: &str) -> Result<Option<OffsetDateTime>, HistoryError> {
        let v: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT last_slot FROM schedule WHERE task = ?1",
                [task],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.flatten().map(from_unix))
    }

    /// Remembers the last fixed-schedule slot handled for a task.
    ///
    /// # Errors
    /// The database failed.
    pub fn set_last_slot(&self, task: &str, slot: OffsetDateTime) -> Result<(), HistoryError> {
        self.conn.execute(
            "INSERT INTO schedule (task, last_slot) VALUES (?1, ?2)
             ON CONFLICT(task) DO UPDATE SET last_slot = excluded.last_slot",
            params![task, to_unix(slot)],
        )?;
        Ok(())
    }

    /// Forgets everything about a task (it was deleted).
    ///
    /// # Errors
    /// The database failed.
    pub fn forget(&mut self, task: &str) -> Result<(), HistoryError> {
        let tx = self.conn.transaction()?;
        for table in ["runs", "run_errors", "schedule"] {
            tx.execute(&format!("DELETE FROM {table} WHERE task = ?1"), [task])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The account an item path belongs to: `/users/ann@x/mail/…` → `ann@x`.
#[must_use]
pub fn object_of(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("users" | "groups" | "sites" | "teams"), Some(o)) if !o.is_empty() => o.to_owned(),
        _ => path
            .split('/')
            .find(|s| !s.is_empty())
            .unwrap_or("")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_errors_and_slots_survive_reopening() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path()).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let mut r = RunRecord {
            id: 3,
            task: "t".into(),
            started_at: now,
            ended_at: None,
            status: RunStatus::Running,
            items_added: 0,
            items_changed: 0,
            items_deleted: 0,
            bytes_downloaded: 0,
            graph_requests: 0,
            item_errors: 0,
            resumed: false,
            throttled: 0,
            error: None,
        };
        h.put(&r).unwrap();
        assert_eq!(h.unfinished().unwrap().len(), 1);
        r.status = RunStatus::Partial;
        r.ended_at = Some(now);
        r.item_errors = 1;
        h.put(&r).unwrap();
        h.put_errors(
            "t",
            3,
            &[RunItemError {
                object: object_of("/users/a@b/mail/x"),
                path: "/users/a@b/mail/x".into(),
                message: "gone".into(),
            }],
        )
        .unwrap();
        h.set_last_slot("t", now).unwrap();
        drop(h);
        let mut h = History::open(d.path()).unwrap();
        assert!(h.unfinished().unwrap().is_empty());
        assert_eq!(h.last("t").unwrap().unwrap(), r);
        assert_eq!(h.errors("t", 3).unwrap()[0].object, "a@b");
        assert_eq!(h.last_slot("t").unwrap(), Some(now));
        h.forget("t").unwrap();
        assert!(h.runs("t").unwrap().is_empty());
        assert_eq!(h.last_slot("t").unwrap(), None);
    }
}
