//! Pacing of background work (garbage collection, repacking) so that a NAS that also serves
//! files stays usable: after each unit of work the tranquilizer sleeps in proportion to the time
//! the unit took, and long enough to keep the bytes moved under a rate cap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How garbage collection paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPacing {
    /// After each unit of work, sleep `tranquility` times as long as the unit took (0: no
    /// proportional sleep). With 2, collection uses at most a third of the disk's time.
    pub tranquility: u32,
    /// Cap on the bytes repacking reads plus writes per second (`None`: no cap).
    pub max_bytes_per_sec: Option<u64>,
}

impl GcPacing {
    /// No pacing: as fast as the disk allows (tests, an explicit maintenance command).
    pub const NONE: Self = Self {
        tranquility: 0,
        max_bytes_per_sec: None,
    };

    /// The service's pacing: twice the work time asleep and at most 16 MiB/s of repack I/O,
    /// which leaves a spinning disk to the NAS's users most of the time.
    pub const SERVICE: Self = Self {
        tranquility: 2,
        max_bytes_per_sec: Some(16 << 20),
    };
}

impl Default for GcPacing {
    /// [`GcPacing::SERVICE`].
    fn default() -> Self {
        Self::SERVICE
    }
}

/// Longest single sleep before `stop` is looked at again.
const SLICE: Duration = Duration::from_millis(50);

/// Work units are timed; [`Tranquilizer::pause`] sleeps what the pacing asks for.
pub(crate) struct Tranquilizer<'a> {
    pacing: GcPacing,
    stop: &'a AtomicBool,
    span_start: Instant,
    span_bytes: u64,
    /// Time spent in units of work that ended with a pause.
    pub worked: Duration,
    /// Time spent asleep in pauses.
    pub slept: Duration,
}

impl<'a> Tranquilizer<'a> {
    pub(crate) fn new(pacing: GcPacing, stop: &'a AtomicBool) -> Self {
        Self {
            pacing,
            stop,
            span_start: Instant::now(),
            span_bytes: 0,
            worked: Duration::ZERO,
            slept: Duration::ZERO,
        }
    }

    /// Counts `bytes` of I/O in the current unit of work.
    pub(crate) fn add_bytes(&mut self, bytes: u64) {
        self.span_bytes = self.span_bytes.saturating_add(bytes);
    }

    /// Bytes counted in the current unit of work.
    pub(crate) fn pending_bytes(&self) -> u64 {
        self.span_bytes
    }

    /// The sleep owed for a unit that took `took` and moved `bytes`.
    fn owed(&self, took: Duration, bytes: u64) -> Duration {
        let proportional = took.saturating_mul(self.pacing.tranquility);
        let rate = match self.pacing.max_bytes_per_sec {
            Some(limit) if limit > 0 => {
                Duration::from_secs_f64(bytes as f64 / limit as f64).saturating_sub(took)
            }
            _ => Duration::ZERO,
        };
        proportional.max(rate)
    }

    /// Ends the current unit of work: sleeps what it owes (cut short once `stop` is set), then
    /// starts the next unit.
    pub(crate) fn pause(&mut self) {
        let took = self.span_start.elapsed();
        self.worked += took;
        let owed = self.owed(took, self.span_bytes);
        if !owed.is_zero() {
            let asleep = Instant::now();
            while !self.stop.load(Ordering::Relaxed) {
                let left = owed.saturating_sub(asleep.elapsed());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(SLICE));
            }
            self.slept += asleep.elapsed();
        }
        self.span_start = Instant::now();
        self.span_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_sleep_is_proportional_and_respects_the_rate_cap() {
        let stop = AtomicBool::new(false);
        let t = Tranquilizer::new(
            GcPacing {
                tranquility: 3,
                max_bytes_per_sec: Some(1 << 20),
            },
            &stop,
        );
        let ms = Duration::from_millis;
        assert_eq!(t.owed(ms(10), 0), ms(30));
        // 2 MiB at 1 MiB/s take two seconds, of which 100 ms were the work itself.
        assert_eq!(t.owed(ms(100), 2 << 20), ms(1900));
        let none = Tranquilizer::new(GcPacing::NONE, &stop);
        assert_eq!(none.owed(ms(100), 2 << 20), Duration::ZERO);
    }

    #[test]
    fn a_stop_request_cuts_the_pause_short() {
        let stop = AtomicBool::new(true);
        let mut t = Tranquilizer::new(
            GcPacing {
                tranquility: 0,
                max_bytes_per_sec: Some(1),
            },
            &stop,
        );
        t.add_bytes(3600);
        let started = Instant::now();
        t.pause();
        // An hour was owed; the stop request ends the pause at once.
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(t.slept < Duration::from_secs(60));
    }
}
