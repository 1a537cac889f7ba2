//! The full-text index and the text behind its snippets.
//!
//! The FTS5 table `search` is contentless (`content=''`, `contentless_delete=1`): it holds only
//! the index, not a second copy of every indexed subject and body. The text itself is kept once,
//! zstd-compressed, in `search_text` (rowid = `node_versions.id`), and read back only for the
//! hits shown, to cut their snippets. A trigger removes both when a version row goes (a version
//! is in `search` exactly when it is in `search_text`).

use rusqlite::{Connection, params};

use crate::error::{DbContext, Result};
use crate::model::SearchText;

/// Separates the five fields inside a packed text.
const SEP: char = '\u{1f}';
/// Packed text: first byte 0 = the fields as they are, 1 = zstd-compressed.
const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Shorter texts are not worth compressing.
const COMPRESS_FROM: usize = 96;
/// Words in a snippet.
const SNIPPET_WORDS: usize = 12;

/// Packs the fields of `s` (subject, sender, recipients, body, path) into one blob.
pub(crate) fn pack(s: &SearchText) -> Vec<u8> {
    let joined = [
        s.subject.as_str(),
        &s.sender,
        &s.recipients,
        &s.body,
        &s.path,
    ]
    .join(&SEP.to_string());
    if joined.len() >= COMPRESS_FROM
        && let Ok(z) = zstd::bulk::compress(joined.as_bytes(), 3)
        && z.len() + 1 < joined.len()
    {
        let mut out = Vec::with_capacity(z.len() + 1);
        out.push(ZSTD);
        out.extend_from_slice(&z);
        return out;
    }
    let mut out = Vec::with_capacity(joined.len() + 1);
    out.push(RAW);
    out.extend_from_slice(joined.as_bytes());
    out
}

/// The fields packed by [`pack`] (empty when the blob is damaged: a snippet is cosmetic).
pub(crate) fn unpack(packed: &[u8]) -> Vec<String> {
    let text = match packed.split_first() {
        Some((&RAW, rest)) => String::from_utf8_lossy(rest).into_owned(),
        Some((&ZSTD, rest)) => {
            // Bounded: packed texts come from our own writer, but never trust a length blindly.
            match zstd::bulk::decompress(rest, 64 << 20) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            }
        }
        _ => String::new(),
    };
    text.split(SEP).map(str::to_string).collect()
}

/// Indexes version `id` (not indexed yet) for search.
pub(crate) fn index(conn: &Connection, id: i64, s: &SearchText) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO search(rowid, subject, sender, recipients, body, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            s.subject,
            s.sender,
            s.recipients,
            s.body,
            s.path
        ])
    })
    .ctx("indexing a version for search")?;
    conn.prepare_cached("INSERT INTO search_text(id, packed) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![id, pack(s)]))
        .ctx("keeping a version's search text")?;
    Ok(())
}

/// Removes version `id` from the index (if it is there: a version is in `search` exactly
/// when it is in `search_text`, and the contentless index is only told about rows it has).
pub(crate) fn unindex(conn: &Connection, id: i64) -> Result<()> {
    let had = conn
        .prepare_cached("DELETE FROM search_text WHERE id = ?1")
        .and_then(|mut st| st.execute([id]))
        .ctx("updating the search index")?;
    if had > 0 {
        conn.prepare_cached("DELETE FROM search WHERE rowid = ?1")
            .and_then(|mut st| st.execute([id]))
            .ctx("updating the search index")?;
    }
    Ok(())
}

/// Migration 3: moves the index of catalog version 2 (an FTS5 table with its own copy of the
/// text) into a contentless one and the text into `search_text`, compressed.
pub(crate) fn migrate_contentless(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "ALTER TABLE search RENAME TO search_v2;
         CREATE VIRTUAL TABLE search USING fts5(
             subject, sender, recipients, body, path,
             content = '', contentless_delete = 1,
             tokenize = 'unicode61 remove_diacritics 2'
         );
         CREATE TABLE search_text(id INTEGER PRIMARY KEY, packed BLOB NOT NULL);
         CREATE TRIGGER node_versions_unindex AFTER DELETE ON node_versions
         WHEN EXISTS (SELECT 1 FROM search_text WHERE id = old.id) BEGIN
             DELETE FROM search WHERE rowid = old.id;
             DELETE FROM search_text WHERE id = old.id;
         END;",
    )
    .ctx("creating the contentless search index")?;
    {
        let mut st = conn
            .prepare("SELECT rowid, subject, sender, recipients, body, path FROM search_v2")
            .ctx("reading the old search index")?;
        let mut rows = st.query([]).ctx("reading the old search index")?;
        while let Some(r) = rows.next().ctx("reading the old search index")? {
            let text = |i: usize| -> rusqlite::Result<String> {
                Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
            };
            let id: i64 = r.get(0).ctx("reading the old search index")?;
            let s = SearchText {
                subject: text(1).ctx("reading the old search index")?,
                sender: text(2).ctx("reading the old search index")?,
                recipients: text(3).ctx("reading the old search index")?,
                body: text(4).ctx("reading the old search index")?,
                path: text(5).ctx("reading the old search index")?,
            };
            index(conn, id, &s)?;
        }
    }
    conn.execute_batch("DROP TABLE search_v2")
        .ctx("dropping the old search index")?;
    Ok(())
}

/// Lower-cased words of an FTS5 query (keywords, column names and syntax left out); a
/// trailing `*` marks a prefix.
fn query_terms(query: &str) -> Vec<(String, bool)> {
    let mut terms = Vec::new();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_alphanumeric() {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let column = j < chars.len() && chars[j] == ':';
        let prefix = i < chars.len() && chars[i] == '*'
            || i + 1 < chars.len() && chars[i] == '"' && chars[i + 1] == '*';
        if column || matches!(word.as_str(), "AND" | "OR" | "NOT" | "NEAR") {
            continue;
        }
        terms.push((word.to_lowercase(), prefix));
    }
    terms
}

fn matches(word: &str, terms: &[(String, bool)]) -> bool {
    let w = word.to_lowercase();
    terms
        .iter()
        .any(|(t, prefix)| if *prefix { w.starts_with(t) } else { w == *t })
}

/// Byte range of a word in a field.
type Span = (usize, usize);

/// A snippet of the field of `packed` that best matches `query`: about a dozen words around the
/// first match, matched words in `[…]`, `…` where text was cut.
pub(crate) fn snippet(query: &str, packed: &[u8]) -> String {
    let terms = query_terms(query);
    let fields = unpack(packed);
    // Word spans (start, end) of each field, and how many of them match.
    let mut best: Option<(usize, Vec<Span>, usize)> = None;
    for (f, text) in fields.iter().enumerate() {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, text.len()));
        }
        let hits = spans
            .iter()
            .filter(|(s, e)| matches(&text[*s..*e], &terms))
            .count();
        if best.as_ref().is_none_or(|b| hits > b.2) {
            best = Some((f, spans, hits));
        }
    }
    let Some((f, spans, _)) = best else {
        return String::new();
    };
    let text = &fields[f];
    if spans.is_empty() {
        return String::new();
    }
    let first = spans
        .iter()
        .position(|(s, e)| matches(&text[*s..*e], &terms))
        .unwrap_or(0);
    let from = first.saturating_sub(SNIPPET_WORDS / 4);
    let to = (from + SNIPPET_WORDS).min(spans.len());
    let from = to.saturating_sub(SNIPPET_WORDS);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut pos = if from == 0 { 0 } else { spans[from].0 };
    for &(s, e) in &spans[from..to] {
        out.push_str(&text[pos..s]);
        let w = &text[s..e];
        if matches(w, &terms) {
            out.push('[');
            out.push_str(w);
            out.push(']');
        } else {
            out.push_str(w);
        }
        pos = e;
    }
    if to < spans.len() {
        out.push('…');
    } else {
        out.push_str(&text[pos..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> SearchText {
        SearchText {
            subject: "Quarterly report".into(),
            sender: "Ann Lee <ann@example.com>".into(),
            recipients: "bob@example.com".into(),
            body: body.into(),
            path: "Inbox/Quarterly report".into(),
        }
    }

    #[test]
    fn pack_round_trips_short_and_long_texts() {
        for body in ["hi", &"the budget review is attached ".repeat(200)] {
            let s = text(body);
            let p = pack(&s);
            let f = unpack(&p);
            assert_eq!(f, [s.subject, s.sender, s.recipients, s.body, s.path]);
        }
        let long = pack(&text(&"the budget review is attached ".repeat(200)));
        assert_eq!(long[0], ZSTD);
        assert!(long.len() < 600);
        assert!(unpack(&[7, 1, 2]).iter().all(String::is_empty));
    }

    #[test]
    fn snippets_mark_matches_in_the_best_field() {
        let body = "Hello team, please find the numbers for the budget of next year below, \
                    with the staffing plan and the travel costs for the spring offsites";
        let p = pack(&text(body));
        let s = snippet("\"budget\" AND \"staff\"*", &p);
        assert!(s.contains("[budget]"), "{s}");
        assert!(s.contains("[staffing]"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        let s = snippet("sender : \"ann\"", &p);
        assert_eq!(s, "[Ann] Lee <ann@example.com>".replace("ann@", "[ann]@"));
        assert_eq!(snippet("quarterly", &p), "[Quarterly] report");
    }
}
