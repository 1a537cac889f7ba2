//! Exchange mail: the whole folder tree (hidden folders too), each message as its MIME plus its
//! Graph metadata, incrementally through per-folder delta queries.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use backhome_graph::models::{MailFolder, Message};
use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::context::{Ctx, RunError};
use super::delta;
use crate::paths::item_name;

/// Messages listed and waiting to be stored, per mailbox. The listing waits while the queue is
/// full, so memory does not grow with the mailbox.
const QUEUED_PER_MAILBOX: usize = 32;

/// Messages being stored at once per mailbox. More than the mailbox's Graph slots (Exchange allows
/// 4 requests at once; the client enforces it), so that while some messages are written to the
/// repository the others keep every slot busy.
const MESSAGES_AT_ONCE: usize = 8;

/// Folders whose changes are listed at once per mailbox, so that small and empty folders do not
/// leave the slots waiting for a listing.
const FOLDERS_LISTED_AT_ONCE: usize = 2;

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
    /// Hashes of the ids of messages written in this run, so that a move reported as a removal
    /// from the old folder does not delete them, whichever folder is handled first. Kept as
    /// 64-bit hashes, so a large mailbox costs 16 bytes or so per message, not its ids.
    touched: Mutex<HashSet<u64>>,
    /// Removals reported by the folders' rounds, applied once every folder was listed.
    removed: Mutex<Vec<String>>,
    /// New delta tokens with their folder, recorded once the removals are applied and only for
    /// folders whose messages were all stored (a kill before that replays the rounds; unchanged
    /// messages are not downloaded again).
    tokens: Mutex<Vec<(String, String, std::sync::Arc<FolderState>)>>,
}

/// A listed message waiting to be stored.
struct Queued {
    message: Listed,
    folder: NodeId,
    state: std::sync::Arc<FolderState>,
}

/// A listed message as it waits: its id, and Graph's JSON kept as text. A parsed JSON tree takes
/// several times the memory in dozens of small allocations, and a run holds hundreds of listed
/// messages per mailbox; the JSON is parsed again when the message's turn comes.
struct Listed {
    id: String,
    json: Box<str>,
}

impl From<Message> for Listed {
    fn from(m: Message) -> Self {
        Self {
            json: m.raw.to_string().into_boxed_str(),
            id: m.meta.id,
        }
    }
}

impl Listed {
    /// The message again, parsed from its JSON.
    fn parse(&self) -> Result<Message, RunError> {
        serde_json::from_str(&self.json)
            .map_err(|e| RunError::Internal(format!("listed message {}: {e}", self.id)))
    }
}

/// The receiving end of a mailbox's queue as a stream.
struct Queue(mpsc::Receiver<Queued>);

impl futures_util::Stream for Queue {
    type Item = Queued;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Queued>> {
        self.0.poll_recv(cx)
    }
}

/// One folder's listing and the storing of what it listed.
struct FolderState {
    /// Display path, for progress and errors.
    path: String,
    /// Messages queued and not stored yet.
    pending: AtomicUsize,
    /// Messages that failed (the folder's token is then kept, so they are retried next run).
    failed: AtomicUsize,
    /// The listing reached its end.
    listed: AtomicBool,
    /// The folder was counted as done in the progress.
    done: AtomicBool,
}

fn id_hash(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl<'a> Mailbox<'a> {
    /// A mailbox of `object` whose Graph path is `base` (`/users/{id}`), stored under `root`.
    #[must_use]
    pub fn new(ctx: &'a Ctx, object: ObjectId, label: &'a str, base: String, root: NodeId) -> Self {
        Self {
            ctx,
            object,
            label,
            base,
            root,
            touched: Mutex::default(),
            removed: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// Backs up the folder tree and every folder's messages.
    ///
    /// The folders' changes are listed while the listed messages are stored: a bounded queue
    /// joins the two, so the mailbox's Graph slots never wait for a listing page and memory stays
    /// bounded whatever the mailbox's size.
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
        let seen: HashSet<String> = folders.iter().map(|(f, _, _)| f.id.clone()).collect();
        let (tx, rx) = mpsc::channel::<Queued>(QUEUED_PER_MAILBOX);
        let listing = async move {
            futures_util::stream::iter(folders)
                .map(|(folder, parent, path)| {
                    let tx = tx.clone();
                    async move { self.folder(folder, parent, path, tx).await }
                })
                .buffer_unordered(FOLDERS_LISTED_AT_ONCE)
                .try_collect::<Vec<()>>()
                .await
        };
        let queue = Queue(rx);
        let storing = queue
            .map(|q| self.queued(q))
            .buffer_unordered(MESSAGES_AT_ONCE)
            .try_collect::<Vec<()>>();
        futures_util::future::try_join(listing, storing).await?;
        self.finish().await?;
        super::prune_children(self.ctx, self.object, self.root, NodeKind::MailFolder, seen).await?;
        Ok(true)
    }

    /// Records a folder's version, then lists its changes into the queue.
    async fn folder(
        &self,
        folder: MailFolder,
        parent: NodeId,
        path: String,
        tx: mpsc::Sender<Queued>,
    ) -> Result<(), RunError> {
        self.ctx.check_cancel()?;
        let (obj, id) = (self.object, folder.id.clone());
        let v = NewVersion {
            parent: Some(parent),
            name: folder
                .display_name
                .clone()
                .unwrap_or_else(|| folder.id.clone()),
            metadata: serde_json::to_value(&folder).unwrap_or_default(),
            ..NewVersion::default()
        };
        let node = self
            .ctx
            .w(move |w| {
                let node = w.node(obj, &id, NodeKind::MailFolder)?;
                w.put_version(node, &v)?;
                Ok(node)
            })
            .await?;
        self.ctx
            .progress
            .activity(self.label, &format!("mail: {path}"));
        let state = std::sync::Arc::new(FolderState {
            path,
            pending: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            listed: AtomicBool::new(false),
            done: AtomicBool::new(false),
        });
        self.folder_messages(&folder, node, &state, tx).await?;
        state.listed.store(true, Ordering::SeqCst);
        self.settle(&state);
        Ok(())
    }

    /// Counts a folder as done once it is listed and everything it listed is stored.
    fn settle(&self, state: &FolderState) {
        if state.listed.load(Ordering::SeqCst)
            && state.pending.load(Ordering::SeqCst) == 0
            && !state.done.swap(true, Ordering::SeqCst)
        {
            self.ctx.progress.container_done(self.label);
        }
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

    /// Lists a folder's changes: new and changed messages go to the queue, removals and the new
    /// token wait for [`Mailbox::finish`].
    async fn folder_messages(
        &self,
        folder: &MailFolder,
        node: NodeId,
        state: &std::sync::Arc<FolderState>,
        tx: mpsc::Sender<Queued>,
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
            label: &state.path,
        };
        let items = |batch: Vec<Message>| {
            let tx = tx.clone();
            // Compacted at once, so that the page does not wait in its parsed form for room in
            // the queue.
            let batch: Vec<Listed> = batch.into_iter().map(Listed::from).collect();
            async move {
                for message in batch {
                    state.pending.fetch_add(1, Ordering::SeqCst);
                    let q = Queued {
                        message,
                        folder: node,
                        state: std::sync::Arc::clone(state),
                    };
                    if tx.send(q).await.is_err() {
                        // The storing side stopped on a run-stopping error, which it reports.
                        return Err(RunError::Cancelled);
                    }
                }
                // Failures are counted as the messages are stored; see `finish`.
                Ok(0)
            }
        };
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
            t.push((scope, link, std::sync::Arc::clone(state)));
        }
        Ok(())
    }

    /// After a full listing of a folder: the messages the repository holds there (committed by
    /// an earlier run, or stored by the stopped run this one resumes) and Graph no longer listed
    /// are removals.
    async fn prune(&self, folder: NodeId, seen: HashSet<String>) -> Result<(), RunError> {
        let gone = self
            .ctx
            .held_children(folder)
            .await?
            .into_iter()
            .filter(|v| v.kind == NodeKind::Message && !seen.contains(&v.graph_id))
            .map(|v| v.graph_id);
        if let Ok(mut r) = self.removed.lock() {
            r.extend(gone);
        }
        Ok(())
    }

    /// Stores one queued message; an item failure is recorded against its folder.
    async fn queued(&self, q: Queued) -> Result<(), RunError> {
        let Queued {
            message,
            folder,
            state,
        } = q;
        let id = message.id.clone();
        let r = match self.message(message, folder).await {
            Ok(()) => Ok(()),
            Err(RunError::Graph(e)) if !delta::is_fatal(&e) => {
                // A message deleted while the run went on is reported by the next delta round.
                if !matches!(e.class(), ErrorClass::NotFound) {
                    self.ctx.item_error(
                        format!("/users/{}/mail{}/{id}", self.label, state.path),
                        e.to_string(),
                    );
                    state.failed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        state.pending.fetch_sub(1, Ordering::SeqCst);
        self.settle(&state);
        r
    }

    async fn message(&self, listed: Listed, folder: NodeId) -> Result<(), RunError> {
        let m = listed.parse()?;
        drop(listed);
        let ctx = self.ctx;
        let (obj, id) = (self.object, m.meta.id.clone());
        let (cur, node) = ctx
            .w(move |w| {
                let cur = w.current_version(obj, &id)?;
                let node = match &cur {
                    Some(c) => c.node,
                    None => w.node(obj, &id, NodeKind::Message)?,
                };
                Ok((cur, node))
            })
            .await?;
        let name = item_name(m.meta.subject.as_deref().unwrap_or(""), &m.meta.id);
        if let Ok(mut t) = self.touched.lock() {
            t.insert(id_hash(&m.meta.id));
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
        let search = search_text(&m);
        let v = NewVersion {
            parent: Some(folder),
            name,
            content: None,
            size: 0,
            modified: m.meta.last_modified_date_time.or(m.meta.received_date_time),
            version_tag: m.meta.change_key.clone(),
            metadata: m.raw,
            search: Some(search),
        };
        let outcome = ctx
            .fetch_into_store_then(self.label, call, move |w, stored| {
                let v = NewVersion {
                    content: Some(stored.content),
                    size: stored.content.size,
                    ..v
                };
                w.put_version(node, &v)
            })
            .await?;
        super::count(ctx, outcome, cur.is_some());
        Ok(())
    }

    /// Applies the removals of messages not seen again elsewhere, then records the tokens of the
    /// folders whose messages were all stored (a folder with failures keeps its old token, so the
    /// next run lists them again).
    async fn finish(&self) -> Result<(), RunError> {
        let obj = self.object;
        let ids = self
            .removed
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let ids: Vec<String> = match self.touched.lock() {
            Ok(t) => ids
                .into_iter()
                .filter(|id| !t.contains(&id_hash(id)))
                .collect(),
            Err(_) => return Err(RunError::Internal("mailbox state poisoned".into())),
        };
        super::delete_graph_ids(self.ctx, obj, ids).await?;
        let tokens: Vec<(String, String)> = self
            .tokens
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, _, state)| state.failed.load(Ordering::SeqCst) == 0)
            .map(|(scope, link, _)| (scope, link))
            .collect();
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
