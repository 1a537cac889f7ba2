//! The order every folder-shaped restore follows: folders first, in order (parents before
//! children), then the leaf items, a few at a time, each outcome recorded as it comes.

use backhome_store::NodeKind;
use futures_util::StreamExt;

use super::{Item, ItemError, Job, Outcome, RestoreError};

/// A restore target made of folders and leaf items (a mailbox, a drive).
pub(super) trait FolderTree {
    /// Kind of the folders.
    const FOLDER: NodeKind;
    /// Kind of the leaves.
    const LEAF: NodeKind;
    /// What the target is called in errors (`mailbox`, `drive`).
    const NAME: &'static str;
    /// Leaves restored at once.
    const AT_ONCE: usize;

    /// Finds or creates the folder at `names`; answers its id and whether it was created.
    async fn folder(&mut self, names: &[String]) -> Result<(String, bool), ItemError>;
    /// Makes ready the folder a leaf at `names` goes into; answers its id.
    async fn prepare(&mut self, names: &[String]) -> Result<String, ItemError>;
    /// Restores one leaf into the folder `parent`.
    async fn leaf(&self, item: &Item, parent: &str) -> Result<Outcome, ItemError>;
}

/// Restores `items` into `t`: folders first, then the leaves, `T::AT_ONCE` at a time.
pub(super) async fn restore<T: FolderTree>(
    job: &Job,
    items: &[Item],
    mut t: T,
) -> Result<(), RestoreError> {
    // Leaves waiting for their turn, by index: a closure over `(&Item, String)` would be
    // higher-ranked over the reference's lifetime, which makes the job's future unusable with
    // `tokio::spawn` (rustc cannot prove it `Send` for every lifetime).
    let mut pending: Vec<(usize, String)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if job.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        let result = if item.version.kind == T::FOLDER {
            t.folder(&item.folders).await.map(|(_, created)| {
                if created {
                    Outcome::Restored
                } else {
                    Outcome::Skipped
                }
            })
        } else if item.version.kind == T::LEAF {
            match t.prepare(&item.folders).await {
                Ok(parent) => {
                    pending.push((index, parent));
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            Err(ItemError::Other(format!(
                "a {} cannot be restored into a {}",
                item.version.kind.as_str(),
                T::NAME
            )))
        };
        job.record(&item.path, result)?;
    }
    let t = &t;
    let mut results = futures_util::stream::iter(pending)
        .map(|(index, parent)| async move {
            if job.cancelled() {
                return None;
            }
            let item = &items[index];
            Some((item, t.leaf(item, &parent).await))
        })
        .buffer_unordered(T::AT_ONCE);
    while let Some(done) = results.next().await {
        if let Some((item, result)) = done {
            job.record(&item.path, result)?;
        }
    }
    if job.cancelled() {
        return Err(RestoreError::Cancelled);
    }
    Ok(())
}
