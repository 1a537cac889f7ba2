//! Backed-up mail shown in a browser: the header summary of a stored MIME message, and its body
//! as a standalone HTML document that is safe to show in a sandboxed frame.
//!
//! The body is the message's HTML (or its plain text, escaped), cleaned by `ammonia`: no
//! scripts, event handlers, forms, frames or objects; nothing that loads from the network
//! (`http(s):` images, backgrounds and `url(…)` in styles are removed, so opening a message
//! never tells its sender); images the message carries itself (`cid:`) are inlined as `data:`
//! URIs; links open in a new window without a referrer. The service adds a Content Security
//! Policy ([`CSP`]) that forbids whatever might slip through.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use mail_parser::{Address, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::Serialize;

use crate::export::html::escape;

/// The Content Security Policy a rendered message is served with.
pub const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

/// Images the message carries are inlined up to this many bytes in total.
const MAX_INLINE_BYTES: usize = 16 << 20;

/// Why a message cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The content is not a MIME message.
    #[error("the item is not a readable e-mail message")]
    NotMime,
}

/// An attachment of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attachment {
    /// Its file name (or a made-up one).
    pub name: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// Its MIME type.
    pub content_type: String,
    /// Whether the body shows it (an image referenced by `cid:`).
    pub inline: bool,
}

/// The header summary of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MailSummary {
    /// Subject.
    pub subject: String,
    /// Sender, `Name <address>`.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// The `Date` header (RFC 3339).
    pub date: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .map(|x| match (x.name(), x.address()) {
                (Some(n), Some(e)) if !n.is_empty() => format!("{n} <{e}>"),
                (_, Some(e)) => e.to_owned(),
                (Some(n), None) => n.to_owned(),
                (None, None) => String::new(),
            })
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// A MIME part's content type, lower case (`text/plain`, …), guessed from its body when absent.
pub(crate) fn content_type(p: &MessagePart<'_>) -> String {
    p.content_type().map_or_else(
        || match p.body {
            PartType::Text(_) => "text/plain".to_owned(),
            PartType::Html(_) => "text/html".to_owned(),
            PartType::Message(_) => "message/rfc822".to_owned(),
            _ => "application/octet-stream".to_owned(),
        },
        |c| match c.subtype() {
            Some(s) => format!("{}/{}", c.ctype(), s).to_ascii_lowercase(),
            None => c.ctype().to_ascii_lowercase(),
        },
    )
}

/// A MIME part's `Content-ID` without its angle brackets, if it has a non-empty one.
pub(crate) fn content_id(p: &MessagePart<'_>) -> Option<String> {
    p.content_id()
        .map(|c| {
            c.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|c| !c.is_empty())
}

/// Reads the header summary and the attachment list of a MIME message.
///
/// # Errors
/// [`RenderError::NotMime`] when the bytes are not a message.
pub fn summary(mime: &[u8]) -> Result<MailSummary, RenderError> {
    let msg = MessageParser::default()
        .parse(mime)
        .ok_or(RenderError::NotMime)?;
    let referenced = referenced_cids(&msg);
    let attachments = msg
        .attachments()
        .enumerate()
        .map(|(i, p)| {
            let ct = content_type(p);
            Attachment {
                name: p.attachment_name().map_or_else(
                    || match &p.body {
                        PartType::Message(m) => {
                            format!("{}.eml", m.subject().unwrap_or("message"))
                        }
                        _ => format!("attachment-{}", i + 1),
                    },
                    str::to_owned,
                ),
                size: p.contents().len() as u64,
                inline: content_id(p).is_some_and(|c| referenced.iter().any(|r| r == &c)),
                content_type: ct,
            }
        })
        .collect();
    Ok(MailSummary {
        subject: msg.subject().unwrap_or_default().to_owned(),
        from: addresses(msg.from()).into_iter().next(),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        date: msg.date().map(mail_parser::DateTime::to_rfc3339),
        attachments,
    })
}

/// The `cid:` references of the message's HTML bodies.
fn referenced_cids(msg: &mail_parser::Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for p in msg.html_bodies() {
        if let PartType::Html(h) = &p.body {
            let lower = h.to_ascii_lowercase();
            let mut rest = lower.as_str();
            let mut offset = 0;
            while let Some(i) = rest.find("cid:") {
                let start = offset + i + 4;
                let tail = &h[start..];
                let end = tail
                    .find(|c: char| {
                        c == '"' || c == '\'' || c == ')' || c.is_whitespace() || c == '>'
                    })
                    .unwrap_or(tail.len());
                out.push(tail[..end].to_owned());
                offset = start;
                rest = &lower[offset..];
            }
        }
    }
    out
}

/// The message as a complete HTML document, cleaned (see the module docs).
///
/// # Errors
/// [`RenderError::NotMime`] when the bytes are not a message.
pub fn render(mime: &[u8]) -> Result<String, RenderError> {
    let msg = MessageParser::default()
        .parse(mime)
        .ok_or(RenderError::NotMime)?;
    let mut images: HashMap<String, String> = HashMap::new();
    let mut budget = MAX_INLINE_BYTES;
    for p in &msg.parts {
        let ct = content_type(p);
        if let Some(cid) = content_id(p)
            && ct.starts_with("image/")
            && p.contents().len() <= budget
        {
            budget -= p.contents().len();
            let data = base64::engine::general_purpose::STANDARD.encode(p.contents());
            images.insert(cid, format!("data:{ct};base64,{data}"));
        }
    }
    let cleaner = Cleaner::new(images);
    let mut body = String::new();
    for p in msg.html_bodies() {
        match &p.body {
            PartType::Html(h) => body.push_str(&cleaner.clean(h)),
            PartType::Text(t) => {
                body.push_str("<pre style=\"white-space: pre-wrap; font-family: inherit\">");
                body.push_str(&escape(t));
                body.push_str("</pre>");
            }
            PartType::InlineBinary(b) => {
                let ct = content_type(p);
                if ct.starts_with("image/") && b.len() <= budget {
                    budget -= b.len();
                    let data = base64::engine::general_purpose::STANDARD.encode(b);
                    body.push_str(&format!(
                        "<p><img src=\"data:{};base64,{data}\"></p>",
                        escape(&ct)
                    ));
                }
            }
            _ => {}
        }
    }
    let blocked = cleaner.blocked();
    let notice = if blocked > 0 {
        format!(
            "<div style=\"font: 13px sans-serif; background: #fff4ce; padding: 6px 10px; \
             margin-bottom: 8px\">{blocked} remote item(s) — images, styles or fonts from the \
             internet — were not loaded, so the sender does not learn that this message was \
             opened.</div>"
        )
    } else {
        String::new()
    };
    Ok(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"referrer\" \
         content=\"no-referrer\"><title>{}</title></head><body>{notice}{body}</body></html>\n",
        escape(msg.subject().unwrap_or_default())
    ))
}

/// An HTML cleaner for one message: `cid:` images resolved from `images`, remote content
/// removed and counted.
pub struct Cleaner {
    builder: ammonia::Builder<'static>,
    blocked: Arc<AtomicUsize>,
}

impl Cleaner {
    /// A cleaner that inlines the images of `images` (content id → `data:` URI).
    #[must_use]
    pub fn new(images: HashMap<String, String>) -> Self {
        let blocked = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&blocked);
        let mut builder = ammonia::Builder::default();
        builder
            .add_generic_attributes(["style"])
            .add_url_schemes(["data", "cid"])
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("noopener noreferrer"))
            .set_tag_attribute_value("a", "target", "_blank")
            .attribute_filter(move |element, attribute, value| {
                filter(&images, &counter, element, attribute, value)
            });
        Self { builder, blocked }
    }

    /// Cleans one HTML fragment or document.
    #[must_use]
    pub fn clean(&self, html: &str) -> String {
        self.builder.clean(html).to_string()
    }

    /// How many remote references were removed so far.
    #[must_use]
    pub fn blocked(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }
}

fn is_inline_image(v: &str) -> bool {
    let v = v.trim_start().to_ascii_lowercase();
    v.starts_with("data:image/") && !v.starts_with("data:image/svg")
}

fn filter<'u>(
    images: &HashMap<String, String>,
    blocked: &AtomicUsize,
    element: &str,
    attribute: &str,
    value: &'u str,
) -> Option<Cow<'u, str>> {
    let lower = value.trim().to_ascii_lowercase();
    match (element, attribute) {
        ("a", "href") => (lower.starts_with("http:")
            || lower.starts_with("https:")
            || lower.starts_with("mailto:"))
        .then_some(Cow::Borrowed(value)),
        (_, "style") => Some(clean_style(value, blocked)),
        (
            _,
            "src" | "background" | "poster" | "srcset" | "lowsrc" | "dynsrc" | "longdesc" | "cite"
            | "action" | "formaction" | "href",
        ) => {
            if let Some(cid) = lower.strip_prefix("cid:") {
                let found = images
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(cid.trim()))
                    .map(|(_, v)| Cow::Owned(v.clone()));
                if found.is_none() {
                    blocked.fetch_add(1, Ordering::Relaxed);
                }
                return found;
            }
            if element == "img" && attribute == "src" && is_inline_image(value) {
                return Some(Cow::Borrowed(value));
            }
            if lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//")
            {
                blocked.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        _ => Some(Cow::Borrowed(value)),
    }
}

/// A `style` attribute without declarations that could load anything or run anything.
fn clean_style<'u>(value: &'u str, blocked: &AtomicUsize) -> Cow<'u, str> {
    let mut kept = Vec::new();
    let mut changed = false;
    for decl in value.split(';') {
        let l = decl.to_ascii_lowercase();
        let risky = l.contains('\\')
            || l.contains("expression")
            || l.contains("behavior")
            || l.contains("-moz-binding")
            || l.contains("@import")
            || l.contains("javascript:");
        let remote = l.contains("url(") || l.contains("image-set(") || l.contains("image(");
        if remote {
            blocked.fetch_add(1, Ordering::Relaxed);
        }
        if risky || remote {
            changed = true;
        } else if !decl.trim().is_empty() {
            kept.push(decl.trim());
        }
    }
    if changed {
        Cow::Owned(kept.join("; "))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "From: Eve <eve@evil.example>\r\nTo: Ann <ann@x.com>, bob@x.com\r\n\
Cc: Carl <carl@x.com>\r\nSubject: Hello <b>there</b>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>body{background:url(https://t.example/s.png)}</style>\
<script>alert(1)</script></head><body onload=\"x()\"><p style=\"color:red;background:url(https://t.example/b.png)\">Hi</p>\
<img src=\"https://t.example/pixel.gif\" onerror=\"alert(2)\"><img src=\"cid:logo@x\">\
<a href=\"javascript:alert(3)\">js</a><a href=\"https://ok.example/\">ok</a>\
<form action=\"https://t.example/\"><input name=p></form><iframe src=\"https://t.example/\"></iframe>\
<object data=\"x\"></object><svg><script>alert(4)</script></svg></body></html>\r\n--b1\r\n\
Content-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgo=\r\n--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQK\r\n--b1--\r\n";

    #[test]
    fn hostile_html_is_cleaned_and_own_images_inlined() {
        let html = render(HOSTILE.as_bytes()).unwrap();
        let lower = html.to_ascii_lowercase();
        for bad in [
            "<script",
            "onload",
            "onerror",
            "javascript:",
            "<form",
            "<input",
            "<iframe",
            "<object",
            "t.example",
            "alert(",
        ] {
            assert!(!lower.contains(bad), "{bad} in {html}");
        }
        assert!(
            html.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""),
            "{html}"
        );
        assert!(html.contains("color:red"), "{html}");
        assert!(html.contains("href=\"https://ok.example/\""), "{html}");
        assert!(html.contains("rel=\"noopener noreferrer\""), "{html}");
        assert!(html.contains("target=\"_blank\""), "{html}");
        assert!(
            html.contains("<title>Hello &lt;b&gt;there&lt;/b&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("were not loaded"), "{html}");
    }

    #[test]
    fn summary_lists_people_date_and_attachments() {
        let s = summary(HOSTILE.as_bytes()).unwrap();
        assert_eq!(s.subject, "Hello <b>there</b>");
        assert_eq!(s.from.as_deref(), Some("Eve <eve@evil.example>"));
        assert_eq!(s.to, ["Ann <ann@x.com>", "bob@x.com"]);
        assert_eq!(s.cc, ["Carl <carl@x.com>"]);
        assert_eq!(s.date.as_deref(), Some("2026-11-24T10:00:00Z"));
        let pdf = s
            .attachments
            .iter()
            .find(|a| a.name == "report.pdf")
            .unwrap();
        assert_eq!((pdf.size, pdf.inline), (9, false));
        assert_eq!(pdf.content_type, "application/pdf");
        assert!(
            s.attachments
                .iter()
                .any(|a| a.inline && a.content_type == "image/png")
        );
    }

    #[test]
    fn plain_text_is_escaped() {
        let m = "From: a@x.com\r\nSubject: t\r\nContent-Type: text/plain\r\n\r\n<script>alert(1)</script> & more\r\n";
        let html = render(m.as_bytes()).unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
            "{html}"
        );
        assert!(!html.contains("<script"));
    }
}
