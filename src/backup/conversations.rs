//! Group conversations: every thread of a Microsoft 365 group's mailbox, each stored as a folder
//! (`/groups/<mailNickname>/conversations/<topic>`) holding its posts in delivery order as their
//! Graph JSON, and the posts' file attachments as files next to them.
//!
//! Graph has no delta query for threads. A thread's `lastDeliveredDateTime` moves with every new
//! post, so a thread whose value is the one stored is not read again: a run without changes costs
//! one listing of the group's threads. A thread that is no longer listed was deleted; its folder,
//! posts and attachments are closed, so earlier points in time still show them.

use std::collections::HashSet;

use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText, VersionOutcome};
use base64::Engine;
use futures_util::TryStreamExt;
use serde_json::Value;

use super::context::{Ctx, RunError};
use super::delta::is_fatal;
use crate::paths::item_name;

/// The text of a post body (HTML tags dropped).
fn body_text(post: &Value) -> String {
    let content = post
        .pointer("/body/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let html = post
        .pointer("/body/contentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    if html {
        crate::export::html::to_text(content)
    } else {
        content.to_owned()
    }
}

fn sender_name(post: &Value) -> String {
    ["/from/emailAddress/name", "/from/emailAddress/address"]
        .iter()
        .find_map(|p| post.pointer(p).and_then(Value::as_str))
        .unwrap_or("(unknown)")
        .to_owned()
}

/// Backs up the conversations of the group at `base` (`/groups/{id}`) under `root`.
///
/// # Errors
/// Run-stopping errors only; a thread that fails is recorded and read again next run.
pub async fn group(
    ctx: &Ctx,
    obj: ObjectId,
    nick: &str,
    base: &str,
    root: NodeId,
) -> Result<(), RunError> {
    ctx.progress.activity(nick, "conversations");
    let label = format!("/groups/{nick}/conversations");
    let threads: Vec<Value> = match ctx
        .client
        .items(Call::get(format!("{base}/threads?$top=100")).resource(base.to_owned()))
        .try_collect()
        .await
    {
        Ok(v) => v,
        Err(e) if is_fatal(&e) => return Err(e.into()),
        Err(e) => {
            ctx.item_error(label, format!("threads could not be listed: {e}"));
            return Ok(());
        }
    };
    let mut seen = HashSet::new();
    for t in threads {
        let Some(tid) = t.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        seen.insert(tid.clone());
        let job = ThreadJob {
            ctx,
            object: obj,
            base,
            root,
            nick,
        };
        match job.run(&tid, t).await {
            Ok(()) => {}
            Err(RunError::Graph(e)) if !is_fatal(&e) => {
                if !matches!(e.class(), ErrorClass::NotFound) {
                    ctx.item_error(format!("{label}/{tid}"), e.to_string());
                }
            }
            Err(e) => return Err(e),
        }
    }
    close_deleted_threads(ctx, obj, root, seen).await
}

/// Threads the repository holds (committed, or stored by the stopped run this one resumes) and
/// Graph no longer lists: their posts and attachments are closed with them.
async fn close_deleted_threads(
    ctx: &Ctx,
    obj: ObjectId,
    root: NodeId,
    seen: HashSet<String>,
) -> Result<(), RunError> {
    let gone = super::gone_children(ctx, obj, root, NodeKind::Channel, &seen).await?;
    for &node in &gone {
        super::prune_subtree(ctx, node, HashSet::new()).await?;
    }
    super::delete_nodes(ctx, gone).await
}

struct ThreadJob<'a> {
    ctx: &'a Ctx,
    object: ObjectId,
    base: &'a str,
    root: NodeId,
    nick: &'a str,
}

impl ThreadJob<'_> {
    async fn run(&self, tid: &str, thread: Value) -> Result<(), RunError> {
        let ctx = self.ctx;
        let obj = self.object;
        let delivered = thread
            .get("lastDeliveredDateTime")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let topic = thread
            .get("topic")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = item_name(&topic, tid);
        let cur = ctx
            .w({
                let gid = tid.to_owned();
                move |w| w.current_version(obj, &gid)
            })
            .await?;
        if let Some(c) = cur.as_ref()
            && delivered.is_some()
            && c.version_tag == delivered
        {
            // Nothing was delivered since the stored state: the posts are not read again.
            super::count(ctx, VersionOutcome::Unchanged(c.version), true);
            return Ok(());
        }
        let gid = tid.to_owned();
        let node = ctx.w(move |w| w.node(obj, &gid, NodeKind::Channel)).await?;
        let url = format!("{}/threads/{}", self.base, encode_segment(tid));
        let posts: Vec<Value> = ctx
            .client
            .items(
                Call::get(format!("{url}/posts?$expand=inReplyTo")).resource(self.base.to_owned()),
            )
            .try_collect()
            .await?;
        let prior_atts = self.prior_attachments(node).await?;
        let mut seen_posts = HashSet::new();
        let mut seen_atts = HashSet::new();
        for (i, post) in posts.into_iter().enumerate() {
            let Some(pid) = post.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            seen_posts.insert(pid.clone());
            self.post(&url, node, i, &pid, post, &prior_atts, &mut seen_atts)
                .await?;
        }
        super::prune_children(ctx, obj, node, NodeKind::ChannelMessage, seen_posts).await?;
        super::prune_children(ctx, obj, node, NodeKind::Attachment, seen_atts).await?;
        // The thread's tag is recorded last: a thread that failed half-way is read again.
        let (root, meta) = (self.root, thread);
        let outcome = ctx
            .w(move |w| {
                w.put_version(
                    node,
                    &NewVersion {
                        parent: Some(root),
                        name,
                        metadata: meta,
                        modified: delivered.as_deref().and_then(|d| {
                            time::OffsetDateTime::parse(
                                d,
                                &time::format_description::well_known::Rfc3339,
                            )
                            .ok()
                        }),
                        version_tag: delivered,
                        ..NewVersion::default()
                    },
                )
            })
            .await?;
        super::count(ctx, outcome, cur.is_some());
        Ok(())
    }

    /// Graph ids of the attachments the repository holds in the thread `node`: stored by an
    /// earlier run, or by the stopped run this one resumes (whose thread has no version yet,
    /// since a thread's version is recorded last).
    async fn prior_attachments(&self, node: NodeId) -> Result<Vec<String>, RunError> {
        Ok(self
            .ctx
            .held_children(node)
            .await?
            .into_iter()
            .filter(|x| x.kind == NodeKind::Attachment)
            .map(|x| x.graph_id)
            .collect())
    }

    /// Stores one post (unless its `changeKey` is the stored one) and its attachments.
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &self,
        thread_url: &str,
        thread: NodeId,
        index: usize,
        pid: &str,
        mut post: Value,
        prior_atts: &[String],
        seen_atts: &mut HashSet<String>,
    ) -> Result<(), RunError> {
        let ctx = self.ctx;
        let obj = self.object;
        let tag = post
            .get("changeKey")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let author = sender_name(&post);
        // Posts sort in delivery order by their number.
        let name = item_name(&format!("{:03} {author}", index + 1), pid);
        let existing = ctx
            .w({
                let gid = pid.to_owned();
                move |w| w.current_version(obj, &gid)
            })
            .await?;
        let has_attachments = post.get("hasAttachments").and_then(Value::as_bool) == Some(true);
        if let Some(c) = existing.as_ref()
            && tag.is_some()
            && c.version_tag == tag
        {
            let node = c.node;
            let outcome = ctx
                .w(move |w| w.move_node(node, Some(thread), &name))
                .await?;
            super::count(ctx, outcome, true);
            // Attachments of an unchanged post are unchanged too.
            let prefix = format!("{pid}/");
            seen_atts.extend(
                prior_atts
                    .iter()
                    .filter(|g| g.starts_with(&prefix))
                    .cloned(),
            );
            return Ok(());
        }
        // Keep only the id of the post this one answers (the expansion repeats its whole JSON).
        if let Some(parent) = post.get("inReplyTo").and_then(|p| p.get("id")).cloned() {
            post["inReplyTo"] = serde_json::json!({ "id": parent });
        }
        if has_attachments {
            let url = format!("{thread_url}/posts/{}/attachments", encode_segment(pid));
            let atts: Vec<Value> = ctx
                .client
                .items(Call::get(url).resource(self.base.to_owned()))
                .try_collect()
                .await?;
            let mut listed = Vec::new();
            for mut a in atts {
                let Some(aid) = a.get("id").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let file = a
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("attachment")
                    .to_owned();
                let bytes = match a
                    .as_object_mut()
                    .and_then(|m| m.remove("contentBytes"))
                    .as_ref()
                    .and_then(Value::as_str)
                    .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
                {
                    Some(Ok(b)) => b,
                    // Item and reference attachments carry no bytes: their JSON is kept.
                    None => {
                        listed.push(a);
                        continue;
                    }
                    Some(Err(e)) => {
                        return Err(RunError::Internal(format!(
                            "attachment {file} of post {pid}: contentBytes is not base64: {e}"
                        )));
                    }
                };
                super::Progress::add(&ctx.progress.bytes_downloaded, bytes.len() as u64);
                ctx.progress.object_item(self.nick, bytes.len() as u64);
                let gid = format!("{pid}/{aid}");
                seen_atts.insert(gid.clone());
                let att_name = item_name(&format!("{:03} {file}", index + 1), &gid);
                let meta = a.clone();
                let modified = super::graph_time(&a, "lastModifiedDateTime");
                let before = ctx
                    .w({
                        let gid = gid.clone();
                        move |w| w.current_version(obj, &gid)
                    })
                    .await?
                    .is_some();
                let outcome = ctx
                    .w(move |w| {
                        let node = w.node(obj, &gid, NodeKind::Attachment)?;
                        let stored = w.put_bytes(&bytes)?;
                        w.put_version(
                            node,
                            &NewVersion {
                                parent: Some(thread),
                                name: att_name,
                                content: Some(stored.content),
                                size: stored.content.size,
                                modified,
                                version_tag: None,
                                metadata: meta,
                                search: None,
                            },
                        )
                    })
                    .await?;
                super::count(ctx, outcome, before);
                listed.push(a);
            }
            post["attachments"] = Value::Array(listed);
        }
        let bytes =
            serde_json::to_vec_pretty(&post).map_err(|e| RunError::Internal(e.to_string()))?;
        ctx.progress.object_item(self.nick, bytes.len() as u64);
        let search = SearchText {
            subject: String::new(),
            sender: author,
            recipients: String::new(),
            body: body_text(&post),
            path: String::new(),
        };
        let v = super::JsonVersion {
            parent: thread,
            name,
            bytes,
            modified: super::graph_time(&post, "receivedDateTime"),
            version_tag: tag,
            search,
        };
        let gid = pid.to_owned();
        let node = ctx
            .w(move |w| w.node(obj, &gid, NodeKind::ChannelMessage))
            .await?;
        super::put_json_version(ctx, node, v, existing.is_some()).await
    }
}
