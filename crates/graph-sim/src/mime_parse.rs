//! A small MIME reader for messages created from MIME: headers (folded, RFC 2047 encoded
//! words), nested multiparts, base64 and quoted-printable parts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One leaf part.
#[derive(Clone, Debug)]
pub struct Part {
    /// Lower-cased content type without parameters.
    pub content_type: String,
    /// File name, when it has one.
    pub name: Option<String>,
    /// `Content-Disposition: inline` or a `Content-ID` with a name.
    pub inline: bool,
    /// Content-ID without brackets.
    pub content_id: Option<String>,
    /// Decoded bytes.
    pub data: Vec<u8>,
    /// Is an attachment (has a file name or an attachment disposition).
    pub attachment: bool,
}

/// A parsed message.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Top-level headers (name lower-cased, value decoded).
    pub headers: Vec<(String, String)>,
    /// Leaf parts in order.
    pub parts: Vec<Part>,
}

impl Parsed {
    /// A header value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The plain text body.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        self.parts
            .iter()
            .find(|p| !p.attachment && p.content_type == "text/plain")
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    }

    /// The HTML body.
    #[must_use]
    pub fn html(&self) -> Option<String> {
        self.parts
            .iter()
            .find(|p| !p.attachment && p.content_type == "text/html")
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    }

    /// Attachments (inline ones included).
    #[must_use]
    pub fn attachments(&self) -> Vec<&Part> {
        self.parts.iter().filter(|p| p.attachment).collect()
    }
}

fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in data.windows(4).enumerate() {
        if w == b"\r\n\r\n" {
            return (&data[..i], &data[i + 4..]);
        }
    }
    for (i, w) in data.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&data[..i], &data[i + 2..]);
        }
    }
    (data, &[])
}

fn headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, decode_words(&v)))
        .collect()
}

/// Decodes RFC 2047 encoded words (`=?UTF-8?B?…?=`, `=?utf-8?Q?…?=`).
#[must_use]
pub fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("=?") {
        let Some(end_rel) = rest[start + 2..].find("?=") else {
            break;
        };
        let word = &rest[start + 2..start + 2 + end_rel];
        let mut parts = word.splitn(3, '?');
        let (_charset, enc, text) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let decoded = match enc.to_ascii_uppercase().as_str() {
            "B" => STANDARD.decode(text).ok(),
            "Q" => Some(quoted_printable(text.replace('_', " ").as_bytes())),
            _ => None,
        };
        let Some(bytes) = decoded else { break };
        let before = &rest[..start];
        if !before.trim().is_empty() || out.is_empty() {
            out.push_str(before);
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        rest = &rest[start + 2 + end_rel + 2..];
    }
    out.push_str(rest);
    out
}

fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'=' {
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if data.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(v) = data
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// A parameter of a structured header (`boundary`, `name`, `filename`, `filename*`).
#[must_use]
pub fn param(value: &str, name: &str) -> Option<String> {
    for piece in value.split(';').skip(1) {
        let (k, v) = piece.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().trim_matches('"');
        if k == name {
            return Some(v.to_string());
        }
        if k == format!("{name}*") {
            let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
            return Some(crate::http::percent_decode(encoded));
        }
    }
    None
}

fn walk(head: &[(String, String)], body: &[u8], out: &mut Vec<Part>, depth: usize) {
    let get = |n: &str| head.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let ctype_full = get("content-type").unwrap_or("text/plain");
    let ctype = ctype_full
        .split(';')
        .next()
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/") && depth < 10 {
        let Some(boundary) = param(ctype_full, "boundary") else {
            return;
        };
        let delim = format!("--{boundary}");
        let text = body;
        let mut pieces = Vec::new();
        let mut pos = 0;
        let mut starts = Vec::new();
        while let Some(i) = find(&text[pos..], delim.as_bytes()) {
            starts.push(pos + i);
            pos += i + delim.len();
        }
        for w in starts.windows(2) {
            let mut s = w[0] + delim.len();
            if text.get(s..s + 2) == Some(b"--") {
                break;
            }
            while s < w[1] && (text[s] == b'\r' || text[s] == b'\n') {
                s += 1;
                if text.get(s - 1) == Some(&b'\n') {
                    break;
                }
            }
            let mut e = w[1];
            if e >= 2 && &text[e - 2..e] == b"\r\n" {
                e -= 2;
            } else if e >= 1 && text[e - 1] == b'\n' {
                e -= 1;
            }
            if s <= e {
                pieces.push(&text[s..e]);
            }
        }
        for p in pieces {
            let (h, b) = split_head(p);
            walk(&headers(h), b, out, depth + 1);
        }
        return;
    }
    let encoding = get("content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let data = match encoding.as_str() {
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            STANDARD.decode(clean).unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_vec(),
    };
    let disposition = get("content-disposition").unwrap_or("");
    let name = param(disposition, "filename").or_else(|| param(ctype_full, "name"));
    let content_id = get("content-id").map(|c| c.trim_matches(['<', '>', ' ']).to_string());
    let attachment = name.is_some() || disposition.to_ascii_lowercase().starts_with("attachment");
    let inline = disposition.to_ascii_lowercase().starts_with("inline")
        || (content_id.is_some() && !disposition.to_ascii_lowercase().starts_with("attachment"));
    out.push(Part {
        content_type: ctype,
        name,
        inline: attachment && inline,
        content_id,
        data,
        attachment,
    });
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a message; `None` when it has no header block at all.
#[must_use]
pub fn parse(data: &[u8]) -> Option<Parsed> {
    let (h, b) = split_head(data);
    let head = headers(h);
    if head.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    walk(&head, b, &mut parts, 0);
    Some(Parsed {
        headers: head,
        parts,
    })
}

/// Splits `"Name" <addr>` lists into (name, address) pairs.
#[must_use]
pub fn addresses(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = false;
    let mut cur = String::new();
    let mut items = Vec::new();
    for c in value.chars() {
        match c {
            '"' => {
                depth = !depth;
                cur.push(c);
            }
            ',' if !depth => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let (Some(l), Some(r)) = (item.rfind('<'), item.rfind('>')) {
            let name = item[..l].trim().trim_matches('"').to_string();
            out.push((name, item[l + 1..r].trim().to_string()));
        } else {
            out.push((String::new(), item.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generated_mime() {
        let spec = crate::content::message_spec(
            1,
            "contoso.com",
            &crate::content::Person {
                name: "Zoë Müller".into(),
                address: "zoe@contoso.com".into(),
            },
            99,
            false,
        );
        let raw = crate::content::mime(&spec, 1_795_530_600);
        let p = parse(&raw).unwrap();
        assert_eq!(p.header("subject"), Some(spec.subject.as_str()));
        assert_eq!(p.text().unwrap(), spec.text);
        assert_eq!(p.attachments().len(), spec.attachments.len());
        for (a, s) in p.attachments().iter().zip(&spec.attachments) {
            assert_eq!(a.data, s.bytes());
            assert_eq!(a.name.as_deref(), Some(s.name.as_str()));
        }
        assert_eq!(decode_words("=?UTF-8?B?w6k=?= x"), "é x");
    }
}
