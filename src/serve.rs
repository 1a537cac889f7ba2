//! `backhome serve`: the production entry point the package starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::api::{AppState, Application};
use crate::config::Config;

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
    let listen = config.listen;
    let state = AppState::new(data, config)?;
    let app = Application::build(state).with_context(|| format!("binding {listen}"))?;
    println!("http://127.0.0.1:{}/", app.port());
    app.run().await.context("service failed")
}
