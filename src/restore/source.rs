//! A stored content as an upload source: read forward from the repository, one fragment at a
//! time, reopened and skipped forward only when an upload resumes at an earlier offset.

use std::io::Read;
use std::sync::Arc;

use backhome_graph::UploadSource;
use backhome_store::{ContentId, ContentReader, Repository};
use bytes::Bytes;
use tokio::sync::Mutex;

/// A repository content readable at any offset with bounded memory (one fragment).
pub struct RepoSource {
    repo: Repository,
    content: ContentId,
    len: u64,
    reader: Arc<Mutex<Option<(u64, ContentReader)>>>,
}

impl RepoSource {
    /// A source over `content` of `len` bytes.
    pub fn new(repo: Repository, content: ContentId, len: u64) -> Self {
        Self {
            repo,
            content,
            len,
            reader: Arc::default(),
        }
    }
}

impl UploadSource for RepoSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut slot = self.reader.lock().await;
        let current = slot.take();
        let (repo, content) = (self.repo.clone(), self.content);
        let (state, bytes) = tokio::task::spawn_blocking(move || {
            let (mut pos, mut reader) = match current {
                Some((pos, r)) if pos <= offset => (pos, r),
                _ => (
                    0,
                    repo.read_content(content)
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                ),
            };
            if pos < offset {
                let skipped =
                    std::io::copy(&mut (&mut reader).take(offset - pos), &mut std::io::sink())?;
                pos += skipped;
            }
            let mut buf = Vec::with_capacity(len);
            (&mut reader).take(len as u64).read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            Ok::<_, std::io::Error>(((pos, reader), Bytes::from(buf)))
        })
        .await
        .map_err(std::io::Error::other)??;
        *slot = Some(state);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhome_store::CreateOptions;

    #[tokio::test]
    async fn reads_at_any_offset_forward_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = repo.begin_run().unwrap();
        let stored = w.put_bytes(&data).unwrap();
        w.commit(&serde_json::json!({})).unwrap();
        let src = RepoSource::new(repo, stored.content.id, stored.content.size);
        assert_eq!(src.len(), data.len() as u64);
        // Forward, as an upload goes; then back, as a resumed upload does; then past the end.
        for (off, len) in [
            (0u64, 1000usize),
            (1000, 700_000),
            (2_500_000, 10),
            (5, 17),
            (2_999_990, 100),
        ] {
            let got = src.read_at(off, len).await.unwrap();
            let start = off as usize;
            let end = (start + len).min(data.len());
            assert_eq!(&got[..], &data[start..end], "at {off}");
        }
    }
}
