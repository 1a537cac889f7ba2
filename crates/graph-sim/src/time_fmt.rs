//! Date formats as Graph and MIME print them.

use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

/// `2026-11-24T14:30:00Z` (whole seconds, as Graph prints most dates).
#[must_use]
pub fn iso(secs: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-24T14:30:00.123Z` (milliseconds, as Teams and upload sessions print them).
#[must_use]
pub fn iso_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let base = iso(secs);
    format!("{}.{:03}Z", &base[..base.len() - 1], ms.rem_euclid(1000))
}

/// `2026-11-24T14:30:00.0000000` (event start/end, without zone: the zone is a sibling field).
#[must_use]
pub fn event_time(secs: i64) -> String {
    let base = iso(secs);
    format!("{}.0000000", &base[..base.len() - 1])
}

/// RFC 2822 date for MIME headers.
#[must_use]
pub fn rfc2822(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// Parses an ISO 8601 / RFC 3339 date (with or without zone; no zone means UTC).
#[must_use]
pub fn parse_iso(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(v.unix_timestamp());
    }
    let with_z = format!("{}Z", t.trim_end_matches('Z'));
    if let Ok(v) = OffsetDateTime::parse(&with_z, &Rfc3339) {
        return Some(v.unix_timestamp());
    }
    // Dates only.
    let full = format!("{t}T00:00:00Z");
    OffsetDateTime::parse(&full, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Parses an RFC 2822 date (MIME `Date:` header).
#[must_use]
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc2822)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Current Unix time in seconds.
#[must_use]
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Current Unix time in milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso(1_795_530_600), "2026-11-24T14:30:00Z");
        assert_eq!(iso_ms(1_795_530_600_123), "2026-11-24T14:30:00.123Z");
        assert_eq!(parse_iso("2026-11-24T14:30:00Z"), Some(1_795_530_600));
        assert_eq!(
            parse_iso("2026-11-24T14:30:00.0000000"),
            Some(1_795_530_600)
        );
        assert_eq!(parse_rfc2822(&rfc2822(1_795_530_600)), Some(1_795_530_600));
    }
}
