//! Uploads to drives: a single PUT for small files, upload sessions (resumable) for large ones.

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::call::{Call, encode_segment};
use crate::client::{BodyFail, Client, parse_json};
use crate::config::SIMPLE_UPLOAD_MAX;
use crate::error::{Error, ErrorClass};
use crate::models::{DriveItem, FileSystemInfo};

/// What to do when the name exists (`@microsoft.graph.conflictBehavior`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictBehavior {
    /// Fail with 409.
    Fail,
    /// Replace the existing file.
    #[default]
    Replace,
    /// Pick a new name.
    Rename,
}

impl ConflictBehavior {
    fn as_str(self) -> &'static str {
        match self {
            ConflictBehavior::Fail => "fail",
            ConflictBehavior::Replace => "replace",
            ConflictBehavior::Rename => "rename",
        }
    }
}

/// Options of an upload.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Name conflict handling.
    pub conflict: ConflictBehavior,
    /// Creation time to keep (`fileSystemInfo`).
    pub created: Option<OffsetDateTime>,
    /// Modification time to keep (`fileSystemInfo`).
    pub modified: Option<OffsetDateTime>,
    /// Counted against this resource key (the drive id, by default).
    pub resource: Option<String>,
}

/// Bytes to upload, readable at any offset (so an upload can resume).
pub trait UploadSource: Send + Sync {
    /// Total length.
    fn len(&self) -> u64;

    /// Whether empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `len` bytes at `offset`.
    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = std::io::Result<Bytes>> + Send;
}

impl UploadSource for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }

    async fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let start = usize::try_from(offset)
            .map_err(std::io::Error::other)?
            .min(Bytes::len(self));
        let end = start.saturating_add(len).min(Bytes::len(self));
        Ok(self.slice(start..end))
    }
}

/// A local file as an upload source.
#[derive(Clone, Debug)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
}

impl FileSource {
    /// Opens (stats) a file.
    pub async fn open(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let len = tokio::fs::metadata(&path).await?.len();
        Ok(Self { path, len })
    }
}

impl UploadSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut buf).await?;
        Ok(Bytes::from(buf))
    }
}

/// An upload session's state (`uploadUrl`, `nextExpectedRanges`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SessionState {
    upload_url: Option<String>,
    next_expected_ranges: Vec<String>,
}

/// Parses `"a-b"` / `"a-"` into `[a, b]` (inclusive), `b` defaulting to `len - 1`.
fn parse_range(text: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = text.trim().split_once('-')?;
    let start = a.trim().parse::<u64>().ok()?;
    let end = if b.trim().is_empty() {
        len.checked_sub(1)?
    } else {
        b.trim().parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

#[derive(Serialize)]
struct Uploadable<'a> {
    #[serde(rename = "@microsoft.graph.conflictBehavior")]
    conflict: &'a str,
    name: &'a str,
    #[serde(rename = "fileSystemInfo", skip_serializing_if = "Option::is_none")]
    file_system_info: Option<FileSystemInfo>,
}

impl UploadOptions {
    fn file_system_info(&self) -> Option<FileSystemInfo> {
        (self.created.is_some() || self.modified.is_some()).then_some(FileSystemInfo {
            created_date_time: self.created,
            last_modified_date_time: self.modified,
        })
    }
}

impl Client {
    /// Uploads `source` as `name` into folder `parent_id` of drive `drive_id`: one PUT up to
    /// [`SIMPLE_UPLOAD_MAX`], an upload session above.
    pub async fn upload<S: UploadSource>(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        source: &S,
        options: &UploadOptions,
    ) -> Result<DriveItem, Error> {
        if source.len() <= SIMPLE_UPLOAD_MAX {
            let bytes = source
                .read_at(0, usize::try_from(source.len()).unwrap_or(usize::MAX))
                .await?;
            self.upload_small(drive_id, parent_id, name, bytes, options)
                .await
        } else {
            self.upload_large(drive_id, parent_id, name, source, options)
                .await
        }
    }

    /// Uploads with a single `PUT …:/{name}:/content`, then sets `fileSystemInfo` if asked.
    pub async fn upload_small(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        bytes: Bytes,
        options: &UploadOptions,
    ) -> Result<DriveItem, Error> {
        let path = format!(
            "/drives/{}/items/{}:/{}:/content?@microsoft.graph.conflictBehavior={}",
            encode_segment(drive_id),
            encode_segment(parent_id),
            encode_segment(name),
            options.conflict.as_str()
        );
        let resource = options
            .resource
            .clone()
            .unwrap_or_else(|| drive_id.to_owned());
        let call = Call::new(Method::PUT, path)
            .resource(resource.clone())
            .body("application/octet-stream", bytes)?;
        let item: DriveItem = self.json(call).await?;
        match options.file_system_info() {
            None => Ok(item),
            Some(info) => {
                let call = Call::patch_json(
                    format!(
                        "/drives/{}/items/{}",
                        encode_segment(drive_id),
                        encode_segment(&item.id)
                    ),
                    &json!({ "fileSystemInfo": info }),
                )?
                .resource(resource);
                self.json(call).await
            }
        }
    }

    /// Uploads through an upload session in fragments of the configured chunk size (a multiple
    /// of 320 KiB), without the bearer token on the fragment PUTs. After a failed fragment it asks
    /// the session for `nextExpectedRanges` and continues from there.
    pub async fn upload_large<S: UploadSource>(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        source: &S,
        options: &UploadOptions,
    ) -> Result<DriveItem, Error> {
        let resource = options
            .resource
            .clone()
            .unwrap_or_else(|| drive_id.to_owned());
        let path = format!(
            "/drives/{}/items/{}:/{}:/createUploadSession",
            encode_segment(drive_id),
            encode_segment(parent_id),
            encode_segment(name)
        );
        let item = Uploadable {
            conflict: options.conflict.as_str(),
            name,
            file_system_info: options.file_system_info(),
        };
        let call = Call::post_json(path, &json!({ "item": item }))?
            .resource(resource.clone())
            // A second session is harmless (an unused one expires).
            .idempotent(true);
        let session: SessionState = self.json(call).await?;
        let upload_url = session.upload_url.ok_or_else(|| Error::Malformed {
            what: "createUploadSession".into(),
            detail: "no uploadUrl".into(),
        })?;
        self.upload_to_session(&upload_url, source, &resource).await
    }

    /// Sends `source` to an existing upload session.
    pub async fn upload_to_session<S: UploadSource>(
        &self,
        upload_url: &str,
        source: &S,
        resource: &str,
    ) -> Result<DriveItem, Error> {
        let len = source.len();
        let chunk = self.inner.upload_chunk_size as u64;
        let mut ranges: Vec<(u64, u64)> = if len == 0 {
            Vec::new()
        } else {
            vec![(0, len - 1)]
        };
        let mut failures = 0u32;
        loop {
            let Some(&(start, end)) = ranges.first() else {
                // Nothing missing, but no item yet: ask the session what it wants.
                ranges = self.session_ranges(upload_url, len, resource).await?;
                if ranges.is_empty() {
                    return Err(Error::Malformed {
                        what: "upload session".into(),
                        detail: "the session expects no more bytes but did not return the item"
                            .into(),
                    });
                }
                continue;
            };
            let stop = end.min(start + chunk - 1);
            let bytes = source
                .read_at(
                    start,
                    usize::try_from(stop - start + 1).unwrap_or(usize::MAX),
                )
                .await?;
            if bytes.len() as u64 != stop - start + 1 {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the upload source is shorter than announced",
                )));
            }
            let call = Call::pre_authenticated(Method::PUT, upload_url)
                .resource(resource)
                .header("Content-Range", &format!("bytes {start}-{stop}/{len}"))?
                .body("application/octet-stream", bytes)?;
            let outcome = self
                .run(&call, &[], |status, _, body| {
                    if status == 202 {
                        let state: SessionState = parse_json(&body)?;
                        Ok(Err(state.next_expected_ranges))
                    } else {
                        let item: DriveItem = parse_json(&body)?;
                        if item.id.is_empty() {
                            return Err(BodyFail::Retry(
                                "the final fragment's answer has no item id".into(),
                            ));
                        }
                        Ok(Ok(item))
                    }
                })
                .await;
            match outcome {
                Ok(Ok(item)) => return Ok(item),
                Ok(Err(next)) => {
                    ranges = next.iter().filter_map(|r| parse_range(r, len)).collect();
                    if ranges.is_empty() && stop + 1 < len {
                        ranges = vec![(stop + 1, len - 1)];
                    }
                }
                Err(e) => {
                    let lost = matches!(e.class(), ErrorClass::NotFound)
                        || e.graph()
                            .is_some_and(|g| g.has_code("uploadSessionNotFound"));
                    if lost {
                        return Err(Error::UploadSessionLost);
                    }
                    let conflict = e.graph().is_some_and(|g| {
                        g.status == 416
                            || g.has_code("invalidRange")
                            || g.has_code("fragmentOverlap")
                            || g.has_code("fragmentOutOfOrder")
                    });
                    failures += 1;
                    if failures > self.inner.retry.max_attempts
                        || !(conflict
                            || matches!(
                                e.class(),
                                ErrorClass::Temporary | ErrorClass::Throttled { .. }
                            ))
                    {
                        return Err(e);
                    }
                    tracing::debug!(
                        "upload fragment failed ({e}); asking the session where to continue"
                    );
                    ranges = self.session_ranges(upload_url, len, resource).await?;
                }
            }
        }
    }

    async fn session_ranges(
        &self,
        upload_url: &str,
        len: u64,
        resource: &str,
    ) -> Result<Vec<(u64, u64)>, Error> {
        let call = Call::pre_authenticated(Method::GET, upload_url).resource(resource);
        let state: SessionState = match self.json(call).await {
            Ok(s) => s,
            Err(e) if matches!(e.class(), ErrorClass::NotFound) => {
                return Err(Error::UploadSessionLost);
            }
            Err(e) => return Err(e),
        };
        Ok(state
            .next_expected_ranges
            .iter()
            .filter_map(|r| parse_range(r, len))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-", 100), Some((0, 99)));
        assert_eq!(parse_range("26-", 128), Some((26, 127)));
        assert_eq!(parse_range("12345-55232", 100_000), Some((12345, 55232)));
        assert_eq!(parse_range("10-5", 100), None);
        assert_eq!(parse_range("x-", 100), None);
        assert_eq!(parse_range("0-", 0), None);
    }

    #[tokio::test]
    async fn bytes_source_reads_at_offsets() {
        let b = Bytes::from_static(b"hello world");
        assert_eq!(&b.read_at(6, 100).await.unwrap()[..], b"world");
        assert_eq!(b.read_at(50, 3).await.unwrap().len(), 0);
    }
}
