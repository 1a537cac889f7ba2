//! Probes used by discovery: does a user have a mailbox, a OneDrive?

use crate::call::{Call, encode_segment};
use crate::client::Client;
use crate::error::{Error, ErrorClass};
use crate::models::Drive;

impl Client {
    /// Whether the user has an Exchange Online mailbox Graph can read. `false` when Graph answers
    /// `MailboxNotEnabledForRESTAPI` (no Exchange licence, on-premises or soft-deleted mailbox):
    /// that is "no mailbox", not an error.
    pub async fn has_mailbox(&self, user_id: &str) -> Result<bool, Error> {
        let call = Call::get(format!(
            "/users/{}/mailFolders/inbox?$select=id",
            encode_segment(user_id)
        ))
        .resource(user_id);
        match self.json::<serde_json::Value>(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.class() == ErrorClass::MailboxNotEnabled => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The user's OneDrive, or `None` when the user has none (Graph answers 404).
    pub async fn user_drive(&self, user_id: &str) -> Result<Option<Drive>, Error> {
        let call = Call::get(format!("/users/{}/drive", encode_segment(user_id)));
        match self.json::<Drive>(call).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
