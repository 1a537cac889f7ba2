//! `backhome demo`: a simulated tenant, a task against it, its first backup, and the service on
//! localhost — everything a developer needs to see the product without a Microsoft 365 tenant.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use backhome_store::{CreateOptions, Repository};

use crate::config::{AuthBackend, StaticUser};
use crate::task::{Credentials, TaskSpec, TaskStore};

/// Runs the demo until interrupted. `data` is where the task and its repository go (a fresh
/// temporary folder when `None`).
///
/// # Errors
/// The simulator or the service could not start.
pub async fn run(
    listen: SocketAddr,
    data: Option<PathBuf>,
    ui_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
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
    if !spec.repo.join("config.json").exists() {
        std::fs::create_dir_all(data.join("repositories"))?;
        Repository::create(&spec.repo, &CreateOptions::default())?;
    }

    let portal_upn = sim
        .state()
        .tenant
        .dir
        .read()
        .users
        .first()
        .map(|u| u.upn.clone())
        .context("the demo tenant has no users")?;
    let mut config = crate::serve::load_config(&data, Some(listen), ui_dir)?;
    config.auth.backend = AuthBackend::Static;
    config.auth.users = demo_users(&portal_upn);
    if let Err(e) = crate::logging::install(&config, &data) {
        eprintln!("logging: {e}");
    }
    let state = crate::api::AppState::new(data.clone(), config)?;
    let app = crate::api::Application::build(state).with_context(|| format!("binding {listen}"))?;
    println!("http://127.0.0.1:{}/", app.port());
    eprintln!("data dir: {}", data.display());
    eprintln!("simulator control: {}", r.control_endpoint);
    eprintln!(
        "sign in as '{ADMIN}' (administrator) or '{PORTAL}' (portal user for {portal_upn}), \
         password '{PASSWORD}'"
    );
    // The first backup goes through the run manager, so the app shows its progress.
    let runs = std::sync::Arc::clone(&app.state().runs);
    match runs.start(&name).await {
        Ok(live) => {
            let mut done = live.subscribe();
            tokio::spawn(async move {
                if let Ok(end) = done.wait_for(Option::is_some).await
                    && let Some(r) = end.clone()
                {
                    eprintln!(
                        "first backup: run {} {}, {} items, {:.1} MB, {} Graph requests, {} item errors{}",
                        r.id,
                        r.status.as_str(),
                        r.items_added,
                        r.bytes_downloaded as f64 / 1e6,
                        r.graph_requests,
                        r.item_errors,
                        r.error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            });
        }
        Err(e) => eprintln!("first backup not started: {e}"),
    }
    let result = crate::serve::run_until_stopped(app, true).await;
    sim.stop().await;
    drop(temp);
    result
}

/// The demo's administrator.
pub const ADMIN: &str = "admin";
/// The demo's portal user, mapped to the tenant's first user by e-mail address.
pub const PORTAL: &str = "portal";
/// The demo sign-ins' password (the demo listens on loopback only).
pub const PASSWORD: &str = "backhome-demo";

fn demo_users(portal_upn: &str) -> Vec<StaticUser> {
    vec![
        StaticUser {
            name: ADMIN.into(),
            password: PASSWORD.into(),
            admin: true,
            email: None,
        },
        StaticUser {
            name: PORTAL.into(),
            password: PASSWORD.into(),
            admin: false,
            email: Some(portal_upn.to_owned()),
        },
    ]
}
