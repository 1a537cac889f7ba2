//! Backup benchmark: a 50-mailbox simulated tenant with Exchange-like limits on, backed up by the
//! `backhome` binary in a child process; prints Graph requests per second against the most the
//! limits allow, items per second, MB/s, the child's peak RSS and the CPU time both sides used,
//! then the request count of a no-change incremental run and the bound it must stay within.
//!
//! `cargo bench --bench backup`. Environment: `BACKHOME_BENCH_MESSAGES` (messages per mailbox,
//! default 200), `BACKHOME_BENCH_SERVICE_MS` (the simulator's service time per request, default
//! 500 ms), `BACKHOME_BENCH_BIN` (the `backhome` binary to measure, e.g. the static musl one that
//! `spk/build.sh` builds for the NAS; default the one cargo built with the bench).
//!
//! The ceiling is what the simulator's limits allow for this tenant's work, not what the engine
//! chooses: every mailbox may have `mailbox_concurrency` requests in flight, each taking at least
//! the service time, and at most `mailbox_requests` per window. A mailbox that needed `R`
//! requests therefore needs at least `max(R × service / concurrency, (⌈R / budget⌉ − 1) ×
//! window)`; mailboxes run side by side, so the whole backup needs at least the longest of those,
//! and the ceiling is the mailbox requests divided by that time. Requests the simulator answered
//! with 429 are not counted as work.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backhome::task::{Credentials, Service, TaskSpec, TaskStore};
use graph_sim::{Profile, SimOptions, Simulator};

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on Linux).
const TICKS: f64 = 100.0;

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

/// This process's CPU seconds: (own user + system, waited-for children's user + system).
fn own_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name.
    ((f[11] + f[12]) / TICKS, (f[13] + f[14]) / TICKS)
}

/// The whole machine's (busy, total) CPU ticks.
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f[3] + f[4];
    (total - idle, total)
}

struct Run {
    summary: serde_json::Value,
    elapsed: Duration,
    peak_kb: u64,
    child_cpu: f64,
    bench_cpu: f64,
    machine_busy: f64,
}

fn run_backup(data: &std::path::Path) -> Run {
    let (own0, children0) = own_cpu();
    let (busy0, total0) = machine_ticks();
    let started = Instant::now();
    let bin = std::env::var_os("BACKHOME_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_backhome").into());
    let mut child = Command::new(bin)
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
    let (own1, children1) = own_cpu();
    let (busy1, total1) = machine_ticks();
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("backup printed its summary");
    Run {
        summary,
        elapsed,
        peak_kb: peak,
        child_cpu: children1 - children0,
        bench_cpu: own1 - own0,
        machine_busy: (busy1 - busy0) / (total1 - total0).max(1.0),
    }
}

/// Bytes the files under `dir` occupy.
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// Per-mailbox counts from a counters snapshot map (`"3": 120`).
fn per_mailbox(v: &serde_json::Value) -> BTreeMap<u32, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.parse().ok()?, n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::main]
async fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let messages = env("BACKHOME_BENCH_MESSAGES", 200) as usize;
    let service_ms = env("BACKHOME_BENCH_SERVICE_MS", 500);
    let users = 50;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Bench);
    opts.users = Some(users);
    opts.messages_per_user = Some(messages);
    opts.files_per_user = Some(10);
    opts.throttle.enabled = true;
    opts.latency_ms = service_ms;
    opts.workers = 2;
    opts.state_dir = Some(dir.path().join("sim"));
    let limits = opts.throttle.clone();
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
    let state = sim.state().clone();
    let mut folders = 0u64;
    let mut mailboxes = 0u64;
    for idx in 0..u32::try_from(users).unwrap() {
        if let Some(cell) = state.tenant.mailbox(idx) {
            mailboxes += 1;
            folders += state
                .tenant
                .with_mailbox(&cell, |m| m.folders.iter().flatten().count())
                as u64;
        }
    }
    state.counters.reset();
    state.throttle.reset();

    // Run the child on a blocking thread so the in-process simulator keeps serving.
    let d = data.clone();
    let full = tokio::task::spawn_blocking(move || run_backup(&d))
        .await
        .unwrap();
    let counters = state.counters.snapshot();
    let requests = full.summary["graph_requests"].as_u64().unwrap_or(0) as f64;
    let items = full.summary["items_added"].as_u64().unwrap_or(0) as f64;
    let bytes = full.summary["bytes_downloaded"].as_u64().unwrap_or(0) as f64;
    let secs = full.elapsed.as_secs_f64();

    // The ceiling: the least time the limits allow for each mailbox's admitted requests.
    let throttled_by = per_mailbox(&counters["throttled_by_mailbox"]);
    let admitted: BTreeMap<u32, u64> = per_mailbox(&counters["requests_by_mailbox"])
        .into_iter()
        .map(|(mb, n)| (mb, n - throttled_by.get(&mb).copied().unwrap_or(0)))
        .collect();
    let service = service_ms as f64 / 1000.0;
    let concurrency = limits.mailbox_concurrency as f64;
    let window = limits.window_ms as f64 / 1000.0;
    let least_secs = |n: u64| {
        let by_slots = n as f64 * service / concurrency;
        let by_budget = (n.div_ceil(limits.mailbox_requests).max(1) - 1) as f64 * window;
        by_slots.max(by_budget)
    };
    let mailbox_requests: u64 = admitted.values().sum();
    let least = admitted
        .values()
        .map(|n| least_secs(*n))
        .fold(0.0, f64::max);
    let ceiling = mailbox_requests as f64 / least.max(f64::EPSILON);
    let achieved = mailbox_requests as f64 / secs;
    let max_concurrency = per_mailbox(&counters["max_concurrency_by_mailbox"])
        .into_values()
        .max()
        .unwrap_or(0);
    let per_mb_rate = (concurrency / service).min(limits.mailbox_requests as f64 / window);

    println!(
        "backup of {users} users ({mailboxes} mailboxes, {folders} mail folders) × {messages} messages"
    );
    if let Some(bin) = std::env::var_os("BACKHOME_BENCH_BIN") {
        println!("  binary               {}", bin.to_string_lossy());
    }
    println!(
        "  limits (simulator)   {} concurrent per mailbox, {} requests per {:.0} s per mailbox, service time {service_ms} ms",
        limits.mailbox_concurrency, limits.mailbox_requests, window
    );
    println!(
        "                       → at most {per_mb_rate:.1} req/s per mailbox while it has work"
    );
    println!("  time                 {secs:.1} s");
    println!(
        "  Graph requests       {requests:.0} ({:.0} req/s; {mailbox_requests} to mailboxes, {:.0} req/s)",
        requests / secs,
        achieved
    );
    println!(
        "  limits allow         {ceiling:.0} req/s to mailboxes (this work in {least:.1} s at least) → {:.0} % of it",
        100.0 * achieved / ceiling
    );
    println!(
        "  429s (simulator)     {} throttled; highest concurrency on one mailbox {max_concurrency}",
        counters["throttled"]
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
    println!(
        "  peak RSS (backhome)  {:.1} MB",
        full.peak_kb as f64 / 1024.0
    );
    println!(
        "  repository           {:.1} MB on disk",
        disk_usage(&dir.path().join("repo")) as f64 / 1e6
    );
    println!(
        "  CPU                  backhome {:.1} s ({:.0} % of one core), simulator + bench {:.1} s ({:.0} %), whole machine {:.0} % busy",
        full.child_cpu,
        100.0 * full.child_cpu / secs,
        full.bench_cpu,
        100.0 * full.bench_cpu / secs,
        100.0 * full.machine_busy
    );

    state.counters.reset();
    let d = data.clone();
    let again = tokio::task::spawn_blocking(move || run_backup(&d))
        .await
        .unwrap();
    let objects = mailboxes;
    // The bound: one request per container (a folder's delta round) plus a small
    // constant per object (the folder tree's listings: the top level and the few folders with
    // subfolders) and per run (token, discovery).
    let bound = folders + 5 * objects + 10;
    let sent = again.summary["graph_requests"].as_u64().unwrap_or(0);
    println!(
        "no-change incremental: {sent} Graph requests (bound {bound}: {folders} folders + 5 × {objects} mailboxes + 10), {} bytes downloaded, {:.1} s",
        again.summary["bytes_downloaded"],
        again.elapsed.as_secs_f64()
    );
    println!(
        "  by kind (simulator)  {}",
        state.counters.snapshot()["requests_by_kind"]
    );
    if sent > bound {
        println!("  OVER THE BOUND");
    }
    sim.stop().await;
}
