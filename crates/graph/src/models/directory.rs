//! Directory resources: users, groups, sites, drives, teams.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A user (`/users`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    /// Object id.
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Primary SMTP address (absent for users without a mailbox).
    pub mail: Option<String>,
    /// Whether sign-in is enabled (only when `$select`ed).
    pub account_enabled: Option<bool>,
    /// `Member` or `Guest`.
    pub user_type: Option<String>,
    /// Set on soft-deleted users.
    #[serde(with = "super::lenient_time")]
    pub deleted_date_time: Option<OffsetDateTime>,
}

/// A group (`/groups`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// SMTP address.
    pub mail: Option<String>,
    /// Mail alias.
    pub mail_nickname: Option<String>,
    /// `Unified` for Microsoft 365 groups.
    pub group_types: Vec<String>,
    /// Contains `Team` for groups with a team.
    pub resource_provisioning_options: Vec<String>,
    /// Whether mail-enabled.
    pub mail_enabled: Option<bool>,
    /// Description.
    pub description: Option<String>,
}

impl Group {
    /// Whether this is a Microsoft 365 (unified) group.
    #[must_use]
    pub fn is_unified(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
    }

    /// Whether the group has a team.
    #[must_use]
    pub fn has_team(&self) -> bool {
        self.resource_provisioning_options
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Team"))
    }
}

/// A SharePoint site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Site {
    /// Composite id `host,siteCollectionId,webId`.
    pub id: String,
    /// URL name.
    pub name: Option<String>,
    /// Title.
    pub display_name: Option<String>,
    /// URL.
    pub web_url: Option<String>,
    /// Whether this is a personal (OneDrive) site.
    pub is_personal_site: Option<bool>,
}

/// A drive (OneDrive or document library).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Drive {
    /// Drive id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// `personal`, `business` or `documentLibrary`.
    pub drive_type: Option<String>,
    /// URL.
    pub web_url: Option<String>,
}

/// A team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Team {
    /// Id (the group's id).
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Whether archived.
    pub is_archived: Option<bool>,
    /// URL.
    pub web_url: Option<String>,
}

/// An identity (user, application, device) in an identity set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    /// Id.
    pub id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// `identitySet`: who created or modified something.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySet {
    /// A user.
    pub user: Option<Identity>,
    /// An application.
    pub application: Option<Identity>,
    /// A device.
    pub device: Option<Identity>,
}
