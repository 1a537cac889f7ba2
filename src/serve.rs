//! `backhome serve`: the production entry point the package starts.
//!
//! Start-up: the configuration, logging (file, syslog, the queryable store), the service bound on
//! loopback, the backups a shutdown or crash interrupted resumed, the scheduler. SIGTERM or
//! SIGINT: no new requests or runs, running backups cancelled (they checkpoint and resume at the
//! next start), at most [`SHUTDOWN_WITHIN`] of waiting, exit 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;

use crate::api::{AppState, Application};
use crate::config::Config;
use crate::service::{RunManager, Scheduler};

/// How long a shutdown waits for running backups to checkpoint and stop.
pub const SHUTDOWN_WITHIN: Duration = Duration::from_secs(9);

/// How often the scheduler looks at the tasks.
pub const SCHEDULER_EVERY: Duration = Duration::from_secs(15);

/// Where the built UI is when the configuration does not say: next to the binary in the package
/// (`<package>/bin/backhome` → `<package>/ui`), or `ui/dist` of a source checkout.
#[must_use]
pub fn default_ui_dir() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("ui")));
    [beside, Some(PathBuf::from("ui/dist"))]
        .into_iter()
        .flatten()
        .find(|d| d.join("index.html").is_file())
}

/// Loads the configuration of `data` and applies the command line's overrides.
///
/// # Errors
/// A bad configuration file, named.
pub fn load_config(
    data: &Path,
    listen: Option<SocketAddr>,
    ui_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("creating the data dir {}", data.display()))?;
    let mut config = Config::load(data)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    if ui_dir.is_some() {
        config.ui_dir = ui_dir;
    }
    if config.ui_dir.is_none() {
        config.ui_dir = default_ui_dir();
    }
    Ok(config)
}

/// Waits for SIGTERM or SIGINT.
///
/// # Errors
/// The signal handlers cannot be installed.
pub async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Runs a built service with its scheduler until SIGTERM/SIGINT, then shuts down gracefully:
/// backups are cancelled (checkpointed) and waited for at most [`SHUTDOWN_WITHIN`].
///
/// # Errors
/// The server failed.
pub async fn run_until_stopped(app: Application, scheduler: bool) -> anyhow::Result<()> {
    let state: web::Data<AppState> = app.state();
    let runs: Arc<RunManager> = Arc::clone(&state.runs);
    match runs.resume_interrupted().await {
        Ok(t) if !t.is_empty() => tracing::info!(tasks = ?t, "interrupted backups resumed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "interrupted backups could not be looked up"),
    }
    if scheduler {
        let s = Scheduler::new(Arc::clone(&runs), state.data_dir.clone());
        state.runtime.spawn(s.run(SCHEDULER_EVERY));
    }
    let handle = app.handle();
    let mut server = tokio::spawn(app.run());
    tokio::select! {
        signal = stop_signal() => {
            let signal = signal.context("installing signal handlers")?;
            tracing::info!(signal, "stopping");
        }
        result = &mut server => {
            runs.shutdown(SHUTDOWN_WITHIN).await;
            return result.context("service task died")?.context("service failed");
        }
    }
    let left = tokio::join!(runs.shutdown(SHUTDOWN_WITHIN), handle.stop(true)).0;
    if left.is_empty() {
        tracing::info!("stopped");
    } else {
        tracing::warn!(tasks = ?left, "stopped before these backups ended; they resume at the next start");
    }
    Ok(())
}

/// Runs the service on `data` until it is stopped.
///
/// # Errors
/// A bad configuration, or the address cannot be bound.
pub async fn run(
    data: PathBuf,
    listen: Option<SocketAddr>,
    ui_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = load_config(&data, listen, ui_dir)?;
    crate::logging::install(&config, &data).context("setting up logging")?;
    let listen = config.listen;
    let state = AppState::new(data, config)?;
    let app = Application::build(state).with_context(|| format!("binding {listen}"))?;
    tracing::info!(
        port = app.port(),
        version = env!("CARGO_PKG_VERSION"),
        "service started"
    );
    println!("http://127.0.0.1:{}/", app.port());
    run_until_stopped(app, true).await
}
