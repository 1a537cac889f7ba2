//! OneDrive and SharePoint document libraries: the folder tree and every file, incrementally
//! through the drive's delta query; file content streamed into the repository.

use std::collections::HashSet;

use backhome_graph::models::DriveItem;
use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText};
use futures_util::StreamExt;

use super::context::{Ctx, RunError};
use super::delta;

/// One drive (a OneDrive or a document library) of a protected object.
pub struct DriveJob<'a> {
    /// The run.
    pub ctx: &'a Ctx,
    /// The protected object.
    pub object: ObjectId,
    /// Label for progress and errors.
    pub label: &'a str,
    /// The drive's Graph id.
    pub drive_id: String,
    /// The node that stands for the drive's root folder.
    pub root: NodeId,
    /// Graph id of the drive's root item (learned at the start of the run).
    pub root_item: std::sync::OnceLock<String>,
}

impl DriveJob<'_> {
    /// Backs up the drive.
    ///
    /// # Errors
    /// Run-stopping errors only.
    pub async fn run(&self) -> Result<(), RunError> {
        let scope = format!("drive:{}", self.drive_id);
        let start = Call::get(format!(
            "/drives/{}/root/delta",
            encode_segment(&self.drive_id)
        ))
        .resource(self.drive_id.clone());
        self.ctx.progress.activity(self.label, "files");
        let root: DriveItem = match self
            .ctx
            .client
            .json(
                Call::get(format!(
                    "/drives/{}/root?$select=id",
                    encode_segment(&self.drive_id)
                ))
                .resource(self.drive_id.clone()),
            )
            .await
        {
            Ok(r) => r,
            Err(e) if !delta::is_fatal(&e) => {
                self.ctx
                    .item_error(self.label, format!("the drive could not be opened: {e}"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let _ = self.root_item.set(root.id);
        let round = delta::Round {
            ctx: self.ctx,
            object: self.object,
            scope: &scope,
            start,
            label: self.label,
        };
        round
            .run(
                |items: Vec<DriveItem>| self.items(items),
                |ids: Vec<String>| self.delete_ids(ids),
                |seen: HashSet<String>| self.prune(seen),
            )
            .await
    }

    fn node_kind(item: &DriveItem) -> NodeKind {
        if item.folder.is_some() || item.package.is_some() {
            NodeKind::DriveFolder
        } else {
            NodeKind::File
        }
    }

    /// Graph id of the item's parent node, or this drive's root node.
    async fn parent_node(&self, item: &DriveItem) -> Result<NodeId, RunError> {
        let Some(pid) = item.parent_reference.as_ref().and_then(|p| p.id.clone()) else {
            return Ok(self.root);
        };
        if self.root_item.get() == Some(&pid) {
            return Ok(self.root);
        }
        let obj = self.object;
        self.ctx
            .w(move |w| w.node(obj, &pid, NodeKind::DriveFolder))
            .await
    }

    async fn items(&self, items: Vec<DriveItem>) -> Result<usize, RunError> {
        // Folders first and in order (children refer to them); files in parallel.
        let mut files = Vec::new();
        for item in items {
            if item.root.is_some() || self.root_item.get() == Some(&item.id) {
                continue;
            }
            if item.deleted.is_some() {
                self.delete_ids(vec![item.id.clone()]).await?;
                continue;
            }
            if Self::node_kind(&item) == NodeKind::DriveFolder {
                let parent = self.parent_node(&item).await?;
                let (obj, id) = (self.object, item.id.clone());
                let v = NewVersion {
                    parent: Some(parent),
                    name: item.name.clone().unwrap_or_else(|| item.id.clone()),
                    modified: item.last_modified_date_time,
                    metadata: serde_json::to_value(&item).unwrap_or_default(),
                    ..NewVersion::default()
                };
                let existed = self
                    .ctx
                    .w({
                        let id = id.clone();
                        move |w| w.current_version(obj, &id)
                    })
                    .await?
                    .is_some();
                let outcome = self
                    .ctx
                    .w(move |w| {
                        let n = w.node(obj, &id, NodeKind::DriveFolder)?;
                        w.put_version(n, &v)
                    })
                    .await?;
                super::count(self.ctx, outcome, existed);
            } else {
                files.push(item);
            }
        }
        let results: Vec<Result<bool, RunError>> = futures_util::stream::iter(files)
            .map(|item| async move {
                let id = item.id.clone();
                match self.file(item).await {
                    Ok(()) => Ok(false),
                    Err(RunError::Graph(e)) if !delta::is_fatal(&e) => {
                        if matches!(e.class(), ErrorClass::NotFound) {
                            return Ok(false);
                        }
                        self.ctx
                            .item_error(format!("{}/{id}", self.label), e.to_string());
                        Ok(true)
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut failed = 0;
        for r in results {
            failed += usize::from(r?);
        }
        Ok(failed)
    }

    async fn file(&self, item: DriveItem) -> Result<(), RunError> {
        let ctx = self.ctx;
        let parent = self.parent_node(&item).await?;
        let (obj, id) = (self.object, item.id.clone());
        let cur = ctx.w(move |w| w.current_version(obj, &id)).await?;
        let id = item.id.clone();
        let node = ctx.w(move |w| w.node(obj, &id, NodeKind::File)).await?;
        let name = item.name.clone().unwrap_or_else(|| item.id.clone());
        // The content tag changes only when the bytes do: a rename or move needs no download.
        let tag = item.c_tag.clone().or_else(|| item.e_tag.clone());
        let content = match &cur {
            Some(c) if c.version_tag.is_some() && c.version_tag == tag && c.content.is_some() => {
                None
            }
            _ => {
                let call = Call::get(format!(
                    "/drives/{}/items/{}/content",
                    encode_segment(&self.drive_id),
                    encode_segment(&item.id)
                ))
                .resource(self.drive_id.clone());
                Some(ctx.fetch_into_store(self.label, call).await?)
            }
        };
        let outcome = match content {
            None => {
                let name = name.clone();
                ctx.w(move |w| w.move_node(node, Some(parent), &name))
                    .await?
            }
            Some(stored) => {
                let v = NewVersion {
                    parent: Some(parent),
                    name: name.clone(),
                    content: Some(stored.content),
                    size: stored.content.size,
                    modified: item
                        .file_system_info
                        .as_ref()
                        .and_then(|f| f.last_modified_date_time)
                        .or(item.last_modified_date_time),
                    version_tag: tag,
                    metadata: serde_json::to_value(&item).unwrap_or_default(),
                    search: Some(SearchText {
                        subject: name,
                        ..SearchText::default()
                    }),
                };
                ctx.w(move |w| w.put_version(node, &v)).await?
            }
        };
        super::count(ctx, outcome, cur.is_some());
        Ok(())
    }

    async fn delete_ids(&self, ids: Vec<String>) -> Result<(), RunError> {
        super::delete_graph_ids(self.ctx, self.object, ids).await
    }

    /// After a full listing: whatever the repository still shows under the drive but Graph no
    /// longer listed was deleted.
    async fn prune(&self, seen: HashSet<String>) -> Result<(), RunError> {
        super::prune_subtree(self.ctx, self.root, seen).await
    }
}
