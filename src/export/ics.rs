//! Graph events as iCalendar (RFC 5545) files, and the content-line helpers vCards share.
//!
//! Times in UTC are written as UTC (`…Z`); others keep their wall time with a `TZID` naming the
//! IANA zone (Windows zone ids and display names Graph uses are mapped) and a `VTIMEZONE` for it
//! from the bundled time zone database (see the `tz` module; a name neither the Windows table nor
//! the database knows is kept as given, without `VTIMEZONE`). A series'
//! cancelled occurrences (`cancelledOccurrences`) become `EXDATE`s, and its changed occurrences
//! (`exceptionOccurrences`) separate `VEVENT`s with the series' `UID` and a `RECURRENCE-ID`.

use std::fmt::Write as _;

use serde_json::Value;

use super::{html, tz};

/// Escapes a TEXT value (RFC 5545 3.3.11 / RFC 6350 3.4).
#[must_use]
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value: quoted when it holds `:`, `;` or `,`; double quotes and controls dropped.
#[must_use]
pub fn param(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    if clean.contains([':', ';', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Appends one content line, folded at 75 octets (on character boundaries) with CRLF + space.
pub fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)?.as_str().filter(|s| !s.is_empty())
}

/// `2026-11-24T14:30:00.0000000` → `20261124T143000` (or `20261124` for `date_only`).
fn compact(dt: &str, date_only: bool) -> Result<String, String> {
    let digits: String = dt.chars().take(19).filter(char::is_ascii_digit).collect();
    if digits.len() < 8 || (!date_only && digits.len() < 14) {
        return Err(format!("bad date-time {dt:?}"));
    }
    Ok(if date_only {
        digits[..8].to_owned()
    } else {
        format!("{}T{}", &digits[..8], &digits[8..14])
    })
}

/// Zones used by the events of one calendar file (each gets one `VTIMEZONE`).
type Zones = Vec<String>;

/// `NAME;TZID=…:` / `NAME:` / `NAME;VALUE=DATE:` and the value for a Graph date-time with the
/// wall time `t` (compact form) or date `d`.
fn time_value(name: &str, v: &Value, all_day: bool, zones: &mut Zones) -> Result<String, String> {
    let Some(dt) = s(v, "/dateTime") else {
        return Err(format!("{name} has no dateTime"));
    };
    if all_day {
        return Ok(format!("{name};VALUE=DATE:{}", compact(dt, true)?));
    }
    let zone = s(v, "/timeZone").unwrap_or("UTC");
    let t = compact(dt, false)?;
    let Some(id) = tz::iana(zone) else {
        // A zone the time zone database does not know keeps its name, without a VTIMEZONE.
        return Ok(if dt.ends_with('Z') {
            format!("{name}:{t}Z")
        } else {
            format!("{name};TZID={}:{t}", param(zone))
        });
    };
    if tz::is_utc(id) || dt.ends_with('Z') {
        return Ok(format!("{name}:{t}Z"));
    }
    if !zones.iter().any(|z| z == id) {
        zones.push(id.to_owned());
    }
    Ok(format!("{name};TZID={}:{t}", param(id)))
}

fn time_prop(
    out: &mut String,
    name: &str,
    v: &Value,
    all_day: bool,
    zones: &mut Zones,
) -> Result<(), String> {
    let l = time_value(name, v, all_day, zones)?;
    line(out, &l);
    Ok(())
}

/// `EXDATE`s for the cancelled occurrences of a series (`OID.{id}.{yyyy-mm-dd}`), at the
/// series' start time of day.
fn exdates(out: &mut String, ev: &Value, all_day: bool, zones: &mut Zones) -> Result<(), String> {
    let Some(start) = s(ev, "/start/dateTime") else {
        return Ok(());
    };
    let time_of_day = start.get(10..19).unwrap_or("T00:00:00");
    for c in ev["cancelledOccurrences"].as_array().into_iter().flatten() {
        let Some(date) = c
            .as_str()
            .and_then(|c| c.rsplit('.').next())
            .filter(|d| d.len() == 10)
        else {
            continue;
        };
        let mut at = ev["start"].clone();
        at["dateTime"] = Value::String(format!("{date}{time_of_day}"));
        let l = time_value("EXDATE", &at, all_day, zones)?;
        line(out, &l);
    }
    Ok(())
}

fn utc_stamp(rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "19700101T000000Z".to_owned())
}

fn day(d: &str) -> Option<&'static str> {
    Some(match d.to_ascii_lowercase().as_str() {
        "sunday" => "SU",
        "monday" => "MO",
        "tuesday" => "TU",
        "wednesday" => "WE",
        "thursday" => "TH",
        "friday" => "FR",
        "saturday" => "SA",
        _ => return None,
    })
}

/// The RRULE value for a Graph `recurrence` (pattern + range).
///
/// # Errors
/// An unknown pattern or range type.
pub fn rrule(rec: &Value, all_day: bool) -> Result<String, String> {
    let p = &rec["pattern"];
    let r = &rec["range"];
    let kind = s(p, "/type").unwrap_or_default();
    let interval = p["interval"].as_u64().unwrap_or(1).max(1);
    let days: Vec<&str> = p["daysOfWeek"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| day(d.as_str()?)).collect())
        .unwrap_or_default();
    let setpos = match s(p, "/index").unwrap_or("first") {
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "last" => -1,
        _ => 1,
    };
    let month = p["month"].as_u64().unwrap_or(0);
    let mday = p["dayOfMonth"].as_u64().unwrap_or(0);
    let mut rule = String::new();
    let need = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("{kind} recurrence without {what}"))
        }
    };
    match kind {
        "daily" => rule.push_str("FREQ=DAILY"),
        "weekly" => {
            need(!days.is_empty(), "daysOfWeek")?;
            let _ = write!(rule, "FREQ=WEEKLY;BYDAY={}", days.join(","));
            if let Some(w) = s(p, "/firstDayOfWeek").and_then(day) {
                let _ = write!(rule, ";WKST={w}");
            }
        }
        "absoluteMonthly" => {
            need(mday > 0, "dayOfMonth")?;
            let _ = write!(rule, "FREQ=MONTHLY;BYMONTHDAY={mday}");
        }
        "relativeMonthly" => {
            need(!days.is_empty(), "daysOfWeek")?;
            let _ = write!(
                rule,
                "FREQ=MONTHLY;BYDAY={};BYSETPOS={setpos}",
                days.join(",")
            );
        }
        "absoluteYearly" => {
            need(month > 0 && mday > 0, "month and dayOfMonth")?;
            let _ = write!(rule, "FREQ=YEARLY;BYMONTH={month};BYMONTHDAY={mday}");
        }
        "relativeYearly" => {
            need(month > 0 && !days.is_empty(), "month and daysOfWeek")?;
            let _ = write!(
                rule,
                "FREQ=YEARLY;BYMONTH={month};BYDAY={};BYSETPOS={setpos}",
                days.join(",")
            );
        }
        other => return Err(format!("unknown recurrence pattern {other:?}")),
    }
    if interval > 1 {
        let _ = write!(rule, ";INTERVAL={interval}");
    }
    match s(r, "/type").unwrap_or("noEnd") {
        "noEnd" => {}
        "numbered" => {
            let n = r["numberOfOccurrences"].as_u64().unwrap_or(0);
            need(n > 0, "numberOfOccurrences")?;
            let _ = write!(rule, ";COUNT={n}");
        }
        "endDate" => {
            let end = s(r, "/endDate").ok_or_else(|| "endDate range without endDate".to_owned())?;
            let d = compact(end, true)?;
            if all_day {
                let _ = write!(rule, ";UNTIL={d}");
            } else {
                let _ = write!(rule, ";UNTIL={d}T235959Z");
            }
        }
        other => return Err(format!("unknown recurrence range {other:?}")),
    }
    Ok(rule)
}

fn person(out: &mut String, prop: &str, extra: &str, e: &Value) {
    let Some(addr) = s(e, "/emailAddress/address") else {
        return;
    };
    let mut l = prop.to_owned();
    if let Some(name) = s(e, "/emailAddress/name") {
        let _ = write!(l, ";CN={}", param(name));
    }
    l.push_str(extra);
    let _ = write!(l, ":mailto:{}", addr.replace(['\r', '\n'], ""));
    line(out, &l);
}

/// An event's Graph JSON as a `VCALENDAR`: its `VEVENT` (and one per changed occurrence of a
/// series), with a `VTIMEZONE` for each zone used.
///
/// # Errors
/// A missing or malformed start or end, or an unknown recurrence.
pub fn event_to_ics(ev: &Value) -> Result<String, String> {
    let mut events = String::new();
    let mut zones = Zones::new();
    vevent(&mut events, ev, None, &mut zones)?;
    for ex in ev["exceptionOccurrences"].as_array().into_iter().flatten() {
        vevent(&mut events, ex, Some(ev), &mut zones)?;
    }
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(
        &mut out,
        "PRODID:-//Backhome//Backhome for Microsoft 365//EN",
    );
    line(&mut out, "CALSCALE:GREGORIAN");
    for z in &zones {
        // Zones come from `tz::iana`, so the database has them; a failure leaves the TZID alone.
        if let Err(e) = tz::vtimezone(&mut out, z) {
            tracing::warn!("no VTIMEZONE for {z}: {e}");
        }
    }
    out.push_str(&events);
    line(&mut out, "END:VCALENDAR");
    Ok(out)
}

/// One `VEVENT`; `master` is the series of a changed occurrence.
fn vevent(
    out: &mut String,
    ev: &Value,
    master: Option<&Value>,
    zones: &mut Zones,
) -> Result<(), String> {
    line(out, "BEGIN:VEVENT");
    let series = master.unwrap_or(ev);
    let uid = s(series, "/iCalUId")
        .or_else(|| s(series, "/id"))
        .ok_or_else(|| "event without iCalUId or id".to_owned())?;
    line(out, &format!("UID:{}", escape_text(uid)));
    if master.is_some() {
        let original = s(ev, "/originalStart")
            .ok_or_else(|| "a changed occurrence without originalStart".to_owned())?;
        line(out, &format!("RECURRENCE-ID:{}", utc_stamp(Some(original))));
    }
    let stamp = utc_stamp(s(ev, "/lastModifiedDateTime").or_else(|| s(ev, "/createdDateTime")));
    line(out, &format!("DTSTAMP:{stamp}"));
    if let Some(c) = s(ev, "/createdDateTime") {
        line(out, &format!("CREATED:{}", utc_stamp(Some(c))));
    }
    if let Some(m) = s(ev, "/lastModifiedDateTime") {
        line(out, &format!("LAST-MODIFIED:{}", utc_stamp(Some(m))));
    }
    let all_day = ev["isAllDay"].as_bool().unwrap_or(false);
    time_prop(out, "DTSTART", &ev["start"], all_day, zones)?;
    if !ev["end"].is_null() {
        time_prop(out, "DTEND", &ev["end"], all_day, zones)?;
    }
    if let Some(t) = s(ev, "/subject") {
        line(out, &format!("SUMMARY:{}", escape_text(t)));
    }
    if let Some(l) = s(ev, "/location/displayName") {
        line(out, &format!("LOCATION:{}", escape_text(l)));
    }
    if let Some(body) = s(ev, "/body/content") {
        let is_html = s(ev, "/body/contentType").is_some_and(|t| t.eq_ignore_ascii_case("html"));
        let text = if is_html {
            html::to_text(body)
        } else {
            body.to_owned()
        };
        if !text.is_empty() {
            line(out, &format!("DESCRIPTION:{}", escape_text(&text)));
        }
    }
    if ev["isCancelled"].as_bool() == Some(true) {
        line(out, "STATUS:CANCELLED");
    }
    if let Some(sens) = s(ev, "/sensitivity") {
        let class = match sens {
            "private" | "confidential" => "PRIVATE",
            _ => "PUBLIC",
        };
        line(out, &format!("CLASS:{class}"));
    }
    if let Some(o) = ev.get("organizer") {
        person(out, "ORGANIZER", "", o);
    }
    for a in ev["attendees"].as_array().into_iter().flatten() {
        let role = match s(a, "/type") {
            Some("optional") => "OPT-PARTICIPANT",
            Some("resource") => "NON-PARTICIPANT",
            _ => "REQ-PARTICIPANT",
        };
        let partstat = match s(a, "/status/response") {
            Some("accepted" | "organizer") => "ACCEPTED",
            Some("declined") => "DECLINED",
            Some("tentativelyAccepted") => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        person(
            out,
            "ATTENDEE",
            &format!(";ROLE={role};PARTSTAT={partstat}"),
            a,
        );
    }
    if master.is_none() && ev["recurrence"].is_object() {
        line(
            out,
            &format!("RRULE:{}", rrule(&ev["recurrence"], all_day)?),
        );
        exdates(out, ev, all_day, zones)?;
    }
    for a in ev["attachments"].as_array().into_iter().flatten() {
        let Some(bytes) = s(a, "/contentBytes") else {
            continue;
        };
        let clean: String = bytes.chars().filter(|c| !c.is_whitespace()).collect();
        let mut l = "ATTACH".to_owned();
        if let Some(t) = s(a, "/contentType") {
            let _ = write!(l, ";FMTTYPE={}", param(t));
        }
        if let Some(n) = s(a, "/name") {
            let _ = write!(l, ";X-FILENAME={}", param(n));
        }
        let _ = write!(l, ";ENCODING=BASE64;VALUE=BINARY:{clean}");
        line(out, &l);
    }
    line(out, "END:VEVENT");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_fold_at_75_octets_on_char_boundaries() {
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "é".repeat(60)));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{}", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{}\r\n", "é".repeat(60)));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape_text("a,b;c\\d\r\ne"), "a\\,b\\;c\\\\d\\ne");
        assert_eq!(param("Smith, Ann"), "\"Smith, Ann\"");
        assert_eq!(param("Ann \"A\""), "Ann A");
    }

    #[test]
    fn recurrences_map_to_rrules() {
        let r =
            |p: Value, range: Value| rrule(&json!({"pattern": p, "range": range}), false).unwrap();
        assert_eq!(
            r(
                json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "friday"], "firstDayOfWeek": "sunday"}),
                json!({"type": "numbered", "numberOfOccurrences": 10})
            ),
            "FREQ=WEEKLY;BYDAY=MO,FR;WKST=SU;INTERVAL=2;COUNT=10"
        );
        assert_eq!(
            r(
                json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["thursday"], "index": "last"}),
                json!({"type": "endDate", "endDate": "2027-06-30"})
            ),
            "FREQ=MONTHLY;BYDAY=TH;BYSETPOS=-1;UNTIL=20270630T235959Z"
        );
        assert_eq!(
            r(
                json!({"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 14}),
                json!({"type": "noEnd"})
            ),
            "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=14"
        );
        assert_eq!(
            r(
                json!({"type": "relativeYearly", "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"}),
                json!({"type": "noEnd"})
            ),
            "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4"
        );
        assert_eq!(
            r(
                json!({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 1}),
                json!({"type": "noEnd"})
            ),
            "FREQ=MONTHLY;BYMONTHDAY=1;INTERVAL=3"
        );
        assert_eq!(r(json!({"type": "daily"}), json!({})), "FREQ=DAILY");
        assert!(rrule(&json!({"pattern": {"type": "hourly"}}), false).is_err());
    }

    #[test]
    fn events_carry_times_people_and_attachments() {
        let ev = json!({
            "iCalUId": "040000008200E0", "subject": "Plan; review, Q4",
            "start": {"dateTime": "2026-11-24T14:30:00.0000000", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-11-24T15:00:00.0000000", "timeZone": "UTC"},
            "body": {"contentType": "html", "content": "<p>Agenda</p>"},
            "organizer": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}},
            "attendees": [{"type": "optional", "status": {"response": "accepted"}, "emailAddress": {"name": "Bob, Jr", "address": "bob@contoso.com"}}],
            "attachments": [{"name": "a.txt", "contentType": "text/plain", "contentBytes": "aGVsbG8="}]
        });
        let ics = event_to_ics(&ev).unwrap().replace("\r\n ", "");
        assert!(
            ics.contains("DTSTART;TZID=America/Los_Angeles:20261124T143000\r\n"),
            "{ics}"
        );
        assert!(ics.contains("DTEND:20261124T150000Z\r\n"));
        assert!(ics.contains("SUMMARY:Plan\\; review\\, Q4\r\n"));
        assert!(ics.contains("DESCRIPTION:Agenda\r\n"));
        assert!(ics.contains("ORGANIZER;CN=Ann:mailto:ann@contoso.com\r\n"));
        assert!(ics.contains(
            "ATTENDEE;CN=\"Bob, Jr\";ROLE=OPT-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@contoso.com"
        ));
        assert!(ics.contains(
            "ATTACH;FMTTYPE=text/plain;X-FILENAME=a.txt;ENCODING=BASE64;VALUE=BINARY:aGVsbG8="
        ));
        let all_day = json!({"id": "x", "isAllDay": true,
            "start": {"dateTime": "2026-12-24T00:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-25T00:00:00", "timeZone": "UTC"}});
        let ics = event_to_ics(&all_day).unwrap();
        assert!(ics.contains("DTSTART;VALUE=DATE:20261224\r\n"));
        assert!(event_to_ics(&json!({"id": "x"})).is_err());
    }

    #[test]
    fn zoned_series_carry_a_vtimezone_exdates_and_changed_occurrences() {
        let ev = json!({
            "iCalUId": "series-1", "subject": "Weekly",
            "start": {"dateTime": "2026-03-02T09:30:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "numberOfOccurrences": 6}},
            "cancelledOccurrences": ["OID.AAMkAD=.2026-03-16"],
            "exceptionOccurrences": [{"id": "ex", "subject": "Weekly (moved)", "originalStart": "2026-03-23T08:30:00Z",
                "start": {"dateTime": "2026-03-24T11:00:00.0000000", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2026-03-24T11:30:00.0000000", "timeZone": "W. Europe Standard Time"}}]
        });
        let ics = event_to_ics(&ev).unwrap().replace("\r\n ", "");
        assert_eq!(ics.matches("BEGIN:VTIMEZONE").count(), 1, "{ics}");
        assert!(ics.contains("TZID:Europe/Berlin\r\n"));
        assert!(ics.contains("DTSTART;TZID=Europe/Berlin:20260302T093000\r\n"));
        assert!(ics.contains("EXDATE;TZID=Europe/Berlin:20260316T093000\r\n"));
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 2);
        assert_eq!(ics.matches("UID:series-1\r\n").count(), 2);
        assert!(ics.contains("RECURRENCE-ID:20260323T083000Z\r\n"));
        // Two in the VTIMEZONE, one for the series (none for the changed occurrence).
        assert_eq!(ics.matches("RRULE:").count(), 3, "{ics}");
        // The VTIMEZONE comes before the events.
        assert!(ics.find("END:VTIMEZONE").unwrap() < ics.find("BEGIN:VEVENT").unwrap());
        // An unknown zone keeps its name, without a VTIMEZONE.
        let odd = json!({"id": "x", "start": {"dateTime": "2026-01-01T10:00:00", "timeZone": "Mars Standard Time"}});
        let ics = event_to_ics(&odd).unwrap();
        assert!(ics.contains("DTSTART;TZID=Mars Standard Time:20260101T100000"));
        assert!(!ics.contains("VTIMEZONE"));
    }
}
