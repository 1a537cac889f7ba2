//! What every collector of a run shares: the Graph client, the run writer, progress and errors.

mod spool;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use backhome_graph::{Call, Client, Download, ErrorClass};
use backhome_store::{
    NodeId, Repository, RunId, RunWriter, StoreError, StoredContent, VersionRecord,
};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::progress::Progress;
use spool::Spool;

/// Content up to this size is downloaded into memory before it is written; larger content is
/// spooled to disk first.
pub const IN_MEMORY_MAX: usize = 1 << 20;

/// Memory that all downloads together may hold before writing, beyond the first
/// [`BUFFER_UNIT`] of each (which every download may hold). A download that would go beyond it
/// is spooled to disk instead, so memory stays bounded however many downloads run at once.
pub const IN_MEMORY_BUDGET: usize = 32 << 20;

/// The unit in which downloads take their share of [`IN_MEMORY_BUDGET`].
pub const BUFFER_UNIT: usize = 64 << 10;

/// How often a broken download is tried from the start within one run.
const FETCH_ATTEMPTS: u32 = 3;

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
    /// Whether this run resumes a killed or cancelled one (whose stored items it keeps).
    resumed: bool,
    /// [`IN_MEMORY_BUDGET`] in units of [`BUFFER_UNIT`].
    buffers: Arc<Semaphore>,
    /// One turn at the run writer: collectors wait for it here, without a thread each, and the
    /// holder takes the writer on a blocking thread.
    turn: Arc<Semaphore>,
    /// Where downloads too large for memory wait to be stored.
    spool: Spool,
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
            spool: Spool::open(repo.root()),
            resumed: writer.is_resumed(),
            writer: Arc::new(Mutex::new(writer)),
            progress,
            errors: Arc::default(),
            cancel,
            repo,
            latest,
            buffers: Arc::new(Semaphore::new(IN_MEMORY_BUDGET / BUFFER_UNIT)),
            turn: Arc::new(Semaphore::new(1)),
        }
    }

    /// Whether the repository may already hold items of this run's containers: an earlier run
    /// committed, or this run resumes one that stored some before it stopped. Only then can a
    /// full listing have anything to prune.
    #[must_use]
    pub fn may_hold_items(&self) -> bool {
        self.latest.is_some() || self.resumed
    }

    /// The children of `parent` the repository holds now, including what the stopped run this
    /// one resumes stored ([`RunWriter::open_children`]); none while it cannot hold any
    /// ([`Ctx::may_hold_items`]). What a full listing is compared with to find deletions.
    ///
    /// # Errors
    /// Store failures.
    pub async fn held_children(&self, parent: NodeId) -> Result<Vec<VersionRecord>, RunError> {
        if !self.may_hold_items() {
            return Ok(Vec::new());
        }
        self.w(move |w| w.open_children(parent)).await
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
        // Hundreds of collectors write at once; waiting here keeps them off the blocking pool
        // (a thread each, blocked on the mutex, and the memory that goes with them).
        let _turn = self
            .turn
            .acquire()
            .await
            .map_err(|e| RunError::Internal(e.to_string()))?;
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

    /// Downloads `call` (a `$value` or a `/content`) into the repository and counts its bytes.
    ///
    /// # Errors
    /// A Graph error while reading, or a store error while writing.
    pub async fn fetch_into_store(
        &self,
        object: &str,
        call: Call,
    ) -> Result<StoredContent, RunError> {
        self.fetch_into_store_then(object, call, |_, stored| Ok(stored))
            .await
    }

    /// Downloads `call` into the repository, then runs `then` with what was stored in the same
    /// hold of the run writer (e.g. to record the version), so an item costs one write.
    ///
    /// Content up to [`IN_MEMORY_MAX`] is read into memory first (within [`IN_MEMORY_BUDGET`]
    /// for all downloads together); larger content, or content beyond the budget, is spooled to
    /// disk first. Either way the run writer is held only for the write, never while the content
    /// downloads. A download that breaks off in a way the client could not resume is tried again
    /// from the start.
    ///
    /// # Errors
    /// A Graph error while reading, or a store error while writing or from `then`.
    pub async fn fetch_into_store_then<T, F>(
        &self,
        object: &str,
        call: Call,
        then: F,
    ) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&mut RunWriter, StoredContent) -> Result<T, StoreError> + Clone + Send + 'static,
    {
        let mut attempt = 1;
        loop {
            match self.fetch_once(object, call.clone(), then.clone()).await {
                Err(RunError::Graph(e))
                    if attempt < FETCH_ATTEMPTS && matches!(e.class(), ErrorClass::Temporary) =>
                {
                    tracing::debug!(target = call.target(), error = %e, attempt, "download failed; trying again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn fetch_once<T, F>(&self, object: &str, call: Call, then: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&mut RunWriter, StoredContent) -> Result<T, StoreError> + Send + 'static,
    {
        let mut download = self.client.download(call).await?;
        let announced = download
            .size
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if announced.is_some_and(|n| n > IN_MEMORY_MAX) {
            return self.store_spooled(object, Vec::new(), download, then).await;
        }
        // Sized from the announced length when there is one, so the buffer is not regrown.
        let mut prefix = Vec::with_capacity(announced.unwrap_or(0));
        // Shares of the memory budget this download holds while it is buffered.
        let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
        let mut held_units = 0usize;
        while let Some(chunk) = download.next().await {
            let chunk = chunk?;
            Progress::add(&self.progress.bytes_downloaded, chunk.len() as u64);
            prefix.extend_from_slice(&chunk);
            let units = prefix.len().saturating_sub(1) / BUFFER_UNIT;
            let granted = units <= held_units
                || u32::try_from(units - held_units)
                    .ok()
                    .and_then(|n| Arc::clone(&self.buffers).try_acquire_many_owned(n).ok())
                    .map(|p| {
                        held.push(p);
                        held_units = units;
                    })
                    .is_some();
            if !granted || prefix.len() > IN_MEMORY_MAX {
                drop(held);
                return self.store_spooled(object, prefix, download, then).await;
            }
        }
        let (stored, out) = self
            .w(move |w| {
                let stored = w.put_bytes(&prefix)?;
                let out = then(w, stored)?;
                Ok((stored, out))
            })
            .await?;
        drop(held);
        self.progress.object_item(object, stored.content.size);
        Ok(out)
    }

    /// Spools `prefix` and the rest of `download` to disk, then stores the spool file and runs
    /// `then`.
    async fn store_spooled<T, F>(
        &self,
        object: &str,
        prefix: Vec<u8>,
        download: Download,
        then: F,
    ) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&mut RunWriter, StoredContent) -> Result<T, StoreError> + Send + 'static,
    {
        let file = self.spool.fill(prefix, download, &self.progress).await?;
        let (stored, out) = self
            .w(move |w| {
                let stored = w.put_content(std::io::BufReader::with_capacity(256 << 10, file))?;
                let out = then(w, stored)?;
                Ok((stored, out))
            })
            .await?;
        self.progress.object_item(object, stored.content.size);
        Ok(out)
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
