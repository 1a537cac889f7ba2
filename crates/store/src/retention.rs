//! Retention: which committed runs stay restore points, and removing the versions that no kept
//! run can see. The newest version of every node that still exists is always kept.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use time::{Duration, OffsetDateTime};

use crate::error::{DbContext, Result};
use crate::gc::GcReport;
use crate::id::RunId;
use crate::pace::GcPacing;
use crate::repo::Repository;
use crate::snapshot::SnapshotPrune;

/// Which restore points to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Keep every run.
    KeepAll,
    /// Keep runs finished within the last N days.
    KeepDays(u32),
    /// Keep the newest N runs.
    KeepRuns(u32),
    /// Grandfather-father-son: the newest run of each of the last N days, weeks, months, years
    /// that have runs.
    Gfs {
        /// Daily restore points.
        daily: u32,
        /// Weekly restore points.
        weekly: u32,
        /// Monthly restore points.
        monthly: u32,
        /// Yearly restore points.
        yearly: u32,
    },
}

/// What applying a policy did.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionReport {
    /// Runs kept as restore points.
    pub kept_runs: Vec<RunId>,
    /// Runs pruned by this call.
    pub pruned_runs: Vec<RunId>,
    /// Node versions removed.
    pub versions_removed: u64,
    /// Snapshot deletions (refusals included).
    pub snapshots: Vec<(RunId, SnapshotPrune)>,
    /// The garbage collection that followed.
    pub gc: GcReport,
}

/// The runs `policy` keeps among committed `runs` (id, finish time), given the time `now`.
#[must_use]
pub fn kept_runs(
    policy: RetentionPolicy,
    runs: &[(RunId, OffsetDateTime)],
    now: OffsetDateTime,
) -> BTreeSet<RunId> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut keep = BTreeSet::new();
    if let Some(newest) = sorted.first() {
        keep.insert(newest.0);
    }
    match policy {
        RetentionPolicy::KeepAll => keep.extend(sorted.iter().map(|r| r.0)),
        RetentionPolicy::KeepDays(n) => {
            let cutoff = now - Duration::days(i64::from(n));
            keep.extend(sorted.iter().filter(|r| r.1 >= cutoff).map(|r| r.0));
        }
        RetentionPolicy::KeepRuns(n) => keep.extend(sorted.iter().take(n as usize).map(|r| r.0)),
        RetentionPolicy::Gfs {
            daily,
            weekly,
            monthly,
            yearly,
        } => {
            let mut bucket = |n: u32, key: &dyn Fn(OffsetDateTime) -> (i32, u32)| {
                let mut seen = BTreeSet::new();
                for r in &sorted {
                    if seen.len() >= n as usize {
                        break;
                    }
                    if seen.insert(key(r.1)) {
                        keep.insert(r.0);
                    }
                }
            };
            bucket(daily, &|t| (t.year(), u32::from(t.ordinal())));
            bucket(weekly, &|t| {
                let (y, w, _) = t.to_iso_week_date();
                (y, u32::from(w))
            });
            bucket(monthly, &|t| (t.year(), u32::from(u8::from(t.month()))));
            bucket(yearly, &|t| (t.year(), 0));
        }
    }
    keep
}

impl Repository {
    /// Applies `policy` as of `now`: prunes runs, removes versions no kept run sees, deletes
    /// the pruned runs' snapshots, then collects garbage (unpaced). Safe to kill at any point.
    pub fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now: OffsetDateTime,
    ) -> Result<RetentionReport> {
        self.apply_retention_paced(policy, now, &AtomicBool::new(false), GcPacing::NONE)
    }

    /// [`Repository::apply_retention`] as the service runs it: its garbage collection paced by
    /// [`GcPacing::SERVICE`] (the NAS keeps serving files) and stopping early once `stop` is set.
    pub fn apply_retention_with_stop(
        &self,
        policy: RetentionPolicy,
        now: OffsetDateTime,
        stop: &AtomicBool,
    ) -> Result<RetentionReport> {
        self.apply_retention_paced(policy, now, stop, GcPacing::SERVICE)
    }

    /// [`Repository::apply_retention`] with its garbage collection paced by `pacing` and
    /// stopping early once `stop` is set.
    pub fn apply_retention_paced(
        &self,
        policy: RetentionPolicy,
        now: OffsetDateTime,
        stop: &AtomicBool,
        pacing: GcPacing,
    ) -> Result<RetentionReport> {
        let lock = self.lock_writer()?;
        let mut conn = self.open_connection()?;
        let runs: Vec<(RunId, OffsetDateTime)> = {
            let mut st = conn
                .prepare(
                    "SELECT id, coalesce(finished, started) FROM runs WHERE status = 'committed'",
                )
                .ctx("listing runs")?;
            let rows = st
                .query_map([], |r| {
                    Ok((RunId(r.get(0)?), crate::model::from_unix(r.get(1)?)))
                })
                .ctx("listing runs")?;
            rows.collect::<rusqlite::Result<_>>().ctx("listing runs")?
        };
        let keep = kept_runs(policy, &runs, now);
        let pruned: Vec<RunId> = runs
            .iter()
            .map(|r| r.0)
            .filter(|r| !keep.contains(r))
            .collect();
        let tx = conn.transaction().ctx("applying retention")?;
        for r in &pruned {
            tx.execute("UPDATE runs SET status = 'pruned' WHERE id = ?1", [r.0])
                .ctx("pruning a run")?;
        }
        let dead = "last_run IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs r
            WHERE r.status = 'committed' AND r.id BETWEEN node_versions.first_run AND node_versions.last_run)";
        // (A trigger takes the removed versions out of the search index.)
        let versions_removed = tx
            .execute(&format!("DELETE FROM node_versions WHERE {dead}"), [])
            .ctx("pruning versions")? as u64;
        tx.execute(
            "DELETE FROM delta_tokens WHERE run < (SELECT max(d.run) FROM delta_tokens d
                 JOIN runs r ON r.id = d.run AND r.status = 'committed'
                 WHERE d.object = delta_tokens.object AND d.scope = delta_tokens.scope)",
            [],
        )
        .ctx("pruning delta tokens")?;
        tx.commit().ctx("applying retention")?;
        tracing::info!(
            kept = keep.len(),
            pruned = pruned.len(),
            versions_removed,
            "retention applied"
        );
        let mut snapshots = Vec::new();
        for s in self.snapshots()? {
            if !keep.contains(&s.run) {
                let r = self.delete_snapshot(s.run);
                if let SnapshotPrune::Refused { reason } = &r {
                    tracing::warn!(run = s.run.0, %reason, "snapshot not pruned");
                }
                snapshots.push((s.run, r));
            }
        }
        let gc = self.gc_locked(&conn, stop, pacing)?;
        drop(lock);
        Ok(RetentionReport {
            kept_runs: keep.into_iter().collect(),
            pruned_runs: pruned,
            versions_removed,
            snapshots,
            gc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn gfs_keeps_newest_per_bucket() {
        let now = datetime!(2026-11-25 12:00 UTC);
        let runs: Vec<(RunId, OffsetDateTime)> = (0..60)
            .map(|i| (RunId(i + 1), now - Duration::hours(12 * (59 - i))))
            .collect();
        let keep = kept_runs(
            RetentionPolicy::Gfs {
                daily: 3,
                weekly: 2,
                monthly: 1,
                yearly: 1,
            },
            &runs,
            now,
        );
        // Newest run, the newest of each of the last 3 days, of 2 weeks: at most 6 runs.
        assert!(keep.contains(&RunId(60)));
        assert!(keep.len() >= 3 && keep.len() <= 6, "{keep:?}");
        assert_eq!(kept_runs(RetentionPolicy::KeepRuns(5), &runs, now).len(), 5);
        assert_eq!(kept_runs(RetentionPolicy::KeepAll, &runs, now).len(), 60);
        let d = kept_runs(RetentionPolicy::KeepDays(10), &runs, now);
        assert_eq!(d.len(), 21);
        assert_eq!(kept_runs(RetentionPolicy::KeepRuns(0), &runs, now).len(), 1);
    }
}
