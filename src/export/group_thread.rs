//! A Microsoft 365 group conversation thread as one HTML transcript, drawn by the same writer as
//! Teams channel conversations ([`super::html::conversation_to_html`]): the thread's first post
//! is the post, the others its replies.

use serde_json::{Value, json};

/// A group post (Graph's `post`: `from.emailAddress`, `receivedDateTime`) in the shape the
/// channel writer reads (`from.user.displayName`, `createdDateTime`).
fn as_channel_message(post: &Value, subject: Option<&str>) -> Value {
    let name = ["/from/emailAddress/name", "/from/emailAddress/address"]
        .iter()
        .find_map(|p| post.pointer(p).and_then(Value::as_str))
        .unwrap_or("(unknown)");
    let when = ["receivedDateTime", "createdDateTime"]
        .iter()
        .find_map(|k| post.get(*k).and_then(Value::as_str))
        .unwrap_or_default();
    json!({
        "subject": subject,
        "createdDateTime": when,
        "from": {"user": {"displayName": name}},
        "body": post.get("body").cloned().unwrap_or(Value::Null),
        "attachments": post.get("attachments").cloned().unwrap_or_else(|| json!([])),
    })
}

/// How many segments of a backup path lie at or under a group's `conversations` root:
/// `/groups/<nick>/conversations/<thread>` gives 1, a post or attachment in it 2, else 0.
fn depth_under_conversations(path: &str) -> usize {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["groups", _, "conversations", rest @ ..] => rest.len(),
        _ => 0,
    }
}

/// Whether `path` (a backup path, segments encoded) is a group conversation thread.
pub(super) fn is_thread_path(path: &str) -> bool {
    depth_under_conversations(path) == 1
}

/// Whether `path` is an item inside a group conversation thread (a post or an attachment).
pub(super) fn is_in_thread(path: &str) -> bool {
    depth_under_conversations(path) == 2
}

/// A standalone HTML page with a thread's `topic` and its `posts` in delivery order (each the
/// post's Graph JSON as backed up).
#[must_use]
pub fn thread_to_html(topic: &str, posts: &[Value]) -> String {
    let topic = (!topic.trim().is_empty()).then_some(topic);
    let mut first = posts.first().map_or_else(
        || json!({"subject": topic}),
        |p| as_channel_message(p, topic),
    );
    first["replies"] = Value::Array(
        posts
            .iter()
            .skip(1)
            .map(|p| as_channel_message(p, None))
            .collect(),
    );
    super::html::conversation_to_html(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_paths_are_recognised_only_under_a_groups_conversations_root() {
        assert!(is_thread_path(
            "/groups/sales/conversations/Plan%2FQ1 [ab12]"
        ));
        assert!(is_in_thread(
            "/groups/sales/conversations/Plan [ab12]/001 Zoë [cd34]"
        ));
        assert!(!is_thread_path("/groups/sales/conversations"));
        assert!(!is_thread_path("/teams/sales/General/x"));
        assert!(!is_thread_path("/users/a@b/mail/conversations/x"));
        assert!(!is_in_thread("/groups/sales/calendar/Calendar/x"));
    }

    #[test]
    fn a_thread_renders_every_post_with_its_author_escaped_and_inert() {
        let posts = vec![
            json!({"receivedDateTime": "2026-01-02T10:00:00Z", "from": {"emailAddress": {"name": "Zoë <admin>", "address": "z@contoso.com"}},
                "body": {"contentType": "html", "content": "<div>Réunion</div><script>alert(1)</script>"},
                "attachments": [{"name": "Plan – Q1.xlsx"}]}),
            json!({"receivedDateTime": "2026-01-02T11:00:00Z", "from": {"emailAddress": {"address": "bob@contoso.com"}},
                "body": {"contentType": "text", "content": "OK\nmerci"}}),
        ];
        let html = thread_to_html("Projektplan – Überarbeitung", &posts);
        assert!(
            html.contains("<title>Projektplan – Überarbeitung</title>"),
            "{html}"
        );
        assert!(html.contains("Zoë &lt;admin&gt;"), "{html}");
        assert!(html.contains("bob@contoso.com"), "{html}");
        assert!(html.contains("Réunion") && html.contains("merci"), "{html}");
        assert!(html.contains("Plan – Q1.xlsx"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert_eq!(html.matches("<article").count(), 2, "{html}");
        assert!(html.contains("2026-01-02T11:00:00Z"), "{html}");
    }
}
