//! Backup benchmark: a 50-mailbox simulated tenant with Exchange-like limits on, backed up by the
//! `backhome` binary in a child process; prints Graph requests per second against what the
//! limits allow, items per second, MB/s and the child's peak RSS, then the request count of a
//! no-change incremental run.
//!
//! `cargo bench --bench backup` (set `BACKHOME_BENCH_MESSAGES` to change messages per mailbox).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backhome::task::{Credentials, Service, TaskSpec, TaskStore};
use graph_sim::{Profile, SimOptions, Simulator};

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

fn run_backup(data: &std::path::Path) -> (serde_json::Value, Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backhome"))
        .arg("--data-dir")
        .arg(data)
        .args(["backup", "--task", "bench", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(vm_hwm_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("backup printed its summary");
    (summary, elapsed, peak)
}

#[actix_web::main]
async fn main() {
    let messages: usize = std::env::var("BACKHOME_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Bench);
    opts.users = Some(50);
    opts.messages_per_user = Some(messages);
    opts.files_per_user = Some(10);
    opts.throttle.enabled = true;
    opts.latency_ms = 10;
    opts.workers = 2;
    opts.state_dir = Some(dir.path().join("sim"));
    let latency = opts.latency_ms;
    let per_mailbox = opts.throttle.mailbox_concurrency;
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
    .with_services(&[Service::Mail]);
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).unwrap(),
        password: r.cert_password.clone(),
    };
    TaskStore::open(&data)
        .unwrap()
        .create(&spec, &creds)
        .unwrap();

    // Run the child on a blocking thread so the in-process simulator keeps serving.
    let d = data.clone();
    let (full, elapsed, peak_kb) = tokio::task::spawn_blocking(move || run_backup(&d))
        .await
        .unwrap();
    let requests = full["graph_requests"].as_u64().unwrap_or(0) as f64;
    let items = full["items_added"].as_u64().unwrap_or(0) as f64;
    let bytes = full["bytes_downloaded"].as_u64().unwrap_or(0) as f64;
    let secs = elapsed.as_secs_f64();
    let mailboxes_at_once = backhome::backup::OBJECTS_AT_ONCE.min(50) as f64;
    let ceiling = mailboxes_at_once * per_mailbox as f64 * 1000.0 / latency as f64;
    println!(
        "backup of 50 mailboxes × {messages} messages, Exchange-like limits ({per_mailbox} concurrent per mailbox), {latency} ms service time"
    );
    println!("  time                 {secs:.1} s");
    println!(
        "  Graph requests       {requests:.0} ({:.0} req/s)",
        requests / secs
    );
    println!(
        "  limits allow         {ceiling:.0} req/s for the {mailboxes_at_once:.0} mailboxes backed up at once → {:.0} % of it",
        100.0 * requests / secs / ceiling
    );
    println!(
        "  items                {items:.0} ({:.0} items/s)",
        items / secs
    );
    println!(
        "  content              {:.1} MB ({:.1} MB/s)",
        bytes / 1e6,
        bytes / 1e6 / secs
    );
    println!("  peak RSS (backhome)  {:.1} MB", peak_kb as f64 / 1024.0);
    let d = data.clone();
    let (again, elapsed2, _) = tokio::task::spawn_blocking(move || run_backup(&d))
        .await
        .unwrap();
    println!(
        "no-change incremental: {} Graph requests, {} bytes downloaded, {:.1} s",
        again["graph_requests"],
        again["bytes_downloaded"],
        elapsed2.as_secs_f64()
    );
    sim.stop().await;
}
