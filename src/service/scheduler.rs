//! The scheduler: starts each task's backups as its schedule says. Manual tasks never start by
//! themselves; continuous tasks start a new incremental run a while after the last one ended
//! (1 minute, up to 10 when the last run met throttling); fixed tasks start on the given days of
//! the week at the given times of day in the NAS's time zone. A fixed slot missed while the NAS
//! was off starts one run at the next start. One run per task at a time: a slot that comes while
//! the task's run is going is skipped.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::history::{RunRecord, RunStatus};
use super::runs::{RunManager, StartError};
use crate::task::spec::parse_hhmm;
use crate::task::{Schedule, TaskStore};

/// The shortest pause of a continuous task between runs.
pub const CONTINUOUS_MIN: Duration = Duration::minutes(1);
/// The longest pause of a continuous task between runs.
pub const CONTINUOUS_MAX: Duration = Duration::minutes(10);

/// The pause after a run that sent `requests` to Graph of which `throttled` were answered 429:
/// one minute without throttling, plus a minute per percent of throttled requests, at most ten.
#[must_use]
pub fn continuous_interval(requests: u64, throttled: u64) -> Duration {
    if throttled == 0 {
        return CONTINUOUS_MIN;
    }
    let percent = throttled.saturating_mul(100).div_ceil(requests.max(1));
    let minutes = i64::try_from(percent.saturating_add(1).min(10)).unwrap_or(10);
    Duration::minutes(minutes).clamp(CONTINUOUS_MIN, CONTINUOUS_MAX)
}

/// The first fixed slot strictly after `after`: on one of `days` (0 = Monday) at one of `times`
/// (`HH:MM`), local time at `offset`. `None` when the schedule has no valid slot.
#[must_use]
pub fn next_fixed(
    days: &[u8],
    times: &[String],
    after: OffsetDateTime,
    offset: UtcOffset,
) -> Option<OffsetDateTime> {
    let mut minutes: Vec<u32> = times.iter().filter_map(|t| parse_hhmm(t)).collect();
    minutes.sort_unstable();
    let start: Date = after.to_offset(offset).date();
    for d in 0..=7 {
        let day = start.checked_add(Duration::days(d))?;
        if !days.contains(&day.weekday().number_days_from_monday()) {
            continue;
        }
        for m in &minutes {
            let t =
                Time::from_hms(u8::try_from(m / 60).ok()?, u8::try_from(m % 60).ok()?, 0).ok()?;
            let slot = PrimitiveDateTime::new(day, t)
                .assume_offset(offset)
                .to_offset(UtcOffset::UTC);
            if slot > after {
                return Some(slot);
            }
        }
    }
    None
}

/// What the scheduler does about one task now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Wait,
    /// Nothing now, but remember this as the last fixed slot handled (a task seen for the
    /// first time: its first run is at its next slot).
    Remember(OffsetDateTime),
    /// Start a run; for fixed schedules, the newest slot it covers.
    Start(Option<OffsetDateTime>),
}

/// Decides about a task whose schedule is `schedule`, whose newest run is `last`, and whose last
/// handled fixed slot is `last_slot`, at `now` in a zone `offset` from UTC.
#[must_use]
pub fn decide(
    schedule: &Schedule,
    last: Option<&RunRecord>,
    last_slot: Option<OffsetDateTime>,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Decision {
    match schedule {
        Schedule::Manual => Decision::Wait,
        Schedule::Continuous => match continuous_due(last, now) {
            Some(due) if due <= now => Decision::Start(None),
            _ => Decision::Wait,
        },
        Schedule::Fixed { days, times } => {
            let Some(from) = last_slot else {
                return Decision::Remember(now);
            };
            let mut newest = None;
            let mut cursor = from;
            // At most a year of slots is walked (a NAS off for longer still runs once).
            for _ in 0..(366 * 24 * 4) {
                match next_fixed(days, times, cursor, offset) {
                    Some(s) if s <= now => {
                        newest = Some(s);
                        cursor = s;
                    }
                    _ => break,
                }
            }
            match newest {
                Some(s) => Decision::Start(Some(s)),
                None => Decision::Wait,
            }
        }
    }
}

/// When a continuous task is due: now when it never ran; after the adaptive pause when its last
/// run ended; ten minutes after a failure; never while a run is going.
fn continuous_due(last: Option<&RunRecord>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let Some(r) = last else {
        return Some(now);
    };
    let ended = r.ended_at?;
    if r.status == RunStatus::Running {
        return None;
    }
    let pause = if r.status == RunStatus::Failed {
        CONTINUOUS_MAX
    } else {
        continuous_interval(r.graph_requests, r.throttled)
    };
    Some(ended + pause)
}

/// When a task runs next by itself (`None`: manual, or a continuous run is going). A slot
/// already due shows as `now`.
#[must_use]
pub fn next_run(
    schedule: &Schedule,
    last: Option<&RunRecord>,
    last_slot: Option<OffsetDateTime>,
    live: bool,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Option<OffsetDateTime> {
    match schedule {
        Schedule::Manual => None,
        Schedule::Continuous if live => None,
        Schedule::Continuous => continuous_due(last, now).map(|d| d.max(now)),
        Schedule::Fixed { days, times } => {
            let from = last_slot.unwrap_or(now).min(now);
            next_fixed(days, times, from, offset).map(|d| d.max(now))
        }
    }
}

/// Starts scheduled runs through a [`RunManager`].
pub struct Scheduler {
    manager: Arc<RunManager>,
    data_dir: std::path::PathBuf,
}

impl Scheduler {
    /// A scheduler for the tasks of `data_dir`.
    #[must_use]
    pub fn new(manager: Arc<RunManager>, data_dir: std::path::PathBuf) -> Self {
        Self { manager, data_dir }
    }

    /// Looks at every task once and starts those that are due. Returns the tasks started.
    ///
    /// # Errors
    /// The task list or the run history failed.
    pub async fn tick(&self) -> Result<Vec<String>, StartError> {
        let clock = self.manager.clock();
        let (now, offset) = (clock.now(), clock.local_offset());
        let dir = self.data_dir.clone();
        let tasks = tokio::task::spawn_blocking(move || TaskStore::open(&dir)?.list())
            .await
            .map_err(|e| StartError::Internal(e.to_string()))??;
        let mut started = Vec::new();
        for spec in tasks {
            if matches!(spec.schedule, Schedule::Manual) || self.manager.is_stopping() {
                continue;
            }
            let name = spec.name.clone();
            let (last, last_slot) = self
                .manager
                .with_history(move |h| Ok((h.last(&name)?, h.last_slot(&name)?)))
                .await?;
            let live = self.manager.live(&spec.name).is_some();
            match decide(&spec.schedule, last.as_ref(), last_slot, now, offset) {
                Decision::Wait => {}
                Decision::Remember(slot) => {
                    let name = spec.name.clone();
                    self.manager
                        .with_history(move |h| h.set_last_slot(&name, slot))
                        .await?;
                }
                Decision::Start(slot) => {
                    if let Some(slot) = slot {
                        let name = spec.name.clone();
                        self.manager
                            .with_history(move |h| h.set_last_slot(&name, slot))
                            .await?;
                    }
                    if live {
                        tracing::info!(task = %spec.name, "scheduled backup skipped: a run is going");
                        continue;
                    }
                    match self.manager.start(&spec.name).await {
                        Ok(_) => {
                            tracing::info!(task = %spec.name, "scheduled backup started");
                            started.push(spec.name.clone());
                        }
                        Err(StartError::Busy(_)) => {}
                        Err(e) => {
                            tracing::warn!(task = %spec.name, error = %e, "scheduled backup not started");
                        }
                    }
                }
            }
        }
        Ok(started)
    }

    /// Ticks every `every` until the manager stops.
    pub async fn run(self, every: StdDuration) {
        loop {
            if self.manager.is_stopping() {
                return;
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Notifier;
    use crate::service::clock::{Clock, FakeClock};
    use crate::task::{Credentials, TaskSpec};
    use time::macros::{datetime, offset};

    fn fixed() -> Schedule {
        // Mondays and Thursdays at 02:30 and 14:00.
        Schedule::Fixed {
            days: vec![0, 3],
            times: vec!["14:00".into(), "02:30".into()],
        }
    }

    #[test]
    fn fixed_slots_are_local_time() {
        let Schedule::Fixed { days, times } = fixed() else {
            unreachable!()
        };
        let off = offset!(+2);
        // Monday 2026-11-23 01:00 local = Sunday 23:00 UTC.
        let after = datetime!(2026-11-22 23:00 UTC);
        assert_eq!(
            next_fixed(&days, &times, after, off),
            Some(datetime!(2026-11-23 02:30 +2).to_offset(UtcOffset::UTC))
        );
        let after = datetime!(2026-11-23 02:30 +2).to_offset(UtcOffset::UTC);
        assert_eq!(
            next_fixed(&days, &times, after, off),
            Some(datetime!(2026-11-23 14:00 +2).to_offset(UtcOffset::UTC))
        );
        // After Monday 14:00 comes Thursday 02:30.
        let after = datetime!(2026-11-23 14:00 +2).to_offset(UtcOffset::UTC);
        assert_eq!(
            next_fixed(&days, &times, after, off),
            Some(datetime!(2026-11-26 02:30 +2).to_offset(UtcOffset::UTC))
        );
        assert_eq!(next_fixed(&[], &times, after, off), None);
    }

    #[test]
    fn continuous_adapts_to_throttling() {
        assert_eq!(continuous_interval(1000, 0), Duration::minutes(1));
        assert_eq!(continuous_interval(1000, 1), Duration::minutes(2));
        assert_eq!(continuous_interval(100, 5), Duration::minutes(6));
        assert_eq!(continuous_interval(100, 50), Duration::minutes(10));
        assert_eq!(continuous_interval(0, 3), Duration::minutes(10));
    }

    fn record(status: RunStatus, ended: Option<OffsetDateTime>, throttled: u64) -> RunRecord {
        RunRecord {
            id: 1,
            task: "t".into(),
            started_at: datetime!(2026-11-23 00:00 UTC),
            ended_at: ended,
            status,
            items_added: 0,
            items_changed: 0,
            items_deleted: 0,
            bytes_downloaded: 0,
            graph_requests: 100,
            item_errors: 0,
            resumed: false,
            throttled,
            error: None,
        }
    }

    #[test]
    fn decisions_with_a_fake_clock() {
        let clock = FakeClock::new(datetime!(2026-11-23 10:00 UTC), offset!(+2));
        let off = clock.local_offset();
        let c = Schedule::Continuous;
        assert_eq!(
            decide(&c, None, None, clock.now(), off),
            Decision::Start(None)
        );
        let ended = clock.now();
        let done = record(RunStatus::Complete, Some(ended), 3);
        assert_eq!(
            decide(&c, Some(&done), None, clock.now(), off),
            Decision::Wait
        );
        clock.advance(Duration::minutes(3));
        assert_eq!(
            decide(&c, Some(&done), None, clock.now(), off),
            Decision::Wait
        );
        clock.advance(Duration::minutes(1));
        assert_eq!(
            decide(&c, Some(&done), None, clock.now(), off),
            Decision::Start(None)
        );
        let going = record(RunStatus::Running, None, 0);
        assert_eq!(
            decide(&c, Some(&going), None, clock.now(), off),
            Decision::Wait
        );
        let failed = record(RunStatus::Failed, Some(clock.now()), 0);
        clock.advance(Duration::minutes(9));
        assert_eq!(
            decide(&c, Some(&failed), None, clock.now(), off),
            Decision::Wait
        );
        clock.advance(Duration::minutes(1));
        assert_eq!(
            decide(&c, Some(&failed), None, clock.now(), off),
            Decision::Start(None)
        );
        assert_eq!(
            next_run(&c, Some(&done), None, true, clock.now(), off),
            None
        );

        // Fixed: a new task waits for its first slot; the slot starts a run once.
        let f = fixed();
        let now = clock.now();
        assert_eq!(decide(&f, None, None, now, off), Decision::Remember(now));
        let slot = datetime!(2026-11-23 14:00 +2).to_offset(UtcOffset::UTC);
        assert_eq!(next_run(&f, None, Some(now), false, now, off), Some(slot));
        assert_eq!(decide(&f, None, Some(now), now, off), Decision::Wait);
        clock.set(slot + Duration::seconds(20));
        assert_eq!(
            decide(&f, None, Some(now), clock.now(), off),
            Decision::Start(Some(slot))
        );
        assert_eq!(
            decide(&f, None, Some(slot), clock.now(), off),
            Decision::Wait
        );
        // Off for a week: several slots were missed; one run, covering the newest.
        clock.advance(Duration::days(7));
        let newest = datetime!(2026-11-30 14:00 +2).to_offset(UtcOffset::UTC);
        assert_eq!(
            decide(&f, None, Some(slot), clock.now(), off),
            Decision::Start(Some(newest))
        );
        assert_eq!(
            decide(&Schedule::Manual, None, None, clock.now(), off),
            Decision::Wait
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ticks_start_due_tasks_once() {
        let d = tempfile::tempdir().unwrap();
        let store = TaskStore::open(d.path()).unwrap();
        let mut spec = TaskSpec::new(
            "f",
            "tenant",
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            d.path().join("repo-f"),
        );
        spec.schedule = fixed();
        let creds = Credentials {
            pfx: b"not a pfx".to_vec(),
            password: "pw".into(),
        };
        store.create(&spec, &creds).unwrap();
        let mut manual = spec.clone();
        manual.name = "m".into();
        manual.schedule = Schedule::Manual;
        manual.repo = d.path().join("repo-m");
        store.create(&manual, &creds).unwrap();
        drop(store);
        let clock = Arc::new(FakeClock::new(datetime!(2026-11-23 10:00 UTC), offset!(+2)));
        let manager = Arc::new(
            RunManager::new(
                d.path().to_owned(),
                1,
                tokio::runtime::Handle::current(),
                clock.clone(),
                Notifier::new(None),
            )
            .unwrap(),
        );
        let s = Scheduler::new(Arc::clone(&manager), d.path().to_owned());
        assert!(s.tick().await.unwrap().is_empty());
        assert!(s.tick().await.unwrap().is_empty());
        clock.set(datetime!(2026-11-23 14:00:30 +2).to_offset(UtcOffset::UTC));
        assert_eq!(s.tick().await.unwrap(), ["f"]);
        // The run may already be over (its outcome is recorded before it leaves the live list).
        let end = match manager.live("f") {
            Some(live) => live
                .subscribe()
                .wait_for(Option::is_some)
                .await
                .unwrap()
                .clone()
                .unwrap(),
            None => manager.history().unwrap().last("f").unwrap().unwrap(),
        };
        // The certificate is garbage: the run fails, with the reason kept.
        assert_eq!(end.status, RunStatus::Failed);
        assert!(end.error.unwrap().contains("PKCS#12"));
        assert!(s.tick().await.unwrap().is_empty());
        // Off for three days: the missed Thursday slots start one run.
        clock.advance(Duration::days(3));
        assert_eq!(s.tick().await.unwrap(), ["f"]);
        assert!(manager.live("m").is_none());
        manager.shutdown(StdDuration::from_secs(5)).await;
    }
}
