//! A backed-up message rebuilt as Graph JSON, so that it can be created as a received (not
//! draft) message: its MIME gives the people, the body and the attachments; the stored Graph
//! metadata gives the read state, flag, categories, importance and dates, which Graph only
//! takes at creation as MAPI properties (`PR_MESSAGE_FLAGS`, delivery and submit times).
//!
//! Signed and encrypted messages (S/MIME) are not rebuilt: taking them apart would break the
//! signature or lose the content, so they keep the MIME path (see `docs/restore-limits.md`).

use crate::render::{content_id, content_type};
use base64::Engine as _;
use mail_parser::{Address, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{Map, Value, json};

/// `PR_MESSAGE_FLAGS` bit: read.
const MSGFLAG_READ: u32 = 0x1;
/// `PR_MESSAGE_FLAGS` bit: not sent yet (a draft).
const MSGFLAG_UNSENT: u32 = 0x8;

/// One file of a rebuilt message (a nested message becomes an `.eml` file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub inline: bool,
    pub content_id: Option<String>,
}

impl Attachment {
    /// The `fileAttachment` JSON with its bytes.
    pub fn json(&self) -> Value {
        let mut a = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type,
            "isInline": self.inline,
            "contentBytes": base64::engine::general_purpose::STANDARD.encode(&self.bytes),
        });
        if let Some(c) = &self.content_id {
            a["contentId"] = Value::String(c.clone());
        }
        a
    }

    /// The `attachmentItem` of an upload session.
    pub fn session_item(&self) -> Value {
        let mut a = json!({
            "attachmentType": "file",
            "name": self.name,
            "size": self.bytes.len(),
            "contentType": self.content_type,
            "isInline": self.inline,
        });
        if let Some(c) = &self.content_id {
            a["contentId"] = Value::String(c.clone());
        }
        a
    }
}

/// How a message is recreated.
#[derive(Debug)]
pub(crate) enum Plan {
    /// From JSON: the message (without attachments) and its attachments.
    Json {
        message: Value,
        attachments: Vec<Attachment>,
    },
    /// From the MIME as it is (signed or encrypted messages).
    Mime,
}

/// Why a message cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RebuildError {
    #[error("the stored message is not readable MIME")]
    NotMime,
}

fn people(a: Option<&Address<'_>>) -> Vec<Value> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                let address = x.address()?.trim();
                if address.is_empty() {
                    return None;
                }
                Some(json!({"emailAddress": {
                    "name": x.name().map_or(address, str::trim),
                    "address": address,
                }}))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Whether a MIME message is signed or encrypted (S/MIME or PGP/MIME).
fn is_protected(root: &MessagePart<'_>) -> bool {
    let ct = content_type(root);
    ct == "multipart/signed"
        || ct == "multipart/encrypted"
        || ct == "application/pkcs7-mime"
        || ct == "application/x-pkcs7-mime"
}

/// The bytes of an attachment part exactly as sent: text parts are decoded by the parser into
/// UTF-8, so their base64 transfer encoding is undone here instead.
fn part_bytes(mime: &[u8], p: &MessagePart<'_>) -> Vec<u8> {
    if matches!(p.body, PartType::Text(_) | PartType::Html(_))
        && p.content_transfer_encoding()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"))
    {
        let start = p.raw_body_offset() as usize;
        let end = (p.raw_end_offset() as usize).min(mime.len());
        if let Some(raw) = mime.get(start..end) {
            let clean: Vec<u8> = raw
                .iter()
                .copied()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(&clean) {
                return b;
            }
        }
    }
    p.contents().to_vec()
}

/// A name for a part without one.
fn part_name(p: &MessagePart<'_>, index: usize) -> String {
    if let Some(n) = p.attachment_name().map(str::trim).filter(|n| !n.is_empty()) {
        return n.to_owned();
    }
    match &p.body {
        PartType::Message(m) => {
            let subject = m.subject().map(str::trim).filter(|s| !s.is_empty());
            format!("{}.eml", subject.unwrap_or("message"))
        }
        _ => format!("attachment {}", index + 1),
    }
}

/// `high`, `normal` or `low` from `Importance:` or `X-Priority:`.
fn importance(msg: &mail_parser::Message<'_>) -> Option<&'static str> {
    let text = |h: &str| {
        msg.header_raw(h)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    if let Some(i) = text("Importance") {
        return match i.as_str() {
            "high" => Some("high"),
            "low" => Some("low"),
            _ => Some("normal"),
        };
    }
    let p = text("X-Priority")?;
    match p.chars().next()? {
        '1' | '2' => Some("high"),
        '4' | '5' => Some("low"),
        _ => Some("normal"),
    }
}

/// Graph's `flag` without annotations and nulls.
fn clean_flag(flag: &Map<String, Value>) -> Map<String, Value> {
    flag.iter()
        .filter(|(k, v)| !k.starts_with('@') && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Rebuilds a message from its MIME and stored metadata.
pub(crate) fn rebuild(mime: &[u8], meta: &Value) -> Result<Plan, RebuildError> {
    let msg = MessageParser::default()
        .parse(mime)
        .ok_or(RebuildError::NotMime)?;
    if msg.headers().is_empty() {
        return Err(RebuildError::NotMime);
    }
    if is_protected(msg.root_part()) {
        return Ok(Plan::Mime);
    }
    let mut m = Map::new();
    let subject = meta
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| msg.subject().map(str::to_owned))
        .unwrap_or_default();
    m.insert("subject".into(), Value::String(subject));

    // The body: the first HTML body part, else the first text one, as decoded text.
    let html = msg.html_bodies().find(|p| p.is_text_html());
    let (kind, content) = match html {
        Some(p) => ("html", p.text_contents().unwrap_or_default().to_owned()),
        None => (
            "text",
            msg.text_bodies()
                .find(|p| matches!(p.body, PartType::Text(_)))
                .and_then(MessagePart::text_contents)
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    m.insert(
        "body".into(),
        json!({"contentType": kind, "content": content}),
    );

    // People: Graph's view where it was stored, the MIME headers otherwise.
    let stored_people = |k: &str| meta.get(k).filter(|v| !v.is_null()).cloned();
    let from = stored_people("from")
        .or_else(|| people(msg.from()).into_iter().next())
        .unwrap_or(Value::Null);
    let sender = people(msg.sender())
        .into_iter()
        .next()
        .unwrap_or_else(|| from.clone());
    if !from.is_null() {
        m.insert("from".into(), from);
    }
    if !sender.is_null() {
        m.insert("sender".into(), sender);
    }
    for (key, header) in [
        ("toRecipients", msg.to()),
        ("ccRecipients", msg.cc()),
        ("bccRecipients", msg.bcc()),
        ("replyTo", msg.reply_to()),
    ] {
        let list = stored_people(key).unwrap_or_else(|| Value::Array(people(header)));
        if list.as_array().is_some_and(|a| !a.is_empty()) {
            m.insert(key.into(), list);
        }
    }

    let imid = meta
        .get("internetMessageId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| msg.message_id().map(|id| format!("<{id}>")));
    if let Some(imid) = imid {
        m.insert("internetMessageId".into(), Value::String(imid));
    }
    let imp = meta
        .get("importance")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| importance(&msg).map(str::to_owned));
    if let Some(i) = imp {
        m.insert("importance".into(), Value::String(i));
    }
    if let Some(c) = meta
        .get("categories")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        m.insert("categories".into(), c.clone());
    }
    if let Some(flag) = meta.get("flag").and_then(Value::as_object) {
        m.insert("flag".into(), Value::Object(clean_flag(flag)));
    }

    // Read and draft state, received and sent times: MAPI properties at creation.
    let read = meta.get("isRead").and_then(Value::as_bool).unwrap_or(true);
    let draft = meta
        .get("isDraft")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let flags = if read { MSGFLAG_READ } else { 0 } | if draft { MSGFLAG_UNSENT } else { 0 };
    let mut props = vec![json!({"id": "Integer 0x0E07", "value": flags.to_string()})];
    let sent = meta
        .get("sentDateTime")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| msg.date().map(mail_parser::DateTime::to_rfc3339));
    let received = meta
        .get("receivedDateTime")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| sent.clone());
    if let Some(t) = received {
        props.push(json!({"id": "SystemTime 0x0E06", "value": t}));
    }
    if let Some(t) = sent {
        props.push(json!({"id": "SystemTime 0x0039", "value": t}));
    }
    m.insert("singleValueExtendedProperties".into(), Value::Array(props));

    let attachments = msg
        .attachments()
        .enumerate()
        .map(|(i, p)| {
            let nested = p.is_message();
            let cid = content_id(p);
            let inline = !nested
                && cid.as_ref().is_some_and(|c| {
                    p.content_disposition().is_some_and(|d| d.is_inline())
                        || content.contains(&format!("cid:{c}"))
                });
            Attachment {
                name: part_name(p, i),
                content_type: content_type(p),
                bytes: part_bytes(mime, p),
                inline,
                content_id: cid,
            }
        })
        .collect();
    Ok(Plan::Json {
        message: Value::Object(m),
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIME: &str = "From: \"Ann Example\" <ann@example.org>\r\n\
To: Bob <bob@example.org>, carl@example.org\r\n\
Cc: Dora <dora@example.org>\r\n\
Bcc: eve@example.org\r\n\
Reply-To: list@example.org\r\n\
Subject: =?iso-8859-1?Q?Gr=FC=DFe?=\r\n\
Date: Tue, 03 Mar 2026 10:00:00 +0000\r\n\
Message-ID: <abc@example.org>\r\n\
X-Priority: 1\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\
\r\n\
--m\r\n\
Content-Type: multipart/related; boundary=\"r\"\r\n\
\r\n\
--r\r\n\
Content-Type: text/html; charset=\"iso-8859-1\"\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<p>Gr=FC=DFe</p><img src=3D\"cid:logo@x\">\r\n\
--r\r\n\
Content-Type: image/png; name=\"logo.png\"\r\n\
Content-Disposition: inline; filename=\"logo.png\"\r\n\
Content-ID: <logo@x>\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--r--\r\n\
--m\r\n\
Content-Type: text/csv; name=\"a.csv\"\r\n\
Content-Disposition: attachment; filename=\"a.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
YSxiDQoxLDINCg==\r\n\
--m\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: attachment\r\n\
\r\n\
From: x@example.org\r\n\
Subject: Inner\r\n\
\r\n\
inner body\r\n\
--m--\r\n";

    #[test]
    fn a_message_is_rebuilt_with_people_body_attachments_and_mapi_properties() {
        let meta = json!({"isRead": false, "isDraft": false, "flag": {"flagStatus": "flagged", "dueDateTime": null},
            "receivedDateTime": "2026-03-03T10:00:05Z", "categories": ["Blue"]});
        let Plan::Json {
            message,
            attachments,
        } = rebuild(MIME.as_bytes(), &meta).unwrap()
        else {
            panic!("rebuilt as MIME");
        };
        assert_eq!(message["subject"], "Grüße");
        assert_eq!(message["body"]["contentType"], "html");
        assert!(
            message["body"]["content"]
                .as_str()
                .unwrap()
                .contains("<p>Grüße</p>")
        );
        assert_eq!(
            message["from"]["emailAddress"]["address"],
            "ann@example.org"
        );
        assert_eq!(message["sender"], message["from"]);
        assert_eq!(message["toRecipients"].as_array().unwrap().len(), 2);
        assert_eq!(
            message["bccRecipients"][0]["emailAddress"]["address"],
            "eve@example.org"
        );
        assert_eq!(
            message["replyTo"][0]["emailAddress"]["address"],
            "list@example.org"
        );
        assert_eq!(message["internetMessageId"], "<abc@example.org>");
        assert_eq!(message["importance"], "high");
        assert_eq!(message["flag"], json!({"flagStatus": "flagged"}));
        assert_eq!(message["categories"], json!(["Blue"]));
        let props = message["singleValueExtendedProperties"].as_array().unwrap();
        assert_eq!(props[0], json!({"id": "Integer 0x0E07", "value": "0"}));
        assert_eq!(props[1]["value"], "2026-03-03T10:00:05Z");
        assert_eq!(props[2]["id"], "SystemTime 0x0039");
        assert_eq!(attachments.len(), 3);
        assert!(attachments[0].inline);
        assert_eq!(attachments[0].content_id.as_deref(), Some("logo@x"));
        assert_eq!(
            attachments[0].bytes,
            base64::engine::general_purpose::STANDARD
                .decode("iVBORw0KGgo=")
                .unwrap()
        );
        assert_eq!(attachments[1].bytes, b"a,b\r\n1,2\r\n");
        assert!(!attachments[1].inline);
        assert_eq!(attachments[2].name, "Inner.eml");
        assert_eq!(attachments[2].content_type, "message/rfc822");
        assert!(String::from_utf8_lossy(&attachments[2].bytes).contains("Subject: Inner"));
    }

    #[test]
    fn read_and_draft_states_set_message_flags() {
        let flags = |meta: Value| match rebuild(MIME.as_bytes(), &meta).unwrap() {
            Plan::Json { message, .. } => message["singleValueExtendedProperties"][0]["value"]
                .as_str()
                .unwrap()
                .to_owned(),
            Plan::Mime => panic!(),
        };
        assert_eq!(flags(json!({"isRead": true})), "1");
        assert_eq!(flags(json!({"isRead": true, "isDraft": true})), "9");
    }

    #[test]
    fn signed_messages_keep_the_mime_path_and_garbage_is_refused() {
        let signed = "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n";
        assert!(matches!(
            rebuild(signed.as_bytes(), &json!({})).unwrap(),
            Plan::Mime
        ));
        assert!(rebuild(b"", &json!({})).is_err());
    }
}
