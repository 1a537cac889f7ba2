//! The Microsoft Graph service principal every tenant has, with the application permissions
//! (app roles) an app can be granted on it: real ids and values, as Entra ID publishes them.

use serde_json::{Value, json};

/// The application id of Microsoft Graph.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// `(id, value, display name)` of the app roles the simulator's Microsoft Graph offers.
pub const APP_ROLES: &[(&str, &str, &str)] = &[
    (
        "df021288-bdef-4463-88db-98f22de89214",
        "User.Read.All",
        "Read all users' full profiles",
    ),
    (
        "5b567255-7703-4780-807c-7be8301ae99b",
        "Group.Read.All",
        "Read all groups",
    ),
    (
        "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
        "Directory.Read.All",
        "Read directory data",
    ),
    (
        "332a536c-c7ef-4017-ab91-336970924f0d",
        "Sites.Read.All",
        "Read items in all site collections",
    ),
    (
        "9492366f-7969-46a4-8d15-ed1a20078fff",
        "Sites.ReadWrite.All",
        "Read and write items in all site collections",
    ),
    (
        "a82116e5-55eb-4c41-a434-62fe8a61c773",
        "Sites.FullControl.All",
        "Have full control of all site collections",
    ),
    (
        "01d4889c-1287-42c6-ac1f-5d1e02578ef6",
        "Files.Read.All",
        "Read files in all site collections",
    ),
    (
        "75359482-378d-4052-8f01-80520e7db3cd",
        "Files.ReadWrite.All",
        "Read and write files in all site collections",
    ),
    (
        "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
        "Mail.Read",
        "Read mail in all mailboxes",
    ),
    (
        "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
        "Mail.ReadWrite",
        "Read and write mail in all mailboxes",
    ),
    (
        "40f97065-369a-49f4-947c-6a255697ae91",
        "MailboxSettings.Read",
        "Read all user mailbox settings",
    ),
    (
        "798ee544-9d2d-430c-a058-570e29e34338",
        "Calendars.Read",
        "Read calendars in all mailboxes",
    ),
    (
        "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
        "Calendars.ReadWrite",
        "Read and write calendars in all mailboxes",
    ),
    (
        "089fe4d0-434a-44c5-8827-41ba8a0b17f5",
        "Contacts.Read",
        "Read contacts in all mailboxes",
    ),
    (
        "6918b873-d17a-4dc1-b314-35f528134491",
        "Contacts.ReadWrite",
        "Read and write contacts in all mailboxes",
    ),
    (
        "2280dda6-0bfd-44ee-a2f4-cb867cfc4c1e",
        "Team.ReadBasic.All",
        "Get a list of all teams",
    ),
    (
        "59a6b24b-4225-4393-8165-ebaec5f55d7a",
        "Channel.ReadBasic.All",
        "Read the names and descriptions of all channels",
    ),
    (
        "7b2449af-6ccd-4f4d-9f78-e550c193f0d1",
        "ChannelMessage.Read.All",
        "Read all channel messages",
    ),
    (
        "dfb0dd15-61de-45b2-be36-d6a69fba3c79",
        "Teamwork.Migrate.All",
        "Create chat and channel messages with anyone's identity and with any timestamp",
    ),
    (
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
        "Application.ReadWrite.All",
        "Read and write all applications",
    ),
    (
        "06b708a9-e830-4db3-a914-8e69da51d44f",
        "AppRoleAssignment.ReadWrite.All",
        "Manage app permission grants and app role assignments",
    ),
];

/// The value (`Mail.ReadWrite`) of an app role id, if Microsoft Graph has it.
#[must_use]
pub fn role_value(id: &str) -> Option<&'static str> {
    APP_ROLES
        .iter()
        .find(|(i, _, _)| i.eq_ignore_ascii_case(id))
        .map(|(_, v, _)| *v)
}

/// The `appRoles` collection of the Microsoft Graph service principal.
#[must_use]
pub fn app_roles_json() -> Value {
    Value::Array(
        APP_ROLES
            .iter()
            .map(|(id, value, name)| {
                json!({
                    "allowedMemberTypes": ["Application"],
                    "description": format!("Allows the app to {} without a signed-in user.", name.to_lowercase()),
                    "displayName": name,
                    "id": id,
                    "isEnabled": true,
                    "origin": "Application",
                    "value": value,
                })
            })
            .collect(),
    )
}

/// Directory role template ids, by the names Entra ID shows.
pub const DIRECTORY_ROLES: &[(&str, &str)] = &[
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
    ),
    (
        "Privileged Role Administrator",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
    ),
    (
        "Application Administrator",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    ),
    (
        "Cloud Application Administrator",
        "158c047a-c907-4556-b7ef-446551a6b5f7",
    ),
    (
        "Application Developer",
        "cf1c38e5-3621-4004-a7cb-879624dced7c",
    ),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
];

/// Roles that may grant application permissions of Microsoft Graph (admin consent).
pub const CONSENT_ROLES: &[&str] = &[
    "62e90394-69f5-4237-9190-012177145e10",
    "e8611ab8-c189-46e8-94e1-60213ab1f814",
];

/// Roles that may create and manage any application registration.
pub const APP_ADMIN_ROLES: &[&str] = &[
    "62e90394-69f5-4237-9190-012177145e10",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
];

/// A role template id from a name or an id.
#[must_use]
pub fn directory_role(name_or_id: &str) -> Option<&'static str> {
    DIRECTORY_ROLES
        .iter()
        .find(|(n, id)| n.eq_ignore_ascii_case(name_or_id) || id.eq_ignore_ascii_case(name_or_id))
        .map(|(_, id)| *id)
}
