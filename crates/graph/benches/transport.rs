//! Transport figures against an in-process server: request rate with per-resource limits and
//! server latency, and streaming download speed. `cargo bench -p backhome-graph` prints the full
//! figures; under `cargo test` it runs a small smoke version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backhome_graph::{Call, Client, Limits};
use common::*;
use serde_json::{Value, json};

async fn rate(requests: usize, resources: usize, latency: Duration, limits: Limits) {
    let server = serve(move |req| async move {
        if is_token(&req) {
            return token_reply(&["Mail.Read"], 3600);
        }
        tokio::time::sleep(latency).await;
        Reply::json(200, &json!({"value": [{"id": "x", "subject": "s"}]}))
    })
    .await;
    let mut config = config(&server);
    config.limits = limits.clone();
    let client = Client::new(config, credential()).unwrap();
    client.sign_in().await.unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per_task = requests / resources;
    for r in 0..resources {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            // Each resource runs as many workers as its limit allows.
            let mbx = Arc::new(format!("mbx{r}"));
            let mut inner = Vec::new();
            for _ in 0..4 {
                let (c, mbx) = (c.clone(), mbx.clone());
                inner.push(tokio::spawn(async move {
                    for _ in 0..per_task / 4 {
                        c.json::<Value>(
                            Call::get(format!("/users/{mbx}/messages")).resource(mbx.as_str()),
                        )
                        .await
                        .unwrap();
                    }
                }));
            }
            for t in inner {
                t.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let done = client.stats().requests;
    let allowed = if latency.is_zero() {
        f64::NAN
    } else {
        (limits.global.min(resources * limits.per_resource)) as f64 / latency.as_secs_f64()
    };
    println!(
        "requests: {done} over {resources} resources, latency {latency:?}, limits {}/{}: {:.0} req/s{}",
        limits.global,
        limits.per_resource,
        done as f64 / secs,
        if allowed.is_nan() {
            String::new()
        } else {
            format!(
                " ({:.0} % of the {:.0} req/s the limits allow)",
                100.0 * done as f64 / secs / allowed,
                allowed
            )
        }
    );
}

async fn download(size: usize) {
    let data = Arc::new(vec![7u8; size]);
    let host = serve(move |_| {
        let data = data.clone();
        async move { Reply::raw(200, data.to_vec()) }
    })
    .await;
    let target = format!("{}/dl", host.base);
    let graph = serve(move |req| {
        let target = target.clone();
        async move {
            if is_token(&req) {
                token_reply(&["Files.Read.All"], 3600)
            } else {
                Reply::status(302).header("Location", &target)
            }
        }
    })
    .await;
    let client = client(&graph);
    let start = Instant::now();
    let mut d = client
        .download(Call::get("/drives/d/items/i/content"))
        .await
        .unwrap();
    let mut n = 0usize;
    while let Some(chunk) = futures_util::StreamExt::next(&mut d).await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, size);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "download: {} MiB in {secs:.2} s = {:.0} MiB/s",
        size >> 20,
        (size >> 20) as f64 / secs
    );
}

/// Against the simulator with Exchange-like limits (4 per mailbox) and `latency` per request.
async fn simulator_rate(requests_per_mailbox: usize, latency_ms: u64) {
    use graph_sim::{Profile, SimOptions, Simulator};
    let mut options = SimOptions::new(Profile::Tiny);
    options.throttle.enabled = true;
    options.latency_ms = latency_ms;
    let sim = Simulator::start(options).await.unwrap();
    let r = sim.ready().clone();
    let cloud = backhome_graph::Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap();
    let mut config =
        backhome_graph::ClientConfig::new(cloud, r.tenant_id.clone(), r.app_id.clone());
    config.limits = Limits {
        global: 64,
        per_resource: 4,
    };
    let credential =
        backhome_graph::Credential::from_pkcs12_file(&r.cert_pfx, &r.cert_password).unwrap();
    let client = Client::new(config, credential).unwrap();
    let users: Vec<backhome_graph::models::User> =
        futures_util::TryStreamExt::try_collect(client.items(Call::get("/users")))
            .await
            .unwrap();
    let mailboxes: Vec<String> = users
        .into_iter()
        .filter(|u| u.mail.is_some())
        .map(|u| u.id)
        .collect();
    let before = client.stats().requests;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mbx in &mailboxes {
        for _ in 0..8 {
            let (c, mbx) = (client.clone(), mbx.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..requests_per_mailbox / 8 {
                    c.json::<Value>(
                        Call::get(format!("/users/{mbx}/mailFolders")).resource(mbx.as_str()),
                    )
                    .await
                    .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let done = client.stats().requests - before;
    let allowed = (mailboxes.len() * 4) as f64 / (latency_ms as f64 / 1000.0);
    println!(
        "simulator: {done} requests on {} mailboxes, {latency_ms} ms service time, 4 per mailbox: {:.0} req/s = {:.0} % of the {allowed:.0} req/s the limits allow; 429s: {}",
        mailboxes.len(),
        done as f64 / secs,
        100.0 * done as f64 / secs / allowed,
        client.stats().throttled
    );
    sim.stop().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limits = Limits {
            global: 16,
            per_resource: 4,
        };
        if full {
            rate(4000, 20, Duration::ZERO, limits.clone()).await;
            rate(2000, 10, Duration::from_millis(20), limits.clone()).await;
            rate(800, 2, Duration::from_millis(20), limits).await;
            download(256 << 20).await;
            simulator_rate(400, 20).await;
        } else {
            rate(80, 4, Duration::from_millis(5), limits).await;
            download(4 << 20).await;
            simulator_rate(16, 5).await;
        }
    });
}
