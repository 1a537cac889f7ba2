//! Restore and export jobs started from the web app: a registry of jobs with live progress,
//! cancel, and their reports; exports are written to a file under `<data dir>/exports/` that is
//! streamed on download and removed after [`EXPORT_TTL`] (and at start).
//!
//! Jobs are kept as rows (`<data dir>/jobs/<id>.json`, written when a job starts and ends): after
//! a restart the list is still there, and a job the stop interrupted is marked failed, never
//! left "running".

mod repos;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use backhome_store::{Repository, RunId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::restore::{self, RestoreProgress, RestoreRequest};
use crate::task::{Credentials, TaskSpec};

pub use repos::RepoCache;

/// How long an export file stays downloadable.
pub const EXPORT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long finished jobs stay listed.
const JOB_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The report of a restore keeps at most this many per-item lines.
const MAX_REPORT_ITEMS: usize = 1000;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A restore to Microsoft 365.
    Restore,
    /// An export to a download.
    Export,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Going.
    Running,
    /// Finished (a restore may still list failed items in its report).
    Done,
    /// Stopped by an error, or by a restart of the service.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// The format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// A ZIP of `.eml`, `.ics`, `.vcf`, files and transcripts under their backup paths.
    Zip,
    /// An mboxrd file of the selection's mail (a ZIP of one MBOX per folder when the
    /// selection spans several folders with mail).
    Mbox,
}

/// Progress counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobProgress {
    /// Items handled.
    pub done: u64,
    /// Items in the selection (0 while unknown).
    pub total: u64,
    /// Bytes sent to Microsoft 365 (restore) or written to the file (export).
    pub bytes: u64,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Restore or export.
    pub kind: JobKind,
    /// The task.
    pub task: String,
    /// Who started it (DSM user name).
    pub owner: String,
    /// Where it is.
    pub state: JobState,
    /// Progress.
    pub progress: JobProgress,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub ended_at: Option<String>,
    /// The run whose data it reads.
    pub run: i64,
    /// The selected backup paths.
    pub paths: Vec<String>,
    /// Restore: the account restored into, when not the original.
    #[serde(default)]
    pub target_user: Option<String>,
    /// Restore: the new folder restored into, when not the original place.
    #[serde(default)]
    pub target_folder: Option<String>,
    /// Export: the format.
    #[serde(default)]
    pub format: Option<ExportFormat>,
    /// The report when done (restore: items restored, skipped, failed with reasons; export:
    /// items, bytes, warnings), or `{"error": …}` when failed.
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
    /// Export: where to download the file while it is kept (relative to the app's URL).
    pub download: Option<String>,
    /// Export: the file name offered to the browser.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// Why the job registry cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Its folders cannot be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JobError + '_ {
    move |source| JobError::Io {
        path: path.to_owned(),
        source,
    }
}

struct Entry {
    job: Mutex<Job>,
    cancel: Arc<AtomicBool>,
    restore: Option<Arc<RestoreProgress>>,
    written: Arc<AtomicU64>,
    file: Mutex<Option<PathBuf>>,
    ended: Mutex<Option<std::time::Instant>>,
}

impl Entry {
    fn view(&self) -> Option<Job> {
        let mut j = self.job.lock().ok()?.clone();
        if j.state == JobState::Running {
            if let Some(p) = &self.restore {
                j.progress = JobProgress {
                    done: p.done(),
                    total: p.items_total.load(Ordering::Relaxed),
                    bytes: p.bytes_uploaded.load(Ordering::Relaxed),
                };
            } else {
                j.progress.bytes = self.written.load(Ordering::Relaxed);
            }
        }
        Some(j)
    }
}

/// The job registry.
pub struct Jobs {
    jobs_dir: PathBuf,
    exports_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

impl Jobs {
    /// Opens the registry of `data_dir`: earlier jobs are listed again (those a stop interrupted
    /// as failed), leftover export files are removed, and a sweeper that expires export files
    /// starts on `runtime`.
    ///
    /// # Errors
    /// The folders cannot be created or read.
    pub fn open(data_dir: &Path, runtime: tokio::runtime::Handle) -> Result<Arc<Self>, JobError> {
        let jobs_dir = data_dir.join("jobs");
        let exports_dir = data_dir.join("exports");
        std::fs::create_dir_all(&jobs_dir).map_err(io_err(&jobs_dir))?;
        std::fs::create_dir_all(&exports_dir).map_err(io_err(&exports_dir))?;
        for f in std::fs::read_dir(&exports_dir).map_err(io_err(&exports_dir))? {
            let p = f.map_err(io_err(&exports_dir))?.path();
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot remove an old export");
            }
        }
        let mut entries = HashMap::new();
        let cutoff = OffsetDateTime::now_utc() - JOB_TTL;
        for f in std::fs::read_dir(&jobs_dir).map_err(io_err(&jobs_dir))? {
            let p = f.map_err(io_err(&jobs_dir))?.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let job: Job = match std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(j) => j,
                None => {
                    tracing::warn!(file = %p.display(), "unreadable job record ignored");
                    continue;
                }
            };
            let mut job: Job = job;
            if parse_time(&job.started_at).is_some_and(|t| t < cutoff) {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let mut changed = false;
            if job.state == JobState::Running {
                job.state = JobState::Failed;
                job.ended_at = Some(now_text());
                job.result = serde_json::json!({
                    "error": "the service stopped while the job ran; start it again"
                });
                changed = true;
            }
            if job.download.is_some() {
                job.download = None;
                changed = true;
            }
            let entry = Arc::new(Entry {
                job: Mutex::new(job.clone()),
                cancel: Arc::new(AtomicBool::new(false)),
                restore: None,
                written: Arc::new(AtomicU64::new(0)),
                file: Mutex::new(None),
                ended: Mutex::new(None),
            });
            entries.insert(job.id.clone(), entry);
            if changed {
                write_record(&jobs_dir, &job);
            }
        }
        let jobs = Arc::new(Self {
            jobs_dir,
            exports_dir,
            runtime: runtime.clone(),
            entries: Mutex::new(entries),
        });
        let weak: Weak<Self> = Arc::downgrade(&jobs);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(600)).await;
                let Some(jobs) = weak.upgrade() else { break };
                jobs.expire(EXPORT_TTL);
            }
        });
        Ok(jobs)
    }

    /// Every job, newest first.
    #[must_use]
    pub fn list(&self) -> Vec<Job> {
        let entries: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut out: Vec<Job> = entries.iter().filter_map(|e| e.view()).collect();
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        out
    }

    /// The job `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Job> {
        self.entry(id).and_then(|e| e.view())
    }

    fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.entries.lock().ok()?.get(id).cloned()
    }

    /// Asks job `id` to stop; `false` when it is not running.
    pub fn cancel(&self, id: &str) -> bool {
        let Some(e) = self.entry(id) else {
            return false;
        };
        let running = e
            .job
            .lock()
            .map(|j| j.state == JobState::Running)
            .unwrap_or(false);
        if running {
            e.cancel.store(true, Ordering::Relaxed);
        }
        running
    }

    /// The export file of job `id` while it is kept: its path, the name to offer and its type.
    #[must_use]
    pub fn download(&self, id: &str) -> Option<(PathBuf, String, &'static str)> {
        let e = self.entry(id)?;
        let path = e.file.lock().ok()?.clone()?;
        let job = e.job.lock().ok()?;
        let name = job.file_name.clone()?;
        let ct = if name.ends_with(".mbox") {
            "application/mbox"
        } else {
            "application/zip"
        };
        Some((path, name, ct))
    }

    /// Removes export files older than `ttl` and job records older than 30 days.
    pub fn expire(&self, ttl: Duration) {
        let entries: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for e in entries {
            let old = e
                .ended
                .lock()
                .ok()
                .and_then(|t| *t)
                .is_some_and(|t| t.elapsed() >= ttl);
            if !old {
                continue;
            }
            let file = e.file.lock().ok().and_then(|mut f| f.take());
            if let Some(f) = file {
                if let Err(err) = std::fs::remove_file(&f) {
                    tracing::warn!(file = %f.display(), error = %err, "cannot remove an expired export");
                }
                if let Ok(mut j) = e.job.lock() {
                    j.download = None;
                    write_record(&self.jobs_dir, &j);
                }
            }
        }
        let cutoff = OffsetDateTime::now_utc() - JOB_TTL;
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|id, e| {
                let keep = e.job.lock().map_or(true, |j| {
                    j.state == JobState::Running
                        || parse_time(&j.started_at).is_none_or(|t| t >= cutoff)
                });
                if !keep {
                    let _ = std::fs::remove_file(self.jobs_dir.join(format!("{id}.json")));
                }
                keep
            });
        }
    }

    fn register(&self, job: &Job, restore: Option<Arc<RestoreProgress>>) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            job: Mutex::new(job.clone()),
            cancel: Arc::new(AtomicBool::new(false)),
            restore,
            written: Arc::new(AtomicU64::new(0)),
            file: Mutex::new(None),
            ended: Mutex::new(None),
        });
        write_record(&self.jobs_dir, job);
        if let Ok(mut m) = self.entries.lock() {
            m.insert(job.id.clone(), Arc::clone(&entry));
        }
        entry
    }

    fn finish(&self, e: &Entry, state: JobState, result: serde_json::Value, done: u64) {
        if let Ok(mut t) = e.ended.lock() {
            *t = Some(std::time::Instant::now());
        }
        let Ok(mut j) = e.job.lock() else { return };
        j.state = state;
        j.ended_at = Some(now_text());
        j.result = result;
        if let Some(p) = &e.restore {
            j.progress = JobProgress {
                done: p.done(),
                total: p.items_total.load(Ordering::Relaxed),
                bytes: p.bytes_uploaded.load(Ordering::Relaxed),
            };
        } else {
            j.progress.bytes = e.written.load(Ordering::Relaxed);
            j.progress.done = done;
            j.progress.total = done;
        }
        let has_file = e.file.lock().map(|f| f.is_some()).unwrap_or(false);
        j.download = has_file.then(|| format!("api/v1/jobs/{}/download", j.id));
        write_record(&self.jobs_dir, &j);
        tracing::info!(job = %j.id, kind = ?j.kind, state = ?j.state, "job ended");
    }

    /// Starts restoring `req` of `task` as `owner`.
    pub fn start_restore(
        self: &Arc<Self>,
        owner: &str,
        task: &TaskSpec,
        creds: Credentials,
        repo: Repository,
        req: RestoreRequest,
    ) -> Job {
        let job = new_job(JobKind::Restore, owner, task, req.run, req.paths.clone());
        let job = Job {
            target_user: req.target_user.clone(),
            target_folder: req.target_folder.clone(),
            ..job
        };
        let progress = Arc::new(RestoreProgress::default());
        let entry = self.register(&job, Some(Arc::clone(&progress)));
        let (jobs, spec) = (Arc::clone(self), task.clone());
        tracing::info!(job = %job.id, task = %task.name, owner, "restore started");
        self.runtime.spawn(async move {
            let outcome = match crate::connect::client(&spec, &creds) {
                Ok(client) => {
                    restore::run(client, repo, req, progress, Arc::clone(&entry.cancel)).await
                }
                Err(e) => Err(restore::RestoreError::Graph(e)),
            };
            match outcome {
                Ok(mut report) => {
                    let truncated = report.items.len() > MAX_REPORT_ITEMS;
                    report.items.truncate(MAX_REPORT_ITEMS);
                    let mut v = serde_json::to_value(&report).unwrap_or_default();
                    v["items_truncated"] = truncated.into();
                    let done = report.restored + report.skipped + report.failed.len() as u64;
                    jobs.finish(&entry, JobState::Done, v, done);
                }
                Err(restore::RestoreError::Cancelled) => {
                    let v = serde_json::json!({"error": "cancelled"});
                    jobs.finish(&entry, JobState::Cancelled, v, 0);
                }
                Err(e) => {
                    let v = serde_json::json!({"error": e.to_string()});
                    jobs.finish(&entry, JobState::Failed, v, 0);
                }
            }
        });
        job
    }

    /// Starts exporting `paths` of `task` at `run` as `owner`.
    pub fn start_export(
        self: &Arc<Self>,
        owner: &str,
        task: &TaskSpec,
        repo: Repository,
        run: RunId,
        paths: Vec<String>,
        format: ExportFormat,
    ) -> Job {
        let job = Job {
            format: Some(format),
            ..new_job(JobKind::Export, owner, task, run, paths.clone())
        };
        let entry = self.register(&job, None);
        let jobs = Arc::clone(self);
        let (id, task_name) = (job.id.clone(), task.name.clone());
        tracing::info!(job = %job.id, task = %task.name, owner, "export started");
        self.runtime.spawn_blocking(move || {
            let tmp = jobs.exports_dir.join(format!("{id}.tmp"));
            let result = write_export(&repo, run, &paths, format, &tmp, &entry);
            match result {
                Ok((report, ext)) => {
                    let file = jobs.exports_dir.join(format!("{id}.{ext}"));
                    if let Err(e) = std::fs::rename(&tmp, &file) {
                        let _ = std::fs::remove_file(&tmp);
                        let v = serde_json::json!({"error": format!("export file: {e}")});
                        jobs.finish(&entry, JobState::Failed, v, 0);
                        return;
                    }
                    let name = format!(
                        "{}-run{}.{ext}",
                        crate::export::names::sanitize_component(&task_name),
                        run.0
                    );
                    if let Ok(mut f) = entry.file.lock() {
                        *f = Some(file);
                    }
                    if let Ok(mut j) = entry.job.lock() {
                        j.file_name = Some(name);
                    }
                    let v = serde_json::to_value(&report).unwrap_or_default();
                    jobs.finish(&entry, JobState::Done, v, report.items);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    if entry.cancel.load(Ordering::Relaxed) {
                        let v = serde_json::json!({"error": "cancelled"});
                        jobs.finish(&entry, JobState::Cancelled, v, 0);
                    } else {
                        let v = serde_json::json!({"error": e.to_string()});
                        jobs.finish(&entry, JobState::Failed, v, 0);
                    }
                }
            }
        });
        job
    }
}

fn new_job(kind: JobKind, owner: &str, task: &TaskSpec, run: RunId, paths: Vec<String>) -> Job {
    Job {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind,
        task: task.name.clone(),
        owner: owner.to_owned(),
        state: JobState::Running,
        progress: JobProgress::default(),
        started_at: now_text(),
        ended_at: None,
        run: run.0,
        paths,
        target_user: None,
        target_folder: None,
        format: None,
        result: serde_json::Value::Null,
        download: None,
        file_name: None,
    }
}

fn write_record(dir: &Path, job: &Job) {
    let path = dir.join(format!("{}.json", job.id));
    let tmp = dir.join(format!("{}.json.tmp", job.id));
    let result = serde_json::to_vec_pretty(job)
        .map_err(io::Error::other)
        .and_then(|b| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&b)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        });
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the job record");
    }
}

/// A file writer that counts bytes and stops when the job is cancelled.
struct Counted {
    file: io::BufWriter<std::fs::File>,
    written: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("the export was cancelled"));
        }
        let n = self.file.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn write_export(
    repo: &Repository,
    run: RunId,
    paths: &[String],
    format: ExportFormat,
    tmp: &Path,
    entry: &Entry,
) -> Result<(crate::export::ExportReport, &'static str), crate::export::ExportError> {
    let file = std::fs::File::create(tmp)?;
    let mut out = Counted {
        file: io::BufWriter::with_capacity(1 << 20, file),
        written: Arc::clone(&entry.written),
        cancel: Arc::clone(&entry.cancel),
    };
    let (report, ext) = match format {
        ExportFormat::Zip => (
            crate::export::export_zip(repo, run, paths, &mut out)?,
            "zip",
        ),
        ExportFormat::Mbox => {
            if crate::export::mail_folders_with_mail(repo, run, paths)? > 1 {
                (
                    crate::export::export_mbox_per_folder(repo, run, paths, &mut out)?,
                    "zip",
                )
            } else {
                (
                    crate::export::export_mbox(repo, run, paths, &mut out)?,
                    "mbox",
                )
            }
        }
    };
    out.flush()?;
    out.file
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok((report, ext))
}
