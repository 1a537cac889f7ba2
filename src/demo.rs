//! `backhome demo`: a simulated tenant, a task against it, its first backup, and the service on
//! localhost — everything a developer needs to see the product without a Microsoft 365 tenant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use backhome_store::{CreateOptions, Repository};

use crate::backup::{self, Progress};
use crate::task::{Credentials, TaskSpec, TaskStore};

/// Runs the demo until interrupted. `data` is where the task and its repository go (a fresh
/// temporary folder when `None`).
///
/// # Errors
/// The simulator or the service could not start.
pub async fn run(listen: SocketAddr, data: Option<PathBuf>) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary data dir")?;
    let data = data.unwrap_or_else(|| temp.path().to_owned());
    let mut opts = graph_sim::SimOptions::new(graph_sim::Profile::Demo);
    opts.state_dir = Some(data.join("simulator"));
    let sim = graph_sim::Simulator::start(opts)
        .await
        .context("starting the simulated tenant")?;
    let r = sim.ready().clone();
    tracing::info!(graph = %r.graph_endpoint, "simulated tenant started");

    let name = format!("demo-{}", &r.tenant_id[..8]);
    let spec = TaskSpec {
        portal: true,
        ..TaskSpec::new(
            name.clone(),
            r.tenant_id.clone(),
            r.app_id.clone(),
            data.join("repositories").join(&name),
        )
        .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
    };
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).with_context(|| format!("reading {}", r.cert_pfx))?,
        password: r.cert_password.clone(),
    };
    let store = TaskStore::open(&data)?;
    if store.get(&name).is_ok() {
        store.update(&spec, Some(&creds))?;
    } else {
        store.create(&spec, &creds)?;
    }
    drop(store);
    let repo = if spec.repo.join("config.json").exists() {
        Repository::open(&spec.repo, None)?
    } else {
        std::fs::create_dir_all(data.join("repositories"))?;
        Repository::create(&spec.repo, &CreateOptions::default())?
    };

    let app =
        crate::api::Application::build(listen).with_context(|| format!("binding {listen}"))?;
    println!("http://127.0.0.1:{}/", app.port());
    eprintln!("data dir: {}", data.display());
    let client = crate::connect::client(&spec, &creds)?;
    tokio::spawn(async move {
        let progress = Arc::new(Progress::default());
        match backup::run(
            client,
            repo,
            &spec,
            progress,
            Arc::new(AtomicBool::new(false)),
        )
        .await
        {
            Ok(s) => eprintln!(
                "first backup: run {} {}, {} items, {:.1} MB, {} Graph requests, {} item errors",
                s.run_id,
                s.status,
                s.items_added,
                s.bytes_downloaded as f64 / 1e6,
                s.graph_requests,
                s.errors.len()
            ),
            Err(e) => eprintln!("first backup failed: {e}"),
        }
    });
    let result = app.run().await.context("service failed");
    sim.stop().await;
    drop(temp);
    result
}
