//! Attachments of a message rebuilt from JSON: small files ride along in the create request,
//! files up to 3 MB are `POST`ed one by one, larger ones go through an attachment upload session
//! (`createUploadSession`, then sequential ranges of at most 4 MB to its `uploadUrl`).

use std::sync::atomic::Ordering;

use backhome_graph::{Call, Client, encode_segment};
use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use super::ItemError;
use super::mail_json::Attachment;

/// Largest file `POST`ed as JSON (Graph: under 3 MB; above, an upload session).
pub(super) const POST_MAX: usize = 3_000_000;
/// Bytes of attachments sent with the create request itself (Graph takes 4 MB per request,
/// base64 makes 4 bytes of 3).
pub(super) const WITH_CREATE_MAX: usize = 2_000_000;
/// Bytes per upload-session range (Graph: at most 4 MB).
const RANGE: usize = 4_000_000;

/// Splits attachments into those sent with the create request and those added after it.
pub(super) fn split(attachments: Vec<Attachment>) -> (Vec<Attachment>, Vec<Attachment>) {
    let mut with = Vec::new();
    let mut after = Vec::new();
    let mut total = 0;
    for a in attachments {
        if a.bytes.len() < POST_MAX && total + a.bytes.len() <= WITH_CREATE_MAX {
            total += a.bytes.len();
            with.push(a);
        } else {
            after.push(a);
        }
    }
    (with, after)
}

/// Adds one attachment to message `id` of the mailbox at `base`.
pub(super) async fn add(
    client: &Client,
    base: &str,
    id: &str,
    a: &Attachment,
    uploaded: &std::sync::atomic::AtomicU64,
) -> Result<(), ItemError> {
    let url = format!("{base}/messages/{}/attachments", encode_segment(id));
    if a.bytes.len() < POST_MAX {
        let call = Call::post_json(url, &a.json())?.resource(base.to_owned());
        client.json::<Value>(call).await?;
        uploaded.fetch_add(a.bytes.len() as u64, Ordering::Relaxed);
        return Ok(());
    }
    let call = Call::post_json(
        format!("{url}/createUploadSession"),
        &json!({ "AttachmentItem": a.session_item() }),
    )?
    .resource(base.to_owned())
    // An unused session expires by itself.
    .idempotent(true);
    let session: Value = client.json(call).await?;
    let upload_url = session
        .get("uploadUrl")
        .and_then(Value::as_str)
        .ok_or_else(|| ItemError::Other("Graph opened an upload session without a URL".into()))?
        .to_owned();
    let total = a.bytes.len();
    let mut start = 0;
    while start < total {
        let end = (start + RANGE).min(total);
        let chunk = Bytes::copy_from_slice(&a.bytes[start..end]);
        let range = format!("bytes {start}-{}/{total}", end - 1);
        // Graph's upload URL (on the Outlook host) is pre-authenticated: no bearer token.
        let call = Call::pre_authenticated(Method::PUT, upload_url.clone())
            .resource(base.to_owned())
            .header("Content-Range", &range)?
            .body("application/octet-stream", chunk)?
            // A range sent twice is answered with the progress.
            .idempotent(true);
        let status = client.send(call).await?.status;
        uploaded.fetch_add((end - start) as u64, Ordering::Relaxed);
        if status == 201 && end < total {
            return Err(ItemError::Other(
                "the upload session ended before the whole attachment was sent".into(),
            ));
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> Attachment {
        Attachment {
            name: format!("{n}.bin"),
            content_type: "application/octet-stream".into(),
            bytes: vec![0; n],
            inline: false,
            content_id: None,
        }
    }

    #[test]
    fn small_files_go_with_the_create_request_up_to_a_budget() {
        let (with, after) = split(vec![
            file(1_000_000),
            file(5_000_000),
            file(900_000),
            file(500_000),
        ]);
        let sizes = |v: &[Attachment]| v.iter().map(|a| a.bytes.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&with), vec![1_000_000, 900_000]);
        assert_eq!(sizes(&after), vec![5_000_000, 500_000]);
    }
}
