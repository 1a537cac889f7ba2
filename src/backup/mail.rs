//! Exchange mail: the whole folder tree (hidden folders too), each message as its MIME plus its
//! Graph metadata, incrementally through per-folder delta queries.

use std::collections::HashSet;
use std::sync::Mutex;

use backhome_graph::models::{MailFolder, Message};
use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText};
use futures_util::{StreamExt, TryStreamExt};

use super::context::{Ctx, RunError};
use super::delta;
use crate::paths::item_name;

const MESSAGE_SELECT: &str = "subject,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,isRead,isDraft,flag,importance,categories,hasAttachments,internetMessageId,conversationId,parentFolderId,changeKey,lastModifiedDateTime,bodyPreview";

/// One mailbox (a user's, or a shared mailbox) of a protected object.
pub struct Mailbox<'a> {
    /// The run.
    pub ctx: &'a Ctx,
    /// The protected object.
    pub object: ObjectId,
    /// Label for progress and errors (the UPN).
    pub label: &'a str,
    /// Graph path prefix of the mailbox, e.g. `/users/{id}`.
    pub base: String,
    /// The `mail` root node.
    pub root: NodeId,
    /// Messages written in this run, so that a move reported as a removal from the old folder
    /// does not delete them, whichever folder is handled first.
    pub touched: Mutex<HashSet<String>>,
    /// Removals reported by the folders' rounds, applied once every folder was listed.
    pub removed: Mutex<Vec<String>>,
    /// New delta tokens, recorded once the removals are applied (a kill before that replays the
    /// rounds; unchanged messages are not downloaded again).
    pub tokens: Mutex<Vec<(String, String)>>,
}

impl Mailbox<'_> {
    /// Backs up the folder tree and every folder's messages.
    ///
    /// # Errors
    /// A run-stopping error; item and folder failures are recorded and skipped.
    /// A mailbox that is not enabled is an `Ok` with nothing stored.
    pub async fn run(&self) -> Result<bool, RunError> {
        let folders = match self.folder_tree().await {
            Ok(f) => f,
            Err(RunError::Graph(e)) if matches!(e.class(), ErrorClass::MailboxNotEnabled) => {
                self.ctx.progress.containers_listed(self.label, 0);
                return Ok(false);
            }
            Err(RunError::Graph(e)) if !delta::is_fatal(&e) => {
                self.ctx.progress.containers_listed(self.label, 0);
                self.ctx.item_error(
                    format!("/users/{}/mail", self.label),
                    format!("mail folders could not be listed: {e}"),
                );
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        self.ctx
            .progress
            .containers_listed(self.label, folders.len() as u64);
        let mut seen = HashSet::new();
        for (folder, parent, path) in &folders {
            self.ctx.check_cancel()?;
            seen.insert(folder.id.clone());
            let (obj, id) = (self.object, folder.id.clone());
            let node = self
                .ctx
                .w(move |w| w.node(obj, &id, NodeKind::MailFolder))
                .await?;
            let v = NewVersion {
                parent: Some(*parent),
                name: folder
                    .display_name
                    .clone()
                    .unwrap_or_else(|| folder.id.clone()),
                metadata: serde_json::to_value(folder).unwrap_or_default(),
                ..NewVersion::default()
            };
            self.ctx.w(move |w| w.put_version(node, &v)).await?;
            self.ctx
                .progress
                .activity(self.label, &format!("mail: {path}"));
            self.folder_messages(folder, node, path).await?;
            self.ctx.progress.container_done(self.label);
        }
        self.finish().await?;
        super::prune_children(self.ctx, self.object, self.root, NodeKind::MailFolder, seen).await?;
        Ok(true)
    }

    /// Every folder, parents before children, with its parent node and display path.
    async fn folder_tree(&self) -> Result<Vec<(MailFolder, NodeId, String)>, RunError> {
        let mut out = Vec::new();
        let mut queue: Vec<(String, NodeId, String)> = vec![(
            format!(
                "{}/mailFolders?includeHiddenFolders=true&$top=100",
                self.base
            ),
            self.root,
            String::new(),
        )];
        while let Some((url, parent_node, parent_path)) = queue.pop() {
            let folders: Vec<MailFolder> = self
                .ctx
                .client
                .items(Call::get(url).resource(self.base.clone()))
                .try_collect()
                .await?;
            for f in folders {
                let path = format!(
                    "{parent_path}/{}",
                    f.display_name.as_deref().unwrap_or(&f.id)
                );
                let (obj, id) = (self.object, f.id.clone());
                let node = self
                    .ctx
                    .w(move |w| w.node(obj, &id, NodeKind::MailFolder))
                    .await?;
                if f.child_folder_count.unwrap_or(1) > 0 {
                    queue.push((
                        format!(
                            "{}/mailFolders/{}/childFolders?includeHiddenFolders=true&$top=100",
                            self.base,
                            encode_segment(&f.id)
                        ),
                        node,
                        path.clone(),
                    ));
                }
                out.push((f, parent_node, path));
            }
        }
        Ok(out)
    }

    async fn folder_messages(
        &self,
        folder: &MailFolder,
        node: NodeId,
        path: &str,
    ) -> Result<(), RunError> {
        let scope = format!("mail:{}", folder.id);
        let start = Call::get(format!(
            "{}/mailFolders/{}/messages/delta?$select={MESSAGE_SELECT}",
            self.base,
            encode_segment(&folder.id)
        ))
        .resource(self.base.clone())
        .max_page_size(100);
        let round = delta::Round {
            ctx: self.ctx,
            object: self.object,
            scope: &scope,
            start,
            label: path,
        };
        let items = |batch: Vec<Message>| self.messages(batch, node, path);
        let removed = |ids: Vec<String>| async move {
            if let Ok(mut r) = self.removed.lock() {
                r.extend(ids);
            }
            Ok(())
        };
        let prune = |seen: HashSet<String>| self.prune(node, seen);
        if let Some(link) = round.list(items, removed, prune).await?
            && let Ok(mut t) = self.tokens.lock()
        {
            t.push((scope, link));
        }
        Ok(())
    }

    /// After a full listing of a folder: the messages the last run had there and Graph no longer
    /// listed are removals.
    async fn prune(&self, folder: NodeId, seen: HashSet<String>) -> Result<(), RunError> {
        let Some(latest) = self.ctx.latest else {
            return Ok(());
        };
        let repo = self.ctx.repo.clone();
        let gone: Vec<String> = tokio::task::spawn_blocking(move || {
            repo.list_children(folder, latest).map(|c| {
                c.into_iter()
                    .filter(|v| v.kind == NodeKind::Message && !seen.contains(&v.graph_id))
                    .map(|v| v.graph_id)
                    .collect()
            })
        })
        .await
        .map_err(|e| RunError::Internal(e.to_string()))??;
        if let Ok(mut r) = self.removed.lock() {
            r.extend(gone);
        }
        Ok(())
    }

    async fn messages(
        &self,
        batch: Vec<Message>,
        folder: NodeId,
        path: &str,
    ) -> Result<usize, RunError> {
        let results: Vec<Result<bool, RunError>> = futures_util::stream::iter(batch)
            .map(|m| async move {
                let id = m.meta.id.clone();
                match self.message(m, folder).await {
                    Ok(()) => Ok(false),
                    Err(RunError::Graph(e)) if !delta::is_fatal(&e) => {
                        if matches!(e.class(), ErrorClass::NotFound) {
                            // Deleted while the run went on: the next delta round reports it.
                            return Ok(false);
                        }
                        self.ctx.item_error(
                            format!("/users/{}/mail{path}/{id}", self.label),
                            e.to_string(),
                        );
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

    async fn message(&self, m: Message, folder: NodeId) -> Result<(), RunError> {
        let ctx = self.ctx;
        let (obj, id) = (self.object, m.meta.id.clone());
        let cur = ctx.w(move |w| w.current_version(obj, &id)).await?;
        let id = m.meta.id.clone();
        let node = ctx.w(move |w| w.node(obj, &id, NodeKind::Message)).await?;
        let name = item_name(m.meta.subject.as_deref().unwrap_or(""), &m.meta.id);
        if let Ok(mut t) = self.touched.lock() {
            t.insert(m.meta.id.clone());
        }
        if let Some(cur) = &cur
            && cur.version_tag.is_some()
            && cur.version_tag == m.meta.change_key
            && cur.content.is_some()
        {
            let outcome = ctx
                .w(move |w| w.move_node(node, Some(folder), &name))
                .await?;
            super::count(ctx, outcome, true);
            return Ok(());
        }
        let call = Call::get(format!(
            "{}/messages/{}/$value",
            self.base,
            encode_segment(&m.meta.id)
        ))
        .resource(self.base.clone());
        let stored = ctx.fetch_into_store(self.label, call).await?;
        let search = search_text(&m);
        let v = NewVersion {
            parent: Some(folder),
            name,
            content: Some(stored.content),
            size: stored.content.size,
            modified: m.meta.last_modified_date_time.or(m.meta.received_date_time),
            version_tag: m.meta.change_key.clone(),
            metadata: m.raw,
            search: Some(search),
        };
        let outcome = ctx.w(move |w| w.put_version(node, &v)).await?;
        super::count(ctx, outcome, cur.is_some());
        Ok(())
    }

    /// Applies the removals of messages not seen again elsewhere, then records the tokens.
    async fn finish(&self) -> Result<(), RunError> {
        let obj = self.object;
        let ids = self
            .removed
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let ids: Vec<String> = match self.touched.lock() {
            Ok(t) => ids.into_iter().filter(|id| !t.contains(id)).collect(),
            Err(_) => return Err(RunError::Internal("mailbox state poisoned".into())),
        };
        super::delete_graph_ids(self.ctx, obj, ids).await?;
        let tokens = self
            .tokens
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        self.ctx
            .w(move |w| {
                for (scope, link) in tokens {
                    w.set_delta_token(obj, &scope, &link)?;
                }
                Ok(())
            })
            .await
    }
}

fn search_text(m: &Message) -> SearchText {
    let addr = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.pointer("/emailAddress/address").and_then(|x| x.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    SearchText {
        subject: m.meta.subject.clone().unwrap_or_default(),
        sender: m
            .raw
            .pointer("/from/emailAddress/address")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned(),
        recipients: format!(
            "{} {}",
            addr(&m.raw["toRecipients"]),
            addr(&m.raw["ccRecipients"])
        ),
        body: m
            .raw
            .get("bodyPreview")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned(),
        path: String::new(),
    }
}
