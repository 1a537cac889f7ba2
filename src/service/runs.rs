//! The run manager: starts backups on the service's runtime, one per task at a time and at most
//! `max_concurrent_runs` at once (the others wait in a queue), shares their live progress, and
//! records how each ended. After a backup it applies the task's retention (which prunes btrfs
//! snapshots too) and notifies administrators of failures and item errors.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backhome_store::{CreateOptions, Repository, RetentionPolicy};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use super::clock::Clock;
use super::history::{History, HistoryError, RunItemError, RunRecord, RunStatus, object_of};
use super::label;
use crate::backup::progress::ObjectProgress;
use crate::backup::{self, Progress, RunError};
use crate::notify::{Event, Notifier};
use crate::task::{Credentials, Retention, TaskSpec, TaskStore, TaskStoreError};

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A run of the task is going or queued.
    #[error("a backup of task '{0}' is already running or queued")]
    Busy(String),
    /// The service is stopping.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The task list failed, or there is no such task.
    #[error(transparent)]
    Task(#[from] TaskStoreError),
    /// The repository could not be opened or created.
    #[error("repository of task '{task}': {source}")]
    Repository {
        /// The task.
        task: String,
        /// Why.
        source: backhome_store::StoreError,
    },
    /// The run history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A blocking task died.
    #[error("internal failure: {0}")]
    Internal(String),
}

/// Whether a live run waits for a slot or runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// Waiting for one of the `max_concurrent_runs` slots.
    Queued,
    /// Backing up.
    Running,
}

/// A run that is queued or going.
pub struct LiveRun {
    /// The task.
    pub task: String,
    /// The repository's run id.
    pub run_id: AtomicI64,
    /// When it was asked for.
    pub started_at: OffsetDateTime,
    /// Whether it continues an interrupted run.
    pub resumed: AtomicBool,
    /// Live counters.
    pub progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    by_shutdown: AtomicBool,
    state: Mutex<LiveState>,
    client: Mutex<Option<(backhome_graph::Client, backhome_graph::ClientStats)>>,
    done: watch::Sender<Option<RunRecord>>,
}

/// A copy of a live run's progress, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProgressView {
    /// The run id.
    pub run: i64,
    /// The task.
    pub task: String,
    /// Queued or running.
    pub state: LiveState,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub started_at: OffsetDateTime,
    /// Whether it continues an interrupted run.
    pub resumed: bool,
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
    /// Items that failed so far.
    pub item_errors: u64,
    /// Requests sent to Graph so far.
    pub graph_requests: u64,
    /// Requests Graph throttled so far.
    pub throttled: u64,
    /// Protected objects the run backs up (0 until discovery is done).
    pub objects_total: u64,
    /// Protected objects finished.
    pub objects_done: u64,
    /// Per account: `{items, bytes, activity, done, containers_total, containers_done,
    /// containers_pending}`.
    #[schema(value_type = Object)]
    pub objects: BTreeMap<String, ObjectProgress>,
}

impl LiveRun {
    /// Queued or running.
    #[must_use]
    pub fn state(&self) -> LiveState {
        self.state.lock().map_or(LiveState::Running, |s| *s)
    }

    fn stats(&self) -> (u64, u64) {
        self.client
            .lock()
            .ok()
            .and_then(|c| {
                c.as_ref().map(|(c, before)| {
                    let now = c.stats();
                    (
                        now.requests.saturating_sub(before.requests),
                        now.throttled.saturating_sub(before.throttled),
                    )
                })
            })
            .unwrap_or((0, 0))
    }

    /// The progress now.
    #[must_use]
    pub fn view(&self) -> ProgressView {
        let s = self.progress.snapshot();
        let (graph_requests, throttled) = self.stats();
        ProgressView {
            run: self.run_id.load(Ordering::Relaxed),
            task: self.task.clone(),
            state: self.state(),
            started_at: self.started_at,
            resumed: self.resumed.load(Ordering::Relaxed),
            items_added: s.items_added,
            items_changed: s.items_changed,
            items_deleted: s.items_deleted,
            items_unchanged: s.items_unchanged,
            bytes_downloaded: s.bytes_downloaded,
            item_errors: s.item_errors,
            graph_requests,
            throttled,
            objects_total: s.objects_total,
            objects_done: s.objects_done,
            objects: s.objects,
        }
    }

    /// The run as a record (status running).
    #[must_use]
    pub fn record(&self) -> RunRecord {
        let v = self.view();
        RunRecord {
            id: v.run,
            task: self.task.clone(),
            started_at: self.started_at,
            ended_at: None,
            status: RunStatus::Running,
            items_added: v.items_added,
            items_changed: v.items_changed,
            items_deleted: v.items_deleted,
            bytes_downloaded: v.bytes_downloaded,
            graph_requests: v.graph_requests,
            item_errors: v.item_errors,
            resumed: v.resumed,
            throttled: v.throttled,
            error: None,
        }
    }

    /// Waits for the end of the run: its final record.
    pub fn subscribe(&self) -> watch::Receiver<Option<RunRecord>> {
        self.done.subscribe()
    }

    /// Asks the run to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Starts, tracks and records backup runs.
pub struct RunManager {
    data_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<String, Arc<LiveRun>>>,
    history: Arc<Mutex<History>>,
    clock: Arc<dyn Clock>,
    notifier: Notifier,
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StartError> {
    m.lock()
        .map_err(|_| StartError::Internal("run manager state poisoned".into()))
}

/// What a run needs that is read from disk before it starts.
struct Prepared {
    spec: TaskSpec,
    creds: Credentials,
    repo: Repository,
    run_id: i64,
    resumed: bool,
}

fn prepare(data_dir: &std::path::Path, task: &str) -> Result<Prepared, StartError> {
    let store = TaskStore::open(data_dir)?;
    let spec = store.get(task)?;
    let creds = store.credentials(task)?;
    drop(store);
    let repo_err = |source| StartError::Repository {
        task: task.to_owned(),
        source,
    };
    let repo = if spec.repo.join("config.json").exists() {
        Repository::open(&spec.repo, None).map_err(repo_err)?
    } else {
        if let Some(parent) = spec.repo.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| repo_err(backhome_store::StoreError::Invalid(e.to_string())))?;
        }
        Repository::create(&spec.repo, &CreateOptions::default()).map_err(repo_err)?
    };
    let runs = repo.runs().map_err(repo_err)?;
    let open = runs
        .iter()
        .filter(|r| r.status == backhome_store::RunStatus::Running)
        .map(|r| r.id.0)
        .max();
    let (run_id, resumed) = match open {
        Some(id) => (id, true),
        None => (runs.iter().map(|r| r.id.0).max().unwrap_or(0) + 1, false),
    };
    Ok(Prepared {
        spec,
        creds,
        repo,
        run_id,
        resumed,
    })
}

/// The store's retention policy for a task's retention setting; `None` keeps everything.
#[must_use]
pub fn retention_policy(r: &Retention) -> Option<RetentionPolicy> {
    match *r {
        Retention::KeepAll => None,
        Retention::Days { days } => Some(RetentionPolicy::KeepDays(days)),
        Retention::Runs { runs } => Some(RetentionPolicy::KeepRuns(runs)),
        Retention::Gfs {
            daily,
            weekly,
            monthly,
            yearly,
        } => Some(RetentionPolicy::Gfs {
            daily,
            weekly,
            monthly,
            yearly,
        }),
    }
}

/// How often every task's certificate is checked, besides before each backup (tasks that back
/// up by hand may not run for weeks).
const CERTIFICATE_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The first check waits this long after start.
const CERTIFICATE_FIRST_CHECK: Duration = Duration::from_secs(120);

/// Notices certificates that expire soon, for every task, until the runtime stops.
async fn watch_certificates(data_dir: PathBuf, notifier: Notifier, clock: Arc<dyn Clock>) {
    tokio::time::sleep(CERTIFICATE_FIRST_CHECK).await;
    loop {
        let (dir, n, now) = (data_dir.clone(), notifier.clone(), clock.now());
        match tokio::task::spawn_blocking(move || check_certificates(&dir, &n, now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "certificates not checked"),
            Err(e) => tracing::warn!(error = %e, "certificate check died"),
        }
        tokio::time::sleep(CERTIFICATE_CHECK_EVERY).await;
    }
}

/// Checks every task's certificate at `now`: those within the notification settings' days are
/// noticed (once a day per task).
fn check_certificates(
    data_dir: &std::path::Path,
    notifier: &Notifier,
    now: OffsetDateTime,
) -> Result<(), TaskStoreError> {
    let store = TaskStore::open(data_dir)?;
    for spec in store.list()? {
        let status = store
            .credentials(&spec.name)
            .map_err(|e| e.to_string())
            .and_then(|c| crate::register::cert::status(&c, now).map_err(|e| e.to_string()));
        match status {
            Ok(c) => notifier.certificate(&spec.name, c.days_left, now),
            Err(e) => tracing::warn!(task = %spec.name, error = %e, "certificate expiry not read"),
        }
    }
    Ok(())
}

impl RunManager {
    /// A manager for the tasks of `data_dir`, running at most `max_concurrent` backups at once on
    /// `runtime`.
    ///
    /// # Errors
    /// The run history cannot be opened.
    pub fn new(
        data_dir: PathBuf,
        max_concurrent: usize,
        runtime: tokio::runtime::Handle,
        clock: Arc<dyn Clock>,
        notifier: Notifier,
    ) -> Result<Self, HistoryError> {
        let history = History::open(&data_dir)?;
        let notifier = notifier.with_settings(&data_dir);
        runtime.spawn(watch_certificates(
            data_dir.clone(),
            notifier.clone(),
            Arc::clone(&clock),
        ));
        Ok(Self {
            data_dir,
            runtime,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            live: Mutex::new(HashMap::new()),
            history: Arc::new(Mutex::new(history)),
            clock,
            notifier,
            stopping: AtomicBool::new(false),
        })
    }

    /// The notifier, with the data dir's notification settings.
    #[must_use]
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The clock the manager and its scheduler use.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// Runs `f` on the run history in a blocking thread.
    ///
    /// # Errors
    /// What `f` returns; [`StartError::Internal`] when the thread died.
    pub async fn with_history<T, F>(&self, f: F) -> Result<T, StartError>
    where
        T: Send + 'static,
        F: FnOnce(&mut History) -> Result<T, HistoryError> + Send + 'static,
    {
        let h = Arc::clone(&self.history);
        tokio::task::spawn_blocking(move || {
            let mut g = h
                .lock()
                .map_err(|_| StartError::Internal("run history poisoned".into()))?;
            f(&mut g).map_err(StartError::from)
        })
        .await
        .map_err(|e| StartError::Internal(e.to_string()))?
    }

    /// The run history, for blocking callers.
    ///
    /// # Errors
    /// The history's lock is poisoned.
    pub fn history(&self) -> Result<std::sync::MutexGuard<'_, History>, StartError> {
        lock(&self.history)
    }

    /// The live run of a task, if one is queued or going.
    #[must_use]
    pub fn live(&self, task: &str) -> Option<Arc<LiveRun>> {
        self.live.lock().ok()?.get(task).cloned()
    }

    /// Every live run.
    #[must_use]
    pub fn live_runs(&self) -> Vec<Arc<LiveRun>> {
        self.live
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the manager is stopping.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Starts a backup of `task` now (queued while `max_concurrent_runs` others go).
    ///
    /// # Errors
    /// A run of the task is already live, the service is stopping, no such task, or its
    /// repository cannot be opened.
    pub async fn start(self: &Arc<Self>, task: &str) -> Result<Arc<LiveRun>, StartError> {
        if self.is_stopping() {
            return Err(StartError::ShuttingDown);
        }
        let (tx, _) = watch::channel(None);
        let live = Arc::new(LiveRun {
            task: task.to_owned(),
            run_id: AtomicI64::new(0),
            started_at: self.clock.now(),
            resumed: AtomicBool::new(false),
            progress: Arc::new(Progress::default()),
            cancel: Arc::new(AtomicBool::new(false)),
            by_shutdown: AtomicBool::new(false),
            state: Mutex::new(LiveState::Queued),
            client: Mutex::new(None),
            done: tx,
        });
        {
            let mut m = lock(&self.live)?;
            if m.contains_key(task) {
                return Err(StartError::Busy(task.to_owned()));
            }
            m.insert(task.to_owned(), Arc::clone(&live));
        }
        let dir = self.data_dir.clone();
        let name = task.to_owned();
        let prepared = tokio::task::spawn_blocking(move || prepare(&dir, &name))
            .await
            .map_err(|e| StartError::Internal(e.to_string()))
            .and_then(|r| r);
        let p = match prepared {
            Ok(p) => p,
            Err(e) => {
                if let Ok(mut m) = self.live.lock() {
                    m.remove(task);
                }
                if !matches!(e, StartError::Task(TaskStoreError::NotFound(_))) {
                    self.notifier.notify(
                        Event::RunFailed,
                        "Backhome backup failed",
                        &format!("Task {task}: the backup could not start: {e}"),
                    );
                }
                return Err(e);
            }
        };
        live.run_id.store(p.run_id, Ordering::Relaxed);
        live.resumed.store(p.resumed, Ordering::Relaxed);
        let rec = live.record();
        self.with_history(move |h| h.put(&rec)).await?;
        tracing::info!(task, run = p.run_id, resumed = p.resumed, "backup queued");
        let me = Arc::clone(self);
        let l = Arc::clone(&live);
        self.runtime.spawn(async move { me.drive(l, p).await });
        Ok(live)
    }

    /// Waits for a slot, runs the backup, retention and notifications, and records the end.
    async fn drive(self: Arc<Self>, live: Arc<LiveRun>, p: Prepared) {
        let task = live.task.clone();
        let span = tracing::info_span!("run", task = %task, run = p.run_id);
        let record = async {
            let permit = loop {
                if live.cancel.load(Ordering::Relaxed) {
                    break None;
                }
                tokio::select! {
                    permit = Arc::clone(&self.slots).acquire_owned() => break permit.ok(),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            };
            let Some(permit) = permit else {
                return self.ended(&live, Err(&RunError::Cancelled));
            };
            if let Ok(mut s) = live.state.lock() {
                *s = LiveState::Running;
            }
            let result = self.backup(&live, &p).await;
            drop(permit);
            result
        }
        .instrument(span)
        .await;
        let errors = record.1;
        let record = record.0;
        let (t, id, rec) = (task.clone(), record.id, record.clone());
        let predicted = p.run_id;
        let stored = self
            .with_history(move |h| {
                if id != predicted {
                    h.remove_run(&t, predicted)?;
                }
                h.put(&rec)?;
                if let Some(errors) = errors {
                    h.put_errors(&t, id, &errors)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = stored {
            tracing::error!(task, error = %e, "the run's outcome could not be recorded");
        }
        if let Ok(mut m) = self.live.lock()
            && m.get(&task).is_some_and(|l| Arc::ptr_eq(l, &live))
        {
            m.remove(&task);
        }
        live.done.send_replace(Some(record));
    }

    async fn backup(
        &self,
        live: &Arc<LiveRun>,
        p: &Prepared,
    ) -> (RunRecord, Option<Vec<RunItemError>>) {
        if let Err(e) = label::write(&p.spec) {
            tracing::warn!(error = %e, "the repository's task label could not be written");
        }
        let now = self.clock.now();
        match crate::register::cert::status(&p.creds, now) {
            Ok(c) => self.notifier.certificate(&p.spec.name, c.days_left, now),
            Err(e) => tracing::warn!(error = %e, "the certificate's expiry could not be read"),
        }
        let client = match crate::connect::client(&p.spec, &p.creds) {
            Ok(c) => c,
            Err(e) => return self.ended(live, Err(&RunError::Graph(e))),
        };
        if let Ok(mut c) = live.client.lock() {
            *c = Some((client.clone(), client.stats()));
        }
        let result = backup::run(
            client,
            p.repo.clone(),
            &p.spec,
            Arc::clone(&live.progress),
            Arc::clone(&live.cancel),
        )
        .await;
        let (record, errors) = self.ended(live, result.as_ref());
        if let Ok(summary) = &result {
            self.after_backup(live, p, summary).await;
        }
        (record, errors)
    }

    /// Retention and notices after a committed backup.
    async fn after_backup(&self, live: &LiveRun, p: &Prepared, summary: &backup::Summary) {
        if !summary.errors.is_empty() {
            self.notifier.notify(
                Event::RunPartial,
                "Backhome backup finished with errors",
                &format!(
                    "Task {}: run {} finished; {} items could not be backed up and will be tried again next run.",
                    p.spec.name,
                    summary.run_id,
                    summary.errors.len()
                ),
            );
        }
        let Some(policy) = retention_policy(&p.spec.retention) else {
            return;
        };
        let repo = p.repo.clone();
        let now = self.clock.now();
        let stop = Arc::clone(&live.cancel);
        let applied =
            tokio::task::spawn_blocking(move || repo.apply_retention_with_stop(policy, now, &stop))
                .await;
        match applied {
            Ok(Ok(r)) => tracing::info!(
                pruned_runs = r.pruned_runs.len(),
                versions_removed = r.versions_removed,
                snapshots_pruned = r.snapshots.len(),
                "retention applied after the backup"
            ),
            Ok(Err(e)) => self.notifier.notify(
                Event::RetentionFailed,
                "Backhome retention failed",
                &format!(
                    "Task {}: old restore points could not be pruned: {e}",
                    p.spec.name
                ),
            ),
            Err(e) => tracing::error!(error = %e, "retention task died"),
        }
    }

    /// The final record of a run from its result.
    fn ended(
        &self,
        live: &LiveRun,
        result: Result<&backup::Summary, &RunError>,
    ) -> (RunRecord, Option<Vec<RunItemError>>) {
        let mut rec = live.record();
        rec.ended_at = Some(self.clock.now());
        match result {
            Ok(s) => {
                rec.id = s.run_id;
                rec.status = if s.errors.is_empty() {
                    RunStatus::Complete
                } else {
                    RunStatus::Partial
                };
                rec.items_added = s.items_added;
                rec.items_changed = s.items_changed;
                rec.items_deleted = s.items_deleted;
                rec.bytes_downloaded = s.bytes_downloaded;
                rec.graph_requests = s.graph_requests;
                rec.item_errors = s.errors.len() as u64;
                rec.resumed = s.resumed;
                tracing::info!(
                    status = rec.status.as_str(),
                    items_added = rec.items_added,
                    item_errors = rec.item_errors,
                    throttled = rec.throttled,
                    "backup finished"
                );
                if s.errors.is_empty() {
                    self.notifier.notify(
                        Event::RunSucceeded,
                        "Backhome backup finished",
                        &format!(
                            "Task {}: run {} finished: {} items added, {} changed, {} deleted.",
                            live.task, rec.id, s.items_added, s.items_changed, s.items_deleted
                        ),
                    );
                }
                let errors = s
                    .errors
                    .iter()
                    .map(|e| RunItemError {
                        object: object_of(&e.path),
                        path: e.path.clone(),
                        message: e.reason.clone(),
                    })
                    .collect();
                (rec, Some(errors))
            }
            Err(RunError::Cancelled) => {
                rec.status = if live.by_shutdown.load(Ordering::Relaxed) {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Cancelled
                };
                tracing::info!(
                    status = rec.status.as_str(),
                    "backup stopped; the next run resumes it"
                );
                (rec, None)
            }
            Err(e) => {
                rec.status = RunStatus::Failed;
                rec.error = Some(e.to_string());
                self.notifier.notify(
                    Event::RunFailed,
                    "Backhome backup failed",
                    &format!("Task {}: run {} failed: {e}", live.task, rec.id),
                );
                (rec, None)
            }
        }
    }

    /// Asks the live run of `task` to stop; `false` when none is live.
    pub fn cancel(&self, task: &str) -> bool {
        match self.live(task) {
            Some(l) => {
                tracing::info!(task, "backup cancel requested");
                l.cancel();
                true
            }
            None => false,
        }
    }

    /// Resumes the runs a shutdown or a crash interrupted (called once at start).
    ///
    /// # Errors
    /// The run history failed.
    pub async fn resume_interrupted(self: &Arc<Self>) -> Result<Vec<String>, StartError> {
        let live: Vec<String> = self.live_runs().iter().map(|l| l.task.clone()).collect();
        let unfinished = self
            .with_history(move |h| {
                let runs: Vec<RunRecord> = h
                    .unfinished()?
                    .into_iter()
                    .filter(|r| !live.contains(&r.task))
                    .collect();
                for r in &runs {
                    if r.status == RunStatus::Running {
                        let mut r = r.clone();
                        r.status = RunStatus::Interrupted;
                        h.put(&r)?;
                    }
                }
                Ok(runs)
            })
            .await?;
        let mut resumed = Vec::new();
        for r in unfinished {
            if resumed.contains(&r.task) {
                continue;
            }
            match self.start(&r.task).await {
                Ok(_) => {
                    tracing::info!(task = %r.task, run = r.id, "resuming an interrupted backup");
                    resumed.push(r.task);
                }
                Err(StartError::Task(TaskStoreError::NotFound(_)) | StartError::Busy(_)) => {}
                Err(e) => {
                    tracing::warn!(task = %r.task, error = %e, "interrupted backup not resumed")
                }
            }
        }
        Ok(resumed)
    }

    /// Stops: no new runs, live runs cancelled (they checkpoint and are resumed at the next
    /// start), waiting at most `within` for them to end. Returns the tasks still going.
    pub async fn shutdown(&self, within: Duration) -> Vec<String> {
        self.stopping.store(true, Ordering::Relaxed);
        for l in self.live_runs() {
            l.by_shutdown.store(true, Ordering::Relaxed);
            l.cancel();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left: Vec<String> = self.live_runs().iter().map(|l| l.task.clone()).collect();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                if !left.is_empty() {
                    tracing::warn!(tasks = ?left, "backups still stopping at shutdown; they resume at the next start");
                }
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_expiring_soon_are_noticed() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let script = d.path().join("notify.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s|' \"$@\" >> {}\n", out.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        let store = TaskStore::open(d.path()).unwrap();
        for (name, days) in [("soon", 10), ("later", 200)] {
            let cert = crate::register::cert::generate(name, days).unwrap();
            let spec = TaskSpec::new(
                name,
                "8f0c3a52-3b7e-4d7a-9a51-2f7c1e0b6d11",
                "1d4c2b9e-6a3f-4e8b-8c7d-5b2a9f0e3c44",
                d.path().join(name),
            );
            store.create(&spec, &cert.credentials()).unwrap();
        }
        drop(store);
        let n = Notifier::new(Some(script)).with_settings(d.path());
        let now = OffsetDateTime::now_utc();
        check_certificates(d.path(), &n, now).unwrap();
        check_certificates(d.path(), &n, now).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text.matches("Backhome certificate expiring").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("Task soon: the certificate expires in"),
            "{text}"
        );
        assert!(!text.contains("later"), "{text}");
    }
}
