//! Streaming downloads: `/content` (302 to a pre-authenticated URL, fetched without the bearer
//! token) and `$value` (MIME), with `Range` resume after a broken connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::{CONTENT_RANGE, HeaderName, HeaderValue, LOCATION, RANGE};
use url::Url;

use crate::call::Call;
use crate::client::{Client, Opened};
use crate::error::Error;
use crate::limits::Permits;
use crate::stats::Stats;

/// Where the bytes come from.
#[derive(Clone, Debug)]
enum Source {
    /// A pre-authenticated URL (no bearer token); `origin` re-resolves it when it expires.
    PreAuthenticated { url: String, origin: Call },
    /// Graph itself (e.g. `$value`); content may be generated per read.
    Graph(Call),
}

/// A download in progress: a stream of byte chunks that resumes by itself after a broken
/// connection. Yields an error only when resuming failed.
pub struct Download {
    /// `Content-Length` of the whole content, when known.
    pub size: Option<u64>,
    /// `Content-Type`, when given.
    pub content_type: Option<String>,
    inner: BoxStream<'static, Result<Bytes, Error>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Stream for Download {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Download {
    /// Reads the whole download into memory (for small items).
    pub async fn into_bytes(mut self) -> Result<Vec<u8>, Error> {
        let mut out =
            Vec::with_capacity(usize::try_from(self.size.unwrap_or(0).min(64 << 20)).unwrap_or(0));
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

struct State {
    client: Client,
    source: Source,
    body: Option<(BoxStream<'static, reqwest::Result<Bytes>>, Permits)>,
    /// Bytes handed to the consumer.
    received: u64,
    /// Bytes of a full (200) re-send still to skip after a resume.
    skip: u64,
    total: Option<u64>,
    resumes: u32,
    done: bool,
}

const MAX_RESUMES: u32 = 8;

impl Client {
    /// Downloads content: `call` is a Graph GET such as `/drives/{d}/items/{i}/content` (answered
    /// with a 302 to a pre-authenticated URL, which is fetched without the bearer token) or
    /// `/users/{u}/messages/{m}/$value` (streamed from Graph).
    pub async fn download(&self, call: Call) -> Result<Download, Error> {
        let opened = self.open(&call, &[]).await?;
        let status = opened.response.status();
        let (source, opened) = if status.is_redirection() {
            let url = redirect_target(&opened)?;
            drop(opened);
            let source = Source::PreAuthenticated {
                url: url.to_string(),
                origin: call,
            };
            let opened = self.open_source(&source, 0).await?;
            (source, opened)
        } else {
            (Source::Graph(call), opened)
        };
        let size = opened.response.content_length();
        let content_type = opened
            .response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Opened {
            response, permits, ..
        } = opened;
        let state = State {
            client: self.clone(),
            source,
            body: Some((response.bytes_stream().boxed(), permits)),
            received: 0,
            skip: 0,
            total: size,
            resumes: 0,
            done: false,
        };
        let inner = stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.next_chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), st)),
                Ok(None) => None,
                Err(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
            }
        })
        .boxed();
        Ok(Download {
            size,
            content_type,
            inner,
        })
    }

    /// Opens the source, from byte `from` on.
    async fn open_source(&self, source: &Source, from: u64) -> Result<Opened, Error> {
        let range: Vec<(HeaderName, HeaderValue)> = if from > 0 {
            let value = HeaderValue::from_str(&format!("bytes={from}-"))
                .map_err(|e| Error::InvalidRequest(e.to_string()))?;
            vec![(RANGE, value)]
        } else {
            Vec::new()
        };
        match source {
            Source::PreAuthenticated { url, origin } => {
                let mut call = Call::pre_authenticated(Method::GET, url.clone());
                call.resource = origin.resource.clone();
                self.open(&call, &range).await
            }
            Source::Graph(call) => self.open(call, &range).await,
        }
    }
}

fn redirect_target(opened: &Opened) -> Result<Url, Error> {
    let location = opened
        .response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Malformed {
            what: opened.url.path().to_owned(),
            detail: "redirect without Location".into(),
        })?;
    opened.url.join(location).map_err(|e| Error::Malformed {
        what: opened.url.path().to_owned(),
        detail: format!("bad Location: {e}"),
    })
}

/// Start offset of a `Content-Range: bytes a-b/n` header.
fn content_range_start(value: Option<&HeaderValue>) -> Option<u64> {
    let text = value?.to_str().ok()?.trim();
    let rest = text.strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

impl State {
    fn what(&self) -> String {
        match &self.source {
            Source::PreAuthenticated { origin, .. } => origin.target.clone(),
            Source::Graph(call) => call.target.clone(),
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let Some((body, _permits)) = self.body.as_mut() else {
                self.resume().await?;
                continue;
            };
            let stall = self.client.inner.timeouts.stall;
            let broken = match tokio::time::timeout(stall, body.next()).await {
                Ok(Some(Ok(mut bytes))) => {
                    Stats::add(&self.client.inner.stats.bytes_received, bytes.len() as u64);
                    if self.skip > 0 {
                        let n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len());
                        self.skip -= n as u64;
                        bytes = bytes.slice(n..);
                        if bytes.is_empty() {
                            continue;
                        }
                    }
                    self.received += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                Ok(None) => {
                    if self.total.is_none_or(|t| self.received >= t) {
                        self.body = None;
                        return Ok(None);
                    }
                    format!(
                        "the connection closed after {} of {:?} bytes",
                        self.received, self.total
                    )
                }
                Ok(Some(Err(e))) => e.without_url().to_string(),
                Err(_) => format!("no data for {stall:?}"),
            };
            tracing::debug!("download of {} broke off: {broken}", self.what());
            self.body = None;
            if self.resumes >= MAX_RESUMES {
                return Err(Error::Interrupted {
                    what: self.what(),
                    received: self.received,
                    reason: broken,
                });
            }
        }
    }

    /// Re-opens the source from `received`.
    async fn resume(&mut self) -> Result<(), Error> {
        self.resumes += 1;
        Stats::add(&self.client.inner.stats.retries, 1);
        let delay = self.client.inner.retry.backoff(self.resumes);
        tokio::time::sleep(delay).await;
        let opened = match self.client.open_source(&self.source, self.received).await {
            Ok(o) => o,
            Err(e) => match &self.source {
                // The pre-authenticated URL may have expired: ask Graph for a fresh one.
                Source::PreAuthenticated { origin, .. } => {
                    tracing::debug!("resuming via a fresh download URL after: {e}");
                    let origin = origin.clone();
                    let first = self.client.open(&origin, &[]).await?;
                    if !first.response.status().is_redirection() {
                        return Err(e);
                    }
                    let url = redirect_target(&first)?;
                    drop(first);
                    self.source = Source::PreAuthenticated {
                        url: url.to_string(),
                        origin,
                    };
                    self.client.open_source(&self.source, self.received).await?
                }
                Source::Graph(_) => return Err(e),
            },
        };
        let status = opened.response.status().as_u16();
        if status == 206 {
            let start = content_range_start(opened.response.headers().get(CONTENT_RANGE));
            if start != Some(self.received) {
                return Err(Error::Interrupted {
                    what: self.what(),
                    received: self.received,
                    reason: format!(
                        "the server resumed at byte {start:?} instead of {}",
                        self.received
                    ),
                });
            }
            self.skip = 0;
        } else if matches!(self.source, Source::PreAuthenticated { .. }) {
            // The whole file again: skip what the consumer already has.
            self.skip = self.received;
        } else {
            return Err(Error::Interrupted {
                what: self.what(),
                received: self.received,
                reason: "the server cannot resume this content (no range support) and it may differ on a new read; download it again".into(),
            });
        }
        let Opened {
            response, permits, ..
        } = opened;
        self.body = Some((response.bytes_stream().boxed(), permits));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            content_range_start(Some(&HeaderValue::from_static("bytes 100-199/200"))),
            Some(100)
        );
        assert_eq!(
            content_range_start(Some(&HeaderValue::from_static("bytes */200"))),
            None
        );
        assert_eq!(content_range_start(None), None);
    }
}
