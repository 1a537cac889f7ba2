//! Restore and export benchmark. A simulated tenant with Exchange-like limits on is backed up;
//! then mail and OneDrive files are restored (keep-both, so everything is written) and the
//! restore's items/s, MB/s and Graph requests/s are printed against what the limits allow; then
//! a large OneDrive selection (5 GB of generated files by default) is exported to a ZIP file by
//! the `backhome` binary in a child process, printing MB/s and the child's peak RSS.
//!
//! `cargo bench --bench restore`; `BACKHOME_BENCH_EXPORT_MB` sets the export size in MB
//! (default 5000), `BACKHOME_BENCH_MESSAGES` the messages per mailbox (default 100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backhome::backup::{self, Progress};
use backhome::restore::{self, Conflict, RestoreProgress, RestoreRequest};
use backhome::task::{Credentials, Service, TaskSpec, TaskStore};
use backhome_store::{CreateOptions, Repository, RunId};
use graph_sim::{Profile, SimOptions, Simulator};
use serde_json::{Value, json};

/// Mailboxes and OneDrives restored.
const USERS: usize = 4;

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `backhome export` to `out`; (elapsed, peak RSS in kB).
fn run_export(data: &std::path::Path, path: &str, out: &std::path::Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backhome"))
        .arg("--data-dir")
        .arg(data)
        .args(["export", "--task", "bench", "--format", "zip", "--out"])
        .arg(out)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(vm_hwm_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    (started.elapsed(), peak)
}

async fn control(endpoint: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{endpoint}/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[allow(clippy::too_many_arguments)]
async fn bench_restore(
    what: &str,
    spec: &TaskSpec,
    creds: &Credentials,
    repo: &Repository,
    run: RunId,
    paths: Vec<String>,
    ceiling: f64,
    limits: &str,
) {
    let client = backhome::connect::client(spec, creds).unwrap();
    let progress = Arc::new(RestoreProgress::default());
    let started = Instant::now();
    let report = restore::run(
        client,
        repo.clone(),
        RestoreRequest {
            run,
            paths,
            target_user: None,
            target_folder: None,
            conflict: Conflict::KeepBoth,
        },
        Arc::clone(&progress),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let bytes = progress.bytes_uploaded.load(Ordering::Relaxed) as f64;
    let requests = report.graph_requests as f64;
    println!("restore of {what}: {limits}");
    println!("  time                 {secs:.1} s");
    println!(
        "  items restored       {} ({:.1} items/s), {} failed",
        report.restored,
        report.restored as f64 / secs,
        report.failed.len()
    );
    println!(
        "  content uploaded     {:.1} MB ({:.2} MB/s)",
        bytes / 1e6,
        bytes / 1e6 / secs
    );
    println!(
        "  Graph requests       {requests:.0} ({:.0} req/s; the limits allow {ceiling:.0} req/s → {:.0} % of it)",
        requests / secs,
        100.0 * requests / secs / ceiling
    );
}

#[actix_web::main]
async fn main() {
    let messages: usize = std::env::var("BACKHOME_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let export_mb: u64 = std::env::var("BACKHOME_BENCH_EXPORT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Bench);
    opts.users = Some(USERS + 4);
    opts.messages_per_user = Some(messages);
    opts.files_per_user = Some(40);
    opts.throttle.enabled = true;
    opts.latency_ms = 10;
    opts.workers = 2;
    opts.state_dir = Some(dir.path().join("sim"));
    let latency = opts.latency_ms as f64;
    let per_mailbox = opts.throttle.mailbox_concurrency as f64;
    let sim = Simulator::start(opts).await.unwrap();
    let r = sim.ready().clone();
    let data = dir.path().join("data");
    let spec = TaskSpec::new(
        "bench",
        r.tenant_id.clone(),
        r.app_id.clone(),
        dir.path().join("repo"),
    )
    .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
    .with_services(&[Service::Mail, Service::Onedrive]);
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).unwrap(),
        password: r.cert_password.clone(),
    };
    TaskStore::open(&data)
        .unwrap()
        .create(&spec, &creds)
        .unwrap();

    // The users; the last one gets the large files of the export.
    let client = backhome::connect::client(&spec, &creds).unwrap();
    let users: Value = client
        .json(backhome_graph::Call::get("/users?$top=100"))
        .await
        .unwrap();
    // Users with a mailbox and a OneDrive (rooms and shared mailboxes have no drive).
    let mut upns: Vec<String> = Vec::new();
    for u in users["value"].as_array().unwrap() {
        let Some(upn) = u["userPrincipalName"].as_str() else {
            continue;
        };
        let drive = client
            .json::<Value>(backhome_graph::Call::get(format!("/users/{upn}/drive")))
            .await;
        if drive.is_ok() && upns.len() <= USERS {
            upns.push(upn.to_owned());
        }
    }
    assert!(upns.len() > USERS, "not enough users with a OneDrive");
    let big = upns.last().unwrap().clone();
    let files = export_mb.div_ceil(1000).max(1);
    let per_file = export_mb * 1_000_000 / files;
    for i in 0..files {
        let added = control(
            &r.control_endpoint,
            "mutate",
            json!({"op": "add_file", "drive": big, "name": format!("large-{i}.bin"), "size": per_file}),
        )
        .await;
        assert!(added["results"][0]["id"].is_string(), "{added}");
    }

    let repo = Repository::create(&spec.repo, &CreateOptions::default()).unwrap();
    let started = Instant::now();
    let summary = backup::run(
        backhome::connect::client(&spec, &creds).unwrap(),
        repo.clone(),
        &spec,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    println!(
        "backup of {} mailboxes and OneDrives (with {export_mb} MB of large files): {:.1} s, {} items, {:.1} MB",
        USERS + 1,
        started.elapsed().as_secs_f64(),
        summary.items_added,
        summary.bytes_downloaded as f64 / 1e6
    );
    let run = RunId(summary.run_id);
    let mailbox_ceiling = USERS as f64 * per_mailbox * 1000.0 / latency;
    bench_restore(
        &format!("{USERS} mailboxes × {messages} messages"),
        &spec,
        &creds,
        &repo,
        run,
        upns[..USERS]
            .iter()
            .map(|u| format!("/users/{u}/mail"))
            .collect(),
        mailbox_ceiling,
        &format!(
            "Exchange-like limits ({per_mailbox} concurrent requests per mailbox, 150 MB uploaded per mailbox per 5 min), {latency} ms service time"
        ),
    )
    .await;
    bench_restore(
        &format!("{USERS} OneDrives"),
        &spec,
        &creds,
        &repo,
        run,
        upns[..USERS]
            .iter()
            .map(|u| format!("/users/{u}/onedrive"))
            .collect(),
        USERS as f64 * per_mailbox * 1000.0 / latency,
        &format!("SharePoint resource-unit limits on, {latency} ms service time"),
    )
    .await;

    let out = dir.path().join("export.zip");
    let d = data.clone();
    let o = out.clone();
    let path = format!("/users/{big}/onedrive");
    let (elapsed, peak_kb) = tokio::task::spawn_blocking(move || run_export(&d, &path, &o))
        .await
        .unwrap();
    let size = std::fs::metadata(&out).unwrap().len() as f64;
    std::fs::remove_file(&out).unwrap();
    let secs = elapsed.as_secs_f64();
    println!("export of one OneDrive ({export_mb} MB of files) to a ZIP file:");
    println!("  time                 {secs:.1} s");
    println!(
        "  ZIP written          {:.1} MB ({:.1} MB/s)",
        size / 1e6,
        size / 1e6 / secs
    );
    println!("  peak RSS (backhome)  {:.1} MB", peak_kb as f64 / 1024.0);
    sim.stop().await;
}
