//! The application permissions of Microsoft Graph that backup and restore need, each with the
//! calls that need it (taken from what `backup/` and `restore/` send), and the step-by-step guide
//! for admins who register the app themselves.

use serde::Serialize;

use backhome_graph::Cloud;

/// The application id of Microsoft Graph.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// One application permission (app role) of Microsoft Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Permission {
    /// Its value, `Mail.ReadWrite`.
    pub name: &'static str,
    /// The app role id on the Microsoft Graph service principal.
    pub id: &'static str,
    /// Why Backhome needs it.
    pub why: &'static str,
}

/// Exactly the application permissions backup and restore use.
pub const REQUIRED: &[Permission] = &[
    Permission {
        name: "User.Read.All",
        id: "df021288-bdef-4463-88db-98f22de89214",
        why: "list the tenant's users and find each user's OneDrive (backup discovery, restore to a user)",
    },
    Permission {
        name: "Group.Read.All",
        id: "5b567255-7703-4780-807c-7be8301ae99b",
        why: "list Microsoft 365 groups and teams, and find each group's files (backup discovery)",
    },
    Permission {
        name: "Mail.ReadWrite",
        id: "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
        why: "read mail folders and messages (backup) and create folders and messages (restore)",
    },
    Permission {
        name: "Calendars.ReadWrite",
        id: "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
        why: "read calendars, events and their attachments of users and groups (backup) and create events (restore)",
    },
    Permission {
        name: "Contacts.ReadWrite",
        id: "6918b873-d17a-4dc1-b314-35f528134491",
        why: "read contact folders and contacts (backup) and create contacts (restore)",
    },
    Permission {
        name: "Files.ReadWrite.All",
        id: "75359482-378d-4052-8f01-80520e7db3cd",
        why: "read OneDrive and group files through delta queries (backup) and upload files (restore)",
    },
    Permission {
        name: "Sites.ReadWrite.All",
        id: "9492366f-7969-46a4-8d15-ed1a20078fff",
        why: "list every SharePoint site (getAllSites) and its document libraries (backup) and upload into libraries (restore)",
    },
    Permission {
        name: "Channel.ReadBasic.All",
        id: "59a6b24b-4225-4393-8165-ebaec5f55d7a",
        why: "list the channels of each team (backup and restore)",
    },
    Permission {
        name: "ChannelMessage.Read.All",
        id: "7b2449af-6ccd-4f4d-9f78-e550c193f0d1",
        why: "read channel messages and replies through delta queries (backup)",
    },
    Permission {
        name: "Teamwork.Migrate.All",
        id: "dfb0dd15-61de-45b2-be36-d6a69fba3c79",
        why: "create migration-mode channels and import messages with their original authors and dates (restore)",
    },
];

/// The permissions' names.
#[must_use]
pub fn names() -> Vec<&'static str> {
    REQUIRED.iter().map(|p| p.name).collect()
}

/// Names of required permissions a token's `roles` lack.
#[must_use]
pub fn missing(roles: &[String]) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .filter(|p| !roles.iter().any(|r| r.eq_ignore_ascii_case(p.name)))
        .map(|p| p.name)
        .collect()
}

/// The Entra admin center of a cloud.
fn admin_center(cloud: &Cloud) -> &'static str {
    match cloud {
        Cloud::UsGov | Cloud::UsGovDod => "https://entra.microsoft.us",
        Cloud::China => "https://entra.microsoftonline.cn",
        _ => "https://entra.microsoft.com",
    }
}

/// A step-by-step guide (Markdown) for registering the app by hand in the Entra admin center,
/// with the exact permissions and the certificate made on the NAS (`thumbprint`).
#[must_use]
pub fn guide(cloud: &Cloud, thumbprint: Option<&str>) -> String {
    let mut g = String::new();
    g.push_str("# Registering the Backhome application in Microsoft Entra ID\n\n");
    g.push_str("You need an account with the Global Administrator role (or Application Administrator plus Privileged Role Administrator).\n\n");
    g.push_str(&format!(
        "1. Open the Microsoft Entra admin center at {} and go to **Identity > Applications > App registrations**.\n",
        admin_center(cloud)
    ));
    g.push_str("2. Choose **New registration**. Name: `Backhome for Microsoft 365`. Supported account types: **Accounts in this organizational directory only (Single tenant)**. Leave the redirect URI empty and choose **Register**.\n");
    g.push_str("3. On the app's **Overview**, copy the **Application (client) ID** and the **Directory (tenant) ID**: the wizard asks for both.\n");
    g.push_str("4. Go to **Certificates & secrets > Certificates > Upload certificate** and upload the `.cer` file downloaded from Backhome");
    match thumbprint {
        Some(t) => g.push_str(&format!(" (its thumbprint is `{t}`).\n")),
        None => g.push_str(".\n"),
    }
    g.push_str("5. Go to **API permissions > Add a permission > Microsoft Graph > Application permissions** and add exactly these permissions:\n\n");
    g.push_str("   | Permission | Why Backhome needs it |\n   | --- | --- |\n");
    for p in REQUIRED {
        g.push_str(&format!("   | `{}` | {} |\n", p.name, p.why));
    }
    g.push_str("\n6. Choose **Grant admin consent for <your organisation>** and confirm. Every permission's status must read *Granted*.\n");
    g.push_str("7. Back in Backhome, enter the tenant ID and the application ID. A new application can take a few minutes before it can sign in: if the check fails at once, wait and try again.\n\n");
    g.push_str("If you registered the app with a PowerShell script instead (Synology's or Microsoft's), import the `.pfx` file it made, with its password, and enter the IDs it printed.\n");
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_distinct_and_named_in_the_guide() {
        let mut ids: Vec<&str> = REQUIRED.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), REQUIRED.len());
        let g = guide(&Cloud::Global, Some("ABCDEF"));
        for p in REQUIRED {
            assert!(g.contains(p.name), "{}", p.name);
        }
        assert!(g.contains("`ABCDEF`"));
        assert!(guide(&Cloud::UsGov, None).contains("entra.microsoft.us"));
    }

    #[test]
    fn missing_is_case_insensitive() {
        let mut roles: Vec<String> = names().iter().map(|n| n.to_lowercase()).collect();
        assert!(missing(&roles).is_empty());
        roles.retain(|r| r != "mail.readwrite");
        assert_eq!(missing(&roles), vec!["Mail.ReadWrite"]);
    }
}
