//! Time as the scheduler sees it: the current instant and the NAS's local UTC offset, behind a
//! trait so tests drive a fake clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::{OffsetDateTime, UtcOffset};

/// Where the scheduler gets the time from.
pub trait Clock: Send + Sync {
    /// The current instant (UTC).
    fn now(&self) -> OffsetDateTime;
    /// The NAS's UTC offset now (fixed schedules are in local time).
    fn local_offset(&self) -> UtcOffset;
}

/// The system clock and the system's time zone.
#[derive(Debug, Default)]
pub struct SystemClock {
    cached: Mutex<Option<(Instant, UtcOffset)>>,
}

/// How long a looked-up local offset is trusted (DST changes are picked up within this time).
const OFFSET_TTL: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn local_offset(&self) -> UtcOffset {
        if let Ok(guard) = self.cached.lock()
            && let Some((at, off)) = *guard
            && at.elapsed() < OFFSET_TTL
        {
            return off;
        }
        let off = system_offset();
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), off));
        }
        off
    }
}

/// The system's UTC offset now, from `date +%z` (which honours `TZ` and `/etc/localtime`, on DSM
/// as elsewhere); UTC when that fails.
#[must_use]
pub fn system_offset() -> UtcOffset {
    std::process::Command::new("date")
        .arg("+%z")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_z(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or(UtcOffset::UTC)
}

/// Parses `+HHMM` / `-HHMM`.
#[must_use]
pub fn parse_z(s: &str) -> Option<UtcOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1i8, &s[1..]),
        b'-' => (-1i8, &s[1..]),
        _ => return None,
    };
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i8 = rest[..2].parse().ok()?;
    let m: i8 = rest[2..].parse().ok()?;
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// A clock tests set and advance by hand.
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<OffsetDateTime>,
    offset: UtcOffset,
}

impl FakeClock {
    /// A fake clock at `now` in a zone `offset` from UTC.
    #[must_use]
    pub fn new(now: OffsetDateTime, offset: UtcOffset) -> Self {
        Self {
            now: Mutex::new(now),
            offset,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut n) = self.now.lock() {
            *n += by;
        }
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        if let Ok(mut n) = self.now.lock() {
            *n = to;
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        self.now
            .lock()
            .map_or_else(|_| OffsetDateTime::now_utc(), |n| *n)
    }

    fn local_offset(&self) -> UtcOffset {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_z("+0200"), UtcOffset::from_hms(2, 0, 0).ok());
        assert_eq!(parse_z("-0530"), UtcOffset::from_hms(-5, -30, 0).ok());
        assert_eq!(parse_z("0200"), None);
        assert_eq!(parse_z("+2"), None);
        // The system lookup always answers something.
        let _ = SystemClock::default().local_offset();
    }
}
