//! Names from Microsoft 365 made safe as archive paths on every target filesystem.
//!
//! One component at a time: Unicode NFC, no separators, no control characters, none of the
//! characters Windows refuses (`<>:"/\|?*`), no reserved Windows device name (`CON`, `PRN`, `AUX`,
//! `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, with any extension), no trailing dots or spaces, never
//! empty, `.` or `..`, and at most [`MAX_NAME_BYTES`] bytes of UTF-8 with the extension kept.
//! [`Siblings`] then gives names that collide case-insensitively (as on Windows and macOS)
//! ` (2)`, ` (3)` … suffixes before the extension.

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

/// The longest name, in bytes of UTF-8, that every common filesystem accepts.
pub const MAX_NAME_BYTES: usize = 255;

/// What a refused character becomes.
const REPLACEMENT: char = '_';

/// Extensions longer than this are treated as part of the stem when shortening.
const MAX_EXTENSION_BYTES: usize = 16;

const RESERVED: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

fn is_refused(c: char) -> bool {
    c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*')
}

/// Whether `stem` (the part before the first dot) is a device name Windows reserves.
fn is_reserved_stem(stem: &str) -> bool {
    let upper = stem.trim_end_matches(' ').to_ascii_uppercase();
    if RESERVED.contains(&upper.as_str()) {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest: Vec<char> = chars.collect();
    (prefix == "COM" || prefix == "LPT")
        && rest.len() == 1
        && matches!(rest[0], '1'..='9' | '¹' | '²' | '³')
}

fn trim_trailing(s: &mut String) {
    let keep = s.trim_end_matches(['.', ' ']).len();
    s.truncate(keep);
}

/// Splits `name` into stem and extension (with its dot) when it has a short one.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= MAX_EXTENSION_BYTES && name.len() - i > 1 => {
            name.split_at(i)
        }
        _ => (name, ""),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens `name` to `max` bytes, keeping its extension.
fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = split_extension(name);
    let (stem, ext) = if ext.len() >= max {
        (name, "")
    } else {
        (stem, ext)
    };
    let mut out = prefix_within(stem, max - ext.len()).to_owned();
    trim_trailing(&mut out);
    if out.is_empty() {
        out.push(REPLACEMENT);
    }
    out.push_str(ext);
    out
}

/// Makes one name safe as a path component on Windows, macOS and Linux.
#[must_use]
pub fn sanitize_component(name: &str) -> String {
    let mut out: String = name
        .nfc()
        .map(|c| if is_refused(c) { REPLACEMENT } else { c })
        .collect();
    trim_trailing(&mut out);
    let trimmed_start = out.trim_start_matches(' ').len();
    if trimmed_start != out.len() {
        out = out.trim_start_matches(' ').to_owned();
    }
    if out.is_empty() {
        out.push(REPLACEMENT);
    }
    let stem = out.split('.').next().unwrap_or_default();
    if is_reserved_stem(stem) {
        out.insert(0, REPLACEMENT);
    }
    let mut out = shorten(&out, MAX_NAME_BYTES);
    trim_trailing(&mut out);
    if out.is_empty() {
        out.push(REPLACEMENT);
    }
    out
}

/// `name` with ` (n)` before its extension, within [`MAX_NAME_BYTES`].
fn numbered(name: &str, n: u64) -> String {
    let suffix = format!(" ({n})");
    let (stem, ext) = split_extension(name);
    let room = MAX_NAME_BYTES.saturating_sub(suffix.len() + ext.len());
    let mut base = prefix_within(stem, room).to_owned();
    trim_trailing(&mut base);
    format!("{base}{suffix}{ext}")
}

fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The names handed out in one directory, so that siblings never collide, even on filesystems
/// that ignore case.
#[derive(Debug, Default)]
pub struct Siblings {
    taken: HashSet<String>,
    dirs: HashMap<String, String>,
}

impl Siblings {
    /// A fresh, empty directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A unique safe name for a file called `original`.
    pub fn file(&mut self, original: &str) -> String {
        let safe = sanitize_component(original);
        self.claim(safe)
    }

    /// A safe name for a directory called `original`: the same name every time the same
    /// directory is asked for, unique among its siblings otherwise.
    pub fn dir(&mut self, original: &str) -> String {
        if let Some(name) = self.dirs.get(original) {
            return name.clone();
        }
        let safe = sanitize_component(original);
        let name = self.claim(safe);
        self.dirs.insert(original.to_owned(), name.clone());
        name
    }

    fn claim(&mut self, safe: String) -> String {
        if self.taken.insert(fold(&safe)) {
            return safe;
        }
        let mut n = 2;
        loop {
            let candidate = numbered(&safe, n);
            if self.taken.insert(fold(&candidate)) {
                return candidate;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_become_plain_components() {
        assert_eq!(sanitize_component("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitize_component(".."), "_");
        assert_eq!(sanitize_component("."), "_");
        assert_eq!(sanitize_component(""), "_");
        assert_eq!(sanitize_component("   "), "_");
        assert_eq!(sanitize_component("C:\\x"), "C__x");
        assert_eq!(sanitize_component("/abs"), "_abs");
        assert_eq!(sanitize_component("a<b>c:d\"e|f?g*h"), "a_b_c_d_e_f_g_h");
        assert_eq!(sanitize_component("tab\there\n"), "tab_here_");
        assert_eq!(sanitize_component("report. . ."), "report");
        assert_eq!(sanitize_component("  lead"), "lead");
        assert_eq!(sanitize_component("🎉 party"), "🎉 party");
    }

    #[test]
    fn reserved_windows_names_are_changed_with_any_extension() {
        for n in [
            "CON",
            "con.txt",
            "Prn.tar.gz",
            "AUX",
            "nul.",
            "COM1",
            "lpt9.log",
            "COM²",
        ] {
            let s = sanitize_component(n);
            assert!(s.starts_with('_'), "{n} -> {s}");
        }
        for n in ["CONSOLE", "COM10", "LPT0", "icon.png", "com"] {
            assert_eq!(sanitize_component(n), n);
        }
        assert_eq!(sanitize_component("CON.txt"), "_CON.txt");
    }

    #[test]
    fn unicode_is_normalised_to_nfc() {
        let decomposed = "Cafe\u{301}.txt";
        assert_eq!(sanitize_component(decomposed), "Caf\u{e9}.txt");
    }

    #[test]
    fn long_names_are_shortened_keeping_the_extension() {
        let long = format!("{}.docx", "é".repeat(400));
        let s = sanitize_component(&long);
        assert!(s.len() <= MAX_NAME_BYTES, "{}", s.len());
        assert!(s.ends_with("é.docx"), "{s}");
        let no_ext = "x".repeat(1000);
        assert_eq!(sanitize_component(&no_ext).len(), MAX_NAME_BYTES);
        let long_ext = format!("a.{}", "b".repeat(300));
        assert!(sanitize_component(&long_ext).len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn siblings_get_numbered_case_insensitively() {
        let mut s = Siblings::new();
        assert_eq!(s.file("Report.docx"), "Report.docx");
        assert_eq!(s.file("report.DOCX"), "report (2).DOCX");
        assert_eq!(s.file("Report.docx"), "Report (3).docx");
        assert_eq!(s.file("a:b"), "a_b");
        assert_eq!(s.file("a?b"), "a_b (2)");
        assert_eq!(s.dir("Inbox"), "Inbox");
        assert_eq!(s.dir("Inbox"), "Inbox");
        assert_eq!(s.dir("INBOX"), "INBOX (2)");
        let long = "y".repeat(300);
        let a = s.file(&long);
        let b = s.file(&long);
        assert_ne!(a, b);
        assert!(b.len() <= MAX_NAME_BYTES && b.ends_with(" (2)"), "{b}");
        assert_eq!(s.file("Ελλάδα"), "Ελλάδα");
        assert_eq!(s.file("ΕΛΛΆΔΑ"), "ΕΛΛΆΔΑ (2)");
    }

    proptest! {
        #[test]
        fn any_name_is_a_safe_component(name in any::<String>(), n in 1u64..2000) {
            let s = sanitize_component(&name);
            prop_assert!(!s.is_empty());
            prop_assert!(s != "." && s != "..");
            prop_assert!(!s.contains(['/', '\\', '\0', ':']));
            prop_assert!(!s.chars().any(is_refused));
            prop_assert!(s.len() <= MAX_NAME_BYTES);
            prop_assert!(!s.ends_with(['.', ' ']));
            let stem = s.split('.').next().unwrap_or_default();
            prop_assert!(!is_reserved_stem(stem));
            let m = numbered(&s, n);
            prop_assert!(m.len() <= MAX_NAME_BYTES);
            prop_assert!(!m.contains(['/', '\\']) && m != "." && m != "..");
        }

        #[test]
        fn dotted_and_slashed_names_stay_components(parts in proptest::collection::vec("(\\.|\\.\\.|/|\\\\|[a-zA-Z ]{0,3}|C:)", 0..8)) {
            let name: String = parts.concat();
            let s = sanitize_component(&name);
            prop_assert!(!s.is_empty() && s != "." && s != "..");
            prop_assert!(!s.contains(['/', '\\']));
        }
    }
}
