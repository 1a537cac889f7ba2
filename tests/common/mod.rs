//! Shared set-up of the backup tests: a simulated tenant, a task against it, a repository.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome::backup::{self, Progress, Summary};
use backhome::task::{Credentials, Service, TaskSpec};
use backhome_store::{CreateOptions, NodeKind, Repository, RunId};
use graph_sim::{Profile, RunningSim, SimOptions, Simulator};
use serde_json::Value;

pub mod cli;
pub mod python;
pub mod restore;
pub mod service;

pub struct Env {
    pub sim: RunningSim,
    pub spec: TaskSpec,
    pub creds: Credentials,
    pub repo: Repository,
    pub dir: tempfile::TempDir,
}

pub async fn env(services: &[Service]) -> Env {
    env_with(services, SimOptions::new(Profile::Tiny)).await
}

pub async fn env_with(services: &[Service], mut opts: SimOptions) -> Env {
    let dir = tempfile::tempdir().unwrap();
    opts.state_dir = Some(dir.path().join("sim"));
    let sim = Simulator::start(opts).await.unwrap();
    let r = sim.ready().clone();
    let spec = TaskSpec::new(
        "t",
        r.tenant_id.clone(),
        r.app_id.clone(),
        dir.path().join("repo"),
    )
    .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
    .with_services(services);
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).unwrap(),
        password: r.cert_password.clone(),
    };
    let repo = Repository::create(&spec.repo, &CreateOptions::default()).unwrap();
    Env {
        sim,
        spec,
        creds,
        repo,
        dir,
    }
}

impl Env {
    pub async fn backup(&self) -> Summary {
        let client = backhome::connect::client(&self.spec, &self.creds).unwrap();
        backup::run(
            client,
            self.repo.clone(),
            &self.spec,
            Arc::new(Progress::default()),
            Arc::new(AtomicBool::new(false)),
        )
        .await
        .unwrap()
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{path}", self.sim.ready().control_endpoint);
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// The UPNs of the simulator's mailboxes, in the snapshot's order.
    pub async fn upns(&self) -> Vec<String> {
        self.control(reqwest::Method::GET, "snapshot?content=false", None)
            .await["mail"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    /// The UPN of the simulator's first mailbox.
    pub async fn first_upn(&self) -> String {
        self.upns().await.swap_remove(0)
    }

    /// Every node of `kind` visible at `run`: graph id → name.
    pub fn items(&self, kind: NodeKind, run: RunId) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for o in self.repo.objects().unwrap() {
            let mut stack: Vec<_> = self
                .repo
                .roots(o.id, run)
                .unwrap()
                .into_iter()
                .map(|v| v.node)
                .collect();
            while let Some(n) = stack.pop() {
                for c in self.repo.list_children(n, run).unwrap() {
                    stack.push(c.node);
                    if c.kind == kind {
                        out.insert(c.graph_id.clone(), c.name.clone());
                    }
                }
            }
        }
        out
    }
}

pub fn hex_of(repo: &Repository, id: backhome_store::ContentId) -> String {
    let mut r = repo.read_content(id).unwrap();
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut r, &mut h).unwrap();
    h.finalize().to_hex().to_string()
}

/// Checks that the repository's newest run holds every message of the simulator, byte-identical.
pub async fn assert_mail_matches(e: &Env, run: RunId) {
    let snap = e
        .control(reqwest::Method::GET, "snapshot?content=false", None)
        .await;
    let objects = e.repo.objects().unwrap();
    let mut expected = 0;
    for (upn, folders) in snap["mail"].as_object().unwrap() {
        let obj = objects
            .iter()
            .find(|o| o.info.address.as_deref() == Some(upn.as_str()))
            .unwrap();
        for (folder, msgs) in folders.as_object().unwrap() {
            for (id, hash) in msgs.as_object().unwrap() {
                expected += 1;
                let cur = e
                    .repo
                    .current_version(obj.id, id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{upn} {folder} {id} missing"));
                assert_eq!(
                    &hex_of(&e.repo, cur.content.unwrap()),
                    hash.as_str().unwrap(),
                    "{upn} {folder} {id}"
                );
            }
        }
    }
    assert_eq!(
        e.items(NodeKind::Message, run).len(),
        expected,
        "messages at run {run:?}"
    );
}
