//! Files of OneDrive, group and site libraries: back to their drive path (or the target user's
//! OneDrive, or a "Restored …" folder), folders created as needed, content streamed from the
//! repository (simple upload up to 4 MiB, a resumable upload session above), modified time kept.

use std::collections::HashMap;
use std::sync::Mutex;

use backhome_graph::models::DriveItem;
use backhome_graph::{Call, ConflictBehavior, ErrorClass, UploadOptions, encode_segment};
use backhome_store::{NodeKind, ObjectKind};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Conflict, Item, ItemError, Job, Outcome, RepoSource, RestoreError, Selection};

/// Children of each folder id: lower-case name → (id, is folder).
type Children = HashMap<String, HashMap<String, (String, bool)>>;

/// Files uploaded at once per drive.
const FILES_AT_ONCE: usize = 4;

pub(super) struct Target<'a> {
    job: &'a Job,
    drive: String,
    root: String,
    /// Children of a folder id: lower-case name → (id, is folder).
    children: Mutex<Children>,
    /// Folder path → id.
    folders: HashMap<Vec<String>, String>,
}

/// Restores one drive selection.
pub(super) async fn restore(job: &Job, s: &Selection) -> Result<(), RestoreError> {
    let drive = match drive_of(job, s).await {
        Ok(d) => d,
        Err(e) => {
            let reason = format!("the target drive could not be found: {e}");
            for item in &s.items {
                job.record(&item.path, Err(ItemError::Other(reason.clone())))?;
            }
            return Ok(());
        }
    };
    let t = open(job, drive).await?;
    // Each file's folder is listed once, for the conflict checks.
    super::tree::restore(job, &s.items, t).await
}

/// A drive as a restore target: its root looked up, no folder known yet.
pub(super) async fn open(job: &Job, drive: String) -> Result<Target<'_>, RestoreError> {
    let root: Value = job
        .client
        .json(
            Call::get(format!(
                "/drives/{}/root?$select=id",
                encode_segment(&drive)
            ))
            .resource(drive.clone()),
        )
        .await?;
    let root = root
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| RestoreError::Invalid("the drive's root has no id".into()))?
        .to_owned();
    Ok(Target {
        job,
        drive,
        root,
        children: Mutex::default(),
        folders: HashMap::new(),
    })
}

async fn drive_of(job: &Job, s: &Selection) -> Result<String, ItemError> {
    let url = if let Some(upn) = &job.req.target_user {
        format!("/users/{}/drive?$select=id", encode_segment(upn))
    } else if let Some(id) = s.root_gid.strip_prefix("root:lib:") {
        return Ok(id.to_owned());
    } else {
        let gid = encode_segment(&s.object.info.graph_id);
        match s.object.info.kind {
            ObjectKind::Group | ObjectKind::Team => format!("/groups/{gid}/drive?$select=id"),
            _ => format!("/users/{gid}/drive?$select=id"),
        }
    };
    let d: Value = job.client.json(Call::get(url)).await?;
    d.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ItemError::Other("the drive has no id".into()))
}

/// A name with the characters OneDrive and SharePoint never accept (`" * : < > ? / \\ |`)
/// replaced by `_`; any other name is kept as it is.
pub(crate) fn forbidden_replaced(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '*' | ':' | '<' | '>' | '?' | '/' | '\\' | '|' => '_',
            c => c,
        })
        .collect()
}

/// A folder name OneDrive and SharePoint accept: `:` (as in "Restored 2026-11-24 14:30")
/// becomes `.`, the other forbidden characters `_`.
pub(crate) fn drive_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            ':' => '.',
            '"' | '*' | '<' | '>' | '?' | '/' | '\\' | '|' => '_',
            c => c,
        })
        .collect();
    cleaned.trim().trim_end_matches('.').to_owned()
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

impl Target<'_> {
    fn kids(&self) -> Result<std::sync::MutexGuard<'_, Children>, ItemError> {
        self.children
            .lock()
            .map_err(|_| ItemError::Other("folder cache poisoned".into()))
    }

    async fn load_children(&self, parent: &str) -> Result<(), ItemError> {
        let url = format!(
            "/drives/{}/items/{}/children?$select=id,name,folder&$top=999",
            encode_segment(&self.drive),
            encode_segment(parent)
        );
        let list: Vec<Value> = self
            .job
            .client
            .items(Call::get(url).resource(self.drive.clone()))
            .try_collect()
            .await?;
        let map = list
            .into_iter()
            .filter_map(|c| {
                Some((
                    c.get("name")?.as_str()?.to_lowercase(),
                    (c.get("id")?.as_str()?.to_owned(), c.get("folder").is_some()),
                ))
            })
            .collect();
        self.kids()?.insert(parent.to_owned(), map);
        Ok(())
    }

    async fn child(&self, parent: &str, name: &str) -> Result<Option<(String, bool)>, ItemError> {
        let listed = self.kids()?.contains_key(parent);
        if !listed {
            self.load_children(parent).await?;
        }
        Ok(self
            .kids()?
            .get(parent)
            .and_then(|c| c.get(&name.to_lowercase()))
            .cloned())
    }

    /// The id of the folder at `names` (under the target folder), creating what is missing;
    /// `true` when the last one was created.
    pub(super) async fn folder(&mut self, names: &[String]) -> Result<(String, bool), ItemError> {
        let mut full: Vec<String> = self
            .job
            .req
            .target_folder
            .iter()
            .map(|f| drive_name(f))
            .collect();
        full.extend(names.iter().map(|n| forbidden_replaced(n)));
        let mut parent = self.root.clone();
        let mut created = false;
        for (i, name) in full.iter().enumerate() {
            if let Some(id) = self.folders.get(&full[..=i]) {
                parent = id.clone();
                created = false;
                continue;
            }
            let id = match self.child(&parent, name).await? {
                Some((id, true)) => {
                    created = false;
                    id
                }
                Some((_, false)) => {
                    return Err(ItemError::Other(format!(
                        "a file named {name:?} is where a folder should be restored"
                    )));
                }
                None => {
                    let call = Call::post_json(
                        format!(
                            "/drives/{}/items/{}/children",
                            encode_segment(&self.drive),
                            encode_segment(&parent)
                        ),
                        &json!({"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}),
                    )?
                    .resource(self.drive.clone());
                    match self.job.client.json::<DriveItem>(call).await {
                        Ok(f) => {
                            if let Some(c) = self.kids()?.get_mut(&parent) {
                                c.insert(name.to_lowercase(), (f.id.clone(), true));
                            }
                            created = true;
                            f.id
                        }
                        Err(e) => {
                            // 409: created meanwhile (or by a lost earlier answer).
                            self.load_children(&parent).await?;
                            match self.child(&parent, name).await? {
                                Some((id, true)) => {
                                    created = false;
                                    id
                                }
                                _ => return Err(e.into()),
                            }
                        }
                    }
                }
            };
            self.folders.insert(full[..=i].to_vec(), id.clone());
            parent = id;
        }
        Ok((parent, created))
    }

    /// The folder of a file, created if needed, its children listed.
    async fn prepare(&mut self, names: &[String]) -> Result<String, ItemError> {
        let (parent, _) = self.folder(names).await?;
        self.child(&parent, "").await?;
        Ok(parent)
    }

    /// Uploads a small generated file (a transcript) into folder `parent`, by the job's policy.
    pub(super) async fn put_small(
        &self,
        parent: &str,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<Outcome, ItemError> {
        let conflict = match self.job.req.conflict {
            Conflict::Skip => {
                if self.child(parent, name).await?.is_some() {
                    return Ok(Outcome::Skipped);
                }
                ConflictBehavior::Fail
            }
            Conflict::Overwrite => ConflictBehavior::Replace,
            Conflict::KeepBoth => ConflictBehavior::Rename,
        };
        let options = UploadOptions {
            conflict,
            resource: Some(self.drive.clone()),
            ..UploadOptions::default()
        };
        let done = self
            .job
            .client
            .upload_small(&self.drive, parent, name, bytes, &options)
            .await?;
        if let Some(c) = self.kids()?.get_mut(parent) {
            c.insert(name.to_lowercase(), (done.id, false));
        }
        Ok(Outcome::Restored)
    }

    async fn file(&self, item: &Item, parent: &str) -> Result<Outcome, ItemError> {
        let v = &item.version;
        let content = v
            .content
            .ok_or_else(|| ItemError::Other("the backup holds no content for it".into()))?;
        let metadata = self.job.metadata(v).await?;
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&v.name);
        let name = forbidden_replaced(name);
        let conflict = match self.job.req.conflict {
            Conflict::Skip => {
                if self.child(parent, &name).await?.is_some() {
                    return Ok(Outcome::Skipped);
                }
                ConflictBehavior::Fail
            }
            Conflict::Overwrite => ConflictBehavior::Replace,
            Conflict::KeepBoth => ConflictBehavior::Rename,
        };
        let fs = &metadata["fileSystemInfo"];
        let options = UploadOptions {
            conflict,
            created: parse_time(&fs["createdDateTime"]),
            modified: parse_time(&fs["lastModifiedDateTime"]).or(v.modified),
            resource: Some(self.drive.clone()),
        };
        let source = RepoSource::new(self.job.repo.clone(), content.id, content.size);
        match self
            .job
            .client
            .upload(&self.drive, parent, &name, &source, &options)
            .await
        {
            Ok(done) => {
                self.job
                    .progress
                    .bytes_uploaded
                    .fetch_add(content.size, std::sync::atomic::Ordering::Relaxed);
                if let Some(c) = self.kids()?.get_mut(parent) {
                    let key = done.name.as_deref().unwrap_or(&name).to_lowercase();
                    c.insert(key, (done.id, false));
                }
                Ok(Outcome::Restored)
            }
            Err(e)
                if conflict == ConflictBehavior::Fail
                    && e.graph().is_some_and(|g| g.status == 409) =>
            {
                Ok(Outcome::Skipped)
            }
            Err(e) if matches!(e.class(), ErrorClass::NotFound) => Err(ItemError::Other(format!(
                "the target folder disappeared during the restore: {e}"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

impl super::tree::FolderTree for Target<'_> {
    const FOLDER: NodeKind = NodeKind::DriveFolder;
    const LEAF: NodeKind = NodeKind::File;
    const NAME: &'static str = "drive";
    const AT_ONCE: usize = FILES_AT_ONCE;

    async fn folder(&mut self, names: &[String]) -> Result<(String, bool), ItemError> {
        Target::folder(self, names).await
    }

    async fn prepare(&mut self, names: &[String]) -> Result<String, ItemError> {
        Target::prepare(self, names).await
    }

    async fn leaf(&self, item: &Item, parent: &str) -> Result<Outcome, ItemError> {
        self.file(item, parent).await
    }
}

#[cfg(test)]
mod tests {
    use super::drive_name;

    #[test]
    fn restored_folder_names_are_valid_in_onedrive() {
        assert_eq!(
            drive_name("Restored 2026-11-24 14:30"),
            "Restored 2026-11-24 14.30"
        );
        assert_eq!(drive_name("a<b>|c?"), "a_b__c_");
        assert_eq!(drive_name(" x. "), "x");
        assert_eq!(
            super::forbidden_replaced("it's \"quoted\".txt"),
            "it's _quoted_.txt"
        );
        assert_eq!(
            super::forbidden_replaced("dots..and..more."),
            "dots..and..more."
        );
    }
}
