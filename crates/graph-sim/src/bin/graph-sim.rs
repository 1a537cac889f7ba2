//! `graph-sim`: runs the Graph simulator until interrupted.

use std::path::PathBuf;

use clap::Parser;
use graph_sim::{Profile, SimOptions, Simulator};

/// A seeded, deterministic Microsoft 365 tenant (Entra ID + Graph v1.0) on localhost.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Size profile.
    #[arg(long, value_enum, default_value_t = Profile::Tiny)]
    profile: Profile,
    /// Seed of the generated tenant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of users (overrides the profile).
    #[arg(long)]
    users: Option<usize>,
    /// Messages per mailbox (overrides the profile).
    #[arg(long)]
    messages_per_user: Option<usize>,
    /// Files per OneDrive (overrides the profile).
    #[arg(long)]
    files_per_user: Option<usize>,
    /// Serve HTTPS with a self-signed certificate written to the state directory.
    #[arg(long)]
    tls: bool,
    /// Directory for ready.json, the app's .pfx and the CA certificate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: i64,
    /// Enable throttling (Exchange and SharePoint limits).
    #[arg(long)]
    throttle: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "graph-sim only listens on loopback addresses, not {}",
            args.listen
        );
    }
    let mut options = SimOptions::new(args.profile);
    options.listen = args.listen;
    options.seed = args.seed;
    options.users = args.users;
    options.messages_per_user = args.messages_per_user;
    options.files_per_user = args.files_per_user;
    options.tls = args.tls;
    options.state_dir =
        Some(args.state_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("graph-sim-{}", std::process::id()))
        }));
    options.token_lifetime = args.token_lifetime;
    options.throttle.enabled = args.throttle;
    let sim = Simulator::start(options).await?;
    println!("{}", serde_json::to_string(sim.ready())?);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    sim.stop().await;
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
