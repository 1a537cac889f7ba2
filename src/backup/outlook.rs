//! Calendars (events with attachments and recurrence) and contacts, stored as their Graph JSON.
//!
//! Each container is listed in full every run (Graph's event delta needs a fixed time window,
//! which would miss far-future and old events); only items whose `changeKey` changed are written,
//! and nothing but the listing itself is requested for an unchanged container. A series master
//! that is written is stored with its cancelled and changed occurrences (one more request);
//! Exchange keeps those inside the master, so changing or cancelling one occurrence changes the
//! master's `changeKey` and the next run stores a new version of it.

use std::collections::HashSet;

use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, SearchText};
use futures_util::TryStreamExt;
use serde_json::Value;

use super::context::{Ctx, RunError};
use super::delta::is_fatal;
use crate::paths::item_name;

/// Added to a series master's `changeKey` in its version tag: stored with its occurrences.
const SERIES_TAG: &str = "+occurrences";

/// Graph id under which the default contacts folder is stored.
const DEFAULT_CONTACTS: &str = "contacts:default";

/// A container of JSON items (a calendar, a contact folder, a channel).
pub struct JsonContainer<'a> {
    /// The run.
    pub ctx: &'a Ctx,
    /// The protected object.
    pub object: ObjectId,
    /// Where the container is, for errors.
    pub label: String,
    /// The container's node.
    pub node: NodeId,
    /// Kind of the items.
    pub kind: NodeKind,
    /// Graph path listing the items (paged).
    pub list: String,
    /// Concurrency key (the mailbox).
    pub resource: String,
    /// Graph path prefix for an item's attachments (`{prefix}/{id}/attachments`), if they are fetched.
    pub attachments: Option<String>,
    /// Items whose `parentFolderId` is one of these belong to another container and are skipped.
    pub skip_parents: HashSet<String>,
}

impl JsonContainer<'_> {
    /// Lists the container and stores new and changed items; prunes the ones gone.
    ///
    /// # Errors
    /// Run-stopping errors only.
    pub async fn run(&self) -> Result<(), RunError> {
        let items: Vec<Value> = match self
            .ctx
            .client
            .items(Call::get(self.list.clone()).resource(self.resource.clone()))
            .try_collect()
            .await
        {
            Ok(v) => v,
            Err(e) if is_fatal(&e) => return Err(e.into()),
            Err(e) => {
                if !matches!(e.class(), ErrorClass::MailboxNotEnabled) {
                    self.ctx
                        .item_error(self.label.clone(), format!("could not be listed: {e}"));
                }
                return Ok(());
            }
        };
        let mut seen = HashSet::new();
        for item in items {
            self.ctx.check_cancel()?;
            let Some(id) = item.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let parent = item.get("parentFolderId").and_then(Value::as_str);
            if parent.is_some_and(|p| self.skip_parents.contains(p)) {
                continue;
            }
            seen.insert(id.clone());
            if let Err(e) = self.item(&id, item).await {
                match e {
                    RunError::Graph(g) if !is_fatal(&g) => self
                        .ctx
                        .item_error(format!("{}/{id}", self.label), g.to_string()),
                    other => return Err(other),
                }
            }
        }
        super::prune_children(self.ctx, self.object, self.node, self.kind, seen).await
    }

    async fn item(&self, id: &str, mut item: Value) -> Result<(), RunError> {
        let ctx = self.ctx;
        let obj = self.object;
        let series = self.kind == NodeKind::Event
            && item.get("type").and_then(Value::as_str) == Some("seriesMaster");
        // A master's tag says that its occurrences were read with it, so that a master stored
        // without them (by a version before they were read) is read again once.
        let tag = item.get("changeKey").and_then(Value::as_str).map(|k| {
            if series {
                format!("{k} {SERIES_TAG}")
            } else {
                k.to_owned()
            }
        });
        let gid = id.to_owned();
        let cur = ctx.w(move |w| w.current_version(obj, &gid)).await?;
        let title = ["subject", "displayName"]
            .iter()
            .find_map(|k| item.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned();
        let name = item_name(&title, id);
        let gid = id.to_owned();
        let kind = self.kind;
        let node = ctx.w(move |w| w.node(obj, &gid, kind)).await?;
        if let Some(c) = &cur
            && c.version_tag.is_some()
            && c.version_tag == tag
        {
            let parent = self.node;
            let outcome = ctx
                .w(move |w| w.move_node(node, Some(parent), &name))
                .await?;
            super::count(ctx, outcome, true);
            return Ok(());
        }
        if let Some(prefix) = &self.attachments
            && item.get("hasAttachments").and_then(Value::as_bool) == Some(true)
        {
            let url = format!("{prefix}/{}/attachments", encode_segment(id));
            let atts: Vec<Value> = ctx
                .client
                .items(Call::get(url).resource(self.resource.clone()))
                .try_collect()
                .await?;
            item["attachments"] = Value::Array(atts);
        }
        if series {
            self.series_exceptions(id, &mut item).await?;
        }
        let bytes =
            serde_json::to_vec_pretty(&item).map_err(|e| RunError::Internal(e.to_string()))?;
        ctx.progress.object_item(&self.resource, bytes.len() as u64);
        let search = SearchText {
            subject: title,
            sender: item
                .pointer("/organizer/emailAddress/address")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            recipients: String::new(),
            body: item
                .get("bodyPreview")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            path: String::new(),
        };
        let v = super::JsonVersion {
            parent: self.node,
            name,
            bytes,
            modified: super::graph_time(&item, "lastModifiedDateTime"),
            version_tag: tag,
            search,
        };
        super::put_json_version(ctx, node, v, cur.is_some()).await
    }
}

impl JsonContainer<'_> {
    /// Adds a series master's cancelled occurrences (`cancelledOccurrences`, which Graph returns
    /// only when selected on a GET of the master by id) and changed occurrences
    /// (`exceptionOccurrences`, a navigation property, expanded in the same request) to its
    /// listed JSON. Graph applies `$select` to the master's own properties and `$expand` adds
    /// the navigation property beside them, so one request gives both.
    async fn series_exceptions(&self, id: &str, item: &mut Value) -> Result<(), RunError> {
        let url = format!(
            "{}/events/{}?$select=cancelledOccurrences&$expand=exceptionOccurrences",
            self.resource,
            encode_segment(id)
        );
        let got: Value = self
            .ctx
            .client
            .json(Call::get(url).resource(self.resource.clone()))
            .await?;
        let list = |key: &str| {
            got.get(key)
                .and_then(Value::as_array)
                .cloned()
                .map_or(Value::Array(Vec::new()), Value::Array)
        };
        item["cancelledOccurrences"] = list("cancelledOccurrences");
        item["exceptionOccurrences"] = list("exceptionOccurrences");
        Ok(())
    }
}

/// Lists sub-containers (calendars, contact folders) and stores them as nodes under `root`.
#[allow(clippy::too_many_arguments)]
async fn containers(
    ctx: &Ctx,
    obj: ObjectId,
    label: &str,
    url: String,
    resource: &str,
    root: NodeId,
    kind: NodeKind,
    keep: &[&str],
) -> Result<Option<Vec<(String, NodeId, String)>>, RunError> {
    let list: Vec<Value> = match ctx
        .client
        .items(Call::get(url).resource(resource.to_owned()))
        .try_collect()
        .await
    {
        Ok(v) => v,
        Err(e) if is_fatal(&e) => return Err(e.into()),
        Err(e) => {
            if !matches!(e.class(), ErrorClass::MailboxNotEnabled) {
                ctx.item_error(label.to_owned(), format!("could not be listed: {e}"));
            }
            return Ok(None);
        }
    };
    let mut out = Vec::new();
    let mut seen: HashSet<String> = keep.iter().map(|k| (*k).to_owned()).collect();
    for c in list {
        let Some(id) = c.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let name = ["name", "displayName"]
            .iter()
            .find_map(|k| c.get(*k).and_then(Value::as_str))
            .unwrap_or(&id)
            .to_owned();
        seen.insert(id.clone());
        let (gid, n2, meta) = (id.clone(), name.clone(), c.clone());
        let node = ctx
            .w(move |w| {
                let node = w.node(obj, &gid, kind)?;
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
        out.push((id, node, name));
    }
    super::prune_children(ctx, obj, root, kind, seen).await?;
    Ok(Some(out))
}

/// A user's calendars and their events.
///
/// # Errors
/// Run-stopping errors only.
pub async fn calendars(
    ctx: &Ctx,
    obj: ObjectId,
    upn: &str,
    base: &str,
    root: NodeId,
) -> Result<(), RunError> {
    ctx.progress.activity(upn, "calendar");
    let label = format!("/users/{upn}/calendar");
    let Some(cals) = containers(
        ctx,
        obj,
        &label,
        format!("{base}/calendars?$top=100"),
        base,
        root,
        NodeKind::Calendar,
        &[],
    )
    .await?
    else {
        ctx.progress.containers_listed(upn, 0);
        return Ok(());
    };
    ctx.progress.containers_listed(upn, cals.len() as u64);
    for (id, node, name) in cals {
        JsonContainer {
            ctx,
            object: obj,
            label: format!("{label}/{name}"),
            node,
            kind: NodeKind::Event,
            list: format!("{base}/calendars/{}/events?$top=100", encode_segment(&id)),
            resource: base.to_owned(),
            attachments: Some(format!("{base}/events")),
            skip_parents: HashSet::new(),
        }
        .run()
        .await?;
        ctx.progress.container_done(upn);
    }
    Ok(())
}

/// A group's calendar.
///
/// # Errors
/// Run-stopping errors only.
pub async fn group_calendar(
    ctx: &Ctx,
    obj: ObjectId,
    nick: &str,
    base: &str,
    root: NodeId,
) -> Result<(), RunError> {
    ctx.progress.activity(nick, "calendar");
    ctx.progress.containers_listed(nick, 1);
    JsonContainer {
        ctx,
        object: obj,
        label: format!("/groups/{nick}/calendar"),
        node: root,
        kind: NodeKind::Event,
        list: format!("{base}/events?$top=100"),
        resource: base.to_owned(),
        attachments: Some(format!("{base}/events")),
        skip_parents: HashSet::new(),
    }
    .run()
    .await?;
    ctx.progress.container_done(nick);
    Ok(())
}

/// A user's contact folders and their contacts.
///
/// `/contacts` lists the default folder. Graph's contactFolders lists the folders below it, but
/// some tenants list the default folder there too: contacts of a listed folder are kept there.
///
/// # Errors
/// Run-stopping errors only.
pub async fn contacts(
    ctx: &Ctx,
    obj: ObjectId,
    upn: &str,
    base: &str,
    root: NodeId,
) -> Result<(), RunError> {
    ctx.progress.activity(upn, "contacts");
    let label = format!("/users/{upn}/contacts");
    let url = format!("{base}/contactFolders?$top=100");
    let Some(folders) = containers(
        ctx,
        obj,
        &label,
        url,
        base,
        root,
        NodeKind::ContactFolder,
        &[DEFAULT_CONTACTS],
    )
    .await?
    else {
        ctx.progress.containers_listed(upn, 0);
        return Ok(());
    };
    let listed: HashSet<String> = folders.iter().map(|(id, _, _)| id.clone()).collect();
    let taken = folders
        .iter()
        .any(|(_, _, n)| n.eq_ignore_ascii_case("Contacts"));
    let default_name = if taken {
        "Contacts (default)"
    } else {
        "Contacts"
    };
    let dname = default_name.to_owned();
    let node = ctx
        .w(move |w| {
            let node = w.node(obj, DEFAULT_CONTACTS, NodeKind::ContactFolder)?;
            w.put_version(
                node,
                &NewVersion {
                    parent: Some(root),
                    name: dname,
                    ..NewVersion::default()
                },
            )?;
            Ok(node)
        })
        .await?;
    let mut lists = vec![(
        format!("{base}/contacts?$top=100"),
        node,
        default_name.to_owned(),
        listed,
    )];
    for (id, node, name) in folders {
        let list = format!(
            "{base}/contactFolders/{}/contacts?$top=100",
            encode_segment(&id)
        );
        lists.push((list, node, name, HashSet::new()));
    }
    ctx.progress.containers_listed(upn, lists.len() as u64);
    for (list, node, name, skip_parents) in lists {
        JsonContainer {
            ctx,
            object: obj,
            label: format!("{label}/{name}"),
            node,
            kind: NodeKind::Contact,
            list,
            resource: base.to_owned(),
            attachments: None,
            skip_parents,
        }
        .run()
        .await?;
        ctx.progress.container_done(upn);
    }
    Ok(())
}
