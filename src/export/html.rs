//! HTML: escaping, text from HTML bodies, and the standalone transcript of a channel
//! conversation.
//!
//! The transcript loads nothing: every text from Microsoft 365 is escaped, HTML message bodies
//! go through `ammonia` without images or relative URLs, and a Content-Security-Policy forbids
//! scripts and remote content.

use serde_json::Value;

/// Escapes text for HTML content and attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)?
        }
    })
}

/// The text of an HTML fragment: tags dropped (scripts and styles with their content), line
/// breaks for `<br>` and block ends, entities decoded, blank runs collapsed.
#[must_use]
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while !rest.is_empty() {
        if let Some(lt) = rest.find('<') {
            if skip_until.is_none() {
                push_text(&mut out, &rest[..lt]);
            }
            let after = &rest[lt + 1..];
            let Some(gt) = after.find('>') else {
                break;
            };
            let tag = after[..gt].trim().to_ascii_lowercase();
            let tag_name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let closing = tag.starts_with('/');
            if let Some(end) = skip_until {
                if closing && tag_name == end {
                    skip_until = None;
                }
            } else if !closing && (tag_name == "script" || tag_name == "style") {
                skip_until = Some(if tag_name == "script" {
                    "script"
                } else {
                    "style"
                });
            } else if tag_name == "br"
                || (closing
                    && matches!(
                        tag_name.as_str(),
                        "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                    ))
            {
                out.push('\n');
            }
            rest = &after[gt + 1..];
        } else {
            if skip_until.is_none() {
                push_text(&mut out, rest);
            }
            break;
        }
    }
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut text = String::new();
    let mut blank = 0;
    for l in lines {
        if l.is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(&l);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

fn push_text(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match after.find(';').filter(|&i| i <= 10) {
            Some(semi) => match entity(&after[..semi]) {
                Some(c) => {
                    out.push(c);
                    rest = &after[semi + 1..];
                }
                None => {
                    out.push('&');
                    rest = after;
                }
            },
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// An HTML message body made safe to show: no scripts, no event handlers, no images or other
/// remote content, links opened without referrer.
#[must_use]
pub fn sanitize(body: &str) -> String {
    ammonia::Builder::default()
        .rm_tags(["img"])
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(body)
        .to_string()
}

fn author(m: &Value) -> String {
    ["user", "application", "device"]
        .iter()
        .find_map(|k| m.pointer(&format!("/from/{k}/displayName"))?.as_str())
        .unwrap_or("(unknown)")
        .to_owned()
}

fn message(m: &Value, out: &mut String, reply: bool) {
    let class = if reply { "reply" } else { "post" };
    let when = m
        .get("createdDateTime")
        .and_then(Value::as_str)
        .unwrap_or_default();
    out.push_str(&format!(
        "<article class=\"{class}\"><header><strong>{}</strong> <time datetime=\"{w}\">{w}</time></header>\n",
        escape(&author(m)),
        w = escape(when)
    ));
    if let Some(s) = m
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out.push_str(&format!("<h2>{}</h2>\n", escape(s)));
    }
    let content = m
        .pointer("/body/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_html = m
        .pointer("/body/contentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let body = if is_html {
        sanitize(content)
    } else {
        escape(content).replace('\n', "<br>\n")
    };
    out.push_str(&format!("<div class=\"body\">{body}</div>\n"));
    if let Some(atts) = m.get("attachments").and_then(Value::as_array)
        && !atts.is_empty()
    {
        out.push_str("<ul class=\"attachments\">\n");
        for a in atts {
            let name = a
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("attachment");
            out.push_str(&format!("<li>{}</li>\n", escape(name)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</article>\n");
}

/// A standalone HTML page with a channel post and its replies.
#[must_use]
pub fn conversation_to_html(post: &Value) -> String {
    let subject = post
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("Conversation");
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape(subject)));
    out.push_str("<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}article{border-left:3px solid #888;padding:.2em 1em;margin:1em 0}article.reply{margin-left:2em;border-color:#ccc}time{color:#666}</style>\n");
    out.push_str("</head><body>\n");
    out.push_str(&format!("<h1>{}</h1>\n", escape(subject)));
    message(post, &mut out, false);
    if let Some(replies) = post.get("replies").and_then(Value::as_array) {
        for r in replies {
            message(r, &mut out, true);
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_from_html_drops_tags_and_scripts() {
        let t = to_text(
            "<p>Hello&nbsp;<b>world</b> &amp; co</p><script>alert(1)</script><br>Next &#233;&#x41;",
        );
        assert_eq!(t, "Hello world & co\n\nNext éA");
        assert_eq!(to_text("plain"), "plain");
    }

    #[test]
    fn transcripts_escape_everything_and_load_nothing() {
        let post = json!({
            "subject": "<script>x</script> plan",
            "from": {"user": {"displayName": "Ann <admin>"}},
            "createdDateTime": "2026-11-01T10:00:00Z",
            "body": {"contentType": "html", "content": "<p onclick=\"evil()\">Hi <img src=\"https://tracker.example/p.gif\"><script>steal()</script><a href=\"https://ok.example\">link</a></p>"},
            "replies": [{"from": {"user": {"displayName": "Bob"}}, "body": {"contentType": "text", "content": "a < b\nc"}}]
        });
        let h = conversation_to_html(&post);
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("steal()") && !h.contains("onclick") && !h.contains("tracker.example"));
        assert!(h.contains("&lt;script&gt;x&lt;/script&gt; plan"));
        assert!(h.contains("Ann &lt;admin&gt;"));
        assert!(h.contains("a &lt; b<br>"));
        assert!(h.contains("https://ok.example"));
        assert!(h.contains("default-src 'none'"));
    }
}
