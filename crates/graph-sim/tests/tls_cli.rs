//! HTTPS with the generated CA certificate, and the `graph-sim` binary's command line and
//! ready line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;

use graph_sim::{Profile, SimOptions};

#[tokio::test]
async fn https_with_the_written_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = SimOptions::new(Profile::Tiny);
    o.tls = true;
    o.state_dir = Some(dir.path().to_path_buf());
    let sim = graph_sim::Simulator::start(o).await.unwrap();
    let ready = sim.ready().clone();
    assert!(ready.graph_endpoint.starts_with("https://127.0.0.1:"));
    let ca = std::fs::read(ready.ca_cert.as_ref().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let token = common::fetch_token(&http, &ready, true).await;
    let r = http
        .get(format!("{}/v1.0/users", ready.graph_endpoint))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let written: graph_sim::Ready =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ready.json")).unwrap())
            .unwrap();
    assert_eq!(written, ready);
    // Without the CA the connection is refused.
    assert!(
        reqwest::Client::new()
            .get(format!("{}/v1.0/users", ready.graph_endpoint))
            .send()
            .await
            .is_err()
    );
    sim.stop().await;
}

#[test]
fn binary_prints_the_ready_line_and_writes_ready_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graph-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--profile",
            "tiny",
            "--seed",
            "42",
            "--users",
            "6",
            "--messages-per-user",
            "3",
            "--files-per-user",
            "2",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    for k in [
        "graph_endpoint",
        "login_endpoint",
        "tenant_id",
        "app_id",
        "cert_pfx",
        "cert_password",
        "control_endpoint",
    ] {
        assert!(ready[k].is_string(), "{k} in {line}");
    }
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ready.json")).unwrap())
            .unwrap();
    assert_eq!(file, ready);
    assert!(std::path::Path::new(ready["cert_pfx"].as_str().unwrap()).exists());
    child.kill().unwrap();
    child.wait().unwrap();
}
