//! OData helpers: opaque paging/delta tokens, `$select`, a small `$filter` evaluator and
//! collection pages with absolute `@odata.nextLink`s.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::http::{GraphRequest, GraphResponse};

/// State carried in `$skiptoken` / `$deltatoken` (opaque to clients).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Changes after this sequence number are reported (0 = initial enumeration).
    #[serde(rename = "s")]
    pub since: u64,
    /// Sequence number when the round started (becomes the next deltaLink's `since`).
    #[serde(rename = "e")]
    pub upto: u64,
    /// Position inside the round (last serial/offset emitted).
    #[serde(rename = "c")]
    pub pos: i64,
    /// Page size.
    #[serde(rename = "n")]
    pub page: usize,
    /// `$select` baked into the token.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Extra state (window of calendar views …).
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
    /// Last delta entry emitted in this round: (key, kind, tie-break).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub last: Option<(i64, u8, u64)>,
}

impl Cursor {
    /// Encodes the cursor.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor; `None` when it is not one of ours.
    #[must_use]
    pub fn decode(token: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim().trim_matches('\''))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Keeps only the selected properties (plus `id` and annotations).
pub fn apply_select(value: &mut Value, select: Option<&str>) {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return;
    };
    let wanted: Vec<String> = select.split(',').map(|s| s.trim().to_lowercase()).collect();
    if let Value::Object(map) = value {
        map.retain(|k, _| {
            k == "id"
                || k.starts_with('@')
                || k.contains("@odata")
                || wanted.iter().any(|w| *w == k.to_lowercase())
        });
    }
}

/// A parsed `$filter`: clauses joined by `and` or `or`.
#[derive(Debug)]
pub struct Filter {
    clauses: Vec<Clause>,
    any: bool,
}

#[derive(Debug)]
enum Clause {
    Eq(String, Value),
    Ne(String, Value),
    StartsWith(String, String),
    Always,
}

impl Filter {
    /// Parses the supported subset: `prop eq 'v'`, `prop ne null`, `startswith(prop,'v')`,
    /// `groupTypes/any(c:c eq 'Unified')`, joined by `and`/`or`.
    ///
    /// # Errors
    /// A 400 response naming the unsupported expression.
    pub fn parse(text: &str) -> Result<Self, GraphResponse> {
        let lower = text.to_lowercase();
        let any = lower.contains(" or ");
        let sep = if any { " or " } else { " and " };
        let mut clauses = Vec::new();
        let mut rest = text;
        loop {
            let pos = rest.to_lowercase().find(sep);
            let (part, next) = match pos {
                Some(p) => (&rest[..p], Some(&rest[p + sep.len()..])),
                None => (rest, None),
            };
            clauses.push(parse_clause(part.trim())?);
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
        Ok(Self { clauses, any })
    }

    /// Whether `item` matches.
    #[must_use]
    pub fn matches(&self, item: &Value) -> bool {
        let test = |c: &Clause| match c {
            Clause::Always => true,
            Clause::Eq(p, v) => {
                lookup(item, p).is_some_and(|x| eq_value(x, v))
                    || (v.is_null() && lookup(item, p).is_none())
            }
            Clause::Ne(p, v) => {
                !(lookup(item, p).is_some_and(|x| eq_value(x, v))
                    || (v.is_null() && lookup(item, p).is_none()))
            }
            Clause::StartsWith(p, s) => lookup(item, p)
                .and_then(Value::as_str)
                .is_some_and(|x| x.to_lowercase().starts_with(&s.to_lowercase())),
        };
        if self.any {
            self.clauses.iter().any(test)
        } else {
            self.clauses.iter().all(test)
        }
    }
}

fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = item;
    for seg in path.split('/') {
        cur = cur
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(seg))
            .map(|(_, v)| v)?;
    }
    Some(cur)
}

fn eq_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn literal(text: &str) -> Result<Value, GraphResponse> {
    let t = text.trim();
    if let Some(s) = t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Ok(Value::String(s.replace("''", "'")));
    }
    match t {
        "null" => Ok(Value::Null),
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ => t
            .parse::<f64>()
            .map(|n| json!(n))
            .map_err(|_| unsupported(text)),
    }
}

fn unsupported(text: &str) -> GraphResponse {
    GraphResponse::error(
        400,
        "Request_UnsupportedQuery",
        &format!("Unsupported or invalid query filter clause specified: '{text}'."),
    )
}

fn parse_clause(text: &str) -> Result<Clause, GraphResponse> {
    let lower = text.to_lowercase();
    if lower.contains("/any(") {
        return Ok(Clause::Always);
    }
    if let Some(inner) = lower
        .strip_prefix("startswith(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let start = "startswith(".len();
        let original = &text[start..start + inner.len()];
        let mut parts = original.splitn(2, ',');
        let prop = parts.next().unwrap_or("").trim().to_string();
        let value = literal(parts.next().unwrap_or(""))?;
        return match value {
            Value::String(s) => Ok(Clause::StartsWith(prop, s)),
            _ => Err(unsupported(text)),
        };
    }
    for (op, ne) in [(" eq ", false), (" ne ", true)] {
        if let Some(p) = lower.find(op) {
            let prop = text[..p].trim().to_string();
            let value = literal(&text[p + op.len()..])?;
            return Ok(if ne {
                Clause::Ne(prop, value)
            } else {
                Clause::Eq(prop, value)
            });
        }
    }
    Err(unsupported(text))
}

/// Builds one page of a plain (non-delta) collection with `$skiptoken` paging.
///
/// `base_url` is the absolute URL of the collection without query.
#[must_use]
pub fn page(
    req: &GraphRequest,
    base_url: &str,
    context: &str,
    items: Vec<Value>,
    default: usize,
    max: usize,
) -> GraphResponse {
    let (offset, size) = match req.param("skiptoken").and_then(Cursor::decode) {
        Some(c) => (usize::try_from(c.pos).unwrap_or(0), c.page),
        None => (0, req.page_size(default, max)),
    };
    let select = req.param("select").map(str::to_string);
    let total = items.len();
    let mut value: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    for v in &mut value {
        apply_select(v, select.as_deref());
    }
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context.to_string()));
    if offset == 0
        && req
            .param("count")
            .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body.insert("@odata.count".into(), Value::from(total));
    }
    if offset + size < total {
        let cursor = Cursor {
            pos: i64::try_from(offset + size).unwrap_or(0),
            page: size,
            ..Cursor::default()
        };
        let mut link = format!("{base_url}?");
        for (k, v) in &req.query {
            if !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken") {
                link.push_str(&format!("{}={}&", encode_query(k), encode_query(v)));
            }
        }
        link.push_str(&format!("$skiptoken={}", cursor.encode()));
        body.insert("@odata.nextLink".into(), Value::String(link));
    }
    body.insert("value".into(), Value::Array(value));
    GraphResponse::ok(Value::Object(body))
}

/// Encodes a query key or value.
#[must_use]
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$,:'/()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies `$filter` (when given) to a list of objects.
///
/// # Errors
/// A 400 response for unsupported filters.
pub fn filter_items(req: &GraphRequest, items: Vec<Value>) -> Result<Vec<Value>, GraphResponse> {
    match req.param("filter") {
        Some(f) => {
            let filter = Filter::parse(f)?;
            Ok(items.into_iter().filter(|v| filter.matches(v)).collect())
        }
        None => Ok(items),
    }
}

/// A delta page: `value`, then either `@odata.nextLink` (more of this round) or
/// `@odata.deltaLink` (round complete).
#[must_use]
pub fn delta_page(
    context: &str,
    value: Vec<Value>,
    next: Option<String>,
    delta: Option<String>,
) -> GraphResponse {
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context.to_string()));
    if let Some(n) = next {
        body.insert("@odata.nextLink".into(), Value::String(n));
    }
    if let Some(d) = delta {
        body.insert("@odata.deltaLink".into(), Value::String(d));
    }
    body.insert("value".into(), Value::Array(value));
    GraphResponse::ok(Value::Object(body))
}

/// A delta cursor from `$skiptoken` (inside a round), `$deltatoken` (next round; `latest`
/// means "from now") or a fresh round.
///
/// # Errors
/// 400 for tokens that are not ours.
pub fn delta_cursor(
    req: &GraphRequest,
    current: u64,
    default: usize,
    max: usize,
) -> Result<Cursor, GraphResponse> {
    let select = req.param("select").map(str::to_string);
    if let Some(tok) = req.param("deltatoken").or_else(|| req.param("token")) {
        if tok.eq_ignore_ascii_case("latest") {
            return Ok(Cursor {
                since: current,
                upto: current,
                pos: -1,
                page: req.page_size(default, max),
                select,
                extra: None,
                last: Some((i64::MAX, u8::MAX, u64::MAX)),
            });
        }
        let c = Cursor::decode(tok).ok_or_else(|| {
            GraphResponse::error(400, "BadRequest", "The delta token is malformed.")
        })?;
        // A deltaLink cursor: start a new round from where the last one ended.
        return Ok(Cursor {
            since: c.upto,
            upto: current,
            pos: -1,
            page: req.prefer_page().unwrap_or(c.page).clamp(1, max),
            select: c.select,
            extra: c.extra,
            last: None,
        });
    }
    if let Some(tok) = req.param("skiptoken") {
        return Cursor::decode(tok).ok_or_else(|| {
            GraphResponse::error(400, "BadRequest", "The skip token is malformed.")
        });
    }
    Ok(Cursor {
        since: 0,
        upto: current,
        pos: -1,
        page: req.page_size(default, max),
        select,
        extra: None,
        last: None,
    })
}

/// A lazily rendered delta entry: (ordering key, changed sequence, render).
pub type LiveEntry<'a> = (i64, u64, Box<dyn Fn() -> Value + 'a>);

/// Runs one page of a delta round over live entries and removals.
///
/// Entries changed after `cursor.since` are reported with their current state; removals after
/// `cursor.since` as given. Expired logs answer 410 with `expired_code` and a `Location` that
/// restarts the round.
#[must_use]
pub fn run_delta(
    url: &str,
    context: &str,
    mut cursor: Cursor,
    live: Vec<LiveEntry<'_>>,
    removed: Result<Vec<(i64, Value)>, crate::tenant::Expired>,
    expired_code: &str,
) -> GraphResponse {
    let Ok(removed) = removed else {
        return GraphResponse::error(
            410,
            expired_code,
            "The delta token has expired; restart the delta query.",
        )
        .with_header("Location", url.to_string());
    };
    // Order: key, then removals before the live entry of the same key, then log order. The
    // cursor remembers the last entry emitted, so entries changing mid-round shift nothing.
    let mut keys: Vec<(i64, u8, u64, usize)> = live
        .iter()
        .enumerate()
        .filter(|(_, (_, seq, _))| *seq > cursor.since)
        .map(|(i, (k, _, _))| (*k, 1, 0, i))
        .collect();
    if cursor.since > 0 {
        keys.extend(
            removed
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (*k, 0, i as u64, i)),
        );
    }
    keys.sort_unstable();
    let after = |e: &&(i64, u8, u64, usize)| cursor.last.is_none_or(|l| (e.0, e.1, e.2) > l);
    let remaining: Vec<&(i64, u8, u64, usize)> = keys.iter().filter(after).collect();
    let slice = &remaining[..remaining.len().min(cursor.page)];
    let more = remaining.len() > cursor.page;
    let value: Vec<Value> = slice
        .iter()
        .map(|(_, kind, _, i)| {
            if *kind == 1 {
                let mut v = (live[*i].2)();
                apply_select(&mut v, cursor.select.as_deref());
                v
            } else {
                removed[*i].1.clone()
            }
        })
        .collect();
    if more {
        cursor.last = slice.last().map(|e| (e.0, e.1, e.2));
        delta_page(
            context,
            value,
            Some(format!("{url}?$skiptoken={}", cursor.encode())),
            None,
        )
    } else {
        let d = Cursor {
            since: cursor.upto,
            upto: cursor.upto,
            pos: -1,
            page: cursor.page,
            select: cursor.select.clone(),
            extra: cursor.extra.clone(),
            last: None,
        };
        delta_page(
            context,
            value,
            None,
            Some(format!("{url}?$deltatoken={}", d.encode())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = Filter::parse("startswith(displayName,'Ad') and accountEnabled eq true").unwrap();
        assert!(f.matches(&json!({"displayName": "Adele", "accountEnabled": true})));
        assert!(!f.matches(&json!({"displayName": "Bob", "accountEnabled": true})));
        let f = Filter::parse("mail ne null").unwrap();
        assert!(f.matches(&json!({"mail": "a@b"})));
        assert!(!f.matches(&json!({"mail": null})));
        assert!(Filter::parse("contains(x,'y')").is_err());
    }

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            since: 3,
            upto: 9,
            pos: 12,
            page: 5,
            select: Some("subject".into()),
            extra: None,
            last: Some((4, 1, 0)),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("garbage!"), None);
    }
}
