//! Mail: the folder tree under the selection is found or created by display name, then each
//! message is rebuilt from its MIME and metadata as Graph JSON and created in the right folder
//! as a received message (not a draft) with its dates, read state and flag, its attachments
//! added after it; signed and encrypted messages are created from their MIME as they are (see
//! `docs/restore-limits.md`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::NodeKind;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde_json::{Value, json};

use super::mail_json::{Attachment, Plan};
use super::{Conflict, Item, ItemError, Job, Outcome, RestoreError, Selection};

/// Messages of each folder: folder id → `internetMessageId` → message ids.
type Listed = HashMap<String, HashMap<String, Vec<String>>>;

/// Mail folder state of one target mailbox.
struct Target<'a> {
    job: &'a Job,
    base: String,
    /// Children of a folder (`None`: the top of the mailbox) by lower-case display name.
    children: HashMap<Option<String>, HashMap<String, String>>,
    /// Folder path (display names) → folder id.
    folders: HashMap<Vec<String>, String>,
    /// Messages of a folder: `internetMessageId` → message ids.
    messages: Mutex<Listed>,
}

/// Restores the messages and folders of one mailbox selection.
pub(super) async fn restore(job: &Job, s: &Selection) -> Result<(), RestoreError> {
    let t = Target {
        job,
        base: job.account_base(&s.object),
        children: HashMap::new(),
        folders: HashMap::new(),
        messages: Mutex::default(),
    };
    // The messages of each target folder are listed once, for the conflict checks.
    super::tree::restore(job, &s.items, t).await
}

/// Messages created at once in one mailbox (Exchange allows 4 concurrent requests per mailbox
/// and application).
const MESSAGES_AT_ONCE: usize = 4;

fn folder_path(job: &Job, names: &[String]) -> Vec<String> {
    let mut p: Vec<String> = job.req.target_folder.iter().cloned().collect();
    p.extend(names.iter().cloned());
    p
}

impl Target<'_> {
    fn children_url(&self, parent: Option<&str>) -> String {
        match parent {
            None => format!("{}/mailFolders", self.base),
            Some(p) => format!(
                "{}/mailFolders/{}/childFolders",
                self.base,
                encode_segment(p)
            ),
        }
    }

    async fn load_children(&mut self, parent: Option<&str>) -> Result<(), ItemError> {
        let url = format!(
            "{}?includeHiddenFolders=true&$select=id,displayName&$top=100",
            self.children_url(parent)
        );
        let list: Vec<Value> = self
            .job
            .client
            .items(Call::get(url).resource(self.base.clone()))
            .try_collect()
            .await?;
        let map = list
            .into_iter()
            .filter_map(|f| {
                Some((
                    f.get("displayName")?.as_str()?.to_lowercase(),
                    f.get("id")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        self.children.insert(parent.map(str::to_owned), map);
        Ok(())
    }

    async fn child(
        &mut self,
        parent: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, ItemError> {
        let key = parent.map(str::to_owned);
        if !self.children.contains_key(&key) {
            self.load_children(parent).await?;
        }
        Ok(self
            .children
            .get(&key)
            .and_then(|c| c.get(&name.to_lowercase()))
            .cloned())
    }

    /// The id of the folder at `names` (under the target folder, if any), creating what is
    /// missing; `true` when the last one was created.
    async fn folder(&mut self, names: &[String]) -> Result<(String, bool), ItemError> {
        let full = folder_path(self.job, names);
        if full.is_empty() {
            return Err(ItemError::Other("a message outside any folder".into()));
        }
        if let Some(id) = self.folders.get(&full) {
            return Ok((id.clone(), false));
        }
        let mut parent: Option<String> = None;
        let mut created = false;
        for (i, name) in full.iter().enumerate() {
            if let Some(id) = self.folders.get(&full[..=i]) {
                parent = Some(id.clone());
                created = false;
                continue;
            }
            let id = match self.child(parent.as_deref(), name).await? {
                Some(id) => {
                    created = false;
                    id
                }
                None => {
                    let call = Call::post_json(
                        self.children_url(parent.as_deref()),
                        &json!({ "displayName": name }),
                    )?
                    .resource(self.base.clone());
                    match self.job.client.json::<Value>(call).await {
                        Ok(f) => {
                            let id = f
                                .get("id")
                                .and_then(Value::as_str)
                                .ok_or_else(|| {
                                    ItemError::Other("Graph created a folder without an id".into())
                                })?
                                .to_owned();
                            if let Some(c) = self.children.get_mut(&parent) {
                                c.insert(name.to_lowercase(), id.clone());
                            }
                            created = true;
                            id
                        }
                        Err(e) => {
                            // Created by an earlier attempt whose answer was lost, or meanwhile.
                            self.load_children(parent.as_deref()).await?;
                            match self.child(parent.as_deref(), name).await? {
                                Some(id) => id,
                                None => return Err(e.into()),
                            }
                        }
                    }
                }
            };
            self.folders.insert(full[..=i].to_vec(), id.clone());
            parent = Some(id);
        }
        parent
            .map(|p| (p, created))
            .ok_or_else(|| ItemError::Other("no folder".into()))
    }

    /// The folder of a message, created if needed, with its messages listed for the conflict
    /// check.
    async fn prepare(&mut self, names: &[String]) -> Result<String, ItemError> {
        let (folder, _) = self.folder(names).await?;
        let listed = self
            .messages
            .lock()
            .map_err(|_| ItemError::Other("message cache poisoned".into()))?
            .contains_key(&folder);
        // Listed with keep-both too: after a lost answer, a new id tells that the create went
        // through.
        if !listed {
            self.load_messages(&folder).await?;
        }
        Ok(folder)
    }

    async fn load_messages(&self, folder: &str) -> Result<(), ItemError> {
        // A delta round lists every message of the folder with only the fields asked for.
        let url = format!(
            "{}/mailFolders/{}/messages/delta?$select=internetMessageId",
            self.base,
            encode_segment(folder)
        );
        let list: Vec<Value> = self
            .job
            .client
            .items(
                Call::get(url)
                    .resource(self.base.clone())
                    .max_page_size(200),
            )
            .try_collect()
            .await?;
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for m in list {
            if let (Some(imid), Some(id)) = (
                m.get("internetMessageId").and_then(Value::as_str),
                m.get("id").and_then(Value::as_str),
            ) {
                map.entry(imid.to_owned()).or_default().push(id.to_owned());
            }
        }
        self.cache()?.insert(folder.to_owned(), map);
        Ok(())
    }

    fn cache(&self) -> Result<std::sync::MutexGuard<'_, Listed>, ItemError> {
        self.messages
            .lock()
            .map_err(|_| ItemError::Other("message cache poisoned".into()))
    }

    fn existing(&self, folder: &str, imid: &str) -> Result<Vec<String>, ItemError> {
        Ok(self
            .cache()?
            .get(folder)
            .and_then(|m| m.get(imid))
            .cloned()
            .unwrap_or_default())
    }

    async fn message(&self, item: &Item, folder: &str) -> Result<Outcome, ItemError> {
        let meta = &self.job.metadata(&item.version).await?;
        let imid = meta
            .get("internetMessageId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let (Some(imid), false) = (&imid, self.job.req.conflict == Conflict::KeepBoth) {
            let existing = self.existing(folder, imid)?;
            if !existing.is_empty() {
                if self.job.req.conflict == Conflict::Skip {
                    return Ok(Outcome::Skipped);
                }
                for id in existing {
                    let call =
                        Call::delete(format!("{}/messages/{}", self.base, encode_segment(&id)))
                            .resource(self.base.clone());
                    match self.job.client.send(call).await {
                        Ok(_) => {}
                        Err(e) if matches!(e.class(), ErrorClass::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(m) = self.cache()?.get_mut(folder) {
                    m.remove(imid);
                }
            }
        }
        let mime = self.job.read_all(&item.version).await?;
        let plan =
            super::mail_json::rebuild(&mime, meta).map_err(|e| ItemError::Other(e.to_string()))?;
        match plan {
            Plan::Json {
                message,
                attachments,
            } => {
                drop(mime);
                self.create_from_json(folder, imid.as_deref(), message, attachments)
                    .await
            }
            Plan::Mime => {
                self.create_from_mime(folder, imid.as_deref(), &mime, meta)
                    .await
            }
        }
    }

    /// Creates a message in `folder`: after a lost answer, a message with the same
    /// `internetMessageId` that was not there before is taken as the one created.
    async fn create(
        &self,
        folder: &str,
        imid: Option<&str>,
        call: Call,
    ) -> Result<String, ItemError> {
        let id = match self.job.client.json::<Value>(call).await {
            Ok(created) => created
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ItemError::Other("Graph created a message without an id".into()))?,
            Err(e) if matches!(e.class(), ErrorClass::Temporary) && imid.is_some() => {
                // Look before failing, so that a retry never makes a duplicate.
                let imid = imid.unwrap_or_default();
                let known = self.existing(folder, imid)?;
                self.load_messages(folder).await?;
                let found = self.existing(folder, imid)?;
                match found.into_iter().find(|id| !known.contains(id)) {
                    Some(id) => id,
                    None => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if let (Some(imid), Some(m)) = (imid, self.cache()?.get_mut(folder)) {
            m.entry(imid.to_owned()).or_default().push(id.clone());
        }
        Ok(id)
    }

    /// A message rebuilt as JSON: created as received (not a draft) with its read state, flag
    /// and dates, then its larger attachments added. If an attachment cannot be added, the
    /// incomplete message is deleted again, so that a later run restores it whole.
    async fn create_from_json(
        &self,
        folder: &str,
        imid: Option<&str>,
        mut message: Value,
        attachments: Vec<Attachment>,
    ) -> Result<Outcome, ItemError> {
        let (with, after) = super::mail_attach::split(attachments);
        if !with.is_empty() {
            message["attachments"] = Value::Array(with.iter().map(Attachment::json).collect());
        }
        let sent: usize = with.iter().map(|a| a.bytes.len()).sum();
        let call = Call::post_json(
            format!(
                "{}/mailFolders/{}/messages",
                self.base,
                encode_segment(folder)
            ),
            &message,
        )?
        .resource(self.base.clone());
        drop(message);
        let id = self.create(folder, imid, call).await?;
        let uploaded = &self.job.progress.bytes_uploaded;
        uploaded.fetch_add(sent as u64, Ordering::Relaxed);
        for a in &after {
            if let Err(e) =
                super::mail_attach::add(&self.job.client, &self.base, &id, a, uploaded).await
            {
                self.forget(folder, imid, &id).await;
                return Err(ItemError::Other(format!(
                    "the attachment {:?} could not be added, so the message was removed again: {e}",
                    a.name
                )));
            }
        }
        Ok(Outcome::Restored)
    }

    /// Deletes a message this run created (best effort) and forgets it.
    async fn forget(&self, folder: &str, imid: Option<&str>, id: &str) {
        let call = Call::delete(format!("{}/messages/{}", self.base, encode_segment(id)))
            .resource(self.base.clone());
        if self.job.client.send(call).await.is_ok()
            && let (Some(imid), Ok(mut cache)) = (imid, self.cache())
            && let Some(ids) = cache.get_mut(folder).and_then(|m| m.get_mut(imid))
        {
            ids.retain(|i| i != id);
        }
    }

    /// A signed or encrypted message: created from its MIME as it is (Graph makes it a draft),
    /// then given what a `PATCH` can set.
    async fn create_from_mime(
        &self,
        folder: &str,
        imid: Option<&str>,
        mime: &[u8],
        meta: &Value,
    ) -> Result<Outcome, ItemError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(mime);
        self.job
            .progress
            .bytes_uploaded
            .fetch_add(mime.len() as u64, Ordering::Relaxed);
        let call = Call::post_json(
            format!(
                "{}/mailFolders/{}/messages",
                self.base,
                encode_segment(folder)
            ),
            &Value::Null,
        )?
        .resource(self.base.clone())
        .body("text/plain", Bytes::from(encoded))?;
        let id = self.create(folder, imid, call).await?;
        let patch = patch_body(meta);
        let call = Call::patch_json(
            format!("{}/messages/{}", self.base, encode_segment(&id)),
            &patch,
        )?
        .resource(self.base.clone())
        // Setting the same values twice is harmless.
        .idempotent(true);
        self.job.client.json::<Value>(call).await.map_err(|e| {
            ItemError::Other(format!(
                "the message was recreated, but its dates, read state and flag could not be set: {e}"
            ))
        })?;
        Ok(Outcome::Restored)
    }
}

/// The PATCH that gives a message created from MIME (signed or encrypted ones) back what Graph
/// lets us set: read state,
/// flag, categories, importance, and the received and sent times through MAPI properties.
pub(crate) fn patch_body(meta: &Value) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(r) = meta.get("isRead").and_then(Value::as_bool) {
        body.insert("isRead".into(), Value::Bool(r));
    }
    if let Some(flag) = meta.get("flag").and_then(Value::as_object) {
        let clean: serde_json::Map<String, Value> = flag
            .iter()
            .filter(|(k, v)| !k.starts_with('@') && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        body.insert("flag".into(), Value::Object(clean));
    }
    if let Some(c) = meta
        .get("categories")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        body.insert("categories".into(), c.clone());
    }
    if let Some(i) = meta.get("importance").and_then(Value::as_str) {
        body.insert("importance".into(), Value::String(i.to_owned()));
    }
    let mut props = Vec::new();
    if let Some(t) = meta.get("receivedDateTime").and_then(Value::as_str) {
        props.push(json!({"id": "SystemTime 0x0E06", "value": t}));
    }
    if let Some(t) = meta.get("sentDateTime").and_then(Value::as_str) {
        props.push(json!({"id": "SystemTime 0x0039", "value": t}));
    }
    if !props.is_empty() {
        body.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    Value::Object(body)
}

impl super::tree::FolderTree for Target<'_> {
    const FOLDER: NodeKind = NodeKind::MailFolder;
    const LEAF: NodeKind = NodeKind::Message;
    const NAME: &'static str = "mailbox";
    const AT_ONCE: usize = MESSAGES_AT_ONCE;

    async fn folder(&mut self, names: &[String]) -> Result<(String, bool), ItemError> {
        Target::folder(self, names).await
    }

    async fn prepare(&mut self, names: &[String]) -> Result<String, ItemError> {
        Target::prepare(self, names).await
    }

    async fn leaf(&self, item: &Item, folder: &str) -> Result<Outcome, ItemError> {
        self.message(item, folder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_keeps_what_graph_allows() {
        let meta = json!({
            "isRead": false,
            "flag": {"flagStatus": "flagged", "dueDateTime": null},
            "categories": [],
            "importance": "high",
            "receivedDateTime": "2026-01-02T03:04:05Z",
            "sentDateTime": "2026-01-02T03:00:00Z",
            "id": "AAMk",
        });
        let p = patch_body(&meta);
        assert_eq!(p["isRead"], json!(false));
        assert_eq!(p["flag"], json!({"flagStatus": "flagged"}));
        assert!(p.get("categories").is_none());
        assert!(p.get("id").is_none());
        let props = p["singleValueExtendedProperties"].as_array().unwrap();
        assert_eq!(
            props[0],
            json!({"id": "SystemTime 0x0E06", "value": "2026-01-02T03:04:05Z"})
        );
        assert_eq!(props[1]["id"], "SystemTime 0x0039");
    }
}
