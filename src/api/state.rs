//! What every request handler shares: the data dir, the configuration, the authenticator and the
//! runtime that long jobs run on.

use std::path::PathBuf;
use std::sync::Arc;

use super::access::Mapping;
use super::auth::{Authenticator, DsmAuth, StaticUsers};
use crate::config::{AuthBackend, Config};
use crate::task::{TaskSpec, TaskStore, TaskStoreError};

/// The service's shared state.
pub struct AppState {
    /// Where configuration, tasks, secrets and logs live.
    pub data_dir: PathBuf,
    /// The configuration.
    pub config: Config,
    /// Who is calling.
    pub auth: Arc<dyn Authenticator>,
    /// Which DSM users may open which Microsoft 365 accounts in the portal.
    pub mapping: Mapping,
    /// The multi-threaded runtime that backups, restores and exports run on (request handlers run
    /// on the web server's own single-threaded workers).
    pub runtime: tokio::runtime::Handle,
    /// Open repository handles for browsing, search and jobs.
    pub repos: crate::jobs::RepoCache,
    /// Restore and export jobs.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// Backup runs: start, cancel, progress, history.
    pub runs: Arc<crate::service::RunManager>,
    /// The task definitions as last read, and when: every request that checks access reads them.
    task_cache: std::sync::Mutex<Option<(std::time::Instant, Arc<Vec<TaskSpec>>)>>,
}

/// How long task definitions read by [`AppState::task_specs`] are reused. Changes through the
/// API clear the cache at once ([`AppState::forget_tasks`]); changes made with the command line
/// while the service runs are seen after this long.
const TASK_CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl AppState {
    /// State for `data_dir` and `config`, with the authenticator the configuration names. Must be
    /// called inside the runtime that long jobs should run on.
    ///
    /// # Errors
    /// The mapping file cannot be read.
    pub fn new(data_dir: PathBuf, config: Config) -> Result<Self, super::ApiError> {
        let auth: Arc<dyn Authenticator> = match config.auth.backend {
            AuthBackend::Dsm => Arc::new(DsmAuth::new(&config.auth)),
            AuthBackend::Static => Arc::new(StaticUsers::new(config.auth.users.clone())),
        };
        let mapping = Mapping::load(&data_dir)?;
        let runs = Arc::new(
            crate::service::RunManager::new(
                data_dir.clone(),
                config.max_concurrent_runs,
                tokio::runtime::Handle::current(),
                Arc::new(crate::service::SystemClock::default()),
                crate::notify::Notifier::new(config.notify_program.clone()),
            )
            .map_err(super::ApiError::internal)?,
        );
        let jobs = crate::jobs::Jobs::open(&data_dir, tokio::runtime::Handle::current())
            .map_err(super::ApiError::internal)?;
        Ok(Self {
            repos: crate::jobs::RepoCache::default(),
            jobs,
            data_dir,
            config,
            auth,
            mapping,
            runtime: tokio::runtime::Handle::current(),
            runs,
            task_cache: std::sync::Mutex::new(None),
        })
    }

    /// Every task's definition, read from the task database at most once per
    /// [`TASK_CACHE_FOR`].
    ///
    /// # Errors
    /// The task database cannot be read.
    pub fn task_specs(&self) -> Result<Arc<Vec<TaskSpec>>, TaskStoreError> {
        if let Ok(c) = self.task_cache.lock()
            && let Some((at, specs)) = c.as_ref()
            && at.elapsed() < TASK_CACHE_FOR
        {
            return Ok(Arc::clone(specs));
        }
        let specs = Arc::new(self.tasks()?.list()?);
        if let Ok(mut c) = self.task_cache.lock() {
            *c = Some((std::time::Instant::now(), Arc::clone(&specs)));
        }
        Ok(specs)
    }

    /// Drops the cached task definitions (after a task was created, edited or deleted).
    pub fn forget_tasks(&self) {
        if let Ok(mut c) = self.task_cache.lock() {
            *c = None;
        }
    }

    /// The task list (a fresh connection: cheap, and safe from any thread).
    ///
    /// # Errors
    /// The task database cannot be opened.
    pub fn tasks(&self) -> Result<TaskStore, TaskStoreError> {
        TaskStore::open(&self.data_dir)
    }
}
