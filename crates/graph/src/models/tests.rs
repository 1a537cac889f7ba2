//! The models against Microsoft's example payloads.

use super::*;
use crate::paging::Page;

fn page<T: serde::de::DeserializeOwned>(json: &str) -> Vec<T> {
    #[derive(serde::Deserialize)]
    struct P<T> {
        value: Vec<T>,
    }
    serde_json::from_str::<P<T>>(json).unwrap().value
}

#[test]
fn users_and_groups() {
    let users: Vec<User> = page(include_str!("../../tests/data/user-list.json"));
    assert_eq!(users.len(), 2);
    assert_eq!(
        users[1].user_principal_name.as_deref(),
        Some("AdeleV@Contoso.com")
    );
    assert_eq!(users[0].account_enabled, None);
    let groups: Vec<Group> = page(include_str!("../../tests/data/group-list.json"));
    assert!(!groups.is_empty());
    assert!(groups.iter().any(Group::is_unified));
}

#[test]
fn sites_folders_and_channels() {
    let sites: Vec<Site> = page(include_str!("../../tests/data/site-getallsites.json"));
    assert!(sites.iter().all(|s| !s.id.is_empty()));
    let folders: Vec<MailFolder> =
        page(include_str!("../../tests/data/mailfolder-list-hidden.json"));
    assert!(folders.iter().any(|f| f.is_hidden == Some(true)));
    let messages: Vec<ChatMessage> = page(include_str!("../../tests/data/channel-messages.json"));
    assert_eq!(messages[0].meta.id, "1616965872395");
    assert_eq!(
        messages[0]
            .meta
            .from
            .as_ref()
            .unwrap()
            .user
            .as_ref()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Robin Kline")
    );
    assert!(messages[0].meta.created_date_time.is_some());
    assert_eq!(messages[0].raw["importance"], "normal");
}

#[test]
fn messages_keep_their_json() {
    let messages: Vec<Message> = page(include_str!("../../tests/data/message-delta.json"));
    assert_eq!(
        messages[0].meta.subject.as_deref(),
        Some("Holiday hours update")
    );
    assert_eq!(
        messages[0].raw["sender"]["emailAddress"]["name"],
        "Dana Swope"
    );
    let back = serde_json::to_value(&messages[0]).unwrap();
    assert_eq!(back, messages[0].raw);
    let events: Vec<Event> = page(include_str!("../../tests/data/event-delta.json"));
    assert!(!events.is_empty());
    let contacts: Vec<Contact> = page(include_str!("../../tests/data/contact-delta.json"));
    assert!(!contacts.is_empty());
}

#[test]
fn drive_items() {
    let items: Vec<DriveItem> = page(include_str!("../../tests/data/driveitem-delta.json"));
    assert!(items[0].is_folder());
    assert!(items[2].is_deleted());
    let item: DriveItem = serde_json::from_str(
        r#"{"id":"1","name":"a.txt","size":5,"file":{"mimeType":"text/plain","hashes":{"quickXorHash":"abc="}},
            "fileSystemInfo":{"lastModifiedDateTime":"2024-01-02T03:04:05.1234567Z"},
            "lastModifiedDateTime":"not a date","@microsoft.graph.downloadUrl":"https://x/y","unknown":{"deep":[1]}}"#,
    )
    .unwrap();
    assert_eq!(
        item.file.unwrap().hashes.unwrap().quick_xor_hash.as_deref(),
        Some("abc=")
    );
    assert!(
        item.file_system_info
            .unwrap()
            .last_modified_date_time
            .is_some()
    );
    assert_eq!(
        item.last_modified_date_time, None,
        "unparseable dates are tolerated"
    );
    assert_eq!(item.download_url.as_deref(), Some("https://x/y"));
}

#[test]
fn pages_carry_links() {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(rename = "@odata.deltaLink")]
        delta_link: Option<String>,
    }
    let raw: Raw =
        serde_json::from_str(include_str!("../../tests/data/message-delta-final.json")).unwrap();
    assert!(raw.delta_link.unwrap().contains("deltatoken"));
    let _unused: Option<Page<User>> = None;
}

#[test]
fn attachments_and_replies() {
    let a: Attachment =
        serde_json::from_str(include_str!("../../tests/data/attachment-file.json")).unwrap();
    assert_eq!(
        a.odata_type.as_deref(),
        Some("#microsoft.graph.fileAttachment")
    );
    assert!(a.decoded_content().is_some_and(|b| !b.is_empty()));
    let m: ChatMessage = serde_json::from_str(
        r#"{"id":"1","body":{"content":"hi"},"replies":[{"id":"2","replyToId":"1","body":{"content":"re"}}]}"#,
    )
    .unwrap();
    assert_eq!(m.meta.replies[0].meta.reply_to_id.as_deref(), Some("1"));
    assert_eq!(m.meta.replies[0].raw["body"]["content"], "re");
}
