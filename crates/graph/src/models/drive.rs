//! OneDrive and SharePoint items.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A file or folder in a drive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DriveItem {
    /// Item id.
    pub id: String,
    /// Name (absent on some deleted items).
    pub name: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Changes with any change (metadata or content).
    pub e_tag: Option<String>,
    /// Changes when the content changes.
    pub c_tag: Option<String>,
    /// Parent folder.
    pub parent_reference: Option<ItemReference>,
    /// Present on files.
    pub file: Option<FileFacet>,
    /// Present on folders.
    pub folder: Option<FolderFacet>,
    /// Present on deleted items (in delta).
    pub deleted: Option<serde_json::Value>,
    /// Present on the drive's root.
    pub root: Option<serde_json::Value>,
    /// Present on OneNote packages and similar.
    pub package: Option<serde_json::Value>,
    /// Client-side timestamps.
    pub file_system_info: Option<FileSystemInfo>,
    /// Service-side creation time.
    #[serde(with = "super::lenient_time")]
    pub created_date_time: Option<OffsetDateTime>,
    /// Service-side modification time.
    #[serde(with = "super::lenient_time")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    /// URL.
    pub web_url: Option<String>,
    /// Short-lived pre-authenticated download URL.
    #[serde(rename = "@microsoft.graph.downloadUrl")]
    pub download_url: Option<String>,
}

impl DriveItem {
    /// Whether the item is a folder (or the root, or a package).
    #[must_use]
    pub fn is_folder(&self) -> bool {
        self.folder.is_some() || self.root.is_some() || self.package.is_some()
    }

    /// Whether the item is deleted.
    #[must_use]
    pub fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }
}

/// `itemReference`: where an item lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemReference {
    /// Parent id.
    pub id: Option<String>,
    /// Drive id.
    pub drive_id: Option<String>,
    /// Drive type.
    pub drive_type: Option<String>,
    /// Path (absent in delta).
    pub path: Option<String>,
    /// Parent name.
    pub name: Option<String>,
    /// Site id.
    pub site_id: Option<String>,
}

/// The `file` facet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileFacet {
    /// MIME type.
    pub mime_type: Option<String>,
    /// Content hashes.
    pub hashes: Option<Hashes>,
}

/// Content hashes Graph computed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Hashes {
    /// QuickXorHash (OneDrive for Business, SharePoint), base64.
    pub quick_xor_hash: Option<String>,
    /// SHA-1, hex (OneDrive personal).
    pub sha1_hash: Option<String>,
    /// SHA-256, hex (OneDrive personal).
    pub sha256_hash: Option<String>,
    /// CRC32, hex (OneDrive personal).
    pub crc32_hash: Option<String>,
}

/// The `folder` facet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FolderFacet {
    /// Number of children.
    pub child_count: Option<u64>,
}

/// Client-side timestamps (settable on upload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileSystemInfo {
    /// Creation time.
    #[serde(with = "super::lenient_time", skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<OffsetDateTime>,
    /// Modification time.
    #[serde(with = "super::lenient_time", skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<OffsetDateTime>,
}
