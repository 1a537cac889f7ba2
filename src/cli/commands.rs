//! What each command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use backhome_store::{CreateOptions, Repository, RunId, VerifyMode};

use super::browse;
use crate::backup::{self, Progress};
use crate::task::{AutoDiscovery, Credentials, Retention, Schedule, Service, TaskSpec, TaskStore};

/// `backhome task create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Unique task name.
    #[arg(long)]
    pub name: String,
    /// Directory (tenant) ID or domain.
    #[arg(long)]
    pub tenant_id: String,
    /// Application (client) ID.
    #[arg(long)]
    pub app_id: String,
    /// The app's certificate, a password-protected .pfx.
    #[arg(long)]
    pub cert: PathBuf,
    /// A file holding the certificate's password.
    #[arg(long)]
    pub cert_password_file: PathBuf,
    /// global, usgov, usgovdod or china.
    #[arg(long, default_value = "global")]
    pub cloud: String,
    /// Explicit login endpoint (with --graph-endpoint).
    #[arg(long, requires = "graph_endpoint")]
    pub login_endpoint: Option<String>,
    /// Explicit Graph endpoint (with --login-endpoint).
    #[arg(long, requires = "login_endpoint")]
    pub graph_endpoint: Option<String>,
    /// Extra CA certificate (PEM) to trust for the endpoints.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Services, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<Service>,
    /// Only these users (repeatable).
    #[arg(long)]
    pub include_user: Vec<String>,
    /// Never these users (repeatable).
    #[arg(long)]
    pub exclude_user: Vec<String>,
    /// Never these sites (repeatable).
    #[arg(long)]
    pub exclude_site: Vec<String>,
    /// Where the task's repository lives (default: under the data dir).
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// `backhome task create`: checks the certificate, stores the task with its secrets sealed.
///
/// # Errors
/// Bad input, named.
pub fn task_create(data: &Path, a: CreateArgs) -> anyhow::Result<()> {
    let pfx = std::fs::read(&a.cert)
        .with_context(|| format!("reading the certificate {}", a.cert.display()))?;
    let password = std::fs::read_to_string(&a.cert_password_file)
        .with_context(|| {
            format!(
                "reading the password file {}",
                a.cert_password_file.display()
            )
        })?
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    let cloud = if a.login_endpoint.is_some() {
        "custom".to_owned()
    } else {
        a.cloud.to_ascii_lowercase()
    };
    let spec = TaskSpec {
        repo: a
            .repo
            .unwrap_or_else(|| data.join("repositories").join(&a.name)),
        name: a.name,
        cloud,
        login_endpoint: a.login_endpoint,
        graph_endpoint: a.graph_endpoint,
        ca_cert: a.ca_cert,
        tenant_id: a.tenant_id,
        app_id: a.app_id,
        admin_email: None,
        services: if a.services.is_empty() {
            Service::ALL.into_iter().collect()
        } else {
            a.services.into_iter().collect()
        },
        include_users: a.include_user,
        exclude_users: a.exclude_user,
        include_groups: vec![],
        exclude_groups: vec![],
        include_sites: vec![],
        exclude_sites: a.exclude_site,
        auto_discovery: AutoDiscovery::default(),
        schedule: Schedule::Manual,
        retention: Retention::KeepAll,
        portal: false,
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    let creds = Credentials { pfx, password };
    // The certificate must open now, not at the first run.
    crate::connect::client(&spec, &creds)?;
    TaskStore::open(data)?.create(&spec, &creds)?;
    println!(
        "task '{}' created; repository {}",
        spec.name,
        spec.repo.display()
    );
    Ok(())
}

/// `backhome task list`.
///
/// # Errors
/// The task database failed.
pub fn task_list(data: &Path) -> anyhow::Result<()> {
    for t in TaskStore::open(data)?.list()? {
        println!("{}\t{}\t{}", t.name, t.tenant_id, t.repo.display());
    }
    Ok(())
}

/// `backhome task show NAME`: the definition as JSON (never the secrets).
///
/// # Errors
/// No such task.
pub fn task_show(data: &Path, name: &str) -> anyhow::Result<()> {
    let t = TaskStore::open(data)?.get(name)?;
    println!("{}", serde_json::to_string_pretty(&t)?);
    Ok(())
}

/// `backhome task delete NAME`.
///
/// # Errors
/// No such task.
pub fn task_delete(data: &Path, name: &str) -> anyhow::Result<()> {
    TaskStore::open(data)?.delete(name)?;
    println!("task '{name}' deleted; its repository was kept");
    Ok(())
}

pub(crate) fn open_repo(spec: &TaskSpec, create: bool) -> anyhow::Result<Repository> {
    if !spec.repo.join("config.json").exists() && create {
        if let Some(parent) = spec.repo.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        return Repository::create(&spec.repo, &CreateOptions::default())
            .with_context(|| format!("creating the repository {}", spec.repo.display()));
    }
    Repository::open(&spec.repo, None)
        .with_context(|| format!("opening the repository {}", spec.repo.display()))
}

/// `backhome backup --task NAME`: exit code 0 complete, 2 complete with item errors, 1 failed.
///
/// # Errors
/// A run-stopping failure.
pub async fn backup(data: &Path, task: &str, json: bool) -> anyhow::Result<i32> {
    let store = TaskStore::open(data)?;
    let spec = store.get(task)?;
    let creds = store.credentials(task)?;
    drop(store);
    let client = crate::connect::client(&spec, &creds)?;
    let repo = open_repo(&spec, true)?;
    let progress = Arc::new(Progress::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&cancel);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let ticker = (!json).then(|| {
        let p = Arc::clone(&progress);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let s = p.snapshot();
                eprint!(
                    "\r{} new, {} changed, {} deleted, {} unchanged, {:.1} MB   ",
                    s.items_added,
                    s.items_changed,
                    s.items_deleted,
                    s.items_unchanged,
                    s.bytes_downloaded as f64 / 1e6
                );
            }
        })
    });
    let result = backup::run(client, repo, &spec, progress, cancel).await;
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    let summary = result.map_err(|e| anyhow::anyhow!("backup failed: {e}"))?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "run {} {}: {} new, {} changed, {} deleted, {} bytes downloaded, {} Graph requests, {} item errors",
            summary.run_id,
            summary.status,
            summary.items_added,
            summary.items_changed,
            summary.items_deleted,
            summary.bytes_downloaded,
            summary.graph_requests,
            summary.errors.len()
        );
        for e in &summary.errors {
            println!("  {}: {}", e.path, e.reason);
        }
    }
    Ok(if summary.errors.is_empty() { 0 } else { 2 })
}

/// `backhome runs --task NAME`.
///
/// # Errors
/// No such task or repository.
pub fn runs(data: &Path, task: &str, json: bool) -> anyhow::Result<()> {
    let spec = TaskStore::open(data)?.get(task)?;
    let repo = open_repo(&spec, false)?;
    let runs = repo.runs()?;
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    if json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "run_id": r.id.0, "status": r.status.as_str(), "started": fmt(r.started),
                    "finished": r.finished.map(fmt), "counters": r.counters, "snapshot": r.snapshot,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        for r in runs {
            println!(
                "{}\t{}\t{}\t{}",
                r.id.0,
                r.status.as_str(),
                fmt(r.started),
                r.finished.map(fmt).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `backhome verify --task NAME [--full]`: exit 0 when sound, 1 with the damage listed.
///
/// # Errors
/// No such task or repository.
pub fn verify(data: &Path, task: &str, full: bool) -> anyhow::Result<i32> {
    let spec = TaskStore::open(data)?.get(task)?;
    let repo = open_repo(&spec, false)?;
    let report = repo.verify(if full {
        VerifyMode::Full
    } else {
        VerifyMode::Quick
    })?;
    println!(
        "{} packs, {} blobs, {} bytes read",
        report.packs_checked, report.blobs_checked, report.bytes_read
    );
    if report.is_ok() {
        println!("repository is sound");
        return Ok(0);
    }
    for p in &report.damaged_packs {
        println!("damaged pack: {p:?}");
    }
    for b in &report.damaged_blobs {
        println!("damaged blob: {b:?}");
    }
    for a in &report.affected {
        println!("affected item: {a:?}");
    }
    Ok(1)
}

pub(crate) fn at_run(repo: &Repository, at: Option<&str>) -> anyhow::Result<RunId> {
    match at {
        None => repo
            .latest_run()?
            .context("the repository has no committed run yet"),
        Some(s) => {
            if let Ok(n) = s.parse::<i64>() {
                return Ok(RunId(n));
            }
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--at '{s}' is neither a run id nor an RFC 3339 time"))?;
            repo.run_at(t)?
                .with_context(|| format!("no run had finished at {s}"))
        }
    }
}

/// `backhome ls`.
///
/// # Errors
/// No such task, run or path.
pub fn ls(
    data: &Path,
    task: &str,
    at: Option<&str>,
    json: bool,
    recursive: bool,
    path: Option<&str>,
) -> anyhow::Result<()> {
    let spec = TaskStore::open(data)?.get(task)?;
    let repo = open_repo(&spec, false)?;
    let run = at_run(&repo, at)?;
    let entries = browse::list(&repo, run, path.unwrap_or("/"), recursive)?;
    if json {
        println!("{}", serde_json::to_string(&entries)?);
    } else {
        for e in entries {
            println!("{}\t{}\t{}", e.kind, e.size, e.path);
        }
    }
    Ok(())
}

/// `backhome cat`: the item's content, byte for byte.
///
/// # Errors
/// No such path, or the path is a folder.
pub fn cat(data: &Path, task: &str, at: Option<&str>, path: &str) -> anyhow::Result<()> {
    let spec = TaskStore::open(data)?.get(task)?;
    let repo = open_repo(&spec, false)?;
    let run = at_run(&repo, at)?;
    let browse::Target::Node(v) = browse::resolve(&repo, run, path)? else {
        bail!("{path} is a folder; use ls");
    };
    let Some(content) = v.content else {
        bail!("{path} is a folder; use ls");
    };
    let mut reader = repo.read_content(content.id)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut reader, &mut out).context("writing the content")?;
    out.flush()?;
    Ok(())
}
