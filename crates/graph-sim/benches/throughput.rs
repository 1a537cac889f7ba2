//! Throughput of the simulator: small JSON reads per second over keep-alive connections and
//! MB/s of streamed file downloads. Run with `cargo bench -p graph-sim`.
//! `GRAPH_SIM_BENCH_SECS` sets the duration of each phase (default 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graph_sim::{Profile, SimOptions, Simulator};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::var("GRAPH_SIM_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(Profile::Bench);
    options.state_dir = Some(dir.path().to_path_buf());
    let sim = Simulator::start(options).await.unwrap();
    let token = sim.state().access_token();
    let graph = format!("{}/v1.0", sim.ready().graph_endpoint);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let users: serde_json::Value = client
        .get(format!("{graph}/users?$top=50"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();

    // Phase 1: small JSON reads (GET /users/{id}) from 32 concurrent keep-alive connections.
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (client, token, graph, ids, count, errors) = (
            client.clone(),
            token.clone(),
            graph.clone(),
            ids.clone(),
            count.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while Instant::now() < deadline {
                let url = format!("{graph}/users/{}", ids[i % ids.len()]);
                i += 1;
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    println!(
        "small JSON reads: {n} requests in {elapsed:.2} s = {:.0} req/s ({} errors, 32 connections)",
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );

    // Phase 2: downloads of a 1 GiB generated file, 2 concurrent streams.
    let mutate = serde_json::json!({"op": "add_file", "drive": ids[0], "parent": "root", "name": "big.bin", "size": 1u64 << 30});
    let r: serde_json::Value = client
        .post(format!("{}/mutate", sim.ready().control_endpoint))
        .json(&mutate)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = r["results"][0]["id"].as_str().unwrap().to_string();
    let drive: serde_json::Value = client
        .get(format!("{graph}/users/{}/drive", ids[0]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = format!(
        "{graph}/drives/{}/items/{item}/content",
        drive["id"].as_str().unwrap()
    );
    let bytes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, token, content, bytes) = (
            client.clone(),
            token.clone(),
            content.clone(),
            bytes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client
                    .get(&content)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let url = r.headers()["location"].to_str().unwrap().to_string();
                let mut r = client.get(&url).send().await.unwrap();
                while let Some(chunk) = r.chunk().await.unwrap() {
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let b = bytes.load(Ordering::Relaxed);
    println!(
        "file downloads: {:.0} MiB in {elapsed:.2} s = {:.0} MB/s (2 streams)",
        b as f64 / 1048576.0,
        b as f64 / 1e6 / elapsed
    );
    sim.stop().await;
}
