//! Typed Graph resources. Unknown fields are ignored; missing optional fields are `None`.
//! Dates that cannot be parsed are `None` rather than an error.
//!
//! [`Message`], [`Event`], [`Contact`] and [`ChatMessage`] keep the whole JSON object in `raw`
//! (for storage) next to the typed fields in `meta`.

mod directory;
mod drive;
mod outlook;
mod teams;

pub use directory::{Drive, Group, Identity, IdentitySet, Site, Team, User};
pub use drive::{DriveItem, FileFacet, FileSystemInfo, FolderFacet, Hashes, ItemReference};
pub use outlook::{
    Attachment, Calendar, Contact, ContactFolder, ContactMeta, EmailAddress, Event, EventMeta,
    MailFolder, Message, MessageMeta, Recipient,
};
pub use teams::{Channel, ChatMessage, ChatMessageAttachment, ChatMessageMeta, ItemBody};

/// Lenient RFC 3339 date-times: `None` when absent, null or unparseable.
pub(crate) mod lenient_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let text: Option<serde_json::Value> = Option::deserialize(d)?;
        Ok(text
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(parse))
    }

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t.and_then(|t| t.format(&Rfc3339).ok()) {
            Some(text) => s.serialize_some(&text),
            None => s.serialize_none(),
        }
    }

    /// Parses RFC 3339, also without a zone (Graph's `dateTimeTimeZone` style, read as UTC).
    pub(crate) fn parse(text: &str) -> Option<OffsetDateTime> {
        let text = text.trim();
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .or_else(|| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok())
    }
}

/// Implements `Deserialize`/`Serialize` for a `{ meta, raw }` type that keeps the whole JSON.
macro_rules! keeps_json {
    ($outer:ident, $meta:ident) => {
        impl<'de> serde::Deserialize<'de> for $outer {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = serde_json::Value::deserialize(d)?;
                let meta = $meta::deserialize(&raw).map_err(serde::de::Error::custom)?;
                Ok(Self { meta, raw })
            }
        }

        impl serde::Serialize for $outer {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.raw.serialize(s)
            }
        }
    };
}
pub(crate) use keeps_json;

#[cfg(test)]
mod tests;
