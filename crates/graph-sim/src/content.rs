//! Content generated on demand from seeds: message specs and MIME, events, contacts, channel
//! messages and file bytes. The same seed always yields the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::rng::{Rng, mix, stream_bytes};
use crate::time_fmt::{iso, rfc2822};
use crate::words;

/// A person as `emailAddress`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// SMTP address.
    pub address: String,
}

/// An attachment of a generated message.
#[derive(Clone, Debug)]
pub struct AttachmentSpec {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Content seed (shared attachments reuse a tenant-wide seed).
    pub seed: u64,
    /// Inline image referenced from the HTML body.
    pub inline: bool,
    /// Content-ID for inline parts.
    pub content_id: Option<String>,
    /// Uploaded bytes (attachments added through the API), instead of generated ones.
    pub data: Option<bytes::Bytes>,
}

impl AttachmentSpec {
    /// The attachment's bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        if let Some(d) = &self.data {
            return d.to_vec();
        }
        file_bytes(
            self.seed,
            self.content_type.starts_with("text/"),
            0,
            self.size,
        )
    }
}

/// Everything a generated message shows.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    /// Subject.
    pub subject: String,
    /// Sender.
    pub from: Person,
    /// Recipients.
    pub to: Vec<Person>,
    /// Copies.
    pub cc: Vec<Person>,
    /// Plain body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Attachments (inline ones included).
    pub attachments: Vec<AttachmentSpec>,
    /// `Message-ID` without brackets.
    pub message_id: String,
    /// Conversation seed.
    pub conversation: u64,
}

/// A generated person (not necessarily a tenant user).
#[must_use]
pub fn person(rng: &mut Rng, domain: &str) -> Person {
    let given = *rng.pick(words::GIVEN);
    let surname = *rng.pick(words::SURNAMES);
    let dom = if rng.chance(0.5) {
        domain.to_string()
    } else {
        (*rng.pick(&["fabrikam.com", "example.org", "beispiel.de"])).to_string()
    };
    let local = crate::tenant::ascii_fold(&format!("{given} {surname}"));
    Person {
        name: format!("{given} {surname}"),
        address: format!("{local}@{dom}"),
    }
}

/// The spec of a generated message.
#[must_use]
pub fn message_spec(
    tenant_seed: u64,
    domain: &str,
    owner: &Person,
    seed: u64,
    sent_folder: bool,
) -> MessageSpec {
    let mut rng = Rng::new(mix(seed, 0x5BEC));
    let other = person(&mut rng, domain);
    let (from, to) = if sent_folder {
        (owner.clone(), vec![other])
    } else {
        (other, vec![owner.clone()])
    };
    let cc = if rng.chance(0.3) {
        vec![person(&mut rng, domain)]
    } else {
        Vec::new()
    };
    let mut subject = (*rng.pick(words::SUBJECTS)).to_string();
    if rng.chance(0.5) {
        subject = format!("{subject} ({})", rng.below(1000));
    }
    let sentences: Vec<&str> = (0..2 + rng.below(5))
        .map(|_| *rng.pick(words::SENTENCES))
        .collect();
    let greeting = format!(
        "Hi {},",
        to.first()
            .map_or("all", |p| p.name.split(' ').next().unwrap_or("all"))
    );
    let text = format!(
        "{greeting}\r\n\r\n{}\r\n\r\n{}",
        sentences.join(" "),
        from.name
    );
    let mut attachments = Vec::new();
    if rng.chance(0.3) {
        for _ in 0..1 + rng.below(2) {
            let shared = rng.chance(0.4);
            let aseed = if shared {
                mix(tenant_seed, 0xA77 + rng.below(12))
            } else {
                rng.next_u64()
            };
            let mut arng = Rng::new(aseed);
            let name = (*arng.pick(words::FILE_NAMES)).trim().to_string();
            let size = if arng.chance(0.9) {
                200 + arng.below(150 * 1024)
            } else {
                512 * 1024 + arng.below(2 * 1024 * 1024)
            };
            let content_type = mime_type(&name).to_string();
            attachments.push(AttachmentSpec {
                name,
                content_type,
                size,
                seed: aseed,
                inline: false,
                content_id: None,
                data: None,
            });
        }
    }
    let mut html = format!(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>{}</p><p>{}</p><p>{}</p>",
        escape_html(&greeting),
        escape_html(&sentences.join(" ")),
        escape_html(&from.name)
    );
    if rng.chance(0.15) {
        let cid = format!("image001.png@{:016X}", rng.next_u64());
        html.push_str(&format!("<img src=\"cid:{cid}\" alt=\"logo\">"));
        attachments.push(AttachmentSpec {
            name: "image001.png".into(),
            content_type: "image/png".into(),
            size: 2_000 + rng.below(30_000),
            seed: mix(tenant_seed, 0x1A6E),
            inline: true,
            content_id: Some(cid),
            data: None,
        });
    }
    html.push_str("</body></html>");
    MessageSpec {
        subject,
        from,
        to,
        cc,
        text,
        html,
        attachments,
        message_id: format!(
            "{:016x}{:08x}@{}",
            rng.next_u64(),
            rng.below(u64::from(u32::MAX)),
            domain
        ),
        conversation: mix(seed, 0xC0),
    }
}

/// A MIME type from a file name.
#[must_use]
pub fn mime_type(name: &str) -> &'static str {
    let lower = name.to_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    match ext {
        "txt" | "md" => "text/plain",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An RFC 2047 encoded word when `s` is not plain ASCII.
#[must_use]
pub fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(s.as_bytes()))
    }
}

fn address(p: &Person) -> String {
    format!(
        "\"{}\" <{}>",
        encode_word(&p.name).replace('"', ""),
        p.address
    )
}

fn base64_lines(bytes: &[u8], out: &mut Vec<u8>) {
    let encoded = STANDARD.encode(bytes);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 2231 filename parameter.
fn filename_param(name: &str) -> String {
    if name.is_ascii() && !name.contains('"') {
        format!("filename=\"{name}\"")
    } else {
        let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        format!("filename*=UTF-8''{enc}")
    }
}

/// The MIME of a generated message.
#[must_use]
pub fn mime(spec: &MessageSpec, sent: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let b_mixed = format!("_000_{:016x}_", spec.conversation);
    let b_rel = format!("_001_{:016x}_", spec.conversation);
    let b_alt = format!("_002_{:016x}_", spec.conversation);
    let mut head = format!(
        "From: {}\r\nTo: {}\r\n",
        address(&spec.from),
        spec.to.iter().map(address).collect::<Vec<_>>().join(", ")
    );
    if !spec.cc.is_empty() {
        head.push_str(&format!(
            "Cc: {}\r\n",
            spec.cc.iter().map(address).collect::<Vec<_>>().join(", ")
        ));
    }
    head.push_str(&format!(
        "Subject: {}\r\nDate: {}\r\nMessage-ID: <{}>\r\nMIME-Version: 1.0\r\n",
        encode_word(&spec.subject),
        rfc2822(sent),
        spec.message_id
    ));
    out.extend_from_slice(head.as_bytes());
    let files: Vec<&AttachmentSpec> = spec.attachments.iter().filter(|a| !a.inline).collect();
    let inline: Vec<&AttachmentSpec> = spec.attachments.iter().filter(|a| a.inline).collect();
    if !files.is_empty() {
        out.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"{b_mixed}\"\r\n\r\n--{b_mixed}\r\n")
                .as_bytes(),
        );
    }
    if !inline.is_empty() {
        out.extend_from_slice(
            format!("Content-Type: multipart/related; boundary=\"{b_rel}\"; type=\"multipart/alternative\"\r\n\r\n--{b_rel}\r\n").as_bytes(),
        );
    }
    out.extend_from_slice(
        format!("Content-Type: multipart/alternative; boundary=\"{b_alt}\"\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(format!("--{b_alt}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    base64_lines(spec.text.as_bytes(), &mut out);
    out.extend_from_slice(format!("\r\n--{b_alt}\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    base64_lines(spec.html.as_bytes(), &mut out);
    out.extend_from_slice(format!("\r\n--{b_alt}--\r\n").as_bytes());
    if !inline.is_empty() {
        for a in &inline {
            out.extend_from_slice(
                format!(
                    "\r\n--{b_rel}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Description: {}\r\nContent-Disposition: inline; {}; size={}\r\nContent-ID: <{}>\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    a.content_type, a.name, a.name, filename_param(&a.name), a.size, a.content_id.clone().unwrap_or_default()
                )
                .as_bytes(),
            );
            base64_lines(&a.bytes(), &mut out);
        }
        out.extend_from_slice(format!("\r\n--{b_rel}--\r\n").as_bytes());
    }
    if !files.is_empty() {
        for a in &files {
            out.extend_from_slice(
                format!(
                    "\r\n--{b_mixed}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Disposition: attachment; {}; size={}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    a.content_type,
                    encode_word(&a.name),
                    filename_param(&a.name),
                    a.size
                )
                .as_bytes(),
            );
            base64_lines(&a.bytes(), &mut out);
        }
        out.extend_from_slice(format!("\r\n--{b_mixed}--\r\n").as_bytes());
    }
    out
}

/// A plain-text preview of at most 255 characters.
#[must_use]
pub fn preview(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect()
}

/// Bytes `[offset, offset+len)` of generated file content of total size `size`.
#[must_use]
pub fn file_bytes(seed: u64, text: bool, offset: u64, len: u64) -> Vec<u8> {
    let mut out = vec![0u8; usize::try_from(len).unwrap_or(0)];
    fill_file(seed, text, offset, &mut out);
    out
}

/// Fills `out` with generated content starting at `offset`.
pub fn fill_file(seed: u64, text: bool, offset: u64, out: &mut [u8]) {
    stream_bytes(seed, offset, out);
    if text {
        const ALPHABET: &[u8; 64] =
            b"abcdefghijklmnopqrstuvwxyz      ABCDEFGHIJ,.;\n0123456789 eeaaoo!";
        for b in out.iter_mut() {
            *b = ALPHABET[usize::from(*b & 63)];
        }
    }
}

/// A generated event.
#[derive(Clone, Debug)]
pub struct EventSpec {
    /// Subject.
    pub subject: String,
    /// Body (HTML).
    pub body: String,
    /// Start (Unix seconds, UTC).
    pub start: i64,
    /// End.
    pub end: i64,
    /// All-day.
    pub all_day: bool,
    /// Location.
    pub location: String,
    /// Weekly recurrence: (interval, occurrences).
    pub recurrence: Option<(u32, u32)>,
    /// Attendees.
    pub attendees: Vec<Person>,
    /// Has an attachment.
    pub attachment: Option<AttachmentSpec>,
}

/// The spec of a generated event.
#[must_use]
pub fn event_spec(seed: u64, domain: &str) -> EventSpec {
    let mut rng = Rng::new(mix(seed, 0xE5));
    let base = crate::tenant::BASE_TIME;
    let day = (base / 86_400) * 86_400;
    let start = day - 200 * 86_400
        + i64::try_from(rng.below(260)).unwrap_or(0) * 86_400
        + 3600 * (8 + i64::try_from(rng.below(9)).unwrap_or(0));
    let all_day = rng.chance(0.1);
    let (start, end) = if all_day {
        (
            (start / 86_400) * 86_400,
            (start / 86_400) * 86_400 + 86_400,
        )
    } else {
        (
            start,
            start + 1800 * (1 + i64::try_from(rng.below(4)).unwrap_or(0)),
        )
    };
    let recurrence = rng.chance(0.3).then(|| {
        (
            1 + u32::try_from(rng.below(2)).unwrap_or(0),
            4 + u32::try_from(rng.below(20)).unwrap_or(0),
        )
    });
    let attendees = (0..rng.below(3))
        .map(|_| person(&mut rng, domain))
        .collect();
    let attachment = rng.chance(0.1).then(|| AttachmentSpec {
        name: "Agenda.docx".into(),
        content_type: mime_type("Agenda.docx").into(),
        size: 1000 + rng.below(50_000),
        seed: rng.next_u64(),
        inline: false,
        content_id: None,
        data: None,
    });
    EventSpec {
        subject: (*rng.pick(&[
            "Weekly sync",
            "1:1",
            "Budgetplanung",
            "Kick-off 🚀",
            "Revue trimestrielle",
            "Lunch & learn",
            "顧客訪問",
        ]))
        .to_string(),
        body: format!(
            "<html><body><p>{}</p></body></html>",
            escape_html(words::SENTENCES[rng.index(words::SENTENCES.len())])
        ),
        start,
        end,
        all_day,
        location: (*rng.pick(&["Room 18/2111", "Teams", "Café Zürich", ""])).to_string(),
        recurrence,
        attendees,
        attachment,
    }
}

/// The JSON fields of a generated contact.
#[must_use]
pub fn contact_json(seed: u64, domain: &str) -> serde_json::Value {
    let mut rng = Rng::new(mix(seed, 0xC7));
    let p = person(&mut rng, domain);
    let mut parts = p.name.splitn(2, ' ');
    let given = parts.next().unwrap_or("").to_string();
    let surname = parts.next().unwrap_or("").to_string();
    let birthday = rng
        .chance(0.5)
        .then(|| iso(-200_000_000 + i64::try_from(rng.below(1_000_000_000)).unwrap_or(0)));
    serde_json::json!({
        "displayName": p.name,
        "givenName": given,
        "surname": surname,
        "emailAddresses": [{"name": p.name, "address": p.address}],
        "businessPhones": [format!("+1 425 555 {:04}", rng.below(10_000))],
        "mobilePhone": if rng.chance(0.5) { serde_json::Value::from(format!("+49 170 {:07}", rng.below(10_000_000))) } else { serde_json::Value::Null },
        "companyName": rng.pick(&["Fabrikam", "Contoso", "Northwind Traders", "Société Générale d'Exemple"]),
        "jobTitle": rng.pick(words::JOBS),
        "birthday": birthday,
        "personalNotes": rng.pick(words::SENTENCES),
    })
}

/// The text body of a generated channel message.
#[must_use]
pub fn channel_message_body(seed: u64) -> String {
    let mut rng = Rng::new(mix(seed, 0x7C));
    format!(
        "<p>{}</p>",
        escape_html(words::SENTENCES[rng.index(words::SENTENCES.len())])
    )
}
