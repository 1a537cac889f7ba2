//! What every request handler shares: the data dir, the configuration, the authenticator and the
//! runtime that long jobs run on.

use std::path::PathBuf;
use std::sync::Arc;

use super::access::Mapping;
use super::auth::{Authenticator, DsmAuth, StaticUsers};
use crate::config::{AuthBackend, Config};
use crate::task::{TaskStore, TaskStoreError};

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
}

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
        })
    }

    /// The task list (a fresh connection: cheap, and safe from any thread).
    ///
    /// # Errors
    /// The task database cannot be opened.
    pub fn tasks(&self) -> Result<TaskStore, TaskStoreError> {
        TaskStore::open(&self.data_dir)
    }
}
