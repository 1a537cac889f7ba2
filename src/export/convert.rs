//! Reading a stored JSON item and converting it for the ZIP export.

use backhome_store::{ContentId, Repository};
use serde_json::Value;

use super::{ExportError, group_thread, html, ics, read_small, vcf};

/// A stored item's Graph JSON.
pub(super) fn json(repo: &Repository, path: &str, id: ContentId) -> Result<Value, ExportError> {
    let bytes = read_small(repo, path, id)?;
    serde_json::from_slice(&bytes).map_err(|e| ExportError::Convert {
        path: path.to_owned(),
        reason: format!("not JSON: {e}"),
    })
}

fn failed(path: &str, reason: String) -> ExportError {
    ExportError::Convert {
        path: path.to_owned(),
        reason,
    }
}

/// An event's `.ics`.
pub(super) fn event(repo: &Repository, path: &str, id: ContentId) -> Result<Vec<u8>, ExportError> {
    let v = json(repo, path, id)?;
    ics::event_to_ics(&v)
        .map(String::into_bytes)
        .map_err(|e| failed(path, e))
}

/// A contact's `.vcf`.
pub(super) fn contact(
    repo: &Repository,
    path: &str,
    id: ContentId,
) -> Result<Vec<u8>, ExportError> {
    let v = json(repo, path, id)?;
    Ok(vcf::contact_to_vcard(&v).into_bytes())
}

/// A channel conversation's HTML transcript.
pub(super) fn conversation(
    repo: &Repository,
    path: &str,
    id: ContentId,
) -> Result<Vec<u8>, ExportError> {
    let v = json(repo, path, id)?;
    Ok(html::conversation_to_html(&v).into_bytes())
}

/// One post of a group conversation thread as an HTML page of its own.
pub(super) fn group_post(
    repo: &Repository,
    path: &str,
    id: ContentId,
) -> Result<Vec<u8>, ExportError> {
    let v = json(repo, path, id)?;
    Ok(group_thread::thread_to_html("", std::slice::from_ref(&v)).into_bytes())
}
