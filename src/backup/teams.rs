//! Teams: every channel of a team, and each conversation (a post with its replies) as Graph JSON,
//! incrementally through the channel's message delta.

use std::collections::HashSet;

use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText};
use futures_util::TryStreamExt;
use serde_json::Value;

use super::context::{Ctx, RunError};
use super::delta::{self, is_fatal};
use crate::paths::item_name;

/// Backs up a team's channels and conversations.
///
/// # Errors
/// Run-stopping errors only.
pub async fn team(
    ctx: &Ctx,
    obj: ObjectId,
    nick: &str,
    team_id: &str,
    root: NodeId,
) -> Result<(), RunError> {
    ctx.progress.activity(nick, "channels");
    let base = format!("/teams/{}", encode_segment(team_id));
    let channels: Vec<Value> = match ctx
        .client
        .items(Call::get(format!("{base}/channels")).resource(base.clone()))
        .try_collect()
        .await
    {
        Ok(v) => v,
        Err(e) if is_fatal(&e) => return Err(e.into()),
        Err(e) => {
            ctx.progress.containers_listed(nick, 0);
            ctx.item_error(
                format!("/teams/{nick}"),
                format!("channels could not be listed: {e}"),
            );
            return Ok(());
        }
    };
    ctx.progress.containers_listed(nick, channels.len() as u64);
    let mut seen = HashSet::new();
    for ch in channels {
        let Some(cid) = ch.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let name = ch
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(&cid)
            .to_owned();
        seen.insert(cid.clone());
        let (gid, n2, meta) = (cid.clone(), name.clone(), ch.clone());
        let node = ctx
            .w(move |w| {
                let node = w.node(obj, &gid, NodeKind::Channel)?;
                w.put_version(
                    node,
                    &NewVersion {
                        parent: Some(root),
                        name: n2,
                        metadata: meta,
                        ..NewVersion::default()
                    },
                )?;
                Ok(node)
            })
            .await?;
        let chan = Channel {
            ctx,
            object: obj,
            label: format!("/teams/{nick}/{name}"),
            base: format!("{base}/channels/{}", encode_segment(&cid)),
            resource: base.clone(),
            node,
        };
        chan.run().await?;
        ctx.progress.container_done(nick);
    }
    super::prune_children(ctx, obj, root, NodeKind::Channel, seen).await
}

struct Channel<'a> {
    ctx: &'a Ctx,
    object: ObjectId,
    label: String,
    base: String,
    resource: String,
    node: NodeId,
}

impl Channel<'_> {
    async fn run(&self) -> Result<(), RunError> {
        let scope = format!("channel:{}", self.base);
        let start =
            Call::get(format!("{}/messages/delta", self.base)).resource(self.resource.clone());
        let round = delta::Round {
            ctx: self.ctx,
            object: self.object,
            scope: &scope,
            start,
            label: &self.label,
        };
        round
            .run(
                |items: Vec<Value>| self.messages(items),
                |ids: Vec<String>| self.removed(ids),
                |seen: HashSet<String>| {
                    super::prune_children(
                        self.ctx,
                        self.object,
                        self.node,
                        NodeKind::ChannelMessage,
                        seen,
                    )
                },
            )
            .await
    }

    async fn messages(&self, items: Vec<Value>) -> Result<usize, RunError> {
        let mut failed = 0;
        for m in items {
            // Replies come with their post; a reply listed on its own is folded into the post.
            let Some(id) = m
                .get("replyToId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .or_else(|| m.get("id").and_then(Value::as_str))
                .map(str::to_owned)
            else {
                continue;
            };
            match self.conversation(&id).await {
                Ok(()) => {}
                Err(RunError::Graph(e)) if !is_fatal(&e) => {
                    if !matches!(e.class(), ErrorClass::NotFound) {
                        self.ctx
                            .item_error(format!("{}/{id}", self.label), e.to_string());
                        failed += 1;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(failed)
    }

    async fn conversation(&self, id: &str) -> Result<(), RunError> {
        let ctx = self.ctx;
        let url = format!("{}/messages/{}", self.base, encode_segment(id));
        let mut post: Value = ctx
            .client
            .json(Call::get(url.clone()).resource(self.resource.clone()))
            .await?;
        let replies: Vec<Value> = ctx
            .client
            .items(Call::get(format!("{url}/replies")).resource(self.resource.clone()))
            .try_collect()
            .await?;
        let tag = std::iter::once(&post)
            .chain(replies.iter())
            .map(|m| {
                m.get("lastModifiedDateTime")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("|");
        let tag = Some(blake3::hash(tag.as_bytes()).to_hex().to_string());
        let text = |m: &Value| {
            m.pointer("/body/content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let title = post
            .get("subject")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| text(&post).chars().take(60).collect(), str::to_owned);
        let search = SearchText {
            subject: title.clone(),
            sender: post
                .pointer("/from/user/displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            recipients: String::new(),
            body: std::iter::once(&post)
                .chain(replies.iter())
                .map(text)
                .collect::<Vec<_>>()
                .join("\n"),
            path: String::new(),
        };
        post["replies"] = Value::Array(replies);
        let bytes =
            serde_json::to_vec_pretty(&post).map_err(|e| RunError::Internal(e.to_string()))?;
        let modified = super::graph_time(&post, "lastModifiedDateTime");
        let (obj, gid, parent, name) =
            (self.object, id.to_owned(), self.node, item_name(&title, id));
        let existed = ctx
            .w({
                let gid = gid.clone();
                move |w| w.current_version(obj, &gid)
            })
            .await?;
        if let Some(c) = existed.as_ref().filter(|c| c.version_tag == tag) {
            super::count(
                ctx,
                backhome_store::VersionOutcome::Unchanged(c.version),
                true,
            );
            return Ok(());
        }
        let v = super::JsonVersion {
            parent,
            name,
            bytes,
            modified,
            version_tag: tag,
            search,
        };
        let node = ctx
            .w(move |w| w.node(obj, &gid, NodeKind::ChannelMessage))
            .await?;
        super::put_json_version(ctx, node, v, existed.is_some()).await
    }

    async fn removed(&self, ids: Vec<String>) -> Result<(), RunError> {
        super::delete_graph_ids(self.ctx, self.object, ids).await
    }
}
