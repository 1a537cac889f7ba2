//! What every collector of a run shares: the Graph client, the run writer, progress and errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use backhome_graph::{Client, Download};
use backhome_store::{Repository, RunId, RunWriter, StoreError, StoredContent};
use futures_util::TryStreamExt;
use serde::Serialize;

use super::progress::Progress;

/// One item that could not be backed up in this run; it is tried again next run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ItemError {
    /// Where the item is (backup path, or the Graph resource when it has none yet).
    pub path: String,
    /// Why it failed, in words an admin understands.
    pub reason: String,
}

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The repository failed (disk full, damaged, locked …).
    #[error("repository: {0}")]
    Store(#[from] StoreError),
    /// Graph failed in a way that stops the whole run (sign-in, consent …).
    #[error("{0}")]
    Graph(#[from] backhome_graph::Error),
    /// The run was cancelled.
    #[error("the run was cancelled")]
    Cancelled,
    /// A blocking task died.
    #[error("internal failure: {0}")]
    Internal(String),
}

/// Shared state of one run.
#[derive(Clone)]
pub struct Ctx {
    /// The Graph client.
    pub client: Client,
    writer: Arc<Mutex<RunWriter>>,
    /// Live counters.
    pub progress: Arc<Progress>,
    errors: Arc<Mutex<Vec<ItemError>>>,
    cancel: Arc<AtomicBool>,
    /// The repository (for reads of the last committed run).
    pub repo: Repository,
    /// The last committed run before this one.
    pub latest: Option<RunId>,
}

impl Ctx {
    /// A context around an open run writer.
    pub fn new(
        client: Client,
        writer: RunWriter,
        progress: Arc<Progress>,
        cancel: Arc<AtomicBool>,
        repo: Repository,
        latest: Option<RunId>,
    ) -> Self {
        Self {
            client,
            writer: Arc::new(Mutex::new(writer)),
            progress,
            errors: Arc::default(),
            cancel,
            repo,
            latest,
        }
    }

    /// Runs `f` on the run writer in a blocking thread.
    ///
    /// # Errors
    /// What `f` returns, or [`RunError::Internal`] when the thread died.
    pub async fn w<T, F>(&self, f: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&mut RunWriter) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|_| RunError::Internal("run writer poisoned".into()))?;
            f(&mut guard).map_err(RunError::Store)
        })
        .await
        .map_err(|e| RunError::Internal(e.to_string()))?
    }

    /// Streams a download into the repository with bounded memory; counts its bytes.
    ///
    /// # Errors
    /// A Graph error while reading, or a store error while writing.
    pub async fn store_download(
        &self,
        object: &str,
        download: Download,
    ) -> Result<StoredContent, RunError> {
        let progress = Arc::clone(&self.progress);
        let counted = download.inspect_ok(move |chunk| {
            Progress::add(&progress.bytes_downloaded, chunk.len() as u64);
        });
        let failure: Arc<Mutex<Option<backhome_graph::Error>>> = Arc::default();
        let seen = Arc::clone(&failure);
        let io = counted.map_err(move |e| {
            let text = e.to_string();
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(e);
            }
            std::io::Error::other(text)
        });
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(io));
        let stored = self.w(move |w| w.put_content(reader)).await;
        if let Ok(Some(e)) = failure.lock().map(|mut s| s.take()) {
            return Err(RunError::Graph(e));
        }
        let stored = stored?;
        self.progress.object_item(object, stored.content.size);
        Ok(stored)
    }

    /// Records an item failure (the run goes on).
    pub fn item_error(&self, path: impl Into<String>, reason: impl Into<String>) {
        let e = ItemError {
            path: path.into(),
            reason: reason.into(),
        };
        tracing::warn!(path = %e.path, reason = %e.reason, "item not backed up");
        Progress::add(&self.progress.item_errors, 1);
        if let Ok(mut v) = self.errors.lock() {
            v.push(e);
        }
    }

    /// The item failures so far.
    pub fn errors(&self) -> Vec<ItemError> {
        self.errors.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Fails with [`RunError::Cancelled`] once the run was asked to stop.
    ///
    /// # Errors
    /// [`RunError::Cancelled`].
    pub fn check_cancel(&self) -> Result<(), RunError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(RunError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Gives the writer back once every collector is done.
    ///
    /// # Errors
    /// [`RunError::Internal`] when a collector still holds it.
    pub fn into_writer(self) -> Result<RunWriter, RunError> {
        let writer = Arc::try_unwrap(self.writer)
            .map_err(|_| RunError::Internal("run writer still in use".into()))?;
        writer
            .into_inner()
            .map_err(|_| RunError::Internal("run writer poisoned".into()))
    }
}
