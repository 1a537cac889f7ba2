//! Teams channel conversations. Graph lets an application post channel messages as their original
//! authors and times only into a channel created in migration mode: each restored channel is a
//! new channel ("{name} (restored)", or the `--to-folder` name) created that way, its
//! conversations imported post by post with their replies, and the channel's migration completed.
//! Without the migration permission, each conversation becomes an HTML transcript in the team's
//! document library, under "Restored conversations/{channel}".

use std::collections::HashMap;

use backhome_graph::{Call, encode_segment};
use backhome_store::NodeKind;
use serde_json::{Value, json};

use super::{Conflict, Item, ItemError, Job, Outcome, RestoreError, Selection, files};
use crate::export::html::conversation_to_html;

/// Properties of a stored post that an import carries.
const IMPORTED: &[&str] = &["createdDateTime", "from", "body", "subject", "importance"];

fn import_body(post: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in IMPORTED {
        if let Some(v) = post.get(*k).filter(|v| !v.is_null()) {
            out.insert((*k).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

/// Where a channel's conversations go.
enum Dest {
    /// A migration-mode channel (its id).
    Channel(String),
    /// The channel exists already and the policy is skip.
    Skip,
    /// Transcripts in the team's library: the folder id.
    Transcripts(String),
}

/// Restores the conversations of one team selection.
pub(super) async fn restore(job: &Job, s: &Selection) -> Result<(), RestoreError> {
    let team = match &job.req.target_user {
        Some(_) => {
            for item in &s.items {
                job.record(
                    &item.path,
                    Err(ItemError::Other(
                        "channel conversations can only be restored into their own team".into(),
                    )),
                )?;
            }
            return Ok(());
        }
        None => s.object.info.graph_id.clone(),
    };
    let base = format!("/teams/{}", encode_segment(&team));
    let mut by_channel: Vec<(String, String, Vec<&Item>)> = Vec::new();
    for item in &s.items {
        let (Some(name), Some(id)) = (item.folders.first(), item.folder_ids.first()) else {
            job.record(
                &item.path,
                Err(ItemError::Other(
                    "a conversation outside any channel".into(),
                )),
            )?;
            continue;
        };
        match by_channel.iter_mut().find(|(cid, _, _)| cid == id) {
            Some((_, _, items)) => items.push(item),
            None => by_channel.push((id.clone(), name.clone(), vec![item])),
        }
    }
    let mut library: Option<files::Target<'_>> = None;
    let mut migrated = false;
    for (_, name, items) in by_channel {
        if job.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        let target = job
            .req
            .target_folder
            .clone()
            .unwrap_or_else(|| format!("{name} (restored)"));
        let dest = match channel(job, &base, &target).await {
            Ok(d) => d,
            Err(reason) => {
                // No migration permission (or no Teams): transcripts in the library.
                tracing::info!(%reason, "channel restore falls back to transcripts");
                if library.is_none() {
                    let drive: Value = job
                        .client
                        .json(Call::get(format!(
                            "/groups/{}/drive?$select=id",
                            encode_segment(&team)
                        )))
                        .await?;
                    let id = drive
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| RestoreError::Invalid("the team has no library".into()))?
                        .to_owned();
                    library = Some(files::open(job, id).await?);
                }
                let Some(lib) = library.as_mut() else {
                    continue;
                };
                let folders = vec![
                    "Restored conversations".to_owned(),
                    files::drive_name(&name),
                ];
                match lib.folder(&folders).await {
                    Ok((id, _)) => Dest::Transcripts(id),
                    Err(e) => {
                        for item in &items {
                            job.record(&item.path, Err(ItemError::Other(e.to_string())))?;
                        }
                        continue;
                    }
                }
            }
        };
        let mut channel_id = None;
        for item in &items {
            if job.cancelled() {
                return Err(RestoreError::Cancelled);
            }
            let result = match (&dest, item.version.kind) {
                (_, k) if k != NodeKind::ChannelMessage => Err(ItemError::Other(format!(
                    "a {} cannot be restored into a channel",
                    k.as_str()
                ))),
                (Dest::Skip, _) => Ok(Outcome::Skipped),
                (Dest::Channel(cid), _) => {
                    channel_id = Some(cid.clone());
                    import(job, &base, cid, item).await
                }
                (Dest::Transcripts(folder), _) => match library.as_mut() {
                    Some(lib) => transcript(job, lib, folder, item).await,
                    None => Err(ItemError::Other("no library".into())),
                },
            };
            job.record(&item.path, result)?;
        }
        if let Dest::Channel(cid) = &dest {
            let cid = channel_id.as_ref().unwrap_or(cid);
            let call = Call::post_json(
                format!("{base}/channels/{}/completeMigration", encode_segment(cid)),
                &json!({}),
            )?
            .resource(base.clone())
            .idempotent(true);
            job.client.send(call).await?;
            migrated = true;
        }
    }
    if migrated {
        let call = Call::post_json(format!("{base}/completeMigration"), &json!({}))?
            .resource(base.clone())
            .idempotent(true);
        if let Err(e) = job.client.send(call).await {
            tracing::info!(error = %e, "the team's migration could not be completed");
        }
    }
    Ok(())
}

/// Creates the migration-mode channel `name` (or finds it, with skip).
async fn channel(job: &Job, base: &str, name: &str) -> Result<Dest, String> {
    let existing: Vec<Value> = futures_util::TryStreamExt::try_collect(
        job.client
            .items(Call::get(format!("{base}/channels")).resource(base.to_owned())),
    )
    .await
    .map_err(|e| e.to_string())?;
    let names: HashMap<String, ()> = existing
        .iter()
        .filter_map(|c| c.get("displayName")?.as_str())
        .map(|n| (n.to_lowercase(), ()))
        .collect();
    let mut name = name.to_owned();
    if names.contains_key(&name.to_lowercase()) {
        if job.req.conflict == Conflict::Skip {
            return Ok(Dest::Skip);
        }
        // A channel is never deleted by a restore: overwrite and keep-both both make a new one.
        let mut n = 2;
        while names.contains_key(&format!("{name} {n}").to_lowercase()) {
            n += 1;
        }
        name = format!("{name} {n}");
    }
    let call = Call::post_json(
        format!("{base}/channels"),
        &json!({
            "@microsoft.graph.channelCreationMode": "migration",
            "displayName": name,
            "description": "Restored from backup",
            "membershipType": "standard",
        }),
    )
    .map_err(|e| e.to_string())?
    .resource(base.to_owned());
    let resp = job.client.send(call).await.map_err(|e| e.to_string())?;
    let from_header = ["content-location", "location"].iter().find_map(|h| {
        let v = resp.headers.get(*h)?.to_str().ok()?;
        let start = v.find("channels('")? + "channels('".len();
        let end = v[start..].find('\'')? + start;
        Some(v[start..end].to_owned())
    });
    let from_body = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
    from_header
        .or(from_body)
        .map(Dest::Channel)
        .ok_or_else(|| "Graph created the channel without saying its id".to_owned())
}

async fn import(job: &Job, base: &str, cid: &str, item: &Item) -> Result<Outcome, ItemError> {
    let raw = job.read_all(&item.version).await?;
    let post: Value = serde_json::from_slice(&raw)
        .map_err(|e| ItemError::Other(format!("the stored conversation is not JSON: {e}")))?;
    let url = format!("{base}/channels/{}/messages", encode_segment(cid));
    let created: Value = job
        .client
        .json(Call::post_json(url.clone(), &import_body(&post))?.resource(base.to_owned()))
        .await?;
    let id = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ItemError::Other("Graph imported a post without an id".into()))?
        .to_owned();
    for r in post
        .get("replies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("deletedDateTime").is_none_or(Value::is_null))
    {
        let call = Call::post_json(
            format!("{url}/{}/replies", encode_segment(&id)),
            &import_body(r),
        )?
        .resource(base.to_owned());
        job.client.json::<Value>(call).await.map_err(|e| {
            ItemError::Other(format!("the post was imported, but a reply failed: {e}"))
        })?;
    }
    Ok(Outcome::Restored)
}

async fn transcript(
    job: &Job,
    lib: &mut files::Target<'_>,
    folder: &str,
    item: &Item,
) -> Result<Outcome, ItemError> {
    let raw = job.read_all(&item.version).await?;
    let post: Value = serde_json::from_slice(&raw)
        .map_err(|e| ItemError::Other(format!("the stored conversation is not JSON: {e}")))?;
    let html = conversation_to_html(&post);
    let name = format!("{}.html", files::drive_name(&item.version.name));
    lib.put_small(folder, &name, bytes::Bytes::from(html)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_keeps_author_time_and_body_only() {
        let post = json!({
            "id": "1", "etag": "x", "createdDateTime": "2026-01-01T10:00:00Z",
            "from": {"user": {"id": "u", "displayName": "Ann"}},
            "body": {"contentType": "html", "content": "<p>hi</p>"},
            "subject": null, "replies": [], "webUrl": "https://x",
        });
        let b = import_body(&post);
        assert_eq!(
            b.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
            vec!["body", "createdDateTime", "from"]
        );
    }
}
