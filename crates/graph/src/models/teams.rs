//! Teams resources: channels and channel messages.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::directory::IdentitySet;
use super::keeps_json;

/// A channel of a team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Channel {
    /// Channel id (`19:…@thread.tacv2`).
    pub id: String,
    /// Name.
    pub display_name: Option<String>,
    /// `standard`, `private` or `shared`.
    pub membership_type: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Creation time.
    #[serde(with = "super::lenient_time")]
    pub created_date_time: Option<OffsetDateTime>,
}

/// A message body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemBody {
    /// `text` or `html`.
    pub content_type: Option<String>,
    /// The content.
    pub content: Option<String>,
}

/// An attachment of a chat message (a reference, a card…).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatMessageAttachment {
    /// Id.
    pub id: Option<String>,
    /// MIME type or card type.
    pub content_type: Option<String>,
    /// URL of the content.
    pub content_url: Option<String>,
    /// Inline content (cards).
    pub content: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// Typed metadata of a channel message or reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatMessageMeta {
    /// Message id.
    pub id: String,
    /// Id of the message this replies to.
    pub reply_to_id: Option<String>,
    /// `message`, `systemEventMessage`…
    pub message_type: Option<String>,
    /// Author.
    pub from: Option<IdentitySet>,
    /// Creation time.
    #[serde(with = "super::lenient_time")]
    pub created_date_time: Option<OffsetDateTime>,
    /// Last modification (replies included).
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// Deletion time (soft-deleted messages).
    #[serde(with = "super::lenient_time")]
    pub deleted_date_time: Option<OffsetDateTime>,
    /// Subject.
    pub subject: Option<String>,
    /// Body.
    pub body: Option<ItemBody>,
    /// Attachments.
    pub attachments: Vec<ChatMessageAttachment>,
    /// Replies, when listed with `$expand=replies`.
    pub replies: Vec<ChatMessage>,
}

/// A channel message: typed metadata plus the whole JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    /// Typed fields.
    pub meta: ChatMessageMeta,
    /// The object as Graph sent it.
    pub raw: serde_json::Value,
}
keeps_json!(ChatMessage, ChatMessageMeta);
