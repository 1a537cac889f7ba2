//! Time zones of exported events: the Windows zone names Graph uses mapped to IANA ids, and a
//! `VTIMEZONE` (RFC 5545 3.6.5) for each of them, written from the zone's current rules
//! (standard offset, and the daylight-saving offset with its yearly start and end as `RRULE`s).
//!
//! Historic rule changes are not described: an event long before the zone's current rules took
//! effect is still given the right wall time and TZID, and clients that know the IANA id (most
//! do) use their own database for it.

use std::fmt::Write as _;

use super::ics::line;

/// A yearly transition: month, week of the month (1–4, or -1 for the last), weekday (`SU`…),
/// local wall time (hour, minute) in the offset before the transition.
type Rule = (u8, i8, &'static str, u8, u8);

/// A zone: Windows name, IANA id, standard offset (minutes east of UTC), and daylight saving
/// (offset, start, end), if any.
type Zone = (&'static str, &'static str, i32, Option<(i32, Rule, Rule)>);

const US_START: Rule = (3, 2, "SU", 2, 0);
const US_END: Rule = (11, 1, "SU", 2, 0);

/// The zones Graph uses most (Windows names from Outlook), with their current rules.
const ZONES: [Zone; 36] = [
    (
        "Pacific Standard Time",
        "America/Los_Angeles",
        -480,
        Some((-420, US_START, US_END)),
    ),
    (
        "Mountain Standard Time",
        "America/Denver",
        -420,
        Some((-360, US_START, US_END)),
    ),
    (
        "Central Standard Time",
        "America/Chicago",
        -360,
        Some((-300, US_START, US_END)),
    ),
    (
        "Eastern Standard Time",
        "America/New_York",
        -300,
        Some((-240, US_START, US_END)),
    ),
    (
        "Alaskan Standard Time",
        "America/Anchorage",
        -540,
        Some((-480, US_START, US_END)),
    ),
    (
        "Atlantic Standard Time",
        "America/Halifax",
        -240,
        Some((-180, US_START, US_END)),
    ),
    ("Hawaiian Standard Time", "Pacific/Honolulu", -600, None),
    ("US Mountain Standard Time", "America/Phoenix", -420, None),
    ("SA Pacific Standard Time", "America/Bogota", -300, None),
    (
        "E. South America Standard Time",
        "America/Sao_Paulo",
        -180,
        None,
    ),
    (
        "Argentina Standard Time",
        "America/Argentina/Buenos_Aires",
        -180,
        None,
    ),
    (
        "GMT Standard Time",
        "Europe/London",
        0,
        Some((60, (3, -1, "SU", 1, 0), (10, -1, "SU", 2, 0))),
    ),
    ("Greenwich Standard Time", "Atlantic/Reykjavik", 0, None),
    (
        "W. Europe Standard Time",
        "Europe/Berlin",
        60,
        Some((120, (3, -1, "SU", 2, 0), (10, -1, "SU", 3, 0))),
    ),
    (
        "Romance Standard Time",
        "Europe/Paris",
        60,
        Some((120, (3, -1, "SU", 2, 0), (10, -1, "SU", 3, 0))),
    ),
    (
        "Central Europe Standard Time",
        "Europe/Budapest",
        60,
        Some((120, (3, -1, "SU", 2, 0), (10, -1, "SU", 3, 0))),
    ),
    (
        "Central European Standard Time",
        "Europe/Warsaw",
        60,
        Some((120, (3, -1, "SU", 2, 0), (10, -1, "SU", 3, 0))),
    ),
    ("W. Central Africa Standard Time", "Africa/Lagos", 60, None),
    (
        "E. Europe Standard Time",
        "Europe/Chisinau",
        120,
        Some((180, (3, -1, "SU", 2, 0), (10, -1, "SU", 3, 0))),
    ),
    (
        "FLE Standard Time",
        "Europe/Kyiv",
        120,
        Some((180, (3, -1, "SU", 3, 0), (10, -1, "SU", 4, 0))),
    ),
    (
        "GTB Standard Time",
        "Europe/Bucharest",
        120,
        Some((180, (3, -1, "SU", 3, 0), (10, -1, "SU", 4, 0))),
    ),
    (
        "South Africa Standard Time",
        "Africa/Johannesburg",
        120,
        None,
    ),
    ("Turkey Standard Time", "Europe/Istanbul", 180, None),
    ("Russian Standard Time", "Europe/Moscow", 180, None),
    ("Arabian Standard Time", "Asia/Dubai", 240, None),
    ("India Standard Time", "Asia/Kolkata", 330, None),
    ("SE Asia Standard Time", "Asia/Bangkok", 420, None),
    ("China Standard Time", "Asia/Shanghai", 480, None),
    ("Singapore Standard Time", "Asia/Singapore", 480, None),
    ("W. Australia Standard Time", "Australia/Perth", 480, None),
    ("Tokyo Standard Time", "Asia/Tokyo", 540, None),
    ("Korea Standard Time", "Asia/Seoul", 540, None),
    (
        "E. Australia Standard Time",
        "Australia/Brisbane",
        600,
        None,
    ),
    (
        "Cen. Australia Standard Time",
        "Australia/Adelaide",
        570,
        Some((630, (10, 1, "SU", 2, 0), (4, 1, "SU", 3, 0))),
    ),
    (
        "AUS Eastern Standard Time",
        "Australia/Sydney",
        600,
        Some((660, (10, 1, "SU", 2, 0), (4, 1, "SU", 3, 0))),
    ),
    (
        "New Zealand Standard Time",
        "Pacific/Auckland",
        720,
        Some((780, (9, -1, "SU", 2, 0), (4, 1, "SU", 3, 0))),
    ),
];

/// Older IANA ids Graph may hand back, and what they are now.
const ALIASES: [(&str, &str); 2] = [
    ("Europe/Kiev", "Europe/Kyiv"),
    ("Asia/Calcutta", "Asia/Kolkata"),
];

fn find(zone: &str) -> Option<&'static Zone> {
    let zone = ALIASES
        .iter()
        .find(|(old, _)| *old == zone)
        .map_or(zone, |(_, new)| new);
    ZONES.iter().find(|z| z.0 == zone || z.1 == zone)
}

/// The IANA id for a Windows zone name (or the name as given, when it is not known).
#[must_use]
pub fn iana(zone: &str) -> &str {
    find(zone).map_or(zone, |z| z.1)
}

/// Whether a `VTIMEZONE` can be written for the zone (Windows name or IANA id).
#[must_use]
pub fn known(zone: &str) -> bool {
    find(zone).is_some()
}

fn offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

/// The day of the month of the `week`th (-1: last) `day` (`SU`…) of a month.
fn day_of(year: i32, month: u8, week: i8, day: &str) -> u8 {
    let target = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
        .iter()
        .position(|d| *d == day)
        .unwrap_or(0);
    let m = time::Month::try_from(month).unwrap_or(time::Month::January);
    let days: Vec<u8> = (1..=m.length(year))
        .filter(|d| {
            time::Date::from_calendar_date(year, m, *d)
                .is_ok_and(|x| usize::from(x.weekday().number_days_from_sunday()) == target)
        })
        .collect();
    let pick = if week < 0 {
        days.last()
    } else {
        days.get(usize::try_from(week - 1).unwrap_or(0))
    };
    pick.copied().unwrap_or(1)
}

fn observance(out: &mut String, kind: &str, from: i32, to: i32, rule: Option<Rule>) {
    line(out, &format!("BEGIN:{kind}"));
    match rule {
        Some((month, week, day, h, m)) => {
            // DTSTART: the rule's transition in 1970; the RRULE gives the later years.
            line(
                out,
                &format!(
                    "DTSTART:1970{month:02}{:02}T{h:02}{m:02}00",
                    day_of(1970, month, week, day)
                ),
            );
            line(
                out,
                &format!("RRULE:FREQ=YEARLY;BYMONTH={month};BYDAY={week}{day}"),
            );
        }
        None => line(out, "DTSTART:19700101T000000"),
    }
    line(out, &format!("TZOFFSETFROM:{}", offset(from)));
    line(out, &format!("TZOFFSETTO:{}", offset(to)));
    line(out, &format!("TZNAME:{}", offset(to)));
    line(out, &format!("END:{kind}"));
}

/// Appends the `VTIMEZONE` of a known zone (nothing for unknown ones).
pub fn vtimezone(out: &mut String, zone: &str) {
    let Some(&(_, id, std, dst)) = find(zone) else {
        return;
    };
    line(out, "BEGIN:VTIMEZONE");
    let mut tzid = String::from("TZID:");
    let _ = write!(tzid, "{id}");
    line(out, &tzid);
    match dst {
        None => observance(out, "STANDARD", std, std, None),
        Some((daylight, start, end)) => {
            observance(out, "DAYLIGHT", std, daylight, Some(start));
            observance(out, "STANDARD", daylight, std, Some(end));
        }
    }
    line(out, "END:VTIMEZONE");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_and_iana_ids_find_the_same_zone() {
        assert_eq!(iana("W. Europe Standard Time"), "Europe/Berlin");
        assert_eq!(iana("Europe/Berlin"), "Europe/Berlin");
        assert_eq!(iana("Europe/Kiev"), "Europe/Kyiv");
        assert_eq!(iana("Mars Standard Time"), "Mars Standard Time");
        assert!(known("Asia/Kolkata") && !known("Mars Standard Time"));
    }

    #[test]
    fn a_vtimezone_states_both_observances() {
        let mut out = String::new();
        vtimezone(&mut out, "AUS Eastern Standard Time");
        assert!(out.contains("TZID:Australia/Sydney\r\n"));
        assert!(out.contains(
            "BEGIN:DAYLIGHT\r\nDTSTART:19701004T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\n"
        ));
        assert!(out.contains(
            "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\n"
        ));
        let mut india = String::new();
        vtimezone(&mut india, "India Standard Time");
        assert!(india.contains("TZOFFSETTO:+0530") && !india.contains("DAYLIGHT"));
    }
}
