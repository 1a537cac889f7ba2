//! Exchange resources: mail folders, messages, calendars, events, contacts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::keeps_json;

/// A mail folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MailFolder {
    /// Folder id (stable).
    pub id: String,
    /// Name.
    pub display_name: Option<String>,
    /// Parent folder id.
    pub parent_folder_id: Option<String>,
    /// Number of child folders.
    pub child_folder_count: Option<u64>,
    /// Number of items.
    pub total_item_count: Option<u64>,
    /// Number of unread items.
    pub unread_item_count: Option<u64>,
    /// Hidden folder (only listed with `includeHiddenFolders=true`).
    pub is_hidden: Option<bool>,
    /// Well-known name (`inbox`, `sentitems`…), where Graph gives it.
    pub well_known_name: Option<String>,
    /// `#microsoft.graph.mailSearchFolder` for search folders.
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

/// An e-mail address with a name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailAddress {
    /// Display name.
    pub name: Option<String>,
    /// Address.
    pub address: Option<String>,
}

/// A sender or recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Recipient {
    /// The address.
    pub email_address: Option<EmailAddress>,
}

/// Typed metadata of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageMeta {
    /// Message id (immutable with `Prefer: IdType="ImmutableId"`).
    pub id: String,
    /// Subject.
    pub subject: Option<String>,
    /// Folder id.
    pub parent_folder_id: Option<String>,
    /// Version marker.
    pub change_key: Option<String>,
    /// Received time.
    #[serde(with = "super::lenient_time")]
    pub received_date_time: Option<OffsetDateTime>,
    /// Sent time.
    #[serde(with = "super::lenient_time")]
    pub sent_date_time: Option<OffsetDateTime>,
    /// Last modification.
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// Whether read.
    pub is_read: Option<bool>,
    /// Whether a draft.
    pub is_draft: Option<bool>,
    /// Whether it has attachments.
    pub has_attachments: Option<bool>,
    /// Internet Message-ID.
    pub internet_message_id: Option<String>,
    /// Sender.
    pub from: Option<Recipient>,
    /// Conversation.
    pub conversation_id: Option<String>,
    /// `@odata.type` (`#microsoft.graph.eventMessage` for meeting requests).
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

/// A message: typed metadata plus the whole JSON Graph sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Typed fields.
    pub meta: MessageMeta,
    /// The object as Graph sent it.
    pub raw: serde_json::Value,
}
keeps_json!(Message, MessageMeta);

/// Typed metadata of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventMeta {
    /// Event id.
    pub id: String,
    /// Subject.
    pub subject: Option<String>,
    /// `singleInstance`, `occurrence`, `exception`, `seriesMaster`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Series master of an occurrence or exception.
    pub series_master_id: Option<String>,
    /// Version marker.
    pub change_key: Option<String>,
    /// Last modification.
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// Whether it has attachments.
    pub has_attachments: Option<bool>,
    /// iCalendar UID.
    pub i_cal_u_id: Option<String>,
}

/// An event: typed metadata plus the whole JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Typed fields.
    pub meta: EventMeta,
    /// The object as Graph sent it.
    pub raw: serde_json::Value,
}
keeps_json!(Event, EventMeta);

/// Typed metadata of a contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContactMeta {
    /// Contact id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Folder id.
    pub parent_folder_id: Option<String>,
    /// Version marker.
    pub change_key: Option<String>,
    /// Last modification.
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// Addresses.
    pub email_addresses: Vec<EmailAddress>,
}

/// A contact: typed metadata plus the whole JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    /// Typed fields.
    pub meta: ContactMeta,
    /// The object as Graph sent it.
    pub raw: serde_json::Value,
}
keeps_json!(Contact, ContactMeta);

/// A contact folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContactFolder {
    /// Folder id.
    pub id: String,
    /// Name.
    pub display_name: Option<String>,
    /// Parent folder id.
    pub parent_folder_id: Option<String>,
}

/// A calendar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Calendar {
    /// Calendar id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Whether this is the default calendar.
    pub is_default_calendar: Option<bool>,
    /// Version marker.
    pub change_key: Option<String>,
    /// Whether the app can edit it.
    pub can_edit: Option<bool>,
    /// Owner.
    pub owner: Option<EmailAddress>,
}

/// An attachment of a message or event (`fileAttachment`, `itemAttachment`, `referenceAttachment`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attachment {
    /// Attachment id.
    pub id: String,
    /// `#microsoft.graph.fileAttachment`, `…itemAttachment` or `…referenceAttachment`.
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    /// File name.
    pub name: Option<String>,
    /// MIME type.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Whether shown inline.
    pub is_inline: Option<bool>,
    /// Content id for inline references (`cid:`).
    pub content_id: Option<String>,
    /// Last modification.
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// Base64 content of a file attachment (when not `$select`ed away).
    pub content_bytes: Option<String>,
}

impl Attachment {
    /// Decodes `contentBytes`; `None` when absent or not valid base64.
    #[must_use]
    pub fn decoded_content(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let text = self.content_bytes.as_deref()?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
    }
}
