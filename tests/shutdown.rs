//! The real `backhome serve` binary: SIGTERM during a backup exits 0 within 10 s and the next
//! start resumes the run to its end; after `kill -9` the service starts cleanly and resumes too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backhome::task::{Service as Workload, TaskSpec, TaskStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Serve {
    child: Child,
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

async fn serve(data: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backhome"))
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Keep reading, so the service never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    })
    .await
    .unwrap();
    let base = line.trim().trim_end_matches('/').to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line:?}");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"user": "admin", "password": "test-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = resp.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Serve {
        child,
        base,
        cookie,
        csrf,
        http,
    }
}

impl Serve {
    async fn call(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-syno-token", &self.csrf)
            .send()
            .await
            .unwrap();
        let st = resp.status();
        (st, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the task's run `id` is no longer running; returns it.
    async fn wait_run(&self, id: i64) -> Value {
        let t0 = Instant::now();
        loop {
            let (_, runs) = self.call(Method::GET, "/api/v1/tasks/t/runs").await;
            if let Some(r) = runs
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id && r["status"] != "running")
            {
                return r.clone();
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "{runs}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the live run has stored something.
    async fn wait_progress(&self) {
        let t0 = Instant::now();
        loop {
            let (st, p) = self.call(Method::GET, "/api/v1/tasks/t/progress").await;
            if st == StatusCode::OK && p["items_added"].as_u64().unwrap_or(0) > 0 {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no progress: {p}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_and_the_next_start_resumes() {
    let env = common::env(&[Workload::Mail]).await;
    let data = env.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.toml"),
        "listen = \"127.0.0.1:0\"\nsyslog = false\n[auth]\nbackend = \"static\"\n\
         [[auth.users]]\nname = \"admin\"\npassword = \"test-password\"\nadmin = true\n",
    )
    .unwrap();
    let spec = TaskSpec {
        repo: env.dir.path().join("repo-serve"),
        ..env.spec.clone()
    };
    TaskStore::open(&data)
        .unwrap()
        .create(&spec, &env.creds)
        .unwrap();
    // Slow Graph down so that the run is still going when the signal comes.
    env.control(Method::POST, "latency", Some(json!({"ms": 150})))
        .await;

    let mut s = serve(&data).await;
    let (st, run) = s.call(Method::POST, "/api/v1/tasks/t/runs").await;
    assert_eq!(st, StatusCode::ACCEPTED, "{run}");
    s.wait_progress().await;
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    let exit = loop {
        if let Some(e) = s.child.try_wait().unwrap() {
            break e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
    let log = std::fs::read_to_string(data.join("log/backhome.log")).unwrap();
    assert!(log.contains("backup cancelled at a checkpoint"), "{log}");

    // The next start resumes run 1 and finishes it.
    env.control(Method::POST, "latency", Some(json!({"ms": 0})))
        .await;
    let mut s = serve(&data).await;
    let end = s.wait_run(1).await;
    assert_eq!(
        (end["status"].as_str(), end["resumed"].as_bool()),
        (Some("complete"), Some(true)),
        "{end}"
    );
    common::assert_mail_matches(
        &common::Env {
            repo: backhome_store::Repository::open(&spec.repo, None).unwrap(),
            ..env
        },
        backhome_store::RunId(1),
    )
    .await;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_a_clean_start_that_resumes() {
    let env = common::env(&[Workload::Mail]).await;
    let data = env.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.toml"),
        "listen = \"127.0.0.1:0\"\nsyslog = false\n[auth]\nbackend = \"static\"\n\
         [[auth.users]]\nname = \"admin\"\npassword = \"test-password\"\nadmin = true\n",
    )
    .unwrap();
    TaskStore::open(&data)
        .unwrap()
        .create(&env.spec, &env.creds)
        .unwrap();
    env.control(Method::POST, "latency", Some(json!({"ms": 150})))
        .await;
    let mut s = serve(&data).await;
    let (st, _) = s.call(Method::POST, "/api/v1/tasks/t/runs").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    s.wait_progress().await;
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    env.control(Method::POST, "latency", Some(json!({"ms": 0})))
        .await;
    let mut s = serve(&data).await;
    let (st, health) = s.call(Method::GET, "/api/v1/health").await;
    assert_eq!(
        (st, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let end = s.wait_run(1).await;
    assert_eq!(
        (end["status"].as_str(), end["resumed"].as_bool()),
        (Some("complete"), Some(true)),
        "{end}"
    );
    let (_, runs) = s.call(Method::GET, "/api/v1/tasks/t/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
}
