//! `backhome restore --task NAME [--at RUN_ID|RFC3339] [--to-user UPN] [--to-folder NAME]
//! [--conflict skip|overwrite|keep-both] [--json] PATH…`.
//!
//! Exit codes as `backup`: 0 when every item was restored or skipped, 2 when some items failed
//! (listed with their reasons), 1 when the restore failed as a whole.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::commands::{at_run, open_repo};
use crate::restore::{self, Conflict, RestoreProgress, RestoreRequest};
use crate::task::TaskStore;

/// The arguments of `backhome restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The task.
    #[arg(long)]
    pub task: String,
    /// A run id or an RFC 3339 time; the newest run when absent.
    #[arg(long)]
    pub at: Option<String>,
    /// Restores into this account (UPN) instead of the original one.
    #[arg(long = "to-user")]
    pub to_user: Option<String>,
    /// Restores under a new folder of this name (e.g. "Restored 2026-11-24 14:30").
    #[arg(long = "to-folder")]
    pub to_folder: Option<String>,
    /// What to do with items that already exist: skip, overwrite or keep-both.
    #[arg(long, default_value = "skip", value_parser = parse_conflict)]
    pub conflict: Conflict,
    /// Prints one JSON report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Backup paths as `ls` prints them: items, folders, workloads or accounts.
    #[arg(required = true)]
    pub paths: Vec<String>,
}

fn parse_conflict(s: &str) -> Result<Conflict, String> {
    s.parse()
}

/// Runs `backhome restore`; returns the exit code.
///
/// # Errors
/// No such task, run or path; sign-in or repository failures.
pub async fn restore(data: &Path, a: RestoreArgs) -> anyhow::Result<i32> {
    let store = TaskStore::open(data)?;
    let spec = store.get(&a.task)?;
    let creds = store.credentials(&a.task)?;
    drop(store);
    let repo = open_repo(&spec, false)?;
    let run = at_run(&repo, a.at.as_deref())?;
    let client = crate::connect::client(&spec, &creds)?;
    let progress = Arc::new(RestoreProgress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&cancel);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
    let ticker = (!a.json).then(|| {
        let p = Arc::clone(&progress);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                eprint!(
                    "\r{}/{} items: {} restored, {} skipped, {} failed, {:.1} MB   ",
                    p.done(),
                    p.items_total.load(Ordering::Relaxed),
                    p.restored.load(Ordering::Relaxed),
                    p.skipped.load(Ordering::Relaxed),
                    p.failed.load(Ordering::Relaxed),
                    p.bytes_uploaded.load(Ordering::Relaxed) as f64 / 1e6
                );
            }
        })
    });
    let request = RestoreRequest {
        target_user: a.to_user,
        target_folder: a.to_folder,
        conflict: a.conflict,
        ..RestoreRequest::new(run, a.paths)
    };
    let result = restore::run(client, repo, request, progress, cancel).await;
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    let report = result.context("restore failed")?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "run {}: {} restored, {} skipped, {} failed, {} Graph requests",
            run,
            report.restored,
            report.skipped,
            report.failed.len(),
            report.graph_requests
        );
        for f in &report.failed {
            println!("  {}: {}", f.path, f.reason);
        }
        if report.items.iter().any(|i| i.path.starts_with("/teams/")) {
            println!(
                "  Teams conversations are imported into new channels named \"… (restored)\" with their original authors and times (Teams migration mode), or, without that permission, written as HTML transcripts under \"Restored conversations\" in the team's library. See docs/restore-limits.md."
            );
        }
    }
    Ok(if report.failed.is_empty() { 0 } else { 2 })
}
