//! Paths in the backup tree, as the command line and the API print and accept them.
//!
//! A path is `/`-separated segments: `/users/<upn>/mail/<folder>/…`. Inside a segment, a `/` or `%`
//! that belongs to a name is written `%2F` / `%25`, so every printed path is accepted as is.

/// Encodes one name as a path segment.
#[must_use]
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes one path segment back into the name.
///
/// # Errors
/// A `%` not followed by `25` or `2F` is an error naming the segment.
pub fn decode_segment(seg: &str) -> Result<String, String> {
    let mut out = String::with_capacity(seg.len());
    let mut rest = seg;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).unwrap_or("");
        match code.to_ascii_uppercase().as_str() {
            "25" => out.push('%'),
            "2F" => out.push('/'),
            _ => {
                return Err(format!(
                    "bad escape in path segment '{seg}' (use %25 for '%' and %2F for '/')"
                ));
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a path into decoded names.
///
/// # Errors
/// As [`decode_segment`].
pub fn split(path: &str) -> Result<Vec<String>, String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect()
}

/// Joins names into a path.
#[must_use]
pub fn join<S: AsRef<str>>(names: &[S]) -> String {
    let mut out = String::new();
    for n in names {
        out.push('/');
        out.push_str(&encode_segment(n.as_ref()));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// A display name for an item that must be unique among its siblings: the title, cleaned, and a
/// short stable tag derived from the Graph id.
#[must_use]
pub fn item_name(title: &str, graph_id: &str) -> String {
    let clean: String = title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut clean: String = clean.chars().take(120).collect();
    if clean.is_empty() {
        clean.push_str("(no subject)");
    }
    let tag = blake3::hash(graph_id.as_bytes()).to_hex();
    format!("{clean} [{}]", &tag[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_names_with_slashes_and_percents() {
        for name in ["a/b", "100%", "%2F", "plain", "..", "ünïcødé 🎉", ""] {
            assert_eq!(decode_segment(&encode_segment(name)).unwrap(), name);
        }
        let path = join(&["users", "ann@contoso.com", "mail", "Q1/Q2 50%"]);
        assert_eq!(path, "/users/ann@contoso.com/mail/Q1%2FQ2 50%25");
        assert_eq!(split(&path).unwrap()[3], "Q1/Q2 50%");
        assert!(decode_segment("50%").is_err());
        assert!(decode_segment("%zz").is_err());
    }

    #[test]
    fn item_names_are_clean_short_and_distinct() {
        let a = item_name("Re:\tHello\r\n world", "AAMk1");
        let b = item_name("Re:\tHello\r\n world", "AAMk2");
        assert!(a.starts_with("Re: Hello world ["), "{a}");
        assert_ne!(a, b);
        assert!(item_name("", "x").starts_with("(no subject)"));
        assert!(item_name(&"x".repeat(1000), "y").chars().count() < 140);
    }
}
