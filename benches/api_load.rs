//! Load on the browsing API during a backup: a service over a Demo-profile tenant, backups
//! running back to back (the simulator slowed down and the tenant changing between them), and
//! 200 concurrent keep-alive clients browsing, opening items and searching for ~20 s (override
//! with `BACKHOME_LOAD_SECONDS`). Prints requests, throughput, p50/p90/p99/max latency and errors.
//! Run with `cargo bench --bench api_load`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backhome::task::Service;
use common::service::{self, upns};
use graph_sim::{Profile, SimOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENTS: usize = 200;

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
    /// Folders to list and items to open.
    folders: Vec<String>,
    items: Vec<String>,
    words: Vec<String>,
}

impl Client {
    async fn get(&self, path: &str) -> Result<(), String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let st = r.status();
        r.bytes().await.map_err(|e| e.to_string())?;
        if st == StatusCode::OK {
            Ok(())
        } else {
            Err(format!("{path}: {st}"))
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let seconds: u64 = std::env::var("BACKHOME_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let env = common::env_with(
        &[Service::Mail, Service::Onedrive, Service::Calendar],
        SimOptions::new(Profile::Demo),
    )
    .await;
    let s = service::start_with(env, |_| {}).await;
    let t0 = Instant::now();
    let first = s.env.backup().await;
    println!(
        "first backup: {} items in {:.1} s",
        first.items_added,
        t0.elapsed().as_secs_f64()
    );
    let users = upns(&s.env);
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;

    // What the clients will open: every mail folder and some items of every account.
    let mut folders = Vec::new();
    let mut items = Vec::new();
    let mut words = Vec::new();
    for u in &users {
        for top in ["mail", "onedrive", "calendar"] {
            let (st, l) = admin
                .get(&format!(
                    "/api/v1/tasks/t/browse?path={}",
                    q(&format!("/users/{u}/{top}"))
                ))
                .await;
            if st != StatusCode::OK {
                continue;
            }
            for e in l["entries"].as_array().unwrap() {
                let p = e["path"].as_str().unwrap().to_owned();
                if e["kind"].as_str().unwrap().ends_with("folder") || e["kind"] == "calendar" {
                    let (_, sub) = admin
                        .get(&format!("/api/v1/tasks/t/browse?path={}", q(&p)))
                        .await;
                    for c in sub["entries"].as_array().unwrap().iter().take(20) {
                        if c["kind"] == "message" || c["kind"] == "file" || c["kind"] == "event" {
                            items.push(c["path"].as_str().unwrap().to_owned());
                            if let Some(w) = c["name"]
                                .as_str()
                                .unwrap()
                                .split_whitespace()
                                .find(|w| w.len() > 4 && w.chars().all(char::is_alphanumeric))
                            {
                                words.push(w.to_owned());
                            }
                        }
                    }
                    folders.push(p);
                } else if e["kind"] == "file" {
                    items.push(p);
                }
            }
        }
    }
    words.sort();
    words.dedup();
    assert!(!folders.is_empty() && !items.is_empty() && !words.is_empty());
    let alice_prefix = format!("/users/{}/", users[0]);
    println!(
        "{} folders, {} items, {} search words; {CLIENTS} clients for {seconds} s",
        folders.len(),
        items.len(),
        words.len()
    );

    // Backups run back to back during the load, against a slower tenant that keeps changing.
    s.env
        .control(Method::POST, "latency", Some(json!({"ms": 20})))
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let backups = Arc::new(AtomicU64::new(0));
    let backup_task = {
        let (stop, backups) = (Arc::clone(&stop), Arc::clone(&backups));
        let control = s.env.sim.ready().control_endpoint.clone();
        let users = users.clone();
        let client = backhome::connect::client(&s.env.spec, &s.env.creds).unwrap();
        let (repo, spec) = (s.env.repo.clone(), s.env.spec.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let ops: Vec<Value> = users
                    .iter()
                    .flat_map(|u| {
                        (0..5).map(
                            move |_| json!({"op": "add_message", "user": u, "folder": "inbox"}),
                        )
                    })
                    .collect();
                http.post(format!("{control}/mutate"))
                    .json(&Value::Array(ops))
                    .send()
                    .await
                    .unwrap();
                let summary = backhome::backup::run(
                    client.clone(),
                    repo.clone(),
                    &spec,
                    Arc::new(backhome::backup::Progress::default()),
                    Arc::new(AtomicBool::new(false)),
                )
                .await
                .unwrap();
                assert!(summary.errors.is_empty(), "{:?}", summary.errors);
                backups.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut handles = Vec::new();
    for i in 0..CLIENTS {
        let portal = i % 4 == 3;
        let (sess, filter) = if portal {
            (&alice, Some(alice_prefix.clone()))
        } else {
            (&admin, None)
        };
        let keep = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .filter(|p| filter.as_ref().is_none_or(|f| p.starts_with(f)))
                .cloned()
                .collect()
        };
        let c = Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap(),
            base: s.base.clone(),
            cookie: sess.cookie.clone(),
            folders: keep(&folders),
            items: keep(&items),
            words: words.clone(),
        };
        let (errors, first_error) = (Arc::clone(&errors), Arc::clone(&first_error));
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n: usize = i * 7919;
            while Instant::now() < deadline {
                n = n
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let pick = |v: &Vec<String>| v[(n >> 33) % v.len()].clone();
                let path = match (n >> 20) % 10 {
                    0..=4 => format!("/api/v1/tasks/t/browse?path={}", q(&pick(&c.folders))),
                    5..=7 => format!("/api/v1/tasks/t/item?path={}", q(&pick(&c.items))),
                    _ => format!("/api/v1/tasks/t/search?q={}&limit=20", q(&pick(&c.words))),
                };
                let t = Instant::now();
                let r = c.get(&path).await;
                lat.push(t.elapsed());
                if let Err(e) = r {
                    errors.fetch_add(1, Ordering::Relaxed);
                    let mut f = first_error.lock().unwrap();
                    if f.is_none() {
                        *f = Some(e);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    backup_task.await.unwrap();
    all.sort();
    let n = all.len();
    println!(
        "api_load: {n} requests in {seconds} s ({:.0}/s), {} backups completed during the load",
        n as f64 / seconds as f64,
        backups.load(Ordering::Relaxed)
    );
    println!(
        "latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.9).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let errors = errors.load(Ordering::Relaxed);
    println!("errors: {errors}");
    if let Some(e) = first_error.lock().unwrap().take() {
        println!("first error: {e}");
    }
    s.handle.stop(false).await;
}
